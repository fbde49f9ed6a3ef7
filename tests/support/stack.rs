//! A copy of the seed-002 stack (nginx + app1 + app2 with compose) for one
//! test: its own temp dir, compose project, network and 127.0.0.1 port,
//! removed on drop. Also: tiny HTTP requests and bounded load against it.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, MutexGuard, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{docker, root, spawn_piped, tool_path};

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A free 127.0.0.1 port, distinct across the tests of one binary.
fn free_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if NEXT_PORT.swap(port, Ordering::SeqCst) != port {
            return port;
        }
    }
}

/// Which seed's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// Seed 002: nginx + app1 + app2, the nginx.conf bind-mounted as a single file.
    S002,
    /// Seed 000: a compose service `web` with three replicas behind one
    /// `server web:8000;`, conf.d/default.conf bind-mounted as a single file.
    S000,
    /// Seed 003: a core compose file and override files; up from
    /// `docker-compose.yml` + `prod.yml` (three `api` replicas behind one
    /// `server api:8000;`).
    S003,
}

impl Seed {
    fn dir(self) -> &'static str {
        match self {
            Seed::S002 => "fixtures/seed002",
            Seed::S000 => "fixtures/seed000",
            Seed::S003 => "fixtures/seed003",
        }
    }

    /// The compose files the stack is brought up (and driven) with.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Seed::S002 | Seed::S000 => &["docker-compose.yml"],
            Seed::S003 => &["docker-compose.yml", "prod.yml"],
        }
    }

    fn conf(self) -> &'static str {
        match self {
            Seed::S002 => "proxy/nginx.conf",
            Seed::S000 => "nginx/nginx.conf",
            Seed::S003 => "nginx/default.conf",
        }
    }
}

/// A running copy of a seed's stack.
pub struct Stack {
    /// The temp dir holding docker-compose.yml and proxy/nginx.conf.
    pub dir: tempfile::TempDir,
    /// The compose project name.
    pub project: String,
    /// nginx's port on 127.0.0.1.
    pub port: u16,
    /// Which seed.
    pub seed: Seed,
    /// The daemon, shared with other tests.
    _turn: RwLockReadGuard<'static, ()>,
    /// The load generator to itself while a [`Stack::load`] runs.
    load_turn: Rc<RefCell<Option<MutexGuard<'static, ()>>>>,
}

impl Stack {
    /// Copies `fixtures/seed002`, lets `edit` change its files, and brings it up.
    pub fn up_with(name: &str, edit: impl FnOnce(&Path)) -> Stack {
        Stack::seed(Seed::S002, name, edit)
    }

    /// Copies the seed's fixture, lets `edit` change its files, and brings it up.
    pub fn seed(seed: Seed, name: &str, edit: impl FnOnce(&Path)) -> Stack {
        let turn = super::shared();
        let dir = tempfile::Builder::new()
            .prefix(&format!("nr-{name}-"))
            .tempdir()
            .unwrap();
        copy_dir(&root().join(seed.dir()), dir.path());
        check_every_two_seconds(dir.path());
        edit(dir.path());
        let project = format!("nrt{}{}", name.replace(['-', '_'], ""), std::process::id());
        let port = free_port();
        let stack = Stack {
            dir,
            project,
            port,
            seed,
            _turn: turn,
            load_turn: Rc::new(RefCell::new(None)),
        };
        let out = stack.compose(&["up", "-d"]);
        assert!(
            out.status.success(),
            "compose up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stack.wait_serving(Duration::from_secs(60));
        stack
    }

    /// The seed stack as it is.
    pub fn up(name: &str) -> Stack {
        Stack::up_with(name, |_| {})
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs docker-compose with this project and the seed's files.
    pub fn compose(&self, args: &[&str]) -> Output {
        let files = self.seed.files().iter().flat_map(|f| ["-f", f]);
        self.compose_files(files, args)
    }

    /// Runs docker-compose with this project and `files` (`-f F` pairs).
    pub fn compose_files<'a>(
        &self,
        files: impl IntoIterator<Item = &'a str>,
        args: &[&str],
    ) -> Output {
        Command::new("docker-compose")
            .arg("-p")
            .arg(&self.project)
            .args(files)
            .args(args)
            .current_dir(self.path())
            .env("NGINX_PORT", self.port.to_string())
            .output()
            .expect("docker-compose runs")
    }

    /// The name of a service's container.
    pub fn container(&self, service: &str) -> String {
        format!("{}_{}_1", self.project, service)
    }

    /// Runs the tool in the stack's directory, with no stdin.
    pub fn tool(&self, args: &[&str]) -> Output {
        self.tool_cmd(args).output().expect("nginx-rollout runs")
    }

    /// The tool as a command, to spawn or tweak; its state directory is the
    /// stack's own `state/` (removed with the stack).
    pub fn tool_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(tool_path());
        cmd.args(args)
            .current_dir(self.path())
            .env("NGINX_ROLLOUT_STATE_DIR", self.path().join("state"))
            .env("NGINX_PORT", self.port.to_string())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// An engine-mode `deploy apps` to `version` whose new containers take
    /// 3 s to start (a window to act in mid-rollout), without monitoring.
    pub fn slow_deploy_cmd(&self, version: &str) -> Command {
        let message = format!("MESSAGE={{{{service}}}},{version}");
        self.tool_cmd(&[
            "deploy",
            "apps",
            "--yes",
            "--mode",
            "engine",
            "--env",
            &message,
            "--env",
            "STARTUP_DELAY_MS=3000",
            "--monitor",
            "0s",
        ])
    }

    /// Replaces `from` by `to` in docker-compose.yml (e.g. `app1,v1` → `app1,v2`).
    pub fn edit_compose(&self, from: &str, to: &str) {
        let path = self.path().join("docker-compose.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in docker-compose.yml");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// The bind-mounted config file's path (seed 002's proxy/nginx.conf,
    /// seed 000's nginx/nginx.conf).
    pub fn conf_path(&self) -> PathBuf {
        self.path().join(self.seed.conf())
    }

    /// The names of a service's containers, sorted.
    pub fn containers_of(&self, service: &str) -> Vec<String> {
        let mut names: Vec<String> = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
            "--format",
            "{{.Names}}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
        names.sort();
        names
    }

    /// proxy/nginx.conf's inode on the host (a single-file bind mount follows it).
    pub fn conf_inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(self.conf_path()).unwrap().ino()
    }

    /// `docker inspect CONTAINER` as JSON (the first and only object).
    pub fn inspect(&self, container: &str) -> serde_json::Value {
        let mut list: Vec<serde_json::Value> =
            serde_json::from_str(&docker(&["inspect", container])).unwrap();
        list.remove(0)
    }

    /// The nginx container's nginx processes, as `PID ARGS` lines (master and workers).
    pub fn nginx_processes(&self) -> Vec<String> {
        docker(&["top", &self.container("nginx"), "-eo", "pid,args"])
            .lines()
            .filter(|l| l.contains("nginx: "))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// Starts one `GET path` every `every` in its own thread until
    /// [`Trickle::finish`], e.g. slow requests that are in flight whenever a
    /// server is drained.
    pub fn trickle(&self, path: &str, every: Duration) -> Trickle {
        let (port, path) = (self.port, path.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let starter = std::thread::spawn(move || {
            let mut requests = Vec::new();
            // Bounded: at most 10 minutes' worth of requests.
            let limit = (600_000 / every.as_millis().max(1)) as usize;
            while !flag.load(Ordering::SeqCst) && requests.len() < limit {
                let path = path.clone();
                requests.push(std::thread::spawn(move || try_http(port, "GET", &path)));
                std::thread::sleep(every);
            }
            requests
                .into_iter()
                .map(|r| {
                    r.join()
                        .unwrap()
                        .unwrap_or_else(|e| (0, format!("error: {e}")))
                })
                .collect()
        });
        Trickle { stop, starter }
    }

    /// proxy/nginx.conf's bytes.
    pub fn conf(&self) -> Vec<u8> {
        std::fs::read(self.conf_path()).unwrap()
    }

    /// Waits (bounded by `within`) until the config file's text is `ready`;
    /// panics naming `what` it waited for, with the text, when it is not.
    pub fn wait_for_conf(&self, what: &str, within: Duration, ready: impl Fn(&str) -> bool) {
        let start = Instant::now();
        loop {
            let conf = String::from_utf8_lossy(&self.conf()).into_owned();
            if ready(&conf) {
                return;
            }
            assert!(
                start.elapsed() < within,
                "no {what} within {within:?}:\n{conf}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded: 60 s) until the config file has a drained (`down`) server.
    pub fn wait_for_drain(&self) {
        self.wait_for_conf("drained server", Duration::from_secs(60), |conf| {
            conf.contains(" down;")
        });
    }

    /// Runs the tool with `args` (a `--output json` command) under `mode`
    /// load (60 s at most, 16 connections) from its first `reload` event on:
    /// before it, nginx may still send requests to a dead container's address.
    /// Panics unless the run succeeds; returns its event lines and what the
    /// load saw.
    pub fn tool_loaded_from_first_reload(
        &self,
        args: &[&str],
        mode: &str,
    ) -> (Vec<String>, LoadResult) {
        let mut child = spawn_piped(&mut self.tool_cmd(args));
        let stdout = child.stdout.take().unwrap();
        let (reloaded, first_reload) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut seen = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if line.contains("\"event\":\"reload\"") {
                    let _ = reloaded.send(());
                }
                seen.push(line);
            }
            seen
        });
        first_reload
            .recv_timeout(Duration::from_secs(60))
            .expect("the run reloads nginx first");
        let load = self.load("/", 60, 16, mode);
        let out = child.wait_with_output().unwrap();
        let load = load.stop();
        let events = reader.join().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            events.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
        (events, load)
    }

    /// `GET path` (one connection); (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.port, "GET", path)
    }

    /// The set of bodies seen over `n` GETs of `/`.
    pub fn bodies(&self, n: usize) -> std::collections::BTreeSet<String> {
        (0..n).map(|_| self.get("/").1).collect()
    }

    fn wait_serving(&self, limit: Duration) {
        let (start, port) = (Instant::now(), self.port);
        while start.elapsed() < limit {
            if std::panic::catch_unwind(|| http(port, "GET", "/").0 == 200).unwrap_or(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "stack {} did not serve on 127.0.0.1:{} within {limit:?}",
            self.project, self.port
        );
    }

    /// Starts bounded load (scripts/load.sh) against `/path` for `seconds`,
    /// first waiting until no other test's load runs (this one's holds the
    /// load generator until it is stopped): start it before anything that
    /// must overlap the load.
    pub fn load(&self, path: &str, seconds: u32, concurrency: u32, mode: &str) -> Load {
        {
            let mut turn = self.load_turn.borrow_mut();
            if turn.is_none() {
                *turn = Some(super::one_load());
            }
        }
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let child = Command::new(root().join("scripts/load.sh"))
            .env("LOAD_QPS", LOAD_QPS.to_string())
            .args([
                url,
                seconds.to_string(),
                concurrency.to_string(),
                mode.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scripts/load.sh runs");
        Load {
            child,
            turn: Rc::clone(&self.load_turn),
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        super::remove_compose_project(&self.project);
    }
}

/// Requests started one after another in the background; see [`Stack::trickle`].
pub struct Trickle {
    stop: Arc<AtomicBool>,
    starter: JoinHandle<Vec<(u16, String)>>,
}

impl Trickle {
    /// Stops starting requests, waits for those in flight; (status, body) of each.
    pub fn finish(self) -> Vec<(u16, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.starter.join().unwrap()
    }
}

/// Requests per second each client of a test's load sends at most: with 16
/// clients, 800 a second, a request every 1.25 ms across every reload and
/// drain a deploy makes. The benchmark's load (`scripts/bench-rollout.sh`)
/// takes what the machine gives; a test's leaves the other tests of the
/// suite, which share the two cores, room to run.
const LOAD_QPS: u32 = 50;

/// Load running in the background.
pub struct Load {
    child: Child,
    /// The stack's turn on the load generator, given up once the load has ended.
    turn: Rc<RefCell<Option<MutexGuard<'static, ()>>>>,
}

/// What a load run saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadResult {
    /// Requests answered or errored.
    pub total: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Everything else.
    pub failed: u64,
}

impl Load {
    /// Ends the load half a second from now (what is measured is over; the
    /// half second catches failures right after it) and parses its summary.
    pub fn stop(self) -> LoadResult {
        std::thread::sleep(Duration::from_millis(500));
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        // Already ended by itself: then there is nothing to stop.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        self.finish()
    }

    /// Waits for the load to end and parses its summary.
    pub fn finish(self) -> LoadResult {
        let out = self.child.wait_with_output().unwrap();
        // What is measured is over: another test's load may start.
        *self.turn.borrow_mut() = None;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "load failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |k: &str| -> u64 {
            stdout
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k}= in {stdout}"))
        };
        let r = LoadResult {
            total: field("total"),
            ok: field("ok"),
            failed: field("failed"),
        };
        if r.failed > 0 {
            eprintln!("load errors: {}", String::from_utf8_lossy(&out.stderr));
        }
        r
    }
}

/// One HTTP/1.1 request with `Connection: close`; (status, body).
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    try_http(port, method, path)
        .unwrap_or_else(|e| panic!("{method} {path} on 127.0.0.1:{port}: {e}"))
}

/// [`http`] that returns connection errors instead of panicking.
pub fn try_http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Healthchecks every 2 s, not the fixtures' 1 s, in every compose file of
/// the seed copy in `dir`. A check is a `docker exec`, ≈ 90 ms of CPU: with
/// three tests' stacks up at once, checks every second took near half of
/// the two cores from the tests. Tests that time a crash against a new
/// container's health count on healthy ≈ 2 s after its start.
fn check_every_two_seconds(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace("interval: 1s", "interval: 2s")).unwrap();
        }
    }
}

/// Rewrites a seed002 copy in `dir` to `n` app servers (app1..appN): one compose
/// service per server, copied from app1's, and one `server appK:3000;` line each.
/// For `Stack::up_with`.
pub fn set_app_servers(dir: &Path, n: usize) {
    set_app_services(dir, n);
    let conf_path = dir.join("proxy/nginx.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let lines = "        server app1:3000;\n        server app2:3000;\n";
    assert!(conf.contains(lines), "upstream apps lists app1 and app2");
    let lines_n: String = (1..=n)
        .map(|k| format!("        server app{k}:3000;\n"))
        .collect();
    std::fs::write(&conf_path, conf.replace(lines, &lines_n)).unwrap();
}

/// Rewrites a seed002 copy's docker-compose.yml in `dir` to `n` app services
/// (app1..appN, copied from app1's), leaving nginx.conf as it is: the services
/// beyond app2 run, and nginx does not know them yet. For `Stack::up_with`.
pub fn set_app_services(dir: &Path, n: usize) {
    assert!(n >= 1, "at least one app server");
    let compose_path = dir.join("docker-compose.yml");
    let compose = std::fs::read_to_string(&compose_path).unwrap();
    let (head, apps) = compose.split_once("\n  app1:\n").expect("an app1 service");
    let app1 = apps.split_once("\n  app2:\n").expect("an app2 service").0;
    let depends = "    depends_on:\n      app1:\n        condition: service_healthy\n      app2:\n        condition: service_healthy";
    assert!(head.contains(depends), "nginx depends on app1 and app2");
    let depends_n: String = (1..=n)
        .map(|k| format!("\n      app{k}:\n        condition: service_healthy"))
        .collect();
    let mut out = head.replace(depends, &format!("    depends_on:{depends_n}"));
    for k in 1..=n {
        out.push_str(&format!("\n  app{k}:\n"));
        out.push_str(&app1.replace("app1", &format!("app{k}")));
    }
    out.push('\n');
    std::fs::write(&compose_path, out).unwrap();
}

/// The bodies `app1,VERSION` … `appN,VERSION` the fixture apps answer with.
pub fn app_bodies(n: usize, version: &str) -> std::collections::BTreeSet<String> {
    (1..=n)
        .map(|k| format!("Hi there, I love ! app{k},{version}"))
        .collect()
}

/// `deploy apps --yes --mode engine` and then `rest`: the tool's arguments
/// for an engine-mode deploy of the `apps` upstream, approved up front.
pub fn engine_deploy<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    [&["deploy", "apps", "--yes", "--mode", "engine"], rest].concat()
}

/// [`engine_deploy`] reporting JSON lines: `deploy apps --yes --output json
/// --mode engine` and then `rest`.
pub fn engine_deploy_json<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    [
        &[
            "deploy", "apps", "--yes", "--output", "json", "--mode", "engine",
        ],
        rest,
    ]
    .concat()
}
