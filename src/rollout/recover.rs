//! Picking up a rollout from its journal: `resume` finishes it, `rollback`
//! undoes it (or goes back to what revision N deployed). Both rebuild their
//! plan targets from the journal's records by the same rule.
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use anyhow::{Context, Result, bail};
use tokio::sync::watch;

use super::close::{changed_no_server, close};
use super::desired::Desired;
use super::leftovers::{
    Unswapped, discard, identify, record_discarded, refuse_names_in_use, unswapped,
};
use super::replicas::{resume_set, undo_set};
use super::run::{Ended, Origin, Runner, new_rollout, pending_steps, show_or_approve};
use super::session::Session;
use super::world::DockerWorld;
use crate::backends::{leftover_running, next_slot};
use crate::conf::{ConfigSet, MemFs, Upstream, may_name_the_same_upstream};
use crate::exec::{
    Observer, PlanKind, Rollout, RolloutKind, ServerRecord, ServerState, StateDir, Status,
    StepStatus, World,
};
use crate::plan::{
    Action, Direction, Hooks, Order, Overrides, PlanError, PreDeploy, RampLeft, RollingUpdate,
    Target, UpdateConfig, Via, apply_changes_with, revert_lines, rolling_update, with_flags,
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
    let line = up.line_for(address);
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

/// A plan refused by the config engine (a ramp's weight changed by hand
/// since) is the config's error: the file, at the position shown.
fn config_error(e: PlanError) -> anyhow::Error {
    match e {
        PlanError::Conf(e) => e.into(),
        e => e.into(),
    }
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
    // Locked even for a dry run, which only shows the plan.
    let run_in = (!request.dry_run).then_some(state);
    let world = &session.world;
    let Some(mut rollout) = state.unfinished::<Desired>(request.upstream.as_deref())? else {
        bail!(
            "no paused or interrupted rollout to resume in {}",
            state.root().display()
        );
    };
    // Read from its records before a new plan replaces them.
    rollout.carry_leftovers();
    let done = |i: usize| {
        matches!(
            rollout.steps[i].status,
            StepStatus::Done | StepStatus::Skipped
        )
    };
    let failed = rollout
        .servers
        .iter()
        .any(|r| r.state == ServerState::Failed);
    // A line edit, or a ramp under way (paused at a hold, interrupted, killed):
    // the rest of its own plan, which a new plan could not rebuild.
    if rollout.plan.line_only() || (rollout.plan.ramp_underway(done) && !failed) {
        let left = (rollout.plan.steps.iter().enumerate())
            .filter(|(i, _)| !done(*i))
            .map(|(_, s)| s);
        refuse_names_in_use(world, left, &rollout.servers).await?;
        if let ControlFlow::Break(ended) = show_or_approve(
            run_in,
            observer,
            PlanKind::Resume,
            rollout.revision,
            &rollout.plan,
            Vec::new(),
        )? {
            return Ok(ended);
        }
        let mut runner = Runner::new(world, state, observer, cancel);
        return Ok(Ended::Ran(runner.run(rollout).await?));
    }
    // Its pre-deploy runs again (after its one-off is removed), not over itself.
    interrupted_pre_deploys(world, &rollout, "resume").await?;
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
        // Started first and swapped in (healthy, its line live), stopped
        // before its old container was: only that stop is left, once its
        // replacement still runs. Anything else is planned from its old line.
        let swapped_in = rec.swapped_line().is_some_and(|line| {
            rec.state == ServerState::Healthy
                && (up.servers.iter()).any(|s| s.address == line && s.is_live())
        });
        let swapped = match (swapped_in, &rec.replacement) {
            (true, Some(new)) => world.is_running(new).await?,
            _ => false,
        };
        if !swapped {
            rec.state = entry_state(drained_by_us);
        }
        rec.error = None;
        targets.push(Target {
            server: rec.server.clone(),
            container: rec.container.clone(),
            replacement: rec.replacement.clone(),
            swapped,
            drained_by_us,
            dead,
            pinned: rec.pinned.clone(),
            via: via_of(&rec.server),
            hooks: hooks_of(&rec.new_spec),
        });
    }
    // Its ramp's weights go back only over what its runs left on each line.
    let left = rollout.weights_left();
    let plan = rolling_update(RollingUpdate {
        config: &config,
        upstream: &rollout.upstream,
        targets: &targets,
        sets: &sets,
        pre_deploy: pending_pre_deploy(&rollout).as_ref(),
        policy: &rollout.plan.policy,
        timeouts: rollout.plan.timeouts,
        ramp: rollout.plan.ramp.as_ref().map(|ramp| RampLeft {
            ramp,
            weights: &left,
        }),
    })
    .map_err(config_error)?;
    refuse_names_in_use(world, &plan.steps, &rollout.servers).await?;
    if let ControlFlow::Break(ended) = show_or_approve(
        run_in,
        observer,
        PlanKind::Resume,
        rollout.revision,
        &plan,
        Vec::new(),
    )? {
        return Ok(ended);
    }
    rollout.steps = pending_steps(&plan);
    rollout.plan = plan;
    let mut runner = Runner::new(world, state, observer, cancel);
    Ok(Ended::Ran(runner.run(rollout).await?))
}

/// Undoes the unfinished rollout, else the last finished one — a deploy,
/// a rollback (so a second `rollback` undoes the first, as `docker service
/// rollback` swaps a service's spec and previous spec) or a live line edit
/// (its lines come back as they were); with `to`, redeploys what that
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
        // `--to` redeploys containers: the last rollout that replaced some is undone.
        None => history
            .iter()
            .rev()
            .find(|r| {
                upstream.is_none_or(|u| may_name_the_same_upstream(&r.upstream, u))
                    && r.status == Status::Done
                    && (request.to.is_none() || !r.plan.line_only())
            })
            .cloned()
            .context("no finished rollout to roll back")?,
    };
    if request.to.is_some() && of.plan.line_only() {
        bail!(
            "revision {} ({}) replaced no container: undo it with a plain `rollback` first",
            of.revision,
            of.kind
        );
    }
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
    // Replacements a killed run made and never swapped in: removed, their
    // servers untouched (nothing to undo there) unless pinned to nowhere.
    let mut of = of;
    let unswapped = match of.status.is_unfinished() {
        true => unswapped(&session.world, &of).await?,
        false => Vec::new(),
    };
    record_discarded(&mut of, &unswapped);
    if request.to.is_none() && of.status.is_unfinished() && changed_no_server(&of) {
        let world = &session.world;
        return close(
            world,
            state,
            observer,
            of,
            &unswapped,
            policy,
            request.dry_run,
        )
        .await;
    }
    let undo = undo_of(&session.world, state, &of, to, &policy).await?;
    // Locked even for a dry run, which only shows the plan.
    let run_in = (!request.dry_run).then_some(state);
    if let ControlFlow::Break(ended) = show_or_approve(
        run_in,
        observer,
        PlanKind::Rollback,
        undo.revision,
        &undo.plan,
        unswapped.iter().map(Unswapped::notice).collect(),
    )? {
        return Ok(ended);
    }
    if !unswapped.is_empty() {
        discard(&session.world, observer, &unswapped).await?;
        state.save(&of)?;
    }
    let mut runner = Runner::new(&session.world, state, observer, cancel);
    Ok(Ended::Ran(runner.start(undo).await?))
}

/// The one-off containers of the pre-deploys a killed run of `of` left
/// (exited). One still running its command (a migration goes on without
/// us) is not cut short: an error telling to wait, then run `command` again.
pub(super) async fn interrupted_pre_deploys(
    world: &DockerWorld,
    of: &Rollout<Desired>,
    command: &str,
) -> Result<Vec<String>> {
    let mut leftover = Vec::new();
    for (step, record) in of.plan.steps.iter().zip(&of.steps) {
        let Action::PreDeploy { job, .. } = &step.action else {
            continue;
        };
        if record.status != StepStatus::Running {
            continue;
        }
        let name = &job.container;
        match leftover_running(&world.docker, name).await? {
            Some(true) => bail!(
                "revision {}: its pre-deploy still runs in one-off container {name} (the killed \
                 run's command goes on); wait for it to end (`docker wait {name}`) or stop it, \
                 then run `{command}` again",
                of.revision
            ),
            Some(false) => leftover.push(name.clone()),
            None => {}
        }
    }
    Ok(leftover)
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
    if of.plan.line_only() {
        return undo_lines(world, state, of).await;
    }
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
        // it failed (its old container's pre-stop hook, or its replacement in
        // its monitor window: the swapped line pinned to nowhere), runs as its
        // replacement now.
        let (address, container) = match (rec.swapped_line(), &rec.replacement) {
            (Some(line), Some(name))
                if rec.state == ServerState::Done || up.line_for(&line).is_some() =>
            {
                (line, name.clone())
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
        // What `of`'s runs left for the server is the rollback's own; a
        // creation time proves it only under the names `of` made them under.
        let left = of.leftover_of(&rec.server);
        let leftover = if container == rec.container && replacement == rec.replacement {
            left
        } else {
            left.ids_only()
        };
        targets.push(Target {
            server: address.clone(),
            container: container.clone(),
            replacement: replacement.clone(),
            swapped: false,
            drained_by_us,
            dead,
            pinned: rec.pinned.clone(),
            via: Some(Via::Previous),
            hooks: hooks_of(&desired),
        });
        servers.push(ServerRecord {
            state: entry_state(drained_by_us),
            replacement,
            pinned: rec.pinned.clone(),
            leftover,
            ..ServerRecord::pending(address, container, rec.new_spec.clone(), desired)
        });
    }
    if targets.is_empty() && sets.is_empty() {
        bail!(
            "revision {} changed no server; nothing to roll back",
            of.revision
        );
    }
    // Never the pre-deploy hook: it prepared the version being undone.
    let left = of.weights_left();
    let plan = rolling_update(RollingUpdate {
        config: &config,
        upstream: &of.upstream,
        targets: &targets,
        sets: &sets,
        pre_deploy: None,
        policy,
        timeouts: of.plan.timeouts,
        ramp: of.plan.ramp.as_ref().map(|ramp| RampLeft {
            ramp,
            weights: &left,
        }),
    })
    .map_err(config_error)?;
    identify(world, &mut servers).await?;
    refuse_names_in_use(world, &plan.steps, &servers).await?;
    let origin = Origin {
        revision: state.next_revision()?,
        kind: RolloutKind::Rollback,
        undoes: Some(of.revision),
        command: &of.command,
        nginx: &world.nginx.name,
    };
    Ok(new_rollout(origin, plan, policy.clone(), servers))
}

/// A rollout that puts back the lines a line edit changed: the upstream's
/// contents as the journal's copy of the config had them before `of`, when
/// they still read as `of` left them (an edit made since is an error naming
/// its line, never overwritten).
async fn undo_lines(
    world: &DockerWorld,
    state: &StateDir,
    of: &Rollout<Desired>,
) -> Result<Rollout<Desired>> {
    let files: BTreeMap<_, _> = state.config_before(of)?.into_iter().collect();
    let main = of
        .config_before
        .first()
        .with_context(|| format!("revision {} kept no copy of the config", of.revision))?;
    let before = ConfigSet::load(&main.path, &MemFs(files))
        .with_context(|| format!("revision {}'s copy of the config", of.revision))?;
    // What the run left: its copy with the edits it made.
    let mut after = before.clone();
    for (step, record) in of.plan.steps.iter().zip(&of.steps) {
        if let (
            Action::Edit {
                upstream,
                changes,
                force,
            },
            StepStatus::Done,
        ) = (&step.action, record.status)
        {
            apply_changes_with(&mut after, upstream, changes, *force)?;
        }
    }
    let (before, after) = (
        before.upstream(&of.upstream)?.body,
        after.upstream(&of.upstream)?.body,
    );
    if before == after {
        bail!(
            "revision {} ({}) left upstream {} as it was: nothing to roll back",
            of.revision,
            of.kind,
            of.upstream
        );
    }
    let config = world.load_config().await?;
    let plan = revert_lines(
        &config,
        &of.upstream,
        &after,
        &before,
        of.plan.timeouts.drain,
    )
    .with_context(|| {
        format!(
            "cannot roll back revision {} ({}): its lines were edited since; edit them by hand",
            of.revision, of.kind
        )
    })?;
    let servers = of
        .servers
        .iter()
        .map(|r| ServerRecord {
            state: ServerState::Pending,
            error: None,
            ..r.clone()
        })
        .collect();
    let origin = Origin {
        revision: state.next_revision()?,
        kind: RolloutKind::Rollback,
        undoes: Some(of.revision),
        command: &of.command,
        nginx: &world.nginx.name,
    };
    Ok(new_rollout(
        origin,
        plan,
        of.rollback_policy.clone(),
        servers,
    ))
}
