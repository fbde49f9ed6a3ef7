//! Server lines changed live — `weight`, `add`, `remove`, each undone by
//! `rollback` byte for byte — and a deploy whose first server ramps through
//! shares of the traffic (`--canary-weights`) under load.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::stack::{Stack, app_bodies, set_app_services};
use crate::support::{assert_ok, json_lines, text};

/// How many of `n` requests each body answered.
fn answers(stack: &Stack, n: usize) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for _ in 0..n {
        let (status, body) = stack.get("/");
        assert_eq!(status, 200, "{body}");
        *count.entry(body).or_default() += 1;
    }
    count
}

fn body(server: &str) -> String {
    body_of(server, "v1")
}

fn body_of(server: &str, version: &str) -> String {
    format!("Hi there, I love ! {server},{version}")
}

/// The pids of nginx's worker processes.
fn worker_pids(stack: &Stack) -> Vec<u64> {
    let mut pids: Vec<u64> = stack
        .nginx_processes()
        .iter()
        .filter(|p| p.contains("worker process"))
        .map(|p| p.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    pids.sort_unstable();
    pids
}

/// (kind, status) of every revision, oldest first.
fn history(stack: &Stack) -> Vec<(String, String)> {
    let out = stack.tool(&["history", "apps", "--output", "json"]);
    assert_ok(&out);
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_weight_set_live_is_what_the_new_workers_serve_and_rollback_puts_the_line_back() {
    let stack = Stack::up("weight");
    let (before, inode) = (stack.conf(), stack.conf_inode());
    let out = stack.tool(&["weight", "apps", "app2", "3", "--output", "json"]);
    assert_ok(&out);
    let expected = String::from_utf8(before.clone()).unwrap().replace(
        "        server app2:3000;\n",
        "        server app2:3000 weight=3;\n",
    );
    assert_eq!(String::from_utf8(stack.conf()).unwrap(), expected);
    assert_eq!(stack.conf_inode(), inode, "written in place");
    // The command waited for the old workers: only the new ones run.
    let events = json_lines(&out);
    let reload = events
        .iter()
        .find(|e| e["event"] == "reload")
        .expect("a reload event");
    let mut new: Vec<u64> = reload["new_workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    new.sort_unstable();
    assert_eq!(worker_pids(&stack), new, "{}", text(&out));
    // One worker, smooth weighted round-robin: every 4 requests, 3 to app2 and
    // 1 to app1, so any 40 in a row split exactly 30 / 10.
    let seen = answers(&stack, 40);
    assert_eq!(
        seen,
        BTreeMap::from([(body("app1"), 10), (body("app2"), 30)]),
        "weight 3 against 1"
    );

    let out = stack.tool(&["rollback", "apps", "--yes"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "the line as it was, byte for byte");
    assert_eq!(stack.conf_inode(), inode);
    assert_eq!(
        answers(&stack, 40),
        BTreeMap::from([(body("app1"), 20), (body("app2"), 20)])
    );
    assert_eq!(
        history(&stack),
        [
            ("weight".into(), "rolled-back".into()),
            ("rollback".into(), "done".into())
        ]
    );
    let zero = stack.tool(&["weight", "apps", "app2", "0"]);
    assert_eq!(
        zero.status.code(),
        Some(2),
        "nginx has no weight 0: {}",
        text(&zero)
    );
}

#[test]
fn a_new_containers_address_added_then_removed_comes_back_with_rollback() {
    // app3 runs beside app1 and app2; nginx does not know it yet.
    let stack = Stack::up_with("addremove", |dir| set_app_services(dir, 3));
    let before = stack.conf();
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));

    let dry = stack.tool(&["add", "apps", "app3:3000", "--dry-run"]);
    assert_ok(&dry);
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("+        server app3:3000;"),
        "{}",
        text(&dry)
    );
    assert_eq!(stack.conf(), before, "a dry run changes nothing");

    assert_ok(&stack.tool(&["add", "apps", "app3:3000"]));
    let added = stack.conf();
    assert_eq!(
        String::from_utf8(added.clone()).unwrap(),
        String::from_utf8(before.clone()).unwrap().replace(
            "        server app2:3000;\n",
            "        server app2:3000;\n        server app3:3000;\n"
        ),
        "after the last server, indented like it"
    );
    assert_eq!(stack.bodies(12), app_bodies(3, "v1"));

    assert_ok(&stack.tool(&["remove", "apps", "app3"]));
    assert_eq!(stack.conf(), before);
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));

    let out = stack.tool(&["rollback", "apps", "--yes"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), added, "the removed line back, byte for byte");
    assert_eq!(stack.bodies(12), app_bodies(3, "v1"), "{}", text(&out));
    // A second rollback undoes the first, as for a deploy.
    assert_ok(&stack.tool(&["rollback", "apps", "--yes"]));
    assert_eq!(stack.conf(), before);
    assert_eq!(
        history(&stack),
        [
            ("add".into(), "done".into()),
            ("remove".into(), "rolled-back".into()),
            ("rollback".into(), "rolled-back".into()),
            ("rollback".into(), "done".into())
        ]
    );
}

/// The most seconds of load around a canary deploy (stopped when it is over).
const LOAD_SECONDS: u32 = 40;

#[test]
fn a_canary_ramp_under_load_loses_no_request_and_leaves_the_config_as_it_was() {
    let stack = Stack::up("canary");
    let before = stack.conf();
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    let load = stack.load("/", LOAD_SECONDS, 16, "get-keepalive");
    std::thread::sleep(Duration::from_secs(1));
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--canary-weights",
        "10,50",
        "--canary-delay",
        "1s",
        "--monitor",
        "0s",
        "--output",
        "json",
    ]);
    let load = load.stop();
    assert_ok(&out);
    let events = json_lines(&out);
    let summary = events.last().unwrap();
    assert_eq!(summary["status"], "done", "{summary}");
    assert_eq!(
        summary["reloads"], 5,
        "drain app1, 10 %, 50 %, the weights back with app2's drain, app2 back: {summary}"
    );
    let seconds = summary["seconds"].as_f64().unwrap();
    assert!(
        seconds + 1.0 < f64::from(LOAD_SECONDS),
        "the deploy ({seconds} s) outlasted the load: the test proves nothing, raise LOAD_SECONDS"
    );
    // Each share was an edit with its diff, then a hold of the canary.
    let started: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "step-start")
        .map(|e| &e["step"])
        .collect();
    let holds: Vec<u64> = started
        .iter()
        .filter(|s| s["action"]["action"] == "canary")
        .map(|s| s["action"]["share"].as_u64().unwrap())
        .collect();
    assert_eq!(holds, [10, 50]);
    let diffs: Vec<&str> = started.iter().filter_map(|s| s["diff"].as_str()).collect();
    assert!(
        diffs
            .iter()
            .any(|d| d.contains("+        server app1:3000 weight=1;")
                && d.contains("+        server app2:3000 weight=9;")),
        "10 %: {diffs:?}"
    );
    assert_eq!(stack.conf(), before, "every weight back as written");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
    assert!(load.total > 100, "{load:?}");
    assert_eq!(load.failed, 0, "{load:?}");
}

#[test]
fn a_canary_paused_at_its_share_serves_exactly_that_share_and_rollback_undoes_the_deploy() {
    let stack = Stack::up("canarypause");
    let before = stack.conf();
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    let load = stack.load("/", LOAD_SECONDS, 16, "get-keepalive");
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--canary-weights",
        "10,50",
        "--canary-pause",
        "--monitor",
        "0s",
    ]);
    let load = load.stop();
    assert_eq!(out.status.code(), Some(3), "paused: {}", text(&out));
    assert_eq!(load.failed, 0, "{load:?}");
    assert!(
        String::from_utf8(stack.conf())
            .unwrap()
            .contains("        server app1:3000 weight=1;\n        server app2:3000 weight=9;\n"),
        "10 %"
    );
    // One worker, smooth weighted round-robin: any 20 requests in a row are
    // two periods of 1 + 9, so the new app1 answers exactly 2.
    assert_eq!(
        answers(&stack, 20),
        BTreeMap::from([(body_of("app1", "v2"), 2), (body_of("app2", "v1"), 18)]),
        "10 % to the canary"
    );

    let load = stack.load("/", LOAD_SECONDS, 16, "get-keepalive");
    let out = stack.tool(&["rollback", "apps", "--yes"]);
    let load = load.stop();
    assert_ok(&out);
    assert_eq!(load.failed, 0, "{load:?}");
    assert!(load.total > 0, "{load:?}");
    assert_eq!(stack.conf(), before, "every weight back as written");
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
    assert_eq!(
        history(&stack),
        [
            ("deploy".into(), "rolled-back".into()),
            ("rollback".into(), "done".into())
        ]
    );
}
