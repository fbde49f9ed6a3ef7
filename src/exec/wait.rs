//! The waits between changes: for the old nginx workers to exit, for new
//! containers to become healthy, and the delay between batches.
use std::time::Duration;

use futures_util::future::{join, join_all};

use super::event::{Event, HealthVerdict, Observer};
use super::executor::{Executor, Outcome, StepError};
use super::journal::{ServerState, time};
use super::replace::prepare_ahead;
use super::world::World;
use crate::plan::{Action, Order, ServerRef};

impl<W: World, O: Observer + ?Sized> Executor<'_, W, O> {
    /// Waits for the workers every reload since the last wait replaced to
    /// exit (a reload between a drain and its wait, such as taking a failed
    /// server out, leaves the drain's old workers proxying to the drained
    /// server); the replacements of the next step are created meanwhile. A
    /// pause fired meanwhile while a start-first batch swaps its healthy
    /// replacements in is returned once the wait ends: their old containers
    /// stop after it (see `Executor::swaps_healthy`).
    pub(super) async fn wait_drained(
        &mut self,
        index: usize,
        timeout: Duration,
    ) -> Result<(), StepError> {
        self.announce_wait(index, "old nginx workers to exit", timeout);
        let old = std::mem::take(&mut self.old_workers);
        let world = self.world;
        let prepare = prepare_ahead(world, self.recreated_next(index));
        let mut wait = std::pin::pin!(join(world.wait_drained(&old, timeout), prepare));
        let swapping = self.swaps_healthy(index);
        let (drained, _) = match self.watching(wait.as_mut()).await {
            // The old workers are waited for all the same; a signal still ends the wait.
            Err(StepError::Stopped(outcome @ Outcome::Paused(_))) if swapping => {
                let (drained, _) = self.watching_paused(wait).await?;
                drained.map_err(StepError::Fatal)?;
                return Err(StepError::Stopped(outcome));
            }
            other => other?,
        };
        drained.map_err(StepError::Fatal)
    }

    /// Waits for the new containers of a batch to become healthy, recording
    /// when; one that does not fails its server (start-first, it is stopped:
    /// the old container still serves), an unreachable daemon the step. A
    /// pause fired meanwhile by another server's failure is returned once
    /// the wait ends, so the batch goes back into nginx as the run stops
    /// (start-first, its healthy replacements are swapped in first).
    pub(super) async fn wait_healthy(
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
        let mut waiting: Vec<(ServerRef, String)> = Vec::new();
        for s in servers {
            let Some(rec) = self.rollout.server(&s.server) else {
                continue;
            };
            match (&rec.new_container, rec.state) {
                (_, ServerState::Failed) => {}
                (Some(id), _) => waiting.push((s.clone(), id.clone())),
                // Its replace step was skipped (`-i`): nothing new to wait for.
                (None, _) => self.observer.notice(&format!(
                    "{}: no new container (its replace step was skipped); not waited for",
                    s.server
                )),
            }
        }
        let world = self.world;
        let mut wait =
            std::pin::pin!(join_all(waiting.iter().map(|(s, id)| async move {
                world.wait_healthy(s, id, timeout).await
            })));
        let awaited = self.awaited_by_pause(waiting.iter().map(|(s, _)| s.server.as_str()));
        let mut paused = None;
        let results = match self.watching(wait.as_mut()).await {
            // A pause lets the batch finish (see `Executor::awaited_by_pause`);
            // a signal still ends the wait.
            Err(StepError::Stopped(outcome @ Outcome::Paused(_))) if awaited => {
                paused = Some(outcome);
                self.watching_paused(wait).await?
            }
            other => other?,
        };
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
        if let Some(outcome) = paused {
            // The batch's own failures count too; the run pauses all the same.
            let outcome = if failed.is_empty() {
                outcome
            } else {
                self.record_failures(failed)?.unwrap_or(outcome)
            };
            return Err(StepError::Stopped(outcome));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StepError::Servers(failed))
        }
    }

    /// What is left of the delay of step `index`: all of it, unless it counts
    /// from the stop of the old containers and this run began that stop in
    /// the step just before, but for edits (a resumed run waits it in full).
    fn delay_left(&self, index: usize, duration: Duration, from_stop: bool) -> Duration {
        // Steps are numbered from 1; between the stop and the delay only
        // edits with no reload (burying what the stop took away).
        let right_after = |stop: usize| {
            self.rollout
                .plan
                .steps
                .get(stop..index.saturating_sub(1))
                .is_some_and(|between| {
                    between
                        .iter()
                        .all(|s| matches!(s.action, Action::Edit { .. }))
                })
        };
        match self.stop_requested {
            Some((stop, at)) if from_stop && stop < index && right_after(stop) => {
                duration.saturating_sub(at.elapsed())
            }
            _ => duration,
        }
    }

    /// Waits out what is left of the delay between batches.
    pub(super) async fn delay(
        &mut self,
        index: usize,
        duration: Duration,
        from_stop: bool,
    ) -> Result<(), StepError> {
        let left = self.delay_left(index, duration, from_stop);
        self.announce_wait(index, "the delay between batches", left);
        self.watching(tokio::time::sleep(left)).await
    }
}
