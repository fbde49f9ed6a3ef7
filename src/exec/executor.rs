//! The one executor: runs a plan's steps against a [`World`], asks the
//! [`Observer`] before each step, and journals every change before it happens.
//! This file holds its type, the step loop, how a run ends and the failure
//! accounting; each kind of step is a method in a sibling file: `edit.rs`
//! (edits, reloads), `replace.rs` (containers), `wait.rs` (drained, healthy,
//! delay), `monitor.rs`, `canary.rs` and `hooks.rs`.
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::future::join;
use tokio::sync::watch;

use super::event::{Decision, Event, Observer, StepResult};
use super::journal::{Rollout, RolloutKind, ServerState, Status, StepStatus, time};
use super::leftover::Leftover;
use super::replace::prepare_ahead;
use super::state_dir::StateDir;
use super::world::{Unreachable, World};
use crate::conf::FileChange;
use crate::plan::{Action, FailureAction, Gate, HookKind, ServerChange, Step};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step done.
    Done,
    /// Stopped where it was (failure action `pause`, or the operator quit); resumable.
    Paused(String),
    /// Failed for a reason that is not a server's (nginx, Docker, a drain timeout).
    Failed(String),
    /// Stopped by SIGINT/SIGTERM.
    Interrupted,
    /// The failure action (or the operator) asks for a rollback.
    RollbackRequested(String),
}

impl Outcome {
    /// The journal status this outcome leaves.
    pub fn status(&self) -> Status {
        match self {
            Outcome::Done => Status::Done,
            Outcome::Paused(_) => Status::Paused,
            Outcome::Failed(_) | Outcome::RollbackRequested(_) => Status::Failed,
            Outcome::Interrupted => Status::Interrupted,
        }
    }

    /// Why it did not finish.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Done => None,
            Outcome::Paused(r) | Outcome::Failed(r) | Outcome::RollbackRequested(r) => {
                Some(r.clone())
            }
            Outcome::Interrupted => Some("interrupted by a signal".into()),
        }
    }
}

/// A step's failure.
pub(super) enum StepError {
    /// These servers failed (health, recreate, monitor); the rollout may go on.
    Servers(Vec<(String, String)>),
    /// Nothing sensible can follow.
    Fatal(anyhow::Error),
    /// A signal arrived during a wait.
    Interrupted,
    /// A new container failed during a wait (see `Executor::watching`) and
    /// that fired the failure action: what it fired.
    Stopped(Outcome),
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError::Fatal(e)
    }
}

/// Runs one rollout.
pub struct Executor<'a, W: World, O: Observer + ?Sized> {
    pub(super) world: &'a W,
    pub(super) observer: &'a mut O,
    state: &'a StateDir,
    /// The rollout's record; saved after every change.
    pub rollout: Rollout<W::Spec>,
    cancel: watch::Receiver<bool>,
    /// The files of the last edit, as they were before it (restored if `nginx -t` fails).
    pub(super) last_edit: Vec<FileChange>,
    /// Servers the last edit changed, applied to the journal once the reload succeeds.
    pub(super) last_edit_changes: Vec<ServerChange>,
    /// The states the last edit's drains replaced, put back if `nginx -t` rejects it.
    pub(super) last_edit_drained: Vec<(String, ServerState)>,
    /// The edit steps (plan positions) whose writes the last edit holds:
    /// pending again if `nginx -t` rejects it, so a resume writes them again.
    pub(super) last_edit_steps: Vec<usize>,
    /// The workers reloads replaced since the last wait for them to exit.
    pub(super) old_workers: Vec<u32>,
    /// Reloads done by this run.
    pub reloads: usize,
    /// Seconds from replacement start to healthy, per server.
    pub time_to_healthy: HashMap<String, f64>,
    /// When each server's replacement began (for `time_to_healthy`).
    pub(super) replace_started: HashMap<String, Instant>,
    /// The stop-old step this run performed last, and when it began (for a
    /// delay counted from the old containers' stop).
    pub(super) stop_requested: Option<(usize, tokio::time::Instant)>,
    /// New containers checked after their monitor window ended and found
    /// sound: they are not checked again (a later failure is not the update's).
    pub(super) settled: HashSet<String>,
}

impl<'a, W: World, O: Observer + ?Sized> Executor<'a, W, O> {
    /// An executor for `rollout`, asking `observer` before each step.
    pub fn new(
        world: &'a W,
        observer: &'a mut O,
        state: &'a StateDir,
        rollout: Rollout<W::Spec>,
        cancel: watch::Receiver<bool>,
    ) -> Self {
        Executor {
            world,
            observer,
            state,
            rollout,
            cancel,
            last_edit: Vec::new(),
            last_edit_changes: Vec::new(),
            last_edit_drained: Vec::new(),
            last_edit_steps: Vec::new(),
            old_workers: Vec::new(),
            reloads: 0,
            time_to_healthy: HashMap::new(),
            replace_started: HashMap::new(),
            stop_requested: None,
            settled: HashSet::new(),
        }
    }

    pub(super) fn save(&self) -> Result<()> {
        self.state.save(&self.rollout)
    }

    /// `e`, saying first that the world stopped answering when it did.
    pub(super) fn explained(&self, e: anyhow::Error) -> anyhow::Error {
        if self.world.is_unreachable(&e) && e.downcast_ref::<Unreachable>().is_none() {
            e.context(Unreachable)
        } else {
            e
        }
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// No reload happened, no edit is left on disk and no server was touched.
    fn changed_nothing(&self) -> bool {
        self.reloads == 0
            && self.last_edit.is_empty()
            && self
                .rollout
                .servers
                .iter()
                .all(|s| s.state == ServerState::Pending)
    }

    /// How many servers this run's plan updates, the failure ratio's
    /// denominator: its targets and its replica sets' slots. A resumed
    /// rollout's new plan holds only those not done before, so its ratio
    /// starts fresh, as a new Swarm update counts only the slots still to
    /// update. A plan that updates none (a line edit; a resume left only
    /// the watch of the last batch): its records.
    fn to_update(&self) -> usize {
        let plan = &self.rollout.plan;
        match plan.targets.len() + plan.sets.iter().map(|s| s.slots.len()).sum::<usize>() {
            0 => self.rollout.servers.len(),
            n => n,
        }
    }

    /// Servers failed in this run: a resumed rollout puts those failed
    /// before back to pending.
    /// Its first run, which [`Self::changed_nothing`] and ran no step.
    fn ran_nothing(&self) -> bool {
        self.rollout.runs == 1
            && self.changed_nothing()
            && (self.rollout.steps.iter()).all(|s| !s.status.begun())
    }

    fn failures(&self) -> usize {
        self.rollout
            .servers
            .iter()
            .filter(|s| s.state == ServerState::Failed)
            .count()
    }

    /// Runs every step not yet done, then records how it ended.
    pub async fn run(&mut self) -> Result<Outcome> {
        self.rollout.status = Status::Running;
        self.rollout.runs = self.rollout.runs.saturating_add(1);
        self.save()?;
        let outcome = self.run_steps().await;
        let containers: Vec<(String, Leftover)> = self
            .rollout
            .servers
            .iter()
            .map(|s| (s.container.clone(), s.ours()))
            .collect();
        self.world.discard_prepared(&containers).await;
        let outcome = outcome?;
        if outcome != Outcome::Done {
            self.discard_unswapped().await;
        }
        match outcome {
            // Undo what can be undone: drained servers whose old container is untouched go back.
            Outcome::Interrupted | Outcome::Paused(_) => self.settle(true).await?,
            // Changed nothing, or a rollback follows (its plan buries what is gone).
            Outcome::Failed(_) if !self.changed_nothing() => self.settle(false).await?,
            _ => {}
        }
        self.rollout.status = match outcome {
            Outcome::Failed(_) if self.changed_nothing() => Status::Rejected,
            Outcome::Interrupted | Outcome::Paused(_) | Outcome::RollbackRequested(_)
                if self.ran_nothing() =>
            {
                Status::Cancelled
            }
            _ => outcome.status(),
        };
        self.rollout.reason = outcome.reason();
        self.rollout.finished_at = Some(time::now());
        self.save()?;
        Ok(outcome)
    }

    async fn run_steps(&mut self) -> Result<Outcome> {
        // A pause found while a batch's new containers are not waited for
        // yet: it takes effect once they are (see `finishes_batch`).
        let mut pausing: Option<Outcome> = None;
        for i in 0..self.rollout.plan.steps.len() {
            if matches!(
                self.rollout.steps[i].status,
                StepStatus::Done | StepStatus::Skipped
            ) {
                continue;
            }
            let step = self.rollout.plan.steps[i].clone();
            match pausing.take() {
                Some(outcome) if !self.finishes_batch(&step) => return Ok(outcome),
                Some(outcome) => {
                    // The batch goes on as it would have: a new container that
                    // failed since is counted and taken out (not swapped in).
                    self.check_monitors().await?;
                    pausing = Some(outcome);
                }
                None => {
                    if let Some(outcome) = self.check_monitors().await? {
                        if !matches!(outcome, Outcome::Paused(_)) || !self.finishes_batch(&step) {
                            return Ok(outcome);
                        }
                        pausing = Some(outcome);
                    }
                }
            }
            if self.cancelled() {
                return Ok(Outcome::Interrupted);
            }
            match self.observer.confirm(&step) {
                Decision::Yes | Decision::All => {}
                Decision::Skip => {
                    self.rollout.steps[i].status = StepStatus::Skipped;
                    self.save()?;
                    self.observer.event(&Event::StepFinish {
                        index: step.index,
                        result: StepResult::Skipped,
                        seconds: 0.0,
                        error: None,
                    });
                    continue;
                }
                Decision::Quit => return Ok(Outcome::Paused("stopped by the operator".into())),
                // A rollback is never rolled back: it pauses, as Swarm's does.
                Decision::Rollback if self.rollout.kind == RolloutKind::Rollback => {
                    return Ok(Outcome::Paused(
                        "rollback asked by the operator during a rollback, which is never \
                         rolled back: paused"
                            .into(),
                    ));
                }
                Decision::Rollback => {
                    return Ok(Outcome::RollbackRequested("asked by the operator".into()));
                }
            }
            self.rollout.steps[i].status = StepStatus::Running;
            self.rollout.steps[i].started_at = Some(time::now());
            self.rollout.steps[i].finished_at = None;
            self.save()?;
            self.observer
                .event(&Event::StepStart { step: step.clone() });
            let started = Instant::now();
            let result = self.perform(&step).await;
            let seconds = started.elapsed().as_secs_f64();
            let (status, error) = match &result {
                Ok(()) => (StepStatus::Done, None),
                Err(StepError::Servers(f)) => (
                    StepStatus::Failed,
                    Some(
                        f.iter()
                            .map(|(s, r)| format!("{s}: {r}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                ),
                Err(StepError::Fatal(e)) => (StepStatus::Failed, Some(format!("{e:#}"))),
                Err(StepError::Interrupted) => (StepStatus::Failed, Some("interrupted".into())),
                Err(StepError::Stopped(outcome)) => (
                    StepStatus::Failed,
                    Some(format!(
                        "stopped: {}",
                        outcome.reason().unwrap_or_else(|| "a failure".into())
                    )),
                ),
            };
            self.rollout.steps[i].status = status;
            self.rollout.steps[i].finished_at = Some(time::now());
            self.rollout.steps[i].error = error.clone();
            if status == StepStatus::Done && matches!(step.action, Action::Edit { .. }) {
                self.last_edit_steps.push(i);
            }
            self.save()?;
            self.observer.event(&Event::StepFinish {
                index: step.index,
                result: if status == StepStatus::Done {
                    StepResult::Done
                } else {
                    StepResult::Failed
                },
                seconds,
                error: error.clone(),
            });
            match result {
                Ok(()) => {
                    if let Action::Canary {
                        server,
                        share,
                        gate: Gate::Pause,
                    } = &step.action
                        && !self.is_failed(&server.server)
                    {
                        return Ok(Outcome::Paused(format!(
                            "canary {} takes {share} of the traffic: `nginx-rollout resume` goes on, \
                             `nginx-rollout rollback` undoes the deploy",
                            server.server
                        )));
                    }
                }
                Err(StepError::Servers(failed)) => match self.record_failures(failed)? {
                    Some(outcome @ Outcome::Paused(_)) => pausing = Some(outcome),
                    Some(outcome) => return Ok(outcome),
                    None => {}
                },
                Err(StepError::Fatal(e)) => {
                    let e = self.explained(e);
                    return Ok(Outcome::Failed(format!(
                        "step {} ({}) failed: {e:#}",
                        step.index,
                        step.action.kind()
                    )));
                }
                Err(StepError::Interrupted) => return Ok(Outcome::Interrupted),
                Err(StepError::Stopped(outcome @ Outcome::Paused(_))) => pausing = Some(outcome),
                Err(StepError::Stopped(outcome)) => return Ok(outcome),
            }
        }
        match pausing {
            Some(outcome) => Ok(outcome),
            None => Ok(self.check_monitors().await?.unwrap_or(Outcome::Done)),
        }
    }

    /// Whether a pause waits for any of `servers` before it takes effect:
    /// its new container started and not healthy yet. Once healthy, its
    /// line is put back (see `settle`) or, started first beside the old
    /// container, its batch swaps it in (see [`Self::swaps_healthy`]).
    /// Swarm's pause lets the slots it handed out finish; their servers then
    /// serve while it lasts, and `resume` does not replace them again.
    pub(super) fn awaited_by_pause<'s>(&self, mut servers: impl Iterator<Item = &'s str>) -> bool {
        servers.any(|s| {
            self.rollout
                .server(s)
                .is_some_and(|r| r.state == ServerState::Replacing && r.new_container.is_some())
        })
    }

    /// Whether the step numbered `index` swaps healthy replacements in: it
    /// is a start-first batch's stop of its old containers, or a step
    /// between its health wait and that stop (the edit that points single
    /// servers' lines at the replacements, or adds new replicas' lines and
    /// drains the old ones', its reload, the wait for the old workers, the
    /// pre-stop hooks), and a server that stop names is being swapped in
    /// (`ServerRecord::being_swapped_in`). A pause lets these steps run as
    /// the plan has them (they skip the batch's failed servers, as ever), so
    /// the batch ends as it would have; not a replica set's edit that puts
    /// the operator's line back after its last stop: the set stays pinned.
    pub(super) fn swaps_healthy(&self, index: usize) -> bool {
        let stop = self
            .rollout
            .plan
            .steps
            .iter()
            .filter(|s| s.index >= index)
            .find(|s| {
                !matches!(
                    s.action,
                    Action::Edit { .. }
                        | Action::Reload
                        | Action::WaitDrained { .. }
                        | Action::PreStop { .. }
                )
            });
        let Some(Action::StopOld { servers }) = stop.map(|s| &s.action) else {
            return false;
        };
        servers.iter().any(|s| {
            self.rollout
                .server(&s.server)
                .is_some_and(|r| r.being_swapped_in())
        })
    }

    /// Whether `step` finishes a batch a pause waits for: the post-start
    /// hooks or the health wait of [`Self::awaited_by_pause`] servers, or a
    /// step that [swaps healthy replacements in](Self::swaps_healthy).
    fn finishes_batch(&self, step: &Step) -> bool {
        match &step.action {
            Action::PostStart { runs, .. } => {
                self.awaited_by_pause(runs.iter().map(|r| r.server.server.as_str()))
            }
            Action::WaitHealthy { servers, .. } => {
                self.awaited_by_pause(servers.iter().map(|s| s.server.as_str()))
            }
            _ => self.swaps_healthy(step.index),
        }
    }

    /// Marks servers failed, reports them, and applies the failure action if the ratio is exceeded.
    pub(super) fn record_failures(
        &mut self,
        failed: Vec<(String, String)>,
    ) -> Result<Option<Outcome>> {
        let total = self.to_update();
        for (server, reason) in &failed {
            if let Some(rec) = self.rollout.server_mut(server) {
                rec.state = ServerState::Failed;
                rec.error = Some(reason.clone());
            }
            let failures = self.failures();
            self.observer.event(&Event::Failure {
                server: server.clone(),
                reason: reason.clone(),
                failures,
                total,
            });
        }
        self.save()?;
        let policy = &self.rollout.plan.policy;
        if !policy.ratio_exceeded(self.failures(), total) {
            return Ok(None);
        }
        let summary = failed
            .iter()
            .map(|(s, r)| format!("{s}: {r}"))
            .collect::<Vec<_>>()
            .join("; ");
        let reason = format!(
            "{} of {total} servers failed (max-failure-ratio {}): {summary}",
            self.failures(),
            policy.max_failure_ratio.value
        );
        Ok(match policy.failure_action.value {
            FailureAction::Continue => None,
            FailureAction::Pause => Some(Outcome::Paused(reason)),
            FailureAction::Rollback => Some(Outcome::RollbackRequested(reason)),
        })
    }

    /// Runs one step with the method for its kind.
    async fn perform(&mut self, step: &Step) -> Result<(), StepError> {
        match &step.action {
            Action::Edit {
                upstream,
                changes,
                force,
            } => self.edit(upstream, changes, *force).await,
            Action::Reload => {
                // A drain's replacements are created while nginx tests and
                // reloads (tens of ms each on the way to the old container's stop).
                let world = self.world;
                let ahead = prepare_ahead(world, self.recreated_next(step.index));
                join(self.reload(), ahead).await.0
            }
            Action::WaitDrained { timeout } => self.wait_drained(step.index, *timeout).await,
            Action::Canary {
                server,
                share,
                gate,
            } => self.canary(step.index, server, *share, *gate).await,
            Action::Recreate { servers } => self.replace_all(servers, false).await,
            Action::StartNew { servers } => self.replace_all(servers, true).await,
            Action::StopOld { servers } => self.stop_old(step.index, servers).await,
            Action::WaitHealthy { servers, timeout } => {
                self.wait_healthy(step.index, servers, *timeout).await
            }
            Action::Monitor { .. } => self.monitor(step.index).await,
            Action::Delay {
                duration,
                from_stop,
            } => self.delay(step.index, *duration, *from_stop).await,
            Action::PreDeploy { job, timeout } => self.pre_deploy(step.index, job, *timeout).await,
            Action::PostStart { runs, timeout } => {
                self.run_hooks(step.index, HookKind::PostStart, runs, *timeout)
                    .await
            }
            Action::PreStop { runs, timeout } => {
                self.run_hooks(step.index, HookKind::PreStop, runs, *timeout)
                    .await
            }
        }
    }

    pub(super) fn is_failed(&self, server: &str) -> bool {
        self.rollout
            .servers
            .iter()
            .any(|s| s.server == server && s.state == ServerState::Failed)
    }

    /// Tells the front end a wait begins (it shows a spinner until the step ends).
    pub(super) fn announce_wait(&mut self, index: usize, what: &str, timeout: Duration) {
        self.observer.event(&Event::Wait {
            index,
            what: what.into(),
            timeout_seconds: timeout.as_secs_f64(),
        });
    }

    /// Runs `fut` unless a signal arrives first.
    pub(super) async fn until_cancelled<T>(
        &self,
        fut: impl Future<Output = T>,
    ) -> Result<T, StepError> {
        let mut cancel = self.cancel.clone();
        tokio::select! {
            out = fut => Ok(out),
            _ = cancel.wait_for(|c| *c) => Err(StepError::Interrupted),
        }
    }
}
