//! The reload protocol: `nginx -t`, `nginx -s reload`, proof that new workers
//! took over, and waiting for the old ones to finish their requests.
use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{LogsOptions, TopOptions};
use futures_util::StreamExt;
use tokio::time::{Instant, sleep};

use super::{NginxContainer, exec};

/// How often the process list is polled while waiting.
const POLL: Duration = Duration::from_millis(25);
/// Log lines shown when a reload did not take.
const LOG_TAIL: &str = "20";

/// Why `nginx -t` did not pass.
#[derive(Debug, thiserror::Error)]
pub enum NginxTestError {
    /// nginx rejected the configuration; `message` is what it printed.
    #[error("nginx -t rejected the configuration in container {container}:\n{message}")]
    Rejected {
        /// Container name.
        container: String,
        /// nginx's own output (stderr, trimmed).
        message: String,
    },
    /// The test could not be run at all.
    #[error(transparent)]
    Exec(#[from] anyhow::Error),
}

/// nginx processes of a container, by host pid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workers {
    /// Workers serving with the current configuration.
    pub active: Vec<u32>,
    /// Old workers finishing their requests (`worker process is shutting down`).
    pub shutting_down: Vec<u32>,
    /// The master process.
    pub master: u32,
}

/// What a successful [`reload`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Workers that were active before the reload (now shutting down or gone).
    pub old_workers: Vec<u32>,
    /// Workers started for the new configuration.
    pub new_workers: Vec<u32>,
}

/// Runs `nginx -t` (with the options nginx was started with) in the container.
pub async fn test_config(docker: &Docker, nginx: &NginxContainer) -> Result<(), NginxTestError> {
    let out = nginx_exec(docker, nginx, &["-t", "-q"]).await?;
    if out.success() {
        return Ok(());
    }
    let message = [out.stderr.trim(), out.stdout.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    Err(NginxTestError::Rejected {
        container: nginx.name.clone(),
        message,
    })
}

/// Lists the container's nginx master and workers (top API).
pub async fn worker_pids(docker: &Docker, nginx: &NginxContainer) -> Result<Workers> {
    let top = docker
        .top_processes(
            &nginx.id,
            Some(TopOptions {
                ps_args: "-eo pid,args".into(),
            }),
        )
        .await
        .with_context(|| format!("listing processes of container {}", nginx.name))?;
    let titles = top.titles.unwrap_or_default();
    parse_top(&titles, &top.processes.unwrap_or_default())
        .with_context(|| format!("reading processes of container {}", nginx.name))
}

/// Sorts `ps -eo pid,args` rows into master, active and shutting-down workers.
fn parse_top(titles: &[String], rows: &[Vec<String>]) -> Result<Workers> {
    let col = |name: &str| titles.iter().position(|t| t == name);
    let (Some(pid_col), Some(cmd_col)) = (col("PID"), col("COMMAND").or_else(|| col("CMD"))) else {
        bail!("unexpected process list columns {titles:?}");
    };
    let mut workers = Workers::default();
    let mut master = None;
    for row in rows {
        let (Some(pid), Some(cmd)) = (row.get(pid_col), row.get(cmd_col)) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        let cmd = cmd.trim();
        if cmd.starts_with("nginx: master process") {
            master = Some(pid);
        } else if cmd.starts_with("nginx: worker process is shutting down") {
            workers.shutting_down.push(pid);
        } else if cmd.starts_with("nginx: worker process") {
            workers.active.push(pid);
        }
    }
    let Some(master) = master else {
        bail!("no nginx master process is running");
    };
    workers.master = master;
    workers.active.sort_unstable();
    workers.shutting_down.sort_unstable();
    Ok(workers)
}

/// Runs `nginx -s reload` and waits (up to `timeout`) until new workers have
/// replaced every previously active one — `-s reload` exits 0 even when the
/// master rejects the new configuration, so only new workers prove it is live.
/// On timeout the error carries the tail of the container's log.
pub async fn reload(
    docker: &Docker,
    nginx: &NginxContainer,
    timeout: Duration,
) -> Result<ReloadOutcome> {
    let before = worker_pids(docker, nginx).await?;
    let known: HashSet<u32> = before
        .active
        .iter()
        .chain(&before.shutting_down)
        .copied()
        .collect();
    let since = chrono::Utc::now().timestamp() - 1;
    signal_reload(docker, nginx, before.master).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let now = worker_pids(docker, nginx).await?;
        let old_still_active = now.active.iter().any(|p| before.active.contains(p));
        let new: Vec<u32> = now
            .active
            .iter()
            .copied()
            .filter(|p| !known.contains(p))
            .collect();
        if !new.is_empty() && !old_still_active {
            return Ok(ReloadOutcome {
                old_workers: before.active,
                new_workers: new,
            });
        }
        if Instant::now() >= deadline {
            let logs = log_tail(docker, nginx, since).await;
            bail!(
                "nginx in container {} did not start new workers within {} after `nginx -s reload` \
                 (the master probably rejected the configuration); its log:\n{logs}",
                nginx.name,
                humantime::format_duration(timeout)
            );
        }
        sleep(POLL).await;
    }
}

/// Waits until none of the `old` worker pids is running any more, up to
/// `timeout`; the error names the workers still finishing requests.
pub async fn wait_old_workers_exit(
    docker: &Docker,
    nginx: &NginxContainer,
    old: &[u32],
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = worker_pids(docker, nginx).await?;
        let left: Vec<u32> = old
            .iter()
            .copied()
            .filter(|p| now.active.contains(p) || now.shutting_down.contains(p))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "old nginx workers {} in container {} still running after {} (requests or \
                 long-lived connections still open; nginx's worker_shutdown_timeout bounds them)",
                left.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                nginx.name,
                humantime::format_duration(timeout)
            );
        }
        sleep(POLL).await;
    }
}

/// Tells the master to reload, as `nginx -s reload` does (SIGHUP). When the
/// master is the container's main process the signal goes through the API,
/// which saves a `docker exec` round trip; otherwise `nginx -s reload` runs in it.
async fn signal_reload(docker: &Docker, nginx: &NginxContainer, master: u32) -> Result<()> {
    let main_pid = docker
        .inspect_container(&nginx.id, None)
        .await
        .with_context(|| format!("container {}: inspect", nginx.name))?
        .state
        .and_then(|s| s.pid);
    if main_pid == Some(i64::from(master)) {
        let options = bollard::query_parameters::KillContainerOptions {
            signal: "HUP".into(),
        };
        return docker
            .kill_container(&nginx.id, Some(options))
            .await
            .with_context(|| format!("container {}: send SIGHUP to the nginx master", nginx.name));
    }
    let out = nginx_exec(docker, nginx, &["-s", "reload"]).await?;
    if !out.success() {
        bail!(
            "`nginx -s reload` failed in container {} (exit {}): {}",
            nginx.name,
            out.exit_code,
            out.stderr.trim()
        );
    }
    Ok(())
}

async fn nginx_exec(
    docker: &Docker,
    nginx: &NginxContainer,
    args: &[&str],
) -> Result<super::ExecOutput> {
    let mut argv: Vec<&str> = vec![nginx.command.binary.as_str()];
    argv.extend(nginx.command.global_args.iter().map(String::as_str));
    argv.extend_from_slice(args);
    exec(docker, &nginx.id, &argv).await
}

/// The container's recent log lines (stdout and stderr) since `since` (unix s).
async fn log_tail(docker: &Docker, nginx: &NginxContainer, since: i64) -> String {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        since: i32::try_from(since).unwrap_or(0),
        tail: LOG_TAIL.into(),
        ..Default::default()
    };
    let mut stream = docker.logs(&nginx.id, Some(options));
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(
                LogOutput::StdErr { message }
                | LogOutput::StdOut { message }
                | LogOutput::Console { message },
            ) => text.push_str(&String::from_utf8_lossy(&message)),
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => {
                text.push_str(&format!("(could not read the log: {e})"));
                break;
            }
        }
    }
    if text.trim().is_empty() {
        "(empty)".into()
    } else {
        text.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: &str, cmd: &str) -> Vec<String> {
        vec![pid.into(), cmd.into()]
    }

    #[test]
    fn sorts_master_and_workers() {
        let titles = vec!["PID".to_string(), "COMMAND".to_string()];
        let rows = vec![
            row("100", "nginx: master process nginx -g daemon off;"),
            row("230", "nginx: worker process"),
            row("120", "nginx: worker process is shutting down"),
            row("231", "nginx: worker process"),
            row("140", "sh -c sleep 5"),
            row("150", "nginx: cache manager process"),
        ];
        let w = parse_top(&titles, &rows).unwrap();
        assert_eq!(
            w,
            Workers {
                active: vec![230, 231],
                shutting_down: vec![120],
                master: 100
            }
        );
    }

    #[test]
    fn missing_master_or_columns_is_an_error() {
        let titles = vec!["PID".to_string(), "COMMAND".to_string()];
        assert!(parse_top(&titles, &[row("1", "sleep 1")]).is_err());
        assert!(parse_top(&["UID".to_string()], &[]).is_err());
    }
}
