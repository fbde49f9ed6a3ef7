//! Faults of the live system during a rollout: the nginx container
//! restarted by someone else (its master and workers change under the
//! reload protocol), and the state directory's disk full when the journal is
//! written. For each: nothing lost, a clear message, and `status` + `resume`
//! reach a consistent state. (dockerd restarted mid-rollout has its own test
//! binary, `tests/daemon_restart`: it would break every test running beside it.)
use std::process::Child;

use crate::support::stack::{Stack, app_bodies};
use crate::support::tmpfs::Tmpfs;
use crate::support::{assert_ok, docker, spawn_piped, text};

/// [`Stack::slow_deploy_cmd`] to `version` with the state directory `state`.
fn slow_deploy(stack: &Stack, version: &str, state: &std::path::Path) -> Child {
    spawn_piped(
        stack
            .slow_deploy_cmd(version)
            .env("NGINX_ROLLOUT_STATE_DIR", state),
    )
}

/// `status --output json` with the state directory `state`.
fn status(stack: &Stack, state: &std::path::Path) -> serde_json::Value {
    let out = stack
        .tool_cmd(&["status", "--output", "json"])
        .env("NGINX_ROLLOUT_STATE_DIR", state)
        .output()
        .unwrap();
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The nginx master's pid as the host sees it.
fn nginx_pid(stack: &Stack) -> String {
    docker(&["inspect", "-f", "{{.State.Pid}}", &stack.container("nginx")])
}

#[test]
fn nginx_restarted_by_someone_else_mid_rollout_ends_consistent() {
    let stack = Stack::up("ngxrestart");
    let state = stack.path().join("state");
    let before = nginx_pid(&stack);
    let conf_before = stack.conf();
    let deploy = slow_deploy(&stack, "v2", &state);
    // app1's drain was just written: nginx goes away while its reload is
    // being validated or confirmed and comes back with a new master and new
    // workers (reading the file as it is now, app1 down).
    stack.wait_for_drain();
    docker(&["restart", "-t", "1", &stack.container("nginx")]);
    assert_ne!(nginx_pid(&stack), before, "nginx was restarted");
    let out = deploy.wait_with_output().unwrap();
    if !out.status.success() {
        // Caught with nginx down: the step fails naming the container and why.
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&stack.container("nginx")) && stderr.contains("not running"),
            "the error names the nginx container and that it was not running: {stderr}"
        );
        let s = status(&stack, &state);
        if stderr.contains("the config was restored byte for byte") {
            // Caught before nginx loaded the edit (while `nginx -t` ran): the
            // drain is undone byte for byte, nothing is left to resume, and
            // the deploy runs again from the start.
            assert_eq!(stack.conf(), conf_before, "{stderr}");
            assert!(s["unfinished"].is_null(), "nothing unfinished: {s}");
            assert_ok(
                &slow_deploy(&stack, "v2", &state)
                    .wait_with_output()
                    .unwrap(),
            );
        } else {
            // Caught after: the journal keeps the rollout, `resume` finishes it.
            assert_eq!(s["unfinished"]["revision"], 1, "{s}");
            let out = stack
                .tool_cmd(&["resume", "--yes"])
                .env("NGINX_ROLLOUT_STATE_DIR", &state)
                .output()
                .unwrap();
            assert_ok(&out);
        }
    }
    let conf = String::from_utf8(stack.conf()).unwrap();
    assert!(!conf.contains(" down"), "no server left drained: {conf}");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
    let s = status(&stack, &state);
    assert!(s["unfinished"].is_null(), "nothing unfinished: {s}");
    // The restarted nginx serves the file the host has.
    let test = docker(&["exec", &stack.container("nginx"), "nginx", "-T"]);
    assert!(test.contains("server app1:3000;"), "{test}");
}

#[test]
fn a_full_state_disk_stops_the_rollout_journaled_and_resume_finishes_it() {
    let stack = Stack::up("diskfull");
    let disk = Tmpfs::mount(&stack.path().join("small"), 512);
    let state = disk.path().join("state");
    let conf_before = stack.conf();
    let load = stack.load("/", 25, 16, "get-keepalive");

    // The disk fills while app1 is drained: the next journal write fails,
    // and the rollout stops there instead of going on unjournaled.
    let deploy = slow_deploy(&stack, "v2", &state);
    stack.wait_for_drain();
    let filler = disk.fill();
    let out = deploy.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No space left on device") && stderr.contains(&*state.to_string_lossy()),
        "the error names the cause and the state directory: {stderr}"
    );
    let s = status(&stack, &state);
    assert_eq!(s["unfinished"]["revision"], 1, "{s}");
    // Every request was served by the server left in the upstream.
    let result = load.stop();
    assert_eq!(result.failed, 0, "{result:?}");

    // Space again: resume finishes the rollout from the journal.
    std::fs::remove_file(&filler).unwrap();
    let out = stack
        .tool_cmd(&["resume", "--yes"])
        .env("NGINX_ROLLOUT_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(stack.conf(), conf_before, "no server left drained");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
    assert!(status(&stack, &state)["unfinished"].is_null());

    // A disk already full: the next deploy starts nothing at all.
    let filler = disk.fill();
    let out = slow_deploy(&stack, "v3", &state)
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No space left on device"),
        "{}",
        text(&out)
    );
    assert_eq!(stack.conf(), conf_before, "nothing drained");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
    std::fs::remove_file(&filler).unwrap();
    assert!(status(&stack, &state)["unfinished"].is_null());
}
