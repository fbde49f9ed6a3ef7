//! A [`SecondDaemon`]: a second dockerd on this machine, reached over ssh as
//! a daemon on another host would be. Two daemons on one host clash unless
//! the second has its own socket, data root, exec root, pid file, bridge and
//! address pool, and leaves iptables alone (`--iptables=false`: on start it
//! would delete the first daemon's chains). It shares the running containerd
//! under a namespace of its own rather than starting one (a containerd of its
//! own is one more process to wait for and to outlive). An sshd on 127.0.0.1
//! lets one throwaway key run only `docker system dial-stdio` against it; an
//! `ssh` wrapper first on `PATH` uses that key and never touches ~/.ssh.
//! Every command it runs is bounded in time (coreutils `timeout`), and
//! everything is undone when it is dropped, also when the test panics.
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{APP_IMAGE, NGINX_IMAGE};

/// The second daemon's default bridge (created here; dockerd wants it to exist).
const BRIDGE_NET: &str = "10.223.0.1/24";
/// What the second daemon hands out to user networks (compose's), apart from
/// the first daemon's 172.17-31/16 and 192.168/16 and the 10.213/16 of
/// `daemon::PrivateDaemon` (whose `DOCKER-USER` rule must stay its own).
const POOL: &str = "10.224.0.0/16";
/// The containerd sockets tried, in order: a system containerd, then the one
/// the first dockerd started under its exec root.
const CONTAINERD: [&str; 2] = [
    "/run/containerd/containerd.sock",
    "/var/run/docker/containerd/containerd.sock",
];
/// How long the second daemon may take to answer after it is started.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long one docker, ssh or ctr command of the rig may run.
const COMMAND_LIMIT: u32 = 60;

/// Traffic between the second daemon's containers: the first daemon's FORWARD
/// policy is DROP and bridged packets pass iptables (br_netfilter), so these
/// are accepted in DOCKER-USER while the daemon runs.
const ACCEPTED: [&str; 2] = ["10.223.0.0/16", "10.224.0.0/16"];

/// A second daemon and the sshd in front of it.
pub struct SecondDaemon {
    /// Socket, exec root, pid file, log, ssh keys and config (short: shim
    /// socket paths under the exec root are limited to 108 bytes).
    run: PathBuf,
    data_root: PathBuf,
    bridge: String,
    /// The iptables rules inserted (arguments after `-I`/`-D`).
    rules: Vec<Vec<String>>,
    dockerd: Option<Child>,
    /// The containerd it shares, and its namespaces there.
    containerd: String,
    namespace: String,
    /// The port sshd listens on, on 127.0.0.1.
    pub port: u16,
    /// `HOME` for the tool, so nothing lands in the real one.
    pub home: PathBuf,
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `program` under coreutils `timeout`: TERM after `secs`, KILL 5 s later.
pub fn bounded(secs: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", &secs.to_string()]).arg(program);
    cmd
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker -H SOCKET ARGS` (bounded), not yet run.
fn docker_at(socket: &str, args: &[&str]) -> Command {
    let mut cmd = bounded(COMMAND_LIMIT, "docker");
    cmd.arg("-H").arg(socket).args(args);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl SecondDaemon {
    /// Starts it, or says why not and returns `None` when not root.
    pub fn start() -> Option<SecondDaemon> {
        if !rustix::process::geteuid().is_root() {
            eprintln!(
                "skipped: starting a second dockerd, a bridge and an sshd needs root (run as root, as CI does)"
            );
            return None;
        }
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "no /usr/sbin/sshd: scripts/dev-env.sh installs openssh-server"
        );
        let Some(containerd) = CONTAINERD.iter().find(|s| {
            std::fs::metadata(s)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        }) else {
            panic!("no containerd socket at {CONTAINERD:?} to share");
        };
        let id = std::process::id();
        let mut d = SecondDaemon {
            run: PathBuf::from(format!("/run/nr-d2-{id}")),
            data_root: PathBuf::from(format!("/var/lib/nr-d2-{id}")),
            bridge: format!("nrd2-{}", id % 100_000),
            rules: Vec::new(),
            dockerd: None,
            containerd: containerd.to_string(),
            namespace: format!("nrd2-{id}"),
            port: free_port(),
            home: PathBuf::from(format!("/run/nr-d2-{id}/home")),
        };
        // A fresh data root: dockerd 20.10 started with --default-address-pool
        // on a store that already holds a "bridge" network deletes docker0,
        // the first daemon's bridge (daemon_unix.go, "Clear stale bridge network").
        assert!(
            !d.data_root.exists(),
            "{} is left over from a killed run: remove it first",
            d.data_root.display()
        );
        d.start_dockerd();
        d.load_images();
        d.start_sshd();
        Some(d)
    }

    /// The second daemon's socket, as a `-H` / `DOCKER_HOST` value.
    pub fn socket(&self) -> String {
        format!("unix://{}/docker.sock", self.run.display())
    }

    /// The second daemon over ssh, as a `DOCKER_HOST` value.
    pub fn ssh_url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    /// `docker -H <second daemon> ARGS` (bounded), not yet run.
    fn cli(&self, args: &[&str]) -> Command {
        docker_at(&self.socket(), args)
    }

    /// `docker -H <second daemon> ARGS`, panicking on failure; trimmed stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        ok(&mut self.cli(args))
    }

    /// Makes `cmd` reach this daemon over ssh: `DOCKER_HOST=ssh://…`, the ssh
    /// wrapper first on `PATH`, a private `HOME`.
    pub fn over_ssh<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        let path = format!(
            "{}:{}",
            self.run.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("DOCKER_HOST", self.ssh_url())
            .env("PATH", path)
            .env("HOME", &self.home)
            .env_remove("DOCKER_CONTEXT")
    }

    fn start_dockerd(&mut self) {
        std::fs::create_dir_all(&self.run).unwrap();
        std::fs::create_dir_all(&self.data_root).unwrap();
        std::fs::create_dir_all(&self.home).unwrap();
        // Its own config file, so that an /etc/docker/daemon.json never applies to it.
        std::fs::write(self.run.join("daemon.json"), "{}").unwrap();
        ok(Command::new("ip").args(["link", "add", &self.bridge, "type", "bridge"]));
        ok(Command::new("ip").args(["addr", "add", BRIDGE_NET, "dev", &self.bridge]));
        ok(Command::new("ip").args(["link", "set", &self.bridge, "up"]));
        for net in ACCEPTED {
            let rule: Vec<String> = ["DOCKER-USER", "-s", net, "-d", net, "-j", "ACCEPT"]
                .map(String::from)
                .into();
            // No DOCKER-USER chain: the first daemon filters nothing, nothing to open.
            if run(Command::new("iptables").arg("-I").args(&rule))
                .status
                .success()
            {
                self.rules.push(rule);
            }
        }
        let log = std::fs::File::create(self.run.join("dockerd.log")).unwrap();
        let namespace = &self.namespace;
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(self.run.join("daemon.json"))
            .arg("--host")
            .arg(self.socket())
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(self.run.join("x"))
            .arg("--pidfile")
            .arg(self.run.join("docker.pid"))
            .args(["--bridge", &self.bridge])
            .arg(format!("--default-address-pool=base={POOL},size=24"))
            .args(["--containerd", &self.containerd])
            .args(["--containerd-namespace", namespace])
            .arg(format!(
                "--containerd-plugins-namespace={namespace}-plugins"
            ))
            .arg("--iptables=false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("dockerd starts");
        self.dockerd = Some(child);
        let started = Instant::now();
        loop {
            let up = run(self
                .cli(&["version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()))
            .status
            .success();
            if up {
                return;
            }
            let exited = self.dockerd.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || started.elapsed() > START_LIMIT {
                let log = std::fs::read_to_string(self.run.join("dockerd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "the second dockerd did not answer within {START_LIMIT:?} ({exited:?}):\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// No registry: the fixture images are copied over (`docker save | docker load`).
    fn load_images(&self) {
        let mut save = bounded(COMMAND_LIMIT, "docker")
            .args(["save", NGINX_IMAGE, APP_IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = run(self.cli(&["load", "-q"]).stdin(save.stdout.take().unwrap()));
        assert!(
            save.wait().unwrap().success(),
            "docker save of the fixture images"
        );
        assert!(
            load.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }

    fn start_sshd(&self) {
        let ssh = self.run.join("ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap(); // sshd's privilege separation dir
        for key in ["host_key", "client_key"] {
            ok(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(ssh.join(key)));
        }
        let client_pub = std::fs::read_to_string(ssh.join("client_key.pub")).unwrap();
        // The key may run one thing: the CLI's dial-stdio, against this daemon.
        std::fs::write(
            ssh.join("authorized_keys"),
            format!(
                "restrict,command=\"DOCKER_HOST={} exec docker system dial-stdio\" {client_pub}",
                self.socket()
            ),
        )
        .unwrap();
        let config = ssh.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 MaxStartups 100:30:200\n",
                self.port,
                ssh.join("host_key").display(),
                ssh.join("sshd.pid").display(),
                ssh.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        // sshd forks into the background once it listens.
        ok(Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(ssh.join("sshd.log")));
        std::fs::write(
            ssh.join("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
                 StrictHostKeyChecking accept-new\n  BatchMode yes\n  LogLevel ERROR\n",
                ssh.join("client_key").display(),
                ssh.join("known_hosts").display()
            ),
        )
        .unwrap();
        let bin = self.run.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let mut wrapper = std::fs::File::create(bin.join("ssh")).unwrap();
        writeln!(
            wrapper,
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"",
            ssh.join("ssh_config").display()
        )
        .unwrap();
        drop(wrapper);
        ok(Command::new("chmod").arg("+x").arg(bin.join("ssh")));
    }

    /// Stops sshd and the daemon and removes all they had: containers and
    /// networks first (compose's bridges would outlive the daemon), then the
    /// bridge, the iptables rules, the directories.
    fn teardown(&mut self) {
        let complain = |what: &str, out: std::io::Result<Output>| match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "second daemon teardown: {what}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("second daemon teardown: {what}: {e}"),
        };
        let socket = self.socket();
        let docker = |args: &[&str]| docker_at(&socket, args).output();
        if let Some(dockerd) = self.dockerd.as_mut() {
            if let Ok(Output { stdout, .. }) = docker(&["ps", "-aq"]) {
                let ids = String::from_utf8_lossy(&stdout).into_owned();
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    complain("removing containers", docker(&args));
                }
            }
            complain("removing networks", docker(&["network", "prune", "-f"]));
            complain(
                "stopping dockerd",
                Command::new("kill")
                    .arg("-TERM")
                    .arg(dockerd.id().to_string())
                    .output(),
            );
            let started = Instant::now();
            while dockerd.try_wait().ok().flatten().is_none() {
                if started.elapsed() > Duration::from_secs(30) {
                    eprintln!("second daemon teardown: dockerd still running after 30 s, killed");
                    let _ = dockerd.kill();
                    let _ = dockerd.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Its namespaces in the shared containerd (refused while not empty).
        for ns in [
            self.namespace.clone(),
            format!("{}-plugins", self.namespace),
        ] {
            complain(
                "removing a containerd namespace",
                bounded(COMMAND_LIMIT, "ctr")
                    .args(["--address", &self.containerd, "namespaces", "remove", &ns])
                    .output(),
            );
        }
        let sshd_pid = std::fs::read_to_string(self.run.join("ssh/sshd.pid")).ok();
        if let Some(pid) = sshd_pid {
            complain(
                "stopping sshd",
                Command::new("kill").arg("-TERM").arg(pid.trim()).output(),
            );
        }
        complain(
            "removing the bridge",
            Command::new("ip")
                .args(["link", "del", &self.bridge])
                .output(),
        );
        for rule in self.rules.drain(..) {
            complain(
                "removing an iptables rule",
                Command::new("iptables").arg("-D").args(&rule).output(),
            );
        }
        // Anything still mounted under the two roots (a daemon killed mid-way).
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut stale: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| {
                Path::new(m).starts_with(&self.run) || Path::new(m).starts_with(&self.data_root)
            })
            .collect();
        stale.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in stale {
            complain(
                "unmounting",
                Command::new("umount").arg("-l").arg(m).output(),
            );
        }
        for dir in [&self.data_root, &self.run] {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                eprintln!("second daemon teardown: removing {}: {e}", dir.display());
            }
        }
    }
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        self.teardown();
    }
}
