//! A private Docker daemon for the test that restarts one: its own socket,
//! data and exec roots under a temp dir, its own default bridge, no
//! iptables, networks from an address pool of its own, and `--live-restore` (containers keep running
//! while the daemon is away, as on hosts that restart dockerd for upgrades).
//! The shared daemon the other tests use is never touched; the fixture
//! images are copied from it. The shared daemon's firewall drops forwarded
//! traffic (`FORWARD DROP`, bridged packets included), so one rule in its
//! `DOCKER-USER` chain (the chain Docker leaves to users) lets the private
//! pool's containers talk to each other, and goes with the daemon. When dropped — also when the test panics — the
//! daemon is started if it was stopped, everything it ran is removed, and it
//! is stopped for good.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{APP_IMAGE, NGINX_IMAGE};

/// The private daemon's networks.
const POOL: &str = "10.213.0.0/16";

/// The `DOCKER-USER` rule letting the pool's containers reach each other.
fn forward_rule(action: &str) -> Vec<String> {
    [
        action,
        "DOCKER-USER",
        "-s",
        POOL,
        "-d",
        POOL,
        "-j",
        "ACCEPT",
    ]
    .map(String::from)
    .to_vec()
}

/// The private daemon's default bridge: its own, because a dockerd started
/// with `--bridge=none` deletes `docker0` — the shared daemon's bridge.
const BRIDGE_ADDRESS: &str = "10.213.255.1/24";

/// A dockerd of our own.
pub struct PrivateDaemon {
    dir: tempfile::TempDir,
    /// The bridge interface made for it (removed with it).
    bridge: String,
    child: Option<Child>,
    /// Whether our `DOCKER-USER` rule is in place (the chain may not exist).
    forwarding: bool,
}

impl PrivateDaemon {
    /// Starts the daemon and copies the fixture images into it.
    pub fn start() -> PrivateDaemon {
        // Short: the sockets under it must fit in a sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("nr-dd-")
            .tempdir_in("/tmp")
            .unwrap();
        let forwarding = Command::new("iptables")
            .args(forward_rule("-I"))
            .status()
            .is_ok_and(|s| s.success());
        // At most 15 bytes, unique per run like the temp dir.
        let suffix: String = dir.path().to_string_lossy().chars().rev().take(8).collect();
        let bridge = format!("nrdd{suffix}");
        for args in [
            vec!["link", "add", &bridge, "type", "bridge"],
            vec!["addr", "add", BRIDGE_ADDRESS, "dev", &bridge],
            vec!["link", "set", &bridge, "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip runs");
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut daemon = PrivateDaemon {
            dir,
            bridge,
            child: None,
            forwarding,
        };
        daemon.run();
        let mut save = Command::new("docker")
            .args(["save", NGINX_IMAGE, APP_IMAGE])
            .env_remove("DOCKER_HOST")
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save runs");
        let load = Command::new("docker")
            .args(["load", "-q"])
            .env("DOCKER_HOST", daemon.host())
            .stdin(save.stdout.take().unwrap())
            .output()
            .expect("docker load runs");
        assert!(save.wait().unwrap().success(), "docker save failed");
        assert!(
            load.status.success(),
            "loading the fixture images: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        daemon
    }

    /// `DOCKER_HOST` for this daemon.
    pub fn host(&self) -> String {
        format!("unix://{}", self.path("docker.sock").display())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts dockerd and waits (bounded) until it answers.
    fn run(&mut self) {
        assert!(
            self.child.is_none(),
            "the private daemon is already running"
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("dockerd.log"))
            .unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(self.path("data"))
            .arg("--exec-root")
            .arg(self.path("exec"))
            .arg("--pidfile")
            .arg(self.path("dockerd.pid"))
            .arg("-H")
            .arg(self.host())
            .arg(format!("--bridge={}", self.bridge))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--live-restore",
                "--shutdown-timeout=1",
                "--default-address-pool",
            ])
            .arg(format!("base={POOL},size=24"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd runs");
        self.child = Some(child);
        let start = Instant::now();
        while !self.answers() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the private dockerd did not answer within 60 s: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("DOCKER_HOST", self.host())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops dockerd with SIGTERM, as an init system does, and waits
    /// (bounded, then SIGKILL) until it has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the private dockerd ignored SIGTERM for 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts dockerd again after [`PrivateDaemon::stop`].
    pub fn restart(&mut self) {
        self.run();
    }

    /// The end of the daemon's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .output()
            .expect("docker runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Removes every container and network the daemon has.
    fn clear(&self) {
        let ids = self.docker(&["ps", "-aq"]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            self.docker(&args);
        }
        self.docker(&["network", "prune", "-f"]);
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if self.child.is_none() && !std::thread::panicking() {
            self.run();
        } else if self.child.is_none() {
            // Panicking: a second panic would abort; start it if we can.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run()));
        }
        if self.child.is_some() {
            self.clear();
        }
        self.stop();
        // With --live-restore, dockerd may leave its containerd running.
        if let Some(pid) = std::fs::read_to_string(self.path("exec/containerd/containerd.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c).contains(&*self.dir.path().to_string_lossy())
                })
            })
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if self.forwarding {
            let _ = Command::new("iptables").args(forward_rule("-D")).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        // Whatever dockerd left mounted under its roots, so the temp dir goes.
        for root in ["exec", "data"] {
            unmount_under(&self.path(root));
        }
    }
}

/// Lazily unmounts every mount point under `root` (deepest first).
fn unmount_under(root: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| Path::new(p).starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}
