//! Resuming and undoing a replica set after a stop: which replicas are
//! done, kept or cut short, told apart by container id since names are reused.
use anyhow::{Result, anyhow};

use super::slots::{Naming, name_slots, slot_record};
use crate::backends::{NotOurs, backend_by_name, in_the_way};
use crate::conf::Upstream;
use crate::exec::{Rollout, ServerRecord, ServerState};
use crate::plan::{Hooks, Replica, ReplicaSet, Slot, UpdateConfig, Via};
use crate::rollout::desired::Desired;
use crate::rollout::world::DockerWorld;

/// Whether `container` exists and runs.
async fn runs(world: &DockerWorld, container: &str) -> Result<bool> {
    use crate::exec::World;
    world.is_running(container).await
}

/// The id of the container named `name` now, if one is.
async fn holder(world: &DockerWorld, name: &str) -> Result<Option<String>> {
    Ok(crate::docker::inspect(&world.docker, name)
        .await?
        .and_then(|info| info.id))
}

/// Whether the container named `name` now is the one with id `id`: names
/// are reused (compose's lowest free number, a stop-first replica recreated
/// under its own name), so a slot's containers are told apart by id.
async fn is_named(world: &DockerWorld, name: &str, id: Option<&str>) -> Result<bool> {
    Ok(id.is_some() && holder(world, name).await?.as_deref() == id)
}

/// Whether a container named `name` stands and is `rollout`'s own by its
/// record of `slot` ([`Rollout::leftover_of`]); one that is not is left alone.
async fn made_by(
    world: &DockerWorld,
    rollout: &Rollout<Desired>,
    slot: &str,
    name: &str,
) -> Result<bool> {
    let left = rollout.leftover_of(slot);
    let claims = |id: &str, at| left.claims(id, at);
    match in_the_way(&world.docker, name, &claims).await {
        Ok(found) => Ok(found.is_some()),
        Err(e) if e.is::<NotOurs>() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The new containers `rollout` created: (slot, container id).
fn new_containers(rollout: &Rollout<Desired>) -> Vec<(String, String)> {
    rollout
        .servers
        .iter()
        .filter_map(|r| Some((r.server.clone(), r.new_container.clone()?)))
        .collect()
}

/// Whether slot `slot`'s old replica `name` is gone though a container runs
/// under its name: the new replica of another slot (of `news`) took it.
async fn taken_by_another(
    world: &DockerWorld,
    news: &[(String, String)],
    slot: &str,
    name: &str,
) -> Result<bool> {
    let Some(id) = holder(world, name).await? else {
        return Ok(false);
    };
    Ok(news.iter().any(|(s, new)| s != slot && *new == id))
}

/// The set's `kept` replicas as they are now: dead unless their container runs.
async fn as_they_run(world: &DockerWorld, kept: &[Replica]) -> Result<Vec<Replica>> {
    let mut now = Vec::with_capacity(kept.len());
    for r in kept {
        now.push(Replica {
            container: r.container.clone(),
            dead: !runs(world, &r.container).await?,
        });
    }
    Ok(now)
}

/// The replica set of the operator's line `server` as a resumed rollout
/// continues it: the replicas done are kept, the others' slots run again. A
/// new replica that already serves behind its own line is kept too, and its
/// slot only retires the old one. The records of slots that run again go
/// back to pending.
pub(in crate::rollout) async fn resume_set(
    world: &DockerWorld,
    rollout: &mut Rollout<Desired>,
    server: &str,
    up: &Upstream,
) -> Result<ReplicaSet> {
    let planned = rollout
        .plan
        .sets
        .iter()
        .find(|s| s.server == server)
        .cloned()
        .ok_or_else(|| anyhow!("the journal has no replica set {server}"))?;
    let live = |address: &str| {
        up.servers
            .iter()
            .any(|s| s.address == address && !s.is_down())
    };
    let mut set = ReplicaSet {
        server: server.to_string(),
        statement: planned.statement,
        kept: as_they_run(world, &planned.kept).await?,
        slots: Vec::new(),
        via: planned.via,
        hooks: planned.hooks,
    };
    let news = new_containers(rollout);
    for rec in rollout
        .servers
        .iter_mut()
        .filter(|r| r.set.as_deref() == Some(server))
    {
        let serving = rec
            .replacement
            .clone()
            .unwrap_or_else(|| rec.container.clone());
        if rec.state == ServerState::Done {
            if rec.new_spec.is_some() {
                set.kept.push(Replica {
                    dead: !runs(world, &serving).await?,
                    container: serving,
                });
            }
            continue;
        }
        let old = match rec.container.as_str() {
            "" => None,
            c => Some(Replica {
                container: c.to_string(),
                dead: !runs(world, c).await?
                    || taken_by_another(world, &news, &rec.server, c).await?,
            }),
        };
        rec.state = ServerState::Pending;
        rec.error = None;
        let mut new = rec.new_spec.as_ref().and(rec.replacement.clone());
        if let Some(n) = new.clone()
            && old.as_ref().is_none_or(|o| o.container != n)
            && is_named(world, &n, rec.new_container.as_deref()).await?
            && runs(world, &n).await?
            && live(&set.pinned_address(&n))
        {
            set.kept.push(Replica {
                container: n,
                dead: false,
            });
            new = None;
            if old.is_none() {
                rec.state = ServerState::Done;
                continue;
            }
        }
        set.slots.push(Slot { old, new });
    }
    Ok(set)
}

/// The replica set of `server` that undoes `of` (or, with `to`, deploys
/// what revision `to` deployed): each replica `of` brought is replaced by
/// one running what its slot retired; a slot cut short gives back what it
/// took (a stopped replica is started again, a new one removed). Returns the
/// set and one record per slot for the undoing rollout.
pub(in crate::rollout) async fn undo_set(
    world: &DockerWorld,
    of: &Rollout<Desired>,
    to: Option<&Rollout<Desired>>,
    server: &str,
    policy: &UpdateConfig,
) -> Result<(ReplicaSet, Vec<ServerRecord<Desired>>)> {
    let planned = of
        .plan
        .sets
        .iter()
        .find(|s| s.server == server)
        .ok_or_else(|| anyhow!("revision {} has no replica set {server}", of.revision))?;
    let order = policy.order.value;
    let mut set = ReplicaSet {
        server: server.to_string(),
        statement: planned.statement.clone(),
        kept: as_they_run(world, &planned.kept).await?,
        slots: Vec::new(),
        via: Some(Via::Previous),
        hooks: Hooks::default(),
    };
    // What each slot of the undoing set deploys, in slot order.
    let mut specs: Vec<(Option<Desired>, Option<Desired>)> = Vec::new();
    let news = new_containers(of);
    for rec in of
        .servers
        .iter()
        .filter(|r| r.set.as_deref() == Some(server))
    {
        let wanted = match to {
            Some(target) => target
                .servers
                .iter()
                .find(|t| t.set.as_deref() == Some(server))
                .and_then(|t| t.new_spec.clone()),
            None => rec.old_spec.clone(),
        };
        // Recreated under its own name (stop-first), the name may be the new container's.
        let renamed = !rec.container.is_empty()
            && is_named(world, &rec.container, rec.new_container.as_deref()).await?;
        let old_alive = !rec.container.is_empty()
            && !renamed
            && runs(world, &rec.container).await?
            && !taken_by_another(world, &news, &rec.server, &rec.container).await?;
        let new = rec.replacement.clone().filter(|n| *n != rec.container);
        match rec.state {
            ServerState::Pending if rec.container.is_empty() => {}
            ServerState::Pending => set.kept.push(Replica {
                container: rec.container.clone(),
                dead: !old_alive,
            }),
            // Done, or cut short once its new container took the name: what
            // serves under the name is replaced by what the slot retired.
            state if state == ServerState::Done || renamed => {
                let serving = rec
                    .replacement
                    .clone()
                    .unwrap_or_else(|| rec.container.clone());
                let dead = !runs(world, &serving).await?;
                set.slots.push(Slot {
                    old: Some(Replica {
                        container: serving,
                        dead,
                    }),
                    new: wanted.is_some().then(String::new),
                });
                specs.push((rec.new_spec.clone(), wanted));
            }
            _ => {
                // Cut short: the old replica serves again (or is started again),
                // a new one it started goes (one `of` cannot prove its own stays).
                // An old replica that stands stopped under its name (a stop-first
                // recreate whose new container failed to start gave it back) is
                // replaced in place: its name is no new replica's to take.
                let stands_stopped = !old_alive
                    && !rec.container.is_empty()
                    && !renamed
                    && is_named(world, &rec.container, rec.container_id.as_deref()).await?
                    && !taken_by_another(world, &news, &rec.server, &rec.container).await?;
                if old_alive {
                    set.kept.push(Replica {
                        container: rec.container.clone(),
                        dead: false,
                    });
                } else if stands_stopped && wanted.is_some() {
                    set.slots.push(Slot {
                        old: Some(Replica {
                            container: rec.container.clone(),
                            dead: true,
                        }),
                        new: Some(String::new()),
                    });
                    specs.push((rec.old_spec.clone(), wanted.clone()));
                } else if wanted.is_some() {
                    set.slots.push(Slot {
                        old: None,
                        new: Some(String::new()),
                    });
                    specs.push((None, wanted.clone()));
                }
                if let Some(n) = new
                    && made_by(world, of, &rec.server, &n).await?
                {
                    let dead = !runs(world, &n).await?;
                    set.slots.push(Slot {
                        old: Some(Replica { container: n, dead }),
                        new: None,
                    });
                    specs.push((rec.new_spec.clone(), None));
                }
            }
        }
    }
    // The hooks of the definition it goes back to (one service: one definition).
    set.hooks = specs
        .iter()
        .find_map(|(_, wanted)| wanted.as_ref().map(|d| d.hooks().clone()))
        .unwrap_or_default();
    // Name the new containers after the set's containers as they are now.
    let mut numbered = Vec::new();
    let mut compose = false;
    for name in set
        .kept
        .iter()
        .chain(set.slots.iter().filter_map(|s| s.old.as_ref()))
        .map(|r| r.container.clone())
        .collect::<Vec<_>>()
    {
        if let Ok(b) = backend_by_name(&world.docker, &name).await {
            compose |= b.compose.is_some();
            numbered.push(b);
        }
    }
    let naming = Naming::of(&numbered, compose);
    let numbered: Vec<(String, Option<u32>)> = numbered
        .iter()
        .map(|b| (b.name.clone(), b.number))
        .collect();
    let numbers = name_slots(&naming, &numbered, &mut set.slots, order, server)?;
    let mut numbers = numbers.into_iter();
    let mut records = Vec::new();
    for (slot, (was, wanted)) in set.slots.iter().zip(specs) {
        let new_spec = match (&slot.new, wanted) {
            (Some(name), Some(Desired::Engine { spec, hooks, fresh })) => Some(Desired::Engine {
                spec: Box::new(spec.named(name, numbers.next().flatten())),
                hooks,
                fresh,
            }),
            (_, other) => other,
        };
        records.push(slot_record(&set, slot, server, was, new_spec));
    }
    Ok((set, records))
}
