//! Planning a rollout: policies, steps, and the pure planner.
//!
//! Depends on `conf` (to compute each step's config diff) and nothing that
//! touches the outside world: no Docker, no command line, no compose files.
mod planner;
mod policy;
mod replicas;
mod step;
#[cfg(test)]
mod tests;

pub use planner::{
    Plan, PlanError, Target, Timeouts, Via, apply_changes_with, replacement_address,
    rolling_update, single_edit,
};
pub use policy::{
    ComposeSection, Direction, FailureAction, Order, Overrides, PolicyError, UpdateConfig, Words,
    resolve, with_flags,
};
pub use replicas::{Replica, ReplicaSet, Slot};
pub use step::{Action, ServerChange, ServerRef, Step};
