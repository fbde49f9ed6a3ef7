//! Picking up a rollout from its journal: `resume` finishes it, `rollback`
//! undoes it (or goes back to what revision N deployed). Both rebuild their
//! plan targets from the journal's records by the same rule.
use anyhow::{Context, Result, bail};
use tokio::sync::watch;

use super::replicas::{resume_set, undo_set};
use super::run::{Ended, Origin, Planned, Runner, new_rollout, pending_steps};
use super::session::Session;
use super::world::{Desired, DockerWorld};
use crate::backends::next_slot;
use crate::conf::Upstream;
use crate::exec::{
    Observer, PlanKind, Rollout, RolloutKind, ServerRecord, ServerState, StateDir, Status,
    StepStatus, World,
};
use crate::plan::{
    Action, Direction, Hooks, Order, Overrides, PreDeploy, Target, UpdateConfig, Via,
    replacement_address, rolling_update, with_flags,
};

/// What `resume` is asked.
#[derive(Debug, Clone, Default)]
pub struct ResumeRequest {
    /// Only a rollout of this upstream.
    pub upstream: Option<String>,
    /// Show the plan; change nothing.
    pub dry_run: bool,
}

/// What `rollback` is asked.
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    /// Only rollouts of this upstream.
    pub upstream: Option<String>,
    /// Redeploy what this revision deployed instead of undoing.
    pub to: Option<u32>,
    /// `--rollback-*` flags over the settings the rollout was started with.
    pub flags: Overrides,
    /// Show the plan; change nothing.
    pub dry_run: bool,
}

/// The operator's lines of the replica sets a rollout rolls, in order.
fn set_lines(rollout: &Rollout<Desired>) -> Vec<String> {
    rollout.plan.sets.iter().map(|s| s.server.clone()).collect()
}

/// Where a journaled server stands now: whether the `down` on its line is
/// ours to remove, and whether its container is dead. The one rule `resume`
/// and `rollback` share.
async fn reentry(
    world: &DockerWorld,
    up: &Upstream,
    address: &str,
    container: &str,
    rec: &ServerRecord<Desired>,
) -> Result<(bool, bool)> {
    // A line pinned to nowhere stands for the operator's line `address`.
    let line = up
        .servers
        .iter()
        .find(|s| s.address == address || s.pinned_from.as_deref() == Some(address));
    let drained_by_us = line.is_some_and(|l| l.is_down()) && rec.drained_by_us();
    let dead = !world.is_running(container).await?;
    Ok((drained_by_us, dead))
}

/// The hooks of what a record deploys.
fn hooks_of(spec: &Option<Desired>) -> Hooks {
    spec.as_ref().map(|d| d.hooks().clone()).unwrap_or_default()
}

/// The rollout's pre-deploy job if it has not run to its end: a resumed
/// rollout runs it (again: a run killed while it ran may have left it half
/// done, and a pre-deploy command must be safe to run twice, as migrations
/// that record what they applied are); one that finished is never rerun.
fn pending_pre_deploy(rollout: &Rollout<Desired>) -> Option<PreDeploy> {
    rollout
        .plan
        .steps
        .iter()
        .zip(&rollout.steps)
        .find_map(|(step, record)| match &step.action {
            Action::PreDeploy { job, .. }
                if !matches!(record.status, StepStatus::Done | StepStatus::Skipped) =>
            {
                Some(job.clone())
            }
            _ => None,
        })
}

fn entry_state(drained_by_us: bool) -> ServerState {
    if drained_by_us {
        ServerState::Drained
    } else {
        ServerState::Pending
    }
}

/// Continues the paused or interrupted rollout: a new plan for the servers
/// not done yet, from the config as it is now.
pub async fn resume(
    session: &Session,
    request: &ResumeRequest,
    observer: &mut dyn Observer,
    cancel: watch::Receiver<bool>,
) -> Result<Ended> {
    let locked = session.lock(observer).await?;
    let state = &locked.state;
    let world = &session.world;
    let Some(mut rollout) = state.unfinished::<Desired>(request.upstream.as_deref())? else {
        bail!(
            "no paused or interrupted rollout to resume in {}",
            state.root().display()
        );
    };
    let config = world.load_config().await?;
    let up = config.upstream(&rollout.upstream)?;
    let mut sets = Vec::new();
    for server in set_lines(&rollout) {
        sets.push(resume_set(world, &mut rollout, &server, &up).await?);
    }
    let vias: Vec<(String, Option<Via>)> = rollout
        .plan
        .targets
        .iter()
        .map(|t| (t.server.clone(), t.via.clone()))
        .collect();
    let via_of = |server: &str| {
        vias.iter()
            .find(|(s, _)| s == server)
            .and_then(|(_, v)| v.clone())
    };
    let mut targets = Vec::new();
    for rec in rollout
        .servers
        .iter_mut()
        .filter(|r| r.state != ServerState::Done && r.set.is_none())
    {
        let (drained_by_us, dead) = reentry(world, &up, &rec.server, &rec.container, rec).await?;
        rec.state = entry_state(drained_by_us);
        rec.error = None;
        targets.push(Target {
            server: rec.server.clone(),
            container: rec.container.clone(),
            replacement: rec.replacement.clone(),
            drained_by_us,
            dead,
            pinned: rec.pinned.clone(),
            via: via_of(&rec.server),
            hooks: hooks_of(&rec.new_spec),
        });
    }
    let plan = rolling_update(
        &config,
        &rollout.upstream,
        &targets,
        &sets,
        pending_pre_deploy(&rollout).as_ref(),
        &rollout.plan.policy,
        rollout.plan.timeouts,
    )?;
    if request.dry_run {
        return Ok(Ended::Planned(Box::new(Planned {
            kind: PlanKind::Resume,
            revision: rollout.revision,
            plan,
            notices: Vec::new(),
        })));
    }
    if !observer.approve(PlanKind::Resume, &plan)? {
        return Ok(Ended::Declined);
    }
    rollout.steps = pending_steps(&plan);
    rollout.plan = plan;
    let mut runner = Runner {
        world,
        state,
        observer,
        cancel,
    };
    Ok(Ended::Ran(runner.run(rollout).await?))
}

/// Undoes the unfinished rollout, else the last finished deploy or rollback
/// (so a second `rollback` undoes the first, as `docker service rollback`
/// swaps a service's spec and previous spec); with `to`, redeploys what that
/// revision deployed.
pub async fn rollback(
    session: &Session,
    request: &RollbackRequest,
    observer: &mut dyn Observer,
    cancel: watch::Receiver<bool>,
) -> Result<Ended> {
    let locked = session.lock(observer).await?;
    let state = &locked.state;
    let upstream = request.upstream.as_deref();
    let history = state.history::<Desired>()?;
    let of = match state.unfinished::<Desired>(upstream)? {
        Some(r) => r,
        None => history
            .iter()
            .rev()
            .find(|r| {
                upstream.is_none_or(|u| r.upstream == u)
                    && matches!(r.kind, RolloutKind::Deploy | RolloutKind::Rollback)
                    && r.status == Status::Done
            })
            .cloned()
            .context("no finished deploy or rollback to roll back")?,
    };
    let to = match request.to {
        Some(n) => Some(
            history
                .iter()
                .find(|r| r.revision == n)
                .with_context(|| format!("no revision {n} (see `history`)"))?,
        ),
        None => None,
    };
    let policy = with_flags(
        of.rollback_policy.clone(),
        Direction::Rollback,
        &request.flags,
    )?;
    let undo = undo_of(&session.world, state, &of, to, &policy).await?;
    if request.dry_run {
        return Ok(Ended::Planned(Box::new(Planned {
            kind: PlanKind::Rollback,
            revision: undo.revision,
            plan: undo.plan,
            notices: Vec::new(),
        })));
    }
    if !observer.approve(PlanKind::Rollback, &undo.plan)? {
        return Ok(Ended::Declined);
    }
    let mut runner = Runner {
        world: &session.world,
        state,
        observer,
        cancel,
    };
    let report = runner.start(undo).await?;
    if report.status == Status::Done {
        let mut of = of;
        of.status = Status::RolledBack;
        state.save(&of)?;
    }
    Ok(Ended::Ran(report))
}

/// A rollout that undoes `of`: redeploys each touched server's previous
/// container (or revision `to`'s containers) with `policy`.
pub(crate) async fn undo_of(
    world: &DockerWorld,
    state: &StateDir,
    of: &Rollout<Desired>,
    to: Option<&Rollout<Desired>>,
    policy: &UpdateConfig,
) -> Result<Rollout<Desired>> {
    let config = world.load_config().await?;
    let up = config.upstream(&of.upstream)?;
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    let mut sets = Vec::new();
    for server in set_lines(of) {
        let (set, records) = undo_set(world, of, to, &server, policy).await?;
        sets.push(set);
        servers.extend(records);
    }
    for rec in of
        .servers
        .iter()
        .filter(|r| r.state != ServerState::Pending && r.set.is_none())
    {
        // A start-first server that finished, or whose line was swapped before
        // it failed (its old container's pre-stop hook), runs as its replacement now.
        let swapped = |name: &str| {
            let address = replacement_address(&rec.server, name);
            up.servers.iter().any(|s| s.address == address)
        };
        let (address, container) = match &rec.replacement {
            Some(name) if rec.state == ServerState::Done || swapped(name) => {
                (replacement_address(&rec.server, name), name.clone())
            }
            _ => (rec.server.clone(), rec.container.clone()),
        };
        let desired = match to {
            Some(target) => match target.servers.iter().find(|r| r.server == rec.server) {
                Some(t) => t.new_spec.clone(),
                None => bail!("revision {} has no server {}", target.revision, rec.server),
            },
            None => rec.old_spec.clone(),
        };
        let (drained_by_us, dead) = reentry(world, &up, &address, &container, rec).await?;
        let replacement = (policy.order.value == Order::StartFirst).then(|| next_slot(&container));
        targets.push(Target {
            server: address.clone(),
            container: container.clone(),
            replacement: replacement.clone(),
            drained_by_us,
            dead,
            pinned: rec.pinned.clone(),
            via: Some(Via::Previous),
            hooks: hooks_of(&desired),
        });
        servers.push(ServerRecord {
            server: address,
            container,
            old_spec: rec.new_spec.clone(),
            new_spec: desired,
            state: entry_state(drained_by_us),
            new_container: None,
            healthy_at: None,
            error: None,
            replacement,
            set: None,
            pinned: rec.pinned.clone(),
        });
    }
    if targets.is_empty() && sets.is_empty() {
        bail!(
            "revision {} changed no server; nothing to roll back",
            of.revision
        );
    }
    // Never the pre-deploy hook: it prepared the version being undone.
    let plan = rolling_update(
        &config,
        &of.upstream,
        &targets,
        &sets,
        None,
        policy,
        of.plan.timeouts,
    )?;
    let origin = Origin {
        revision: state.next_revision()?,
        kind: RolloutKind::Rollback,
        undoes: Some(of.revision),
        command: &of.command,
        nginx: &world.nginx.name,
    };
    Ok(new_rollout(origin, plan, policy.clone(), servers))
}
