//! Preparing a replica set for `deploy`: its members, what each new replica
//! runs (the compose service as compose would create it now, or the members'
//! own spec changed by `--image/--env/--label`), how many there should be,
//! and the names and numbers the new replicas take (bounded: freed numbers
//! are reused, so repeated deploys never grow them).
use anyhow::{Result, anyhow, bail};

use super::deploy::{DeployRequest, Mode, Projects, engine_spec, hooks_of, project, use_compose};
use super::world::{Desired, DockerWorld};
use crate::backends::{
    BackendContainer, TemplateVars, backend_by_name, capture_spec, compose_templates, next_slot,
};
use crate::conf::{Server, Upstream};
use crate::exec::{Rollout, ServerRecord, ServerState};
use crate::plan::{Hooks, Order, Replica, ReplicaSet, Slot, UpdateConfig, Via};

/// A replica set to deploy and one journal record per slot, or why it is left alone.
pub(super) type PreparedSet = std::result::Result<(ReplicaSet, Vec<ServerRecord<Desired>>), String>;

/// How the containers of one set are named.
enum Naming {
    /// A compose service's: `project_service_N` (v1) or `project-service-N` (v2).
    Compose {
        /// `project_service_` or `project-service-`.
        prefix: String,
    },
    /// Containers of a network alias: start-first replacements alternate `name` / `name-b`.
    Slots,
}

impl Naming {
    fn of(members: &[BackendContainer], compose: bool) -> Naming {
        let Some(c) = members
            .iter()
            .find_map(|m| m.compose.as_ref())
            .filter(|_| compose)
        else {
            return Naming::Slots;
        };
        let dash = format!("{}-{}-", c.project, c.service);
        let separator = if members.iter().any(|m| m.name.starts_with(&dash)) {
            '-'
        } else {
            '_'
        };
        Naming::Compose {
            prefix: format!("{}{separator}{}{separator}", c.project, c.service),
        }
    }

    fn numbered(&self, n: u32) -> String {
        match self {
            Naming::Compose { prefix, .. } => format!("{prefix}{n}"),
            Naming::Slots => unreachable!("only compose names are numbered"),
        }
    }
}

/// Names each slot's new container (those still unnamed), batch by batch in
/// slot order: stop-first recreates a replica under its own name and number;
/// otherwise a compose service's replicas take the lowest free numbers
/// (those freed by a batch's stopped replicas serve the next batch), and
/// other replicas alternate `name` / `name-b`. `numbered` lists every
/// container of the set with its compose number. Returns each named slot's
/// number, in order.
fn name_slots(
    naming: &Naming,
    numbered: &[(String, Option<u32>)],
    slots: &mut [Slot],
    order: Order,
    update: &UpdateConfig,
    server: &str,
) -> Result<Vec<Option<u32>>> {
    let number_of = |name: &str| {
        numbered
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, number)| *number)
    };
    let mut used: Vec<u32> = numbered.iter().filter_map(|(_, n)| *n).collect();
    let batch = match update.parallelism.value {
        0 => slots.len().max(1),
        p => p as usize,
    };
    let mut numbers = Vec::new();
    for chunk in slots.chunks_mut(batch) {
        for slot in chunk.iter_mut().filter(|s| s.new.is_some()) {
            let (name, number) = match (naming, &slot.old) {
                (_, Some(old)) if order == Order::StopFirst => {
                    (old.container.clone(), number_of(&old.container))
                }
                (Naming::Compose { .. }, _) => {
                    let n = lowest_free(&used);
                    used.push(n);
                    (naming.numbered(n), Some(n))
                }
                (Naming::Slots, Some(old)) => {
                    (next_slot(&old.container), number_of(&old.container))
                }
                (Naming::Slots, None) => bail!(
                    "{server} names containers that share a network alias; only a compose service can be scaled"
                ),
            };
            slot.new = Some(name);
            numbers.push(number);
        }
        for slot in chunk.iter() {
            if let Some(n) = slot.old.as_ref().and_then(|o| number_of(&o.container)) {
                used.retain(|u| *u != n);
            }
        }
    }
    Ok(numbers)
}

/// The journal's record of `slot` of the replica set behind the operator's
/// line `server`, before anything ran.
fn slot_record(
    set: &ReplicaSet,
    slot: &Slot,
    server: &str,
    old_spec: Option<Desired>,
    new_spec: Option<Desired>,
) -> ServerRecord<Desired> {
    ServerRecord {
        replacement: slot.new.clone(),
        set: Some(server.to_string()),
        ..ServerRecord::pending(
            set.key(slot),
            slot.old
                .as_ref()
                .map(|o| o.container.clone())
                .unwrap_or_default(),
            old_spec,
            new_spec,
        )
    }
}

/// The lowest number from 1 not in `used`.
fn lowest_free(used: &[u32]) -> u32 {
    (1..).find(|n| !used.contains(n)).expect("a free number")
}

/// Prepares the replica set behind `server`.
pub(super) async fn prepare(
    world: &DockerWorld,
    request: &DeployRequest,
    update: &UpdateConfig,
    projects: &mut Projects,
    history: &[Rollout<Desired>],
    (index, server): (usize, &Server),
    members: Vec<BackendContainer>,
) -> Result<PreparedSet> {
    let compose_ref = members.iter().find_map(|m| m.compose.clone());
    let compose = use_compose(world, request, compose_ref.is_some());
    let order = update.order.value;
    // Members already running what is deployed (compose's config hash says so) stay.
    let mut current = vec![false; members.len()];
    if compose && request.mode == Mode::ComposeCli {
        bail!(
            "{}: the compose CLI recreates every replica at once; roll replicas with --mode compose (compose's own containers, created one at a time through the API)",
            server.address
        );
    }
    // Engine mode renders the request's templates per replica (`vars`).
    let (template, vars, declared, hooks) = if compose {
        let c = compose_ref.clone().ok_or_else(|| {
            anyhow!(
                "the containers of {} were not made by compose; use --mode engine",
                server.address
            )
        })?;
        let project = project(world, projects, &c).await?;
        if project.fixed_name(&c.service) {
            bail!(
                "compose service {} sets container_name, so it cannot have replicas",
                c.service
            );
        }
        let declared = project.replicas(&c.service).unwrap_or(members.len());
        let hooks = project.hooks(&c.service)?.overridden_by(&request.hooks);
        if !request.force {
            for (m, cur) in members.iter().zip(current.iter_mut()) {
                if let Some(mc) = &m.compose {
                    *cur = m.running && !project.needs_update(mc)?;
                }
            }
        }
        if current.iter().all(|c| *c) && declared == members.len() {
            return Ok(Err(format!(
                "compose service {} is unchanged and has its {declared} replicas (--force redeploys it)",
                c.service
            )));
        }
        let template = if request.dry_run {
            // A dry run creates nothing, not even compose's template: the plan
            // needs names, and a replica's own spec stands in for what compose makes.
            let model = members.iter().find(|m| m.running).unwrap_or(&members[0]);
            capture_spec(&world.docker, &model.id).await?
        } else {
            match project.template(&c.service) {
                Some(template) => template.clone(),
                None => {
                    let cli = world.compose_cli().expect("a compose project was read");
                    compose_templates(
                        cli,
                        &world.docker,
                        project,
                        &c,
                        &[(c.service.clone(), members.len())],
                    )
                    .await?
                    .remove(&c.service)
                    .ok_or_else(|| anyhow!("no template of compose service {}", c.service))?
                }
            }
        };
        (template, None, declared, hooks)
    } else {
        let model = members.iter().find(|m| m.running).unwrap_or(&members[0]);
        let vars = TemplateVars {
            server: server.address.clone(),
            service: model
                .compose
                .as_ref()
                .map_or(server.host.clone(), |c| c.service.clone()),
            container: model.name.clone(),
            index,
        };
        let captured = capture_spec(&world.docker, &model.id).await?;
        // Rendered once here too, so that a bad template fails before anything runs.
        engine_spec(request, captured.clone(), &vars)?;
        (captured, Some(vars), members.len(), request.hooks.clone())
    };
    // More kept than declared: the extra ones go (newest numbers last, removed first).
    let kept = current.iter().filter(|c| **c).count();
    let mut extra = kept.saturating_sub(declared);
    for (i, cur) in current.iter_mut().enumerate().rev() {
        if extra > 0 && *cur && members[i].running {
            *cur = false;
            extra -= 1;
        }
    }
    let kept = current.iter().filter(|c| **c).count();
    let wanted_new = declared.saturating_sub(kept);
    let replica = |m: &BackendContainer| Replica {
        container: m.name.clone(),
        dead: !m.running,
    };
    let mut retired: Vec<&BackendContainer> = members
        .iter()
        .zip(&current)
        .filter(|(_, cur)| !**cur)
        .map(|(m, _)| m)
        .collect();
    // Dead replicas first: they serve nothing, and their slots need no drain.
    retired.sort_by_key(|m| m.running);
    // Replaced first, then added, then removed; the new ones unnamed yet.
    let mut slots: Vec<Slot> = (0..retired.len().max(wanted_new))
        .map(|i| Slot {
            old: retired.get(i).map(|m| replica(m)),
            new: (i < wanted_new).then(String::new),
        })
        .collect();
    slots.sort_by_key(|s| match (&s.old, &s.new) {
        (Some(_), Some(_)) => 0,
        (None, _) => 1,
        (Some(_), None) => 2,
    });
    let naming = Naming::of(&members, compose);
    let numbered: Vec<(String, Option<u32>)> =
        members.iter().map(|m| (m.name.clone(), m.number)).collect();
    let numbers = name_slots(
        &naming,
        &numbered,
        &mut slots,
        order,
        update,
        &server.address,
    )?;
    let set = ReplicaSet {
        server: server.address.clone(),
        statement: String::new(),
        kept: members
            .iter()
            .zip(&current)
            .filter(|(_, cur)| **cur)
            .map(|(m, _)| replica(m))
            .collect(),
        slots,
        via: Some(if compose { Via::Compose } else { Via::Engine }),
        hooks: hooks.clone(),
    };
    let mut records = Vec::new();
    let mut numbers = numbers.into_iter();
    for slot in &set.slots {
        let old = slot
            .old
            .as_ref()
            .and_then(|o| members.iter().find(|m| m.name == o.container));
        let old_spec = match old {
            Some(m) => Some((
                capture_spec(&world.docker, &m.id).await?,
                hooks_of(history, &m.id),
            )),
            None => None,
        };
        let new_spec = match &slot.new {
            Some(name) => {
                let made = match &vars {
                    // `{{container}}`: the replica it replaces, else its own name.
                    Some(vars) => {
                        let container = slot.old.as_ref().map_or(name, |o| &o.container);
                        let vars = TemplateVars {
                            container: container.clone(),
                            ..vars.clone()
                        };
                        engine_spec(request, template.clone(), &vars)?
                    }
                    None => template.clone(),
                };
                let spec = made.named(name, numbers.next().flatten());
                Some(match (&old_spec, order) {
                    // Recreated in place: its anonymous volumes come along, as compose does.
                    (Some((old_spec, _)), Order::StopFirst) if compose => {
                        let id = old.map_or("", |m| m.id.as_str());
                        spec.with_volumes_of(old_spec, id)
                    }
                    _ => spec,
                })
            }
            None => None,
        };
        records.push(slot_record(
            &set,
            slot,
            &server.address,
            old_spec.map(|(s, old_hooks)| Desired::engine(s, old_hooks)),
            new_spec.map(|s| Desired::engine(s, hooks.clone())),
        ));
    }
    Ok(Ok((set, records)))
}

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

/// The replica set of the operator's line `server` as a resumed rollout
/// continues it: the replicas done are kept, the others' slots run again. A
/// new replica that already serves behind its own line is kept too, and its
/// slot only retires the old one. The records of slots that run again go
/// back to pending.
pub(super) async fn resume_set(
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
        kept: Vec::new(),
        slots: Vec::new(),
        via: planned.via,
        hooks: planned.hooks,
    };
    for r in &planned.kept {
        set.kept.push(Replica {
            container: r.container.clone(),
            dead: !runs(world, &r.container).await?,
        });
    }
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
pub(super) async fn undo_set(
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
        kept: Vec::new(),
        slots: Vec::new(),
        via: Some(Via::Previous),
        hooks: Hooks::default(),
    };
    // What each slot of the undoing set deploys, in slot order.
    let mut specs: Vec<(Option<Desired>, Option<Desired>)> = Vec::new();
    for r in &planned.kept {
        set.kept.push(Replica {
            container: r.container.clone(),
            dead: !runs(world, &r.container).await?,
        });
    }
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
                // a new one it started goes.
                if old_alive {
                    set.kept.push(Replica {
                        container: rec.container.clone(),
                        dead: false,
                    });
                } else if wanted.is_some() {
                    set.slots.push(Slot {
                        old: None,
                        new: Some(String::new()),
                    });
                    specs.push((None, wanted.clone()));
                }
                if let Some(n) = new
                    && crate::docker::inspect(&world.docker, &n).await?.is_some()
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
    let numbers = name_slots(&naming, &numbered, &mut set.slots, order, policy, server)?;
    let mut numbers = numbers.into_iter();
    let mut records = Vec::new();
    for (slot, (was, wanted)) in set.slots.iter().zip(specs) {
        let new_spec = match (&slot.new, wanted) {
            (Some(name), Some(Desired::Engine { spec, hooks })) => Some(Desired::engine(
                spec.named(name, numbers.next().flatten()),
                hooks,
            )),
            (_, other) => other,
        };
        records.push(slot_record(&set, slot, server, was, new_spec));
    }
    Ok((set, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_start_at_the_lowest_free_one() {
        assert_eq!(lowest_free(&[]), 1);
        assert_eq!(lowest_free(&[1, 2, 3]), 4);
        assert_eq!(lowest_free(&[2, 3, 4]), 1);
    }
}
