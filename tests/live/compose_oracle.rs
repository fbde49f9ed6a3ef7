//! The compose fast path against compose itself: the containers nginx-rollout
//! creates through the Engine API inspect the same as those `docker-compose up
//! -d --no-deps --force-recreate` creates from the same files, once ids, names'
//! numbers, timestamps and addresses are set aside; and `docker-compose up -d`
//! right after a fast-path deploy changes nothing.
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::scope::Scope;
use crate::support::{assert_ok, docker, skip, tool_path};

/// A service with every key the fast path must carry over: env, image,
/// command, entrypoint, labels, anonymous, named and bind volumes, two
/// networks with aliases, a published port, restart policy, healthcheck,
/// stop signal and grace period, logging, resources, extra hosts, user,
/// working dir, replicas — behind nginx.
const COMPOSE: &str = r#"services:
  web:
    image: nginx-rollout-fixture/app:v1
    entrypoint: ["/app"]
    command: []
    environment:
      - MESSAGE=v1
      - PORT=3000
    labels:
      com.example.team: rollout
    volumes:
      - /data
      - named:/named
      - ./static:/static:ro
    networks:
      front:
        aliases: [web-front]
      back: {}
    ports:
      - "127.0.0.1::3000"
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:3000/health"]
      interval: 1s
      timeout: 1s
      retries: 3
    stop_signal: SIGTERM
    stop_grace_period: 7s
    logging:
      driver: json-file
      options:
        max-size: 1m
    mem_limit: 64m
    cpus: 0.5
    extra_hosts:
      - "db.local:10.1.2.3"
    user: "0"
    working_dir: /
    deploy:
      replicas: 2
  nginx:
    image: nginx-rollout-fixture/nginx:sites
    volumes:
      - ./default.conf:/etc/nginx/conf.d/default.conf
    networks: [front]
    depends_on: [web]
volumes:
  named: {}
networks:
  front: {}
  back: {}
"#;

const DEFAULT_CONF: &str = "upstream u {\n    server web:3000;\n}\n\nserver {\n    listen 80;\n    location / { proxy_pass http://u; }\n}\n";

/// The change: every key at once.
fn change(compose: &str) -> String {
    compose
        .replace(
            "image: nginx-rollout-fixture/app:v1",
            "image: nginx-rollout-fixture/app:v2",
        )
        .replace("- MESSAGE=v1", "- MESSAGE=v2\n      - EXTRA=1")
        .replace(
            "com.example.team: rollout",
            "com.example.team: rollout\n      com.example.version: \"2\"",
        )
        .replace("interval: 1s", "interval: 2s")
        .replace("stop_grace_period: 7s", "stop_grace_period: 8s")
        .replace("mem_limit: 64m", "mem_limit: 96m")
        .replace("aliases: [web-front]", "aliases: [web-front, web-edge]")
        .replace("max-size: 1m", "max-size: 2m")
        .replace("\"db.local:10.1.2.3\"", "\"db.local:10.1.2.4\"")
}

/// A compose project of `scope` made from `file` (beside nginx's
/// `default.conf` and the `static` directory it binds), up: its directory
/// and its name.
fn project_up(scope: &mut Scope, file: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), file).unwrap();
    std::fs::write(dir.path().join("default.conf"), DEFAULT_CONF).unwrap();
    let project = scope.name("p").replace('-', "");
    scope.track_compose(&project);
    assert_ok(&compose(dir.path(), &project, &["up", "-d"], &[]));
    (dir, project)
}

fn compose(dir: &Path, project: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("docker-compose")
        .envs(env.iter().copied())
        .arg("-p")
        .arg(project)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("docker-compose runs")
}

/// The service's containers, by compose number.
fn replicas(project: &str) -> Vec<(u32, Value)> {
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=web",
    ]);
    let mut out: Vec<(u32, Value)> = ids
        .lines()
        .map(|id| {
            let mut v: Vec<Value> = serde_json::from_str(&docker(&["inspect", id])).unwrap();
            let v = v.remove(0);
            let n = v["Config"]["Labels"]["com.docker.compose.container-number"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            (n, v)
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}

/// An inspect with what differs between any two creations set aside: ids,
/// times, addresses, runtime state and the files Docker names after the id.
fn normalized(mut v: Value, ids: &[String]) -> Value {
    let obj = v.as_object_mut().unwrap();
    for key in [
        "Id",
        "Created",
        "State",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "RestartCount",
        "ExecIDs",
        "GraphDriver",
        "SizeRw",
        "SizeRootFs",
    ] {
        obj.remove(key);
    }
    obj["Config"].as_object_mut().unwrap().remove("Hostname");
    // Lists whose order means nothing to Docker: the environment (a set of
    // distinct keys here), binds and mounts (distinct places). Compose orders
    // them one way when it creates a container and another when it recreates one.
    let sort = |v: &mut Value, by: fn(&Value) -> String| {
        if let Some(list) = v.as_array_mut() {
            list.sort_by_key(by);
        }
    };
    sort(&mut obj["Config"]["Env"], |e| e.to_string());
    sort(&mut obj["HostConfig"]["Binds"], |b| b.to_string());
    sort(&mut obj["Mounts"], |m| m["Destination"].to_string());
    let networks = obj["NetworkSettings"]["Networks"].clone();
    let mut kept = serde_json::Map::new();
    for (name, ep) in networks.as_object().unwrap() {
        let mut aliases: Vec<String> = ep["Aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .filter(|a| !ids.iter().any(|id| id.starts_with(a.as_str())))
            .collect();
        aliases.sort();
        kept.insert(
            name.clone(),
            serde_json::json!({"Aliases": aliases, "NetworkID": ep["NetworkID"], "IPAMConfig": ep["IPAMConfig"], "Links": ep["Links"]}),
        );
    }
    obj.insert("NetworkSettings".into(), Value::Object(kept));
    // Ids inside values (the affinity env entry, volume paths): one token.
    let mut text = serde_json::to_string(&v).unwrap();
    for id in ids {
        text = text.replace(id.as_str(), "<id>");
    }
    serde_json::from_str(&text).unwrap()
}

/// The paths where two JSON values differ, for the failure message.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if va != vb && !out.iter().any(|o| o.starts_with(&format!("{at}/{k}:"))) {
                    differences(va, vb, &format!("{at}/{k}"), out);
                }
            }
        }
        _ if a != b => out.push(format!("{at}: {a} != {b}")),
        _ => {}
    }
}

#[test]
fn the_fast_path_creates_what_compose_creates() {
    if skip() {
        return;
    }
    let mut scope = Scope::new("oracle");
    let (dir, project) = project_up(&mut scope, COMPOSE);
    let before = replicas(&project);
    assert_eq!(before.len(), 2);
    std::fs::write(dir.path().join("docker-compose.yml"), change(COMPOSE)).unwrap();

    // The fast path (stop-first: each replica recreated in place, under its
    // own name and number, as compose recreates it), compose's Python run.
    let said = deploy_and_compare(dir.path(), &project, &before, V2, &[]);
    assert!(!said.contains("compose did not run"), "{said}");

    // Environment values alone changed: compose's answer follows from what
    // it read last time, no compose run — and it is still exactly what
    // compose creates.
    let before = replicas(&project);
    let yml = change(COMPOSE)
        .replace("- MESSAGE=v2", "- MESSAGE=v3 é")
        .replace("- EXTRA=1", "- EXTRA=2");
    std::fs::write(dir.path().join("docker-compose.yml"), &yml).unwrap();
    let said = deploy_and_compare(dir.path(), &project, &before, V2, &[]);
    assert!(
        said.contains(
            "only environment values or images changed since compose last read it (web: EXTRA, MESSAGE); compose did not run"
        ),
        "{said}"
    );

    // Anything else changed too (a label; a bind mount and a capability the
    // running containers lack: the operator's, not an escalation): compose
    // reads the files again.
    let before = replicas(&project);
    std::fs::create_dir(dir.path().join("extra")).unwrap();
    let yml = yml
        .replace("- MESSAGE=v3 é", "- MESSAGE=v4")
        .replace("com.example.version: \"2\"", "com.example.version: \"3\"")
        .replace(
            "      - ./static:/static:ro\n",
            "      - ./static:/static:ro\n      - ./extra:/extra:ro\n",
        )
        .replace(
            "    user: \"0\"\n",
            "    user: \"0\"\n    cap_add: [NET_ADMIN]\n",
        );
    assert!(yml.contains("./extra:/extra:ro") && yml.contains("cap_add"));
    std::fs::write(dir.path().join("docker-compose.yml"), &yml).unwrap();
    let said = deploy_and_compare(dir.path(), &project, &before, V2, &[]);
    assert!(!said.contains("compose did not run"), "{said}");

    // Another image (and a value): followed too. The service sets PORT and
    // publishes 3000, both defaults of the old image as well, so its
    // template left them out; they are put back for the new image.
    let before = replicas(&project);
    let yml = yml
        .replace(&format!("image: {V2}"), &format!("image: {V1}"))
        .replace("- MESSAGE=v4", "- MESSAGE=v5");
    std::fs::write(dir.path().join("docker-compose.yml"), &yml).unwrap();
    let said = deploy_and_compare(dir.path(), &project, &before, V1, &[]);
    assert!(
        said.contains("(web: image, MESSAGE); compose did not run"),
        "{said}"
    );

    // Image and value through variables compose interpolates, set in `.env`
    // (the common way to name a release): followed too.
    let before = replicas(&project);
    let yml = yml
        .replace(&format!("image: {V1}"), "image: ${APP_IMAGE}:${TAG:-v1}")
        .replace("- MESSAGE=v5", "- MESSAGE=${MESSAGE:-none}-$$");
    std::fs::write(dir.path().join("docker-compose.yml"), &yml).unwrap();
    let env = "# release\nAPP_IMAGE=nginx-rollout-fixture/app\nTAG=v2\nMESSAGE=v6\n";
    std::fs::write(dir.path().join(".env"), env).unwrap();
    let said = deploy_and_compare(dir.path(), &project, &before, V2, &[]);
    assert!(
        said.contains(
            "(web: image, MESSAGE; variables APP_IMAGE, MESSAGE, TAG); compose did not run"
        ),
        "{said}"
    );

    // A variable set in the deploy's environment wins over `.env`, for
    // compose and for the reading that follows it.
    let before = replicas(&project);
    let said = deploy_and_compare(dir.path(), &project, &before, V2, &[("MESSAGE", "v7")]);
    assert!(
        said.contains("(web: MESSAGE; variables MESSAGE); compose did not run"),
        "{said}"
    );
    let env = &replicas(&project)[0].1["Config"]["Env"];
    assert!(
        env.as_array().unwrap().iter().any(|e| e == "MESSAGE=v7-$"),
        "{env}"
    );

    // A release written as an override file (seed 003), the files named
    // as compose takes them: a file more is compose's to read; the next
    // release's file in place of it, the same but for image and values, is
    // followed.
    let release = |image: &str, message: &str| {
        format!(
            "services:\n  web:\n    image: {image}\n    environment:\n      - MESSAGE={message}\n"
        )
    };
    let before = replicas(&project);
    std::fs::write(dir.path().join("release-8.yml"), release(V1, "v8")).unwrap();
    let files = [
        ("COMPOSE_FILE", "docker-compose.yml:release-8.yml"),
        ("COMPOSE_PROJECT_NAME", &project),
    ];
    let said = deploy_and_compare(dir.path(), &project, &before, V1, &files);
    assert!(!said.contains("compose did not run"), "{said}");
    let before = replicas(&project);
    std::fs::write(dir.path().join("release-9.yml"), release(V2, "v9")).unwrap();
    let files = [
        ("COMPOSE_FILE", "docker-compose.yml:release-9.yml"),
        ("COMPOSE_PROJECT_NAME", &project),
    ];
    let said = deploy_and_compare(dir.path(), &project, &before, V2, &files);
    assert!(
        said.contains(
            "(web: image, MESSAGE; files release-9.yml in place of release-8.yml); compose did not run"
        ),
        "{said}"
    );

    // The variables from `--env-file` (compose records it as given): one
    // file less is compose's to read; then its values, followed.
    let name = [("COMPOSE_PROJECT_NAME", project.as_str())];
    let env_file = ["--env-file", "release.env"];
    let release = |tag: &str, message: &str| {
        let env = format!("APP_IMAGE=nginx-rollout-fixture/app\nTAG={tag}\nMESSAGE={message}\n");
        std::fs::write(dir.path().join("release.env"), env).unwrap();
    };
    let before = replicas(&project);
    release("v1", "v10");
    let said = deploy_and_compare_with(dir.path(), &project, &before, V1, &name, &env_file);
    assert!(!said.contains("compose did not run"), "{said}");
    let before = replicas(&project);
    release("v2", "v11");
    let said = deploy_and_compare_with(dir.path(), &project, &before, V2, &name, &env_file);
    assert!(
        said.contains("(web: image, MESSAGE; variables MESSAGE, TAG); compose did not run"),
        "{said}"
    );
}

/// Volumes across a recreate, by compose's rules: an anonymous volume the
/// file still declares is kept, one it no longer declares is left behind,
/// one whose place is a tmpfs now is not bound there, and a long-syntax
/// volume takes the old one's name.
#[test]
fn volumes_are_kept_as_compose_keeps_them() {
    if skip() {
        return;
    }
    let mut scope = Scope::new("oraclevol");
    let with = COMPOSE.replace(
        "      - /data\n",
        "      - /data\n      - /gone\n      - /scratch\n      - type: volume\n        target: /long\n",
    );
    assert!(with.contains("/gone") && with.contains("target: /long"));
    let (dir, project) = project_up(&mut scope, &with);
    let before = replicas(&project);
    assert!(before.iter().all(|(_, v)| volume_at(v, "/gone").is_some()));

    let changed = with
        .replace("      - /gone\n      - /scratch\n", "")
        .replace(
            "    user: \"0\"\n",
            "    user: \"0\"\n    tmpfs: [/scratch]\n",
        )
        .replace("- MESSAGE=v1", "- MESSAGE=v2");
    assert!(!changed.contains("/gone") && changed.contains("tmpfs: [/scratch]"));
    std::fs::write(dir.path().join("docker-compose.yml"), &changed).unwrap();
    let (said, pairs) = deploy_then_recreate(dir.path(), &project, &before, &[], &[]);
    assert!(!said.contains("compose did not run"), "{said}");
    // Compose's recreate sets the long-syntax volume's source to the old
    // volume before it hashes the service, so its containers carry a hash its
    // own `up -d` takes for stale. The fast path's is compose's `config
    // --hash` (which `up -d` just accepted); all else is the same.
    let hashed = compose(dir.path(), &project, &["config", "--hash=web"], &[]);
    assert_ok(&hashed);
    let hash = String::from_utf8_lossy(&hashed.stdout)
        .trim()
        .strip_prefix("web ")
        .expect("web's hash")
        .to_string();
    const HASH: &str = "com.docker.compose.config-hash";
    for (n, mut fast, mut oracle) in pairs {
        assert_eq!(fast["Config"]["Labels"][HASH], hash.as_str(), "replica {n}");
        assert_ne!(
            oracle["Config"]["Labels"][HASH],
            hash.as_str(),
            "replica {n}"
        );
        for v in [&mut fast, &mut oracle] {
            v["Config"]["Labels"].as_object_mut().unwrap().remove(HASH);
        }
        assert_same(n, &fast, &oracle);
    }

    // What both kept: the same volumes as before at /data and /long.
    let after = replicas(&project);
    for ((n, old), (_, new)) in before.iter().zip(&after) {
        for place in ["/data", "/long"] {
            assert!(volume_at(old, place).is_some(), "replica {n}: {place}");
            assert_eq!(
                volume_at(new, place),
                volume_at(old, place),
                "replica {n}: {place}"
            );
        }
        assert_eq!(volume_at(new, "/gone"), None, "replica {n}");
        assert_eq!(volume_at(new, "/scratch"), None, "replica {n}: a tmpfs now");
        assert!(
            new["HostConfig"]["Tmpfs"]["/scratch"].is_string(),
            "replica {n}"
        );
    }
}

/// The name of the volume mounted at `place` in an inspected container.
fn volume_at(container: &Value, place: &str) -> Option<String> {
    container["Mounts"]
        .as_array()?
        .iter()
        .find(|m| m["Destination"] == place && m["Type"] == "volume")
        .and_then(|m| m["Name"].as_str().map(str::to_string))
}

const V1: &str = "nginx-rollout-fixture/app:v1";
const V2: &str = "nginx-rollout-fixture/app:v2";

/// Deploys the changed files by the fast path (with `env` in its
/// environment), checks that `up -d` changes nothing after it, and that
/// compose recreates the same containers (of `image`) from the same files
/// and environment; returns what the deploy said.
fn deploy_and_compare(
    dir: &Path,
    project: &str,
    before: &[(u32, Value)],
    image: &str,
    env: &[(&str, &str)],
) -> String {
    deploy_and_compare_with(dir, project, before, image, env, &[])
}

/// [`deploy_and_compare`], with compose's global options `options` given to
/// the deploy and to compose alike.
fn deploy_and_compare_with(
    dir: &Path,
    project: &str,
    before: &[(u32, Value)],
    image: &str,
    env: &[(&str, &str)],
    options: &[&str],
) -> String {
    let (said, pairs) = deploy_then_recreate(dir, project, before, env, options);
    for (n, fast, oracle) in pairs {
        assert_same(n, &fast, &oracle);
        // The change is there: it is the new version.
        assert_eq!(fast["Config"]["Image"], image);
    }
    said
}

/// Deploys the changed files by the fast path, checks that `up -d` changes
/// nothing after it, then has compose recreate the same containers from the
/// same files; returns what the deploy said and, by compose number, the fast
/// path's container beside compose's, normalized.
fn deploy_then_recreate(
    dir: &Path,
    project: &str,
    before: &[(u32, Value)],
    env: &[(&str, &str)],
    options: &[&str],
) -> (String, Vec<(u32, Value, Value)>) {
    let with = |args: &[&'static str]| [options, args].concat();
    let out = Command::new(tool_path())
        .envs(env.iter().copied())
        .args([
            "deploy",
            "u",
            "--yes",
            "--mode",
            "compose",
            "--order",
            "stop-first",
            "--monitor",
            "0s",
        ])
        .args(options)
        .arg("--nginx")
        .arg(format!("{project}_nginx_1"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_ok(&out);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !said.contains("compose CLI"),
        "the fast path was taken:\n{said}"
    );
    let up = compose(dir, project, &with(&["up", "-d"]), env);
    let up_said = String::from_utf8_lossy(&up.stderr);
    assert!(
        !up_said.contains("Recreating") && !up_said.contains("Creating"),
        "compose sees its own containers up to date:\n{up_said}"
    );
    let fast = replicas(project);

    // The oracle: compose recreates the same containers from the same files.
    assert_ok(&compose(
        dir,
        project,
        &with(&["up", "-d", "--no-deps", "--force-recreate", "web"]),
        env,
    ));
    let oracle = replicas(project);
    let ids: Vec<String> = before
        .iter()
        .chain(&fast)
        .chain(&oracle)
        .map(|(_, v)| v["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fast.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        oracle.iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );
    let pairs = fast
        .into_iter()
        .zip(oracle)
        .map(|((n, f), (_, o))| (n, normalized(f, &ids), normalized(o, &ids)))
        .collect();
    (said, pairs)
}

/// Replica `n` as the fast path made it inspects as compose made it.
fn assert_same(n: u32, fast: &Value, oracle: &Value) {
    let mut diff = Vec::new();
    differences(fast, oracle, "", &mut diff);
    assert!(
        diff.is_empty(),
        "replica {n}: fast path (left) vs compose (right):\n{}",
        diff.join("\n")
    );
}
