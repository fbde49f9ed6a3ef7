//! Health gate for a new backend container, and the monitor window after it.
//!
//! With a Docker healthcheck, Docker's own verdict is used; without one, a
//! probe runs from inside the nginx container to the address nginx uses, so
//! it tests exactly the path the traffic will take.
//!
//! In order: the verdict types ([`Probe`], [`HealthSource`], [`ContainerHealth`],
//! [`HealthError`]); [`wait_healthy`], which follows the container's events
//! (polling when they stop) from a baseline taken before it started; the
//! probe run in nginx's container; and [`failed_within`], the monitor
//! window's check.
use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, HealthStatusEnum,
};
use bollard::query_parameters::EventsOptions;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

use crate::conf::{Address, AddressKind};
use crate::docker::{self, exec_in};
use crate::duration;

/// How often the container is looked at while waiting.
const POLL: Duration = Duration::from_millis(100);
/// How often a container with a Docker healthcheck is looked at while its
/// events are watched too (they wake the wait as soon as its state changes).
const EVENT_FALLBACK_POLL: Duration = Duration::from_millis(500);

/// How to tell that a container without a Docker healthcheck is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Running is enough.
    Running,
    /// `GET http://ADDR/PATH` answers 2xx, from inside the nginx container (busybox wget).
    Http {
        /// The nginx container (name or id).
        nginx: String,
        /// The server address as written in the upstream, e.g. `app1:3000`.
        addr: String,
        /// Request path, e.g. `/health`.
        path: String,
    },
    /// A TCP connect to ADDR succeeds, from inside the nginx container (busybox nc).
    Tcp {
        /// The nginx container (name or id).
        nginx: String,
        /// The server address as written in the upstream, e.g. `app1:3000`.
        addr: String,
    },
}

/// What decided that a container was healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthSource {
    /// Docker's healthcheck (`State.Health`).
    Docker,
    /// A [`Probe::Http`] or [`Probe::Tcp`] from the nginx container.
    Probe,
    /// Only that it runs ([`Probe::Running`]).
    Running,
}

/// When a container started and became healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthyAt {
    /// `State.StartedAt`, from Docker.
    pub started_at: DateTime<Utc>,
    /// End of the passing Docker health check; for a probe, when it passed
    /// (local clock); for [`Probe::Running`], `started_at`.
    pub healthy_at: DateTime<Utc>,
    /// What decided it.
    pub source: HealthSource,
}

/// A container's health as `status` reports it: Docker's healthcheck verdict,
/// else whether it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerHealth {
    /// Passing its healthcheck.
    Healthy,
    /// Failing it.
    Unhealthy,
    /// Not judged yet.
    Starting,
    /// Running, without a healthcheck.
    Running,
    /// Not running.
    Stopped,
    /// No container was found for the server.
    #[serde(rename = "-")]
    Unknown,
}

impl std::fmt::Display for ContainerHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContainerHealth::Healthy => "healthy",
            ContainerHealth::Unhealthy => "unhealthy",
            ContainerHealth::Starting => "starting",
            ContainerHealth::Running => "running",
            ContainerHealth::Stopped => "stopped",
            ContainerHealth::Unknown => "-",
        })
    }
}

impl ContainerHealth {
    /// What an inspected container's state says: stopped when it does not
    /// run (Docker keeps the last healthcheck verdict of a stopped
    /// container), else the healthcheck's verdict when it has one.
    pub fn of(state: &ContainerState) -> Self {
        if state.running != Some(true) {
            return ContainerHealth::Stopped;
        }
        match state.health.as_ref().and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => ContainerHealth::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => ContainerHealth::Unhealthy,
            Some(HealthStatusEnum::STARTING) => ContainerHealth::Starting,
            _ => ContainerHealth::Running,
        }
    }
}

/// Why a container is not (or no longer) healthy. Carried inside the
/// `anyhow::Error` of [`wait_healthy`], and what [`failed_within`] returns;
/// downcast to tell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// Docker reported it unhealthy.
    #[error("container {container} turned unhealthy: {output}")]
    Unhealthy {
        /// Container name.
        container: String,
        /// Last health check output.
        output: String,
    },
    /// Its process ended.
    #[error("container {container} exited with code {code}{}", last_words(.output))]
    Exited {
        /// Container name.
        container: String,
        /// Exit code.
        code: i64,
        /// Last health check output, if any.
        output: String,
    },
    /// It restarted (restart count or start time changed, or it is restarting).
    #[error("container {container} restarted{}", last_words(.output))]
    Restarted {
        /// Container name.
        container: String,
        /// Last health check output, if any.
        output: String,
    },
    /// It is gone (removed by someone else).
    #[error("container {container} disappeared")]
    Gone {
        /// Container name or id.
        container: String,
    },
    /// It did not become healthy in time.
    #[error("container {container} not healthy after {after:?}{}", last_words(.output))]
    TimedOut {
        /// Container name.
        container: String,
        /// The timeout.
        after: Duration,
        /// Last health check or probe output.
        output: String,
    },
}

fn last_words(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!("; last health output: {output}")
    }
}

/// What must not change while a container is watched.
struct Baseline {
    name: String,
    restart_count: i64,
    started_at: String,
}

impl Baseline {
    fn of(inspect: &ContainerInspectResponse, id: &str) -> Self {
        Baseline {
            name: docker::name_of(inspect, id).to_string(),
            restart_count: inspect.restart_count.unwrap_or(0),
            started_at: started_at(inspect).to_string(),
        }
    }

    /// Fails when the container exited or restarted since the baseline.
    fn check(&self, inspect: &ContainerInspectResponse, output: &str) -> Result<(), HealthError> {
        let state = inspect.state.clone().unwrap_or_default();
        let restarted = || HealthError::Restarted {
            container: self.name.clone(),
            output: output.to_string(),
        };
        match state.status {
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
                return Err(HealthError::Exited {
                    container: self.name.clone(),
                    code: state.exit_code.unwrap_or(-1),
                    output: output.to_string(),
                });
            }
            Some(ContainerStateStatusEnum::RESTARTING) => return Err(restarted()),
            _ => {}
        }
        let was_started = !self.started_at.starts_with("0001-");
        if inspect.restart_count.unwrap_or(0) != self.restart_count
            || (was_started && started_at(inspect) != self.started_at)
        {
            return Err(restarted());
        }
        Ok(())
    }
}

fn started_at(inspect: &ContainerInspectResponse) -> &str {
    inspect
        .state
        .as_ref()
        .and_then(|s| s.started_at.as_deref())
        .unwrap_or("")
}

async fn inspect(docker: &Docker, id: &str) -> Result<ContainerInspectResponse> {
    docker
        .inspect_container(id, None)
        .await
        .with_context(|| format!("container {}: inspect", docker::shown(id)))
}

/// Output of the last Docker health check, trimmed.
fn last_health_output(inspect: &ContainerInspectResponse) -> String {
    inspect
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.log.as_ref())
        .and_then(|log| log.last())
        .map(|r| {
            format!(
                "exit {}: {}",
                r.exit_code.unwrap_or(-1),
                r.output.as_deref().unwrap_or("").trim()
            )
        })
        .unwrap_or_default()
}

/// Whether Docker judges the container's health: a health state exists, or
/// the effective config (the image's merged in) has a test other than `NONE`.
fn has_healthcheck(inspect: &ContainerInspectResponse) -> bool {
    let state = inspect.state.as_ref().is_some_and(|s| s.health.is_some());
    let configured = inspect
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|first| first != "NONE");
    state || configured
}

fn health_status(inspect: &ContainerInspectResponse) -> Option<HealthStatusEnum> {
    inspect
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
}

/// Waits until container `id` is healthy: by its Docker healthcheck when it
/// has one (woken by its events, looked at every 500 ms regardless), else by
/// `probe` (every 100 ms). Fails at once when it turns
/// unhealthy, exits or restarts; fails after `timeout` naming the container
/// and the last health output. Errors carry a [`HealthError`].
pub async fn wait_healthy(
    docker: &Docker,
    id: &str,
    probe: &Probe,
    timeout: Duration,
) -> Result<HealthyAt> {
    let deadline = duration::deadline(Instant::now(), timeout);
    let mut changes = state_changes(docker, id);
    let first = inspect(docker, id).await?;
    let base = Baseline::of(&first, id);
    let has_healthcheck = has_healthcheck(&first);
    let mut output = String::new();
    loop {
        let now = inspect(docker, id).await?;
        if has_healthcheck {
            output = last_health_output(&now);
        }
        base.check(&now, &output)?;
        let running = now.state.as_ref().and_then(|s| s.running) == Some(true);
        let started = || docker::parse_time(started_at(&now), &format!("container {}", base.name));
        if has_healthcheck {
            match health_status(&now) {
                Some(HealthStatusEnum::HEALTHY) => {
                    let started_at = started()?;
                    return Ok(HealthyAt {
                        started_at,
                        healthy_at: last_pass(&now).unwrap_or(started_at),
                        source: HealthSource::Docker,
                    });
                }
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Err(HealthError::Unhealthy {
                        container: base.name,
                        output,
                    }
                    .into());
                }
                _ => {}
            }
        } else if running {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match run_probe(docker, probe, remaining.max(POLL)).await {
                Ok(true) => {
                    let started_at = started()?;
                    let (healthy_at, source) = match probe {
                        Probe::Running => (started_at, HealthSource::Running),
                        _ => (Utc::now(), HealthSource::Probe),
                    };
                    return Ok(HealthyAt {
                        started_at,
                        healthy_at,
                        source,
                    });
                }
                Ok(false) => {}
                Err(e) => output = format!("{e:#}"),
            }
        }
        if Instant::now() >= deadline {
            return Err(HealthError::TimedOut {
                container: base.name,
                after: timeout,
                output,
            }
            .into());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if has_healthcheck {
            // Docker's verdict arrives as a `health_status` event: look again at once.
            tokio::select! {
                _ = tokio::time::sleep(EVENT_FALLBACK_POLL.min(left)) => {}
                _ = changes.next() => {}
            }
        } else {
            tokio::time::sleep(POLL.min(left)).await;
        }
    }
}

/// Container `id`'s state-changing events (health status, die, start, …; not
/// the exec events every health check makes). If the stream fails it ends,
/// and from then on never yields: the caller's polling carries on alone.
fn state_changes(docker: &Docker, id: &str) -> impl Stream<Item = ()> + Unpin + use<> {
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("container".to_string(), vec![id.to_string()]),
    ]);
    let options = EventsOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let events = docker
        .events(Some(options))
        .take_while(|e| futures_util::future::ready(e.is_ok()))
        .filter_map(|e| {
            let action = e.ok().and_then(|e| e.action).unwrap_or_default();
            futures_util::future::ready((!action.starts_with("exec_")).then_some(()))
        })
        .chain(futures_util::stream::pending());
    Box::pin(events)
}

/// End time of the last passing Docker health check.
fn last_pass(inspect: &ContainerInspectResponse) -> Option<DateTime<Utc>> {
    inspect
        .state
        .as_ref()?
        .health
        .as_ref()?
        .log
        .as_ref()?
        .iter()
        .rev()
        .find(|r| r.exit_code == Some(0))
        .and_then(|r| r.end.as_deref())
        .and_then(|t| docker::parse_time(t, "health log").ok())
}

/// `wget` of `$1` bounded to 2 s. Debian's static busybox wget crashes
/// (SIGSEGV) with `-T`, so the bound comes from `timeout` (busybox's applet
/// when there is a busybox, as in images that only link `wget` to it).
const HTTP_PROBE: &str = r#"T=; command -v timeout >/dev/null 2>&1 && T="timeout 2"; command -v busybox >/dev/null 2>&1 && T="busybox timeout 2"; exec $T wget -q -O /dev/null "$1""#;

/// Runs one probe; `Ok(false)` when it did not pass. The error carries its output.
async fn run_probe(docker: &Docker, probe: &Probe, limit: Duration) -> Result<bool> {
    let (nginx, argv, shown) = match probe {
        Probe::Running => return Ok(true),
        Probe::Http { nginx, addr, path } => {
            let path = if path.starts_with('/') {
                path.clone()
            } else {
                format!("/{path}")
            };
            let url = format!("http://{addr}{path}");
            let argv = ["sh", "-c", HTTP_PROBE, "probe", url.as_str()]
                .map(String::from)
                .to_vec();
            (nginx, argv, format!("wget {url}"))
        }
        Probe::Tcp { nginx, addr } => {
            let (host, port) = tcp_target(addr)?;
            // Debian's busybox nc has no -z; `-e true` closes right after connecting.
            let argv = ["nc", "-w", "1", &host, &port.to_string(), "-e", "true"]
                .map(String::from)
                .to_vec();
            (nginx, argv, format!("nc {host} {port}"))
        }
    };
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = tokio::time::timeout(limit, exec_in(docker, nginx, &argv))
        .await
        .map_err(|_| anyhow!("probe `{shown}` from container {nginx}: no answer"))??;
    if out.success() {
        return Ok(true);
    }
    let said: String = format!("{}{}", out.stdout.trim(), out.stderr.trim())
        .chars()
        .take(500)
        .collect();
    Err(anyhow!(
        "probe `{shown}` from container {nginx}: exit {}: {said}",
        out.exit_code
    ))
}

/// Where a TCP probe of a server address connects: its host and port (80
/// when none is written). A unix socket cannot be probed over TCP.
fn tcp_target(written: &str) -> Result<(String, u16)> {
    let address = Address::parse(written);
    if address.kind == AddressKind::Unix {
        bail!("server address {written}: a unix socket cannot be probed over TCP");
    }
    if address.host.starts_with('[') {
        bail!("server address {written}: unclosed `[`");
    }
    Ok((address.host, address.port.unwrap_or(80)))
}

/// Whether container `id` failed between `since` (when it became healthy) and
/// `since + window`: it exited, restarted or turned unhealthy in that time,
/// or it is gone while the window lasts. Looked at once; a rollout calls it
/// at every step boundary, and while a step waits, until the window has
/// passed. `Some` says which failure.
pub async fn failed_within(
    docker: &Docker,
    id: &str,
    since: DateTime<Utc>,
    window: Duration,
) -> Result<Option<HealthError>> {
    let until = duration::after(since, window);
    let Some(info) = docker::inspect(docker, id).await? else {
        // Gone after its window, it may have served it out: not counted.
        return Ok((Utc::now() <= until).then(|| HealthError::Gone {
            container: docker::shown(id).to_string(),
        }));
    };
    let container = docker::name_of(&info, id).to_string();
    let within = |t: DateTime<Utc>| t >= since && t <= until;
    let time = |s: Option<&String>| s.and_then(|s| docker::parse_time(s, "state").ok());
    let output = last_health_output(&info);
    let restarts = info.restart_count.unwrap_or(0);
    let state = info.state.unwrap_or_default();
    if state.running != Some(true) {
        let finished = time(state.finished_at.as_ref());
        return Ok(finished.is_none_or(within).then(|| HealthError::Exited {
            container,
            code: state.exit_code.unwrap_or(-1),
            output,
        }));
    }
    // Restarted inside the window: started, or exited, in it. While Docker
    // restarts a container it reports it running, with the count up and the
    // new exit but still the old start.
    let restarted = [&state.started_at, &state.finished_at]
        .into_iter()
        .any(|t| time(t.as_ref()).is_some_and(within));
    if restarts > 0 && restarted {
        return Ok(Some(HealthError::Restarted { container, output }));
    }
    if let Some(health) = state.health
        && health.status == Some(HealthStatusEnum::UNHEALTHY)
    {
        let failed_in_window = health.log.unwrap_or_default().iter().any(|entry| {
            entry.exit_code != Some(0) && time(entry.start.as_ref()).is_some_and(|t| t <= until)
        });
        if failed_in_window {
            return Ok(Some(HealthError::Unhealthy { container, output }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthcheck_from_state_or_config_but_not_none() {
        use bollard::models::{ContainerConfig, Health, HealthConfig};
        let with_test = |test: &[&str]| ContainerInspectResponse {
            config: Some(ContainerConfig {
                healthcheck: Some(HealthConfig {
                    test: Some(test.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(has_healthcheck(&with_test(&["CMD", "true"])));
        assert!(!has_healthcheck(&with_test(&["NONE"])));
        assert!(!has_healthcheck(&with_test(&[])));
        let started = ContainerInspectResponse {
            state: Some(ContainerState {
                health: Some(Health::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(has_healthcheck(&started));
    }

    #[test]
    fn status_health_is_whether_it_runs_then_the_healthcheck_verdict() {
        use bollard::models::Health;
        let of = |status: Option<HealthStatusEnum>, running: bool| {
            ContainerHealth::of(&ContainerState {
                health: status.map(|s| Health {
                    status: Some(s),
                    ..Default::default()
                }),
                running: Some(running),
                ..Default::default()
            })
        };
        let healthy = Some(HealthStatusEnum::HEALTHY);
        assert_eq!(of(healthy, true), ContainerHealth::Healthy);
        let unhealthy = Some(HealthStatusEnum::UNHEALTHY);
        assert_eq!(of(unhealthy, true), ContainerHealth::Unhealthy);
        let starting = Some(HealthStatusEnum::STARTING);
        assert_eq!(of(starting, true), ContainerHealth::Starting);
        assert_eq!(of(None, true), ContainerHealth::Running);
        assert_eq!(
            of(Some(HealthStatusEnum::NONE), true),
            ContainerHealth::Running
        );
        assert_eq!(of(None, false), ContainerHealth::Stopped);
        assert_eq!(of(unhealthy, false), ContainerHealth::Stopped, "exited");
        assert_eq!(of(healthy, false), ContainerHealth::Stopped, "exited");
        assert_eq!(
            ContainerHealth::of(&ContainerState::default()),
            ContainerHealth::Stopped
        );
    }

    #[test]
    fn splits_addresses() {
        let target = tcp_target;
        assert_eq!(target("app1:3000").unwrap(), ("app1".into(), 3000));
        assert_eq!(target("app1").unwrap(), ("app1".into(), 80));
        assert_eq!(target("[::1]:81").unwrap(), ("::1".into(), 81));
        assert!(target("unix:/tmp/s").is_err());
        assert!(target("[::1").is_err());
    }

    fn state(
        status: ContainerStateStatusEnum,
        restarts: i64,
        started: &str,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            name: Some("/app1".into()),
            restart_count: Some(restarts),
            state: Some(ContainerState {
                status: Some(status),
                started_at: Some(started.into()),
                exit_code: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn baseline_catches_exit_and_restart() {
        let t0 = "2026-01-01T00:00:00.1Z";
        let base = Baseline::of(&state(ContainerStateStatusEnum::RUNNING, 0, t0), "x");
        assert!(
            base.check(&state(ContainerStateStatusEnum::RUNNING, 0, t0), "")
                .is_ok()
        );
        assert!(matches!(
            base.check(&state(ContainerStateStatusEnum::EXITED, 0, t0), ""),
            Err(HealthError::Exited { code: 3, .. })
        ));
        assert!(matches!(
            base.check(&state(ContainerStateStatusEnum::RUNNING, 1, t0), ""),
            Err(HealthError::Restarted { .. })
        ));
        assert!(matches!(
            base.check(
                &state(ContainerStateStatusEnum::RUNNING, 0, "2026-01-01T00:00:09Z"),
                ""
            ),
            Err(HealthError::Restarted { .. })
        ));
    }

    #[test]
    fn a_container_not_yet_started_may_start() {
        let base = Baseline::of(
            &state(ContainerStateStatusEnum::CREATED, 0, "0001-01-01T00:00:00Z"),
            "x",
        );
        let now = state(ContainerStateStatusEnum::RUNNING, 0, "2026-01-01T00:00:00Z");
        assert!(base.check(&now, "").is_ok());
    }
}
