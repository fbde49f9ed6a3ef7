//! The one executor: runs a plan's steps against a [`World`], asks the
//! [`Observer`] before each step, and journals every change before it happens.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use futures_util::future::{join, join_all};
use tokio::sync::watch;

use super::event::{Decision, Event, HealthVerdict, Observer, StepResult};
use super::journal::{Rollout, ServerState, StateDir, Status, StepStatus, time};
use super::world::{Unreachable, World};
use crate::conf::{Address, FileChange, FileChanged, NOWHERE, PinnedLine};
use crate::plan::{
    Action, FailureAction, Gate, HookCommand, HookExit, HookKind, HookRun, Order, PreDeploy,
    ServerChange, ServerRef, Share, Step, apply_changes_with,
};

/// How often a held canary's container is looked at.
const CANARY_POLL: Duration = Duration::from_secs(1);

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
enum StepError {
    /// These servers failed (health, recreate, monitor); the rollout may go on.
    Servers(Vec<(String, String)>),
    /// Nothing sensible can follow.
    Fatal(anyhow::Error),
    /// A signal arrived during a wait.
    Interrupted,
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError::Fatal(e)
    }
}

/// Runs one rollout.
pub struct Executor<'a, W: World, O: Observer + ?Sized> {
    world: &'a W,
    observer: &'a mut O,
    state: &'a StateDir,
    /// The rollout's record; saved after every change.
    pub rollout: Rollout<W::Spec>,
    cancel: watch::Receiver<bool>,
    /// The files of the last edit, as they were before it (restored if `nginx -t` fails).
    last_edit: Vec<FileChange>,
    /// Servers the last edit changed, applied to the journal once the reload succeeds.
    last_edit_changes: Vec<ServerChange>,
    old_workers: Vec<u32>,
    /// Reloads done by this run.
    pub reloads: usize,
    /// Seconds from replacement start to healthy, per server.
    pub time_to_healthy: HashMap<String, f64>,
    replace_started: HashMap<String, Instant>,
    /// The stop-old step this run performed last, and when it began (for a
    /// delay counted from the old containers' stop).
    stop_requested: Option<(usize, tokio::time::Instant)>,
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
            old_workers: Vec::new(),
            reloads: 0,
            time_to_healthy: HashMap::new(),
            replace_started: HashMap::new(),
            stop_requested: None,
        }
    }

    fn save(&self) -> Result<()> {
        self.state.save(&self.rollout)
    }

    /// `e`, saying first that the world stopped answering when it did.
    fn explained(&self, e: anyhow::Error) -> anyhow::Error {
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
        self.save()?;
        let outcome = self.run_steps().await;
        let containers: Vec<String> = self
            .rollout
            .servers
            .iter()
            .map(|s| s.container.clone())
            .collect();
        self.world.discard_prepared(&containers).await;
        let outcome = outcome?;
        let outcome = match outcome {
            Outcome::Interrupted | Outcome::Paused(_) => {
                // Undo what can be undone: drained servers whose old container is untouched go back.
                self.undo_untouched_drains().await?;
                outcome
            }
            other => other,
        };
        self.rollout.status = match outcome {
            Outcome::Failed(_) if self.changed_nothing() => Status::Rejected,
            _ => outcome.status(),
        };
        self.rollout.reason = outcome.reason();
        self.rollout.finished_at = Some(time::now());
        self.save()?;
        Ok(outcome)
    }

    async fn run_steps(&mut self) -> Result<Outcome> {
        for i in 0..self.rollout.plan.steps.len() {
            if matches!(
                self.rollout.steps[i].status,
                StepStatus::Done | StepStatus::Skipped
            ) {
                continue;
            }
            if let Some(outcome) = self.check_monitors().await? {
                return Ok(outcome);
            }
            if self.cancelled() {
                return Ok(Outcome::Interrupted);
            }
            let step = self.rollout.plan.steps[i].clone();
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
                Decision::Rollback => {
                    return Ok(Outcome::RollbackRequested("asked by the operator".into()));
                }
            }
            self.rollout.steps[i].status = StepStatus::Running;
            self.rollout.steps[i].started_at = Some(time::now());
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
            };
            self.rollout.steps[i].status = status;
            self.rollout.steps[i].finished_at = Some(time::now());
            self.rollout.steps[i].error = error.clone();
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
                Err(StepError::Servers(failed)) => {
                    if let Some(outcome) = self.record_failures(failed)? {
                        return Ok(outcome);
                    }
                }
                Err(StepError::Fatal(e)) => {
                    let e = self.explained(e);
                    return Ok(Outcome::Failed(format!(
                        "step {} ({}) failed: {e:#}",
                        step.index,
                        step.action.kind()
                    )));
                }
                Err(StepError::Interrupted) => return Ok(Outcome::Interrupted),
            }
        }
        Ok(self.check_monitors().await?.unwrap_or(Outcome::Done))
    }

    /// Marks servers failed, reports them, and applies the failure action if the ratio is exceeded.
    fn record_failures(&mut self, failed: Vec<(String, String)>) -> Result<Option<Outcome>> {
        let total = self.rollout.servers.len();
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
            Action::Reload => self.reload().await,
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
            Action::Monitor { window } => self.monitor(step.index, *window).await,
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

    /// Stops the old containers of a batch one after another, each server
    /// done once its old container stopped; servers failed already are skipped.
    async fn stop_old(&mut self, index: usize, servers: &[ServerRef]) -> Result<(), StepError> {
        self.stop_requested = Some((index, tokio::time::Instant::now()));
        for s in servers {
            if self.is_failed(&s.server) {
                continue;
            }
            self.world.stop_old(&s.container).await?;
            if let Some(rec) = self.rollout.server_mut(&s.server) {
                rec.state = ServerState::Done;
            }
            self.save()?;
        }
        Ok(())
    }

    /// Creates ahead the replacements of the step after `index` if it is a
    /// recreate (pre-stop hooks between count as nothing); one that cannot be
    /// is only logged, the recreate creates it then.
    async fn prepare_next(&self, index: usize) {
        let ahead = self.recreated_next(index);
        let world = self.world;
        join_all(ahead.iter().map(|(s, spec)| async move {
            if let Err(e) = world.prepare(s, spec).await {
                tracing::debug!("{}: not created ahead: {e:#}", s.container);
            }
        }))
        .await;
    }

    /// The servers (with their specs) that the steps after `index` recreate
    /// stop-first, if the next step other than a pre-stop hook is a recreate.
    fn recreated_next(&self, index: usize) -> Vec<(ServerRef, W::Spec)> {
        let next = self
            .rollout
            .plan
            .steps
            .iter()
            .filter(|s| s.index > index)
            .find(|s| !matches!(s.action, Action::PreStop { .. }));
        let Some(Action::Recreate { servers }) = next.map(|s| &s.action) else {
            return Vec::new();
        };
        servers
            .iter()
            .filter(|s| !self.is_failed(&s.server))
            .filter_map(|s| {
                let rec = self.rollout.servers.iter().find(|r| r.server == s.server)?;
                Some((s.clone(), rec.new_spec.clone()?))
            })
            .collect()
    }

    /// What is left of the delay of step `index`: all of it, unless it counts
    /// from the stop of the old containers and this run began that stop in
    /// the step just before (a resumed run waits it in full).
    fn delay_left(&self, index: usize, duration: Duration, from_stop: bool) -> Duration {
        match self.stop_requested {
            Some((stop, at)) if from_stop && stop + 1 == index => {
                duration.saturating_sub(at.elapsed())
            }
            _ => duration,
        }
    }

    /// Waits for the workers the last reload replaced to exit; the
    /// replacements of the next step are created meanwhile.
    async fn wait_drained(&mut self, index: usize, timeout: Duration) -> Result<(), StepError> {
        self.announce_wait(index, "old nginx workers to exit", timeout);
        let old = self.old_workers.clone();
        let prepare = self.prepare_next(index);
        let (drained, _) = self
            .until_cancelled(join(self.world.wait_drained(&old, timeout), prepare))
            .await?;
        drained.map_err(StepError::Fatal)
    }

    /// Waits out what is left of the delay between batches.
    async fn delay(
        &mut self,
        index: usize,
        duration: Duration,
        from_stop: bool,
    ) -> Result<(), StepError> {
        let left = self.delay_left(index, duration, from_stop);
        self.announce_wait(index, "the delay between batches", left);
        self.until_cancelled(tokio::time::sleep(left)).await
    }

    fn is_failed(&self, server: &str) -> bool {
        self.rollout
            .servers
            .iter()
            .any(|s| s.server == server && s.state == ServerState::Failed)
    }

    /// Tells the front end a wait begins (it shows a spinner until the step ends).
    fn announce_wait(&mut self, index: usize, what: &str, timeout: Duration) {
        self.observer.event(&Event::Wait {
            index,
            what: what.into(),
            timeout_seconds: timeout.as_secs_f64(),
        });
    }

    /// Runs `fut` unless a signal arrives first.
    async fn until_cancelled<T>(&self, fut: impl Future<Output = T>) -> Result<T, StepError> {
        let mut cancel = self.cancel.clone();
        tokio::select! {
            out = fut => Ok(out),
            _ = cancel.wait_for(|c| *c) => Err(StepError::Interrupted),
        }
    }

    /// Applies server-line changes to the live config files (journaling drains first).
    async fn edit(
        &mut self,
        upstream: &str,
        changes: &[ServerChange],
        force: bool,
    ) -> Result<(), StepError> {
        // A failed server stays out of the upstream (its new container is not
        // serving), and the old replica of a failed slot keeps serving.
        let changes: Vec<ServerChange> = changes
            .iter()
            .filter(|c| match c {
                ServerChange::Restore { server }
                | ServerChange::Replace { server, .. }
                | ServerChange::Drain { server }
                | ServerChange::Unpin { server, .. }
                | ServerChange::Add { slot: server, .. } => !self.is_failed(server),
                // A failed canary's weight went back when it was taken out.
                ServerChange::Weight { server, .. } => !self.is_failed(server),
                // The operator's own edits.
                ServerChange::Pin { .. }
                | ServerChange::Bury { .. }
                | ServerChange::AddServer { .. }
                | ServerChange::Remove { .. }
                | ServerChange::Revert { .. } => true,
            })
            .cloned()
            .collect();
        let mut drained = Vec::new();
        for c in &changes {
            if let ServerChange::Drain { server } = c
                && let Some(rec) = self.rollout.server_mut(server)
            {
                drained.push((server.clone(), rec.state));
                rec.state = ServerState::Drained;
            }
        }
        self.save()?;
        // A file someone else changed between our read and our write is read
        // and spliced again (the world writes only over the bytes we read).
        let mut attempts = 0;
        let written = loop {
            let mut config = self.world.load_config().await?;
            let before = config.clone();
            if let Err(e) = apply_changes_with(&mut config, upstream, &changes, force) {
                // Nothing was written: the journal must not claim a drain that did not happen.
                for (server, state) in drained {
                    if let Some(rec) = self.rollout.server_mut(&server) {
                        rec.state = state;
                    }
                }
                self.save()?;
                return Err(StepError::Fatal(e.into()));
            }
            let written = config.changes_since(&before);
            match self.world.write_config(&written).await {
                Err(e) if FileChanged::is_cause_of(e.as_ref()) && attempts < 3 => attempts += 1,
                Err(e) => return Err(e.into()),
                Ok(()) => break written,
            }
        };
        self.last_edit = written;
        self.last_edit_changes = changes;
        Ok(())
    }

    /// `nginx -t` (restoring the edit byte for byte if it fails), reload, confirm.
    async fn reload(&mut self) -> Result<(), StepError> {
        if let Err(e) = self.world.test_config().await {
            let undo: Vec<FileChange> = self
                .last_edit
                .iter()
                .map(|c| FileChange {
                    path: c.path.clone(),
                    before: c.after.clone(),
                    after: c.before.clone(),
                })
                .collect();
            self.world.write_config(&undo).await?;
            self.last_edit.clear();
            for c in std::mem::take(&mut self.last_edit_changes) {
                if let ServerChange::Drain { server } = c
                    && let Some(rec) = self.rollout.server_mut(&server)
                {
                    rec.state = ServerState::Pending;
                }
            }
            self.save()?;
            let e = self.explained(e);
            return Err(StepError::Fatal(anyhow!(
                "{e:#}\nthe config was restored byte for byte; nginx was not reloaded"
            )));
        }
        let reloaded = self.world.reload().await?;
        self.reloads += 1;
        self.observer.event(&Event::Reload {
            old_workers: reloaded.old_workers.clone(),
            new_workers: reloaded.new_workers,
        });
        self.old_workers = reloaded.old_workers;
        for c in std::mem::take(&mut self.last_edit_changes) {
            let done = match c {
                ServerChange::Restore { server } | ServerChange::Unpin { server, .. } => server,
                ServerChange::Add {
                    slot,
                    completes: true,
                    ..
                } => slot,
                // A line edit's own record (no container to deploy) is done once nginx runs it.
                ServerChange::Weight { server, .. }
                | ServerChange::Remove { server }
                | ServerChange::AddServer {
                    address: server, ..
                } => {
                    if let Some(rec) = self
                        .rollout
                        .server_mut(&server)
                        .filter(|r| r.new_spec.is_none())
                    {
                        rec.state = ServerState::Done;
                    }
                    continue;
                }
                ServerChange::Revert { .. } => {
                    for rec in self
                        .rollout
                        .servers
                        .iter_mut()
                        .filter(|r| r.new_spec.is_none())
                    {
                        rec.state = ServerState::Done;
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(rec) = self.rollout.server_mut(&done) {
                rec.state = ServerState::Done;
            }
        }
        self.last_edit.clear();
        self.save()?;
        Ok(())
    }

    /// The pre-deploy hook: its one-off container, made from the new spec of
    /// `job.server`, must exit 0. It runs to its end (bounded by `timeout`)
    /// even when a signal arrives: a migration is not cut short halfway.
    async fn pre_deploy(
        &mut self,
        index: usize,
        job: &PreDeploy,
        timeout: Duration,
    ) -> Result<(), StepError> {
        let spec = self
            .rollout
            .servers
            .iter()
            .find(|r| r.server == job.server)
            .and_then(|r| r.new_spec.clone())
            .ok_or_else(|| anyhow!("no new spec for server {} in the journal", job.server))?;
        self.announce_wait(
            index,
            &format!(
                "pre-deploy {} in one-off container {}",
                job.command, job.container
            ),
            timeout,
        );
        let exit = self
            .world
            .run_one_off(&job.container, &spec, &job.command, timeout)
            .await
            .map_err(|e| anyhow!("pre-deploy hook {}: {e:#}", job.command))?;
        self.hook_event(
            index,
            HookKind::PreDeploy,
            &job.server,
            &job.container,
            &job.command,
            &exit,
        );
        match exit.failure(HookKind::PreDeploy, &job.command, &job.container) {
            None => Ok(()),
            Some(why) => Err(StepError::Fatal(anyhow!("{why}\nno server was touched"))),
        }
    }

    /// Post-start or pre-stop hooks, each container's commands in order
    /// (concurrently across containers); a failing command fails its server,
    /// which then counts against the failure ratio. Servers failed already
    /// are skipped. Like the pre-deploy hook, never cut short by a signal.
    async fn run_hooks(
        &mut self,
        index: usize,
        kind: HookKind,
        runs: &[HookRun],
        timeout: Duration,
    ) -> Result<(), StepError> {
        let runs: Vec<&HookRun> = runs
            .iter()
            .filter(|r| !self.is_failed(&r.server.server))
            .collect();
        let names = runs
            .iter()
            .map(|r| r.server.container.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        self.announce_wait(index, &format!("{kind} hooks in {names}"), timeout);
        let world = self.world;
        let results = join_all(runs.iter().map(|r| async move {
            let container = &r.server.container;
            // A container that is gone or stopped has nothing left to prepare for its stop.
            if kind == HookKind::PreStop && !world.is_running(container).await? {
                return Ok(None);
            }
            let mut ran: Vec<(&HookCommand, HookExit)> = Vec::new();
            for command in &r.commands {
                let exit = world
                    .exec_hook(container, command, timeout)
                    .await
                    .map_err(|e| {
                        anyhow!("{kind} hook {command} in container {container}: {e:#}")
                    })?;
                let failed = !exit.success();
                ran.push((command, exit));
                if failed {
                    break;
                }
            }
            anyhow::Ok(Some(ran))
        }))
        .await;
        let mut failed = Vec::new();
        for (r, result) in runs.iter().zip(results) {
            let container = &r.server.container;
            let why = match result {
                Ok(None) => {
                    self.observer.notice(&format!(
                        "{kind} hooks of {} skipped: container {container} does not run",
                        r.server.server
                    ));
                    None
                }
                Ok(Some(ran)) => {
                    for (command, exit) in &ran {
                        self.hook_event(index, kind, &r.server.server, container, command, exit);
                    }
                    ran.iter()
                        .find_map(|(command, exit)| exit.failure(kind, command, container))
                }
                Err(e) => Some(format!("{e:#}")),
            };
            if let Some(why) = why {
                if kind == HookKind::PostStart
                    && self.rollout.plan.policy.order.value == Order::StartFirst
                {
                    // The old container still serves; the failed replacement must not linger.
                    let _ = self.world.stop_old(container).await;
                }
                failed.push((r.server.server.clone(), why));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StepError::Servers(failed))
        }
    }

    fn hook_event(
        &mut self,
        index: usize,
        hook: HookKind,
        server: &str,
        container: &str,
        command: &HookCommand,
        exit: &HookExit,
    ) {
        self.observer.event(&Event::Hook {
            index,
            hook,
            server: server.to_string(),
            container: container.to_string(),
            command: command.argv.clone(),
            exit_code: exit.code,
            output: exit.output.clone(),
        });
    }

    /// Replaces (stop-first) or starts beside (start-first) the containers of
    /// a batch, concurrently; servers failed already (a pre-stop hook) are left as they are.
    async fn replace_all(&mut self, servers: &[ServerRef], beside: bool) -> Result<(), StepError> {
        let servers: Vec<ServerRef> = servers
            .iter()
            .filter(|s| !self.is_failed(&s.server))
            .cloned()
            .collect();
        let mut specs = Vec::new();
        for s in &servers {
            let rec = self
                .rollout
                .server_mut(&s.server)
                .ok_or_else(|| anyhow!("no journal record for server {}", s.server))?;
            rec.state = ServerState::Replacing;
            specs.push(
                rec.new_spec
                    .clone()
                    .ok_or_else(|| anyhow!("no spec to deploy for server {}", s.server))?,
            );
            self.replace_started
                .insert(s.server.clone(), Instant::now());
        }
        self.save()?;
        let world = self.world;
        let results = join_all(servers.iter().zip(&specs).map(|(s, spec)| async move {
            if beside {
                world.start_new(s, spec).await
            } else {
                world.replace(s, spec).await
            }
        }))
        .await;
        let mut failed = Vec::new();
        for (s, result) in servers.iter().zip(results) {
            match result {
                Ok(id) => {
                    if let Some(rec) = self.rollout.server_mut(&s.server) {
                        rec.new_container = Some(id);
                    }
                }
                Err(e) => failed.push((s.server.clone(), format!("{e:#}"))),
            }
        }
        self.save()?;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StepError::Servers(failed))
        }
    }

    async fn wait_healthy(
        &mut self,
        index: usize,
        servers: &[ServerRef],
        timeout: Duration,
    ) -> Result<(), StepError> {
        let names = servers
            .iter()
            .map(|s| s.container.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        self.announce_wait(index, &format!("{names} to become healthy"), timeout);
        let waiting: Vec<(ServerRef, String)> = servers
            .iter()
            .filter_map(|s| {
                let rec = self.rollout.servers.iter().find(|r| r.server == s.server)?;
                (rec.state != ServerState::Failed)
                    .then(|| (s.clone(), rec.new_container.clone().unwrap_or_default()))
            })
            .collect();
        let world = self.world;
        let results = self
            .until_cancelled(join_all(
                waiting
                    .iter()
                    .map(|(s, id)| async move { world.wait_healthy(s, id, timeout).await }),
            ))
            .await?;
        let mut failed = Vec::new();
        for ((s, id), result) in waiting.iter().zip(results) {
            match result {
                Ok(at) => {
                    if let Some(started) = self.replace_started.get(&s.server) {
                        self.time_to_healthy
                            .insert(s.server.clone(), started.elapsed().as_secs_f64());
                    }
                    if let Some(rec) = self.rollout.server_mut(&s.server) {
                        rec.state = ServerState::Healthy;
                        rec.healthy_at = Some(time::millis(at));
                    }
                    self.observer.event(&Event::Health {
                        server: s.server.clone(),
                        container: s.container.clone(),
                        status: HealthVerdict::Healthy,
                    });
                }
                // Not the server's fault: the step fails, no server with it.
                Err(e) if self.world.is_unreachable(&e) => {
                    self.save()?;
                    return Err(StepError::Fatal(e));
                }
                Err(e) => {
                    self.observer.event(&Event::Health {
                        server: s.server.clone(),
                        container: s.container.clone(),
                        status: HealthVerdict::Unhealthy,
                    });
                    if self.rollout.plan.policy.order.value == Order::StartFirst {
                        // The old container still serves; the failed replacement must not linger.
                        let _ = self.world.stop_old(id).await;
                    }
                    failed.push((s.server.clone(), format!("{e:#}")));
                }
            }
        }
        self.save()?;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StepError::Servers(failed))
        }
    }

    /// New containers that became healthy and are not failed, with when.
    fn watched(&self) -> Vec<(String, String, DateTime<Utc>)> {
        self.rollout
            .servers
            .iter()
            .filter(|r| matches!(r.state, ServerState::Healthy | ServerState::Done))
            .filter_map(|r| Some((r.server.clone(), r.new_container.clone()?, r.healthy_at?)))
            .collect()
    }

    /// Checks every watched container for a failure inside its monitor window.
    async fn check_monitors(&mut self) -> Result<Option<Outcome>> {
        let window = self.rollout.plan.policy.monitor.value;
        if window.is_zero() {
            return Ok(None);
        }
        let mut failed = Vec::new();
        for (server, id, since) in self.watched() {
            if let Some(reason) = self.world.check(&id, since, window).await? {
                failed.push((
                    server,
                    format!("failed within the monitor window: {reason}"),
                ));
            }
        }
        if failed.is_empty() {
            return Ok(None);
        }
        // A failure counts even when the server cannot be taken out (it is the last
        // live one, or its crashed container's host no longer resolves for `nginx -t`).
        if let Err(e) = self.drain_live(&failed).await {
            for (_, reason) in &mut failed {
                reason.push_str(&format!("; not taken out of the upstream: {e:#}"));
            }
        }
        self.record_failures(failed)
    }

    /// Takes servers whose new container failed after being restored back out
    /// of the upstream: drained while it runs; once it is gone, its line must not
    /// name it (nginx resolves every name at each reload), so a pinned line is
    /// buried and an operator's line pinned to nowhere, `down`. A replica set
    /// already back on the operator's line needs only a reload: Docker's DNS
    /// no longer answers with a container that stopped.
    async fn drain_live(&mut self, failed: &[(String, String)]) -> Result<()> {
        let upstream = self.rollout.upstream.clone();
        let mut config = self.world.load_config().await?;
        // A canary that fails mid-ramp gets its weight back first: a line
        // pinned to nowhere keeps the statement the operator wrote.
        let mut changes: Vec<ServerChange> = match &self.rollout.plan.ramp {
            Some(ramp) => ramp
                .restore(&config.upstream(&upstream)?)
                .into_iter()
                .filter(|c| failed.iter().any(|(key, _)| c.server() == key))
                .collect(),
            None => Vec::new(),
        };
        apply_changes_with(&mut config, &upstream, &changes, false)?;
        let up = config.upstream(&upstream)?;
        let mut reload = false;
        for (key, _) in failed {
            let Some(line) = up.servers.iter().find(|s| s.address == *key) else {
                reload = true;
                continue;
            };
            if !line.is_live() {
                continue;
            }
            let container = self
                .rollout
                .servers
                .iter()
                .find(|r| r.server == *key)
                .and_then(|r| r.new_container.clone());
            let running = match &container {
                Some(id) => self.world.is_running(id).await?,
                None => true,
            };
            changes.push(if running {
                ServerChange::Drain {
                    server: key.clone(),
                }
            } else if line.pinned_from.is_some() {
                ServerChange::Bury {
                    server: key.clone(),
                }
            } else {
                if let Some(rec) = self.rollout.server_mut(key) {
                    rec.pinned = Some(line.statement.clone());
                }
                ServerChange::Pin {
                    server: key.clone(),
                    lines: vec![PinnedLine {
                        address: Address::with_host(key, NOWHERE),
                        down: true,
                    }],
                }
            });
        }
        if changes.is_empty() && !reload {
            return Ok(());
        }
        if !changes.is_empty() {
            match self.edit(&upstream, &changes, false).await {
                Ok(()) => {}
                Err(StepError::Fatal(e)) => return Err(e),
                Err(_) => return Err(anyhow!("could not drain failed servers")),
            }
        }
        match self.reload().await {
            Ok(()) => Ok(()),
            Err(StepError::Fatal(e)) => Err(e),
            Err(_) => Err(anyhow!("could not reload nginx")),
        }
    }

    /// The canary holds `share`: its new container is watched from the moment
    /// it became healthy (a failure at any time during the ramp counts, under
    /// the failure action, and takes it out of the upstream) for the delay
    /// of `gate`; a pause gate stops the run once the step is done.
    async fn canary(
        &mut self,
        index: usize,
        server: &ServerRef,
        share: Share,
        gate: Gate,
    ) -> Result<(), StepError> {
        // Taken out already (failed earlier): there is nothing to hold.
        if self.is_failed(&server.server) {
            return Ok(());
        }
        let hold = match gate {
            Gate::Delay { duration } => duration,
            Gate::Pause => Duration::ZERO,
        };
        self.announce_wait(
            index,
            &format!(
                "canary {} at {share} of the traffic, watching {}",
                server.server, server.container
            ),
            hold,
        );
        let until = Instant::now() + hold;
        loop {
            if let Some(reason) = self.canary_failure(&server.server).await? {
                let mut failed = vec![(
                    server.server.clone(),
                    format!("failed at {share} of the traffic: {reason}"),
                )];
                if let Err(e) = self.drain_live(&failed).await {
                    failed[0]
                        .1
                        .push_str(&format!("; not taken out of the upstream: {e:#}"));
                }
                return Err(StepError::Servers(failed));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.until_cancelled(tokio::time::sleep(left.min(CANARY_POLL)))
                .await?;
        }
    }

    /// Whether the new container of `server` failed since it became healthy.
    async fn canary_failure(&self, server: &str) -> Result<Option<String>> {
        let Some((id, since)) = self
            .rollout
            .servers
            .iter()
            .find(|r| r.server == server)
            .and_then(|r| Some((r.new_container.clone()?, r.healthy_at?)))
        else {
            return Ok(None);
        };
        let window = (Utc::now() - since).to_std().unwrap_or_default();
        self.world.check(&id, since, window).await
    }

    /// Waits out every watched container's monitor window (the check follows the step).
    async fn monitor(&mut self, index: usize, window: Duration) -> Result<(), StepError> {
        let Some(last) = self.watched().iter().map(|(_, _, at)| *at).max() else {
            return Ok(());
        };
        let remaining = (last + window - Utc::now()).to_std().unwrap_or_default();
        self.announce_wait(index, "the monitor window of the new containers", remaining);
        self.until_cancelled(tokio::time::sleep(remaining)).await
    }

    /// Restores servers we drained whose old container was never touched.
    async fn undo_untouched_drains(&mut self) -> Result<()> {
        let servers: Vec<String> = self
            .rollout
            .servers
            .iter()
            .filter(|s| s.state == ServerState::Drained)
            .map(|s| s.server.clone())
            .collect();
        if servers.is_empty() {
            return Ok(());
        }
        let upstream = self.rollout.upstream.clone();
        let changes: Vec<ServerChange> = servers
            .iter()
            .map(|s| ServerChange::Restore { server: s.clone() })
            .collect();
        let result = match self.edit(&upstream, &changes, false).await {
            Ok(()) => self.reload().await,
            Err(e) => Err(e),
        };
        if let Err(StepError::Fatal(e)) = result {
            tracing::warn!(
                "could not restore drained servers {servers:?}: {e:#}; they stay recorded in the journal"
            );
            return Ok(());
        }
        for s in &servers {
            if let Some(rec) = self.rollout.server_mut(s) {
                rec.state = ServerState::Pending;
            }
        }
        self.save()
    }
}
