//! The documented exit codes, each from a real run on the seed stack:
//! 0 done, 1 failed (rolled back), 2 usage/config error, 3 paused,
//! 4 interrupted, 5 lock held.

use std::process::Output;

use crate::support::stack::Stack;
use crate::support::{events_until, spawn_piped, stop_with};

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_flag_is_a_usage_error() {
    let out = std::process::Command::new(crate::support::tool_path())
        .args(["deploy", "apps", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--no-such-flag"));
}

#[test]
fn every_exit_code_from_real_runs() {
    let stack = Stack::up("exitcodes");

    // 2: an upstream the config does not have; the error says where it looked.
    let out = stack.tool(&["deploy", "nope", "--yes"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));

    // A deploy whose first new container takes a while to start: 5 for a second
    // deploy meanwhile, 4 for the first one after SIGTERM.
    stack.edit_compose(
        "- 'MESSAGE=app1,v1'",
        "- 'MESSAGE=app1,v2'\n      - 'STARTUP_DELAY_MS=1500'",
    );
    let mut first = spawn_piped(&mut stack.tool_cmd(&[
        "deploy",
        "apps",
        "--yes",
        "--output",
        "json",
        "--monitor",
        "0s",
    ]));
    let lines = events_until(&mut first, "the deploy reaches the health wait", |event| {
        event["event"] == "wait" && event["what"].as_str().unwrap().contains("healthy")
    });
    let out = stack.tool(&["deploy", "apps", "--yes"]);
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));

    let (exit, rest) = stop_with(&mut first, lines, rustix::process::Signal::TERM);
    assert_eq!(exit, Some(4), "{rest:?}");
    let summary: serde_json::Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(summary["status"], "interrupted");

    // 0: resuming the interrupted rollout finishes it.
    let out = stack.tool(&["resume", "--yes"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stack.bodies(8).contains("Hi there, I love ! app1,v2"));

    // 3: a new container that never becomes healthy pauses the rollout (the default failure action).
    stack.edit_compose(
        "- 'MESSAGE=app2,v1'",
        "- 'MESSAGE=app2,v2'\n      - 'FAIL_HEALTH=1'",
    );
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--monitor",
        "0s",
        "--health-timeout",
        "8s",
    ]);
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    let out = stack.tool(&["rollback", "--yes"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));

    // 1: the same failure with --failure-action rollback: rolled back, failed.
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--monitor",
        "0s",
        "--health-timeout",
        "8s",
        "--failure-action",
        "rollback",
    ]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert_eq!(
        stack.bodies(8),
        ["Hi there, I love ! app1,v2", "Hi there, I love ! app2,v1"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}
