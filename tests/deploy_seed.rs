//! The seed-002 procedure end to end against the real Docker engine.
mod stack;

use stack::{Stack, assert_ok};

#[test]
fn compose_deploy_updates_both_servers_and_leaves_the_config_byte_identical() {
    let stack = Stack::up("smoke");
    let before = stack.conf();
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    let load = stack.load("/", 20, 16, "get-keepalive");
    let out = stack.tool(&["deploy", "apps", "--yes", "--monitor", "0s"]);
    assert_ok(&out);
    let load = load.finish();
    assert_eq!(
        stack.conf(),
        before,
        "nginx.conf must be byte-identical after the deploy"
    );
    let bodies = stack.bodies(8);
    assert_eq!(
        bodies,
        ["Hi there, I love ! app1,v2", "Hi there, I love ! app2,v2"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert!(load.total > 100, "{load:?}");
    assert_eq!(load.failed, 0, "{load:?}");
}
