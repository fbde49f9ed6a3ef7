//! One file per command (or pair: drain/undrain, add/remove, deploy/plan):
//! its arguments and an `exec` that calls one library function and turns its
//! result into output and an exit code.
mod add;
pub mod completions;
pub mod conf;
mod deploy;
mod drain;
mod history;
pub mod man;
pub mod render;
mod resume;
mod rollback;
mod status;
mod weight;

use clap::Subcommand;

use super::args::Global;
use super::{live, offline};

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and edit nginx configuration files losslessly (offline, no Docker).
    #[command(subcommand)]
    Conf(conf::ConfCommand),
    /// Render a tera template (upstream blocks or a whole config).
    Render(render::RenderArgs),
    /// Table of upstreams, servers, their state and containers, and any unfinished rollout.
    Status(status::StatusArgs),
    /// Take one server out of an upstream, live: edit, nginx -t, reload, wait for old workers.
    Drain(drain::DrainArgs),
    /// Put a drained server back, live.
    Undrain(drain::UndrainArgs),
    /// Set a server's weight, live (`weight=N`): edit, nginx -t, reload, wait for old workers.
    Weight(weight::WeightArgs),
    /// Add a server line to an upstream, live (indented like its neighbours).
    Add(add::AddArgs),
    /// Remove a server line from an upstream, live (`rollback` puts it back).
    Remove(add::RemoveArgs),
    /// Rolling update of an upstream's containers.
    Deploy(Box<deploy::DeployArgs>),
    /// The same as `deploy --dry-run`.
    Plan(Box<deploy::DeployArgs>),
    /// Continue a paused or interrupted rollout.
    Resume(resume::ResumeArgs),
    /// Undo the unfinished or the last rollout, a rollback too (or go back to revision N).
    Rollback(rollback::RollbackArgs),
    /// Revisions, newest last (ten are kept).
    History(history::HistoryArgs),
    /// Shell completions.
    Completions(completions::CompletionsArgs),
    /// The man page (roff) on stdout.
    Man,
}

/// Runs one command; returns the exit code.
pub fn run(global: &Global, command: Command) -> i32 {
    match command {
        Command::Conf(c) => offline(conf::exec(c, global.verbose)),
        Command::Render(a) => offline(render::exec(a)),
        Command::Completions(a) => offline(completions::exec(a)),
        Command::Man => offline(man::exec()),
        Command::Status(a) => live(status::exec(global, a)),
        Command::Drain(a) => live(drain::exec_drain(global, a)),
        Command::Undrain(a) => live(drain::exec_undrain(global, a)),
        Command::Weight(a) => live(weight::exec(global, a)),
        Command::Add(a) => live(add::exec_add(global, a)),
        Command::Remove(a) => live(add::exec_remove(global, a)),
        Command::Deploy(a) => live(deploy::exec(global, *a, false)),
        Command::Plan(a) => live(deploy::exec(global, *a, true)),
        Command::Resume(a) => live(resume::exec(global, a)),
        Command::Rollback(a) => live(rollback::exec(global, a)),
        Command::History(a) => live(history::exec(global, a)),
    }
}
