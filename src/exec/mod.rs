//! Running plans: the executor, the world it acts on, the events it
//! reports, the journal it keeps, the state directory it keeps it in and
//! the lock it holds.
mod canary;
mod edit;
mod event;
mod executor;
mod hooks;
mod journal;
mod leftover;
mod lock;
mod monitor;
mod replace;
mod state_dir;
mod take_out;
#[cfg(test)]
mod tests;
mod wait;
mod world;

pub use event::{Decision, Event, Observer, PlanKind, ServerResult, ServerSummary};
pub use executor::{Executor, Outcome};
pub use journal::{
    Rollout, RolloutKind, ServerRecord, ServerState, Status, StepRecord, StepStatus, time,
};
pub use leftover::Leftover;
pub use lock::{Lock, LockHeld};
pub use state_dir::StateDir;
pub use world::{Reloaded, World};
