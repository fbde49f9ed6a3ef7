//! Seed 000 end to end: a compose service `web` with three replicas behind
//! one `server web:8000;` line, rolled one replica at a time on pinned lines
//! with its own update_config, under load; and what compose makes of it after.
use std::collections::BTreeSet;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use crate::support::rollout::under_load;
use crate::support::scope::Scope;
use crate::support::stack::{Seed, Stack};
use crate::support::{assert_ok, docker, results, spawn_piped, summary, text};

fn up(name: &str) -> Stack {
    Stack::seed(Seed::S000, name, |_| {})
}

fn answers(version: &str) -> BTreeSet<String> {
    BTreeSet::from([format!("Hi there, I love ! {version}")])
}

/// `rollback` of a paused deploy under POST load (a new connection per
/// request) started `lead` before it: no failed request, the config back byte
/// for byte, three replicas all answering v1. Its output.
fn rollback_to_v1_under_load(stack: &Stack, before: &[u8], lead: Duration) -> Output {
    let load = stack.load("/", 40, 16, "post-close");
    std::thread::sleep(lead);
    let out = stack.tool(&["rollback", "--yes", "--output", "json"]);
    let load = load.stop();
    assert_ok(&out);
    assert_eq!(load.failed, 0, "{load:?}");
    assert_eq!(stack.conf(), before, "{}", text(&out));
    assert_eq!(stack.bodies(9), answers("v1"));
    assert_eq!(stack.containers_of("web").len(), 3);
    out
}

/// A `--failure-action continue` run, which exits 0 however many servers
/// failed: how many failed and how many were updated.
fn continued(out: &Output) -> (usize, usize) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    let s = summary(out);
    let count = |result| results(&s).iter().filter(|(_, r)| *r == result).count();
    (count("failed"), count("updated"))
}

/// `deploy backend --yes --output json` and then `rest`.
fn deploy_json<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    [&["deploy", "backend", "--yes", "--output", "json"], rest].concat()
}

/// `docker-compose up -d` right after changes nothing, and `ps` lists the
/// service's `count` replicas, all running the environment `env`.
fn compose_sees_its_own(stack: &Stack, count: usize, env: &str) {
    let out = stack.compose(&["up", "-d"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(
        !said.contains("Recreating") && !said.contains("Creating") && !said.contains("Stopping"),
        "compose changed something after the deploy:\n{said}"
    );
    all_run(stack, count, env);
    let ps = stack.compose(&["ps", "-q", "web"]);
    let listed = String::from_utf8_lossy(&ps.stdout).lines().count();
    assert_eq!(listed, count, "docker-compose ps lists the replicas");
}

/// The service has `count` replicas, all running, all with the environment `env`.
fn all_run(stack: &Stack, count: usize, env: &str) {
    let web = stack.containers_of("web");
    assert_eq!(web.len(), count, "{web:?}");
    for name in &web {
        let env_of = crate::support::inspect(name, "{{json .Config.Env}}");
        assert!(env_of.contains(env), "{name}: {env_of}");
        assert_eq!(crate::support::inspect(name, "{{.State.Running}}"), "true");
    }
}

/// The compose number in each of the service's container names.
fn numbers(stack: &Stack) -> Vec<u32> {
    stack
        .containers_of("web")
        .iter()
        .map(|n| n.rsplit('_').next().unwrap().parse().unwrap())
        .collect()
}

/// Deploys `MESSAGE=version` (edited in the compose file) with `extra` flags
/// under `profile` load with slow requests in flight ([`under_load`]), and
/// checks what the seed promises.
fn deploy_under(stack: &Stack, from: &str, to: &str, profile: &str, extra: &[&str]) {
    let before = (stack.conf(), stack.conf_inode());
    stack.edit_compose(&format!("MESSAGE={from}"), &format!("MESSAGE={to}"));
    under_load(stack, &deploy_json(extra), profile);
    assert_eq!(stack.bodies(9), answers(to), "every replica answers {to}");
    assert_eq!(
        (stack.conf(), stack.conf_inode()),
        before,
        "default.conf byte-identical on the same inode"
    );
}

#[test]
fn start_first_replicas_roll_one_at_a_time_without_a_failed_request() {
    let stack = up("s0start");
    assert_eq!(stack.bodies(6), answers("v1"));
    // The seed's own update_config: start-first, parallelism 1, its delay.
    let dry = stack.tool(&["deploy", "backend", "--dry-run", "--force"]);
    assert_ok(&dry);
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("services.web.deploy.update_config.order"),
        "{plan}"
    );
    deploy_under(&stack, "v1", "v2", "get-keepalive", &["--monitor", "0s"]);
    compose_sees_its_own(&stack, 3, "MESSAGE=v2");
    // Again, with a new connection per POST: numbers stay bounded (a run
    // takes numbers none held as it began: 4-6, then 1-3).
    deploy_under(&stack, "v2", "v3", "post-close", &["--monitor", "0s"]);
    compose_sees_its_own(&stack, 3, "MESSAGE=v3");
    assert!(
        numbers(&stack).iter().all(|n| (1..=6).contains(n)),
        "{:?}",
        stack.containers_of("web")
    );
}

#[test]
fn stop_first_scaled_down_two_at_a_time_and_up_one_at_a_time_loses_no_request() {
    let stack = up("s0stop");
    stack.edit_compose("replicas: 3", "replicas: 2");
    let stop_first = |parallelism| {
        [
            "--order",
            "stop-first",
            "--parallelism",
            parallelism,
            "--monitor",
            "0s",
        ]
    };
    deploy_under(&stack, "v1", "v2", "post-close", &stop_first("2"));
    compose_sees_its_own(&stack, 2, "MESSAGE=v2");
    // Up again, one at a time: the added replica takes a number no replica
    // holds (it once took the number the first recreate had just kept, and
    // the deploy was refused).
    stack.edit_compose("replicas: 2", "replicas: 3");
    deploy_under(&stack, "v2", "v3", "get-keepalive", &stop_first("1"));
    compose_sees_its_own(&stack, 3, "MESSAGE=v3");
}

#[test]
fn a_version_that_never_turns_healthy_is_rolled_back_with_the_line_as_it_was() {
    let stack = up("s0never");
    let before = stack.conf();
    let replicas = stack.containers_of("web");
    stack.edit_compose("- MESSAGE=v1", "- MESSAGE=v2\n      - FAIL_HEALTH=1");
    let load = stack.load("/", 30, 16, "get-keepalive");
    std::thread::sleep(Duration::from_secs(1));
    let out = stack.tool(&deploy_json(&[
        "--failure-action",
        "rollback",
        "--health-timeout",
        "10s",
    ]));
    let load = load.stop();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(summary(&out)["status"], "rolled-back", "{}", text(&out));
    assert_eq!(load.failed, 0, "{load:?}");
    assert_eq!(stack.conf(), before);
    assert_eq!(stack.bodies(6), answers("v1"));
    assert_eq!(
        stack.containers_of("web"),
        replicas,
        "the old replicas serve"
    );
}

#[test]
fn a_replica_dying_in_its_monitor_window_pauses_with_a_config_nginx_loads_and_rolls_back() {
    let stack = up("s0monitor");
    let before = stack.conf();
    // The first new replica turns healthy (in about 2 s), then exits 6 s
    // after it started: inside the monitor window, after the old replica it
    // retires has stopped, inside the 8-s delay that follows. The failure is
    // seen when the delay ends, before a second new replica starts, so none
    // is left to die after the pause.
    stack.edit_compose("- MESSAGE=v1", "- MESSAGE=v2\n      - CRASH_AFTER_MS=6000");
    let out = stack.tool(&deploy_json(&["--monitor", "20s", "--delay", "8s"]));
    assert_eq!(out.status.code(), Some(3), "paused: {}", text(&out));
    assert!(
        text(&out).contains("failed within the monitor window"),
        "{}",
        text(&out)
    );
    // Paused: no line names a container that is gone, so nginx loads the
    // config as it is on disk (the next reload's `nginx -t` passes).
    docker(&["exec", &stack.container("nginx"), "nginx", "-t"]);
    // The requests a replica had in flight when it died are lost with it;
    // from the pause on, none is: the dead replica is out of the upstream.
    rollback_to_v1_under_load(&stack, &before, Duration::from_secs(2));
}

#[test]
fn a_stop_first_pause_then_rollback_recreates_the_failed_replicas_on_the_old_version() {
    let stack = up("s0stopback");
    let before = stack.conf();
    // Stop-first recreates each replica under its own name: after the pause
    // the names are the failed new containers'.
    let out = stack.tool(&deploy_json(&[
        "--mode",
        "engine",
        "--env",
        "MESSAGE=v2",
        "--env",
        "FAIL_HEALTH=1",
        "--order",
        "stop-first",
        "--parallelism",
        "2",
        "--health-timeout",
        "8s",
    ]));
    assert_eq!(out.status.code(), Some(3), "paused: {}", text(&out));
    let out = rollback_to_v1_under_load(&stack, &before, Duration::from_secs(1));
    let s = summary(&out);
    let updated: Vec<&str> = results(&s).into_iter().map(|(_, r)| r).collect();
    assert_eq!(updated, ["updated"; 2], "{}", text(&out));
}

#[test]
fn a_stop_first_replica_whose_new_container_cannot_start_is_rolled_back() {
    let stack = up("s0nostart");
    let before = stack.conf();
    // Docker creates a container of this image; its start fails.
    let mut scope = Scope::new("s0nostart");
    let broken = scope.image_with("broken", &["ENTRYPOINT [\"/no-such-binary\"]"]);
    let out = stack.tool(&deploy_json(&[
        "--mode",
        "engine",
        "--image",
        &broken,
        "--order",
        "stop-first",
    ]));
    assert_eq!(out.status.code(), Some(3), "paused: {}", text(&out));
    let out = rollback_to_v1_under_load(&stack, &before, Duration::from_secs(1));
    // The replica the deploy stopped is replaced in place, under its name.
    let s = summary(&out);
    let web_1 = format!("{}_web_1:8000", stack.project);
    assert_eq!(results(&s), [(web_1.as_str(), "updated")], "{}", text(&out));
    compose_sees_its_own(&stack, 3, "MESSAGE=v1");
}

#[test]
fn an_old_replica_killed_before_the_first_reload_is_buried_and_the_rollout_finishes() {
    let stack = up("s0oldkill");
    let before = stack.conf();
    let old = stack.containers_of("web");
    let child = spawn_piped(&mut stack.tool_cmd(&deploy_json(&[
        "--mode",
        "engine",
        "--env",
        "MESSAGE=v2",
        "--env",
        "STARTUP_DELAY_MS=3000",
    ])));
    // The first new replica is starting (3 s); an old one dies meanwhile, so
    // the first edit, the pin, would name a container nginx cannot resolve.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stack.containers_of("web").len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no new replica started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    docker(&["kill", &old[2]]);
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "{}", text(&out));
    assert_eq!(stack.bodies(9), answers("v2"));
    all_run(&stack, 3, "MESSAGE=v2");
}

#[test]
fn an_old_replica_killed_mid_rollout_is_buried_and_the_rollout_finishes() {
    let stack = up("s0oldkill2");
    let before = stack.conf();
    let old = stack.containers_of("web");
    stack.edit_compose("MESSAGE=v1", "MESSAGE=v2");
    let child = spawn_piped(&mut stack.tool_cmd(&deploy_json(&[])));
    // The first slot is done (its old replica's line buried); one of the old
    // replicas still on its own live line dies.
    stack.wait_for_conf("first burial", Duration::from_secs(90), |conf| {
        conf.contains("192.0.2.1:8000")
    });
    let conf = String::from_utf8(stack.conf()).unwrap();
    let victim = old
        .iter()
        .rev()
        .find(|name| conf.contains(&format!("server {name}:8000; #")))
        .unwrap_or_else(|| panic!("no old replica serves on its own line:\n{conf}"));
    docker(&["kill", victim]);
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "{}", text(&out));
    assert_eq!(stack.bodies(9), answers("v2"));
    compose_sees_its_own(&stack, 3, "MESSAGE=v2");
}

#[test]
fn engine_templates_are_rendered_for_each_replica() {
    let stack = up("s0tpl");
    let old = stack.containers_of("web");
    let out = stack.tool(&deploy_json(&[
        "--monitor",
        "0s",
        "--mode",
        "engine",
        "--env",
        "MESSAGE={{service}} {{index}} for {{container}}",
    ]));
    assert_ok(&out);
    let want: BTreeSet<String> = old
        .iter()
        .map(|c| format!("Hi there, I love ! web 0 for {c}"))
        .collect();
    assert_eq!(stack.bodies(12), want, "{}", text(&out));
}

#[test]
fn every_new_replica_dying_after_the_unpin_with_continue_leaves_the_set_down_and_rollback_restores_it()
 {
    let stack = up("s0allgone");
    let before = stack.conf();
    // All three new replicas start in one batch and exit 12 s after they
    // started: after the operator's line is back, inside the monitor window.
    stack.edit_compose("- MESSAGE=v1", "- MESSAGE=v2\n      - CRASH_AFTER_MS=12000");
    let out = stack.tool(&deploy_json(&[
        "--parallelism",
        "3",
        "--monitor",
        "16s",
        "--failure-action",
        "continue",
    ]));
    assert_eq!(continued(&out).0, 3, "{}", text(&out));
    // `web` names no running container, so the operator's line would fail
    // every `nginx -t`: the set is pinned to nowhere, down.
    let conf = String::from_utf8(stack.conf()).unwrap();
    assert!(
        conf.contains("server 192.0.2.1:8000 down; # nginx-rollout pin: web:8000"),
        "{conf}"
    );
    docker(&["exec", &stack.container("nginx"), "nginx", "-t"]);
    stack.edit_compose("- MESSAGE=v2\n      - CRASH_AFTER_MS=12000", "- MESSAGE=v1");
    let out = stack.tool(&["rollback", "--yes", "--output", "json"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "{}", text(&out));
    assert_eq!(stack.bodies(9), answers("v1"));
    assert_eq!(stack.containers_of("web").len(), 3);
}

/// Seed 000 with `./flag` mounted at `/flag` in every replica: a directory
/// they share, through which one new replica can be made to fail.
fn up_with_flag_dir(name: &str) -> Stack {
    Stack::seed(Seed::S000, name, |dir| {
        std::fs::create_dir(dir.join("flag")).unwrap();
        let file = dir.join("docker-compose.yml");
        let compose = std::fs::read_to_string(&file).unwrap();
        let with_flag = compose.replacen(
            "    stop_grace_period: 10s\n",
            "    stop_grace_period: 10s\n    volumes:\n      - ./flag:/flag\n",
            1,
        );
        assert_ne!(with_flag, compose);
        std::fs::write(&file, with_flag).unwrap();
    })
}

#[test]
fn with_continue_a_failed_replica_keeps_its_old_one_and_the_later_slots_still_update() {
    // The first new replica to run the post-start hook makes `/flag/first`
    // and fails it, the others pass.
    let stack = up_with_flag_dir("s0cont");
    let before = stack.conf();
    let old = stack.containers_of("web");
    stack.edit_compose("MESSAGE=v1", "MESSAGE=v2");
    let out = stack.tool(&deploy_json(&[
        "--monitor",
        "0s",
        "--failure-action",
        "continue",
        "--post-start",
        "sh -c 'mkdir /flag/first || exit 0; exit 3'",
    ]));
    // Before: the second slot's replica took the number the first slot's
    // old replica (kept, serving) still had, and failed on it; so did the third.
    assert_eq!(continued(&out), (1, 2), "{}", text(&out));
    // The failed slot's old replica still serves v1, beside two new ones.
    let now = stack.containers_of("web");
    assert_eq!(now.len(), 3, "{now:?}");
    assert_eq!(now.iter().filter(|n| old.contains(n)).count(), 1, "{now:?}");
    for name in &now {
        assert_eq!(crate::support::inspect(name, "{{.State.Running}}"), "true");
    }
    let both: BTreeSet<String> = answers("v1").into_iter().chain(answers("v2")).collect();
    assert_eq!(stack.bodies(18), both);
    assert_eq!(stack.conf(), before, "{}", text(&out));
}

#[test]
fn with_continue_a_failed_replica_that_still_runs_is_stopped_before_the_sets_line_comes_back() {
    let stack = up_with_flag_dir("s0sick");
    let before = stack.conf();
    // v2's healthcheck: the first new replica to run it writes its HOSTNAME
    // to `/flag/sick` and fails every check; the others pass.
    let probe = r#"["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8000/health"]"#;
    let sick = r#"["CMD", "sh", "-c", "mkdir /flag/first 2>/dev/null && echo $$HOSTNAME > /flag/sick; read s < /flag/sick; [ \"$$s\" != \"$$HOSTNAME\" ] && wget -q -O- http://127.0.0.1:8000/health"]"#;
    stack.edit_compose(probe, sick);
    stack.edit_compose("MESSAGE=v1", "MESSAGE=v2");
    let load = stack.load("/", 60, 16, "get-keepalive");
    let out = stack.tool(&deploy_json(&[
        "--order",
        "stop-first",
        "--monitor",
        "0s",
        "--health-timeout",
        "10s",
        "--failure-action",
        "continue",
    ]));
    let load = load.stop();
    assert_eq!(continued(&out), (1, 2), "{}", text(&out));
    assert_eq!(load.failed, 0, "{load:?}");
    assert_eq!(stack.conf(), before, "{}", text(&out));
    // The failed replica, unhealthy but running, would get requests once
    // `server web:8000;` is back (Docker's DNS answers with it): it is
    // stopped first, and kept.
    let sick_host = std::fs::read_to_string(stack.path().join("flag/sick")).unwrap();
    let web = stack.containers_of("web");
    assert_eq!(web.len(), 3, "{web:?}");
    let running: Vec<&String> = web
        .iter()
        .filter(|n| crate::support::inspect(n, "{{.State.Running}}") == "true")
        .collect();
    assert_eq!(running.len(), 2, "{web:?}");
    for name in &running {
        let host = crate::support::inspect(name, "{{.Config.Hostname}}");
        assert_ne!(host, sick_host.trim(), "{name} is the failed replica");
    }
    assert!(text(&out).contains("stopped (and kept)"), "{}", text(&out));
    assert_eq!(stack.bodies(12), answers("v2"));
    // Rolled back, the stopped replica's slot is v1 again with the others.
    stack.edit_compose("MESSAGE=v2", "MESSAGE=v1");
    stack.edit_compose(sick, probe);
    let out = stack.tool(&["rollback", "--yes", "--output", "json"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "{}", text(&out));
    all_run(&stack, 3, "MESSAGE=v1");
    assert_eq!(stack.bodies(9), answers("v1"));
}

/// Spawns a deploy to `to` whose new replicas take 3 s to start (a wide
/// window; the compose file keeps that delay), and kills it with SIGKILL in
/// its second slot: one replica swapped, the next one drained.
fn killed_deploy(stack: &Stack, from: &str, to: &str) {
    stack.edit_compose(&format!("MESSAGE={from}"), &format!("MESSAGE={to}"));
    let compose = std::fs::read_to_string(stack.path().join("docker-compose.yml")).unwrap();
    if !compose.contains("STARTUP_DELAY_MS") {
        stack.edit_compose("- PORT=8000", "- PORT=8000\n      - STARTUP_DELAY_MS=3000");
    }
    let mut child: Child = stack
        .tool_cmd(&["deploy", "backend", "--yes", "--monitor", "0s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The second slot: the first replica swapped (its line buried), the
    // next one drained.
    stack.wait_for_conf("second drain", Duration::from_secs(90), |conf| {
        conf.contains("192.0.2.1:8000") && conf.matches(" down;").count() >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn kill_9_mid_rollout_then_resume_and_again_then_rollback() {
    let stack = up("s0kill");
    let before = stack.conf();
    killed_deploy(&stack, "v1", "v2");
    let status = stack.tool(&["status", "--output", "json"]);
    assert_ok(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["unfinished"]["status"], "running", "{status}");
    assert!(
        status["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["rollout"]
                .as_str()
                .is_some_and(|r| r.contains("web:8000") || r.starts_with("rev 1"))),
        "status shows the pinned replicas: {status}"
    );
    let runs: Vec<&str> = status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["runs"].as_str())
        .collect();
    assert!(
        ["MESSAGE=v1", "MESSAGE=v2"]
            .iter()
            .all(|v| runs.iter().any(|r| r.contains(v))),
        "status tells the pinned replicas' versions apart: {status}"
    );
    let load = stack.load("/", 30, 16, "get-keepalive");
    let out = stack.tool(&["resume", "--yes"]);
    let load = load.stop();
    assert_ok(&out);
    assert_eq!(load.failed, 0, "resume: {load:?}");
    assert_eq!(stack.conf(), before, "resume puts the line back");
    assert_eq!(stack.bodies(9), answers("v2"));
    compose_sees_its_own(&stack, 3, "MESSAGE=v2");

    // The deploy to v3, killed the same way, is rolled back to v2.
    killed_deploy(&stack, "v2", "v3");
    stack.edit_compose("MESSAGE=v3", "MESSAGE=v2");
    let load = stack.load("/", 30, 16, "get-keepalive");
    let out = stack.tool(&["rollback", "--yes"]);
    let load = load.stop();
    assert_ok(&out);
    assert_eq!(load.failed, 0, "rollback: {load:?}");
    assert_eq!(stack.conf(), before, "rollback puts the line back");
    assert_eq!(stack.bodies(9), answers("v2"));
    assert_eq!(stack.containers_of("web").len(), 3);
}

#[test]
fn a_dead_replica_at_the_start_is_replaced_and_the_set_scaled_up() {
    let stack = up("s0dead");
    let before = stack.conf();
    let victim = stack.containers_of("web")[1].clone();
    crate::support::docker(&["kill", &victim]);
    stack.edit_compose("MESSAGE=v1", "MESSAGE=v2");
    stack.edit_compose("replicas: 3", "replicas: 4");
    // nginx sends requests to the dead replica's address until it reloads:
    // the load runs from the deploy's first reload on.
    let (_, load) =
        stack.tool_loaded_from_first_reload(&deploy_json(&["--monitor", "0s"]), "get-keepalive");
    assert_eq!(load.failed, 0, "{load:?}");
    assert_eq!(stack.conf(), before);
    assert_eq!(stack.bodies(12), answers("v2"));
    compose_sees_its_own(&stack, 4, "MESSAGE=v2");
}
