//! Rollouts against the live Docker engine: preparing a deploy, running it
//! (with automatic rollback), resuming and rolling back from the journal.
//!
//! The glue between `docker` (the outside world), `plan` (what to do) and
//! `exec` (doing it); the CLI only parses arguments and picks a front end.
pub mod live;
pub mod prepare;
pub mod run;

pub use live::{Desired, Live, ProbeKind};
pub use prepare::{DeployOptions, Mode, Prepared, prepare};
pub use run::{Runner, exit, new_rollout};
