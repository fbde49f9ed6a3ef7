//! Taking failed servers out of the upstream while a run goes on (drained,
//! pinned to nowhere, or a start-first swap undone), and the lines of
//! replicas that are gone: buried, and never given back to a set none of
//! whose new replicas runs.
use anyhow::{Result, anyhow};
use futures_util::future::join_all;

use super::event::Observer;
use super::executor::{Executor, StepError};
use super::journal::{ServerRecord, ServerState, StepStatus};
use super::world::World;
use crate::conf::{Address, NOWHERE, PinnedLine, Upstream};
use crate::plan::{Action, ServerChange, apply_changes_with};

/// What a failed replica's reason gains when its container is stopped
/// before its set's line comes back.
const STOPPED_AND_KEPT: &str =
    "; its new container is stopped (and kept): the set's line would send it requests";

impl<W: World, O: Observer + ?Sized> Executor<'_, W, O> {
    /// A replica set every new replica of which failed and is gone cannot
    /// have the operator's line back: nginx would not resolve it. Its unpin
    /// is dropped (the edit buries the lines of replicas that are gone), so
    /// the set stays pinned, every line `down` (drained and reported, as a failed
    /// single server is; `rollback` brings the old version back).
    pub(super) async fn keep_failed_sets_pinned(
        &self,
        changes: Vec<ServerChange>,
    ) -> Result<Vec<ServerChange>> {
        let mut kept = Vec::with_capacity(changes.len());
        for c in changes {
            if let ServerChange::Unpin { server, .. } = &c
                && self.failed_out(server).await?
            {
                continue;
            }
            kept.push(c);
        }
        Ok(kept)
    }

    /// `changes` without the drains and restores of replicas whose lines are
    /// buried already (their containers died since the plan was made): their
    /// set is pinned, and no line has their address.
    pub(super) fn without_buried_replicas(
        &self,
        up: &Upstream,
        changes: Vec<ServerChange>,
    ) -> Vec<ServerChange> {
        let set_of = |c: &ServerChange| match c {
            ServerChange::Drain { server } | ServerChange::Restore { server } => {
                self.rollout.server(server)?.set.clone()
            }
            _ => None,
        };
        changes
            .into_iter()
            .filter(|c| {
                let Some(set) = set_of(c) else {
                    return true;
                };
                let pinned = up
                    .servers
                    .iter()
                    .any(|s| s.pinned_from.as_deref() == Some(set.as_str()));
                !pinned || up.servers.iter().any(|s| s.address == c.server())
            })
            .collect()
    }

    /// Whether every new replica of set `set` failed and nothing answers to
    /// its name any more.
    async fn failed_out(&self, set: &str) -> Result<bool> {
        let mut members = self
            .rollout
            .servers
            .iter()
            .filter(|r| r.set.as_deref() == Some(set) && r.new_container.is_some())
            .peekable();
        if members.peek().is_none() || !members.all(|r| r.state == ServerState::Failed) {
            return Ok(false);
        }
        Ok(!self.world.resolves(&Address::parse(set).host).await?)
    }

    /// Takes servers whose new container failed after being restored back out
    /// of the upstream: drained while it runs; once it is gone, its line must not
    /// name it (nginx resolves every name at each reload), so a pinned line is
    /// buried and an operator's line pinned to nowhere, `down`. A new replica
    /// started beside the one it retires is taken out on its own line. Of a
    /// replica set already back on the operator's line, a failed replica
    /// still running is stopped ([`Self::stop_failed_replicas`]) and a reload
    /// follows: Docker's DNS no longer answers with a container that stopped;
    /// when no replica runs, the line is pinned to nowhere. A start-first replacement
    /// swapped in while its old container still serves gives the line back
    /// to it ([`Self::swaps_back`]) and is removed after the reload
    /// ([`Self::retire_swapped_back`]); its reason says so.
    pub(super) async fn drain_live(&mut self, failed: &mut [(String, String)]) -> Result<()> {
        let upstream = self.rollout.upstream.clone();
        let mut config = self.world.load_config().await?;
        // A canary that fails mid-ramp gets its weight back first: a line
        // pinned to nowhere keeps the statement the operator wrote. A weight
        // changed by hand since the rollout wrote it stays as it is (`resume`
        // and `rollback` refuse to write over it, and say so).
        let left = self.rollout.weights_left();
        let mut changes: Vec<ServerChange> = match &self.rollout.plan.ramp {
            Some(ramp) => {
                let up = config.upstream(&upstream)?;
                ramp.restore(&up, &left)
                    .into_iter()
                    .filter(|c| failed.iter().any(|(key, _)| c.server() == key))
                    .filter(|c| match c {
                        ServerChange::Weight {
                            server,
                            expect: Some(was),
                            ..
                        } => up
                            .servers
                            .iter()
                            .any(|s| s.address == *server && s.weight() == was.weight),
                        _ => true,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        apply_changes_with(&mut config, &upstream, &changes, false)?;
        let up = config.upstream(&upstream)?;
        let mut reload = false;
        // A failed replica of a set back on the operator's line has no line
        // of its own to drain.
        let on_operator_line: Vec<String> = failed
            .iter()
            .map(|(key, _)| key)
            .filter(|key| {
                self.rollout
                    .server(key)
                    .and_then(|r| r.set.as_ref())
                    .is_some_and(|set| {
                        up.servers
                            .iter()
                            .any(|s| s.address == *set && s.pinned_from.is_none())
                    })
            })
            .cloned()
            .collect();
        for key in self.stop_failed_replicas(on_operator_line).await? {
            if let Some((_, reason)) = failed.iter_mut().find(|(k, _)| *k == key) {
                reason.push_str(STOPPED_AND_KEPT);
            }
        }
        // (server, old container) of each line given back to its old
        // container, and (replacement, whether nginx ran a config naming it):
        // the replacement goes once nginx is done with it.
        let mut swapped_back = Vec::new();
        let mut retire = Vec::new();
        for (key, _) in failed.iter() {
            let rec = self.rollout.server(key);
            // A replica started beside the one it retires serves on its own
            // line; a single server's replacement, once swapped in, on the
            // line the swap gave it.
            let address = match (
                rec.and_then(ServerRecord::replica_line),
                rec.and_then(ServerRecord::swapped_line),
            ) {
                (Some(own), _) => own,
                (None, Some(swapped)) if up.servers.iter().any(|s| s.address == swapped) => {
                    let Some(rec) = rec else { continue };
                    match self.swaps_back(rec).await? {
                        None => swapped,
                        Some(loaded) => {
                            swapped_back.push((key.clone(), rec.container.clone()));
                            retire.extend(rec.new_container.clone().map(|id| (id, loaded)));
                            changes.push(ServerChange::Replace {
                                server: swapped,
                                with: key.clone(),
                            });
                            continue;
                        }
                    }
                }
                // Not swapped in yet: the old container serves on its line,
                // and the failed replacement must not linger.
                (None, Some(_)) => {
                    if let Some(id) = rec.and_then(|r| r.new_container.clone()) {
                        let _ = self.world.stop_old(&id).await;
                    }
                    continue;
                }
                (None, None) => key.clone(),
            };
            let Some(line) = up.servers.iter().find(|s| s.address == address) else {
                reload = true;
                continue;
            };
            if !line.is_live() {
                continue;
            }
            let running = match rec.and_then(|r| r.new_container.as_deref()) {
                Some(id) => self.world.is_running(id).await?,
                None => true,
            };
            changes.push(if running {
                ServerChange::Drain { server: address }
            } else if line.pinned_from.is_some() {
                ServerChange::Bury { server: address }
            } else {
                if let Some(rec) = self.rollout.server_mut(key) {
                    rec.pinned = Some(line.statement.clone());
                }
                ServerChange::Pin {
                    lines: vec![PinnedLine {
                        address: Address::with_host(&address, NOWHERE),
                        down: true,
                    }],
                    server: address,
                }
            });
        }
        // A set back on the operator's line none of whose replicas runs any
        // more: nginx would not resolve the line; pinned to nowhere, `down`.
        let mut sets: Vec<String> = failed
            .iter()
            .filter_map(|(key, _)| self.rollout.server(key)?.set.clone())
            .collect();
        sets.sort();
        sets.dedup();
        for set in sets {
            if up
                .servers
                .iter()
                .any(|s| s.address == set && s.pinned_from.is_none())
                && !self.world.resolves(&Address::parse(&set).host).await?
            {
                changes.push(ServerChange::Pin {
                    lines: vec![PinnedLine {
                        address: Address::with_host(&set, NOWHERE),
                        down: true,
                    }],
                    server: set,
                });
            }
        }
        if changes.is_empty() && !reload {
            return Ok(());
        }
        self.bury_gone_replicas(&up, &mut changes).await?;
        // A replica's own line is not its record's (keyed by the replica it
        // retires), so `edit` would journal no drain of it: it is recorded
        // failed before its line is written.
        let mut own_lines = false;
        for (key, reason) in failed.iter() {
            if let Some(rec) = self.rollout.server_mut(key)
                && rec.replica_line().is_some_and(|line| line != *key)
            {
                rec.state = ServerState::Failed;
                rec.error = Some(reason.clone());
                own_lines = true;
            }
        }
        if own_lines {
            self.save()?;
        }
        if !changes.is_empty() {
            match self.edit(&upstream, &changes, false).await {
                Ok(()) => {}
                Err(StepError::Fatal(e)) => return Err(e),
                Err(_) => return Err(anyhow!("could not drain failed servers")),
            }
        }
        let earlier = self.old_workers.len();
        match self.reload().await {
            Ok(()) => {}
            Err(StepError::Fatal(e)) => return Err(e),
            Err(_) => return Err(anyhow!("could not reload nginx")),
        }
        for (key, old) in swapped_back {
            let reason = failed.iter_mut().find(|(k, _)| *k == key).map(|(_, r)| r);
            if let Some(reason) = reason {
                reason.push_str(&format!("; its line is back on its old container {old}"));
            }
        }
        let workers = self.old_workers[earlier..].to_vec();
        self.retire_swapped_back(&retire, &workers).await;
        Ok(())
    }

    /// Removes failed replacements whose lines went back to their old
    /// containers (each with whether nginx ran a config naming it): once
    /// `workers`, which ran that config, have exited (a replacement that
    /// still runs may be answering their requests), within the drain timeout
    /// or until a signal; at once if none still runs where nginx sent it
    /// requests.
    async fn retire_swapped_back(&self, replacements: &[(String, bool)], workers: &[u32]) {
        let mut serving = false;
        for (id, loaded) in replacements {
            serving |= *loaded && self.world.is_running(id).await.unwrap_or(true);
        }
        if serving {
            let timeout = self.rollout.plan.timeouts.drain;
            match self
                .until_cancelled(self.world.wait_drained(workers, timeout))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("removing failed replacements all the same: {e:#}"),
                Err(_) => tracing::warn!("interrupted: removing failed replacements now"),
            }
        }
        for (id, _) in replacements {
            if let Err(e) = self.world.stop_old(id).await {
                tracing::warn!("could not remove failed replacement {id}: {e:#}");
            }
        }
    }

    /// Whether a start-first server whose replacement failed once swapped in
    /// gets its line back on its old container, and if so whether nginx ran
    /// the swap (the reload after it began): this run swapped it (a resumed
    /// run's old container may have run its pre-stop hooks before), none of
    /// the steps that retire the old container (its pre-stop hooks, its
    /// stop) has begun, and it still runs.
    async fn swaps_back(&self, rec: &ServerRecord<W::Spec>) -> Result<Option<bool>> {
        let mut swapped_here = None;
        let mut retiring = false;
        let records = &self.rollout.steps;
        for (i, (step, record)) in self.rollout.plan.steps.iter().zip(records).enumerate() {
            let begun = record.status.begun();
            match &step.action {
                Action::Edit { changes, .. }
                    if record.status == StepStatus::Done
                        && changes.iter().any(|c| {
                            matches!(c, ServerChange::Replace { server, .. } if *server == rec.server)
                        }) =>
                {
                    let reloaded = records.get(i + 1).is_some_and(|r| r.status.begun());
                    swapped_here = Some(reloaded);
                }
                Action::PreStop { runs, .. } => {
                    retiring |= begun && runs.iter().any(|r| r.server.server == rec.server);
                }
                Action::StopOld { servers } => {
                    retiring |= begun && servers.iter().any(|s| s.server == rec.server);
                }
                _ => {}
            }
        }
        let Some(reloaded) = swapped_here else {
            return Ok(None);
        };
        let back = !retiring
            && !rec.container.is_empty()
            && self.world.is_running(rec.old_container()).await?;
        Ok(back.then_some(reloaded))
    }

    /// Stops, and keeps, the new container of each failed replica of
    /// `servers` that still runs, its set on the operator's line or about to
    /// be: Docker's DNS answers with every replica that runs, healthy or not,
    /// so nginx would send it requests again. Kept for its logs, as Swarm
    /// keeps a failed task; `docker-compose up -d` starts it again. The
    /// servers whose container it stopped.
    pub(super) async fn stop_failed_replicas(&self, servers: Vec<String>) -> Result<Vec<String>> {
        let mut stopped = Vec::new();
        for key in servers {
            let id = self
                .rollout
                .server(&key)
                .filter(|r| r.set.is_some())
                .and_then(|r| r.new_container.as_deref());
            if let Some(id) = id
                && self.world.stop(id).await?
            {
                stopped.push(key);
            }
        }
        Ok(stopped)
    }

    /// [`Self::stop_failed_replicas`] for the failed replicas of each set
    /// `changes` unpins, before the operator's line comes back; the journal
    /// keeps why, and the front end is told (the failure was told long ago).
    pub(super) async fn stop_failed_replicas_of_unpinned(
        &mut self,
        changes: &[ServerChange],
    ) -> Result<()> {
        let sets: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                ServerChange::Unpin { server, .. } => Some(server.as_str()),
                _ => None,
            })
            .collect();
        let failed: Vec<String> = self
            .rollout
            .servers
            .iter()
            .filter(|r| r.state == ServerState::Failed)
            .filter(|r| r.set.as_deref().is_some_and(|set| sets.contains(&set)))
            .map(|r| r.server.clone())
            .collect();
        let stopped = self.stop_failed_replicas(failed).await?;
        for key in &stopped {
            if let Some(rec) = self.rollout.server_mut(key) {
                let reason = format!(
                    "{}{STOPPED_AND_KEPT}",
                    rec.error.as_deref().unwrap_or_default()
                );
                self.observer.notice(&format!("server {key}: {reason}"));
                rec.error = Some(reason);
            }
        }
        if !stopped.is_empty() {
            self.save()?;
        }
        Ok(())
    }

    /// Adds to `changes` a burial for every replica's pinned line whose
    /// container no longer runs: nginx resolves every line's name, a `down`
    /// one's too. Every edit does this after its own changes (a replica may
    /// die, or be killed, at any time); a stop uses it to tell whether an
    /// edit is needed at all.
    pub(super) async fn bury_gone_replicas(
        &self,
        up: &Upstream,
        changes: &mut Vec<ServerChange>,
    ) -> Result<()> {
        let lines: Vec<&String> = up
            .servers
            .iter()
            .filter(|s| s.pinned_from.is_some())
            .map(|s| &s.address)
            .filter(|a| Address::parse(a).host != NOWHERE)
            .filter(|a| !changes.iter().any(|c| c.server() == *a))
            .collect();
        // Asked at once: every edit of a replica set asks.
        let running = join_all(
            lines
                .iter()
                .map(|a| async move { self.world.is_running(&Address::parse(a).host).await }),
        )
        .await;
        for (address, running) in lines.into_iter().zip(running) {
            if !running? {
                changes.push(ServerChange::Bury {
                    server: address.clone(),
                });
            }
        }
        Ok(())
    }
}
