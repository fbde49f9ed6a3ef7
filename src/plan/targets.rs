//! The steps that replace a plan's targets, the servers backed by one
//! container each (replica sets are `replicas.rs`), batch by batch.
//!
//! Stop-first, per batch: one edit that restores the previous batch and drains
//! this one (so N servers cost N+1 reloads, not the manual 2N), reload, wait
//! for the old workers, recreate, wait healthy. Start-first, per batch: start
//! the replacements, wait healthy, point the server lines at them, reload,
//! wait for the old workers, stop the old containers.
use std::time::Duration;

use super::builder::Builder;
use super::canary::{Canary, Ramp};
use super::hook::HookKind;
use super::planner::{PlanError, Target};
use super::step::{Action, ServerChange, ServerRef};
use crate::conf::Address;

/// The canary of a stop-first plan: which target, its ramp, and how long
/// a share is held by default.
pub(super) struct CanaryRun {
    pub(super) index: usize,
    pub(super) ramp: Ramp,
    pub(super) canary: Canary,
    pub(super) monitor: Duration,
}

impl Target {
    /// The address of its line in the upstream now: its own, or once
    /// [swapped](Target::swapped) its replacement's.
    pub(super) fn line(&self) -> String {
        match (&self.replacement, self.swapped) {
            (Some(new), true) => replacement_address(&self.server, new),
            _ => self.server.clone(),
        }
    }

    /// The change that puts this server back in the upstream once it serves.
    fn restore(&self) -> ServerChange {
        match &self.pinned {
            Some(statement) => ServerChange::Unpin {
                server: self.server.clone(),
                statement: statement.clone(),
            },
            None => ServerChange::Restore {
                server: self.server.clone(),
            },
        }
    }
}

impl Builder<'_> {
    /// Stop-first: the targets that take no traffic (the first `quiet_count`:
    /// the dead, then the idle) in batches of their own that drain nothing,
    /// then the canary alone, then the rest, `batch` at a time; each batch is
    /// put back by the next batch's edit (or before the delay), the last by a
    /// final edit.
    pub(super) fn stop_first(
        &mut self,
        targets: &[Target],
        operator_down: &[bool],
        quiet_count: usize,
        batch: usize,
        delay: Duration,
        canary: Option<CanaryRun>,
    ) -> Result<(), PlanError> {
        let mut pending_restore: Vec<ServerChange> = Vec::new();
        // The first `quiet_count` targets take no traffic: batches of their own, no drain.
        // The dead among them (sorted first) get batches of their own too. The
        // canary goes alone, after them and before the others that serve.
        let first = canary.as_ref().map(|c| c.index);
        let others: Vec<usize> = (0..targets.len()).filter(|&i| Some(i) != first).collect();
        let quiet_count = quiet_count - first.map_or(0, |i| usize::from(i < quiet_count));
        let (quiet, busy) = others.split_at(quiet_count);
        let (dead, idle) = quiet.split_at(quiet.iter().filter(|&&i| targets[i].dead).count());
        let batches: Vec<Vec<usize>> = dead
            .chunks(batch)
            .chain(idle.chunks(batch))
            .map(<[_]>::to_vec)
            .chain(first.map(|i| vec![i]))
            .chain(busy.chunks(batch).map(<[_]>::to_vec))
            .collect();
        let quiet_batches = dead.len().div_ceil(batch) + idle.len().div_ceil(batch);
        let mut drains_live = false;
        for (n, indices) in batches.iter().enumerate() {
            // A run killed between writing a drain and reloading left a `down` that
            // nginx may not have loaded: reload before stopping what is behind it.
            if !drains_live
                && indices
                    .iter()
                    .any(|&i| targets[i].drained_by_us && !targets[i].dead)
            {
                self.push(Action::Reload, None);
                self.push(
                    Action::WaitDrained {
                        timeout: self.timeouts.drain,
                    },
                    None,
                );
                drains_live = true;
            }
            // No edit while quiet batches run: a dead server's name fails `nginx -t` until it is back.
            let mut changes = if n < quiet_batches {
                Vec::new()
            } else {
                std::mem::take(&mut pending_restore)
            };
            changes.extend(
                indices
                    .iter()
                    .filter(|&&i| {
                        !operator_down[i] && !targets[i].drained_by_us && !targets[i].dead
                    })
                    .map(|&i| ServerChange::Drain {
                        server: targets[i].server.clone(),
                    }),
            );
            self.edit(changes, true)?;
            let refs: Vec<ServerRef> = indices
                .iter()
                .map(|&i| server_ref(&targets[i], &targets[i].container, &targets[i].server))
                .collect();
            // A dead container runs nothing: no pre-stop for it.
            self.hook(
                HookKind::PreStop,
                indices
                    .iter()
                    .zip(&refs)
                    .filter(|(i, _)| !targets[**i].dead)
                    .map(|(&i, r)| (r.clone(), &targets[i].hooks))
                    .collect(),
            );
            self.push(
                Action::Recreate {
                    servers: refs.clone(),
                },
                None,
            );
            self.hook(
                HookKind::PostStart,
                indices
                    .iter()
                    .zip(&refs)
                    .map(|(&i, r)| (r.clone(), &targets[i].hooks))
                    .collect(),
            );
            self.push(
                Action::WaitHealthy {
                    servers: refs,
                    timeout: self.timeouts.health,
                },
                None,
            );
            pending_restore.extend(
                indices
                    .iter()
                    .filter(|&&i| !operator_down[i] || targets[i].pinned.is_some())
                    .map(|&i| targets[i].restore()),
            );
            if let Some(c) = canary.as_ref().filter(|c| indices == &[c.index]) {
                let target = &targets[c.index];
                let server = server_ref(target, &target.container, &target.server);
                let first = std::mem::take(&mut pending_restore);
                pending_restore = self.ramp(&c.ramp, &c.canary, server, c.monitor, first)?;
            }
            let last = n + 1 == batches.len();
            if !last && !delay.is_zero() {
                // Put the healthy batch back before waiting: no capacity is held back during the delay.
                self.edit(std::mem::take(&mut pending_restore), false)?;
                self.delay(delay);
            }
        }
        self.edit(pending_restore, false)
    }

    /// Start-first: `batch` targets at a time, each started beside the old
    /// container, swapped into its line, and the old one stopped. Those
    /// [swapped](Target::swapped) already come first, all at once: a reload
    /// (nginx may not run their lines yet), the wait for the old workers and
    /// the stop of their old containers are left.
    pub(super) fn start_first(
        &mut self,
        targets: &[Target],
        batch: usize,
        delay: Duration,
    ) -> Result<(), PlanError> {
        let (swapped, targets): (Vec<Target>, Vec<Target>) =
            targets.iter().cloned().partition(|t| t.swapped);
        if !swapped.is_empty() {
            // nginx runs the swapped lines (the run it resumes may have
            // stopped before its reload), and its old workers finish.
            self.push(Action::Reload, None);
            self.push(
                Action::WaitDrained {
                    timeout: self.timeouts.drain,
                },
                None,
            );
            self.stop_old_of(&swapped);
        }
        let chunks: Vec<&[Target]> = targets.chunks(batch).collect();
        for (n, chunk) in chunks.iter().enumerate() {
            let new_refs: Vec<ServerRef> = chunk
                .iter()
                .map(|t| {
                    let name = t.replacement.as_deref().unwrap_or_default();
                    server_ref(t, name, &replacement_address(&t.server, name))
                })
                .collect();
            self.push(
                Action::StartNew {
                    servers: new_refs.clone(),
                },
                None,
            );
            self.hook(
                HookKind::PostStart,
                chunk
                    .iter()
                    .zip(&new_refs)
                    .map(|(t, r)| (r.clone(), &t.hooks))
                    .collect(),
            );
            self.push(
                Action::WaitHealthy {
                    servers: new_refs,
                    timeout: self.timeouts.health,
                },
                None,
            );
            let mut changes = Vec::new();
            for t in chunk.iter() {
                if t.pinned.is_some() {
                    changes.push(t.restore());
                }
                changes.push(ServerChange::Replace {
                    server: t.server.clone(),
                    with: replacement_address(
                        &t.server,
                        t.replacement.as_deref().unwrap_or_default(),
                    ),
                });
            }
            self.edit(changes, true)?;
            self.stop_old_of(chunk);
            if n + 1 < chunks.len() && !delay.is_zero() {
                self.delay(delay);
            }
        }
        Ok(())
    }

    /// The end of a start-first batch, once its lines name the replacements:
    /// the pre-stop hooks in the old containers that run, then their stop.
    fn stop_old_of(&mut self, batch: &[Target]) {
        let old_refs: Vec<ServerRef> = batch
            .iter()
            .map(|t| server_ref(t, &t.container, &t.server))
            .collect();
        self.hook(
            HookKind::PreStop,
            batch
                .iter()
                .zip(&old_refs)
                .filter(|(t, _)| !t.dead)
                .map(|(t, r)| (r.clone(), &t.hooks))
                .collect(),
        );
        self.push(Action::StopOld { servers: old_refs }, None);
    }
}

/// `t`'s server, served by `container` at `address`.
fn server_ref(t: &Target, container: &str, address: &str) -> ServerRef {
    ServerRef {
        server: t.server.clone(),
        container: container.to_string(),
        address: address.to_string(),
    }
}

/// The address of a replacement container: the old address with its host swapped
/// (`app1:3000` + `app1-b` → `app1-b:3000`).
pub fn replacement_address(server: &str, container: &str) -> String {
    Address::with_host(server, container)
}
