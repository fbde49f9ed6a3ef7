//! `nginx-rollout completions SHELL`.
use clap::{Args, CommandFactory};

use crate::cli::args::Cli;

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Prints the completion script for the shell on stdout.
pub fn exec(args: CompletionsArgs) -> anyhow::Result<i32> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "nginx-rollout",
        &mut std::io::stdout(),
    );
    Ok(0)
}
