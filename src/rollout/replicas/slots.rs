//! Naming a replica set's new containers: compose's `project-service-N`
//! (the lowest numbers free as the run begins, so repeated deploys never
//! grow them) or a network
//! alias's `name` / `name-b`, and the journal's record of each slot.
use anyhow::{Result, bail};

use crate::backends::{BackendContainer, next_slot};
use crate::exec::ServerRecord;
use crate::plan::{Order, ReplicaSet, Slot};
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

/// Names each slot's new container (those still unnamed), in slot order:
/// stop-first recreates a replica under its own name and number; otherwise a
/// compose service's replicas take the lowest numbers no container of the
/// set holds as the run is planned, and other replicas alternate `name` /
/// `name-b`. A number an old replica frees is never taken again in the same
/// run: that replica may still run when a later slot starts (a failed slot
/// keeps its old one, a pause a batch's), and the journal knows each replica
/// by its line. So the numbers alternate between two ranges from one deploy
/// to the next (1–3, then 4–6, then 1–3). `numbered` lists every container
/// of the set with its compose number. Returns each named slot's number, in
/// order.
pub(super) fn name_slots(
    naming: &Naming,
    numbered: &[(String, Option<u32>)],
    slots: &mut [Slot],
    order: Order,
    server: &str,
) -> Result<Vec<Option<u32>>> {
    let number_of = |name: &str| {
        numbered
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, number)| *number)
    };
    let mut used: Vec<u32> = numbered.iter().filter_map(|(_, n)| *n).collect();
    let mut numbers = Vec::new();
    for slot in slots.iter_mut().filter(|s| s.new.is_some()) {
        let (name, number) = match (naming, &slot.old) {
            (_, Some(old)) if order == Order::StopFirst => {
                (old.container.clone(), number_of(&old.container))
            }
            (Naming::Compose { .. }, _) => {
                let n = lowest_free(&used);
                used.push(n);
                (naming.numbered(n), Some(n))
            }
            (Naming::Slots, Some(old)) => (next_slot(&old.container), number_of(&old.container)),
            (Naming::Slots, None) => bail!(
                "{server} names containers that share a network alias; only a compose service can be scaled"
            ),
        };
        slot.new = Some(name);
        numbers.push(number);
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

    use crate::plan::Replica;

    /// The names the new replicas of `p_web_1` to `_3` (each replaced, in
    /// `order`) and of `added` more take.
    fn names_under(order: Order, added: usize) -> Vec<String> {
        let naming = Naming::Compose {
            prefix: "p_web_".into(),
        };
        let numbered: Vec<(String, Option<u32>)> =
            (1..=3).map(|n| (format!("p_web_{n}"), Some(n))).collect();
        let replaced = numbered.iter().map(|(name, _)| {
            Some(Replica {
                container: name.clone(),
                dead: false,
            })
        });
        let mut slots: Vec<Slot> = replaced
            .chain(std::iter::repeat_n(None, added))
            .map(|old| Slot {
                old,
                new: Some(String::new()),
            })
            .collect();
        let numbers = name_slots(&naming, &numbered, &mut slots, order, "web:8000").unwrap();
        for (slot, n) in slots.iter().zip(&numbers) {
            assert_eq!(slot.new, Some(format!("p_web_{}", n.unwrap())));
        }
        slots.into_iter().filter_map(|s| s.new).collect()
    }

    #[test]
    fn a_run_never_takes_a_number_an_old_replica_of_it_frees() {
        // A failed slot keeps its old replica, a pause a batch's: a later
        // slot must not start under its name.
        assert_eq!(
            names_under(Order::StartFirst, 0),
            ["p_web_4", "p_web_5", "p_web_6"]
        );
        // Stop-first recreates each under its own name; one added takes a
        // number none holds.
        assert_eq!(
            names_under(Order::StopFirst, 1),
            ["p_web_1", "p_web_2", "p_web_3", "p_web_4"]
        );
        assert_eq!(
            names_under(Order::StartFirst, 1),
            ["p_web_4", "p_web_5", "p_web_6", "p_web_7"]
        );
    }

    #[test]
    fn numbers_start_at_the_lowest_free_one() {
        assert_eq!(lowest_free(&[]), 1);
        assert_eq!(lowest_free(&[1, 2, 3]), 4);
        assert_eq!(lowest_free(&[2, 3, 4]), 1);
    }
}
