//! Running a command inside a container (`docker exec`).
use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures_util::StreamExt;

/// What a command run with [`exec`] printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the command (`-1` when the daemon did not report one).
    pub exit_code: i64,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl ExecOutput {
    /// True when the command exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// Runs `argv` in `container` and collects its output and exit code.
pub async fn exec(docker: &Docker, container: &str, argv: &[&str]) -> Result<ExecOutput> {
    let what = || format!("exec `{}` in container {container}", argv.join(" "));
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let id = docker
        .create_exec(container, config)
        .await
        .with_context(what)?
        .id;
    let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&id, None).await.with_context(what)?
    else {
        bail!("{}: the daemon detached the exec", what());
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = output.next().await {
        match chunk.with_context(what)? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.extend_from_slice(&message)
            }
            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            LogOutput::StdIn { .. } => {}
        }
    }
    let inspect = docker.inspect_exec(&id).await.with_context(what)?;
    Ok(ExecOutput {
        exit_code: inspect.exit_code.unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}
