//! A server whose container is not running never makes a reload fail: nginx
//! resolves every name when it loads its config, and Docker's DNS knows only
//! running containers. Seed 002's single-container servers.
use crate::support::stack::{Stack, app_bodies, engine_deploy_json};
use crate::support::{assert_ok, docker, json_lines, results, summary, text};

#[test]
fn a_server_killed_before_the_deploy_is_replaced_without_a_failed_request() {
    let stack = Stack::up("deadapp1");
    let before = stack.conf();
    docker(&["kill", &stack.container("app1")]);
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    // nginx sends app1's share to its dead address until it reloads: the
    // load runs from the deploy's first reload (app1 pinned to nowhere) on.
    let (events, load) = stack.tool_loaded_from_first_reload(
        &[
            "deploy",
            "apps",
            "--yes",
            "--output",
            "json",
            "--monitor",
            "0s",
        ],
        "post-close",
    );
    let first_edit = events
        .iter()
        .find(|e| e.contains("\"action\":\"edit\""))
        .unwrap();
    assert!(first_edit.contains("192.0.2.1:3000 down"), "{first_edit}");
    assert_eq!(load.failed, 0, "{load:?}");
    assert_eq!(stack.conf(), before, "app1's line comes back byte for byte");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}

/// Deploys v2 in engine mode where app1's new container exits 10 s after it
/// starts (inside a 14 s monitor window, in the final monitor step: the
/// deploy's other steps take about 6 s), with `action` on failure.
fn deploy_crashing_app1(stack: &Stack, action: &str) -> std::process::Output {
    stack.tool(&engine_deploy_json(&[
        "--env",
        "MESSAGE={{service}},v2",
        "--env",
        "CRASH_AFTER_MS={% if service == \"app1\" %}10000{% else %}600000{% endif %}",
        "--monitor",
        "14s",
        "--failure-action",
        action,
    ]))
}

#[test]
fn a_new_container_dying_in_its_monitor_window_is_pinned_out_and_the_rollout_goes_on() {
    let stack = Stack::up("monitordead");
    let before = stack.conf();
    let out = deploy_crashing_app1(&stack, "continue");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = summary(&out);
    assert_eq!(
        results(&s),
        [("app1:3000", "failed"), ("app2:3000", "updated")],
        "{s}"
    );
    // Taken out when it died, not when the monitor step's wait ends: the
    // failure and its reload come inside that step.
    let events = json_lines(&out);
    let at = |event: &str| events.iter().position(|e| e["event"] == event);
    let monitor = events
        .iter()
        .position(|e| e["event"] == "step-start" && e["step"]["action"]["action"] == "monitor")
        .expect("a monitor step");
    let failure = at("failure").expect("a failure event");
    let finish = monitor
        + events[monitor..]
            .iter()
            .position(|e| e["event"] == "step-finish")
            .unwrap();
    assert!(
        monitor < failure
            && failure < finish
            && events[monitor..finish]
                .iter()
                .any(|e| e["event"] == "reload"),
        "{}",
        text(&out)
    );
    let conf = String::from_utf8(stack.conf()).unwrap();
    assert!(
        conf.contains("server 192.0.2.1:3000 down; # nginx-rollout pin: app1:3000"),
        "the dead server's line names nothing nginx must resolve:\n{conf}"
    );
    assert_eq!(
        stack.bodies(6),
        std::collections::BTreeSet::from(["Hi there, I love ! app2,v2".to_string()]),
        "only app2 serves"
    );
    let status = stack.tool(&["status", "--output", "json"]);
    assert_ok(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        status["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["server"] == "192.0.2.1:3000"
                && r["state"] == "down"
                && r["rollout"]
                    .as_str()
                    .is_some_and(|x| x.contains("app1:3000"))),
        "{status}"
    );
    // And rolled back: both on v1, the line as it was.
    let out = stack.tool(&["rollback", "--yes"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "{}", text(&out));
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
}

#[test]
fn a_new_container_dying_in_its_monitor_window_with_rollback_leaves_everything_as_it_was() {
    let stack = Stack::up("monitorback");
    let before = stack.conf();
    let out = deploy_crashing_app1(&stack, "rollback");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(summary(&out)["status"], "rolled-back", "{}", text(&out));
    assert_eq!(stack.conf(), before);
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
}
