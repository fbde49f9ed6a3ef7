//! Failure policies against the real Docker engine: a never-healthy version
//! rolled back automatically, the monitor window, the failure ratio, and a
//! pause that lets a start-first batch swap its healthy replacement in.

use crate::support::stack::{Stack, app_bodies, engine_deploy_json, http, set_app_servers};
use crate::support::{assert_ok, json_lines, results, summary, text};

#[test]
fn never_healthy_version_is_rolled_back_automatically_without_failed_requests() {
    let stack = Stack::up("nohealth");
    let before = stack.conf();
    let load = stack.load("/", 30, 16, "get-keepalive");
    let out = stack.tool(&engine_deploy_json(&[
        "--env",
        "FAIL_HEALTH=1",
        "--env",
        "MESSAGE={{service}},v2",
        "--failure-action",
        "rollback",
        "--health-timeout",
        "20s",
        "--monitor",
        "0s",
    ]));
    let load = load.stop();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let events = json_lines(&out);
    assert!(
        events.iter().any(|e| e["event"] == "rollback"),
        "{}",
        text(&out)
    );
    let kinds: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "plan")
        .map(|e| e["kind"].clone())
        .collect();
    assert_eq!(kinds, ["deploy", "rollback"], "{}", text(&out));
    let summaries: Vec<_> = events.iter().filter(|e| e["event"] == "summary").collect();
    assert_eq!(
        summaries.first().map(|s| &s["status"]),
        Some(&"done".into()),
        "the rollback finished: {}",
        text(&out)
    );
    assert_eq!(summary(&out)["status"], "rolled-back", "{}", text(&out));
    assert_eq!(
        stack.conf(),
        before,
        "nginx.conf must be byte-identical to the start"
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
    assert!(load.total > 100, "{load:?}");
    assert_eq!(load.failed, 0, "{load:?}");
}

/// Deploys to app2 a version that exits 5 s after it starts (about 3 s after it
/// became healthy), with the given monitor window. Only the last server crashes: nginx
/// cannot load a config naming a host that no longer resolves, so a crash of an
/// earlier server would fail the next reload whatever the monitor window.
fn deploy_crashing(stack: &Stack, monitor: &str) -> std::process::Output {
    stack.tool(&engine_deploy_json(&[
        "--servers",
        "app2",
        "--env",
        "CRASH_AFTER_MS=5000",
        "--parallelism",
        "1",
        "--monitor",
        monitor,
        "--health-timeout",
        "20s",
    ]))
}

/// Asserts that the run's first failure was in a monitor window.
fn assert_failed_in_the_monitor_window(out: &std::process::Output) {
    let events = json_lines(out);
    let failure = events
        .iter()
        .find(|e| e["event"] == "failure")
        .unwrap_or_else(|| panic!("{}", text(out)));
    assert!(
        failure["reason"]
            .as_str()
            .unwrap()
            .contains("monitor window"),
        "{failure}"
    );
}

#[test]
fn a_crash_inside_the_monitor_window_is_a_failure() {
    let stack = Stack::up("monlong");
    let out = deploy_crashing(&stack, "10s");
    // The default failure action is pause.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_failed_in_the_monitor_window(&out);
    assert_eq!(summary(&out)["status"], "paused");
    let conf = String::from_utf8(stack.conf()).unwrap();
    let status = stack.tool(&["status", "--output", "json"]);
    assert_ok(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["unfinished"]["status"], "paused", "{status}\n{conf}");
}

#[test]
fn a_crash_after_the_monitor_window_is_not_a_failure() {
    let stack = Stack::up("monshort");
    let out = deploy_crashing(&stack, "1s");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = json_lines(&out);
    assert!(
        !events.iter().any(|e| e["event"] == "failure"),
        "{}",
        text(&out)
    );
    assert_eq!(summary(&out)["status"], "done");
}

/// A 4-server stack where only app3's new version never becomes healthy.
fn deploy_one_failing_of_four(name: &str, ratio: &str) -> (Stack, std::process::Output) {
    let stack = Stack::up_with(name, |dir| set_app_servers(dir, 4));
    assert_eq!(stack.bodies(12), app_bodies(4, "v1"));
    let out = stack.tool(&engine_deploy_json(&[
        "--env",
        r#"FAIL_HEALTH={% if service == "app3" %}1{% else %}0{% endif %}"#,
        "--env",
        "MESSAGE={{service}},v2",
        "--max-failure-ratio",
        ratio,
        "--failure-action",
        "pause",
        "--health-timeout",
        "20s",
        "--monitor",
        "0s",
    ]));
    (stack, out)
}

#[test]
fn one_failure_in_four_exceeds_a_ratio_of_0_2() {
    let (stack, out) = deploy_one_failing_of_four("ratio02", "0.2");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(summary(&out)["status"], "paused");
    let events = json_lines(&out);
    let failures: Vec<_> = events.iter().filter(|e| e["event"] == "failure").collect();
    assert_eq!(failures.len(), 1, "{}", text(&out));
    assert_eq!(failures[0]["server"], "app3:3000");
    // Paused at app3: app4 was never touched, app3 stays out of the upstream.
    let bodies = stack.bodies(12);
    assert!(bodies.contains("Hi there, I love ! app4,v1"), "{bodies:?}");
    assert!(!bodies.iter().any(|b| b.contains("app3")), "{bodies:?}");
}

#[test]
fn one_failure_in_four_stays_within_a_ratio_of_0_3() {
    let (stack, out) = deploy_one_failing_of_four("ratio03", "0.3");
    // The rollout goes on and ends; the failed server is reported, not fatal to the others.
    let s = summary(&out);
    assert_eq!(s["status"], "done", "{}", text(&out));
    assert_eq!(
        results(&s),
        [
            ("app1:3000", "updated"),
            ("app2:3000", "updated"),
            ("app3:3000", "failed"),
            ("app4:3000", "updated")
        ]
    );
    let bodies = stack.bodies(12);
    let expected: std::collections::BTreeSet<String> = [1, 2, 4]
        .map(|k| format!("Hi there, I love ! app{k},v2"))
        .into_iter()
        .collect();
    assert_eq!(bodies, expected);
}

#[test]
fn a_pause_swaps_the_batchs_healthy_start_first_replacement_in_and_removes_its_old_container() {
    let stack = Stack::up("pauseswap");
    let old_app2 = stack.container("app2");
    let out = stack.tool(&engine_deploy_json(&[
        "--env",
        r#"FAIL_HEALTH={% if service == "app1" %}1{% else %}0{% endif %}"#,
        "--env",
        "MESSAGE={{service}},v2",
        "--order",
        "start-first",
        "--parallelism",
        "2",
        "--failure-action",
        "pause",
        "--health-timeout",
        "20s",
        "--monitor",
        "0s",
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let s = summary(&out);
    assert_eq!(s["status"], "paused", "{}", text(&out));
    assert_eq!(
        results(&s),
        [("app1:3000", "failed"), ("app2:3000", "updated")],
        "{}",
        text(&out)
    );
    // app2 serves from its replacement; its old container is stopped, app1's keeps serving.
    assert_eq!(
        stack.bodies(8),
        ["Hi there, I love ! app1,v1", "Hi there, I love ! app2,v2"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let conf = String::from_utf8(stack.conf()).unwrap();
    assert!(
        conf.contains(&format!("server {old_app2}-b:3000;")) && !conf.contains(" down"),
        "app2's line names its replacement, nothing is left drained:\n{conf}"
    );
    let named = |name: &str| {
        crate::support::docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("name=^/{name}$"),
            "--format",
            "{{.Names}}",
        ])
    };
    assert_eq!(named(&old_app2), "", "the old app2 is gone");
    let app1 = stack.container("app1");
    assert_eq!(named(&app1), app1, "app1's old container serves on");
    assert_eq!(
        named(&format!("{app1}-b")),
        "",
        "its failed replacement is removed"
    );
}

#[test]
fn a_start_first_replacement_crashing_after_its_swap_is_taken_out_and_rolled_back() {
    let stack = Stack::up("sfcrash");
    let before = stack.conf();
    let out = stack.tool(&engine_deploy_json(&[
        "--servers",
        "app1",
        "--order",
        "start-first",
        "--env",
        "CRASH_AFTER_MS=5000",
        "--env",
        "MESSAGE={{service}},v2",
        "--monitor",
        "10s",
        "--failure-action",
        "rollback",
        "--health-timeout",
        "20s",
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(summary(&out)["status"], "rolled-back", "{}", text(&out));
    assert_failed_in_the_monitor_window(&out);
    // The rollback's own line names the container it made; nothing is left down.
    let conf = String::from_utf8(stack.conf()).unwrap();
    assert!(!conf.contains(" down"), "{conf}");
    assert_ne!(
        stack.conf(),
        before,
        "app1's line names the rollback's container"
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
}

#[test]
fn a_start_first_replacement_crashing_in_its_swaps_drain_wait_gives_the_line_back_to_its_old_container()
 {
    let stack = Stack::up("sfback");
    let before = stack.conf();
    let app1 = stack.container("app1");
    // In flight across the swap's reload: the old workers, and so the drain
    // wait, last until it ends; the replacement exits 4 s after its start.
    let port = stack.port;
    let slow = std::thread::spawn(move || http(port, "GET", "/slow?ms=12000"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = stack.tool(&engine_deploy_json(&[
        "--servers",
        "app1",
        "--order",
        "start-first",
        "--env",
        "CRASH_AFTER_MS=4000",
        "--env",
        "MESSAGE={{service}},v2",
        "--monitor",
        "20s",
        "--failure-action",
        "pause",
        "--health-timeout",
        "20s",
        "--drain-timeout",
        "30s",
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(summary(&out)["status"], "paused", "{}", text(&out));
    let events = json_lines(&out);
    assert!(
        events.iter().any(|e| e["event"] == "failure"
            && e["server"] == "app1:3000"
            && e["reason"].as_str().is_some_and(
                |r| r.contains(&format!("its line is back on its old container {app1}"))
            )),
        "{}",
        text(&out)
    );
    assert_eq!(
        stack.conf(),
        before,
        "app1's line is the operator's again, byte for byte"
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
    assert_eq!(
        crate::support::docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("name=^/{app1}-b$"),
            "--format",
            "{{.Names}}"
        ]),
        "",
        "the failed replacement is removed"
    );
    assert_eq!(
        slow.join().unwrap().0,
        200,
        "the request in flight completes"
    );
    let out = stack.tool(&["rollback", "--yes", "--output", "json"]);
    assert_ok(&out);
    assert_eq!(summary(&out)["status"], "done", "{}", text(&out));
    let conf = String::from_utf8(stack.conf()).unwrap();
    assert!(!conf.contains(" down"), "{conf}");
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
}
