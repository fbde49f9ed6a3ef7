//! `nginx-rollout weight UPSTREAM SERVER N`.
use clap::Args;

use super::drain::run_edit;
use crate::cli::args::{Global, LineEditArgs, ServerLineArgs, weight};
use crate::plan::LineEdit;
use crate::rollout::EditRequest;

/// Arguments of `weight`.
#[derive(Debug, Args)]
pub struct WeightArgs {
    /// The upstream and the server.
    #[command(flatten)]
    line: ServerLineArgs,
    /// Its new weight (nginx's `weight=`, 1 or more; a line without one weighs 1).
    #[arg(value_parser = weight)]
    weight: u32,
    /// The drain timeout, a dry run, where nginx and the journal are.
    #[command(flatten)]
    edit: LineEditArgs,
}

/// Sets the server's weight, live.
pub async fn exec(global: &Global, args: WeightArgs) -> anyhow::Result<i32> {
    let request = EditRequest {
        upstream: args.line.upstream,
        server: args.line.server,
        edit: LineEdit::Weight(args.weight),
        force: false,
        drain_timeout: args.edit.drain_timeout,
        dry_run: args.edit.dry_run,
    };
    run_edit(global, &args.edit.session, request).await
}
