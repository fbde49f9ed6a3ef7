//! Running hooks in app containers: a command in a running container
//! (`docker exec` with the hook's user, privileges, directory and
//! environment), or once in a one-off container made from a service's new
//! spec (the pre-deploy hook). Every wait is bounded by a timeout and only
//! the tail of the output is kept.
use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{ContainerInspectResponse, ExecConfig};
use bollard::query_parameters::{AttachContainerOptions, RemoveContainerOptions};
use futures_util::{Stream, StreamExt};

use super::recreate::{create, start};
use super::spec::{ContainerSpec, ONE_OFF_LABEL};
use crate::docker::{self, is_not_found};
use crate::plan::{HookCommand, HookExit};

/// How many bytes of a hook's output are kept (the end of it).
const TAIL_BYTES: usize = 4096;
/// How many lines of that are shown.
const TAIL_LINES: usize = 20;

/// The last [`TAIL_BYTES`] of a stream of output: memory stays bounded
/// however much a command prints.
#[derive(Debug, Default)]
struct Tail(VecDeque<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (self.0.len() + bytes.len()).saturating_sub(TAIL_BYTES);
        self.0.drain(..overflow);
        self.0.extend(bytes);
    }

    /// The last [`TAIL_LINES`] lines, lossily decoded, trailing blanks trimmed.
    fn text(&self) -> String {
        let (a, b) = self.0.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    /// Reads `output` to its end into the tail.
    async fn collect(
        &mut self,
        mut output: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    ) -> Result<()> {
        while let Some(chunk) = output.next().await {
            match chunk? {
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message } => self.push(&message),
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(())
    }
}

/// Runs `command` in running container `container` and returns its exit
/// code and the tail of its output. After `timeout` it is an error (the
/// daemon has no way to stop an exec'd process: it ends with its container).
pub async fn exec_hook(
    docker: &Docker,
    container: &str,
    command: &HookCommand,
    timeout: Duration,
) -> Result<HookExit> {
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(command.argv.clone()),
        user: command.user.clone(),
        privileged: Some(command.privileged),
        working_dir: command.working_dir.clone(),
        env: (!command.environment.is_empty()).then(|| command.environment.clone()),
        ..Default::default()
    };
    let run = async {
        let id = docker
            .create_exec(container, config)
            .await
            .context("create the exec")?
            .id;
        let StartExecResults::Attached { output, .. } =
            docker.start_exec(&id, None).await.context("start it")?
        else {
            bail!("the daemon detached the exec");
        };
        let mut tail = Tail::default();
        tail.collect(output).await.context("read its output")?;
        let inspect = docker.inspect_exec(&id).await.context("inspect it")?;
        Ok(HookExit {
            code: inspect.exit_code.unwrap_or(-1),
            output: tail.text(),
        })
    };
    tokio::time::timeout(timeout, run).await.map_err(|_| {
        anyhow!(
            "still running after {}",
            humantime::format_duration(timeout)
        )
    })?
}

/// Runs `command` once in a one-off container `name` made from `spec` (see
/// [`ContainerSpec::one_off`]), waits until it exits (at most `timeout`,
/// then it is killed), removes it with its anonymous volumes and returns its
/// exit code and the tail of its output. A stopped or running container of
/// that name that carries our one-off label is a leftover of a killed run
/// and is removed first; any other container of that name is an error.
pub async fn run_one_off(
    docker: &Docker,
    spec: &ContainerSpec,
    name: &str,
    command: &HookCommand,
    timeout: Duration,
) -> Result<HookExit> {
    remove_leftover(docker, name).await?;
    let spec = spec.clone().one_off(name, &command.argv);
    let id = create(docker, &spec, name).await?;
    let ran = async {
        let options = AttachContainerOptions {
            stdout: true,
            stderr: true,
            stream: true,
            logs: true,
            ..Default::default()
        };
        let attached = docker
            .attach_container(&id, Some(options))
            .await
            .with_context(|| format!("container {name}: attach"))?;
        start(docker, &id, name).await?;
        let mut tail = Tail::default();
        let waited = tokio::time::timeout(timeout, async {
            tail.collect(attached.output)
                .await
                .with_context(|| format!("container {name}: read its output"))?;
            exit_code(docker, &id, name).await
        })
        .await;
        match waited {
            Ok(code) => Ok(HookExit {
                code: code?,
                output: tail.text(),
            }),
            Err(_) => Err(anyhow!(
                "container {name} still ran after {}; it was killed and removed{}",
                humantime::format_duration(timeout),
                match tail.text() {
                    t if t.is_empty() => String::new(),
                    t => format!(", output ends:\n{t}"),
                }
            )),
        }
    }
    .await;
    let removed = remove(docker, &id).await;
    let exit = ran?;
    removed.with_context(|| format!("container {name}: remove after it exited"))?;
    Ok(exit)
}

/// The exit code of a container that ended (waits for it, if it has not yet).
async fn exit_code(docker: &Docker, id: &str, name: &str) -> Result<i64> {
    match docker.wait_container(id, None).next().await {
        Some(Ok(r)) => Ok(r.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(e).with_context(|| format!("container {name}: wait for its exit")),
        None => bail!("container {name}: the daemon ended the wait without an exit code"),
    }
}

/// Removes (killing) a container and its anonymous volumes.
async fn remove(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Err(e) if !is_not_found(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

/// The one-off container of ours a killed run left under `name`, if any;
/// a container of that name not ours is an error.
async fn leftover(docker: &Docker, name: &str) -> Result<Option<ContainerInspectResponse>> {
    let Some(found) = docker::inspect(docker, name).await? else {
        return Ok(None);
    };
    let ours = found
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .is_some_and(|l| l.contains_key(ONE_OFF_LABEL));
    if !ours {
        bail!(
            "a container named {name} exists and is not a one-off of nginx-rollout; rename or remove it"
        );
    }
    Ok(Some(found))
}

/// Whether a one-off container of ours a killed run left under `name` still
/// runs its command (`None`: there is none).
pub async fn leftover_running(docker: &Docker, name: &str) -> Result<Option<bool>> {
    Ok(leftover(docker, name)
        .await?
        .map(|found| found.state.and_then(|s| s.running) == Some(true)))
}

/// Removes a one-off container of ours left under `name` by a killed run
/// (none there: nothing to do); one not ours is an error.
pub async fn remove_leftover(docker: &Docker, name: &str) -> Result<()> {
    let Some(found) = leftover(docker, name).await? else {
        return Ok(());
    };
    let id = found.id.unwrap_or_else(|| name.to_string());
    remove(docker, &id)
        .await
        .with_context(|| format!("container {name}: remove the leftover of a killed run"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_end_of_the_output_within_its_bound() {
        let mut tail = Tail::default();
        for n in 0..10_000 {
            tail.push(format!("line {n}\n").as_bytes());
        }
        assert!(tail.0.len() <= TAIL_BYTES);
        let text = tail.text();
        assert_eq!(text.lines().count(), TAIL_LINES);
        assert!(text.ends_with("line 9999"), "{text}");
        assert!(text.starts_with("line 9980"), "{text}");
        let mut big = Tail::default();
        big.push(&vec![b'x'; 3 * TAIL_BYTES]);
        assert_eq!(big.0.len(), TAIL_BYTES);
    }
}
