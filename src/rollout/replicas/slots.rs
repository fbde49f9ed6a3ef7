//! Naming a replica set's new containers: compose's `project-service-N`
//! (the lowest free numbers, so repeated deploys never grow them) or a network
//! alias's `name` / `name-b`, and the journal's record of each slot.
use anyhow::{Result, bail};

use crate::backends::{BackendContainer, next_slot};
use crate::exec::ServerRecord;
use crate::plan::{Order, ReplicaSet, Slot, UpdateConfig};
use crate::rollout::desired::Desired;

/// How the containers of one set are named.
pub(super) enum Naming {
    /// A compose service's: `project_service_N` (v1) or `project-service-N` (v2).
    Compose {
        /// `project_service_` or `project-service-`.
        prefix: String,
    },
    /// Containers of a network alias: start-first replacements alternate `name` / `name-b`.
    Slots,
}

impl Naming {
    pub(super) fn of(members: &[BackendContainer], compose: bool) -> Naming {
        let Some(c) = members
            .iter()
            .find_map(|m| m.compose.as_ref())
            .filter(|_| compose)
        else {
            return Naming::Slots;
        };
        let dash = format!("{}-{}-", c.project, c.service);
        let separator = if members.iter().any(|m| m.name.starts_with(&dash)) {
            '-'
        } else {
            '_'
        };
        Naming::Compose {
            prefix: format!("{}{separator}{}{separator}", c.project, c.service),
        }
    }

    fn numbered(&self, n: u32) -> String {
        match self {
            Naming::Compose { prefix, .. } => format!("{prefix}{n}"),
            Naming::Slots => unreachable!("only compose names are numbered"),
        }
    }
}

/// Names each slot's new container (those still unnamed), batch by batch in
/// slot order: stop-first recreates a replica under its own name and number;
/// otherwise a compose service's replicas take the lowest free numbers, and
/// other replicas alternate `name` / `name-b`. The numbers a batch's old
/// replicas free serve the next batch only when a failure stops the run: a
/// run that goes on past one ([`UpdateConfig::may_go_on_after_a_failure`])
/// keeps the failed slot's old replica running under its number. `numbered`
/// lists every container of the set with its compose number. Returns each
/// named slot's number, in order.
pub(super) fn name_slots(
    naming: &Naming,
    numbered: &[(String, Option<u32>)],
    slots: &mut [Slot],
    order: Order,
    update: &UpdateConfig,
    server: &str,
) -> Result<Vec<Option<u32>>> {
    let number_of = |name: &str| {
        numbered
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, number)| *number)
    };
    let mut used: Vec<u32> = numbered.iter().filter_map(|(_, n)| *n).collect();
    let batch = match update.parallelism.value {
        0 => slots.len().max(1),
        p => p as usize,
    };
    let mut numbers = Vec::new();
    for chunk in slots.chunks_mut(batch) {
        for slot in chunk.iter_mut().filter(|s| s.new.is_some()) {
            let (name, number) = match (naming, &slot.old) {
                (_, Some(old)) if order == Order::StopFirst => {
                    (old.container.clone(), number_of(&old.container))
                }
                (Naming::Compose { .. }, _) => {
                    let n = lowest_free(&used);
                    used.push(n);
                    (naming.numbered(n), Some(n))
                }
                (Naming::Slots, Some(old)) => {
                    (next_slot(&old.container), number_of(&old.container))
                }
                (Naming::Slots, None) => bail!(
                    "{server} names containers that share a network alias; only a compose service can be scaled"
                ),
            };
            slot.new = Some(name);
            numbers.push(number);
        }
        if update.may_go_on_after_a_failure() {
            continue;
        }
        for slot in chunk.iter() {
            if let Some(n) = slot.old.as_ref().and_then(|o| number_of(&o.container)) {
                used.retain(|u| *u != n);
            }
        }
    }
    Ok(numbers)
}

/// The journal's record of `slot` of the replica set behind the operator's
/// line `server`, before anything ran.
pub(super) fn slot_record(
    set: &ReplicaSet,
    slot: &Slot,
    server: &str,
    old_spec: Option<Desired>,
    new_spec: Option<Desired>,
) -> ServerRecord<Desired> {
    ServerRecord {
        replacement: slot.new.clone(),
        set: Some(server.to_string()),
        ..ServerRecord::pending(
            set.key(slot),
            slot.old
                .as_ref()
                .map(|o| o.container.clone())
                .unwrap_or_default(),
            old_spec,
            new_spec,
        )
    }
}

/// The lowest number from 1 not in `used`.
fn lowest_free(used: &[u32]) -> u32 {
    (1..).find(|n| !used.contains(n)).expect("a free number")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::{FailureAction, Replica};

    /// The numbers three replicas (`p_web_1` to `_3`) replaced start-first
    /// one at a time take under `update`.
    fn numbers_under(update: &UpdateConfig) -> Vec<Option<u32>> {
        let naming = Naming::Compose {
            prefix: "p_web_".into(),
        };
        let numbered: Vec<(String, Option<u32>)> =
            (1..=3).map(|n| (format!("p_web_{n}"), Some(n))).collect();
        let mut slots: Vec<Slot> = numbered
            .iter()
            .map(|(name, _)| Slot {
                old: Some(Replica {
                    container: name.clone(),
                    dead: false,
                }),
                new: Some(String::new()),
            })
            .collect();
        let numbers = name_slots(
            &naming,
            &numbered,
            &mut slots,
            Order::StartFirst,
            update,
            "web:8000",
        )
        .unwrap();
        for (slot, n) in slots.iter().zip(&numbers) {
            assert_eq!(slot.new, Some(format!("p_web_{}", n.unwrap())));
        }
        numbers
    }

    #[test]
    fn a_run_that_goes_on_past_a_failure_never_reuses_a_number_it_frees() {
        let mut update = UpdateConfig::engine_defaults();
        // A failure stops the run: each batch takes what the last one freed.
        assert_eq!(numbers_under(&update), [Some(4), Some(1), Some(2)]);
        // A failed slot's old replica keeps its number while the run goes on.
        update.failure_action.value = FailureAction::Continue;
        assert_eq!(numbers_under(&update), [Some(4), Some(5), Some(6)]);
        update.failure_action.value = FailureAction::Pause;
        update.max_failure_ratio.value = 0.5;
        assert_eq!(numbers_under(&update), [Some(4), Some(5), Some(6)]);
    }

    #[test]
    fn numbers_start_at_the_lowest_free_one() {
        assert_eq!(lowest_free(&[]), 1);
        assert_eq!(lowest_free(&[1, 2, 3]), 4);
        assert_eq!(lowest_free(&[2, 3, 4]), 1);
    }
}
