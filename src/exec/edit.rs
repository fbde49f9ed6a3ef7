//! Changing nginx's live config: server-line edits (a drain journaled before
//! it is written), `nginx -t` and reload, and at a stop, a config nginx loads
//! (drains whose container was untouched put back, and servers whose new
//! container is healthy, lines of replicas that are gone buried). Taking
//! failed servers out is `take_out`'s.
use anyhow::{Result, anyhow};

use super::event::{Event, Observer};
use super::executor::{Executor, StepError};
use super::journal::{ServerState, StepStatus};
use super::world::World;
use crate::conf::{FileChange, FileChanged, Upstream};
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
        self.stop_failed_replicas_of_unpinned(&changes).await?;
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

    /// `nginx -t` (restoring the edit byte for byte if it fails), reload, confirm.
    pub(super) async fn reload(&mut self) -> Result<(), StepError> {
        if let Err(e) = self.world.test_config().await {
            let e = self.explained(e);
            let undo: Vec<FileChange> = self
                .last_edit
                .iter()
                .map(|c| FileChange {
                    path: c.path.clone(),
                    before: c.after.clone(),
                    after: c.before.clone(),
                })
                .collect();
            // Someone else wrote since our edit (perhaps while `nginx -t`
            // read it): their bytes stay, our edit with them, and the
            // journal says so; nginx's complaint comes first.
            if let Err(w) = self.world.write_config(&undo).await {
                return Err(StepError::Fatal(anyhow!(
                    "{e:#}\nthe config was not restored: {w:#}; nginx was not reloaded"
                )));
            }
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
