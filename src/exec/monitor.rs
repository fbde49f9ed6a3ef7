//! The monitor window: new containers that became healthy are checked at
//! every step boundary and, while a step waits, every [`MONITOR_POLL`]; a
//! failure counts and takes the server out, and a monitor step waits the
//! windows out. The last batch's window is the plan's monitor step's
//! (the planner's `last_watch`), the others' the monitor window.
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::event::Observer;
use super::executor::{Executor, Outcome, StepError};
use super::journal::ServerState;
use super::world::World;
use crate::duration::after;
use crate::plan::Action;

/// How often the monitor windows are checked while a step waits: a new
/// container that fails meanwhile is taken out of nginx then, not when the
/// wait ends (until it is, nginx sends it requests that fail or hang).
pub(super) const MONITOR_POLL: Duration = Duration::from_millis(250);

impl<W: World, O: Observer + ?Sized> Executor<'_, W, O> {
    /// New containers that became healthy and are not failed, with when and
    /// how long after it a failure counts: the plan's monitor step's window
    /// for the last batch's (the servers it names), the monitor window for
    /// the others. Not those with no window, nor those whose window ended
    /// with no failure in it.
    fn watched(&self) -> Vec<(String, String, DateTime<Utc>, Duration)> {
        let plan = &self.rollout.plan;
        let last = plan.steps.iter().find_map(|s| match &s.action {
            Action::Monitor { window, servers } => Some((*window, servers)),
            _ => None,
        });
        let window = |server: &str| match last {
            Some((window, servers)) if servers.iter().any(|s| s.server == server) => window,
            _ => plan.policy.monitor.value,
        };
        self.rollout
            .servers
            .iter()
            .filter(|r| matches!(r.state, ServerState::Healthy | ServerState::Done))
            .filter_map(|r| Some((r.server.clone(), r.new_container.clone()?, r.healthy_at?)))
            .filter(|(_, id, _)| !self.settled.contains(id))
            .map(|(server, id, since)| {
                let window = window(server.as_str());
                (server, id, since, window)
            })
            .filter(|(.., window)| !window.is_zero())
            .collect()
    }

    /// Checks every watched container for a failure inside its window. One
    /// checked once its window has ended, and sound, is settled.
    pub(super) async fn check_monitors(&mut self) -> Result<Option<Outcome>> {
        let mut failed = Vec::new();
        for (server, id, since, window) in self.watched() {
            let window_over = Utc::now() >= after(since, window);
            let checked = self
                .world
                .check(&id, since, window)
                .await
                .with_context(|| {
                    format!("server {server}: checking its new container in the monitor window")
                })?;
            match checked {
                Some(reason) => failed.push((
                    server,
                    format!("failed within the monitor window: {reason}"),
                )),
                None if window_over => {
                    self.settled.insert(id);
                }
                None => {}
            }
        }
        if failed.is_empty() {
            return Ok(None);
        }
        // A failure counts even when the server cannot be taken out (it is the last
        // live one, or its crashed container's host no longer resolves for `nginx -t`).
        if let Err(e) = self.drain_live(&mut failed).await {
            for (_, reason) in &mut failed {
                reason.push_str(&format!("; not taken out of the upstream: {e:#}"));
            }
        }
        self.record_failures(failed)
    }

    /// `wait`, unless a signal comes first, while the watched containers are
    /// checked every [`MONITOR_POLL`]: one that fails is counted and taken
    /// out then. `wait` must not hold the executor (it is used meanwhile),
    /// nor a lock of the world across an await (it may be paused there while
    /// a failure is taken out).
    /// `Err(Stopped)` when a failure fires the failure action.
    pub(super) async fn watching<T>(
        &mut self,
        wait: impl Future<Output = T>,
    ) -> Result<T, StepError> {
        let mut wait = std::pin::pin!(wait);
        loop {
            let polled = tokio::time::timeout(MONITOR_POLL, wait.as_mut());
            if let Ok(out) = self.until_cancelled(polled).await? {
                return Ok(out);
            }
            if let Some(outcome) = self.check_monitors().await? {
                return Err(StepError::Stopped(outcome));
            }
        }
    }

    /// [`Self::watching`] once a pause has fired and the batch under way is let
    /// finish: the checks go on (a new container failing meanwhile is still
    /// counted and taken out), a further pause is the same pause, and a
    /// signal still ends the wait.
    pub(super) async fn watching_paused<F: Future>(
        &mut self,
        mut wait: Pin<&mut F>,
    ) -> Result<F::Output, StepError> {
        loop {
            match self.watching(wait.as_mut()).await {
                Err(StepError::Stopped(Outcome::Paused(_))) => {}
                other => return other,
            }
        }
    }

    /// [`Self::watching`] for a wait never cut short (hooks): a signal does
    /// not end it, and once a failure fires the failure action (`Stopped`)
    /// or a check fails (`Fatal`), the checks stop and `wait` still runs to
    /// its end. Returns its output and how the watch ended.
    pub(super) async fn watching_to_end<T>(
        &mut self,
        wait: impl Future<Output = T>,
    ) -> (T, Result<(), StepError>) {
        let mut wait = std::pin::pin!(wait);
        let ended = loop {
            if let Ok(out) = tokio::time::timeout(MONITOR_POLL, wait.as_mut()).await {
                return (out, Ok(()));
            }
            match self.check_monitors().await {
                Ok(None) => {}
                Ok(Some(outcome)) => break StepError::Stopped(outcome),
                Err(e) => break StepError::Fatal(e),
            }
        };
        (wait.await, Err(ended))
    }

    /// Waits out every watched container's window (the check follows the step).
    pub(super) async fn monitor(&mut self, index: usize) -> Result<(), StepError> {
        let Some(end) = self
            .watched()
            .iter()
            .map(|(_, _, since, window)| after(*since, *window))
            .max()
        else {
            return Ok(());
        };
        let remaining = (end - Utc::now()).to_std().unwrap_or_default();
        self.announce_wait(index, "the monitor window of the new containers", remaining);
        self.watching(tokio::time::sleep(remaining)).await
    }
}
