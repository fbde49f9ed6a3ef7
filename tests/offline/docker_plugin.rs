//! The binary as a docker CLI plugin, through the real `docker` CLI and a
//! private `DOCKER_CONFIG` (no daemon needed): `docker --help` lists it,
//! `docker nginxrollout …` runs it, and the daemon docker's flags, its
//! contexts and its current context name is the one the plugin reaches for.
use std::path::Path;
use std::process::{Command, Output};

use crate::support::{text, tool_path, write_docker_context};

/// A docker config directory with the tool installed as plugin `nginxrollout`.
struct PluginDir(tempfile::TempDir);

impl PluginDir {
    /// `None` (after saying why) when there is no docker CLI to run.
    fn new() -> Option<PluginDir> {
        if Command::new("docker").arg("--version").output().is_err() {
            eprintln!("skipped: no `docker` CLI on PATH (scripts/dev-env.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cli-plugins")).unwrap();
        std::os::unix::fs::symlink(
            tool_path(),
            dir.path().join("cli-plugins/docker-nginxrollout"),
        )
        .unwrap();
        Some(PluginDir(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// `docker ARGS` with this config directory and no daemon chosen by the environment.
    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", self.path())
            .env("NO_COLOR", "1")
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .current_dir(self.path())
            .output()
            .expect("docker runs")
    }

    /// Context `name` pointing at `host`, written as `docker context create` writes it.
    fn context(&self, name: &str, host: &str) {
        write_docker_context(self.path(), name, host);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn docker_help_lists_the_plugin_and_docker_runs_it() {
    let Some(dir) = PluginDir::new() else { return };
    let help = dir.docker(&["--help"]);
    assert!(help.status.success(), "{}", text(&help));
    let listed = stdout(&help);
    let line = listed
        .lines()
        .find(|l| l.trim_start().starts_with("nginxrollout*"))
        .unwrap_or_else(|| panic!("not listed by docker --help:\n{listed}"));
    assert!(line.contains("rolling updates"), "{line}");
    assert!(!listed.contains("Invalid Plugins"), "{listed}");

    let version = dir.docker(&["nginxrollout", "--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert_eq!(
        stdout(&version).trim(),
        format!("nginx-rollout {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [&["nginxrollout", "--help"][..], &["help", "nginxrollout"]] {
        let help = dir.docker(args);
        assert!(help.status.success(), "{args:?}: {}", text(&help));
        assert!(
            stdout(&help).contains("Usage: docker nginxrollout [OPTIONS] <COMMAND>"),
            "{args:?}: {}",
            stdout(&help)
        );
    }
    let deploy_help = dir.docker(&["nginxrollout", "deploy", "--help"]);
    assert!(
        stdout(&deploy_help).contains("Usage: docker nginxrollout deploy"),
        "{}",
        text(&deploy_help)
    );
}

#[test]
fn the_plugin_reaches_for_the_daemon_docker_names() {
    let Some(dir) = PluginDir::new() else { return };
    let gone = dir.path().join("gone");
    let socket = |name: &str| format!("unix://{}/{name}.sock", gone.display());
    dir.context("far", &socket("far"));
    dir.context("current", &socket("current"));
    // Each run fails at once (no daemon at that socket), naming the daemon it chose.
    let reaches = |args: &[&str], expected: &str| {
        let out = dir.docker(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            stderr(&out).contains(&format!("cannot reach the Docker daemon at {expected}")),
            "{args:?}: {}",
            text(&out)
        );
    };
    let host = socket("host");
    reaches(
        &["-H", &host, "nginxrollout", "status"],
        &format!("{host} (-H)"),
    );
    reaches(
        &["--context", "far", "-D", "nginxrollout", "status"],
        &format!("{} (context far, from --context)", socket("far")),
    );
    // A flag after the plugin's name wins over docker's.
    reaches(
        &[
            "--context",
            "far",
            "nginxrollout",
            "--host",
            &host,
            "status",
        ],
        &format!("{host} (-H)"),
    );
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"currentContext": "current"}"#,
    )
    .unwrap();
    reaches(
        &["nginxrollout", "status"],
        &format!(
            "{} (context current, from the currentContext of {})",
            socket("current"),
            dir.path().join("config.json").display()
        ),
    );
}

/// Refused before any connection, with exit 2 and the address's source named:
/// a context that does not exist, and addresses the docker CLI refuses too.
#[test]
fn a_context_that_does_not_exist_or_a_malformed_address_is_a_usage_error() {
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str], docker_host: Option<&str>| {
        let mut cmd = Command::new(tool_path());
        cmd.args(args)
            .env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        if let Some(host) = docker_host {
            cmd.env("DOCKER_HOST", host);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        stderr(&out)
    };
    let err = run(&["--context", "nosuch", "status"], None);
    assert!(
        err.contains("context nosuch (from --context) does not exist"),
        "{err}"
    );
    let err = run(&["-H", "tcp://[::1", "status"], None);
    assert!(
        err.contains("tcp://[::1 (-H): unclosed `[` in the host"),
        "{err}"
    );
    let err = run(&["status"], Some("ssh://deploy@[::1]x:2"));
    assert!(
        err.contains(
            "ssh://deploy@[::1]x:2 (DOCKER_HOST): only `:PORT` may follow `]` in the host"
        ),
        "{err}"
    );
}
