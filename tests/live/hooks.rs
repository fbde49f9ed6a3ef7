//! Hooks against the real daemon: `--pre-deploy` in a one-off container of
//! the new spec before anything is touched, `--pre-stop` in each old
//! container and `--post-start` in each new one (seen in a directory the
//! containers share with the test), a failing pre-deploy that changes
//! nothing, a failing post-start rolled back, a run killed inside a hook
//! step then resumed, and one killed inside its pre-deploy closed by
//! `rollback` or resumed (both wait for its command to end). Compose's own
//! `post_start` / `pre_stop` cannot be run here: the compose on this machine
//! (v1) rejects files that have them; their parsing and planning are
//! unit-tested (`backends::compose`, `plan::tests::hooks`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::stack::{Stack, app_bodies};
use crate::support::{assert_ok, assert_valid, docker, inspect, json_lines, text, validator};
use serde_json::Value;

/// The `hook` events of a JSON run: (hook, container, exit code, output).
fn hook_events(events: &[Value]) -> Vec<(String, String, i64, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "hook")
        .map(|e| {
            (
                e["hook"].as_str().unwrap().to_string(),
                e["container"].as_str().unwrap().to_string(),
                e["exit_code"].as_i64().unwrap(),
                e["output"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The action kinds of the steps a JSON run started, in order.
fn started_steps(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "step-start")
        .map(|e| e["step"]["action"]["action"].as_str().unwrap().to_string())
        .collect()
}

/// Containers whose name contains `part`, stopped ones too.
fn containers_named(part: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={part}"),
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// The seed stack with `./hooks` mounted at `/hooks` in app1 and app2, so
/// that hooks leave a trace the test can read.
fn stack_with_hooks_dir(name: &str) -> Stack {
    Stack::up_with(name, |dir| {
        let file = dir.join("docker-compose.yml");
        let yml = std::fs::read_to_string(&file).unwrap();
        let grace = "    stop_grace_period: 10s\n";
        assert_eq!(yml.matches(grace).count(), 2, "app1 and app2 end so");
        let yml = yml.replace(
            grace,
            &format!("{grace}    volumes:\n      - ./hooks:/hooks\n"),
        );
        std::fs::write(&file, yml).unwrap();
        std::fs::create_dir(dir.join("hooks")).unwrap();
    })
}

fn hooks_log(stack: &Stack) -> PathBuf {
    stack.path().join("hooks/log")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A container's hostname as Docker gives it: the first 12 hex digits of its id.
fn short_id(container: &str) -> String {
    inspect(container, "{{.Id}}")[..12].to_string()
}

/// Appends `WHAT $MESSAGE $(hostname)` to the shared log.
fn log_hook(what: &str) -> String {
    format!("sh -c 'echo \"{what} $MESSAGE $(hostname)\" >> /hooks/log'")
}

/// `sh -c 'FIRST; …'` that then waits, at most 10 s, for the test's
/// go-ahead (`/hooks/go`).
fn until_go(first: &str) -> String {
    format!(
        "sh -c '{first}; i=0; until [ -e /hooks/go ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done'"
    )
}

/// Runs `args` and kills it (SIGKILL) once a line of the shared log says
/// `logged` (at most 60 s).
fn kill_once_logged(stack: &Stack, args: &[&str], logged: impl Fn(&str) -> bool) {
    let log = hooks_log(stack);
    let mut child = stack
        .tool_cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !lines(&log).iter().any(|l| logged(l)) {
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("not logged within 60 s: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A deploy of v2 with `extra` arguments killed inside its pre-deploy,
/// whose command goes on until the test's go-ahead; its one-off's name.
fn killed_inside_pre_deploy(stack: &Stack, extra: &[&str]) -> String {
    let pre_deploy = until_go("echo pre-deploy >> /hooks/log");
    let args = [
        &[
            "deploy",
            "apps",
            "--yes",
            "--env",
            "MESSAGE={{service}},v2",
            "--pre-deploy",
            &pre_deploy,
        ],
        extra,
    ]
    .concat();
    kill_once_logged(stack, &args, |l| l == "pre-deploy");
    format!("{}-nr-pre-deploy", stack.container("app1"))
}

/// Asserts that `command` refuses while the killed run's pre-deploy command
/// still runs, then lets it end and waits (at most 30 s) until it has.
fn refused_until_the_one_off_ends(stack: &Stack, command: &str, one_off: &str) {
    let refused = stack.tool(&[command, "--yes"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("still runs"),
        "{}",
        text(&refused)
    );
    assert_eq!(containers_named(one_off), [one_off]);
    std::fs::write(stack.path().join("hooks/go"), "").unwrap();
    let start = Instant::now();
    while inspect(one_off, "{{.State.Running}}") == "true" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{one_off} still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pre_deploy_first_then_pre_stop_in_each_old_container_and_post_start_in_each_new_one() {
    let stack = stack_with_hooks_dir("hookrun");
    let (app1, app2) = (stack.container("app1"), stack.container("app2"));
    let old = [short_id(&app1), short_id(&app2)];
    let pre_deploy = "sh -c 'echo \"pre-deploy $MESSAGE\" | tee -a /hooks/log'";
    let (pre_stop, post_start) = (log_hook("pre-stop"), log_hook("post-start"));
    let args = [
        "apps",
        "--monitor",
        "0s",
        "--image",
        "nginx-rollout-fixture/app:v2",
        "--env",
        "MESSAGE={{service}},v2",
        "--pre-deploy",
        pre_deploy,
        "--pre-stop",
        &pre_stop,
        "--post-start",
        &post_start,
    ];

    // The dry run shows every hook as a step, naming container and command.
    let plan = stack.tool(&[&["plan"], &args[..]].concat());
    assert_ok(&plan);
    let shown = String::from_utf8_lossy(&plan.stdout);
    let hook_lines = |kind: &str| -> Vec<String> {
        shown
            .lines()
            .filter(|l| l.contains(&format!("] {kind} ")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(hook_lines("pre-deploy").len(), 1, "{shown}");
    assert_eq!(hook_lines("pre-stop").len(), 2, "{shown}");
    assert_eq!(hook_lines("post-start").len(), 2, "{shown}");
    assert!(
        hook_lines("pre-stop")[0].contains(&format!("in {app1}: `{pre_stop}` (flag --pre-stop)")),
        "{shown}"
    );
    assert!(
        hook_lines("post-start")[1]
            .contains(&format!("in {app2}: `{post_start}` (flag --post-start)")),
        "{shown}"
    );
    assert!(
        lines(&hooks_log(&stack)).is_empty(),
        "a dry run runs nothing"
    );

    let out = stack.tool(&[&["deploy", "--yes", "--output", "json"], &args[..]].concat());
    assert_ok(&out);
    let events = json_lines(&out);
    assert_valid(&validator(), &events);
    let planned: Vec<String> = events[0]["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"]["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(started_steps(&events), planned, "every planned step ran");
    // Per server: drained and nginx's old workers gone before its pre-stop,
    // its pre-stop before it is replaced, its post-start before its health.
    let kinds: Vec<&str> = planned.iter().map(String::as_str).collect();
    assert_eq!(kinds[0], "pre-deploy", "first of all: {kinds:?}");
    let server = [
        "edit",
        "reload",
        "wait-drained",
        "pre-stop",
        "recreate",
        "post-start",
        "wait-healthy",
    ];
    for n in 0..2 {
        let at = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == "pre-stop")
            .nth(n)
            .unwrap()
            .0;
        assert_eq!(kinds[at - 3..at + 4], server, "{kinds:?}");
    }
    let one_off = format!("{app1}-nr-pre-deploy");
    let new = [short_id(&app1), short_id(&app2)];
    assert_ne!(old, new, "new containers");
    assert_eq!(
        hook_events(&events),
        [
            (
                "pre-deploy".into(),
                one_off.clone(),
                0,
                "pre-deploy app1,v2".into()
            ),
            ("pre-stop".into(), app1.clone(), 0, String::new()),
            ("post-start".into(), app1.clone(), 0, String::new()),
            ("pre-stop".into(), app2.clone(), 0, String::new()),
            ("post-start".into(), app2.clone(), 0, String::new()),
        ]
    );
    let job = &events[0]["plan"]["steps"][0]["action"]["job"];
    assert_eq!(job["image"], "nginx-rollout-fixture/app:v2", "{job}");
    // What ran where: the pre-deploy with the new environment (and the
    // volumes: it wrote the shared log), each pre-stop in the old container
    // (old environment, old id), each post-start in the new one.
    assert_eq!(
        lines(&hooks_log(&stack)),
        [
            "pre-deploy app1,v2".to_string(),
            format!("pre-stop app1,v1 {}", old[0]),
            format!("post-start app1,v2 {}", new[0]),
            format!("pre-stop app2,v1 {}", old[1]),
            format!("post-start app2,v2 {}", new[1]),
        ]
    );
    assert!(containers_named(&one_off).is_empty(), "one-off removed");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}

#[test]
fn a_failing_pre_deploy_changes_nothing() {
    let stack = Stack::up("hookpre");
    let ids = |s: &Stack| ["app1", "app2"].map(|c| inspect(&s.container(c), "{{.Id}}"));
    let (conf, inode, before) = (stack.conf(), stack.conf_inode(), ids(&stack));
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--env",
        "MESSAGE={{service}},v2",
        "--pre-deploy",
        "sh -c 'echo applying 0042; echo relation users does not exist >&2; exit 3'",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pre-deploy hook `sh -c")
            && stderr.contains("exited with code 3")
            && stderr.contains("relation users does not exist")
            && stderr.contains("no server was touched"),
        "{stderr}"
    );
    assert_eq!(stack.conf(), conf, "the config is byte for byte as it was");
    assert_eq!(stack.conf_inode(), inode);
    assert_eq!(ids(&stack), before, "the same containers");
    assert!(
        containers_named(&format!("{}-nr-pre-deploy", stack.container("app1"))).is_empty(),
        "the one-off container is removed"
    );
    let history = stack.tool(&["history", "apps"]);
    assert_ok(&history);
    assert!(
        String::from_utf8_lossy(&history.stdout).contains("rejected"),
        "nothing to resume or roll back: {}",
        text(&history)
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
}

#[test]
fn a_failing_post_start_hook_with_failure_action_rollback_rolls_back() {
    let stack = Stack::up("hookfail");
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--monitor",
        "0s",
        "--failure-action",
        "rollback",
        "--env",
        "MESSAGE={{service}},v2",
        "--post-start",
        "sh -c 'echo cache cold >&2; exit 7'",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("post-start hook `sh -c 'echo cache cold >&2; exit 7'` (flag --post-start)")
            && stderr.contains("exited with code 7")
            && stderr.contains("cache cold"),
        "the failure names the hook, its exit code and its output:\n{stderr}"
    );
    assert!(stderr.contains("rolled-back"), "{stderr}");
    // The rollback restored what compose had made; it runs no hook, since
    // no hooks are known for that definition.
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
    assert!(
        !String::from_utf8_lossy(&stack.conf()).contains(" down"),
        "every server back in the upstream"
    );
}

#[test]
fn a_run_killed_inside_a_post_start_hook_resumes_without_rerunning_the_pre_deploy() {
    let stack = stack_with_hooks_dir("hookresume");
    let log = hooks_log(&stack);
    // The first post-start waits for the test's go-ahead (bounded by --hook-timeout).
    let post_start = until_go(r#"echo "post-start $MESSAGE $(hostname)" >> /hooks/log"#);
    kill_once_logged(
        &stack,
        &[
            "deploy",
            "apps",
            "--yes",
            "--monitor",
            "0s",
            "--env",
            "MESSAGE={{service}},v2",
            "--pre-deploy",
            "sh -c 'echo pre-deploy >> /hooks/log'",
            "--post-start",
            &post_start,
            "--hook-timeout",
            "20s",
        ],
        |l| l.starts_with("post-start app1"),
    );
    std::fs::write(stack.path().join("hooks/go"), "").unwrap();

    let status = stack.tool(&["status", "--output", "json"]);
    assert_ok(&status);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["unfinished"]["status"], "running", "{status}");

    let out = stack.tool(&["resume", "--yes", "--output", "json"]);
    assert_ok(&out);
    let events = json_lines(&out);
    assert_valid(&validator(), &events);
    let steps = started_steps(&events);
    assert!(
        !steps.iter().any(|s| s == "pre-deploy"),
        "a pre-deploy that finished is not run again: {steps:?}"
    );
    // The killed post-start of app1 runs again, then app2's.
    let hooks: Vec<(String, String, i64)> = hook_events(&events)
        .into_iter()
        .map(|(kind, container, code, _)| (kind, container, code))
        .collect();
    assert_eq!(
        hooks,
        [
            ("post-start".into(), stack.container("app1"), 0),
            ("post-start".into(), stack.container("app2"), 0)
        ]
    );
    let log = lines(&log);
    assert_eq!(
        log.iter().filter(|l| *l == "pre-deploy").count(),
        1,
        "{log:?}"
    );
    // Each server's post-start ran in the container that serves it now.
    for service in ["app1", "app2"] {
        let now = format!(
            "post-start {service},v2 {}",
            short_id(&stack.container(service))
        );
        assert!(log.contains(&now), "{now} in {log:?}");
    }
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
    let status = stack.tool(&["status", "--output", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["unfinished"].is_null(), "{status}");
}

#[test]
fn a_run_killed_inside_its_pre_deploy_is_closed_by_rollback_which_removes_the_one_off() {
    let stack = stack_with_hooks_dir("hookclose");
    let ids = |s: &Stack| ["app1", "app2"].map(|c| inspect(&s.container(c), "{{.Id}}"));
    let (conf, before) = (stack.conf(), ids(&stack));
    let one_off = killed_inside_pre_deploy(&stack, &[]);
    assert_eq!(
        containers_named(&one_off),
        [one_off.as_str()],
        "left by the kill"
    );
    // Its command still runs: the close waits for it, it does not cut it short.
    refused_until_the_one_off_ends(&stack, "rollback", &one_off);
    // A dry run shows the close and removes nothing.
    let dry = stack.tool(&["rollback", "--dry-run", "--output", "json"]);
    assert_ok(&dry);
    let planned = json_lines(&dry);
    assert_eq!(planned.len(), 1, "{planned:?}");
    assert_eq!(planned[0]["plan"]["steps"].as_array().unwrap().len(), 0);
    assert_eq!(containers_named(&one_off), [one_off.as_str()]);

    let out = stack.tool(&["rollback", "--yes", "--output", "json"]);
    assert_ok(&out);
    let events = json_lines(&out);
    assert_valid(&validator(), &events);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["plan", "summary"], "{events:?}");
    assert_eq!(events[0]["kind"], "rollback");
    assert_eq!(events[0]["plan"]["steps"].as_array().unwrap().len(), 0);
    let summary = &events[1];
    assert_eq!(summary["status"], "cancelled", "{summary}");
    assert_eq!(
        (&summary["closed"], &summary["exit_code"]),
        (&true.into(), &0.into()),
        "the exit code that follows"
    );
    assert_eq!(summary["reloads"], 0);
    let results: Vec<&str> = (summary["servers"].as_array().unwrap().iter())
        .map(|s| s["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["pending", "pending"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("changed no server") && stderr.contains(&one_off),
        "{stderr}"
    );
    assert!(
        containers_named(&one_off).is_empty(),
        "the one-off is removed"
    );
    assert_eq!(stack.conf(), conf, "the config is byte for byte as it was");
    assert_eq!(ids(&stack), before, "the same containers");
    let status = stack.tool(&["status", "--output", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["unfinished"].is_null(), "{status}");
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
}

#[test]
fn a_run_killed_inside_its_pre_deploy_resumes_once_the_command_has_ended_and_runs_it_again() {
    let stack = stack_with_hooks_dir("hookagain");
    let log = hooks_log(&stack);
    let one_off = killed_inside_pre_deploy(&stack, &["--monitor", "0s"]);
    // Its command still runs: resume waits for it, it does not cut it short.
    refused_until_the_one_off_ends(&stack, "resume", &one_off);
    let out = stack.tool(&["resume", "--yes"]);
    assert_ok(&out);
    let ran: Vec<String> = lines(&log)
        .into_iter()
        .filter(|l| l == "pre-deploy")
        .collect();
    assert_eq!(
        ran.len(),
        2,
        "the interrupted pre-deploy runs again: {ran:?}"
    );
    assert!(
        containers_named(&one_off).is_empty(),
        "its one-off is removed"
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}
