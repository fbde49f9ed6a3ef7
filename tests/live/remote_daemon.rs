//! A deploy against a second daemon, reached over ssh as a daemon on another
//! host would be (`DOCKER_HOST=ssh://root@127.0.0.1:PORT`), then a compose-mode
//! deploy against it through a docker context naming its socket: the compose
//! CLI must reach that daemon too. (Not compose over ssh: docker-compose v1's
//! ssh client hangs at random, docker/compose#8238.) Nothing may land on the
//! first daemon, and the first daemon must still work once the second is
//! gone. Root only; it holds the machine alone.
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::support::remote::{SecondDaemon, bounded};
use crate::support::{
    APP_IMAGE, assert_ok, docker, root, skip, text, tool_path, write_docker_context,
};

/// Copies the seed's stack (compose file and nginx.conf) into `dir`.
fn copy_seed(dir: &Path) {
    let seed = root().join("fixtures/seed002");
    std::fs::create_dir(dir.join("proxy")).unwrap();
    for file in ["docker-compose.yml", "proxy/nginx.conf"] {
        std::fs::copy(seed.join(file), dir.join(file)).unwrap();
    }
}

/// Six answers of the stack's nginx, asked inside its container on `d2`.
fn bodies(d2: &SecondDaemon, nginx: &str) -> BTreeSet<String> {
    (0..6)
        .map(|_| d2.docker(&["exec", nginx, "wget", "-q", "-O", "-", "http://127.0.0.1/"]))
        .collect()
}

fn set(items: [&str; 2]) -> BTreeSet<String> {
    items.into_iter().map(String::from).collect()
}

/// How long one run of the tool may take before it is killed.
const TOOL_LIMIT: u32 = 120;

/// Containers of compose project `project` on the first daemon.
fn on_first_daemon(project: &str) -> String {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ])
}

#[test]
fn deploys_through_a_second_daemon_over_ssh_and_through_a_context() {
    if skip() {
        return;
    }
    let _alone = crate::support::alone();
    let started = Instant::now();
    let Some(d2) = SecondDaemon::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    copy_seed(dir.path());
    let project = format!("nrremote{}", std::process::id());
    let up = bounded(120, "docker-compose")
        .args(["-p", &project, "up", "-d"])
        .current_dir(dir.path())
        .env("DOCKER_HOST", d2.socket())
        .env("NGINX_PORT", "0")
        .output()
        .unwrap();
    assert_ok(&up);
    let nginx = format!("{project}_nginx_1");
    assert_eq!(
        bodies(&d2, &nginx),
        set(["Hi there, I love ! app1,v1", "Hi there, I love ! app2,v1"])
    );
    let conf = dir.path().join("proxy/nginx.conf");
    let (conf_before, inode) = (
        std::fs::read_to_string(&conf).unwrap(),
        std::fs::metadata(&conf).unwrap().ino(),
    );
    eprintln!("second daemon and stack up after {:.1?}", started.elapsed());

    // Engine mode over ssh.
    let deploy = d2
        .over_ssh(&mut bounded(TOOL_LIMIT, tool_path()))
        .args([
            "deploy",
            "apps",
            "--mode",
            "engine",
            "--yes",
            "--monitor",
            "0s",
        ])
        .args(["--env", "MESSAGE=remote-{{service}}"])
        .current_dir(dir.path())
        .env("NGINX_ROLLOUT_STATE_DIR", dir.path().join("state"))
        .env("NO_COLOR", "1")
        .env("NGINX_ROLLOUT_LOG", "nginx_rollout=debug")
        .output()
        .unwrap();
    assert_ok(&deploy);
    let log = String::from_utf8_lossy(&deploy.stderr);
    assert!(
        log.contains(&format!("daemon at {} (DOCKER_HOST): Remote", d2.ssh_url())),
        "{}",
        text(&deploy)
    );
    eprintln!(
        "engine deploy over ssh done after {:.1?}",
        started.elapsed()
    );
    assert_eq!(
        bodies(&d2, &nginx),
        set([
            "Hi there, I love ! remote-app1",
            "Hi there, I love ! remote-app2"
        ])
    );
    let env = d2.docker(&[
        "inspect",
        "-f",
        "{{json .Config.Env}}",
        &format!("{project}_app1_1"),
    ]);
    assert!(env.contains("\"MESSAGE=remote-app1\""), "{env}");
    // The bind-mounted nginx.conf was edited through the container, in place,
    // and is back as it was; the journal is in the state directory on this
    // host (not refused over the remote container's mounts, which are
    // another host's paths), none next to the config.
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), conf_before);
    assert_eq!(std::fs::metadata(&conf).unwrap().ino(), inode);
    assert!(dir.path().join("state/revisions").is_dir());
    assert!(!dir.path().join("proxy/.nginx-rollout").exists());
    assert_eq!(on_first_daemon(&project), "");

    // Compose mode through a docker context naming the second daemon: the
    // compose CLI (v1 ignores contexts) must be pointed at it too.
    let config = tempfile::tempdir().unwrap();
    write_docker_context(config.path(), "nrd2", &d2.socket());
    let compose_file = dir.path().join("docker-compose.yml");
    let compose = std::fs::read_to_string(&compose_file).unwrap();
    std::fs::write(&compose_file, compose.replace(",v1", ",v3")).unwrap();
    let deploy = bounded(TOOL_LIMIT, tool_path())
        .args([
            "--context",
            "nrd2",
            "deploy",
            "apps",
            "--yes",
            "--monitor",
            "0s",
        ])
        .current_dir(dir.path())
        .env("DOCKER_CONFIG", config.path())
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env("NGINX_ROLLOUT_STATE_DIR", dir.path().join("state"))
        .env("NGINX_PORT", "0")
        .env("NO_COLOR", "1")
        .env("NGINX_ROLLOUT_LOG", "nginx_rollout=debug")
        .output()
        .unwrap();
    assert_ok(&deploy);
    let log = String::from_utf8_lossy(&deploy.stderr);
    assert!(
        log.contains(&format!(
            "daemon at {} (context nrd2, from --context): Local",
            d2.socket()
        )),
        "{}",
        text(&deploy)
    );
    assert_eq!(
        bodies(&d2, &nginx),
        set(["Hi there, I love ! app1,v3", "Hi there, I love ! app2,v3"])
    );
    assert_eq!(on_first_daemon(&project), "");
    eprintln!(
        "compose deploy through a context done after {:.1?}",
        started.elapsed()
    );

    drop(d2);
    eprintln!("second daemon gone after {:.1?}", started.elapsed());
    // The first daemon still has its bridge and runs a container on it.
    let link = Command::new("ip")
        .args(["link", "show", "docker0"])
        .output()
        .unwrap();
    assert!(link.status.success(), "docker0 is gone: {}", text(&link));
    assert_eq!(
        docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/busybox",
            APP_IMAGE,
            "echo",
            "d1 works"
        ]),
        "d1 works"
    );
}
