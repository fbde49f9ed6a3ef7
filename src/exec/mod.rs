//! Running plans: the executor, the world it acts on, the events it
//! reports, the journal it keeps and the lock it holds.
mod canary;
mod edit;
mod event;
mod executor;
mod hooks;
mod journal;
mod lock;
mod monitor;
mod replace;
#[cfg(test)]
mod tests;
mod wait;
mod world;

pub use event::{Decision, Event, Observer, PlanKind, ServerResult, ServerSummary};
pub use executor::{Executor, Outcome};
pub use journal::{
    Rollout, RolloutKind, ServerRecord, ServerState, StateDir, Status, StepRecord, StepStatus, time,
};
pub use lock::{Lock, LockHeld};
pub use world::{Reloaded, World};
