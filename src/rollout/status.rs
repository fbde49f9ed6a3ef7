//! `status` and `history`: what the upstreams, their containers and the
//! journal say now. Read-only.
use anyhow::Result;
use bollard::models::HealthStatusEnum;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::session::Session;
use super::world::Desired;
use crate::backends::resolve_backend;
use crate::conf::ServerMode;
use crate::docker;
use crate::exec::{Rollout, RolloutKind, ServerState, Status, World, time};

/// One server of an upstream, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    /// The upstream.
    pub upstream: String,
    /// The server's address as written.
    pub server: String,
    /// `up`, `down` or `backup`.
    pub state: ServerMode,
    /// The container behind it (`-` when none is found).
    pub container: String,
    /// Its image (`-` when none is found).
    pub image: String,
    /// Its health (`-` when none is found).
    pub health: ContainerHealth,
    /// When it started (`-` when none is found).
    pub started: String,
    /// Where the server line is (`file:line`).
    pub file: String,
    /// Its part in the unfinished rollout (`rev 3 Paused: drained`), if any.
    pub rollout: Option<String>,
}

/// A container's health as `status` reports it: Docker's healthcheck verdict,
/// else whether it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Everything `status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// Every server of the upstreams asked for.
    pub servers: Vec<ServerStatus>,
    /// The newest unfinished rollout, if any.
    pub unfinished: Option<Rollout<Desired>>,
}

/// One revision, as `history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Revision number.
    pub revision: u32,
    /// What it was.
    pub kind: RolloutKind,
    /// How it ended.
    pub status: Status,
    /// When it started.
    #[serde(with = "time")]
    pub started_at: DateTime<Utc>,
    /// The upstream.
    pub upstream: String,
    /// The command that made it.
    pub command: String,
    /// For a rollback: the revision it undid.
    pub undoes: Option<u32>,
}

/// The servers of every upstream (or of `upstream`), their containers, and
/// the unfinished rollout.
pub async fn status(session: &Session, upstream: Option<&str>) -> Result<StatusReport> {
    let world = &session.world;
    let config = world.load_config().await?;
    let unfinished = match session.existing_state().await? {
        Some(state) => state.unfinished::<Desired>(upstream)?,
        None => None,
    };
    let mut servers = Vec::new();
    for up in config
        .upstreams()
        .into_iter()
        .filter(|u| upstream.is_none_or(|n| u.name == n))
    {
        for s in &up.servers {
            let found = resolve_backend(&world.docker, &world.nginx.networks, &s.host)
                .await
                .ok();
            let info = match &found {
                Some(b) => docker::inspect(&world.docker, &b.id).await.ok().flatten(),
                None => None,
            };
            let st = info.and_then(|i| i.state).unwrap_or_default();
            let health = match (&found, st.health.and_then(|h| h.status)) {
                (None, _) => ContainerHealth::Unknown,
                (_, Some(HealthStatusEnum::HEALTHY)) => ContainerHealth::Healthy,
                (_, Some(HealthStatusEnum::UNHEALTHY)) => ContainerHealth::Unhealthy,
                (_, Some(HealthStatusEnum::STARTING)) => ContainerHealth::Starting,
                _ if st.running == Some(true) => ContainerHealth::Running,
                _ => ContainerHealth::Stopped,
            };
            let rollout = unfinished.as_ref().and_then(|r| {
                r.servers
                    .iter()
                    .find(|rec| {
                        rec.server == s.address
                            && !matches!(rec.state, ServerState::Pending | ServerState::Done)
                    })
                    .map(|rec| format!("rev {} {:?}: {}", r.revision, r.status, rec.state))
            });
            let (container, image, started) = match found {
                Some(b) => (b.name, b.image, st.started_at.unwrap_or_default()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            servers.push(ServerStatus {
                upstream: up.name.clone(),
                server: s.address.clone(),
                state: s.mode(),
                container,
                image,
                health,
                started,
                file: format!("{}:{}", s.file.display(), s.line),
                rollout,
            });
        }
    }
    Ok(StatusReport {
        servers,
        unfinished,
    })
}

/// Every revision kept (of `upstream`), oldest first.
pub async fn history(session: &Session, upstream: Option<&str>) -> Result<Vec<HistoryEntry>> {
    let Some(state) = session.existing_state().await? else {
        return Ok(Vec::new());
    };
    Ok(state
        .history::<serde::de::IgnoredAny>()?
        .into_iter()
        .filter(|r| upstream.is_none_or(|u| r.upstream == u))
        .map(|r| HistoryEntry {
            revision: r.revision,
            kind: r.kind,
            status: r.status,
            started_at: r.started_at,
            upstream: r.upstream,
            command: r.command,
            undoes: r.undoes,
        })
        .collect())
}
