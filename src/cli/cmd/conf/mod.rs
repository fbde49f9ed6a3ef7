//! `nginx-rollout conf …`: the offline commands on configuration files.
//! `read.rs` check, print, upstreams · `crossplane.rs` parse, lex, build ·
//! `edit.rs` drain, undrain and the other server edits.
mod crossplane;
mod edit;
mod read;

use crate::conf::{Located, Lookup, locate, visible};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// The `conf` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfCommand {
    /// Parse FILE, its main configuration and everything included; exit 1 with the place of the first error.
    Check(Target),
    /// Write the parsed FILE back to stdout, byte for byte.
    Print {
        /// Configuration file.
        file: PathBuf,
    },
    /// Print FILE as JSON in crossplane's `parse` format.
    Parse(crossplane::ParseArgs),
    /// Print FILE's tokens as JSON in crossplane's `lex` format.
    Lex(crossplane::LexArgs),
    /// Turn a crossplane JSON payload (from `conf parse`) back into nginx configuration text.
    Build(crossplane::BuildArgs),
    /// List every upstream, its servers, their parameters and state.
    Upstreams {
        /// The file and its main configuration.
        #[command(flatten)]
        target: Target,
        /// Output JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark SERVER of UPSTREAM `down`, in place.
    Drain(edit::EditArgs),
    /// Remove the `down` mark of SERVER of UPSTREAM, in place.
    Undrain(edit::EditArgs),
    /// Set SERVER's `weight=N`, in place.
    SetWeight(edit::SetWeightArgs),
    /// Add `server ADDRESS [PARAMS];` after the last server of UPSTREAM, in place.
    AddServer(edit::AddServerArgs),
    /// Remove SERVER's line from UPSTREAM, in place.
    RemoveServer(edit::EditArgs),
    /// Point SERVER at another address, keeping its parameters, in place.
    ReplaceAddress(edit::ReplaceAddressArgs),
}

/// A configuration file and, as with nginx's own `-p` and `-c`, the main
/// configuration that reaches it.
#[derive(Debug, Args)]
pub struct Target {
    /// The configuration file: the main one, or one it includes (e.g. `sites-enabled/app.conf`).
    file: PathBuf,
    /// nginx's prefix: a relative --conf is taken from it; without --conf, its
    /// nginx.conf is the main file (or, if that does not include FILE, relative
    /// includes of FILE are taken from it).
    #[arg(short = 'p', long, value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// The main configuration file, whose includes reach FILE (default: the
    /// nearest ancestor directory's nginx.conf that includes FILE, else FILE itself).
    #[arg(short = 'c', long = "conf", value_name = "MAIN")]
    conf: Option<PathBuf>,
}

impl Target {
    /// Finds and loads the main configuration; says which with `--verbose`,
    /// and warns of each include that could not be read.
    fn locate(&self, verbose: bool) -> anyhow::Result<Located> {
        let located = locate(&Lookup {
            file: &self.file,
            prefix: self.prefix.as_deref(),
            conf: self.conf.as_deref(),
        })?;
        if verbose {
            for passed in &located.passed_over {
                errln!("nginx-rollout: {}", visible(passed));
            }
            errln!("nginx-rollout: {}", visible(&located.describe()));
        }
        for u in located.set.unread_includes() {
            errln!(
                "nginx-rollout: warning: {}; {}",
                visible(&u.to_string()),
                u.consequence()
            );
        }
        Ok(located)
    }
}

/// Runs a `conf` subcommand; returns the exit code.
pub fn exec(cmd: ConfCommand, verbose: bool) -> anyhow::Result<i32> {
    match cmd {
        ConfCommand::Check(t) => read::check(&t.locate(verbose)?, &t.file),
        ConfCommand::Print { file } => read::print(&file),
        ConfCommand::Parse(a) => crossplane::parse(a),
        ConfCommand::Lex(a) => crossplane::lex(a),
        ConfCommand::Build(a) => crossplane::build(a),
        ConfCommand::Upstreams { target, json } => read::upstreams(&target.locate(verbose)?, json),
        ConfCommand::Drain(a) => edit::server(a, verbose, edit::Kind::Drain),
        ConfCommand::Undrain(a) => edit::server(a, verbose, edit::Kind::Undrain),
        ConfCommand::RemoveServer(a) => edit::server(a, verbose, edit::Kind::Remove),
        ConfCommand::SetWeight(a) => edit::set_weight(a, verbose),
        ConfCommand::AddServer(a) => edit::add_server(a, verbose),
        ConfCommand::ReplaceAddress(a) => edit::replace_address(a, verbose),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
