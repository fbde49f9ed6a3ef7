//! Compose v1's reading script (`reading.py`): compose's own code, run with
//! compose's interpreter, prints `config` and what compose hashes of each
//! service (see `reading.rs`) and can ask compose for the template of
//! each service in the same process (see `templates.rs`). What to read
//! comes on its stdin, so its interpreter can be started before the run
//! knows the project ([`ReadingAhead`]).
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use super::cli::{
    ComposeCli, FAST_DISTUTILS, compose_python, fast_distutils, output_within, run_as,
};
use crate::docker::{ComposeRef, Endpoint};

/// [`run_as`] of compose v1's own code through `python`, its interpreter:
/// [`READING_SCRIPT`] given the same global arguments, which prints what
/// compose hashes of each service (see `reading.rs`) and, with `templates`
/// (services), compose's request to create one more container of each. The
/// interpreter [`ReadingAhead`] started for it answers when it is the same.
pub(in crate::backends) async fn run_reading_script(
    cli: ComposeCli<'_>,
    python: &Path,
    r: &ComposeRef,
    templates: Option<&[String]>,
) -> Result<String> {
    let script = Script { python, templates };
    run_as(cli, r, &[], Some(script)).await
}

/// What [`run_reading_script`] runs.
const READING_SCRIPT: &str = include_str!("reading.py");

/// [`READING_SCRIPT`] as [`run_as`] runs it.
#[derive(Clone, Copy)]
pub(super) struct Script<'a> {
    /// Compose's interpreter.
    python: &'a Path,
    /// The services whose templates it asks compose for, if any.
    templates: Option<&'a [String]>,
}

impl Script<'_> {
    /// What it runs, for messages.
    pub(super) fn shown(&self) -> String {
        match self.templates {
            None => "(compose's reading script)".to_string(),
            Some(services) => format!(
                "(compose's reading script, with the templates of {})",
                services.join(", ")
            ),
        }
    }

    /// Its output with compose's `global` arguments ([`global_args`](super::cli::global_args)), run
    /// in `run_in` (the interpreter started ahead if it is this one, else
    /// one started now), with [`FAST_DISTUTILS`] when `fast`; `line` names it
    /// in messages.
    pub(super) async fn output(
        self,
        cli: ComposeCli<'_>,
        global: &[&OsStr],
        run_in: &Path,
        fast: bool,
        line: &str,
    ) -> Result<Output> {
        let request = Request::new(global, run_in, self.templates)?;
        let ahead = cli
            .ahead
            .take(|s| s.python == self.python && s.fast == fast);
        let line = match ahead.is_some() {
            true => format!("{line} (started ahead)"),
            false => line.to_string(),
        };
        let mut child = match ahead {
            Some(child) => child,
            None => start_script(self.python, fast, cli.daemon)?,
        };
        let mut text = serde_json::to_vec(&request).expect("a request serialises");
        text.push(b'\n');
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A script that stopped early (no `distutils`) has closed its stdin:
        // what it said on stderr is the answer.
        let _ = stdin.write_all(&text).await;
        drop(stdin);
        output_within(child.wait_with_output(), &line).await
    }
}

/// Compose v1's reading script (see this module) started ahead, when a run
/// begins, by compose's interpreter: it loads compose's modules (most of
/// what the script takes) while the run finds its containers, and then
/// waits for what to read (the run's first reading takes it). One not taken
/// is killed when this is dropped, or [`discard`](Self::discard)ed when a
/// kept reading answers.
#[derive(Debug)]
pub struct ReadingAhead(Mutex<Option<Started>>);

/// The script's interpreter, started.
#[derive(Debug)]
struct Started {
    python: PathBuf,
    fast: bool,
    child: Child,
}

impl ReadingAhead {
    /// None started.
    pub const fn none() -> Self {
        ReadingAhead(Mutex::new(None))
    }

    /// Starts the script for the daemon at `daemon`, when the standalone
    /// `docker-compose` is compose v1 (else nothing is started).
    pub fn start(daemon: &Endpoint) -> Self {
        let fast = fast_distutils();
        let started =
            compose_python().and_then(|(_, python)| match start_script(&python, fast, daemon) {
                Ok(child) => Some(Started {
                    python,
                    fast,
                    child,
                }),
                Err(e) => {
                    tracing::debug!("compose's reading script not started ahead: {e:#}");
                    None
                }
            });
        ReadingAhead(Mutex::new(started))
    }

    /// Kills the script started ahead, if no run took it: it is not
    /// needed, `because`.
    pub fn discard(&self, because: &str) {
        if self.take(|_| true).is_some() {
            tracing::debug!("compose's reading script started ahead is not needed: {because}");
        }
    }

    /// The script started ahead, if it is one `fits`.
    fn take(&self, fits: impl FnOnce(&Started) -> bool) -> Option<Child> {
        let mut ahead = self.0.lock().expect("not poisoned");
        ahead.take_if(|s| fits(s)).map(|s| s.child)
    }
}

/// [`READING_SCRIPT`] started by `python` for `daemon`, waiting for its
/// request on stdin: in `/` (compose runs where the request says), and
/// with [`FAST_DISTUTILS`] when `fast`.
fn start_script(python: &Path, fast: bool, daemon: &Endpoint) -> Result<Child> {
    let mut c = Command::new(python);
    if fast {
        c.env(FAST_DISTUTILS.0, FAST_DISTUTILS.1);
    }
    daemon.point(&mut c);
    c.arg("-c")
        .arg(READING_SCRIPT)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c.spawn()
        .with_context(|| format!("cannot run {}", python.display()))
}

/// What [`READING_SCRIPT`] reads on stdin: where compose runs, its global
/// arguments, and the services whose templates it asks compose for.
#[derive(Serialize)]
struct Request<'a> {
    dir: &'a str,
    args: Vec<&'a str>,
    templates: Option<&'a [String]>,
}

impl<'a> Request<'a> {
    /// The request with compose's `global` arguments ([`global_args`](super::cli::global_args)), run
    /// in `run_in`. `Err` when a path is not UTF-8.
    fn new(
        global: &[&'a OsStr],
        run_in: &'a Path,
        templates: Option<&'a [String]>,
    ) -> Result<Self> {
        let text = |p: &'a Path| {
            p.to_str()
                .ok_or_else(|| anyhow!("{}: not UTF-8", p.display()))
        };
        Ok(Request {
            dir: text(run_in)?,
            args: global
                .iter()
                .map(|a| a.to_str().ok_or_else(|| anyhow!("{a:?}: not UTF-8")))
                .collect::<Result<_>>()?,
            templates,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::super::cli::global_args;
    use super::*;

    fn project(files: &[&Path]) -> ComposeRef {
        ComposeRef {
            project: "shop".into(),
            service: "web".into(),
            working_dir: Some("/srv/shop".into()),
            config_files: files.iter().map(|f| f.to_path_buf()).collect(),
            config_hash: None,
            env_files: vec!["/srv/shop/prod.env".into()],
            profiles: vec!["edge".into()],
            named_from: None,
        }
    }

    #[test]
    fn the_script_reads_compose_global_arguments_and_templates_as_one_json_line() {
        let r = project(&[Path::new("/srv/shop/a.yml"), Path::new("/srv/shop/b.yml")]);
        let services = ["web".to_string(), "worker".to_string()];
        let global = global_args(&r).unwrap();
        let request = Request::new(&global, Path::new("/srv/shop"), Some(&services)).unwrap();
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"dir":"/srv/shop","args":["--project-directory","/srv/shop","-p","shop","-f","/srv/shop/a.yml","-f","/srv/shop/b.yml","--env-file","/srv/shop/prod.env","--profile","edge"],"templates":["web","worker"]}"#
        );
        let request = Request::new(&global, Path::new("/srv/shop"), None).unwrap();
        assert!(
            serde_json::to_string(&request)
                .unwrap()
                .ends_with(r#""templates":null}"#)
        );
    }

    #[test]
    fn a_path_json_cannot_carry_is_an_error_not_a_lossy_guess() {
        let odd = Path::new(OsStr::from_bytes(b"/srv/shop/\xff.yml"));
        let r = project(&[odd]);
        let e = Request::new(&global_args(&r).unwrap(), Path::new("/srv/shop"), None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
