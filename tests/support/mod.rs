//! What the two test binaries share: the tool's path, the docker CLI, the
//! fixture images, turns on the daemon, and three ways to arrange Docker
//! fixtures — a copy of the seed stack ([`stack::Stack`]), containers made
//! through the API on a private network ([`sandbox::Sandbox`]), and
//! containers made with the docker CLI ([`scope::Scope`]), a small tmpfs to
//! run out of space ([`tmpfs::Tmpfs`]), a private dockerd to restart
//! ([`daemon::PrivateDaemon`]) and a second daemon reached over ssh
//! ([`remote::SecondDaemon`]). Each removes what it made when dropped, also
//! when the test panics. [`rollout::under_load`] runs a rollout against a
//! stack under load and checks no request was lost.
#![allow(dead_code)] // each binary uses a different part of it

pub mod daemon;
pub mod remote;
pub mod rollout;
pub mod sandbox;
pub mod scope;
pub mod stack;
pub mod tmpfs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The fixture nginx image (Debian nginx + busybox, `nginx -g 'daemon off;'`).
pub const NGINX_IMAGE: &str = "nginx-rollout-fixture/nginx:1";
/// The fixture app image (HTTP on :3000 with `/health` and `/slow?ms=N`).
pub const APP_IMAGE: &str = "nginx-rollout-fixture/app:v1";

/// The crate root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tool's binary.
pub fn tool_path() -> &'static str {
    env!("CARGO_BIN_EXE_nginx-rollout")
}

/// Runs the tool with `args` (no stdin, no colors) outside any stack.
pub fn tool(args: &[&str]) -> Output {
    Command::new(tool_path())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("nginx-rollout runs")
}

/// The daemon the tests use, chosen as the tool chooses it without flags
/// (`DOCKER_HOST`, `DOCKER_CONTEXT`, docker's current context, the local socket).
pub fn endpoint() -> nginx_rollout::docker::Endpoint {
    nginx_rollout::docker::Endpoint::resolve(&Default::default()).expect("a Docker endpoint")
}

/// Connects to [`endpoint`].
pub async fn connect() -> anyhow::Result<bollard::Docker> {
    nginx_rollout::docker::connect(&endpoint()).await
}

/// Spawns `cmd` with stdout and stderr piped: to read while it runs, or to
/// collect with `wait_with_output`.
pub fn spawn_piped(cmd: &mut Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nginx-rollout runs")
}

/// The JSON events a `--output json` run spawned by [`spawn_piped`] prints,
/// read until the first `reached` says yes (a panic naming `what` if the run
/// ends before); the rest follow from the lines returned.
pub fn events_until(
    child: &mut std::process::Child,
    what: &str,
    reached: impl Fn(&serde_json::Value) -> bool,
) -> std::io::Lines<std::io::BufReader<std::process::ChildStdout>> {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().unwrap_or_else(|| panic!("{what}")).unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if reached(&event) {
            return lines;
        }
    }
}

/// Sends `signal` to `child`, then reads the rest of its output `lines` and
/// waits for it: its exit code and those lines.
pub fn stop_with(
    child: &mut std::process::Child,
    lines: impl Iterator<Item = std::io::Result<String>>,
    signal: rustix::process::Signal,
) -> (Option<i32>, Vec<String>) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    (child.wait().unwrap().code(), rest)
}

/// Writes docker context `name` pointing at daemon `host` into the docker
/// config directory `config`, as `docker context create` writes it.
pub fn write_docker_context(config: &Path, name: &str, host: &str) {
    let id = format!(
        "{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(name.as_bytes())
    );
    let dir = config.join("contexts/meta").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("meta.json"),
        format!(
            r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
        ),
    )
    .unwrap();
}

/// Runs `docker ARGS`, panicking with its stderr on failure; returns trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker CLI");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker inspect -f FORMAT TARGET`.
pub fn inspect(target: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, target])
}

/// Removes everything of compose project `project` by its label, as
/// `docker-compose down -v --remove-orphans` would, but through the Docker
/// CLI: compose's Python start costs a third of a second of CPU, and a test
/// run tears down about a hundred stacks. Containers are killed, not
/// stopped: nothing of theirs is looked at any more. Errors are ignored (a
/// drop must not panic); what is left shows in the next `docker ps`.
pub fn remove_compose_project(project: &str) {
    let label = format!("label=com.docker.compose.project={project}");
    let ids = |args: &[&str]| -> Vec<String> {
        Command::new("docker")
            .args(args)
            .args(["-q", "--filter", &label])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    for (list, remove) in [
        (&["ps", "-a"][..], &["rm", "-f", "-v"][..]),
        (&["network", "ls"][..], &["network", "rm"][..]),
        (&["volume", "ls"][..], &["volume", "rm", "-f"][..]),
    ] {
        let found = ids(list);
        if !found.is_empty() {
            let _ = Command::new("docker").args(remove).args(&found).output();
        }
    }
}

/// True (with the reason printed) when the Docker tests are to be skipped.
pub fn skip() -> bool {
    if std::env::var("NGINX_ROLLOUT_SKIP_DOCKER").as_deref() == Ok("1") {
        eprintln!("skipped: NGINX_ROLLOUT_SKIP_DOCKER=1");
        return true;
    }
    false
}

/// Turns on the daemon for the tests of one binary: a test that takes the
/// whole machine (a second daemon) runs alone; the others share it.
static TURNS: RwLock<()> = RwLock::new(());

/// One load at a time: what a test counts under load does not depend on
/// another test's load. Other tests go on beside it, as a deploy on a busy
/// host meets other work.
static LOADS: Mutex<()> = Mutex::new(());

/// The daemon to oneself (a second daemon beside it).
pub fn alone() -> RwLockWriteGuard<'static, ()> {
    TURNS
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The load generator to oneself (see [`LOADS`]).
pub fn one_load() -> MutexGuard<'static, ()> {
    LOADS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The daemon shared with other light tests.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    TURNS
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Asserts a tool run succeeded, printing its output otherwise.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tool run's output as text (stdout then stderr), for failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The events a `--output json` run printed, each checked against
/// docs/events.schema.json: every test that reads events checks the schema.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_valid(SCHEMA.get_or_init(validator), &events);
    events
}

/// The `summary` event of a `--output json` run (the last one).
pub fn summary(out: &Output) -> serde_json::Value {
    json_lines(out)
        .into_iter()
        .rfind(|e| e["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary event\n{}", text(out)))
}

/// (server, result) of every server a `summary` event reports, in its order.
pub fn results(summary: &serde_json::Value) -> Vec<(&str, &str)> {
    summary["servers"]
        .as_array()
        .unwrap_or_else(|| panic!("no servers in {summary}"))
        .iter()
        .map(|r| (r["server"].as_str().unwrap(), r["result"].as_str().unwrap()))
        .collect()
}

/// docs/events.schema.json, checked to be valid JSON Schema, compiled.
pub fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/events.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::meta::validate(&schema).expect("the schema is itself valid JSON Schema");
    jsonschema::draft202012::new(&schema).expect("the schema compiles")
}

/// Panics with every event that does not validate against the schema, and why.
pub fn assert_valid(validator: &jsonschema::Validator, events: &[serde_json::Value]) {
    let mut bad = Vec::new();
    for (n, event) in events.iter().enumerate() {
        let errors: Vec<String> = validator
            .iter_errors(event)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if !errors.is_empty() {
            bad.push(format!(
                "line {}: {event}\n    {}",
                n + 1,
                errors.join("\n    ")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "events not matching the schema:\n{}",
        bad.join("\n")
    );
}
