//! Preparing a replica set for `deploy`: its members, what each new replica
//! runs (the compose service as compose would create it now, or the members'
//! own spec changed by `--image/--env/--label`) and how many there should be.
//! The names and numbers the new replicas take are `slots.rs`; resuming and
//! undoing a set after a stop, `recover.rs`.
mod recover;
mod slots;

pub(super) use recover::{resume_set, undo_set};

use anyhow::{Result, anyhow, bail};

use super::deploy::{DeployRequest, Mode, engine_spec, hooks_of, use_compose};
use super::desired::Desired;
use super::projects::{Projects, project};
use super::world::DockerWorld;
use crate::backends::{
    BackendContainer, TemplateVars, capture_for_recreate, capture_spec, compose_templates,
};
use crate::conf::Server;
use crate::exec::{Rollout, ServerRecord};
use crate::plan::{Order, Replica, ReplicaSet, Slot, UpdateConfig, Via};
use slots::{Naming, name_slots, slot_record};

/// A replica set to deploy and one journal record per slot, or why it is left alone.
pub(super) type PreparedSet = std::result::Result<(ReplicaSet, Vec<ServerRecord<Desired>>), String>;

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
        if let Some(why) = project.not_carried(&c.service) {
            bail!(
                "{}: {why}, and the compose CLI recreates every replica at once: its replicas \
                 cannot be rolled one at a time",
                server.address
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
    let numbers = name_slots(&naming, &numbered, &mut slots, order, &server.address)?;
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
            Some(m) => {
                let (spec, volumes) = capture_for_recreate(&world.docker, &m.id).await?;
                Some((spec, hooks_of(history, &m.id), volumes))
            }
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
                    // Recreated in place: its volumes come along as compose keeps them.
                    (Some((_, _, volumes)), Order::StopFirst) if compose => {
                        spec.with_data_volumes_of(volumes)
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
            old_spec.map(|(s, old_hooks, _)| Desired::engine(s, old_hooks)),
            new_spec.map(|s| Desired::engine(s, hooks.clone())),
        ));
    }
    Ok(Ok((set, records)))
}
