//! `status` and `history`: what the upstreams, their containers and the
//! journal say now. Read-only.
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::desired::Desired;
use super::session::Session;
use crate::backends::{ContainerHealth, OnNetworks, Resolved};
use crate::conf::{ServerMode, may_name_the_same_upstream};
use crate::docker;
use crate::exec::{Rollout, RolloutKind, Status, World, time};

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
    /// Its address on nginx's network (`-` when it has none).
    pub address: String,
    /// Its image (`-` when none is found).
    pub image: String,
    /// For a replica: the environment values in which it differs from the
    /// other replicas (which version it runs during a rollout), else `-`.
    pub runs: String,
    /// Its health (`-` when none is found).
    pub health: ContainerHealth,
    /// When it started (`-` when none is found).
    pub started: String,
    /// Where the server line is (`file:line`).
    pub file: String,
    /// Its part in the unfinished rollout (`rev 3 Paused: drained`, ending
    /// `(for app1:3000)` on a line that stands for that server under another
    /// address), or the operator's line a pinned line stands for, if any.
    pub rollout: Option<String>,
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
    let mut on_networks = OnNetworks::list(&world.docker, &world.nginx.networks).await?;
    let mut servers = Vec::new();
    for up in config
        .upstreams()
        .into_iter()
        .filter(|u| upstream.is_none_or(|n| u.is_named(n)))
    {
        // Every line's containers, inspected, first: the replicas of a set
        // pinned to one line each are compared with each other.
        let mut found = Vec::new();
        for s in &up.servers {
            let containers = match on_networks.resolve(&world.docker, &s.host).await {
                Ok(Resolved::One(b)) => vec![*b],
                Ok(Resolved::Replicas(all)) => all,
                Err(_) => Vec::new(),
            };
            let mut inspected = Vec::new();
            for b in &containers {
                let info = docker::inspect(&world.docker, &b.id).await.ok().flatten();
                let env = info
                    .as_ref()
                    .and_then(|i| i.config.as_ref()?.env.clone())
                    .unwrap_or_default();
                inspected.push((info.and_then(|i| i.state).unwrap_or_default(), env));
            }
            found.push((containers, inspected));
        }
        for (s, (containers, inspected)) in up.servers.iter().zip(found.iter()) {
            let rollout = unfinished
                .as_ref()
                .and_then(|r| {
                    let (rec, elsewhere) = r.record_on_line(&up, s)?;
                    let of = if elsewhere {
                        format!(" (for {})", rec.server)
                    } else {
                        String::new()
                    };
                    Some(format!(
                        "rev {} {:?}: {}{of}",
                        r.revision, r.status, rec.state
                    ))
                })
                .or_else(|| {
                    s.pinned_from
                        .as_ref()
                        .map(|from| format!("pinned from {from}"))
                });
            let row = |container: String, address: String, image: String, health, runs, started| {
                ServerStatus {
                    upstream: up.name.clone(),
                    server: s.address.clone(),
                    state: s.mode(),
                    container,
                    address,
                    image,
                    runs,
                    health,
                    started,
                    file: s.location(),
                    rollout: rollout.clone(),
                }
            };
            if containers.is_empty() {
                servers.push(row(
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    ContainerHealth::Unknown,
                    "-".into(),
                    "-".into(),
                ));
                continue;
            }
            // The replicas this line's containers are compared with: the
            // line's own, or every line pinned from the same set.
            let envs: Vec<Vec<String>> = match &s.pinned_from {
                Some(from) => up
                    .servers
                    .iter()
                    .zip(found.iter())
                    .filter(|(o, _)| o.pinned_from.as_ref() == Some(from))
                    .flat_map(|(_, (_, i))| i.iter().map(|(_, env)| env.clone()))
                    .collect(),
                None => inspected.iter().map(|(_, env)| env.clone()).collect(),
            };
            for (b, (st, env)) in containers.iter().zip(inspected) {
                let health = ContainerHealth::of(st);
                let address = b
                    .addresses
                    .iter()
                    .find(|(net, _)| world.nginx.networks.contains(net))
                    .map_or_else(|| "-".to_string(), |(_, ip)| ip.clone());
                servers.push(row(
                    b.name.clone(),
                    address,
                    b.image.clone(),
                    health,
                    differing(env, &envs),
                    st.started_at.clone().unwrap_or_default(),
                ));
            }
        }
    }
    Ok(StatusReport {
        servers,
        unfinished,
    })
}

/// The entries of `env` whose value some other replica's `envs` do not
/// share, space-separated; `-` when none (or when there is no other replica).
fn differing(env: &[String], envs: &[Vec<String>]) -> String {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let diff: Vec<&str> = env
        .iter()
        .filter(|e| {
            envs.iter().any(|other| {
                !other.contains(e) || other.iter().filter(|o| key(o) == key(e)).count() != 1
            })
        })
        .map(String::as_str)
        .collect();
    if diff.is_empty() {
        "-".into()
    } else {
        diff.join(" ")
    }
}

/// Every revision kept (of `upstream`), oldest first.
pub async fn history(session: &Session, upstream: Option<&str>) -> Result<Vec<HistoryEntry>> {
    let Some(state) = session.existing_state().await? else {
        return Ok(Vec::new());
    };
    Ok(state
        .history::<serde::de::IgnoredAny>()?
        .into_iter()
        .filter(|r| upstream.is_none_or(|u| may_name_the_same_upstream(&r.upstream, u)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_shows_the_values_it_does_not_share() {
        let env = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = vec![
            env(&["PORT=8000", "MESSAGE=v1"]),
            env(&["PORT=8000", "MESSAGE=v2"]),
        ];
        assert_eq!(differing(&all[0], &all), "MESSAGE=v1");
        assert_eq!(differing(&all[1], &all), "MESSAGE=v2");
        let same = vec![env(&["PORT=8000"]), env(&["PORT=8000"])];
        assert_eq!(differing(&same[0], &same), "-");
        assert_eq!(differing(&same[0], &same[..1]), "-");
    }
}
