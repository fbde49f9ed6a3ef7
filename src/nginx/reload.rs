//! The reload protocol: `nginx -t`, `nginx -s reload`, proof that new workers
//! took over, and waiting for the old ones to finish their requests.
use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use tokio::time::{Instant, sleep};

use super::NginxContainer;
use super::workers::{Workers, worker_pids};
use crate::docker::{ExecOutput, ExecRaced, exec_in};
use crate::duration;

/// How often the process list is polled while waiting: often at first (a
/// reload takes nginx about 100 ms), then less so during long drains.
fn poll_interval(waited: Duration) -> Duration {
    if waited < Duration::from_millis(500) {
        Duration::from_millis(5)
    } else {
        Duration::from_millis(50)
    }
}
/// Log lines shown when a reload did not take.
const LOG_TAIL: &str = "20";

/// Why `nginx -t` did not pass.
#[derive(Debug, thiserror::Error)]
pub enum NginxTestError {
    /// nginx rejected the configuration; `message` is what it printed.
    #[error("nginx -t rejected the configuration in container {container}:\n{message}{}",
        hint.as_deref().map(|h| format!("\n{h}")).unwrap_or_default())]
    Rejected {
        /// Container name.
        container: String,
        /// nginx's own output (stderr, trimmed).
        message: String,
        /// What we know about the cause, e.g. a stopped backend nginx cannot resolve.
        hint: Option<String>,
    },
    /// The test could not be run at all.
    #[error(transparent)]
    Exec(#[from] anyhow::Error),
}

impl NginxTestError {
    /// The host of nginx's `host not found in upstream "HOST:PORT"`, if that is the reason.
    pub fn unresolved_host(&self) -> Option<String> {
        let NginxTestError::Rejected { message, .. } = self else {
            return None;
        };
        let rest = message.split("host not found in upstream \"").nth(1)?;
        let address = &rest[..rest.find('"')?];
        Some(crate::conf::Address::parse(address).host)
    }
}

/// What a successful [`reload`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Workers that were active before the reload (now shutting down or gone).
    pub old_workers: Vec<u32>,
    /// Workers already shutting down before it, left by earlier reloads.
    pub shutting_down: Vec<u32>,
    /// Workers started for the new configuration.
    pub new_workers: Vec<u32>,
}

/// How long a restart of nginx's container may take before `nginx -t`,
/// cut short by it, is run again.
const RESTART_WAIT: Duration = Duration::from_secs(10);

/// Runs `nginx -t` (with the options nginx was started with) in the
/// container with one `docker exec`. When a restart of the container cut it
/// short, runs it again once nginx runs again (up to `RESTART_WAIT`).
pub async fn test_config(docker: &Docker, nginx: &NginxContainer) -> Result<(), NginxTestError> {
    match test_once(docker, nginx).await {
        Err(NginxTestError::Exec(e)) if e.downcast_ref::<ExecRaced>().is_some() => {
            if let Err(wait) = wait_running(docker, nginx, RESTART_WAIT).await {
                return Err(NginxTestError::Exec(e.context(wait)));
            }
            tracing::warn!(
                "nginx container {} restarted while nginx -t ran: testing again",
                nginx.name
            );
            test_once(docker, nginx).await
        }
        other => other,
    }
}

/// Waits until the container's nginx master has workers, up to `timeout`.
async fn wait_running(docker: &Docker, nginx: &NginxContainer, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        match worker_pids(docker, nginx).await {
            Ok(w) if !w.active.is_empty() => return Ok(()),
            Err(e) if started.elapsed() >= timeout => return Err(e),
            _ if started.elapsed() >= timeout => bail!(
                "nginx in container {} started no workers within {}",
                nginx.name,
                humantime::format_duration(timeout)
            ),
            _ => sleep(poll_interval(started.elapsed())).await,
        }
    }
}

async fn test_once(docker: &Docker, nginx: &NginxContainer) -> Result<(), NginxTestError> {
    let started = Instant::now();
    let out = nginx_exec(docker, nginx, &["-t", "-q"]).await?;
    tracing::debug!(took = ?started.elapsed(), "nginx -t in {}", nginx.name);
    if out.success() {
        return Ok(());
    }
    let message = [out.stderr.trim(), out.stdout.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    Err(rejected(nginx, out.exit_code, message))
}

/// nginx's rejection of its configuration: the test exited with `code`,
/// printing `message`.
pub(super) fn rejected(nginx: &NginxContainer, code: i64, message: String) -> NginxTestError {
    let message = match message.is_empty() {
        true => format!("(it exited with code {code} and printed nothing)"),
        false => message,
    };
    NginxTestError::Rejected {
        container: nginx.name.clone(),
        message,
        hint: None,
    }
}

/// Runs `nginx -s reload` and waits (up to `timeout`) until new workers run
/// and the old ones no longer accept connections (nginx hands over after
/// 100 ms): `-s reload` exits 0 even when the master rejects the new
/// configuration, so only new workers prove it is live. `before` is the
/// process list taken just before (e.g. while `nginx -t` ran); `None` lists
/// it now. The old workers then finish their requests:
/// [`wait_old_workers_exit`] waits for them.
/// On timeout the error carries the tail of the container's log.
pub async fn reload(
    docker: &Docker,
    nginx: &NginxContainer,
    before: Option<Workers>,
    timeout: Duration,
) -> Result<ReloadOutcome> {
    let started = Instant::now();
    let before = match before {
        Some(w) => w,
        None => worker_pids(docker, nginx).await?,
    };
    let known: HashSet<u32> = before
        .active
        .iter()
        .chain(&before.shutting_down)
        .copied()
        .collect();
    let since = chrono::Utc::now().timestamp() - 1;
    // The signal fails when the container is restarting: a new master is then
    // as good as a reload, so the error counts only if the old master stays.
    let mut signal_error = signal_reload(docker, nginx, before.master).await.err();
    let deadline = duration::deadline(started, timeout);
    // Why the process list could not be read last (nginx restarting or stopped).
    let mut unread;
    loop {
        let now = match worker_pids(docker, nginx).await {
            Ok(now) => {
                unread = None;
                now
            }
            Err(e) => {
                unread = Some(e);
                Workers::default()
            }
        };
        if now.master != before.master && now.master != 0 {
            // nginx was restarted under us after `before` was listed, i.e.
            // after the edit was written: its new master loaded the config as
            // it is now, which is what the reload was for.
            if !now.active.is_empty() {
                tracing::warn!(
                    "nginx in container {} was restarted while it was being reloaded; its new \
                     master (pid {}) serves the config as written",
                    nginx.name,
                    now.master
                );
                return Ok(ReloadOutcome {
                    shutting_down: before.shutting_down,
                    old_workers: before.active,
                    new_workers: now.active,
                });
            }
        } else if now.master == before.master
            && let Some(e) = signal_error.take()
        {
            return Err(e);
        }
        let old_still_active = now.active.iter().any(|p| before.active.contains(p));
        let new: Vec<u32> = now
            .active
            .iter()
            .copied()
            .filter(|p| !known.contains(p))
            .collect();
        if !new.is_empty() && !old_still_active {
            tracing::debug!(took = ?started.elapsed(), "nginx {} reloaded: new workers {new:?}", nginx.name);
            return Ok(ReloadOutcome {
                shutting_down: before.shutting_down,
                old_workers: before.active,
                new_workers: new,
            });
        }
        if Instant::now() >= deadline {
            if let Some(e) = unread.or(signal_error) {
                return Err(e.context(format!(
                    "nginx in container {} is not running: it stopped or restarted while being \
                     reloaded, and no new master came up within {}",
                    nginx.name,
                    humantime::format_duration(timeout)
                )));
            }
            let logs = log_tail(docker, nginx, since).await;
            bail!(
                "nginx in container {} did not start new workers within {} after `nginx -s reload` \
                 (the master probably rejected the configuration); its log:\n{logs}",
                nginx.name,
                humantime::format_duration(timeout)
            );
        }
        sleep(poll_interval(started.elapsed())).await;
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
    let started = Instant::now();
    let deadline = duration::deadline(started, timeout);
    loop {
        // A list that cannot be read (nginx restarting) proves nothing yet.
        let now = match worker_pids(docker, nginx).await {
            Ok(now) => now,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {
                sleep(poll_interval(started.elapsed())).await;
                continue;
            }
        };
        let left: Vec<u32> = old
            .iter()
            .copied()
            .filter(|p| now.active.contains(p) || now.shutting_down.contains(p))
            .collect();
        if left.is_empty() {
            tracing::debug!(took = ?started.elapsed(), "old workers {old:?} of nginx {} exited", nginx.name);
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
        sleep(poll_interval(started.elapsed())).await;
    }
}

/// Tells the master to reload, as `nginx -s reload` does (SIGHUP). When the
/// master is the container's main process the signal goes through the API,
/// which saves a `docker exec` round trip; otherwise `nginx -s reload` runs in it.
async fn signal_reload(docker: &Docker, nginx: &NginxContainer, master: u32) -> Result<()> {
    if nginx.main_pid == Some(master) {
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

async fn nginx_exec(docker: &Docker, nginx: &NginxContainer, args: &[&str]) -> Result<ExecOutput> {
    let argv: Vec<&str> = nginx.command.words().chain(args.iter().copied()).collect();
    exec_in(docker, &nginx.name, &argv).await
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

    fn rejected(message: &str) -> NginxTestError {
        NginxTestError::Rejected {
            container: "nginx".into(),
            message: message.into(),
            hint: None,
        }
    }

    #[test]
    fn finds_the_host_nginx_could_not_resolve() {
        let message = "nginx: [emerg] host not found in upstream \"app1:3000\" in /etc/nginx/nginx.conf:16\nnginx: configuration file /etc/nginx/nginx.conf test failed";
        assert_eq!(rejected(message).unresolved_host().as_deref(), Some("app1"));
        assert_eq!(
            rejected("host not found in upstream \"backend\" in x:1")
                .unresolved_host()
                .as_deref(),
            Some("backend")
        );
        assert_eq!(rejected("unknown directive \"x\"").unresolved_host(), None);
    }
}
