//! Planning a rollout: policies, steps, and the pure planner.
//!
//! Depends on `conf` (to compute each step's config diff) and nothing that
//! touches the outside world.
pub mod planner;
pub mod policy;
pub mod step;
#[cfg(test)]
mod tests;

pub use planner::{Plan, PlanError, Target, Timeouts, plan};
pub use policy::{FailureAction, Order, Source, UpdateConfig};
pub use step::{Action, ServerChange, ServerRef, Step};
