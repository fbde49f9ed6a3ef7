//! A command kept running in a container (`docker exec -i`) and asked one
//! line at a time on its stdin: one exec's start, which the daemon pays
//! with a runc process in the container's namespaces (40–70 ms), serves
//! every question of a run. Ended by dropping it: its stdin closes with the
//! connection, even when this process is killed. Every exec, kept or run
//! once, is created and started here ([`start_attached`]).
use std::pin::Pin;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{API_TIMEOUT, shown};

/// Most bytes one answer may hold (1 MiB); more is an error.
const ANSWER_MAX: usize = 1 << 20;

/// The streams of an exec attached to this process: what it prints, and
/// its stdin.
pub(super) struct Attached {
    pub output: Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// Creates and starts an exec of `argv` in `container` with its stdout and
/// stderr attached, and its stdin with `stdin`: its id and its streams.
pub(super) async fn start_attached(
    docker: &Docker,
    container: &str,
    argv: &[&str],
    stdin: bool,
) -> Result<(String, Attached)> {
    let config = ExecConfig {
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let id = docker.create_exec(container, config).await?.id;
    match docker.start_exec(&id, None).await? {
        StartExecResults::Attached { output, input } => Ok((id, Attached { output, input })),
        StartExecResults::Detached => bail!("the daemon detached the exec"),
    }
}

/// A running command attached to this process through the daemon.
pub struct AttachedExec {
    /// The exec's id, to ask the daemon how it ended.
    id: String,
    /// The container, for messages.
    container: String,
    /// The command's first word, for messages.
    command: String,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output: Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
}

impl AttachedExec {
    /// Starts `argv` in `container` with its stdin, stdout and stderr attached.
    pub async fn start(docker: &Docker, container: &str, argv: &[&str]) -> Result<Self> {
        let (id, Attached { output, input }) =
            tokio::time::timeout(API_TIMEOUT, start_attached(docker, container, argv, true))
                .await
                .map_err(|_| anyhow!("no answer within {API_TIMEOUT:?}"))
                .and_then(|r| r)
                .with_context(|| {
                    format!(
                        "exec `{}` in container {}",
                        argv.first().unwrap_or(&""),
                        shown(container)
                    )
                })?;
        Ok(AttachedExec {
            id,
            container: container.to_string(),
            command: argv.first().unwrap_or(&"").to_string(),
            input,
            output,
        })
    }

    /// Writes `line` and a newline to the command's stdin, then reads what it
    /// prints (stdout and stderr as they arrive) until `answered` finds the
    /// answer complete in it, within 1 MiB and the API timeout (2 minutes).
    /// The command ending first is an error naming its exit code.
    pub async fn ask(
        &mut self,
        docker: &Docker,
        line: &str,
        answered: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>> {
        let asked = async {
            self.input.write_all(format!("{line}\n").as_bytes()).await?;
            self.input.flush().await?;
            let mut said = Vec::new();
            while let Some(chunk) = self.output.next().await {
                match chunk? {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message } => said.extend_from_slice(&message),
                    LogOutput::StdIn { .. } => continue,
                }
                if said.len() > ANSWER_MAX {
                    bail!("it printed more than {} KiB", ANSWER_MAX >> 10);
                }
                if answered(&said) {
                    return Ok(Some(said));
                }
            }
            Ok(None)
        };
        let what = || {
            format!(
                "`{}` running in container {}",
                self.command,
                shown(&self.container)
            )
        };
        let answer = tokio::time::timeout(API_TIMEOUT, asked)
            .await
            .map_err(|_| anyhow!("no answer within {API_TIMEOUT:?}"))
            .and_then(|r| r)
            .with_context(what)?;
        match answer {
            Some(said) => Ok(said),
            None => {
                let code = docker
                    .inspect_exec(&self.id)
                    .await
                    .ok()
                    .and_then(|e| e.exit_code);
                bail!(
                    "{} ended (exit code {}) before it answered",
                    what(),
                    code.map_or("unknown".to_string(), |c| c.to_string())
                )
            }
        }
    }
}
