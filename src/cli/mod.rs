//! Command-line front end.
use clap::Parser;

/// Zero-downtime rolling updates of Docker containers behind an nginx upstream.
#[derive(Parser)]
#[command(name = "nginx-rollout", version)]
struct Cli {}

/// Parses the command line, runs it and returns the process exit code.
pub fn main() -> i32 {
    let _cli = Cli::parse();
    0
}
