//! `--output json`: every line a real deploy prints validates against
//! docs/events.schema.json, and the events come in a well-formed order.

use crate::support::stack::Stack;
use crate::support::{assert_ok, assert_valid, json_lines, results, validator};
use serde_json::{Value, json};

fn kind(e: &Value) -> &str {
    e["event"].as_str().unwrap_or("?")
}

/// Checks the order: each run is `plan` … `summary` (a rollback nests its own run
/// after the `rollback` event); each `step-start` is closed by its `step-finish`
/// before the next step starts; waits and reloads happen inside a step.
/// Returns the kinds of the runs' plans, in order.
fn assert_sequence(events: &[Value]) -> Vec<String> {
    let mut runs: Vec<Option<u64>> = Vec::new(); // per open run: the step running
    let mut plans = Vec::new();
    for (n, e) in events.iter().enumerate() {
        let at = format!("line {}: {e}", n + 1);
        match kind(e) {
            "plan" => {
                if let Some(open) = runs.last() {
                    assert!(open.is_none(), "a plan inside a step, {at}");
                    assert_eq!(
                        kind(&events[n - 1]),
                        "rollback",
                        "a nested plan must follow a rollback event, {at}"
                    );
                }
                plans.push(e["kind"].as_str().unwrap().to_string());
                runs.push(None);
            }
            "summary" => {
                let open = runs
                    .pop()
                    .unwrap_or_else(|| panic!("summary outside a run, {at}"));
                assert!(open.is_none(), "summary while step {open:?} runs, {at}");
            }
            "step-start" => {
                let run = runs
                    .last_mut()
                    .unwrap_or_else(|| panic!("step outside a run, {at}"));
                assert!(run.is_none(), "step started while step {run:?} runs, {at}");
                *run = Some(e["step"]["index"].as_u64().unwrap());
            }
            "step-finish" => {
                let run = runs
                    .last_mut()
                    .unwrap_or_else(|| panic!("step outside a run, {at}"));
                let index = e["index"].as_u64().unwrap();
                match run.take() {
                    Some(started) => assert_eq!(started, index, "finish of another step, {at}"),
                    None => assert_eq!(e["result"], "skipped", "finish without start, {at}"),
                }
            }
            "wait" | "reload" => {
                let run = runs
                    .last()
                    .unwrap_or_else(|| panic!("{} outside a run, {at}", kind(e)));
                assert!(run.is_some(), "{} outside a step, {at}", kind(e));
                if kind(e) == "wait" {
                    assert_eq!(*run, e["index"].as_u64(), "wait for another step, {at}");
                }
            }
            _ => assert!(!runs.is_empty(), "event outside a run, {at}"),
        }
    }
    assert!(runs.is_empty(), "runs left open: {runs:?}");
    assert_eq!(kind(&events[0]), "plan");
    assert_eq!(kind(events.last().unwrap()), "summary");
    plans
}

#[test]
fn schema_rejects_what_the_tool_must_not_print() {
    let v = validator();
    let ok =
        json!({"event": "rollback", "reason": "r", "v": 1, "time": "2026-01-02T03:04:05.678Z"});
    assert!(v.is_valid(&ok));
    for bad in [
        json!({"event": "rollback", "reason": "r", "v": 2, "time": "2026-01-02T03:04:05.678Z"}),
        json!({"event": "rollback", "reason": "r", "v": 1}),
        json!({"event": "rollback", "v": 1, "time": "2026-01-02T03:04:05.678Z"}),
        json!({"event": "rollback", "reason": "r", "extra": 1, "v": 1, "time": "2026-01-02T03:04:05.678Z"}),
        json!({"event": "nonsense", "v": 1, "time": "2026-01-02T03:04:05.678Z"}),
        json!({"event": "step-finish", "index": 0, "result": "done", "seconds": 1.0, "v": 1, "time": "2026-01-02T03:04:05.678Z"}),
    ] {
        assert!(!v.is_valid(&bad), "accepted {bad}");
    }
}

#[test]
fn a_successful_deploy_prints_only_valid_events_in_order() {
    let v = validator();
    let stack = Stack::up("jsonok");
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--output",
        "json",
        "--monitor",
        "1s",
    ]);
    assert_ok(&out);
    let events = json_lines(&out);
    assert_valid(&v, &events);
    assert_eq!(assert_sequence(&events), ["deploy"]);
    let count = |k: &str| events.iter().filter(|e| kind(e) == k).count();
    let steps = events[0]["plan"]["steps"].as_array().unwrap().len();
    assert_eq!(count("step-start"), steps);
    assert_eq!(count("reload"), 3, "drain app1, swap, restore app2");
    assert!(count("health") >= 2);
    let summary = events.last().unwrap();
    assert_eq!(summary["status"], "done");
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["reloads"], 3);
    assert_eq!(
        results(summary),
        [("app1:3000", "updated"), ("app2:3000", "updated")]
    );
    // Human output stays off stdout.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("revision 1:"));
}

#[test]
fn a_failed_deploy_rolled_back_prints_failure_rollback_and_a_nested_run() {
    let v = validator();
    let stack = Stack::up("jsonfail");
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose(
        "- 'MESSAGE=app2,v1'",
        "- 'MESSAGE=app2,v2'\n      - 'FAIL_HEALTH=1'",
    );
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--output",
        "json",
        "--monitor",
        "0s",
        "--health-timeout",
        "8s",
        "--failure-action",
        "rollback",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&out);
    assert_valid(&v, &events);
    assert_eq!(assert_sequence(&events), ["deploy", "rollback"]);
    let failure = events
        .iter()
        .find(|e| kind(e) == "failure")
        .expect("a failure event");
    assert_eq!(failure["server"], "app2:3000");
    assert!(events.iter().any(|e| kind(e) == "rollback"));
    let summary = events.last().unwrap();
    assert_eq!(summary["status"], "rolled-back");
    assert_eq!(summary["exit_code"], 1);
    // Back to v1 everywhere.
    assert_eq!(
        stack.bodies(8),
        ["Hi there, I love ! app1,v1", "Hi there, I love ! app2,v1"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}
