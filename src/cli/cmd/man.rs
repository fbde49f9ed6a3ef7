//! `nginx-rollout man`.
use clap::CommandFactory;

use crate::cli::args::Cli;

/// Prints the man page (roff) on stdout.
pub fn exec() -> anyhow::Result<i32> {
    clap_mangen::Man::new(Cli::command()).render(&mut crate::cli::output::stdout())?;
    Ok(0)
}
