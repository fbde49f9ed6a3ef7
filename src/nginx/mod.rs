//! The nginx wing: the nginx container (found and described), its config
//! files as nginx sees them (read, written in place, read back), the reload
//! protocol and the worker processes that prove it. Built on the thin
//! [`crate::docker`] client and [`crate::conf`]; knows nothing of backends.
mod cmdline;
mod discover;
mod files;
mod procfs;
mod reload;
mod tester;
mod workers;

pub use cmdline::NginxCommand;
pub use discover::{Mount, NginxContainer, find_nginx};
pub use files::ContainerFs;
pub use reload::{NginxTestError, ReloadOutcome, reload, test_config, wait_old_workers_exit};
pub use tester::ConfigTester;
pub use workers::{Workers, worker_pids};
