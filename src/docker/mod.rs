//! Everything that talks to the Docker Engine API (bollard).
//!
//! Depends on `conf` only (for the [`crate::conf::Fs`] implementation over
//! container files); nothing here knows about plans or front ends.
pub mod backend;
pub mod client;
pub mod compose_labels;
pub mod exec;

pub use client::connect;
pub use compose_labels::ComposeRef;
pub use exec::{ExecOutput, exec};
