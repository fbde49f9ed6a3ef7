//! Replacing containers: recreating them (stop-first) or starting new ones
//! beside them (start-first), stopping the old ones, and creating the next
//! batch's replacements ahead while a drain is waited for.
use std::time::Instant;

use anyhow::anyhow;
use futures_util::future::join_all;

use super::event::Observer;
use super::executor::{Executor, StepError};
use super::journal::{ServerRecord, ServerState};
use super::leftover::Leftover;
use super::world::World;
use crate::plan::{Action, ServerRef, Step};

impl<W: World, O: Observer + ?Sized> Executor<'_, W, O> {
    /// Replaces (stop-first) or starts beside (start-first) the containers of
    /// a batch, concurrently; servers failed already (a pre-stop hook) are left as they are.
    pub(super) async fn replace_all(
        &mut self,
        servers: &[ServerRef],
        beside: bool,
    ) -> Result<(), StepError> {
        let servers: Vec<ServerRef> = servers
            .iter()
            .filter(|s| !self.is_failed(&s.server))
            .cloned()
            .collect();
        // Each with what is its own to remove where its new container is made.
        let mut specs = Vec::new();
        for s in &servers {
            let rec = self
                .rollout
                .server_mut(&s.server)
                .ok_or_else(|| anyhow!("no journal record for server {}", s.server))?;
            rec.state = ServerState::Replacing;
            let spec = rec
                .new_spec
                .clone()
                .ok_or_else(|| anyhow!("no spec to deploy for server {}", s.server))?;
            specs.push((spec, rec.ours()));
            self.replace_started
                .insert(s.server.clone(), Instant::now());
        }
        self.save()?;
        let world = self.world;
        let results = join_all(
            servers
                .iter()
                .zip(&specs)
                .map(|(s, (spec, ours))| async move {
                    if beside {
                        world.start_new(s, spec, ours).await
                    } else {
                        world.replace(s, spec, ours).await
                    }
                }),
        )
        .await;
        let mut failed = Vec::new();
        let mut gone = None;
        for (s, result) in servers.iter().zip(results) {
            match result {
                Ok(id) => {
                    if let Some(rec) = self.rollout.server_mut(&s.server) {
                        rec.new_container = Some(id);
                        rec.leftover = Leftover::default();
                    }
                }
                // Not the server's fault: the step fails, no server with it.
                Err(e) if self.world.is_unreachable(&e) => gone = gone.or(Some(e)),
                Err(e) => failed.push((s.server.clone(), format!("{e:#}"))),
            }
        }
        self.save()?;
        if let Some(e) = gone {
            return Err(StepError::Fatal(e));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StepError::Servers(failed))
        }
    }

    /// The servers (with their specs, and what is their own to remove) that
    /// the stop-first recreate after step `index` makes, if step `index` is
    /// one of those that make them ahead ([`made_ahead_from`]).
    pub(super) fn recreated_next(&self, index: usize) -> Vec<(ServerRef, W::Spec, Leftover)> {
        let steps = &self.rollout.plan.steps;
        // Steps are numbered from 1.
        let at = index - 1;
        let next = steps
            .iter()
            .enumerate()
            .skip(at + 1)
            .find_map(|(i, s)| match &s.action {
                Action::Recreate { servers } => Some((i, servers)),
                _ => None,
            });
        let Some((_, servers)) = next.filter(|&(i, _)| made_ahead_from(steps, i) <= at) else {
            return Vec::new();
        };
        servers
            .iter()
            .filter(|s| !self.is_failed(&s.server))
            .filter_map(|s| {
                let rec = self.rollout.server(&s.server)?;
                Some((s.clone(), rec.new_spec.clone()?, rec.ours()))
            })
            .collect()
    }

    /// Stops the old containers of a batch one after another, each server
    /// done once its old container stopped; servers failed already are
    /// skipped. Each as [`ServerRecord::old_container`] finds it.
    pub(super) async fn stop_old(
        &mut self,
        index: usize,
        servers: &[ServerRef],
    ) -> Result<(), StepError> {
        self.stop_requested = Some((index, tokio::time::Instant::now()));
        for s in servers {
            if self.is_failed(&s.server) {
                continue;
            }
            let old = self.rollout.server(&s.server);
            let old = old.map_or(s.container.as_str(), ServerRecord::old_container);
            self.world.stop_old(old).await?;
            if let Some(rec) = self.rollout.server_mut(&s.server) {
                rec.state = ServerState::Done;
            }
            self.save()?;
        }
        Ok(())
    }

    /// At a stop short of the end: removes each start-first replacement of a
    /// single server that no line names (never swapped in, so nginx sends it
    /// nothing). `resume` starts it again; a rollback in its own order would
    /// otherwise leave it running outside nginx, in the way of the next
    /// start-first deploy. Its server is pending again (nothing of it
    /// changed), unless its line was pinned to nowhere
    /// ([`ServerRecord::replacement_discarded`]). Best effort: what cannot be
    /// removed is logged.
    pub(super) async fn discard_unswapped(&mut self) {
        let upstream = &self.rollout.upstream;
        let loaded = async { anyhow::Ok(self.world.load_config().await?.upstream(upstream)?) };
        let up = match loaded.await {
            Ok(up) => up,
            Err(e) => {
                tracing::warn!("could not tell which replacements were never swapped in: {e:#}");
                return;
            }
        };
        let unswapped: Vec<(String, String, String)> = (self.rollout.never_swapped_in(&up))
            .into_iter()
            .filter_map(|(r, name, _)| Some((r.server.clone(), name, r.new_container.clone()?)))
            .collect();
        for (server, name, id) in unswapped {
            if let Err(e) = self.world.stop_old(&id).await {
                tracing::warn!("{server}: could not remove its replacement {name}: {e:#}");
                continue;
            }
            self.observer.notice(&format!(
                "{server}: its replacement {name}, never put into nginx, is removed"
            ));
            if let Some(rec) = self.rollout.server_mut(&server) {
                rec.replacement_discarded();
            }
        }
        if let Err(e) = self.save() {
            tracing::warn!("could not record the replacements removed: {e:#}");
        }
    }
}

/// Where the steps begin that make ahead the replacements of the stop-first
/// recreate at position `recreate` of `steps`: the drain's reload and wait
/// before it, with the pre-stop hooks between. Without a drain wait, its
/// pre-stop hooks (nothing is made ahead then). The executor creates the
/// replacements in them, and the journal proves a container made since the
/// first began the rollout's own.
pub(super) fn made_ahead_from(steps: &[Step], recreate: usize) -> usize {
    let mut first = recreate;
    while first > 0 && matches!(steps[first - 1].action, Action::PreStop { .. }) {
        first -= 1;
    }
    if first > 0 && matches!(steps[first - 1].action, Action::WaitDrained { .. }) {
        first -= 1;
        if first > 0 && matches!(steps[first - 1].action, Action::Reload) {
            first -= 1;
        }
    }
    first
}

/// Creates `ahead` through `world`: the replacements of a recreate step
/// ([`Executor::recreated_next`]), while nginx reloads to drain their old
/// containers and again (for those not made yet) while the drain is waited
/// for. One that cannot be is only logged, the recreate creates it then. It
/// holds nothing of the executor, which checks the monitor windows meanwhile.
pub(super) async fn prepare_ahead<W: World>(world: &W, ahead: Vec<(ServerRef, W::Spec, Leftover)>) {
    join_all(ahead.iter().map(|(s, spec, ours)| async move {
        if let Err(e) = world.prepare(s, spec, ours).await {
            tracing::debug!("{}: not created ahead: {e:#}", s.container);
        }
    }))
    .await;
}
