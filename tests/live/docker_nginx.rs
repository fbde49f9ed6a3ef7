//! The nginx side of the Docker layer against the real daemon and the fixture
//! nginx image: finding the container, its config files, the reload protocol.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::RestartContainerOptionsBuilder;
use nginx_rollout::conf::Fs;
use nginx_rollout::docker::DaemonLocation::{Local, Remote};
use nginx_rollout::nginx::{
    ConfigTester, ContainerFs, NginxContainer, NginxTestError, ReloadOutcome, Workers, find_nginx,
    reload, test_config, wait_old_workers_exit, worker_pids,
};

use crate::support::sandbox::{Sandbox, Spec};
use crate::support::{APP_IMAGE, NGINX_IMAGE};

const CONF: &str = "/etc/nginx/nginx.conf";
const EXTRA: &str = "/etc/nginx/conf.d/extra.conf";

/// nginx.conf of the test stack: proxies to `app:3000` (when there is one),
/// exposes stub_status, includes the non-mounted `conf.d/*.conf`.
fn nginx_conf(with_app: bool) -> String {
    let upstream = if with_app {
        "upstream apps { server app:3000; }\n    server { listen 8080; location / { proxy_pass http://apps; proxy_next_upstream off; } }"
    } else {
        ""
    };
    format!(
        "worker_processes 1;\nerror_log /dev/stderr warn;\npid /run/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n    access_log off;\n    {upstream}\n\
         \x20   server {{ listen 80; location = /status {{ stub_status; }} }}\n\
         \x20   include /etc/nginx/conf.d/*.conf;\n}}\n"
    )
}

/// Starts (optionally) an app aliased `app`, then an nginx whose nginx.conf
/// is a single-file bind mount of a temp file (or, with `mounted == false`,
/// lives only in the container). Returns the container and the host file.
async fn start_nginx(
    sb: &Sandbox,
    spec: Spec,
    with_app: bool,
    mounted: bool,
) -> (NginxContainer, PathBuf) {
    if with_app {
        sb.start(Spec::new("app", APP_IMAGE).alias("app")).await;
    }
    let host_conf = sb.dir.path().join(format!("{}.conf", sb.prefix));
    std::fs::write(&host_conf, nginx_conf(with_app)).unwrap();
    let spec = spec.file(EXTRA, b"# extra, only inside the container\n", 0o640);
    let spec = if mounted {
        spec.bind(&host_conf, CONF)
    } else {
        spec.file(CONF, nginx_conf(with_app).as_bytes(), 0o644)
    };
    let id = sb.start(spec).await;
    wait_serving(sb, &id).await;
    let nginx = find_nginx(&sb.docker, Local, Some(&id), sb.dir.path())
        .await
        .unwrap();
    (nginx, host_conf)
}

/// Waits (100 tries, 100 ms apart) until nginx in `container` answers its status page.
async fn wait_serving(sb: &Sandbox, container: &str) {
    sb.exec_until_ok(
        container,
        &["wget", "-q", "-O", "-", "http://127.0.0.1/status"],
        100,
    )
    .await;
}

/// Restarts `container` (1 s to stop) and waits until nginx serves again.
async fn restart_nginx(sb: &Sandbox, container: &str) {
    let restart = RestartContainerOptionsBuilder::new().t(1).build();
    sb.docker
        .restart_container(container, Some(restart))
        .await
        .unwrap();
    wait_serving(sb, container).await;
}

/// [`start_nginx`] of the plain fixture nginx, without an app.
async fn start_plain_nginx(sb: &Sandbox, mounted: bool) -> (NginxContainer, PathBuf) {
    start_nginx(sb, Spec::new("nginx", NGINX_IMAGE), false, mounted).await
}

/// Replaces the whole of `path` in the container by `new`, through `fs`.
async fn rewrite(sb: &Sandbox, fs: &ContainerFs, path: &str, new: &[u8]) {
    fs.write(
        &sb.docker,
        Path::new(path),
        &fs.read(Path::new(path)).unwrap(),
        new,
    )
    .await
    .unwrap();
}

/// `nginx -t` passes and a reload starts new workers.
async fn test_and_reload(sb: &Sandbox, nginx: &NginxContainer) -> ReloadOutcome {
    test_config(&sb.docker, nginx).await.unwrap();
    let outcome = reload(&sb.docker, nginx, None, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!outcome.new_workers.is_empty());
    outcome
}

/// One HTTP/1.0 GET to 127.0.0.1:`port`, bounded by a 10 s timeout; the whole response.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn compose_spec(what: &str, image: &str, project: &str, service: &str, dir: &Path) -> Spec {
    Spec::new(what, image)
        .label("com.docker.compose.project", project)
        .label("com.docker.compose.service", service)
        .label(
            "com.docker.compose.project.working_dir",
            &dir.display().to_string(),
        )
        .label(
            "com.docker.compose.project.config_files",
            &dir.join("docker-compose.yml").display().to_string(),
        )
}

#[tokio::test]
async fn finds_by_name_with_conf_path_mounts_and_networks() {
    let Some(sb) = Sandbox::new("byname").await else {
        return;
    };
    let spec = Spec::new("nginx", NGINX_IMAGE).publish(80);
    let (_, host_conf) = start_nginx(&sb, spec, false, true).await;
    let name = sb.name("nginx");
    let port = sb.host_port(&name, 80).await;
    assert!(http_get(port, "/status").contains("Active connections"));

    let n = find_nginx(&sb.docker, Local, Some(&name), sb.dir.path())
        .await
        .unwrap();
    assert_eq!(n.name, name);
    assert_eq!(n.conf_path, Path::new(CONF));
    assert_eq!(n.networks, vec![sb.network.clone()]);
    assert!(n.compose.is_none());
    let mount = n
        .mounts
        .iter()
        .find(|m| m.destination == Path::new(CONF))
        .unwrap();
    assert_eq!((mount.kind.as_str(), &mount.source), ("bind", &host_conf));

    let by_id = find_nginx(&sb.docker, Local, Some(&n.id[..12]), sb.dir.path())
        .await
        .unwrap();
    assert_eq!(by_id.id, n.id);

    let missing = sb.name("nope");
    let err = find_nginx(&sb.docker, Local, Some(&missing), sb.dir.path())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains(&missing), "{err:#}");
}

#[tokio::test]
async fn finds_the_compose_service_of_the_project_in_cwd() {
    let Some(sb) = Sandbox::new("compose").await else {
        return;
    };
    let by_wd = sb.dir.path().join("by-working-dir");
    let by_file = sb.dir.path().join("by-config-file");
    std::fs::create_dir_all(&by_wd).unwrap();
    std::fs::create_dir_all(&by_file).unwrap();
    let project = sb.prefix.clone();
    // A decoy nginx outside any project, and a non-nginx service in the project.
    sb.start(Spec::new("decoy", NGINX_IMAGE)).await;
    sb.start(compose_spec("app", APP_IMAGE, &project, "app", &by_wd))
        .await;
    sb.start(compose_spec(
        "proxy",
        NGINX_IMAGE,
        &project,
        "nginx",
        &by_wd,
    ))
    .await;
    let other = format!("{project}-other");
    sb.start(
        Spec::new("other-proxy", NGINX_IMAGE)
            .label("com.docker.compose.project", &other)
            .label("com.docker.compose.service", "nginx")
            .label(
                "com.docker.compose.project.config_files",
                &by_file.join("docker-compose.yml").display().to_string(),
            ),
    )
    .await;

    let n = find_nginx(&sb.docker, Local, None, &by_wd).await.unwrap();
    assert_eq!(n.name, sb.name("proxy"));
    let compose = n.compose.unwrap();
    assert_eq!(
        (compose.project.as_str(), compose.service.as_str()),
        (project.as_str(), "nginx")
    );

    let n = find_nginx(&sb.docker, Local, None, &by_file).await.unwrap();
    assert_eq!(n.name, sb.name("other-proxy"));
}

#[tokio::test]
async fn ambiguity_lists_the_candidates_and_none_is_an_error() {
    let Some(sb) = Sandbox::new("ambiguous").await else {
        return;
    };
    let two = sb.dir.path().join("two-proxies");
    let none = sb.dir.path().join("no-proxy");
    std::fs::create_dir_all(&two).unwrap();
    std::fs::create_dir_all(&none).unwrap();
    let project = sb.prefix.clone();
    sb.start(compose_spec(
        "edge-a",
        NGINX_IMAGE,
        &project,
        "edge-a",
        &two,
    ))
    .await;
    sb.start(compose_spec(
        "edge-b",
        NGINX_IMAGE,
        &project,
        "edge-b",
        &two,
    ))
    .await;
    let lonely = format!("{project}-lonely");
    sb.start(compose_spec("app", APP_IMAGE, &lonely, "app", &none))
        .await;

    let err = format!(
        "{:#}",
        find_nginx(&sb.docker, Local, None, &two).await.unwrap_err()
    );
    assert!(err.contains("several nginx containers"), "{err}");
    assert!(
        err.contains(&sb.name("edge-a")) && err.contains(&sb.name("edge-b")),
        "{err}"
    );

    let err = format!(
        "{:#}",
        find_nginx(&sb.docker, Local, None, &none)
            .await
            .unwrap_err()
    );
    assert!(err.contains("no nginx container found"), "{err}");
}

#[tokio::test]
async fn reads_mounted_and_container_only_files_and_globs_both() {
    let Some(sb) = Sandbox::new("read").await else {
        return;
    };
    let sites = sb.dir.path().join("sites");
    std::fs::create_dir_all(&sites).unwrap();
    std::fs::write(sites.join("b.conf"), "# b\n").unwrap();
    std::fs::write(sites.join("a.conf"), "# a\n").unwrap();
    std::fs::write(sites.join("notes.txt"), "not config\n").unwrap();
    let spec = Spec::new("nginx", NGINX_IMAGE).bind(&sites, "/etc/nginx/sites");
    let (nginx, host_conf) = start_nginx(&sb, spec, false, true).await;
    let fs = ContainerFs::load(&sb.docker, &nginx).await.unwrap();

    assert_eq!(
        fs.read(Path::new(CONF)).unwrap(),
        std::fs::read(&host_conf).unwrap()
    );
    assert_eq!(
        fs.read(Path::new(EXTRA)).unwrap(),
        b"# extra, only inside the container\n"
    );
    assert!(
        !fs.read(Path::new("/etc/nginx/mime.types"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        fs.glob(Path::new("/etc/nginx/conf.d/*.conf")).unwrap(),
        vec![PathBuf::from(EXTRA)]
    );
    assert_eq!(
        fs.glob(Path::new("/etc/nginx/sites/*.conf")).unwrap(),
        vec![
            PathBuf::from("/etc/nginx/sites/a.conf"),
            PathBuf::from("/etc/nginx/sites/b.conf")
        ]
    );
    assert_eq!(
        fs.read(Path::new("/etc/nginx/sites/a.conf")).unwrap(),
        b"# a\n"
    );
    assert_eq!(fs.host_path(Path::new(CONF)), Some(host_conf));
    assert_eq!(
        fs.host_path(Path::new("/etc/nginx/sites/b.conf")),
        Some(sites.join("b.conf"))
    );
    assert_eq!(fs.host_path(Path::new(EXTRA)), None);

    let err = fs
        .read(Path::new("/etc/nginx/conf.d/missing.conf"))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("missing.conf"), "{err}");
}

#[tokio::test]
async fn writes_in_place_through_the_mount_and_by_archive_otherwise() {
    let Some(sb) = Sandbox::new("write").await else {
        return;
    };
    let (nginx, host_conf) = start_plain_nginx(&sb, true).await;
    let fs = ContainerFs::load(&sb.docker, &nginx).await.unwrap();
    let inode = std::fs::metadata(&host_conf).unwrap().ino();

    let edited = format!("{}# edited\n", nginx_conf(false));
    rewrite(&sb, &fs, CONF, edited.as_bytes()).await;
    assert_eq!(std::fs::metadata(&host_conf).unwrap().ino(), inode);
    assert_eq!(sb.exec_ok(&nginx.id, &["cat", CONF]).await, edited);

    let extra = b"# rewritten through the archive API\n";
    rewrite(&sb, &fs, EXTRA, extra).await;
    assert_eq!(
        sb.exec_ok(&nginx.id, &["cat", EXTRA]).await.as_bytes(),
        extra
    );
    let listing = sb.exec_ok(&nginx.id, &["ls", "-ln", EXTRA]).await;
    assert!(
        listing.starts_with("-rw-r-----"),
        "mode not kept: {listing}"
    );
    assert_eq!(fs.read(Path::new(EXTRA)).unwrap(), extra);
}

#[tokio::test]
async fn as_for_a_remote_daemon_a_bind_mounted_file_is_written_through_the_container() {
    let Some(sb) = Sandbox::new("remote").await else {
        return;
    };
    let (local, host_conf) = start_plain_nginx(&sb, true).await;
    // The same container as a daemon on another host would show it: its
    // mount sources and pids are not this host's, so none is used.
    let nginx = find_nginx(&sb.docker, Remote, Some(&local.id), sb.dir.path())
        .await
        .unwrap();
    assert_eq!(nginx.conf_path, local.conf_path);
    let fs = ContainerFs::load(&sb.docker, &nginx).await.unwrap();
    assert_eq!(fs.host_path(Path::new(CONF)), None);
    assert_eq!(
        fs.read(Path::new(CONF)).unwrap(),
        nginx_conf(false).as_bytes()
    );
    let inode = std::fs::metadata(&host_conf).unwrap().ino();

    // The archive API cannot replace a single-file bind mount (EBUSY): the
    // file is rewritten in place from inside the container.
    let edited = format!("{}# edited as if remote\n", nginx_conf(false));
    fs.write(
        &sb.docker,
        Path::new(CONF),
        nginx_conf(false).as_bytes(),
        edited.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read_to_string(&host_conf).unwrap(), edited);
    assert_eq!(std::fs::metadata(&host_conf).unwrap().ino(), inode);
    assert_eq!(fs.read(Path::new(CONF)).unwrap(), edited.as_bytes());
    test_and_reload(&sb, &nginx).await;
}

#[tokio::test]
async fn config_only_inside_the_container_is_read_written_and_reloaded() {
    let Some(sb) = Sandbox::new("inside").await else {
        return;
    };
    let (nginx, _) = start_plain_nginx(&sb, false).await;
    assert!(nginx.mounts.is_empty());
    let fs = ContainerFs::load(&sb.docker, &nginx).await.unwrap();
    assert_eq!(
        fs.read(Path::new(CONF)).unwrap(),
        nginx_conf(false).as_bytes()
    );
    assert_eq!(fs.host_path(Path::new(CONF)), None);

    let edited = format!("{}# edited inside\n", nginx_conf(false));
    rewrite(&sb, &fs, CONF, edited.as_bytes()).await;
    assert_eq!(sb.exec_ok(&nginx.id, &["cat", CONF]).await, edited);
    test_and_reload(&sb, &nginx).await;
}

#[tokio::test]
async fn a_host_file_replaced_by_rename_is_reported_as_the_inode_trap() {
    let Some(sb) = Sandbox::new("inode").await else {
        return;
    };
    let (nginx, host_conf) = start_plain_nginx(&sb, true).await;
    let fs = ContainerFs::load(&sb.docker, &nginx).await.unwrap();
    // What `sed -i` does: write a new file and rename it over the old one.
    let tmp = host_conf.with_extension("sed-tmp");
    std::fs::write(&tmp, format!("{}# sed -i\n", nginx_conf(false))).unwrap();
    std::fs::rename(&tmp, &host_conf).unwrap();

    let err = fs
        .write(
            &sb.docker,
            Path::new(CONF),
            &fs.read(Path::new(CONF)).unwrap(),
            format!("{}# ours\n", nginx_conf(false)).as_bytes(),
        )
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(CONF) && msg.contains(&host_conf.display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("inode") && msg.contains("replaced"), "{msg}");
}

#[tokio::test]
async fn rejected_config_is_reported_and_reload_changes_nothing_until_fixed() {
    let Some(sb) = Sandbox::new("reload").await else {
        return;
    };
    let (nginx, _) = start_plain_nginx(&sb, true).await;
    let fs = ContainerFs::load(&sb.docker, &nginx).await.unwrap();
    let before = worker_pids(&sb.docker, &nginx).await.unwrap();
    assert!(!before.active.is_empty() && before.master != 0);

    let broken = nginx_conf(false).replace(
        "access_log off;",
        "access_log off;\n    no_such_directive on;",
    );
    rewrite(&sb, &fs, CONF, broken.as_bytes()).await;
    match test_config(&sb.docker, &nginx).await {
        Err(NginxTestError::Rejected {
            container, message, ..
        }) => {
            assert_eq!(container, nginx.name);
            assert!(
                message.contains("unknown directive \"no_such_directive\""),
                "{message}"
            );
            assert!(message.contains("/etc/nginx/nginx.conf:"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // `nginx -s reload` parses the file itself and refuses: an error, no reload.
    let err = reload(&sb.docker, &nginx, None, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("no_such_directive"), "{err:#}");
    assert_eq!(
        worker_pids(&sb.docker, &nginx).await.unwrap().active,
        before.active
    );

    // A listen address the master cannot bind: `-s reload` exits 0, the master
    // keeps the old config. Only the absence of new workers tells.
    let unbindable = nginx_conf(false).replace("listen 80;", "listen 80; listen 192.0.2.1:81;");
    rewrite(&sb, &fs, CONF, unbindable.as_bytes()).await;
    let err = reload(&sb.docker, &nginx, None, Duration::from_secs(1))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("did not start new workers"), "{msg}");
    assert!(
        msg.contains("bind() to 192.0.2.1:81 failed"),
        "log tail missing: {msg}"
    );
    assert_eq!(
        worker_pids(&sb.docker, &nginx).await.unwrap().active,
        before.active
    );

    let current = fs.read(Path::new(CONF)).unwrap();
    fs.write(
        &sb.docker,
        Path::new(CONF),
        &current,
        nginx_conf(false).as_bytes(),
    )
    .await
    .unwrap();
    reload_and_check(&sb, &nginx, &before).await;
}

#[tokio::test]
async fn old_workers_are_waited_for_until_a_slow_request_completes() {
    let Some(sb) = Sandbox::new("drain").await else {
        return;
    };
    let (nginx, _) = start_nginx(&sb, Spec::new("nginx", NGINX_IMAGE), true, true).await;
    sb.exec_until_ok(
        &nginx.id,
        &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/health"],
        100,
    )
    .await;

    let docker = sb.docker.clone();
    let id = nginx.id.clone();
    let slow = tokio::spawn(async move {
        nginx_rollout::docker::exec_in(
            &docker,
            &id,
            &[
                "wget",
                "-q",
                "-O",
                "-",
                "http://127.0.0.1:8080/slow?ms=2000",
            ],
        )
        .await
    });
    // In flight once stub_status counts it next to the status request itself.
    let mut in_flight = false;
    for _ in 0..100 {
        let status = sb
            .exec_ok(
                &nginx.id,
                &["wget", "-q", "-O", "-", "http://127.0.0.1/status"],
            )
            .await;
        let writing: u32 = status
            .split("Writing:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if writing >= 2 {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(in_flight, "the slow request never reached nginx");

    let outcome = reload(&sb.docker, &nginx, None, Duration::from_secs(10))
        .await
        .unwrap();
    let shutting = worker_pids(&sb.docker, &nginx).await.unwrap().shutting_down;
    assert_eq!(
        shutting, outcome.old_workers,
        "old worker should still be serving"
    );
    let err = wait_old_workers_exit(
        &sb.docker,
        &nginx,
        &outcome.old_workers,
        Duration::from_millis(100),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains(&outcome.old_workers[0].to_string()),
        "{err:#}"
    );

    wait_old_workers_exit(
        &sb.docker,
        &nginx,
        &outcome.old_workers,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let out = slow.await.unwrap().unwrap();
    assert!(
        out.success() && out.stdout.starts_with("Hi there"),
        "{out:?}"
    );
}

#[tokio::test]
async fn an_nginx_under_a_shell_is_found_and_reloaded_through_exec() {
    let Some(sb) = Sandbox::new("undersh").await else {
        return;
    };
    // The main process is the shell: no shortcut through /proc applies, so the
    // config path comes from `nginx -V`, the process list from the top API and
    // the reload from `nginx -s reload`.
    let spec = Spec::new("nginx", NGINX_IMAGE).cmd(&["sh", "-c", "nginx -g 'daemon off;'; exit 1"]);
    let (nginx, _) = start_nginx(&sb, spec, false, true).await;
    assert_eq!(nginx.conf_path, Path::new(CONF));
    let before = worker_pids(&sb.docker, &nginx).await.unwrap();
    assert_ne!(Some(before.master), nginx.main_pid);
    reload_and_check(&sb, &nginx, &before).await;
}

#[tokio::test]
async fn a_restarted_nginx_is_followed_to_its_new_main_process() {
    let Some(sb) = Sandbox::new("restarted").await else {
        return;
    };
    let (nginx, _) = start_plain_nginx(&sb, false).await;
    assert!(nginx.is_current());
    let pid = nginx.main_pid.unwrap();
    // Whether the tool sees the main process in this host's /proc (the test
    // is not in another pid namespace, the shortcuts are not turned off).
    let seen_here = std::env::var_os("NGINX_ROLLOUT_NO_PROCFS").is_none_or(|v| v.is_empty())
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|cgroup| cgroup.contains(&nginx.id));
    restart_nginx(&sb, &nginx.id).await;
    // Where it saw the main process, it sees that it is gone.
    assert_eq!(nginx.is_current(), !seen_here);

    let now = nginx.restarted(&sb.docker).await.unwrap();
    assert!(now.is_current());
    assert_ne!(now.main_pid, nginx.main_pid);
    // The new master is the main process: listed, signalled and waited for as such.
    let before = worker_pids(&sb.docker, &now).await.unwrap();
    assert_eq!(Some(before.master), now.main_pid);
    reload_and_check(&sb, &now, &before).await;
    // The files only inside the container are read through it too.
    let fs = ContainerFs::load(&sb.docker, &now).await.unwrap();
    assert!(fs.is_current());
    assert_eq!(
        fs.read(Path::new(EXTRA)).unwrap(),
        b"# extra, only inside the container\n"
    );
}

/// `nginx -t`, reload, wait for the old workers: afterwards the same master
/// runs only new workers.
async fn reload_and_check(sb: &Sandbox, nginx: &NginxContainer, before: &Workers) {
    let outcome = test_and_reload(sb, nginx).await;
    assert_eq!(outcome.old_workers, before.active);
    assert!(
        outcome
            .new_workers
            .iter()
            .all(|p| !before.active.contains(p))
    );
    wait_old_workers_exit(
        &sb.docker,
        nginx,
        &outcome.old_workers,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let after = worker_pids(&sb.docker, nginx).await.unwrap();
    assert_eq!(after.master, before.master);
    assert_eq!(after.active, outcome.new_workers);
}

/// The pids of the shells a [`ConfigTester`] keeps in `container`.
async fn kept_shells(sb: &Sandbox, container: &str) -> Vec<String> {
    let top = sb
        .docker
        .top_processes(
            container,
            Some(bollard::query_parameters::TopOptions {
                ps_args: "-eo pid,args".into(),
            }),
        )
        .await
        .unwrap();
    let rows = top.processes.unwrap_or_default();
    rows.iter()
        .filter(|row| {
            row.last()
                .is_some_and(|args| args.contains("nginx-rollout-test"))
        })
        .map(|row| row[0].clone())
        .collect()
}

/// Now, as the daemon's event filters take a time.
fn event_time() -> String {
    let now = chrono::Utc::now();
    format!("{}.{:09}", now.timestamp(), now.timestamp_subsec_nanos())
}

/// How many execs the daemon created in `container` since `since` ([`event_time`]).
async fn execs_since(sb: &Sandbox, container: &str, since: &str) -> usize {
    use futures_util::StreamExt;
    let until = chrono::Utc::now().timestamp() + 1;
    let options = bollard::query_parameters::EventsOptions {
        since: Some(since.to_string()),
        until: Some(until.to_string()),
        filters: Some(
            [
                ("container".to_string(), vec![container.to_string()]),
                ("event".to_string(), vec!["exec_create".to_string()]),
            ]
            .into(),
        ),
    };
    let events: Vec<_> = sb.docker.events(Some(options)).collect().await;
    events.into_iter().map(Result::unwrap).count()
}

/// Waits (10 s at most) until no kept shell runs in `container`.
async fn wait_no_kept_shell(sb: &Sandbox, container: &str) {
    for _ in 0..100 {
        if kept_shells(sb, container).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("a kept shell still runs in {container} 10 s after its tester was dropped");
}

#[tokio::test]
async fn the_kept_shell_tests_as_exec_does_one_exec_for_every_test_and_ends_with_its_tester() {
    let Some(sb) = Sandbox::new("kepttest").await else {
        return;
    };
    let (nginx, _) = start_plain_nginx(&sb, true).await;
    let fs = ContainerFs::load(&sb.docker, &nginx).await.unwrap();
    let since = event_time();
    let tester = ConfigTester::default();
    tester.start_ahead(&sb.docker, &nginx);
    tester.test(&sb.docker, &nginx).await.unwrap();
    let shells = kept_shells(&sb, &nginx.id).await;
    assert_eq!(shells.len(), 1, "{shells:?}");

    let broken = nginx_conf(false).replace(
        "access_log off;",
        "access_log off;\n    no_such_directive on;",
    );
    rewrite(&sb, &fs, CONF, broken.as_bytes()).await;
    match tester.test(&sb.docker, &nginx).await {
        Err(NginxTestError::Rejected {
            container, message, ..
        }) => {
            assert_eq!(container, nginx.name);
            assert!(
                message.contains("unknown directive \"no_such_directive\""),
                "{message}"
            );
            assert!(message.contains("/etc/nginx/nginx.conf:"), "{message}");
            // nginx's words only, not the shell's verdict line.
            assert!(!message.contains("nginx-rollout-test"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    rewrite(&sb, &fs, CONF, nginx_conf(false).as_bytes()).await;
    tester.test(&sb.docker, &nginx).await.unwrap();
    // Three tests, one shell, one exec: the one that started it.
    assert_eq!(kept_shells(&sb, &nginx.id).await, shells);
    assert_eq!(execs_since(&sb, &nginx.id, &since).await, 1);

    drop(tester);
    wait_no_kept_shell(&sb, &nginx.id).await;
}

#[tokio::test]
async fn without_a_shell_or_after_a_restart_the_tester_still_tests() {
    let Some(sb) = Sandbox::new("shellless").await else {
        return;
    };
    let (nginx, _) = start_plain_nginx(&sb, false).await;
    let fs = ContainerFs::load(&sb.docker, &nginx).await.unwrap();
    let tester = ConfigTester::default();
    tester.test(&sb.docker, &nginx).await.unwrap();
    let first = kept_shells(&sb, &nginx.id).await;
    assert_eq!(first.len(), 1, "{first:?}");

    // A restart ends the shell: the next test, through the new main
    // process, starts another.
    restart_nginx(&sb, &nginx.id).await;
    let nginx = nginx.restarted(&sb.docker).await.unwrap();
    tester.test(&sb.docker, &nginx).await.unwrap();
    let second = kept_shells(&sb, &nginx.id).await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);

    // A container without `sh`: every test is one exec, with nginx's verdict.
    drop(tester);
    wait_no_kept_shell(&sb, &nginx.id).await;
    sb.exec_ok(&nginx.id, &["busybox", "rm", "/bin/sh"]).await;
    let tester = ConfigTester::default();
    tester.start_ahead(&sb.docker, &nginx);
    tester.test(&sb.docker, &nginx).await.unwrap();
    let broken = nginx_conf(false).replace("events {", "events { no_such_directive on;");
    rewrite(&sb, &fs, CONF, broken.as_bytes()).await;
    let since = event_time();
    match tester.test(&sb.docker, &nginx).await {
        Err(NginxTestError::Rejected { message, .. }) => {
            assert!(
                message.contains("unknown directive \"no_such_directive\""),
                "{message}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // Straight to exec: the tester does not try a shell again.
    assert_eq!(execs_since(&sb, &nginx.id, &since).await, 1);
    assert!(kept_shells(&sb, &nginx.id).await.is_empty());
}
