//! Planning a rollout: policies, steps, and the pure planner.
//!
//! Depends on `conf` and `diff` (to compute each step's config diff) and nothing that
//! touches the outside world: no Docker, no command line, no compose files.
mod builder;
mod canary;
mod hook;
mod line_edit;
mod planner;
mod policy;
mod replicas;
mod step;
mod targets;
#[cfg(test)]
mod tests;

pub use builder::apply_changes_with;
pub use canary::{Canary, Gate, LineWeight, RampLeft, Share, expected_weight};
pub use hook::{HookCommand, HookExit, HookKind, Hooks, PreDeploy, command_line, split_command};
pub use line_edit::{LineEdit, revert_lines, single_edit};
pub use planner::{Plan, PlanError, RollingUpdate, Target, Timeouts, Via, rolling_update};
pub use policy::{
    ComposeSection, Direction, FailureAction, Order, Overrides, PolicyError, Source, UpdateConfig,
    Words, resolve, with_flags,
};
pub use replicas::{Replica, ReplicaSet, Slot};
pub use step::{Action, HookRun, ServerChange, ServerRef, Step};
pub use targets::replacement_address;
