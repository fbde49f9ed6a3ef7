//! Running plans: the executor, the backend it acts through, the events it
//! reports, the journal it keeps and the lock it holds.
pub mod backend;
pub mod event;
pub mod executor;
pub mod journal;
pub mod lock;

pub use backend::Backend;
pub use event::{Decision, Event, Observer};
pub use executor::{Executor, Outcome};
pub use journal::{Rollout, StateDir, Status};
pub use lock::{Lock, LockHeld};

#[cfg(test)]
mod tests;
