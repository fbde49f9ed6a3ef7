//! The tests against the real Docker daemon and the real nginx: the two
//! wings on their own (`docker_nginx`, `docker_backend`), then whole
//! rollouts of private copies of the seed stack under load, and one against
//! a second daemon reached over ssh (`remote_daemon`).
#[path = "../support/mod.rs"]
mod support;

mod cli_front;
mod compose_oracle;
mod crash_recovery;
mod dead_servers;
mod deploy_engine;
mod deploy_failures;
mod deploy_seed;
mod docker_backend;
mod docker_nginx;
mod dry_run;
mod exit_codes;
mod hooks;
mod interactive;
mod json_events;
mod live_faults;
mod operator_edits;
mod policy_failures;
mod policy_history;
mod policy_order;
mod policy_pause;
mod remote_daemon;
mod seed000;
mod seed003;
mod weights;
