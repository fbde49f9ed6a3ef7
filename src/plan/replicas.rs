//! Replica sets: one operator line (`server web:8000;`) whose host names
//! several containers. nginx resolves the name once per reload, so the line
//! is pinned to one line per container for the rollout; each replica is then
//! replaced on its own line, and the operator's statement comes back byte for
//! byte at the end, when the last reload resolves the name to the new replicas.
use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::builder::Builder;
use super::hook::{HookKind, Hooks};
use super::planner::PlanError;
use super::policy::Order;
use super::step::{Action, ServerChange, ServerRef};
use crate::conf::{Address, PinnedLine};

/// A server line whose host names several containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSet {
    /// The operator's line as written in the upstream (`web:8000`).
    pub server: String,
    /// The operator's statement (`server web:8000;`), put back at the end;
    /// the planner reads it from the config when the line is not pinned yet.
    #[serde(default)]
    pub statement: String,
    /// Replicas that stay as they are (they run what is deployed already).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Replica>,
    /// What changes, in order: a replica replaced, added or removed per slot.
    pub slots: Vec<Slot>,
    /// How its new containers are made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<super::planner::Via>,
    /// The post-start and pre-stop hooks of what its new replicas are made from.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
}

/// One container of a replica set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Its name.
    pub container: String,
    /// It does not run (nginx cannot resolve it): it gets no line.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dead: bool,
}

/// One step of a replica set's update: an old replica replaced by a new one,
/// a replica added (scaling up) or one removed (scaling down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The replica it retires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Replica>,
    /// The container it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

impl ReplicaSet {
    /// The address of `container`'s pinned line (`p_web_1:8000`).
    pub fn pinned_address(&self, container: &str) -> String {
        Address::with_host(&self.server, container)
    }

    /// The journal's key for a slot: the pinned address of the replica it
    /// retires, or for a replica added, its address marked as added (a new
    /// replica may take the name, and so the address, of one retired before).
    pub fn key(&self, slot: &Slot) -> String {
        match (&slot.old, &slot.new) {
            (Some(o), _) => self.pinned_address(&o.container),
            (None, Some(n)) => format!("{} (added)", self.pinned_address(n)),
            (None, None) => self.server.clone(),
        }
    }

    /// Every replica there is now (kept, and those the slots retire).
    fn members(&self) -> impl Iterator<Item = &Replica> {
        self.kept
            .iter()
            .chain(self.slots.iter().filter_map(|s| s.old.as_ref()))
    }

    /// Whether a replica is dead (nginx still sends requests to its old address).
    pub(super) fn has_dead(&self) -> bool {
        self.members().any(|m| m.dead)
    }

    /// The change that pins the operator's line to the replicas that run.
    pub(super) fn pin(&self) -> Result<ServerChange, PlanError> {
        let lines = self
            .members()
            .filter(|m| !m.dead)
            .map(|m| PinnedLine {
                address: self.pinned_address(&m.container),
                down: false,
            })
            .collect::<Vec<_>>();
        if lines.is_empty() {
            return Err(PlanError::NoLiveReplica(self.server.clone()));
        }
        Ok(ServerChange::Pin {
            server: self.server.clone(),
            lines,
        })
    }

    /// How many replicas run now (and can serve).
    fn alive(&self) -> usize {
        self.members().filter(|m| !m.dead).count()
    }
}

impl Builder<'_> {
    /// The steps of one replica set: pin (with the first edit), replace slot
    /// after slot in batches of `parallelism`, put the operator's line back.
    pub(super) fn replica_set(
        &mut self,
        set: &ReplicaSet,
        order: Order,
        parallelism: usize,
        delay: Duration,
    ) -> Result<(), PlanError> {
        let pinned = self.is_pinned(&set.server)?;
        // Resumed or undone: a replica that runs without a line of its own (a
        // new one whose line was never written, or was buried) has nothing
        // to drain; it is stopped like a dead one.
        let lined;
        let set = if pinned {
            let lines = self.pinned_lines(&set.server)?;
            let mut with = set.clone();
            for r in with
                .kept
                .iter_mut()
                .chain(with.slots.iter_mut().filter_map(|s| s.old.as_mut()))
            {
                r.dead |= !lines.contains(&set.pinned_address(&r.container));
            }
            lined = with;
            &lined
        } else {
            set
        };
        let slots = set.slots.as_slice();
        let mut pending: Vec<ServerChange> = Vec::new();
        if !pinned {
            // The pinned lines carry the operator's parameters but `down`,
            // which the rollout writes and takes off line by line.
            if self.is_down(&set.server)? {
                return Err(PlanError::DownReplicaSet(set.server.clone()));
            }
            pending.push(set.pin()?);
        } else {
            // Resumed or undone: nginx resolves every line's name, a `down`
            // one's too, so a pinned line naming no replica that runs fails
            // every `nginx -t`: a dead replica's, an old one the stopped run
            // removed before burying its line, a new one that died. A slot's
            // new replica gets a line again when it serves. A kept replica
            // drained by that run serves again.
            let running: HashSet<String> = set
                .members()
                .filter(|m| !m.dead)
                .map(|m| set.pinned_address(&m.container))
                .collect();
            pending.extend(
                self.pinned_lines(&set.server)?
                    .into_iter()
                    .filter(|address| !running.contains(address))
                    .map(|server| ServerChange::Bury { server }),
            );
            for m in set.kept.iter().filter(|m| !m.dead) {
                let address = set.pinned_address(&m.container);
                if self.is_down(&address)? {
                    pending.push(ServerChange::Restore { server: address });
                }
            }
        }
        let batch = match order {
            Order::StartFirst => parallelism.max(1),
            // Stop-first takes replicas out: at least one keeps serving.
            Order::StopFirst => parallelism.min(set.alive().saturating_sub(1)).max(1),
        };
        let batches: Vec<&[Slot]> = slots.chunks(batch).collect();
        for (n, chunk) in batches.iter().enumerate() {
            match order {
                Order::StartFirst => self.start_first_slots(set, chunk, &mut pending)?,
                Order::StopFirst => self.stop_first_slots(set, chunk, &mut pending)?,
            }
            let last = n + 1 == batches.len();
            if !last {
                let (buries, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut pending)
                    .into_iter()
                    .partition(|c| matches!(c, ServerChange::Bury { .. }));
                if delay.is_zero() || rest.is_empty() {
                    // The replicas this batch stopped: their lines buried at
                    // once, not with the next reload (the last batch's go with
                    // the unpin); the healthy ones come back with the next drain.
                    pending = rest;
                    self.edit_without_reload(buries)?;
                } else {
                    // Stop-first: the healthy batch back before the delay, as
                    // single servers' (no capacity held back while it lasts),
                    // the burials in the same edit.
                    let mut changes = rest;
                    changes.extend(buries);
                    self.edit(changes, false)?;
                }
                if !delay.is_zero() {
                    self.delay(delay);
                }
            }
        }
        // The operator's line back: what was pending is subsumed by it.
        pending.retain(|c| matches!(c, ServerChange::Pin { .. }));
        pending.push(ServerChange::Unpin {
            server: set.server.clone(),
            statement: set.statement.clone(),
        });
        self.edit(pending, false)
    }

    /// An edit that drains `slots`' old replicas. When their lines are `down`
    /// already (a killed run drained them, maybe without the reload), nothing
    /// is written, but nginx must still load the drain and its old workers
    /// finish before the replicas stop: a reload and the drain wait all the same.
    fn edit_draining(
        &mut self,
        set: &ReplicaSet,
        slots: &[Slot],
        changes: Vec<ServerChange>,
        drains: bool,
    ) -> Result<(), PlanError> {
        let mut drained_before = false;
        for o in slots
            .iter()
            .filter_map(|s| s.old.as_ref())
            .filter(|o| !o.dead)
        {
            drained_before |= self.is_down(&set.pinned_address(&o.container))?;
        }
        let steps = self.steps.len();
        self.edit(changes, drains)?;
        if self.steps.len() == steps && drained_before {
            self.push(Action::Reload, None);
            self.push(
                Action::WaitDrained {
                    timeout: self.timeouts.drain,
                },
                None,
            );
        }
        Ok(())
    }

    /// A hook step over `refs`, every one with the set's hooks.
    fn set_hook(&mut self, set: &ReplicaSet, kind: HookKind, refs: &[ServerRef]) {
        self.hook(kind, refs.iter().map(|r| (r.clone(), &set.hooks)).collect());
    }

    fn refs(
        &self,
        set: &ReplicaSet,
        slots: &[Slot],
        pick: impl Fn(&Slot) -> Option<String>,
    ) -> Vec<ServerRef> {
        slots
            .iter()
            .filter_map(|s| {
                let container = pick(s)?;
                Some(ServerRef {
                    server: set.key(s),
                    address: set.pinned_address(&container),
                    container,
                })
            })
            .collect()
    }

    /// Start-first: the new replicas start and turn healthy beside the old
    /// ones; one edit adds their lines and drains the old ones; the old ones
    /// stop once the old workers are done, and their lines are buried in the
    /// next edit (their names no longer resolve).
    fn start_first_slots(
        &mut self,
        set: &ReplicaSet,
        slots: &[Slot],
        pending: &mut Vec<ServerChange>,
    ) -> Result<(), PlanError> {
        let new = self.refs(set, slots, |s| s.new.clone());
        if !new.is_empty() {
            self.push(
                Action::StartNew {
                    servers: new.clone(),
                },
                None,
            );
            self.set_hook(set, HookKind::PostStart, &new);
            self.push(
                Action::WaitHealthy {
                    servers: new,
                    timeout: self.timeouts.health,
                },
                None,
            );
        }
        let mut changes = std::mem::take(pending);
        for s in slots {
            if let Some(n) = &s.new {
                changes.push(ServerChange::Add {
                    server: set.server.clone(),
                    address: set.pinned_address(n),
                    slot: set.key(s),
                    completes: s.old.is_none(),
                });
            }
            if let Some(o) = s.old.as_ref().filter(|o| !o.dead) {
                changes.push(ServerChange::Drain {
                    server: set.pinned_address(&o.container),
                });
            }
        }
        let drains = slots
            .iter()
            .any(|s| s.old.as_ref().is_some_and(|o| !o.dead));
        self.edit_draining(set, slots, changes, drains)?;
        let old = self.refs(set, slots, |s| s.old.as_ref().map(|o| o.container.clone()));
        if !old.is_empty() {
            let alive = self.refs(set, slots, |s| {
                s.old
                    .as_ref()
                    .filter(|o| !o.dead)
                    .map(|o| o.container.clone())
            });
            self.set_hook(set, HookKind::PreStop, &alive);
            self.push(Action::StopOld { servers: old }, None);
        }
        pending.extend(
            slots
                .iter()
                .filter_map(|s| s.old.as_ref().filter(|o| !o.dead))
                .map(|o| ServerChange::Bury {
                    server: set.pinned_address(&o.container),
                }),
        );
        Ok(())
    }

    /// Stop-first: the old replicas are drained, then recreated under their
    /// own names (so their lines stay) and put back once healthy; replicas
    /// added start and get a line; replicas removed are drained and stopped.
    fn stop_first_slots(
        &mut self,
        set: &ReplicaSet,
        slots: &[Slot],
        pending: &mut Vec<ServerChange>,
    ) -> Result<(), PlanError> {
        if let Some(s) = slots
            .iter()
            .find(|s| matches!((&s.old, &s.new), (Some(o), Some(n)) if o.container != *n))
        {
            return Err(PlanError::RenamedInPlace(set.key(s)));
        }
        let mut changes = std::mem::take(pending);
        changes.extend(
            slots
                .iter()
                .filter_map(|s| s.old.as_ref().filter(|o| !o.dead))
                .map(|o| ServerChange::Drain {
                    server: set.pinned_address(&o.container),
                }),
        );
        let drains = changes
            .iter()
            .any(|c| matches!(c, ServerChange::Drain { .. }));
        self.edit_draining(set, slots, changes, drains)?;
        let replaced: Vec<Slot> = slots
            .iter()
            .filter(|s| s.old.is_some() && s.new.is_some())
            .cloned()
            .collect();
        let added: Vec<Slot> = slots.iter().filter(|s| s.old.is_none()).cloned().collect();
        let removed: Vec<Slot> = slots.iter().filter(|s| s.new.is_none()).cloned().collect();
        // Pre-stop in the replicas recreated (their old containers, under the same names).
        let stopping = self.refs(set, &replaced, |s| {
            s.old
                .as_ref()
                .filter(|o| !o.dead)
                .map(|o| o.container.clone())
        });
        self.set_hook(set, HookKind::PreStop, &stopping);
        let recreated = self.refs(set, &replaced, |s| s.new.clone());
        if !recreated.is_empty() {
            self.push(
                Action::Recreate {
                    servers: recreated.clone(),
                },
                None,
            );
        }
        let started = self.refs(set, &added, |s| s.new.clone());
        if !started.is_empty() {
            self.push(
                Action::StartNew {
                    servers: started.clone(),
                },
                None,
            );
        }
        let healthy: Vec<ServerRef> = recreated.iter().chain(&started).cloned().collect();
        self.set_hook(set, HookKind::PostStart, &healthy);
        if !healthy.is_empty() {
            self.push(
                Action::WaitHealthy {
                    servers: healthy,
                    timeout: self.timeouts.health,
                },
                None,
            );
        }
        let stopped = self.refs(set, &removed, |s| {
            s.old.as_ref().map(|o| o.container.clone())
        });
        if !stopped.is_empty() {
            let alive = self.refs(set, &removed, |s| {
                s.old
                    .as_ref()
                    .filter(|o| !o.dead)
                    .map(|o| o.container.clone())
            });
            self.set_hook(set, HookKind::PreStop, &alive);
            self.push(Action::StopOld { servers: stopped }, None);
        }
        for s in &replaced {
            let o = s.old.as_ref().expect("replaced slots have an old replica");
            // A dead replica had no line: it gets one now; a drained one comes back.
            pending.push(if o.dead {
                ServerChange::Add {
                    server: set.server.clone(),
                    address: set.pinned_address(&o.container),
                    slot: set.key(s),
                    completes: true,
                }
            } else {
                ServerChange::Restore {
                    server: set.pinned_address(&o.container),
                }
            });
        }
        for s in &added {
            pending.push(ServerChange::Add {
                server: set.server.clone(),
                address: set.pinned_address(s.new.as_deref().unwrap_or_default()),
                slot: set.key(s),
                completes: true,
            });
        }
        for s in &removed {
            if let Some(o) = s.old.as_ref().filter(|o| !o.dead) {
                pending.push(ServerChange::Bury {
                    server: set.pinned_address(&o.container),
                });
            }
        }
        Ok(())
    }
}
