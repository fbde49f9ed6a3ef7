//! dockerd restarted in the middle of a rollout. Alone in its own test
//! binary, against a private daemon ([`support::daemon::PrivateDaemon`]):
//! a daemon going away would break every other live test running beside it,
//! and the shared daemon is never stopped.
#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::daemon::PrivateDaemon;
use support::stack::{Stack, app_bodies};
use support::{assert_ok, spawn_piped, text};

/// Waits (bounded) until app1's replacement (`MESSAGE=app1,v2`) exists: it
/// is starting (3 s) and the rollout waits for it to become healthy.
fn wait_for_replacement(stack: &Stack) {
    let start = Instant::now();
    let app1 = stack.container("app1");
    loop {
        let env = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.Config.Env}}", &app1])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&env.stdout).contains("MESSAGE=app1,v2") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "app1 was not replaced within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dockerd_restarted_mid_rollout_stops_it_clearly_and_resume_finishes_it() {
    if support::skip() {
        return;
    }
    let mut daemon = PrivateDaemon::start();
    // SAFETY: this binary's only test sets it before starting any thread of
    // its own; compose, docker and the tool inherit it.
    unsafe { std::env::set_var("DOCKER_HOST", daemon.host()) };
    let stack = Stack::up("dockerdrestart");
    let conf_before = stack.conf();
    let deploy = spawn_piped(&mut stack.slow_deploy_cmd("v2"));

    // app1 is drained and its replacement is starting: the daemon goes away
    // (its containers stay, --live-restore) until the rollout has given up.
    wait_for_replacement(&stack);
    daemon.stop();
    let out = deploy.wait_with_output().unwrap();
    daemon.restart();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Docker daemon"),
        "the error says the daemon went away: {}\n{}",
        text(&out),
        daemon.log_tail()
    );

    let out = stack.tool(&["status", "--output", "json"]);
    assert_ok(&out);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["unfinished"]["revision"], 1, "{status}");

    let out = stack.tool(&["resume", "--yes"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), conf_before, "no server left drained");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
    let out = stack.tool(&["status", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["unfinished"].is_null(), "{status}");
}
