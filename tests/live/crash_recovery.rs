//! Crash safety against the real Docker engine: `kill -9` while a server is
//! drained (then `resume` or `rollback`), SIGTERM, and the per-config lock.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::stack::{Stack, app_bodies, engine_deploy};
use crate::support::{assert_ok, docker, spawn_piped, text};

/// A deploy to v2 whose new containers take 3 s to start: a wide window with a server drained.
fn spawn_slow_deploy(stack: &Stack) -> Child {
    spawn_deploy(stack, &["--env", "STARTUP_DELAY_MS=3000"])
}

/// An engine-mode deploy to v2 with `extra` arguments, output piped.
fn spawn_deploy(stack: &Stack, extra: &[&str]) -> Child {
    let mut args = engine_deploy(&["--env", "MESSAGE={{service}},v2", "--monitor", "0s"]);
    args.extend_from_slice(extra);
    spawn_piped(&mut stack.tool_cmd(&args))
}

fn status(stack: &Stack) -> serde_json::Value {
    let out = stack.tool(&["status", "--output", "json"]);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts a slow deploy and SIGKILLs it while a server is drained.
fn killed_deploy(name: &str) -> (Stack, Vec<u8>) {
    let stack = Stack::up(name);
    let before = stack.conf();
    let mut child = spawn_slow_deploy(&stack);
    stack.wait_for_drain();
    child.kill().unwrap();
    child.wait().unwrap();
    wait_no_kept_shell(&stack);
    let s = status(&stack);
    assert_eq!(
        s["unfinished"]["revision"], 1,
        "status shows the interrupted rollout: {s}"
    );
    assert_eq!(s["unfinished"]["status"], "running", "{s}");
    (stack, before)
}

/// Waits (10 s at most) until the shell the killed deploy ran `nginx -t`
/// through is gone from the nginx container: its stdin closed with the
/// deploy's connection to the daemon.
fn wait_no_kept_shell(stack: &Stack) {
    let nginx = stack.container("nginx");
    let start = Instant::now();
    while docker(&["top", &nginx, "-eo", "pid,args"]).contains("nginx-rollout-test") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the killed deploy's shell still runs in {nginx}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After a killed deploy, `command --yes` leaves every server on `version`,
/// nginx.conf as it was and nothing unfinished.
fn killed_deploy_then(name: &str, command: &str, version: &str) {
    let (stack, before) = killed_deploy(name);
    let out = stack.tool(&[command, "--yes"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "no stray down after {command}");
    assert_eq!(stack.bodies(8), app_bodies(2, version));
    assert!(status(&stack)["unfinished"].is_null());
    // Nothing of ours is left: no replacement made ahead, no parked old container.
    let names = docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label=com.docker.compose.project={}", stack.project),
    ]);
    assert!(!names.contains("-nr-"), "{names}");
}

#[test]
fn kill_9_while_drained_then_resume_finishes_on_v2() {
    killed_deploy_then("kill9res", "resume", "v2");
}

#[test]
fn kill_9_while_drained_then_rollback_ends_on_v1() {
    killed_deploy_then("kill9rb", "rollback", "v1");
}

#[test]
fn sigterm_mid_deploy_exits_4_and_records_every_drained_server() {
    let stack = Stack::up("sigterm");
    let child = spawn_slow_deploy(&stack);
    stack.wait_for_drain();
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let s = status(&stack);
    assert_eq!(s["unfinished"]["status"], "interrupted", "{s}");
    let conf = String::from_utf8(stack.conf()).unwrap();
    for line in conf.lines().filter(|l| l.contains(" down;")) {
        let server = line
            .trim()
            .trim_start_matches("server ")
            .trim_end_matches(" down;");
        let rec = s["unfinished"]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["server"] == server)
            .unwrap_or_else(|| panic!("{server} is down without a record: {s}"));
        assert!(
            rec["state"] != "pending" && rec["state"] != "done",
            "{server} is down but recorded {rec}"
        );
    }
    // What was left is resumable.
    assert_ok(&stack.tool(&["resume", "--yes"]));
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}

#[test]
fn a_second_deploy_is_refused_at_once_naming_the_holder() {
    let stack = Stack::up("lock");
    let first = spawn_slow_deploy(&stack);
    stack.wait_for_drain();
    let out = stack.tool(&engine_deploy(&["--env", "MESSAGE={{service}},v3"]));
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
    let first = first.wait_with_output().unwrap();
    assert_ok(&first);
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}

/// `nginx -t` in the stack's nginx container sleeps 60 s while `/tmp/slow-nginx-t`
/// exists there: a wrapper earlier on PATH than the real binary.
/// Makes `nginx -t` in the stack's nginx container hang for 60 s (it
/// touches `/tmp/nginx-t-hangs` first) while `/tmp/slow-nginx-t` exists.
fn slow_nginx_t(stack: &Stack) {
    // The image has no /usr/local: copy the directory tree in.
    let local = stack.path().join("usr-local");
    std::fs::create_dir_all(local.join("sbin")).unwrap();
    let wrapper = local.join("sbin/nginx");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nif [ -e /tmp/slow-nginx-t ]; then\n  case \" $* \" in *\" -t \"*) : > /tmp/nginx-t-hangs; sleep 60;; esac\nfi\nexec /usr/sbin/nginx \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nginx = stack.container("nginx");
    let dest = format!("{nginx}:/usr/local");
    docker(&["cp", local.to_str().unwrap(), &dest]);
    docker(&["exec", &nginx, "sh", "-c", ": > /tmp/slow-nginx-t"]);
}

/// Waits (60 s at most) until the deploy's `nginx -t` hangs in [`slow_nginx_t`]'s wrapper.
fn wait_for_hanging_nginx_t(stack: &Stack) {
    let nginx = stack.container("nginx");
    let start = Instant::now();
    while !Command::new("docker")
        .args([
            "exec",
            &nginx,
            "busybox",
            "test",
            "-e",
            "/tmp/nginx-t-hangs",
        ])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the deploy's nginx -t did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_between_writing_a_drain_and_reloading_then_resume_reloads_before_stopping() {
    let stack = Stack::up("kill9write");
    let before = stack.conf();
    let workers = stack.nginx_processes();
    slow_nginx_t(&stack);
    let mut child = spawn_deploy(&stack, &[]);
    // Killed once `nginx -t` hangs, not as soon as the drain shows in the
    // file: between its write and the reload step's start the deploy still
    // records the edit step done, and a kill there is resumed from the edit.
    wait_for_hanging_nginx_t(&stack);
    assert!(
        stack.conf().windows(6).any(|w| w == b" down;"),
        "the drain is written"
    );
    // The drain is written and `nginx -t` hangs: nginx still sends that server traffic.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(stack.nginx_processes(), workers, "nginx was not reloaded");
    let nginx = stack.container("nginx");
    docker(&["exec", &nginx, "busybox", "rm", "/tmp/slow-nginx-t"]);

    let load = stack.load("/", 12, 16, "get-close");
    std::thread::sleep(Duration::from_secs(1));
    let out = stack.tool(&["resume", "--yes", "--output", "json"]);
    let load = load.stop();
    assert_ok(&out);
    let kinds: Vec<String> = crate::support::json_lines(&out)
        .iter()
        .filter(|e| e["event"] == "step-start")
        .map(|e| e["step"]["action"]["action"].as_str().unwrap().to_string())
        .collect();
    assert!(load.total > 0);
    assert_eq!(load.failed, 0, "{load:?}");
    assert_eq!(
        kinds[..3],
        ["reload", "wait-drained", "recreate"],
        "{kinds:?}"
    );
    assert_eq!(stack.conf(), before);
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}
