//! Changing nginx's live config: server-line edits (a drain journaled before
//! it is written), `nginx -t` and reload, taking failed servers out of the
//! upstream, and at a stop, a config nginx loads (drains whose container was
//! untouched put back, and servers whose new container is healthy, lines of
//! replicas that are gone buried).
use anyhow::{Result, anyhow};
use futures_util::future::join_all;

use super::event::{Event, Observer};
use super::executor::{Executor, StepError};
use super::journal::{ServerRecord, ServerState, StepStatus};
use super::world::World;
use crate::conf::{Address, FileChange, FileChanged, NOWHERE, PinnedLine, Upstream};
use crate::plan::{Action, ServerChange, apply_changes_with, expected_weight};

impl<W: World, O: Observer + ?Sized> Executor<'_, W, O> {
    /// Applies server-line changes to the live config files (journaling drains first).
    pub(super) async fn edit(
        &mut self,
        upstream: &str,
        changes: &[ServerChange],
        force: bool,
    ) -> Result<(), StepError> {
        // A ramp's weight change expects its line to read what the steps done
        // left there: what the plan expects, unless a step was skipped.
        let left = self.rollout.weights_left();
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
                // A failed slot's old replica keeps its line: `stop_old` left
                // it running (once it is gone, the edit buries the line all
                // the same, as any replica's that no longer runs).
                ServerChange::Bury { server } => !self.is_failed(server),
                // The operator's own edits.
                ServerChange::Pin { .. }
                | ServerChange::AddServer { .. }
                | ServerChange::Remove { .. }
                | ServerChange::Revert { .. } => true,
            })
            .cloned()
            .map(|c| match c {
                ServerChange::Weight {
                    server,
                    weight,
                    expect: Some(planned),
                } => {
                    let expect = expected_weight(&left, &server).unwrap_or(planned);
                    ServerChange::Weight {
                        server,
                        weight,
                        expect: Some(expect),
                    }
                }
                c => c,
            })
            .collect();
        let changes = self.keep_failed_sets_pinned(changes).await?;
        // Read once here; the first write goes over these bytes.
        let config = self.world.load_config().await?;
        let up = config.upstream(upstream).map_err(anyhow::Error::from)?;
        let changes = self.without_buried_replicas(&up, changes);
        let mut loaded = Some(config);
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
            let mut config = match loaded.take() {
                Some(config) => config,
                None => self.world.load_config().await?,
            };
            let before = config.clone();
            if let Err(e) = apply_changes_with(&mut config, upstream, &changes, force) {
                // Nothing was written: the journal must not claim a drain that did not happen.
                for (server, state) in std::mem::take(&mut drained) {
                    if let Some(rec) = self.rollout.server_mut(&server) {
                        rec.state = state;
                    }
                }
                self.save()?;
                return Err(StepError::Fatal(e.into()));
            }
            // A replica that died since the plan was made (killed from
            // outside) has its line buried: nginx would not resolve it.
            let mut burials = Vec::new();
            let up = config.upstream(upstream).map_err(anyhow::Error::from)?;
            self.bury_gone_replicas(&up, &mut burials).await?;
            apply_changes_with(&mut config, upstream, &burials, false)
                .map_err(anyhow::Error::from)?;
            let written = config.changes_since(&before);
            match self.world.write_config(&written).await {
                Err(e) if FileChanged::is_cause_of(e.as_ref()) && attempts < 3 => attempts += 1,
                Err(e) => return Err(e.into()),
                Ok(()) => break written,
            }
        };
        // An edit not reloaded yet (a monitor failure taken out between an
        // edit step and its reload) is kept: the next reload confirms both,
        // and a failing `nginx -t` undoes both.
        for change in written {
            match self.last_edit.iter_mut().find(|c| c.path == change.path) {
                Some(pending) => pending.after = change.after,
                None => self.last_edit.push(change),
            }
        }
        self.last_edit_changes.extend(changes);
        self.last_edit_drained.extend(drained);
        Ok(())
    }

    /// A replica set every new replica of which failed and is gone cannot
    /// have the operator's line back: nginx would not resolve it. Its unpin
    /// is dropped (the edit buries the lines of replicas that are gone), so
    /// the set stays pinned, every line `down` (drained and reported, as a failed
    /// single server is; `rollback` brings the old version back).
    async fn keep_failed_sets_pinned(
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
    fn without_buried_replicas(
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

    /// `nginx -t` (restoring the edit byte for byte if it fails), reload, confirm.
    pub(super) async fn reload(&mut self) -> Result<(), StepError> {
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
            self.last_edit_changes.clear();
            // Not drained after all: each record as it was (a start-first
            // replica's new container runs already).
            for (server, state) in std::mem::take(&mut self.last_edit_drained) {
                if let Some(rec) = self.rollout.server_mut(&server) {
                    rec.state = state;
                }
            }
            // Nor written: a resume writes those edits again before its reload.
            for i in std::mem::take(&mut self.last_edit_steps) {
                let record = &mut self.rollout.steps[i];
                record.status = StepStatus::Pending;
                record.started_at = None;
                record.finished_at = None;
                record.error = Some("undone: nginx -t rejected the config it led to".into());
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
        self.old_workers.extend(reloaded.old_workers);
        // A resumed run's first reload: the workers the run it resumes left
        // finishing requests may still proxy to a server this run stops.
        if self.reloads == 1 && self.rollout.runs > 1 {
            self.old_workers.extend(reloaded.shutting_down);
        }
        for c in std::mem::take(&mut self.last_edit_changes) {
            let done = match c {
                ServerChange::Restore { server } => server,
                ServerChange::Unpin { server, .. } => {
                    // The operator's line back serves every replica of its set
                    // that turned healthy (a restore the unpin subsumed).
                    for rec in self.rollout.servers.iter_mut().filter(|r| {
                        r.set.as_deref() == Some(server.as_str()) && r.state == ServerState::Healthy
                    }) {
                        rec.state = ServerState::Done;
                    }
                    server
                }
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
        self.last_edit_drained.clear();
        self.last_edit_steps.clear();
        self.save()?;
        Ok(())
    }

    /// Takes servers whose new container failed after being restored back out
    /// of the upstream: drained while it runs; once it is gone, its line must not
    /// name it (nginx resolves every name at each reload), so a pinned line is
    /// buried and an operator's line pinned to nowhere, `down`. A new replica
    /// started beside the one it retires is taken out on its own line. A
    /// replica set already back on the operator's line needs only a reload:
    /// Docker's DNS no longer answers with a container that stopped; when no
    /// replica runs, the line is pinned to nowhere. A start-first replacement
    /// swapped in while its old container still serves gives the line back
    /// to it ([`Self::swaps_back`]) and is removed after the reload; its
    /// reason says so.
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
        // Replacements whose lines went back to their old containers: removed
        // once nginx no longer sends them requests.
        let mut swapped_back = Vec::new();
        for (key, reason) in failed.iter_mut() {
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
                    if !self.swaps_back(rec).await? {
                        swapped
                    } else {
                        reason.push_str(&format!(
                            "; its line is back on its old container {}",
                            rec.container
                        ));
                        swapped_back.extend(rec.new_container.clone());
                        changes.push(ServerChange::Replace {
                            server: swapped,
                            with: key.clone(),
                        });
                        continue;
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
        for (key, reason) in failed {
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
        match self.reload().await {
            Ok(()) => {}
            Err(StepError::Fatal(e)) => return Err(e),
            Err(_) => return Err(anyhow!("could not reload nginx")),
        }
        for id in swapped_back {
            if let Err(e) = self.world.stop_old(&id).await {
                tracing::warn!("could not remove failed replacement {id}: {e:#}");
            }
        }
        Ok(())
    }

    /// Whether a start-first server whose replacement failed once swapped in
    /// gets its line back on its old container: that still runs, and none of
    /// the steps that retire it (its pre-stop hooks, its stop) has begun.
    async fn swaps_back(&self, rec: &ServerRecord<W::Spec>) -> Result<bool> {
        let retiring = self
            .rollout
            .plan
            .steps
            .iter()
            .zip(&self.rollout.steps)
            .filter(|(_, r)| !matches!(r.status, StepStatus::Pending | StepStatus::Skipped))
            .any(|(s, _)| match &s.action {
                Action::PreStop { runs, .. } => runs.iter().any(|r| r.server.server == rec.server),
                Action::StopOld { servers } => servers.iter().any(|s| s.server == rec.server),
                _ => false,
            });
        Ok(!retiring && !rec.container.is_empty() && self.world.is_running(&rec.container).await?)
    }

    /// Adds to `changes` a burial for every replica's pinned line whose
    /// container no longer runs: nginx resolves every line's name, a `down`
    /// one's too. Every edit does this after its own changes (a replica may
    /// die, or be killed, at any time); a stop uses it to tell whether an
    /// edit is needed at all.
    async fn bury_gone_replicas(
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

    /// At a stop short of the end, leaves a config nginx loads as it is on
    /// disk: lines of replicas that are gone are buried, and with `restore`,
    /// servers we drained whose old container was never touched come back,
    /// and so do those whose new container is healthy ([`Self::put_back`]).
    pub(super) async fn settle(&mut self, restore: bool) -> Result<()> {
        let healthy = restore
            && self
                .rollout
                .servers
                .iter()
                .any(|s| s.state == ServerState::Healthy && s.goes_back_when_healthy());
        if healthy {
            // As before every edit: a new container that failed since is
            // counted and taken out, not put back.
            if let Err(e) = self.check_monitors().await {
                tracing::warn!(
                    "could not check the new containers before putting them back: {e:#}"
                );
            }
        }
        let servers: Vec<String> = self
            .rollout
            .servers
            .iter()
            .filter(|s| restore && s.state == ServerState::Drained)
            .map(|s| s.server.clone())
            .collect();
        let upstream = self.rollout.upstream.clone();
        let mut changes: Vec<ServerChange> = servers
            .iter()
            .map(|s| ServerChange::Restore { server: s.clone() })
            .collect();
        // Only a replica set has pinned lines to bury.
        let has_set = self.rollout.servers.iter().any(|s| s.set.is_some());
        let result = async {
            if has_set || healthy {
                let up = self.world.load_config().await?.upstream(&upstream)?;
                if healthy {
                    changes.extend(self.put_back(&up));
                }
                if has_set {
                    self.bury_gone_replicas(&up, &mut changes).await?;
                }
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(
                "could not tell which servers to put back or which replicas are gone: {e:#}"
            );
        }
        if changes.is_empty() {
            return Ok(());
        }
        let result = match self.edit(&upstream, &changes, false).await {
            Ok(()) => self.reload().await,
            Err(e) => Err(e),
        };
        if let Err(StepError::Fatal(e)) = result {
            let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
            tracing::warn!(
                "could not put drained or healthy servers back or bury the lines of replicas \
                 that are gone ({}): {e:#}; they stay recorded in the journal",
                changes.join(", ")
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

    /// The changes that put back into nginx the servers whose new container
    /// is healthy but whose line waits for a later edit (stop-first, a
    /// batch's restore rides on the next batch's drain), so that they serve
    /// while the run is stopped and `resume` does not replace them again
    /// (the reload marks them done). Each gets the change the plan has for
    /// it; a replica whose restore the set's last edit was to bring (the
    /// operator's line back) gets its own line restored, or added if it had
    /// none. Not the ramp's canary: its ramp brings it back.
    fn put_back(&self, up: &Upstream) -> Vec<ServerChange> {
        let planned: Vec<&ServerChange> = self
            .rollout
            .plan
            .steps
            .iter()
            .zip(&self.rollout.steps)
            .filter(|(_, r)| !matches!(r.status, StepStatus::Done | StepStatus::Skipped))
            .filter_map(|(s, _)| match &s.action {
                Action::Edit { changes, .. } => Some(changes),
                _ => None,
            })
            .flatten()
            .collect();
        let canary = self.rollout.plan.ramp.as_ref().map(|r| r.server.as_str());
        self.rollout
            .servers
            .iter()
            .filter(|r| r.state == ServerState::Healthy && r.goes_back_when_healthy())
            .filter(|r| canary != Some(r.server.as_str()))
            .filter_map(|r| {
                let key = r.server.as_str();
                let found = planned.iter().find(|c| match c {
                    ServerChange::Restore { server } | ServerChange::Unpin { server, .. } => {
                        server == key
                    }
                    ServerChange::Add {
                        slot,
                        completes: true,
                        ..
                    } => slot == key,
                    _ => false,
                });
                if let Some(&c) = found {
                    return Some(c.clone());
                }
                let set = r.set.as_deref()?;
                if up.servers.iter().any(|s| s.address == key) {
                    return up.is_down(key).then(|| ServerChange::Restore {
                        server: key.to_string(),
                    });
                }
                Some(ServerChange::Add {
                    server: set.to_string(),
                    address: r.replica_line()?,
                    slot: key.to_string(),
                    completes: true,
                })
            })
            .collect()
    }
}
