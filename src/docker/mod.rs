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
pub mod nginx;
pub use nginx::{Mount, NginxContainer, find_nginx};
pub mod files;
pub use files::ContainerFs;
pub mod reload;
pub use reload::{
    NginxTestError, ReloadOutcome, Workers, reload, test_config, wait_old_workers_exit, worker_pids,
};
