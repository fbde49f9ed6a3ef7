//! `nginx-rollout weight UPSTREAM SERVER N`.
use std::time::Duration;

use clap::Args;

use super::drain::run_edit;
use crate::cli::args::{Global, SessionArgs, duration, weight};
use crate::plan::LineEdit;
use crate::rollout::EditRequest;

/// Arguments of `weight`.
#[derive(Debug, Args)]
pub struct WeightArgs {
    /// The upstream.
    upstream: String,
    /// The server (address or unique host).
    server: String,
    /// Its new weight (nginx's `weight=`, 1 or more; a line without one weighs 1).
    #[arg(value_parser = weight)]
    weight: u32,
    /// How long old workers may take.
    #[arg(long, value_parser = duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Print the plan and the diff; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where nginx and the journal are.
    #[command(flatten)]
    session: SessionArgs,
}

/// Sets the server's weight, live.
pub async fn exec(global: &Global, args: WeightArgs) -> anyhow::Result<i32> {
    let request = EditRequest {
        upstream: args.upstream,
        server: args.server,
        edit: LineEdit::Weight(args.weight),
        force: false,
        drain_timeout: args.drain_timeout,
        dry_run: args.dry_run,
    };
    run_edit(global, &args.session, request).await
}
