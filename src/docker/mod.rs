//! Everything that talks to the Docker Engine API (bollard).
//!
//! Depends on `conf` only (for the [`crate::conf::Fs`] implementation over
//! container files); nothing here knows about plans or front ends.
pub mod backend;
pub mod client;
pub mod compose_labels;
pub mod exec;

pub use client::{connect, is_not_found};
pub use compose_labels::ComposeRef;
pub use exec::{ExecOutput, exec};

// The nginx side: the container, its config files, the reload protocol.
pub mod files;
pub mod nginx;
mod procfs;
pub mod reload;
pub mod workers;

pub use files::ContainerFs;
pub use nginx::{Mount, NginxCommand, NginxContainer, find_nginx};
pub use reload::{NginxTestError, ReloadOutcome, reload, test_config, wait_old_workers_exit};
pub use workers::{Workers, worker_pids};
