//! The canary's hold at each share of the traffic, watching its new
//! container and, as any wait does, the other watched ones.
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use tokio::time::Instant;

use super::event::Observer;
use super::executor::{Executor, StepError};
use super::monitor::MONITOR_POLL;
use super::world::World;
use crate::duration::deadline;
use crate::plan::{Gate, ServerRef, Share};

impl<W: World, O: Observer + ?Sized> Executor<'_, W, O> {
    /// The canary holds `share`: its new container is watched from the moment
    /// it became healthy (a failure at any time during the ramp counts, under
    /// the failure action, and takes it out of the upstream) for the delay
    /// of `gate`; a pause gate stops the run once the step is done. Every
    /// [`MONITOR_POLL`] the canary is checked, then the watched containers
    /// as during any wait (`watching`); the canary first, so that its
    /// failure is told, and taken out, as the canary's.
    pub(super) async fn canary(
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
        let until = deadline(Instant::now(), hold);
        loop {
            if let Some(reason) = self.canary_failure(&server.server).await? {
                let mut failed = vec![(
                    server.server.clone(),
                    format!("failed at {share} of the traffic: {reason}"),
                )];
                if let Err(e) = self.drain_live(&mut failed).await {
                    failed[0]
                        .1
                        .push_str(&format!("; not taken out of the upstream: {e:#}"));
                }
                return Err(StepError::Servers(failed));
            }
            if let Some(outcome) = self.check_monitors().await? {
                return Err(StepError::Stopped(outcome));
            }
            let left = until.saturating_duration_since(Instant::now());
            // Taken out by that check (it failed just now): nothing left to hold.
            if left.is_zero() || self.is_failed(&server.server) {
                return Ok(());
            }
            self.until_cancelled(tokio::time::sleep(left.min(MONITOR_POLL)))
                .await?;
        }
    }

    /// Whether the new container of `server` failed since it became healthy.
    async fn canary_failure(&self, server: &str) -> Result<Option<String>> {
        let Some((id, since)) = self
            .rollout
            .server(server)
            .and_then(|r| Some((r.new_container.clone()?, r.healthy_at?)))
        else {
            return Ok(None);
        };
        let window = (Utc::now() - since).to_std().unwrap_or_default();
        self.world.check(&id, since, window).await
    }
}
