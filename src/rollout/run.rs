//! Running a rollout: whether a plan runs at all (a dry run shows it, the
//! front end may decline it), the config snapshot, the executor, the
//! automatic rollback, the summary and the pruning of old revisions.
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::watch;

use super::desired::Desired;
use super::recover::undo_of;
use super::world::DockerWorld;
use crate::exec::{
    Event, Executor, Observer, Outcome, PlanKind, Rollout, RolloutKind, ServerRecord, ServerResult,
    ServerState, ServerSummary, StateDir, Status, StepRecord, StepStatus, World, time,
};
use crate::plan::{Plan, UpdateConfig};

/// How a use case that runs a plan ended.
#[derive(Debug)]
pub enum Ended {
    /// A dry run: what would run.
    Planned(Box<Planned>),
    /// The operator declined the plan; nothing ran.
    Declined,
    /// An unfinished rollout that changed no server, closed by `rollback`
    /// (its revision); nothing ran.
    Closed(u32),
    /// It ran; the rollout's final status.
    Ran(Report),
}

/// A plan shown instead of run.
#[derive(Debug)]
pub struct Planned {
    /// What it is the plan of.
    pub kind: crate::exec::PlanKind,
    /// The revision it continues (0 for a new one).
    pub revision: u32,
    /// The plan.
    pub plan: Plan,
    /// What the operator should know first (servers left alone and why,
    /// images the run would pull).
    pub notices: Vec<String>,
}

/// What a run left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The rollout's revision.
    pub revision: u32,
    /// How it ended.
    pub status: Status,
}

/// The one rule before a plan runs. A dry run (`run_in` is `None`) shows
/// the plan and ends there; otherwise the front end is told `notices` and
/// asked to approve `plan`, and a refusal ends the use case. `Continue`
/// carries the locked state directory to run the plan in.
pub(crate) fn show_or_approve<'s>(
    run_in: Option<&'s StateDir>,
    observer: &mut dyn Observer,
    kind: PlanKind,
    revision: u32,
    plan: &Plan,
    notices: Vec<String>,
) -> Result<ControlFlow<Ended, &'s StateDir>> {
    let Some(state) = run_in else {
        return Ok(ControlFlow::Break(Ended::Planned(Box::new(Planned {
            kind,
            revision,
            plan: plan.clone(),
            notices,
        }))));
    };
    for notice in &notices {
        observer.notice(notice);
    }
    if !observer.approve(kind, plan)? {
        return Ok(ControlFlow::Break(Ended::Declined));
    }
    Ok(ControlFlow::Continue(state))
}

/// A journaled run against the Docker world, reporting to one front end.
pub(crate) struct Runner<'a> {
    world: &'a DockerWorld,
    state: &'a StateDir,
    observer: &'a mut dyn Observer,
    cancel: watch::Receiver<bool>,
}

impl<'a> Runner<'a> {
    /// A run against `world`, journaled in `state` (locked), reporting to
    /// `observer`, stopping at a safe point once `cancel` turns true.
    pub fn new(
        world: &'a DockerWorld,
        state: &'a StateDir,
        observer: &'a mut dyn Observer,
        cancel: watch::Receiver<bool>,
    ) -> Self {
        Runner {
            world,
            state,
            observer,
            cancel,
        }
    }

    /// Starts a new rollout (saving the config files first) and runs it.
    pub async fn start(&mut self, mut rollout: Rollout<Desired>) -> Result<Report> {
        let config = self.world.load_config().await?;
        let files: Vec<_> = config
            .files()
            .map(|(p, b)| (p.to_path_buf(), b.to_vec()))
            .collect();
        rollout.config_before = self.state.save_config(rollout.revision, &files)?;
        self.run(rollout).await
    }

    /// Runs (or continues) a rollout, rolls it back when its failure action
    /// says so, and reports it.
    pub async fn run(&mut self, rollout: Rollout<Desired>) -> Result<Report> {
        let started = Instant::now();
        self.observer.event(&Event::Plan {
            revision: rollout.revision,
            kind: rollout.kind.into(),
            plan: Box::new(rollout.plan.clone()),
        });
        let mut exec = Executor::new(
            self.world,
            &mut *self.observer,
            self.state,
            rollout,
            self.cancel.clone(),
        );
        let outcome = exec.run().await?;
        let (mut rollout, reloads, healthy) = (exec.rollout, exec.reloads, exec.time_to_healthy);
        // A rollback that ends done, on its first run or resumed, finishes what
        // it undoes (a record pruned or unreadable since: `unfinished` tells).
        if let (RolloutKind::Rollback, Status::Done, Some(undone)) =
            (rollout.kind, rollout.status, rollout.undoes)
        {
            let marked = self.state.load::<Desired>(undone).and_then(|mut of| {
                of.status = Status::RolledBack;
                self.state.save(&of)
            });
            if let Err(e) = marked {
                tracing::warn!("revision {undone}, undone: not marked rolled back: {e:#}");
            }
        }
        let mut reason = outcome.reason();
        if let Outcome::RollbackRequested(why) = &outcome
            && rollout.status != Status::Cancelled
        {
            if rollout.kind == RolloutKind::Rollback {
                reason = Some(format!("{why}; a rollback is never rolled back"));
            } else {
                self.observer.event(&Event::Rollback {
                    reason: why.clone(),
                });
                let undo = undo_of(
                    self.world,
                    self.state,
                    &rollout,
                    None,
                    &rollout.rollback_policy,
                )
                .await?;
                let undo_revision = undo.revision;
                let undone = Box::pin(self.start(undo)).await?;
                rollout.status = if undone.status == Status::Done {
                    Status::RolledBack
                } else {
                    Status::Failed
                };
                rollout.reason = Some(format!("{why}; rolled back by revision {undo_revision}"));
                self.state.save(&rollout)?;
                reason = rollout.reason.clone();
            }
        }
        self.observer.event(&Event::Summary {
            revision: rollout.revision,
            status: rollout.status,
            servers: summarize(&rollout, &healthy),
            reloads,
            seconds: started.elapsed().as_secs_f64(),
            reason,
            closed: false,
        });
        self.state.prune()?;
        Ok(Report {
            revision: rollout.revision,
            status: rollout.status,
        })
    }
}

/// Where a new rollout comes from: its number, what it is, and who made it.
pub(crate) struct Origin<'a> {
    /// Its revision number.
    pub revision: u32,
    /// What it is.
    pub kind: RolloutKind,
    /// For a rollback, the revision it undoes.
    pub undoes: Option<u32>,
    /// The command line that made it.
    pub command: &'a str,
    /// The nginx container.
    pub nginx: &'a str,
}

/// A fresh rollout record for `plan`, every step pending.
pub(crate) fn new_rollout(
    origin: Origin<'_>,
    plan: Plan,
    rollback_policy: UpdateConfig,
    servers: Vec<ServerRecord<Desired>>,
) -> Rollout<Desired> {
    Rollout {
        revision: origin.revision,
        kind: origin.kind,
        undoes: origin.undoes,
        command: origin.command.into(),
        started_at: time::now(),
        finished_at: None,
        status: Status::Running,
        reason: None,
        nginx: origin.nginx.into(),
        upstream: plan.upstream.clone(),
        config_before: Vec::new(),
        servers,
        steps: pending_steps(&plan),
        plan,
        rollback_policy,
        runs: 0,
    }
}

/// One pending record per step of `plan`.
pub(crate) fn pending_steps(plan: &Plan) -> Vec<StepRecord> {
    vec![
        StepRecord {
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            error: None
        };
        plan.steps.len()
    ]
}

/// The events of `rollout`, closed without running in `seconds` (see
/// `rollback`): its `plan`, which has no step, and its summary, every
/// server as its record leaves it, no reload, `closed`.
pub(super) fn report_closed(
    observer: &mut dyn Observer,
    rollout: &Rollout<Desired>,
    plan: &Plan,
    seconds: Duration,
) {
    observer.event(&Event::Plan {
        revision: rollout.revision,
        kind: PlanKind::Rollback,
        plan: Box::new(plan.clone()),
    });
    observer.event(&Event::Summary {
        revision: rollout.revision,
        status: rollout.status,
        servers: summarize(rollout, &HashMap::new()),
        reloads: 0,
        seconds: seconds.as_secs_f64(),
        reason: rollout.reason.clone(),
        closed: true,
    });
}

fn summarize(rollout: &Rollout<Desired>, healthy: &HashMap<String, f64>) -> Vec<ServerSummary> {
    let image = |spec: &Option<Desired>| spec.as_ref().map_or("", Desired::image).to_string();
    rollout
        .servers
        .iter()
        .map(|s| ServerSummary {
            server: s.server.clone(),
            old_image: image(&s.old_spec),
            new_image: image(&s.new_spec),
            seconds_to_healthy: healthy.get(&s.server).copied(),
            result: match s.state {
                ServerState::Done => ServerResult::Updated,
                ServerState::Failed => ServerResult::Failed,
                ServerState::Pending => ServerResult::Pending,
                _ => ServerResult::InProgress,
            },
        })
        .collect()
}
