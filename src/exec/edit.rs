//! Changing nginx's live config: server-line edits (a drain journaled before
//! it is written), `nginx -t` and reload, taking failed servers out of the
//! upstream and putting back, at a stop, drains whose container was untouched.
use anyhow::{Result, anyhow};

use super::event::{Event, Observer};
use super::executor::{Executor, StepError};
use super::journal::ServerState;
use super::world::World;
use crate::conf::{Address, FileChange, FileChanged, NOWHERE, PinnedLine};
use crate::plan::{ServerChange, apply_changes_with};

impl<W: World, O: Observer + ?Sized> Executor<'_, W, O> {
    /// Applies server-line changes to the live config files (journaling drains first).
    pub(super) async fn edit(
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

    /// Takes servers whose new container failed after being restored back out
    /// of the upstream: drained while it runs; once it is gone, its line must not
    /// name it (nginx resolves every name at each reload), so a pinned line is
    /// buried and an operator's line pinned to nowhere, `down`. A replica set
    /// already back on the operator's line needs only a reload: Docker's DNS
    /// no longer answers with a container that stopped.
    pub(super) async fn drain_live(&mut self, failed: &[(String, String)]) -> Result<()> {
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

    /// Restores servers we drained whose old container was never touched.
    pub(super) async fn undo_untouched_drains(&mut self) -> Result<()> {
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
