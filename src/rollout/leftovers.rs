//! Before a rollout runs: each name it makes a container under must be free,
//! or hold one the journal proves the rollout's own (`exec::Leftover`); else
//! it is refused before any step runs, naming the container. And the id of
//! each record's container as the rollout starts, which proves that one, the
//! container it retires, its own wherever a stop leaves it.
use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};
use futures_util::future::join_all;

use super::desired::Desired;
use super::world::DockerWorld;
use crate::backends::{NotOurs, in_the_way, temporary_names};
use crate::docker;
use crate::exec::{Observer, Rollout, ServerRecord, ServerState, World};
use crate::plan::{Action, ServerRef, Step};

/// Refuses `steps` (a plan's steps still to run, in order) when a name they
/// make a container under holds one that is not its server's own by
/// `records` ([`ServerRecord::ours`]), or when two servers would start
/// replacements of one name. The names: a start-first replacement's (but
/// one an earlier step stops and removes the container of, as a plan an
/// earlier version journaled gave a replica's number one batch freed to the
/// next), a stop-first recreate's
/// temporary ones (through the API only: compose's CLI uses none).
pub(super) async fn refuse_names_in_use<'a>(
    world: &DockerWorld,
    steps: impl IntoIterator<Item = &'a Step>,
    records: &[ServerRecord<Desired>],
) -> Result<()> {
    let record = |s: &ServerRef| records.iter().find(|r| r.server == s.server);
    let mut freed = HashSet::new();
    let mut started: HashMap<&str, &str> = HashMap::new();
    let mut names: Vec<(&ServerRef, String)> = Vec::new();
    for step in steps {
        match &step.action {
            Action::StopOld { servers } => freed.extend(servers.iter().map(|s| &s.container)),
            Action::StartNew { servers } => {
                for s in servers {
                    if let Some(other) = started.insert(&s.container, &s.server) {
                        bail!(
                            "servers {other} and {} would both start their replacement as \
                             container {}: rename one of their containers",
                            s.server,
                            s.container
                        );
                    }
                    if !freed.contains(&s.container) {
                        names.push((s, s.container.clone()));
                    }
                }
            }
            Action::Recreate { servers } => {
                for s in servers {
                    let api = record(s)
                        .is_some_and(|r| matches!(r.new_spec, Some(Desired::Engine { .. })));
                    if api {
                        names.extend(temporary_names(&s.container).map(|name| (s, name)));
                    }
                }
            }
            _ => {}
        }
    }
    // Asked at once: each is a round trip before the plan, under load.
    let checks = names.into_iter().map(|(s, name)| async move {
        let ours = record(s).map(ServerRecord::ours).unwrap_or_default();
        let claims = |id: &str, at| ours.claims(id, at);
        in_the_way(&world.docker, &name, &claims)
            .await
            .with_context(|| format!("server {}", s.server))
    });
    for checked in join_all(checks).await {
        checked?;
    }
    Ok(())
}

/// Records the id of each record's container as the rollout starts, where
/// discovery did not (a slot that adds a replica has none).
pub(super) async fn identify(
    world: &DockerWorld,
    records: &mut [ServerRecord<Desired>],
) -> Result<()> {
    let mut records: Vec<&mut ServerRecord<Desired>> = records
        .iter_mut()
        .filter(|r| !r.container.is_empty() && r.container_id.is_none())
        .collect();
    let ids = join_all(
        records
            .iter()
            .map(|rec| docker::inspect(&world.docker, &rec.container)),
    )
    .await;
    for (rec, info) in records.iter_mut().zip(ids) {
        rec.container_id = info?.and_then(|info| info.id);
    }
    Ok(())
}

/// A start-first replacement of a single server that a killed run of an
/// unfinished rollout made and never swapped into nginx
/// ([`Rollout::never_swapped_in`]): nothing sends it requests, and the
/// server's old container serves on its line untouched (its pre-stop hooks
/// and its stop come after the swap). A run that stops short removes such
/// replacements itself; a `kill -9` leaves them to `rollback`.
pub(super) struct Unswapped {
    /// The server.
    server: String,
    /// The replacement's name.
    name: String,
    /// Its id, when it is still there.
    id: Option<String>,
    /// Whether its server is as the rollout found it once it is gone
    /// ([`ServerRecord::untouched_without_replacement`]).
    untouched: bool,
}

impl Unswapped {
    /// What a rollback's plan says of it.
    pub(super) fn notice(&self) -> String {
        let (server, name) = (&self.server, &self.name);
        let mut told = match &self.id {
            Some(id) => format!(
                "{server}: its replacement {name} ({}), never put into nginx by the run that \
                 made it, is removed",
                docker::shown(id)
            ),
            None => format!("{server}: its replacement {name}, never put into nginx, is gone"),
        };
        if self.untouched {
            told.push_str("; the server is as the rollout found it");
        }
        told
    }
}

/// `of`'s [`Unswapped`] replacements: a container of the replacement's name
/// is one only when the journal proves it the one `of` made; an operator's
/// of that name is left alone, and its server undone as before.
pub(super) async fn unswapped(
    world: &DockerWorld,
    of: &Rollout<Desired>,
) -> Result<Vec<Unswapped>> {
    if !of.servers.iter().any(|r| r.swapped_line().is_some()) {
        return Ok(Vec::new());
    }
    let config = world.load_config().await?;
    let up = config.upstream(&of.upstream)?;
    let mut found = Vec::new();
    for (rec, name, made) in of.never_swapped_in(&up) {
        let claims = |id: &str, at| made.claims(id, at);
        let id = match in_the_way(&world.docker, &name, &claims).await {
            Ok(info) => info.and_then(|i| i.id),
            Err(e) if e.downcast_ref::<NotOurs>().is_some() => continue,
            Err(e) => return Err(e.context(format!("server {}", rec.server))),
        };
        found.push(Unswapped {
            server: rec.server.clone(),
            name,
            id,
            untouched: rec.untouched_without_replacement(),
        });
    }
    Ok(found)
}

/// Records in `of` that each of `unswapped` is gone
/// ([`ServerRecord::replacement_discarded`]).
pub(super) fn record_discarded(of: &mut Rollout<Desired>, unswapped: &[Unswapped]) {
    for u in unswapped {
        if let Some(rec) = of.server_mut(&u.server) {
            rec.replacement_discarded();
        }
    }
}

/// Removes the replacements of `unswapped` that are still there, telling
/// `observer` of each.
pub(super) async fn discard(
    world: &DockerWorld,
    observer: &mut dyn Observer,
    unswapped: &[Unswapped],
) -> Result<()> {
    for u in unswapped {
        if let Some(id) = &u.id {
            world.stop_old(id).await.with_context(|| {
                format!("server {}: removing its replacement {}", u.server, u.name)
            })?;
            observer.notice(&format!(
                "{}: its replacement {} ({}) is removed",
                u.server,
                u.name,
                docker::shown(id)
            ));
        }
    }
    Ok(())
}

/// `e`, when it is a container in the way ([`NotOurs`]) that a finished
/// rollout of `history` made and could not remove (a run killed before it
/// did), with which one: it is left for the operator, who knows whether
/// anything uses it now.
pub(super) fn left_by<S>(e: anyhow::Error, history: &[Rollout<S>]) -> anyhow::Error {
    let Some(found) = e.chain().find_map(|c| c.downcast_ref::<NotOurs>()) else {
        return e;
    };
    let made = history.iter().rev().find_map(|r| {
        let rec = r.servers.iter().find(|s| {
            // Not one that serves now: a done server's new container.
            s.state != ServerState::Done
                && (s.new_container.as_deref())
                    .is_some_and(|id| !found.id.is_empty() && id.starts_with(&found.id))
        })?;
        Some((r.revision, rec.server.clone()))
    });
    let Some((revision, server)) = made else {
        return e;
    };
    let name = found.name.clone();
    e.context(format!(
        "revision {revision} made {name} as server {server}'s new container and left it \
         behind; if nothing uses it now, remove it (`docker rm -f {name}`)"
    ))
}

#[cfg(test)]
mod tests {
    use serde::de::IgnoredAny;

    use super::*;

    #[test]
    fn a_container_a_finished_rollout_left_is_named_with_that_rollout() {
        let mut made: Rollout<IgnoredAny> =
            serde_json::from_slice(include_bytes!("../../fixtures/journal/rev0001.json")).unwrap();
        made.servers[0].new_container = Some("c0ffee0123456789".into());
        made.servers[0].state = ServerState::Failed;
        let server = made.servers[0].server.clone();
        let in_the_way = || {
            anyhow::Error::new(NotOurs {
                name: "app1-b".into(),
                id: "c0ffee012345".into(),
            })
            .context("server app1:3000")
        };
        let told = format!("{:#}", left_by(in_the_way(), std::slice::from_ref(&made)));
        assert!(
            told.starts_with(&format!(
                "revision {} made app1-b as server {server}'s new container",
                made.revision
            )) && told.contains("docker rm -f app1-b")
                && told.contains("has the name a new container"),
            "{told}"
        );
        // A done server's new container serves now: not one left behind.
        made.servers[0].state = ServerState::Done;
        let told = format!("{:#}", left_by(in_the_way(), std::slice::from_ref(&made)));
        assert!(
            told.starts_with("server app1:3000: container app1-b"),
            "{told}"
        );
        made.servers[0].state = ServerState::Failed;
        made.servers[0].new_container = Some("decade".into());
        let told = format!("{:#}", left_by(in_the_way(), &[made]));
        assert!(
            told.starts_with("server app1:3000: container app1-b"),
            "{told}"
        );
    }
}
