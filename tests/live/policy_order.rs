//! start-first on a single-server upstream, a start-first deploy interrupted
//! after its swap and resumed, or before it and rolled back, an operator's
//! container named like a replacement, and parallelism, against the real
//! Docker engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use crate::support::stack::{
    Stack, app_bodies, engine_deploy, engine_deploy_json, set_app_servers,
};
use crate::support::{APP_IMAGE, assert_ok, docker, inspect, text};

/// Live (not `down`) server lines of the upstream.
fn live_servers(conf: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(conf)
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("server ")
                && l.ends_with(';')
                && !l.contains(" down")
                && !l.contains("listen")
        })
        .filter(|l| !l.starts_with("server_name"))
        .map(|l| {
            l.trim_start_matches("server ")
                .trim_end_matches(';')
                .to_string()
        })
        .collect()
}

/// Containers of the project whose name starts with `prefix`.
fn containers(prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("name={prefix}"),
        ])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

#[test]
fn start_first_on_one_server_never_drops_to_zero_and_alternates_names() {
    let stack = Stack::up_with("startfirst", |dir| set_app_servers(dir, 1));
    let app = stack.container("app1");
    assert_eq!(live_servers(&stack.conf()), ["app1:3000"]);
    // stop-first is refused on a single live server.
    let out = stack.tool(&engine_deploy(&["--env", "MESSAGE={{service}},v2"]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("start-first"));

    // The load first: it waits for the daemon to itself, and the watcher's
    // time bound must cover the deploys, not that wait.
    let load = stack.load("/", 25, 16, "get-keepalive");
    let stop = Arc::new(AtomicBool::new(false));
    let min_live = Arc::new(AtomicUsize::new(usize::MAX));
    let watcher = {
        let (stop, min_live, path) = (stop.clone(), min_live.clone(), stack.conf_path());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed().as_secs() < 180 {
                // The tool rewrites the file in place (truncate, write): a read
                // between the two sees a torn file that nginx never loads (the
                // reload comes after the write). Count only whole files.
                let bytes = std::fs::read(&path).unwrap();
                if bytes.trim_ascii_end().ends_with(b"}") {
                    let n = live_servers(&bytes).len();
                    min_live.fetch_min(n, Ordering::SeqCst);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    let start_first = |version: &str| {
        let message = format!("MESSAGE=app1,{version}");
        let out = stack.tool(&engine_deploy(&[
            "--order",
            "start-first",
            "--env",
            &message,
            "--monitor",
            "0s",
        ]));
        assert_ok(&out);
    };
    start_first("v2");
    assert_eq!(live_servers(&stack.conf()), [format!("{app}-b:3000")]);
    assert_eq!(stack.bodies(4), app_bodies(1, "v2"));
    start_first("v3");
    let load = load.stop();
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    assert_eq!(
        live_servers(&stack.conf()),
        [format!("{app}:3000")],
        "the name alternates back"
    );
    assert_eq!(
        containers(&app),
        std::slice::from_ref(&app),
        "the old containers are gone"
    );
    assert_eq!(stack.bodies(4), app_bodies(1, "v3"));
    assert_eq!(
        min_live.load(Ordering::SeqCst),
        1,
        "never zero live servers"
    );
    assert!(load.total > 100, "{load:?}");
    assert_eq!(load.failed, 0, "{load:?}");
}

/// Deploys v2 to a 4-server stack with `parallelism`; returns the wall time.
fn timed_deploy(name: &str, parallelism: &str) -> f64 {
    let stack = Stack::up_with(name, |dir| set_app_servers(dir, 4));
    let start = Instant::now();
    let out = stack.tool(&engine_deploy(&[
        "--env",
        "MESSAGE={{service}},v2",
        "--parallelism",
        parallelism,
        "--monitor",
        "0s",
    ]));
    let seconds = start.elapsed().as_secs_f64();
    assert_ok(&out);
    assert_eq!(stack.bodies(16), app_bodies(4, "v2"));
    seconds
}

#[test]
fn parallelism_2_and_1_both_update_four_servers() {
    let one = timed_deploy("par1", "1");
    let two = timed_deploy("par2", "2");
    eprintln!(
        "4 servers: parallelism 1 took {one:.1} s, parallelism 2 took {two:.1} s ({:.2}x)",
        one / two
    );
}

/// Deploys v2 start-first with `extra` arguments and interrupts it (SIGINT)
/// as its first `step` (an action's kind) starts: it exits 4.
fn interrupt_start_first_at(stack: &Stack, step: &str, extra: &[&str]) {
    let (code, rest) = signal_start_first_at(stack, step, extra, rustix::process::Signal::INT);
    assert_eq!(code, Some(4), "{rest:?}");
}

/// Sends `signal` to a start-first engine deploy (`MESSAGE={{service}},v2`,
/// `extra` flags) as it starts its first `step`: its exit code and what it
/// printed after that step's start.
fn signal_start_first_at(
    stack: &Stack,
    step: &str,
    extra: &[&str],
    signal: rustix::process::Signal,
) -> (Option<i32>, Vec<String>) {
    let args = [
        &[
            "--order",
            "start-first",
            "--env",
            "MESSAGE={{service}},v2",
            "--monitor",
            "0s",
        ],
        extra,
    ]
    .concat();
    let mut run = crate::support::spawn_piped(&mut stack.tool_cmd(&engine_deploy_json(&args)));
    let lines = crate::support::events_until(&mut run, &format!("the deploy's {step}"), |e| {
        e["event"] == "step-start" && e["step"]["action"]["action"] == step
    });
    crate::support::stop_with(&mut run, lines, signal)
}

/// The flags that make app1's replacement take 3 s to start: a wide window
/// between its create and its swap.
const SLOW_START: &[&str] = &["--env", "STARTUP_DELAY_MS=3000"];

/// `rollback --yes --output json`, which must leave the stack as `before`:
/// the config byte for byte, `app1` running, both servers answering v1.
/// Its summary.
fn rolled_back_to_v1(stack: &Stack, before: &[u8], app1: &str) -> serde_json::Value {
    let out = stack.tool(&["rollback", "--yes", "--output", "json"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "{}", text(&out));
    assert_eq!(
        inspect(app1, "{{.State.Running}}"),
        "true",
        "{}",
        text(&out)
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
    crate::support::summary(&out)
}

#[test]
fn a_start_first_deploy_interrupted_after_its_swap_resumes_by_stopping_the_old_container() {
    let stack = Stack::up("sfresume");
    let app1 = stack.container("app1");
    // SIGINT once app1's line names its replacement, during its pre-stop hook.
    interrupt_start_first_at(&stack, "pre-stop", &["--pre-stop", "sh -c 'sleep 2'"]);
    assert_eq!(
        live_servers(&stack.conf()),
        [format!("{app1}-b:3000"), "app2:3000".into()]
    );
    assert_eq!(
        containers(&app1).len(),
        2,
        "the old app1 is not stopped yet"
    );
    // `status` shows app1's part in the rollout on the line that names its replacement.
    let status = stack.tool(&["status", "--output", "json"]);
    crate::support::assert_ok(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let rollout_of = |line: &str| {
        status["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["server"] == line)
            .map(|r| r["rollout"].clone())
    };
    assert_eq!(
        rollout_of(&format!("{app1}-b:3000")),
        Some("rev 1 Interrupted: healthy (for app1:3000)".into()),
        "{status}"
    );
    // The upstream named with its context is the same upstream.
    let named = stack.tool(&["status", "http:apps", "--output", "json"]);
    crate::support::assert_ok(&named);
    let named: serde_json::Value = serde_json::from_slice(&named.stdout).unwrap();
    assert_eq!(named["servers"], status["servers"], "{named}");

    let out = stack.tool(&["resume", "--yes", "--output", "json"]);
    assert_ok(&out);
    let s = crate::support::summary(&out);
    assert_eq!(s["status"], "done", "{s}");
    assert_eq!(
        crate::support::results(&s),
        [("app1:3000", "updated"), ("app2:3000", "updated")]
    );
    assert_eq!(
        containers(&app1),
        [format!("{app1}-b")],
        "the old app1 is gone"
    );
    let app2 = stack.container("app2");
    assert_eq!(
        live_servers(&stack.conf()),
        [format!("{app1}-b:3000"), format!("{app2}-b:3000")]
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}

/// A container removed (by id, whatever its name by then) when dropped, even on panic.
struct RemovedOnDrop(String);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

#[test]
fn an_operators_container_named_like_the_replacement_refuses_the_deploy_and_still_runs() {
    let stack = Stack::up("sfforeign");
    let before = stack.conf();
    let app1 = stack.container("app1");
    // The operator's own container, under the name app1's replacement would take.
    let theirs = format!("{app1}-b");
    let id = docker(&["run", "-d", "--name", &theirs, APP_IMAGE]);
    let _removed = RemovedOnDrop(id.clone());
    let deploy = engine_deploy(&[
        "--order",
        "start-first",
        "--env",
        "MESSAGE={{service}},v2",
        "--monitor",
        "0s",
    ]);
    let out = stack.tool(&deploy);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for named in ["app1:3000", theirs.as_str(), &id[..12], "rename"] {
        assert!(stderr.contains(named), "names {named}: {stderr}");
    }
    assert_eq!(
        inspect(&id, "{{.State.Running}}|{{.Name}}"),
        format!("true|/{theirs}"),
        "the operator's container is left as it was"
    );
    assert_eq!(stack.conf(), before, "nothing ran");
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));

    // Renamed out of the way, it stays the operator's: the deploy goes through.
    let mine = format!("{app1}-mine");
    docker(&["rename", &theirs, &mine]);
    assert_ok(&stack.tool(&deploy));
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
    assert_eq!(
        inspect(&id, "{{.State.Running}}|{{.Name}}"),
        format!("true|/{mine}")
    );
}

#[test]
fn a_start_first_deploy_killed_before_its_swap_is_closed_by_rollback_which_removes_its_replacement()
{
    let stack = Stack::up("sfkillrb");
    let before = stack.conf();
    let app1 = stack.container("app1");
    let app1_id = inspect(&app1, "{{.Id}}");
    // kill -9 while app1's replacement runs, not yet healthy nor swapped in:
    // nothing removes it as the run stops.
    let (code, _) = signal_start_first_at(
        &stack,
        "wait-healthy",
        SLOW_START,
        rustix::process::Signal::KILL,
    );
    assert_eq!(code, None, "killed");
    let replacement = format!("{app1}-b");
    assert_eq!(containers(&app1), [app1.clone(), replacement.clone()]);
    // The rollback's plan says so; a dry run removes nothing.
    let dry = stack.tool(&["rollback", "--dry-run"]);
    assert_ok(&dry);
    let shown = text(&dry);
    assert!(
        shown.contains(&format!("its replacement {replacement}"))
            && shown.contains("never put into nginx by the run that made it, is removed; the server is as the rollout found it"),
        "{shown}"
    );
    assert_eq!(containers(&app1).len(), 2);
    // Before: the rollback (stop-first) recreated the untouched app1 and left
    // its replacement running outside nginx.
    let summary = rolled_back_to_v1(&stack, &before, &app1);
    assert_eq!(summary["closed"], true, "{summary}");
    assert_eq!(containers(&app1), std::slice::from_ref(&app1));
    assert_eq!(
        inspect(&app1, "{{.Id}}"),
        app1_id,
        "the old app1 served throughout, untouched"
    );
}

#[test]
fn a_start_first_deploy_of_a_dead_server_killed_or_stopped_before_its_swap_is_rolled_back_with_its_line()
 {
    let stack = Stack::up("sfkilldead");
    let before = stack.conf();
    let app1 = stack.container("app1");
    docker(&["kill", &app1]);
    // app1's line pinned to nowhere, then kill -9 in its replacement's health wait.
    let (code, _) = signal_start_first_at(
        &stack,
        "wait-healthy",
        SLOW_START,
        rustix::process::Signal::KILL,
    );
    assert_eq!(code, None, "killed");
    let pinned = String::from_utf8(stack.conf()).unwrap();
    assert!(pinned.contains("server 192.0.2.1:3000 down;"), "{pinned}");
    assert_eq!(containers(&app1).len(), 2);
    // The replacement goes, and app1 is not untouched: its line is pinned, so
    // the rollback brings it back (before: the rollback skipped it as
    // untouched and the line stayed pinned).
    rolled_back_to_v1(&stack, &before, &app1);
    assert_eq!(containers(&app1), std::slice::from_ref(&app1));
    // The same stopped by a signal: the run removes its replacement itself,
    // and leaves the pinned line for the rollback to bring back.
    docker(&["kill", &app1]);
    interrupt_start_first_at(&stack, "wait-healthy", SLOW_START);
    assert_eq!(containers(&app1), std::slice::from_ref(&app1));
    assert_ne!(stack.conf(), before, "pinned to nowhere");
    rolled_back_to_v1(&stack, &before, &app1);
}

#[test]
fn a_start_first_deploy_interrupted_before_its_swap_removes_its_replacement_and_rollback_closes_it()
{
    let stack = Stack::up("sfintrb");
    let before = stack.conf();
    let app1 = stack.container("app1");
    // SIGINT while app1's replacement runs, not yet healthy nor swapped in.
    interrupt_start_first_at(&stack, "wait-healthy", SLOW_START);
    assert_eq!(
        containers(&app1),
        std::slice::from_ref(&app1),
        "its replacement, never put into nginx, is removed as the run stops"
    );
    // Nothing of app1 changed (nor of app2, never begun): the rollback closes it.
    // The old app1 served throughout, untouched.
    let summary = rolled_back_to_v1(&stack, &before, &app1);
    assert_eq!(summary["closed"], true, "{summary}");
    // Nothing of the rollout is left in the way of the next start-first deploy.
    assert_ok(&stack.tool(&engine_deploy(&[
        "--order",
        "start-first",
        "--env",
        "MESSAGE={{service}},v3",
        "--monitor",
        "0s",
    ])));
    assert_eq!(stack.bodies(8), app_bodies(2, "v3"));
}
