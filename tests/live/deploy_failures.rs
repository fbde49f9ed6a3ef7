//! Failures against the real Docker engine: a backend that never becomes
//! healthy, a config edit that `nginx -t` rejects, a new image that is missing.

use std::time::Duration;

use crate::support::scope::Scope;
use crate::support::stack::{Stack, app_bodies};
use crate::support::{assert_ok, docker, text};

#[test]
fn a_backend_that_never_becomes_healthy_pauses_the_deploy_and_the_other_server_keeps_serving() {
    let stack = Stack::up("unhealthy");
    let load = stack.load("/", 20, 16, "get-keepalive");
    std::thread::sleep(Duration::from_secs(1));
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--env",
        "FAIL_HEALTH=1",
        "--health-timeout",
        "10s",
    ]);
    let during = stack.bodies(8);
    let load = load.stop();

    assert!(!out.status.success(), "the deploy must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let app1 = stack.container("app1");
    assert!(stderr.contains(&app1), "stderr must name {app1}:\n{stderr}");

    // app2 kept serving throughout, and serves alone now.
    assert_eq!(load.failed, 0, "{load:?}");
    assert!(load.total > 100, "{load:?}");
    let only_app2: std::collections::BTreeSet<String> =
        ["Hi there, I love ! app2,v1".to_string()].into();
    assert_eq!(during, only_app2);
    for _ in 0..8 {
        assert_eq!(stack.get("/"), (200, "Hi there, I love ! app2,v1".into()));
    }

    // `status` reports the drained server and the paused rollout.
    let status = stack.tool(&["status"]);
    assert_ok(&status);
    let table = String::from_utf8_lossy(&status.stdout);
    let app1_row = table
        .lines()
        .find(|l| l.contains("app1:3000"))
        .unwrap_or_else(|| panic!("no app1 row:\n{table}"));
    assert!(
        app1_row.contains("down"),
        "app1 must show as down:\n{table}"
    );
    assert!(
        app1_row.contains("rev 1"),
        "app1's row must name the rollout:\n{table}"
    );
    assert!(
        table.contains("revision 1") && table.contains("Paused") && table.contains(&app1),
        "status must report the paused revision and why:\n{table}"
    );
    let json = stack.tool(&["status", "--output", "json"]);
    assert_ok(&json);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["unfinished"]["revision"], 1, "{json}");
    assert_eq!(json["unfinished"]["status"], "paused", "{json}");
    assert!(
        json["unfinished"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&app1)),
        "{json}"
    );
}

#[test]
fn nothing_changes_when_nginx_t_rejects_the_edit_or_the_new_image_is_missing() {
    let stack = Stack::up("nginxt");
    // Upstream names resolve when nginx loads its config: with app2's
    // container stopped, any reload would fail `host not found in upstream`.
    docker(&["stop", "-t", "1", &stack.container("app2")]);
    let (before, inode, processes) = (stack.conf(), stack.conf_inode(), stack.nginx_processes());
    assert!(processes.len() >= 2, "master and a worker: {processes:?}");

    for args in [
        &["drain", "apps", "app1"][..],
        &["deploy", "apps", "--yes", "--force", "--servers", "app1"][..],
    ] {
        let out = stack.tool(args);
        assert!(!out.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("host not found in upstream"),
            "{args:?}: nginx's own message:\n{stderr}"
        );
        assert!(
            stderr.contains("restored byte for byte"),
            "{args:?}:\n{stderr}"
        );
        let hint = format!(
            "container {} (server app2) is not running",
            stack.container("app2")
        );
        assert!(
            stderr.contains(&hint),
            "{args:?}: names the cause:\n{stderr}"
        );
        assert_eq!(
            stack.conf(),
            before,
            "{args:?}: nginx.conf must be restored byte for byte"
        );
        assert_eq!(stack.conf_inode(), inode, "{args:?}: and keep its inode");
        assert_eq!(
            stack.nginx_processes(),
            processes,
            "{args:?}: nginx must not have been reloaded"
        );
    }
    // app1 was never drained: nginx still sends it its share.
    let app1_answers = (0..6)
        .filter(|_| stack.get("/") == (200, "Hi there, I love ! app1,v1".into()))
        .count();
    assert!(app1_answers > 0, "app1 no longer gets requests");
    // Nothing changed, so nothing is left to resume or roll back.
    let history = stack.tool(&["history", "--output", "json"]);
    assert_ok(&history);
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["rejected", "rejected"], "{history}");

    // An image that is neither here nor pullable stops the deploy before the
    // first drain: same container, same config, no revision.
    let app1 = stack.inspect(&stack.container("app1"))["Id"].clone();
    let image = "nginx-rollout-fixture/app:nowhere";
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--servers",
        "app1",
        "--image",
        image,
    ]);
    assert!(
        !out.status.success(),
        "a missing image must fail the deploy"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "image {image} is not on this host and cannot be pulled"
        )) && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(stack.inspect(&stack.container("app1"))["Id"], app1);
    assert_eq!((stack.conf(), stack.conf_inode()), (before, inode));
    let history = stack.tool(&["history", "--output", "json"]);
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
}

#[test]
fn a_new_container_that_cannot_start_pauses_and_rollback_brings_the_old_version_back() {
    let stack = Stack::up("nostart");
    let before = stack.conf();
    // Docker creates a container of this image; its start fails.
    let mut scope = Scope::new("nostart");
    let broken = scope.image_with("broken", &["ENTRYPOINT [\"/no-such-binary\"]"]);
    let out = stack.tool(&[
        "deploy", "apps", "--yes", "--mode", "engine", "--image", &broken,
    ]);
    assert_eq!(out.status.code(), Some(3), "paused: {}", text(&out));
    // app1's old container got its name back, stopped; app2 serves alone.
    assert_eq!(
        stack.bodies(8),
        ["Hi there, I love ! app2,v1".to_string()].into()
    );

    let load = stack.load("/", 20, 16, "post-close");
    std::thread::sleep(Duration::from_secs(1));
    let out = stack.tool(&["rollback", "--yes"]);
    let load = load.stop();
    assert_ok(&out);
    assert_eq!(load.failed, 0, "{load:?}");
    assert_eq!(stack.conf(), before, "{}", text(&out));
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"), "{}", text(&out));
}
