//! The compose CLI: which one is installed (`docker compose` or
//! `docker-compose`), running it for a project as the operator would (in its
//! directory, with its `-p`, `-f`, env files and profiles), and compose
//! mode's recreate (`up -d --no-deps --force-recreate`) with the container
//! it leaves.
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use tokio::process::Command;

use super::reading_script::{ReadingAhead, Script};
use crate::docker::{ComposeLabel, ComposeRef, Endpoint, POINTING_VARIABLES, label_filters};

/// How long one compose command may run.
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(600);

/// Compose v1 is Python and imports `distutils` as it starts; where setuptools
/// is installed, its shim answers that import by loading all of setuptools and
/// pkg_resources — 0.15 s of the 0.39 s `docker-compose config` takes on an
/// idle test machine, and compose runs before the first step of every
/// compose-mode rollout. With this variable Python's own `distutils` answers
/// (the same `find_executable` and `LooseVersion` compose uses); compose's
/// output is the same. An operator's own setting of it is left alone.
pub(super) const FAST_DISTUTILS: (&str, &str) = ("SETUPTOOLS_USE_DISTUTILS", "stdlib");

/// The variables compose may see otherwise than this process has them:
/// those that point it at the daemon ([`POINTING_VARIABLES`]), and the one
/// it is run with here ([`FAST_DISTUTILS`]).
pub(super) fn set_for_compose() -> impl Iterator<Item = &'static str> {
    POINTING_VARIABLES.into_iter().chain([FAST_DISTUTILS.0])
}

/// Set once a compose run failed for want of Python's own `distutils`
/// (Python 3.12 has none): later runs go without [`FAST_DISTUTILS`].
static NO_STDLIB_DISTUTILS: AtomicBool = AtomicBool::new(false);

/// Whether compose v1 runs with [`FAST_DISTUTILS`]: the environment does
/// not set it already, and no run found Python without its own `distutils`.
pub(super) fn fast_distutils() -> bool {
    std::env::var_os(FAST_DISTUTILS.0).is_none() && !NO_STDLIB_DISTUTILS.load(Ordering::Relaxed)
}

/// Whether compose's `stderr` says it stopped at its first import because
/// Python has no `distutils` of its own (nothing ran yet: safe to run again).
fn lacks_stdlib_distutils(stderr: &[u8]) -> bool {
    String::from_utf8_lossy(stderr).contains("No module named 'distutils'")
}

/// Which compose CLI is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeKind {
    /// The `docker compose` plugin (v2).
    Plugin,
    /// The standalone `docker-compose` (v1 or v2).
    Standalone,
}

/// The installed compose CLI, pointed at the daemon this run talks to.
#[derive(Debug, Clone, Copy)]
pub struct ComposeCli<'a> {
    /// Which one.
    pub kind: ComposeKind,
    /// The daemon it must reach (whatever context or `DOCKER_HOST` it would pick itself).
    pub daemon: &'a Endpoint,
    /// Compose v1's reading script, if the run started it ahead.
    pub ahead: &'a ReadingAhead,
}

impl ComposeCli<'_> {
    /// The command line prefix, for messages.
    pub fn display(self) -> &'static str {
        match self.kind {
            ComposeKind::Plugin => "docker compose",
            ComposeKind::Standalone => "docker-compose",
        }
    }

    /// The command, with [`FAST_DISTUTILS`] when `fast` (for the standalone
    /// one, which may be the Python compose v1).
    fn command(self, fast: bool) -> Command {
        let mut c = match self.kind {
            ComposeKind::Plugin => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
            ComposeKind::Standalone => {
                let mut c = Command::new("docker-compose");
                if fast {
                    c.env(FAST_DISTUTILS.0, FAST_DISTUTILS.1);
                }
                c
            }
        };
        self.daemon.point(&mut c);
        c
    }

    /// Whether to run it with [`FAST_DISTUTILS`].
    fn fast(self) -> bool {
        self.kind == ComposeKind::Standalone && fast_distutils()
    }
}

/// The installed compose CLI (the `docker compose` plugin if it answers,
/// else `docker-compose` if it is on `PATH`), asked on a thread of its own
/// from [`Self::start`] (when a run begins) and answered from [`Self::get`]
/// (when it is first needed):
/// `docker compose version` starts a Go binary, tens of ms on a compose
/// deploy's way to its plan, which the run's first API calls hide.
#[derive(Debug)]
pub struct ComposeCliProbe {
    /// The probe under way, until [`Self::get`] takes its answer.
    running: Mutex<Option<JoinHandle<Option<ComposeKind>>>>,
    /// Its answer.
    answer: OnceLock<Option<ComposeKind>>,
}

impl ComposeCliProbe {
    /// Starts looking for the compose CLI.
    pub fn start() -> Self {
        ComposeCliProbe {
            running: Mutex::new(Some(std::thread::spawn(compose_cli))),
            answer: OnceLock::new(),
        }
    }

    /// The compose CLI installed, waiting for the probe if it is still under way.
    pub fn get(&self) -> Option<ComposeKind> {
        *self.answer.get_or_init(|| {
            let running = self.running.lock().expect("not poisoned").take();
            // A probe that panicked (it cannot) would be asked again here.
            running
                .and_then(|probe| probe.join().ok())
                .unwrap_or_else(compose_cli)
        })
    }
}

/// The installed compose CLI: the `docker compose` plugin if it answers,
/// else `docker-compose` if it is on `PATH` (not run: the Python one takes
/// most of a second to start), else `None`.
fn compose_cli() -> Option<ComposeKind> {
    let plugin = std::process::Command::new("docker")
        .args(["compose", "version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if plugin {
        Some(ComposeKind::Plugin)
    } else if on_path("docker-compose") {
        Some(ComposeKind::Standalone)
    } else {
        None
    }
}

/// Whether an executable file `program` is in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

/// The first executable file `program` in a directory of `PATH`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The standalone `docker-compose` when it is the Python compose v1: its
/// path and the interpreter its `#!` line names (`/usr/bin/python3`, or
/// `/usr/bin/env python3` found on `PATH`). `None` for compose v2 (a Go
/// binary) or a frozen v1 (no interpreter to run compose's code with).
pub(in crate::backends) fn compose_python() -> Option<(PathBuf, PathBuf)> {
    use std::io::Read;
    let compose = find_on_path("docker-compose")?;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(&compose).ok()?.read(&mut head).ok()?;
    let line = head[..n].split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line.strip_prefix(b"#!")?).ok()?;
    let mut words = line.split_whitespace();
    let first = PathBuf::from(words.next()?);
    let python = match first.file_name()?.to_str()? {
        "env" => find_on_path(words.next()?)?,
        _ => first,
    };
    let name = python.file_name()?.to_str()?;
    name.starts_with("python").then_some((compose, python))
}

/// Runs compose for `r`'s project (same `-p`, same `-f` files, in its working
/// directory) with `args`; returns stdout, or an error carrying stderr.
pub(in crate::backends) async fn run(
    cli: ComposeCli<'_>,
    r: &ComposeRef,
    args: &[&str],
) -> Result<String> {
    run_as(cli, r, args, None).await
}

/// Compose's global arguments for `r`'s project: its directory, `-p`, `-f`
/// files, env files and profiles.
pub(super) fn global_args(r: &ComposeRef) -> Result<Vec<&OsStr>> {
    let dir = r.working_dir.as_ref().ok_or_else(|| no_working_dir(r))?;
    let mut args = vec![
        OsStr::new("--project-directory"),
        dir.as_os_str(),
        OsStr::new("-p"),
        OsStr::new(&r.project),
    ];
    for f in &r.config_files {
        args.extend([OsStr::new("-f"), f.as_os_str()]);
    }
    for f in &r.env_files {
        args.extend([OsStr::new("--env-file"), f.as_os_str()]);
    }
    for p in &r.profiles {
        args.extend([OsStr::new("--profile"), OsStr::new(p)]);
    }
    Ok(args)
}

/// The error for a container of `r` without compose's working_dir label.
fn no_working_dir(r: &ComposeRef) -> anyhow::Error {
    anyhow!(
        "compose service {}/{}: its container has no working_dir label",
        r.project,
        r.service
    )
}

/// [`run`], or with `script` the reading script (see `reading_script.rs`).
pub(super) async fn run_as(
    cli: ComposeCli<'_>,
    r: &ComposeRef,
    args: &[&str],
    script: Option<Script<'_>>,
) -> Result<String> {
    let run_in = r.compose_dir().ok_or_else(|| no_working_dir(r))?;
    let shown = match script {
        Some(script) => script.shown(),
        None => args.join(" "),
    };
    let line = format!(
        "`{} -p {} {shown}` in {}",
        cli.display(),
        r.project,
        run_in.display()
    );
    let global = global_args(r)?;
    let (global, line_ref) = (&global, &line);
    let once = |fast: bool| async move {
        if let Some(script) = script {
            return script.output(cli, global, run_in, fast, line_ref).await;
        }
        let mut cmd = cli.command(fast);
        cmd.current_dir(run_in)
            .args(global)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        output_within(cmd.output(), line_ref).await
    };
    let output = fast_or_not(cli.fast(), &NO_STDLIB_DISTUTILS, once).await?;
    if !output.status.success() {
        bail!(
            "{line} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `once(fast)`; when it was `fast` and compose stopped at its first import
/// for want of Python's own `distutils`, records that in `missing` and
/// returns `once(false)` instead.
async fn fast_or_not<F, Fut>(fast: bool, missing: &AtomicBool, mut once: F) -> Result<Output>
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Result<Output>>,
{
    let output = once(fast).await?;
    if fast && !output.status.success() && lacks_stdlib_distutils(&output.stderr) {
        missing.store(true, Ordering::Relaxed);
        return once(false).await;
    }
    Ok(output)
}

/// A command's `output`, within [`COMPOSE_TIMEOUT`]; `line` names it in errors.
pub(super) async fn output_within(
    output: impl Future<Output = std::io::Result<Output>>,
    line: &str,
) -> Result<Output> {
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(COMPOSE_TIMEOUT, output)
        .await
        .map_err(|_| anyhow!("{line}: no answer after {COMPOSE_TIMEOUT:?}"))?
        .with_context(|| format!("{line}: cannot run"))?;
    tracing::debug!(took = ?started.elapsed(), "{line}");
    Ok(output)
}

/// Recreates the service with compose: `up -d --no-deps --force-recreate SERVICE`.
pub async fn compose_recreate(cli: ComposeCli<'_>, r: &ComposeRef) -> Result<()> {
    run(
        cli,
        r,
        &["up", "-d", "--no-deps", "--force-recreate", &r.service],
    )
    .await
    .map(drop)
}

/// The id of the service's container (found by compose labels), e.g. after
/// [`compose_recreate`]. Several containers (a scaled service) is an error.
pub async fn compose_container(docker: &Docker, r: &ComposeRef) -> Result<String> {
    let labels = vec![
        ComposeLabel::Project.filter(&r.project),
        ComposeLabel::Service.filter(&r.service),
        ComposeLabel::OneOff.filter("False"),
    ];
    let options = ListContainersOptions {
        all: true,
        filters: Some(label_filters(labels)),
        ..Default::default()
    };
    let found = docker
        .list_containers(Some(options))
        .await
        .with_context(|| {
            format!(
                "compose service {}/{}: list containers",
                r.project, r.service
            )
        })?;
    match found.as_slice() {
        [one] => Ok(one.id.clone().unwrap_or_default()),
        [] => bail!("compose service {}/{}: no container", r.project, r.service),
        many => bail!(
            "compose service {}/{}: {} containers ({}); scaled services are not supported",
            r.project,
            r.service,
            many.len(),
            many.iter()
                .map(crate::docker::listed_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    fn output(code: i32, stderr: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    /// Runs [`fast_or_not`] against answers by `fast`, returning what it
    /// returned, the `fast` of each run, and whether it recorded `missing`.
    async fn runs(fast: bool, answer: impl Fn(bool) -> Output) -> (i32, Vec<bool>, bool) {
        let missing = AtomicBool::new(false);
        let mut asked = Vec::new();
        let out = fast_or_not(fast, &missing, |f| {
            asked.push(f);
            let out = answer(f);
            async move { Ok(out) }
        })
        .await
        .unwrap();
        (
            out.status.code().unwrap(),
            asked,
            missing.load(Ordering::Relaxed),
        )
    }

    #[tokio::test]
    async fn compose_runs_again_without_the_fast_import_only_when_python_lacks_distutils() {
        let py312 = |fast: bool| match fast {
            true => output(
                1,
                "Traceback (most recent call last):\n  File \"/usr/bin/docker-compose\"\n\
                 ModuleNotFoundError: No module named 'distutils'\n",
            ),
            false => output(0, ""),
        };
        assert_eq!(runs(true, py312).await, (0, vec![true, false], true));
        // Any other failure is compose's answer: never run twice.
        let broken = |_| output(1, "ERROR: yaml.scanner.ScannerError: mapping values");
        assert_eq!(runs(true, broken).await, (1, vec![true], false));
        assert_eq!(runs(true, |_| output(0, "")).await, (0, vec![true], false));
        // Not fast (the plugin, the operator's own setting, or known missing).
        assert_eq!(runs(false, py312).await, (0, vec![false], false));
    }
}
