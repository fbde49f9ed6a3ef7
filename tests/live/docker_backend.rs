//! The backend side of the Docker layer against the real dockerd: mapping
//! servers to containers, capturing specs, recreating, compose mode, health.
use std::collections::HashMap;
use std::time::Duration;

use nginx_rollout::backends::{
    ComposeCli, ComposeCliProbe, ComposeProject, ContainerSpec, HealthError, HealthSource, Probe,
    ProjectQuery, ReadingAhead, Recreated, Resolved, backend_by_name, capture_spec,
    compose_container, compose_named, compose_recreate, compose_templates, create_and_start,
    create_replacement, failed_within, next_slot, recreate_stop_first, rename, resolve_backend,
    resolve_backends, stop_and_remove, wait_healthy,
};
use nginx_rollout::docker::{ContainerInspectResponse, Docker, Endpoint};

use crate::support::scope::Scope;
use crate::support::{
    APP_IMAGE as APP, NGINX_IMAGE as NGINX, connect, docker, endpoint, inspect, skip,
};

/// A healthcheck that passes within a fraction of a second (and fails
/// within one, 3 × 200 ms; three retries, so that one check slower than its
/// timeout on a busy machine does not make a sound container unhealthy).
const FAST_HEALTH: [&str; 8] = [
    "--health-cmd",
    "wget -q -O /dev/null http://127.0.0.1:3000/health",
    "--health-interval",
    "200ms",
    "--health-timeout",
    "1s",
    "--health-retries",
    "3",
];

/// No reading script started ahead.
static NOT_AHEAD: ReadingAhead = ReadingAhead::none();

/// The compose CLI installed here, reaching `daemon`.
fn installed_compose(daemon: &Endpoint) -> ComposeCli<'_> {
    let Some(kind) = ComposeCliProbe::start().get() else {
        panic!("no compose CLI installed (scripts/dev-env.sh installs docker-compose)");
    };
    ComposeCli {
        kind,
        daemon,
        ahead: &NOT_AHEAD,
    }
}

/// `docker run -d --name PREFIX-app --network PREFIX-net ARGS… APP` in `s`:
/// the network and the container.
fn app_on_network(s: &mut Scope, args: &[&str]) -> (String, String) {
    let net = s.network("net");
    let mut argv = vec!["--network", &net];
    argv.extend_from_slice(args);
    argv.push(APP);
    let name = s.run("app", &argv);
    (net, name)
}

/// Container `id` as the daemon inspects it now.
async fn old_of(d: &Docker, id: &str) -> ContainerInspectResponse {
    d.inspect_container(id, None).await.unwrap()
}

fn health_error(e: &anyhow::Error) -> &HealthError {
    e.downcast_ref::<HealthError>()
        .unwrap_or_else(|| panic!("not a health error: {e:#}"))
}

#[tokio::test]
async fn resolves_by_compose_service_name_alias_and_ip() {
    if skip() {
        return;
    }
    let mut s = Scope::new("resolve");
    let net = s.network("net");
    let other = s.network("other");
    let service = s.name("svc");
    let by_label = s.run(
        "labelled",
        &[
            "--network",
            &net,
            "--label",
            &format!("com.docker.compose.project={}", s.prefix),
            "--label",
            &format!("com.docker.compose.service={service}"),
            APP,
        ],
    );
    let alias = s.name("alias");
    let by_alias = s.run(
        "aliased",
        &["--network", &net, "--network-alias", &alias, APP],
    );
    let by_ip = s.run("ip", &["--network", &net, APP]);
    let ip = inspect(
        &by_ip,
        &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
    );
    let elsewhere = s.run("elsewhere", &["--network", &other, APP]);
    let d = connect().await.unwrap();
    let nets = [net.clone()];

    let b = resolve_backend(&d, &nets, &service).await.unwrap();
    assert_eq!(b.name, by_label);
    assert_eq!(b.compose.as_ref().unwrap().service, service);
    assert_eq!(b.image, APP);
    assert_eq!(b.networks, nets);
    assert_eq!(
        resolve_backend(&d, &nets, &by_alias).await.unwrap().name,
        by_alias
    );
    assert_eq!(
        resolve_backend(&d, &nets, &alias).await.unwrap().name,
        by_alias
    );
    assert_eq!(resolve_backend(&d, &nets, &ip).await.unwrap().name, by_ip);

    // Not on a network shared with nginx: not found, and the error lists who is.
    let err = resolve_backend(&d, &nets, &elsewhere)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("server {elsewhere}")), "{err}");
    assert!(err.contains(&by_alias) && err.contains(&alias), "{err}");

    // Two containers answering to one alias: ambiguous for one container,
    // and a replica set for a line (both, in name order).
    let twin = s.run("twin", &["--network", &net, "--network-alias", &alias, APP]);
    let err = resolve_backend(&d, &nets, &alias)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ambiguous") && err.contains(&twin), "{err}");
    match resolve_backends(&d, &nets, &alias).await.unwrap() {
        Resolved::Replicas(all) => assert_eq!(
            all.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            [by_alias.as_str(), twin.as_str()]
        ),
        Resolved::One(b) => panic!("one container {}", b.name),
    }

    // `--map SERVER=CONTAINER` path.
    assert_eq!(backend_by_name(&d, &twin).await.unwrap().name, twin);
    assert!(backend_by_name(&d, &s.name("missing")).await.is_err());
}

#[tokio::test]
async fn compose_labels_an_image_carries_are_not_taken_as_compose_s() {
    if skip() {
        return;
    }
    let mut s = Scope::new("inherit");
    let net = s.network("net");
    // An image whose author wrote compose's labels: every container made
    // from it (`docker run` here) inherits them, naming compose files of the
    // author's choosing.
    let service = s.name("svc");
    let image = s.image_with(
        "labelled",
        &[
            &format!("LABEL com.docker.compose.project={}", s.prefix),
            &format!("LABEL com.docker.compose.service={service}"),
            "LABEL com.docker.compose.project.working_dir=/tmp/not-compose-s",
            "LABEL com.docker.compose.project.config_files=docker-compose.yml",
        ],
    );
    let inherited = s.run("inherited", &["--network", &net, &image]);
    let d = connect().await.unwrap();
    let nets = [net.clone()];
    let b = resolve_backend(&d, &nets, &inherited).await.unwrap();
    assert_eq!(b.name, inherited);
    assert_eq!(b.compose, None, "labels from the image are not compose's");
    match resolve_backends(&d, &nets, &service).await.unwrap() {
        Resolved::One(b) => assert_eq!((b.name.as_str(), b.compose), (inherited.as_str(), None)),
        Resolved::Replicas(all) => panic!("{} replicas", all.len()),
    }
    assert_eq!(backend_by_name(&d, &inherited).await.unwrap().compose, None);
    // The same labels given to the container itself are taken.
    let given = s.run(
        "given",
        &[
            "--network",
            &net,
            "--label",
            &format!("com.docker.compose.project={}", s.prefix),
            "--label",
            "com.docker.compose.service=given",
            APP,
        ],
    );
    let b = resolve_backend(&d, &nets, &given).await.unwrap();
    assert_eq!(b.compose.unwrap().service, "given");
}

#[tokio::test]
async fn capture_spec_drops_image_defaults_but_keeps_explicit_values() {
    if skip() {
        return;
    }
    let mut s = Scope::new("spec");
    let (net, name) = app_on_network(
        &mut s,
        &[
            "-e",
            "MESSAGE=explicit",
            "--label",
            "team=web",
            "--stop-timeout",
            "7",
        ],
    );
    let d = connect().await.unwrap();
    let spec = capture_spec(&d, &name).await.unwrap();
    assert_eq!(spec.name, name);
    assert_eq!(spec.image, APP);
    // PORT=3000 (and the image's PATH, if any) came from the image.
    assert_eq!(spec.config.env, Some(vec!["MESSAGE=explicit".to_string()]));
    assert_eq!(spec.config.cmd, None);
    assert_eq!(spec.config.exposed_ports, None);
    assert_eq!(spec.config.hostname, None);
    let labels = spec.config.labels.clone().unwrap();
    assert_eq!(labels.get("team").map(String::as_str), Some("web"));
    assert!(
        !labels.contains_key("nginx-rollout.fixture.inputs"),
        "{labels:?}"
    );
    assert_eq!(spec.config.stop_timeout, Some(7));
    assert_eq!(spec.networks.len(), 1);
    assert_eq!(spec.networks[0].network, net);
    assert!(
        spec.networks[0].aliases.is_empty(),
        "{:?}",
        spec.networks[0].aliases
    );
}

#[tokio::test]
async fn recreate_keeps_name_networks_aliases_mounts_restart_policy_labels_healthcheck() {
    if skip() {
        return;
    }
    let mut s = Scope::new("recreate");
    let front = s.network("front");
    let back = s.network("back");
    let volume = s.name("data");
    s.track_volume(&volume);
    let dir = tempfile::tempdir().unwrap();
    let bind = format!("{}:/conf:ro", dir.path().display());
    let mount = format!("{volume}:/data");
    let mut args = vec![
        "--network",
        &front,
        "--network-alias",
        "web",
        "-e",
        "MESSAGE=v1",
        "--label",
        "team=web",
        "--restart",
        "unless-stopped",
        "-v",
        &mount,
        "-v",
        &bind,
        "-p",
        "127.0.0.1::3000",
    ];
    args.extend_from_slice(&FAST_HEALTH);
    args.push(APP);
    let name = s.run("app", &args);
    docker(&["network", "connect", "--alias", "api", &back, &name]);
    let d = connect().await.unwrap();
    let probe = Probe::Running;
    wait_healthy(&d, &name, &probe, Duration::from_secs(30))
        .await
        .unwrap();

    const KEPT: &str = "{{json .HostConfig.RestartPolicy}}|{{json .HostConfig.Binds}}|\
        {{json .HostConfig.PortBindings}}|{{json .Config.Labels}}|{{json .Config.Healthcheck}}|\
        {{json .Config.ExposedPorts}}|{{json .Config.Cmd}}|{{.Name}}";
    let before = inspect(&name, KEPT);
    let aliases = |c: &str, net: &str| {
        inspect(
            c,
            &format!("{{{{json (index .NetworkSettings.Networks \"{net}\").Aliases}}}}"),
        )
    };
    assert!(aliases(&name, &front).contains("\"web\""));

    let spec = capture_spec(&d, &name)
        .await
        .unwrap()
        .with_env("MESSAGE", "v2");
    let old_id = inspect(&name, "{{.Id}}");
    // Made ahead, while the old container still serves (as while nginx drains it).
    let ready = create_replacement(&d, &name, &spec, &|_, _| false)
        .await
        .unwrap();
    assert_eq!(
        inspect(&ready, "{{.State.Status}}|{{.Name}}"),
        format!("created|/{name}-nr-next")
    );
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    let Recreated {
        stopped,
        id: new_id,
    } = recreate_stop_first(
        &d,
        &old_of(&d, &old_id).await,
        &spec,
        Some(ready.clone()),
        &|_, _| false,
    )
    .await
    .unwrap();
    assert_eq!(
        new_id, ready,
        "the replacement made ahead is the one started"
    );
    // SIGTERM was honoured: the app finished cleanly instead of being killed.
    assert_eq!(stopped.exit_code, 0, "{stopped:?}");
    assert_eq!(stopped.name, name);
    assert_ne!(new_id, old_id);
    assert_eq!(inspect(&name, "{{.Id}}"), new_id);
    let gone = docker(&["ps", "-aq", "--filter", &format!("id={old_id}")]);
    assert_eq!(gone, "", "old container removed");
    let healthy = wait_healthy(&d, &new_id, &probe, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(healthy.source, HealthSource::Docker);
    assert!(healthy.healthy_at >= healthy.started_at);
    // Figures from Docker's own timestamps (reported, not asserted).
    eprintln!(
        "recreate figures: stop {} ms, stopped→started {} ms, started→healthy {} ms",
        (stopped.stopped_at - stopped.stop_requested_at).num_milliseconds(),
        (healthy.started_at - stopped.stopped_at).num_milliseconds(),
        (healthy.healthy_at - healthy.started_at).num_milliseconds()
    );

    assert_eq!(inspect(&name, KEPT), before);
    let env = inspect(&name, "{{json .Config.Env}}");
    assert!(
        env.contains("MESSAGE=v2") && !env.contains("MESSAGE=v1"),
        "{env}"
    );
    assert!(env.contains("PORT=3000"), "{env}");
    assert!(aliases(&name, &front).contains("\"web\""));
    assert!(aliases(&name, &back).contains("\"api\""));
    assert!(!aliases(&name, &front).contains(&old_id[..12]));
    let mounts = inspect(
        &name,
        "{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Destination}} {{end}}",
    );
    assert!(
        mounts.contains(&format!("volume:{volume}:/data")),
        "{mounts}"
    );
    assert!(mounts.contains("bind::/conf"), "{mounts}");
}

#[tokio::test]
async fn a_default_of_the_old_image_gives_way_to_the_new_images_default() {
    if skip() {
        return;
    }
    let mut s = Scope::new("defaults");
    let old_image = s.image_with("old", &["ENV GREETING=old-default"]);
    let new_image = s.image_with("new", &["ENV GREETING=new-default"]);
    let defaulted = s.run("defaulted", &[&old_image]);
    let explicit = s.run("explicit", &["-e", "GREETING=mine", &old_image]);
    let d = connect().await.unwrap();
    for (name, want) in [
        (&defaulted, "GREETING=new-default"),
        (&explicit, "GREETING=mine"),
    ] {
        let spec = capture_spec(&d, name).await.unwrap().with_image(&new_image);
        let info = d.inspect_container(name, None).await.unwrap();
        stop_and_remove(&d, &info).await.unwrap();
        create_and_start(&d, &spec, name).await.unwrap();
        let env = inspect(name, "{{json .Config.Env}}");
        assert!(env.contains(want), "{name}: {env}");
        assert!(!env.contains("old-default"), "{name}: {env}");
        assert_eq!(inspect(name, "{{.Config.Image}}"), new_image);
    }
}

#[tokio::test]
async fn start_first_slot_beside_the_old_container_and_rename() {
    if skip() {
        return;
    }
    let mut s = Scope::new("slot");
    let (_, name) = app_on_network(&mut s, &["--network-alias", "web"]);
    let d = connect().await.unwrap();
    let spec = capture_spec(&d, &name).await.unwrap();
    let slot = next_slot(&name);
    assert_eq!(slot, format!("{name}-b"));
    let id = create_and_start(&d, &spec, &slot).await.unwrap();
    assert_eq!(inspect(&slot, "{{.State.Running}}"), "true");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    let info = d.inspect_container(&name, None).await.unwrap();
    stop_and_remove(&d, &info).await.unwrap();
    let back = s.name("renamed");
    rename(&d, &id, &back).await.unwrap();
    assert_eq!(inspect(&id, "{{.Name}}"), format!("/{back}"));
}

#[tokio::test]
async fn create_failure_removes_the_half_made_container() {
    if skip() {
        return;
    }
    let mut s = Scope::new("createfail");
    let (_, name) = app_on_network(&mut s, &[]);
    let d = connect().await.unwrap();
    let mut spec = capture_spec(&d, &name).await.unwrap();
    let mut ghost = spec.networks[0].clone();
    ghost.network = s.name("no-such-network");
    spec.networks.push(ghost);
    let target = s.name("new");
    let err = create_and_start(&d, &spec, &target).await.unwrap_err();
    assert!(format!("{err:#}").contains(&target), "{err:#}");
    let left = docker(&["ps", "-aq", "--filter", &format!("name=^/{target}$")]);
    assert_eq!(left, "");
}

#[tokio::test]
async fn stop_first_recreate_that_cannot_create_or_start_leaves_the_old_container() {
    if skip() {
        return;
    }
    let mut s = Scope::new("swapfail");
    let (_, name) = app_on_network(&mut s, &["--network-alias", "web"]);
    let d = connect().await.unwrap();
    let old_id = inspect(&name, "{{.Id}}");
    let spec = capture_spec(&d, &name).await.unwrap();

    // No such image: nothing was stopped.
    let missing = spec.clone().with_image(s.name("no-such-image:v9"));
    let err = recreate_stop_first(&d, &old_of(&d, &old_id).await, &missing, None, &|_, _| {
        false
    })
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("create"), "{err:#}");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");

    // The new one cannot start: it is removed, the old one keeps its name.
    let mut broken = spec.clone();
    broken.config.entrypoint = Some(vec!["/no-such-binary".into()]);
    let err = recreate_stop_first(&d, &old_of(&d, &old_id).await, &broken, None, &|_, _| false)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!("container {name}: start")),
        "{err:#}"
    );
    assert_eq!(inspect(&name, "{{.Id}}"), old_id);
    let others = docker(&["ps", "-aq", "--filter", &format!("name={name}-nr")]);
    assert_eq!(others, "", "temporary containers removed");
}

#[tokio::test]
async fn wait_healthy_by_docker_healthcheck() {
    if skip() {
        return;
    }
    let mut s = Scope::new("health");
    let mut args: Vec<&str> = FAST_HEALTH.to_vec();
    args.push(APP);
    let good = s.run("good", &args);
    let mut args: Vec<&str> = vec!["-e", "FAIL_HEALTH=1"];
    args.extend_from_slice(&FAST_HEALTH);
    args.push(APP);
    let bad = s.run("bad", &args);
    let slow = s.run(
        "slow",
        &[
            "--health-cmd",
            "wget -q -O /dev/null http://127.0.0.1:3000/health",
            "--health-interval",
            "1h",
            APP,
        ],
    );
    let d = connect().await.unwrap();
    let limit = Duration::from_secs(30);

    let ok = wait_healthy(&d, &good, &Probe::Running, limit)
        .await
        .unwrap();
    assert_eq!(ok.source, HealthSource::Docker);

    let err = wait_healthy(&d, &bad, &Probe::Running, limit)
        .await
        .unwrap_err();
    assert!(
        matches!(health_error(&err), HealthError::Unhealthy { container, .. } if *container == bad),
        "{err:#}"
    );

    let err = wait_healthy(&d, &slow, &Probe::Running, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(health_error(&err), HealthError::TimedOut { container, .. } if *container == slow),
        "{err:#}"
    );
    assert!(err.to_string().contains(&slow));
}

#[tokio::test]
async fn wait_healthy_by_probe_from_the_nginx_container() {
    if skip() {
        return;
    }
    let mut s = Scope::new("probe");
    let net = s.network("net");
    let nginx = s.run("nginx", &["--network", &net, NGINX]);
    let good = s.run("good", &["--network", &net, "--network-alias", "good", APP]);
    let bad = s.run(
        "bad",
        &[
            "--network",
            &net,
            "--network-alias",
            "bad",
            "-e",
            "FAIL_HEALTH=1",
            APP,
        ],
    );
    let d = connect().await.unwrap();
    let http = |addr: &str| Probe::Http {
        nginx: nginx.clone(),
        addr: addr.into(),
        path: "/health".into(),
    };
    let limit = Duration::from_secs(30);
    let ok = wait_healthy(&d, &good, &http("good:3000"), limit)
        .await
        .unwrap();
    assert_eq!(ok.source, HealthSource::Probe);
    let tcp = Probe::Tcp {
        nginx: nginx.clone(),
        addr: "good:3000".into(),
    };
    wait_healthy(&d, &good, &tcp, limit).await.unwrap();

    let err = wait_healthy(&d, &bad, &http("bad:3000"), Duration::from_secs(2))
        .await
        .unwrap_err();
    let HealthError::TimedOut {
        container, output, ..
    } = health_error(&err)
    else {
        panic!("{err:#}");
    };
    assert_eq!(*container, bad);
    assert!(output.contains("wget"), "{output}");

    let closed = Probe::Tcp {
        nginx: nginx.clone(),
        addr: "good:3999".into(),
    };
    assert!(
        wait_healthy(&d, &good, &closed, Duration::from_secs(2))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn monitor_catches_crash_and_restart_but_passes_a_stable_container() {
    if skip() {
        return;
    }
    let mut s = Scope::new("monitor");
    // The window opens before the containers start: on a busy machine the
    // runs below can take longer than the crashes' second.
    let since = chrono::Utc::now();
    let stable = s.run("stable", &[APP]);
    let crash = s.run("crash", &["-e", "CRASH_AFTER_MS=1000", APP]);
    let restart = s.run(
        "restart",
        &["-e", "CRASH_AFTER_MS=1000", "--restart", "always", APP],
    );
    let d = connect().await.unwrap();
    let window = Duration::from_secs(60);
    // The crashing ones exit 1 s after they start (later on a busy machine):
    // look once both have, inside the window.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while inspect(&crash, "{{.State.Running}}") == "true"
        || inspect(&restart, "{{.RestartCount}}") == "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the crashing containers did not crash within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stable_failed = failed_within(&d, &stable, since, window).await.unwrap();
    assert!(stable_failed.is_none(), "{stable_failed:?}");
    let crashed = failed_within(&d, &crash, since, window).await.unwrap();
    assert!(
        matches!(crashed, Some(HealthError::Exited { code: 1, .. })),
        "{crashed:?}"
    );
    let restarted = failed_within(&d, &restart, since, window).await.unwrap();
    assert!(
        matches!(
            restarted,
            Some(HealthError::Restarted { .. } | HealthError::Exited { .. })
        ),
        "{restarted:?}"
    );
    // A failure after the window is not the window's: seen from a window that
    // ended before the crash, the crashed container passed.
    let before = failed_within(&d, &crash, since, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(before.is_none(), "{before:?}");
}

#[tokio::test]
async fn compose_mode_detects_a_changed_service_and_recreates_it() {
    if skip() {
        return;
    }
    let daemon = endpoint();
    let cli = installed_compose(&daemon);
    let mut s = Scope::new("compose");
    let compose = s.compose_dir();
    let (project, file) = (&compose.project, &compose.file);
    let write = |message: &str| {
        std::fs::write(
            file,
            format!(
                "version: '3.8'\nservices:\n  app1:\n    image: {APP}\n    environment:\n      \
                 - 'MESSAGE={message}'\n    deploy:\n      update_config:\n        parallelism: 2\n        \
                 order: start-first\n"
            ),
        )
        .unwrap()
    };
    write("app1,v1");
    compose.up();

    let d = connect().await.unwrap();
    let container = format!("{project}_app1_1");
    let backend = backend_by_name(&d, &container).await.unwrap();
    let r = backend.compose.clone().expect("compose labels");
    assert_eq!(compose_container(&d, &r).await.unwrap(), backend.id);
    // As nginx on the project's network would name it: `server app1:3000`.
    let default_net = [format!("{project}_default")];
    let resolved = resolve_backend(&d, &default_net, "app1").await.unwrap();
    assert_eq!(resolved.id, backend.id);
    let project = ComposeProject::load(cli, &r).await.unwrap();
    assert!(!project.needs_update(&r).unwrap());

    let config = project.service("app1").unwrap();
    let update = &config["deploy"]["update_config"];
    assert_eq!(update["parallelism"].as_u64(), Some(2));
    assert_eq!(update["order"].as_str(), Some("start-first"));

    write("app1,v2");
    let project = ComposeProject::load(cli, &r).await.unwrap();
    assert!(project.needs_update(&r).unwrap());
    assert!(project.service("nope").is_err());
    compose_recreate(cli, &r).await.unwrap();
    let new_id = compose_container(&d, &r).await.unwrap();
    assert_ne!(new_id, backend.id);
    let env = inspect(&new_id, "{{json .Config.Env}}");
    assert!(env.contains("MESSAGE=app1,v2"), "{env}");
    let now = backend_by_name(&d, &new_id).await.unwrap().compose.unwrap();
    assert!(!project.needs_update(&now).unwrap());

    // A broken compose file: the error carries compose's own message.
    std::fs::write(file, "services: [").unwrap();
    let err = compose_recreate(cli, &now).await.unwrap_err().to_string();
    assert!(
        err.contains("up -d --no-deps --force-recreate app1"),
        "{err}"
    );
    let labels: HashMap<String, String> =
        serde_json::from_str(&inspect(&new_id, "{{json .Config.Labels}}")).unwrap();
    assert_eq!(labels["com.docker.compose.service"], "app1");
}

/// What Docker makes of `spec`: the spec captured from a container created
/// and started from it as `name` (removed again), without its name.
async fn as_made(d: &Docker, spec: &ContainerSpec, name: &str) -> ContainerSpec {
    let id = create_and_start(d, spec, name).await.unwrap();
    let made = capture_spec(d, &id).await;
    docker(&["rm", "-f", &id]);
    ContainerSpec {
        name: String::new(),
        ..made.unwrap()
    }
}

#[tokio::test]
async fn templates_made_beside_config_are_composes_own_or_fall_back() {
    if skip() {
        return;
    }
    let daemon = endpoint();
    let cli = installed_compose(&daemon);
    let mut s = Scope::new("beside");
    let compose = s.compose_dir();
    let (project, file) = (&compose.project, &compose.file);
    // app2 names its container: compose cannot make a second one of it.
    let write = |message: &str| {
        std::fs::write(
            file,
            format!(
                "version: '2.4'\nservices:\n  app1:\n    image: {APP}\n    environment:\n      \
                 - 'MESSAGE=app1,{message}'\n  app2:\n    image: {APP}\n    container_name: {project}-named\n    \
                 environment:\n      - 'MESSAGE=app2,{message}'\n"
            ),
        )
        .unwrap()
    };
    write("v1");
    compose.up();
    let d = connect().await.unwrap();
    let app1 = backend_by_name(&d, &format!("{project}_app1_1"))
        .await
        .unwrap();
    let app2 = backend_by_name(&d, &format!("{project}-named"))
        .await
        .unwrap();
    let (r1, r2) = (app1.compose.clone().unwrap(), app2.compose.clone().unwrap());
    assert!(compose_named(&app1.name, &r1));
    assert!(!compose_named(&app2.name, &r2));
    let containers = || {
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
    };
    let before = containers();

    write("v2");
    let reference = ComposeProject::load(cli, &r1).await.unwrap();
    let made_after = compose_templates(cli, &d, &reference, &r1, &[("app1".into(), 1)])
        .await
        .unwrap()
        .remove("app1")
        .unwrap();
    let query = |hashed: &[&str], templates: &[&str]| ProjectQuery {
        hashed: hashed.iter().map(|s| s.to_string()).collect(),
        templates: templates.iter().map(|s| (s.to_string(), 1)).collect(),
    };

    // Beside `config`: compose's own template, its hash compose's hash.
    let beside = ComposeProject::load_with(cli, &d, &r1, &query(&["app1"], &["app1"]))
        .await
        .unwrap();
    let template = beside.template("app1").expect("a template of app1");
    assert_eq!(
        template, &made_after,
        "the same container as made after `config`"
    );
    let hash = |spec: &ContainerSpec| {
        spec.config.labels.as_ref().unwrap()["com.docker.compose.config-hash"].clone()
    };
    let wanted = ComposeProject::load(cli, &r1).await.unwrap();
    assert!(wanted.needs_update(&r1).unwrap() && beside.needs_update(&r1).unwrap());
    let mut now = r1.clone();
    now.config_hash = Some(hash(template));
    assert!(
        !wanted.needs_update(&now).unwrap(),
        "compose's `config --hash` agrees"
    );
    assert!(!beside.needs_update(&now).unwrap());
    assert!(beside.template("app2").is_none());

    // A hashed service without a template: `config --hash=*` answers for it.
    let mixed = ComposeProject::load_with(cli, &d, &r1, &query(&["app1", "app2"], &["app1"]))
        .await
        .unwrap();
    assert!(mixed.template("app1").is_some());
    assert!(mixed.needs_update(&r2).unwrap());

    // Compose cannot make app2's template: none is kept, every hash is known.
    let failed =
        ComposeProject::load_with(cli, &d, &r1, &query(&["app1", "app2"], &["app1", "app2"]))
            .await
            .unwrap();
    assert!(failed.template("app1").is_none() && failed.template("app2").is_none());
    assert!(failed.needs_update(&r1).unwrap() && failed.needs_update(&r2).unwrap());
    assert!(!failed.needs_update(&now).unwrap());

    // What a deploy runs: compose v1's own code reads the project and asks
    // for the templates in one Python start, compose's create request kept
    // from the daemon. Docker makes of that template the container it makes
    // of compose's own, with the same hashes; when compose cannot make one,
    // no template and every hash.
    let engine = nginx_rollout::docker::engine_version(&d).await.unwrap();
    let read = ComposeProject::load_for(
        cli,
        &d,
        &r1,
        &query(&["app1"], &["app1"]),
        Some(&engine),
        None,
    )
    .await
    .unwrap();
    assert!(read.reading.is_some(), "compose v1's reading script ran");
    let asked = read.project.template("app1").expect("a template of app1");
    assert_eq!(
        asked.host_config.memory, None,
        "as compose asked, no daemon default"
    );
    assert_eq!(
        as_made(&d, asked, &format!("{project}-asked")).await,
        as_made(&d, &made_after, &format!("{project}-made")).await,
        "the same container as compose's own template"
    );
    assert!(!read.project.needs_update(&now).unwrap());
    let both = query(&["app1", "app2"], &["app1", "app2"]);
    let read = ComposeProject::load_for(cli, &d, &r1, &both, Some(&engine), None)
        .await
        .unwrap();
    assert!(read.reading.is_some(), "compose v1's reading script ran");
    let project = &read.project;
    assert!(project.template("app1").is_none() && project.template("app2").is_none());
    assert!(project.needs_update(&r2).unwrap() && !project.needs_update(&now).unwrap());

    assert_eq!(containers(), before, "every template was removed");
    assert_eq!(inspect(&app2.id, "{{.State.Running}}"), "true");
}
