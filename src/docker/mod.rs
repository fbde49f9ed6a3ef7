//! The thin Docker client every wing shares: choosing the daemon as the
//! docker CLI does and connecting to it, the daemon's 404, running a command
//! in a container (once, or kept running and asked line by line), and
//! reading what `inspect` reports (names, timestamps, compose labels).
//! Knows nothing of nginx or rollouts.
mod attached;
mod choose;
mod context;
mod endpoint;
mod host;
mod labels;
mod ssh;

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::container::LogOutput;
use bollard::models::ContainerSummary;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

pub use attached::AttachedExec;
use attached::{Attached, start_attached};
/// The Docker API client: how modules above the wings (`rollout`) name it.
pub use bollard::Docker;
/// A container as the daemon inspects it: how modules above the wings name it.
pub use bollard::models::ContainerInspectResponse;
pub use endpoint::{
    DaemonLocation, DockerOptions, Endpoint, EndpointError, Origin, POINTING_VARIABLES,
};
pub use labels::{ComposeLabel, ComposeRef, label_filters};

/// How long one API call may take before it is an error (an exec: until
/// its command ends).
const API_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the daemon may take to answer the first time (over ssh: the login too).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects to the daemon at `endpoint`, negotiates the API version and
/// checks that the daemon answers.
pub async fn connect(endpoint: &Endpoint) -> Result<Docker> {
    let unreachable = || {
        format!(
            "cannot reach the Docker daemon at {endpoint} ({})",
            endpoint.hint()
        )
    };
    let (docker, ssh) = endpoint.client(API_TIMEOUT.as_secs());
    let docker = docker.with_context(unreachable)?;
    // The version's answer is the daemon answering: no ping after it.
    let answer = docker.negotiate_version();
    let result = tokio::time::timeout(CONNECT_TIMEOUT, answer)
        .await
        .map_err(|_| anyhow!("no answer within {CONNECT_TIMEOUT:?}"))
        .and_then(|r| r.map_err(anyhow::Error::from));
    // ssh's own words (`Permission denied`, `Could not resolve hostname`) say most.
    let said = ssh.map(|s| s.text()).filter(|t| !t.is_empty());
    match (result, said) {
        (Ok(docker), _) => Ok(docker),
        (Err(e), Some(said)) => {
            Err(e.context(format!("ssh said: {said}"))).with_context(unreachable)
        }
        (Err(e), None) => Err(e).with_context(unreachable),
    }
}

/// The daemon's version as it answers: `VERSION (API API_VERSION)`.
pub async fn engine_version(docker: &Docker) -> Result<String> {
    let v = docker
        .version()
        .await
        .context("cannot ask the daemon its version")?;
    Ok(format!(
        "{} (API {})",
        v.version.unwrap_or_default(),
        v.api_version.unwrap_or_default()
    ))
}

/// Whether `e` or one of its causes is the daemon not answering at all (its
/// socket gone, the connection refused, cut or timed out), as when dockerd
/// is restarted, rather than an answer of the daemon.
pub fn is_unreachable(e: &anyhow::Error) -> bool {
    use bollard::errors::Error as E;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<E>(),
            Some(
                E::SocketNotFoundError(_)
                    | E::HyperLegacyError { .. }
                    | E::HyperResponseError { .. }
                    | E::IOError { .. }
                    | E::RequestTimeoutError
            )
        )
    })
}

/// Whether an API error is the daemon's "no such container / file" (404).
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A container's inspect data, or `None` when there is no such container.
pub async fn inspect(docker: &Docker, container: &str) -> Result<Option<ContainerInspectResponse>> {
    match docker.inspect_container(container, None).await {
        Ok(info) => Ok(Some(info)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("container {}: inspect", shown(container))),
    }
}

/// A container's name as the daemon reports it (`/app1`), without the leading `/`.
pub fn bare_name(name: &str) -> &str {
    name.trim_start_matches('/')
}

/// The name of an inspected container (without the leading `/`), or `fallback`.
pub fn name_of<'a>(inspect: &'a ContainerInspectResponse, fallback: &'a str) -> &'a str {
    inspect.name.as_deref().map_or(fallback, bare_name)
}

/// The first name of a listed container (without the leading `/`), or `?`.
pub fn listed_name(summary: &ContainerSummary) -> &str {
    summary
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map_or("?", |n| bare_name(n))
}

/// The first 12 characters of a container id, as `docker ps` shows it.
pub fn short_id(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(end, _)| &id[..end])
}

/// A container or image as messages show it: a full id (64 hex digits, or
/// `sha256:` and them) as `docker ps` shows it, anything else (a name) whole.
pub fn shown(reference: &str) -> &str {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        short_id(hex)
    } else {
        reference
    }
}

/// Parses one of Docker's RFC 3339 timestamps; `what` names it in the error.
pub fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| anyhow!("{what}: Docker timestamp `{s}`: {e}"))
}

/// What a command run with [`exec_in`] printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the command (`-1` when the daemon did not report one).
    pub exit_code: i64,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded: its last 64 KiB.
    pub stderr: String,
}

impl ExecOutput {
    /// True when the command exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// Whether this is what an exec racing its container's stop or restart
    /// gets: 126 (could not start), no code, above 128 (killed by a signal),
    /// or a failure without a word (its streams cut).
    fn may_have_raced_a_stop(&self) -> bool {
        let silent = self.stdout.trim().is_empty() && self.stderr.trim().is_empty();
        self.exit_code == 126
            || self.exit_code > 128
            || self.exit_code == NO_EXIT_CODE
            || (!self.success() && silent)
    }
}

/// Runs `argv` in `container` (`docker exec`) and collects its output and
/// exit code. A command that prints more than 64 MiB on stdout, or is still
/// running after 2 minutes, is an error.
pub async fn exec_in(docker: &Docker, container: &str, argv: &[&str]) -> Result<ExecOutput> {
    exec(docker, container, argv, None).await
}

/// Runs `argv` in `container` with `input` on its stdin (closed after it),
/// and collects its output and exit code.
pub async fn exec_with_input(
    docker: &Docker,
    container: &str,
    argv: &[&str],
    input: &[u8],
) -> Result<ExecOutput> {
    exec(docker, container, argv, Some(input)).await
}

/// An exec that raced its container's stop or restart (found in an
/// [`exec_in`] error with `downcast_ref`).
#[derive(Debug, thiserror::Error)]
#[error(
    "exec `{command}`: container {container} is not running, or was restarted while the command ran"
)]
pub struct ExecRaced {
    /// The command, its words joined by spaces.
    pub command: String,
    /// The container's name.
    pub container: String,
}

/// [`exec_attached`] within [`API_TIMEOUT`], and when it fails, or the
/// command's start fails (exit 126, or no code), or a signal killed it, or
/// it failed without a word (what an exec racing a container's stop or
/// restart gets), whether the container went away meanwhile: then the error
/// is [`ExecRaced`].
async fn exec(
    docker: &Docker,
    container: &str,
    argv: &[&str],
    input: Option<&[u8]>,
) -> Result<ExecOutput> {
    let asked = Utc::now();
    let result = tokio::time::timeout(API_TIMEOUT, exec_attached(docker, container, argv, input))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow!(
                "exec `{}` in container {}: still running after {}",
                argv.join(" "),
                shown(container),
                humantime::format_duration(API_TIMEOUT)
            ))
        });
    let suspect = match &result {
        Ok(out) => out.may_have_raced_a_stop(),
        Err(_) => true,
    };
    if suspect && let Err(name) = ran_throughout(docker, container, asked, &result).await {
        let gone = ExecRaced {
            command: argv.join(" "),
            container: name,
        };
        return Err(match result {
            Err(e) => e.context(gone),
            Ok(_) => anyhow!(gone),
        });
    }
    result
}

/// The exit code recorded when the daemon has none for an exec.
const NO_EXIT_CODE: i64 = -1;

/// Most bytes of an exec's stdout kept (64 MiB, what a config file may hold:
/// one read back with `cat` fits whole); more is an error, never a cut copy.
pub const EXEC_STDOUT_MAX: usize = 64 << 20;
/// How many bytes of the end of an exec's stderr are kept: nginx's messages
/// (the reason last) and `nginx -V`'s configure arguments are a few KiB.
const STDERR_KEPT: usize = 64 << 10;

/// An exec's output as it arrives, within [`EXEC_STDOUT_MAX`] and [`STDERR_KEPT`].
#[derive(Debug, Default)]
struct Collected {
    stdout: Vec<u8>,
    stderr: VecDeque<u8>,
}

impl Collected {
    /// Adds one chunk; stdout growing past [`EXEC_STDOUT_MAX`] is an error.
    fn push(&mut self, chunk: LogOutput) -> Result<()> {
        match chunk {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                if self.stdout.len() + message.len() > EXEC_STDOUT_MAX {
                    bail!("it printed more than {} MiB", EXEC_STDOUT_MAX >> 20);
                }
                self.stdout.extend_from_slice(&message);
            }
            LogOutput::StdErr { message } => {
                let message = &message[message.len().saturating_sub(STDERR_KEPT)..];
                let overflow = (self.stderr.len() + message.len()).saturating_sub(STDERR_KEPT);
                self.stderr.drain(..overflow);
                self.stderr.extend(message);
            }
            LogOutput::StdIn { .. } => {}
        }
        Ok(())
    }
}

async fn exec_attached(
    docker: &Docker,
    container: &str,
    argv: &[&str],
    input: Option<&[u8]>,
) -> Result<ExecOutput> {
    use tokio::io::AsyncWriteExt;
    let what = || format!("exec `{}` in container {container}", argv.join(" "));
    let (
        id,
        Attached {
            mut output,
            input: mut stdin,
        },
    ) = start_attached(docker, container, argv, input.is_some())
        .await
        .with_context(what)?;
    let feed = async {
        if let Some(bytes) = input {
            stdin.write_all(bytes).await?;
            stdin.shutdown().await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let collect = async {
        let mut collected = Collected::default();
        while let Some(chunk) = output.next().await {
            collected.push(chunk?)?;
        }
        Ok::<_, anyhow::Error>(collected)
    };
    let (fed, collected) = tokio::join!(feed, collect);
    let Collected { stdout, stderr } = collected.with_context(what)?;
    fed.with_context(|| format!("{}: writing its stdin", what()))?;
    let inspect = docker.inspect_exec(&id).await.with_context(what)?;
    Ok(ExecOutput {
        exit_code: inspect.exit_code.unwrap_or(NO_EXIT_CODE),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&Vec::from(stderr)).into_owned(),
    })
}

/// Whether `container` is running now and has been since `since` (it was
/// not stopped or restarted in between); if not, its name. A daemon that
/// cannot be asked tells nothing: then the exec's own error stands. After a
/// kill by a signal the daemon may not have seen the stop that caused it
/// yet (the container still "running" since before): it is asked again for
/// up to [`STOP_NOTICED_WITHIN`].
async fn ran_throughout(
    docker: &Docker,
    container: &str,
    since: DateTime<Utc>,
    result: &Result<ExecOutput>,
) -> std::result::Result<(), String> {
    let killed = matches!(result, Ok(out) if out.exit_code > 128);
    let started = std::time::Instant::now();
    loop {
        let c = match inspect(docker, container).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(container.to_string()),
            Err(_) => return Ok(()),
        };
        let running_since = c.state.as_ref().is_some_and(|s| {
            s.running == Some(true)
                && s.restarting != Some(true)
                && s.started_at
                    .as_deref()
                    .and_then(|t| parse_time(t, container).ok())
                    .is_some_and(|t| t <= since)
        });
        if !running_since {
            return Err(name_of(&c, container).to_string());
        }
        if !killed || started.elapsed() >= STOP_NOTICED_WITHIN {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How long the daemon may take to notice the stop of a container whose
/// main process has exited (its other processes killed with it).
const STOP_NOTICED_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_stop_leaves_is_checked_against_the_container() {
        let out = |exit_code, stderr: &str| ExecOutput {
            exit_code,
            stdout: String::new(),
            stderr: stderr.into(),
        };
        for raced in [
            out(126, "x"),
            out(137, ""),
            out(143, "x"),
            out(-1, ""),
            out(1, " \n"),
        ] {
            assert!(raced.may_have_raced_a_stop(), "{raced:?}");
        }
        for verdict in [
            out(0, ""),
            out(1, "nginx: [emerg] unknown directive"),
            out(2, "usage"),
        ] {
            assert!(!verdict.may_have_raced_a_stop(), "{verdict:?}");
        }
    }

    #[test]
    fn parses_docker_nanosecond_timestamps() {
        let t = parse_time("2026-11-22T07:13:54.123456789Z", "x").unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 123_456_789);
        assert!(
            parse_time("garbage", "container x")
                .unwrap_err()
                .to_string()
                .contains("container x")
        );
    }

    #[test]
    fn names_lose_their_slash_and_ids_shorten() {
        assert_eq!(bare_name("/app1"), "app1");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id("ééééééééééééé"), "éééééééééééé");
        assert_eq!(short_id("0123456789aé"), "0123456789aé");
        let id = "5c1e0f9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e";
        assert_eq!(shown(id), "5c1e0f9a8b7d");
        assert_eq!(shown(&format!("sha256:{id}")), "5c1e0f9a8b7d");
        assert_eq!(
            shown("nrprof_app1_1_with_a_long_name"),
            "nrprof_app1_1_with_a_long_name"
        );
        assert_eq!(shown("abcdef"), "abcdef");
    }

    #[test]
    fn an_exec_keeps_all_of_stdout_within_its_bound_and_the_end_of_stderr() {
        let mut c = Collected::default();
        c.push(LogOutput::StdOut {
            message: vec![b'x'; EXEC_STDOUT_MAX - 1].into(),
        })
        .unwrap();
        c.push(LogOutput::StdOut {
            message: "y".into(),
        })
        .unwrap();
        assert_eq!(c.stdout.len(), EXEC_STDOUT_MAX);
        let err = c
            .push(LogOutput::StdOut {
                message: "z".into(),
            })
            .unwrap_err();
        assert!(err.to_string().contains("printed more than"), "{err}");

        for n in 0..20_000 {
            c.push(LogOutput::StdErr {
                message: format!("warn {n}\n").into(),
            })
            .unwrap();
        }
        assert_eq!(c.stderr.len(), STDERR_KEPT);
        let stderr = String::from_utf8(Vec::from(c.stderr)).unwrap();
        assert!(stderr.ends_with("warn 19999\n"), "{stderr}");
        let mut big = Collected::default();
        big.push(LogOutput::StdErr {
            message: vec![b'e'; 3 * STDERR_KEPT].into(),
        })
        .unwrap();
        assert_eq!(big.stderr.len(), STDERR_KEPT);
    }
}
