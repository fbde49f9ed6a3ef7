//! `nginx-rollout completions SHELL`.
use std::io::Write;

use clap::{Args, CommandFactory};

use crate::cli::args::Cli;

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Prints the completion script for the shell on stdout. It is made in
/// memory first: `clap_complete` panics when its writer fails.
pub fn exec(args: CompletionsArgs) -> anyhow::Result<i32> {
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "nginx-rollout",
        &mut script,
    );
    let mut out = crate::cli::output::stdout();
    out.write_all(&script)?;
    out.flush()?;
    Ok(0)
}
