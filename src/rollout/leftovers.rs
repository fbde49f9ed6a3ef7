//! Before a rollout runs: each name it makes a container under must be free,
//! or hold one the journal proves the rollout's own (`exec::Leftover`); else
//! it is refused before any step runs, naming the container. And the id of
//! each record's container as the rollout starts, which proves that one, the
//! container it retires, its own wherever a stop leaves it.
use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};
use futures_util::future::join_all;

use super::world::{Desired, DockerWorld};
use crate::backends::{in_the_way, temporary_names};
use crate::docker;
use crate::exec::ServerRecord;
use crate::plan::{Action, ServerRef, Step};

/// Refuses `steps` (a plan's steps still to run, in order) when a name they
/// make a container under holds one that is not its server's own by
/// `records` ([`ServerRecord::ours`]), or when two servers would start
/// replacements of one name. The names: a start-first replacement's (but
/// one an earlier step stops and removes the container of: a replica's
/// number freed by one batch serves the next), a stop-first recreate's
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
