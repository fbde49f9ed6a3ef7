//! Engine mode against the real Docker engine: containers recreated through
//! the API keep everything but what the deploy changes; containers no
//! compose project made go that way in `--mode auto`.

use std::process::Command;

use crate::support::scope::Scope;
use crate::support::stack::Stack;
use crate::support::{APP_IMAGE, NGINX_IMAGE, assert_ok, root, skip, tool_path};
use serde_json::Value;

/// `docker inspect` of a container minus what a recreated container must
/// differ in: its id and runtime state (state, creation time, per-container
/// files, layer paths, addresses and endpoint ids), the hostname Docker
/// derives from the id, the id-derived network alias, and the environment
/// (compared on its own).
fn settings(inspect: &Value) -> Value {
    let mut v = inspect.clone();
    let id = v["Id"].as_str().unwrap().to_string();
    let short = &id[..12];
    let obj = v.as_object_mut().unwrap();
    for key in [
        "Id",
        "Created",
        "State",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "GraphDriver",
        // Runtime, not settings: the healthcheck's exec may be running at inspect time.
        "ExecIDs",
    ] {
        obj.remove(key);
    }
    let config = obj["Config"].as_object_mut().unwrap();
    config.remove("Env");
    if config["Hostname"] == short {
        config.remove("Hostname");
    }
    let networks = obj["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap()
        .clone();
    let kept: serde_json::Map<String, Value> = networks
        .into_iter()
        .map(|(name, net)| {
            let aliases: Vec<Value> = net["Aliases"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a != short)
                .collect();
            let settings = serde_json::json!({
                "Aliases": aliases,
                "Links": net["Links"],
                "IPAMConfig": net["IPAMConfig"],
                "NetworkID": net["NetworkID"],
                "DriverOpts": net["DriverOpts"],
            });
            (name, settings)
        })
        .collect();
    obj.insert("NetworkSettings".into(), Value::Object(kept));
    v
}

fn env(inspect: &Value) -> Vec<String> {
    let mut env: Vec<String> = inspect["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    env.sort();
    env
}

/// The fields where `a` and `b` differ, as `path: a != b` lines.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                differences(
                    &format!("{path}.{key}"),
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path}: {a} != {b}")),
        _ => {}
    }
}

/// `deploy apps` of `MESSAGE={{service}},VERSION` in engine mode (no compose edit).
fn deploy(stack: &Stack, version: &str) -> std::process::Command {
    let message = format!("MESSAGE={{{{service}}}},{version}");
    stack.tool_cmd(&[
        "deploy",
        "apps",
        "--yes",
        "--monitor",
        "0s",
        "--env",
        &message,
    ])
}

#[test]
fn engine_deploy_changes_only_the_env_and_keeps_every_other_setting() {
    let stack = Stack::up("engine");
    let services = ["app1", "app2"];
    let before: Vec<Value> = services
        .iter()
        .map(|s| stack.inspect(&stack.container(s)))
        .collect();

    assert_ok(&deploy(&stack, "v3").output().unwrap());
    assert_eq!(
        stack.bodies(8),
        ["app1,v3", "app2,v3"]
            .map(|m| format!("Hi there, I love ! {m}"))
            .into_iter()
            .collect()
    );

    for (service, before) in services.iter().zip(&before) {
        let after = stack.inspect(&stack.container(service));
        assert_ne!(after["Id"], before["Id"], "{service} was not recreated");
        assert_eq!(after["State"]["Running"], true, "{service}");
        assert!(
            !after["Config"]["Labels"].as_object().unwrap().is_empty(),
            "{service}: the compose labels are part of what must be kept"
        );
        let mut diffs = Vec::new();
        differences(service, &settings(before), &settings(&after), &mut diffs);
        assert!(
            diffs.is_empty(),
            "{service} changed beyond its env:\n{}",
            diffs.join("\n")
        );
        let expected: Vec<String> = env(before)
            .into_iter()
            .map(|e| {
                if e.starts_with("MESSAGE=") {
                    format!("MESSAGE={service},v3")
                } else {
                    e
                }
            })
            .collect();
        assert_eq!(
            env(&after),
            expected,
            "{service}: only MESSAGE may change in the env"
        );
    }
}

#[test]
fn without_the_proc_shortcuts_everything_goes_through_the_api() {
    let stack = Stack::up("noprocfs");
    let before = stack.conf();
    // nginx -V by exec, the config directory by the archive API, the workers by top.
    let out = deploy(&stack, "v2")
        .env("NGINX_ROLLOUT_NO_PROCFS", "1")
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(stack.conf(), before);
    assert_eq!(stack.bodies(8), crate::support::stack::app_bodies(2, "v2"));
}

/// Containers no compose project made, deployed in `--mode auto` without
/// `--env`: the deploy may have read a compose project, so compose's
/// interpreter started as it connected; once discovery shows no server's
/// container is a compose project's, it is let go, and the deploy goes on
/// through the Engine API.
#[test]
fn a_deploy_of_plain_containers_lets_composes_interpreter_go() {
    if skip() {
        return;
    }
    let mut s = Scope::new("plain");
    let net = s.network("net");
    for app in ["app1", "app2"] {
        let message = format!("MESSAGE={app},v1");
        s.run(
            app,
            &[
                "--network",
                &net,
                "--network-alias",
                app,
                "-e",
                &message,
                "--health-cmd",
                "wget -q -O /dev/null http://127.0.0.1:3000/health",
                "--health-interval",
                "200ms",
                APP_IMAGE,
            ],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::copy(root().join("fixtures/seed002/proxy/nginx.conf"), &conf).unwrap();
    let mount = format!("{}:/etc/nginx/nginx.conf", conf.display());
    let nginx = s.run("nginx", &["--network", &net, "-v", &mount, NGINX_IMAGE]);
    let state = dir.path().join("state");
    let out = Command::new(tool_path())
        .args([
            "deploy",
            "apps",
            "--yes",
            "--monitor",
            "0s",
            "--nginx",
            &nginx,
        ])
        .arg("--state-dir")
        .arg(&state)
        .env(
            "NGINX_ROLLOUT_LOG",
            "nginx_rollout::backends::compose=debug",
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("started ahead is not needed: no server's container is a compose project's"),
        "{stderr}"
    );
    assert!(!stderr.contains("(compose's reading script"), "{stderr}");
}
