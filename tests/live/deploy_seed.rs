//! The seed-002 procedure end to end against the real Docker engine (compose
//! mode), and the live `drain`/`undrain` commands.

use std::collections::BTreeSet;

use crate::support::rollout::under_load;
use crate::support::stack::Stack;
use crate::support::{assert_ok, summary};

fn set(bodies: &[&str]) -> BTreeSet<String> {
    bodies
        .iter()
        .map(|b| format!("Hi there, I love ! {b}"))
        .collect()
}

/// Runs `deploy apps --output json` (compose mode, MESSAGE v2 for both)
/// [`under_load`] of `profile` (done, no failed request, every slow request
/// answered), and checks the rest of the seed test's claims: v2 everywhere,
/// the config untouched (bytes and inode), N+1 reloads, and slow requests
/// in flight on the old containers when they were drained.
fn compose_deploy_under(profile: &str) {
    let stack = Stack::up(&format!("seed{}", profile.replace('-', "")));
    let (before, inode) = (stack.conf(), stack.conf_inode());
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");

    let run = under_load(
        &stack,
        &[
            "deploy",
            "apps",
            "--yes",
            "--monitor",
            "0s",
            "--output",
            "json",
        ],
        profile,
    );

    let summary = summary(&run.out);
    assert_eq!(
        summary["reloads"], 3,
        "2 servers need N+1 = 3 reloads: {summary}"
    );
    assert_eq!(
        stack.conf(),
        before,
        "nginx.conf must be byte-identical after the deploy"
    );
    assert_eq!(
        stack.conf_inode(),
        inode,
        "nginx.conf must keep its inode (single-file bind mount)"
    );
    assert_eq!(stack.bodies(8), set(&["app2,v2", "app1,v2"]));

    let answered_by: BTreeSet<&str> = run.slow.iter().map(|(_, body)| body.as_str()).collect();
    for old in set(&["app1,v1", "app2,v1"]) {
        assert!(
            answered_by.contains(old.as_str()),
            "no slow request reached the old {old:?}: {answered_by:?}"
        );
    }
}

#[test]
fn compose_deploy_under_get_keepalive_loses_no_request() {
    compose_deploy_under("get-keepalive");
}

#[test]
fn compose_deploy_under_post_with_a_new_connection_per_request_loses_no_request() {
    compose_deploy_under("post-close");
}

#[test]
fn drain_and_undrain_take_a_server_out_and_back_live() {
    let stack = Stack::up("drain");
    let (before, inode) = (stack.conf(), stack.conf_inode());

    assert_ok(&stack.tool(&["drain", "apps", "app2"]));
    assert_eq!(
        stack.bodies(8),
        set(&["app1,v1"]),
        "only app1 answers while app2 is drained"
    );
    let status = stack.tool(&["status", "--output", "json"]);
    assert_ok(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let states: Vec<(&str, &str)> = status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["server"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("app1:3000", "up"), ("app2:3000", "down")]);

    let refused = stack.tool(&["drain", "apps", "app1"]);
    assert!(
        !refused.status.success(),
        "draining the last live server must be refused"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--force"),
        "the refusal should name --force: {stderr}"
    );
    assert_eq!(
        stack.bodies(4),
        set(&["app1,v1"]),
        "the refused drain changed nothing"
    );

    assert_ok(&stack.tool(&["undrain", "apps", "app2"]));
    assert_eq!(
        stack.bodies(8),
        set(&["app1,v1", "app2,v1"]),
        "both answer again"
    );
    assert_eq!(
        stack.conf(),
        before,
        "drain + undrain must give back the original bytes"
    );
    assert_eq!(stack.conf_inode(), inode, "nginx.conf must keep its inode");
}

/// `deploy apps` of `stack`, which must succeed; what compose mode logged
/// (its debug lines) on stderr.
fn deploy_logging_compose(stack: &Stack) -> String {
    let out = stack
        .tool_cmd(&["deploy", "apps", "--yes", "--monitor", "0s"])
        .env(
            "NGINX_ROLLOUT_LOG",
            "nginx_rollout::backends::compose=debug",
        )
        .output()
        .unwrap();
    assert_ok(&out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Compose's code runs as root in the project's directory, which containers
/// that bind-mount it can write to: Python modules planted there under the
/// names compose imports are not imported, and the deploy reads the files
/// through compose as on any first deploy, by an interpreter started as the
/// run began. The next deploy, answered by the kept reading, lets that
/// interpreter go.
#[test]
fn modules_planted_in_the_compose_directory_are_not_imported() {
    let stack = Stack::up("planted");
    let marker = stack.path().join("planted-module-ran");
    for module in ["yaml", "json", "contextlib", "compose"] {
        let code = format!(
            "open({:?}, 'a').write('{module}\\n')\n",
            marker.display().to_string()
        );
        let file = if module == "compose" {
            std::fs::create_dir(stack.path().join(module)).unwrap();
            stack.path().join(module).join("__init__.py")
        } else {
            stack.path().join(format!("{module}.py"))
        };
        std::fs::write(file, code).unwrap();
    }
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");

    let stderr = deploy_logging_compose(&stack);
    assert!(
        stderr.contains("(compose's reading script") && !stderr.contains("`config` instead"),
        "the first deploy reads the files through compose's own code, in one run: {stderr}"
    );
    assert!(
        stderr.contains("(started ahead)"),
        "the script was started as the run began, not after the discovery: {stderr}"
    );
    assert!(
        !marker.exists(),
        "a planted module ran: {:?}",
        std::fs::read_to_string(&marker)
    );
    assert_eq!(stack.bodies(8), set(&["app2,v2", "app1,v2"]));

    // Only an environment value changed: the kept reading answers, and the
    // script started ahead is let go.
    stack.edit_compose("app1,v2", "app1,v3");
    let stderr = deploy_logging_compose(&stack);
    assert!(
        stderr.contains("started ahead is not needed: a kept reading answered")
            && !stderr.contains("(compose's reading script"),
        "{stderr}"
    );
    assert!(!marker.exists());
    assert_eq!(stack.bodies(8), set(&["app2,v2", "app1,v3"]));
}
