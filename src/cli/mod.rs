//! Command-line front end.
mod conf;
mod render;

use clap::{Parser, Subcommand};

/// Zero-downtime rolling updates of Docker containers behind an nginx upstream.
#[derive(Parser)]
#[command(name = "nginx-rollout", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The top-level commands.
#[derive(Subcommand)]
enum Command {
    /// Inspect and edit nginx configuration files losslessly.
    #[command(subcommand)]
    Conf(conf::ConfCommand),
    /// Render a tera template (upstream blocks or a whole config).
    Render(render::RenderArgs),
}

/// Parses the command line, runs it and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Conf(c) => conf::run(c),
        Command::Render(r) => render::run(r),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nginx-rollout: {e:#}");
            1
        }
    }
}
