//! `nginx-rollout add UPSTREAM ADDRESS [PARAM…]` and `remove UPSTREAM SERVER`.
use clap::Args;

use super::drain::run_edit;
use crate::cli::args::{Global, LineEditArgs, ServerLineArgs, server_param};
use crate::plan::LineEdit;
use crate::rollout::EditRequest;

/// Arguments of `add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The upstream.
    upstream: String,
    /// The new server's address (`app3:3000`, `10.0.0.7:80`, `unix:/run/app.sock`).
    address: String,
    /// Its parameters, as for `conf add-server` (`weight=2 max_fails=3 backup` …).
    #[arg(value_parser = server_param)]
    params: Vec<String>,
    /// The drain timeout, a dry run, where nginx and the journal are.
    #[command(flatten)]
    edit: LineEditArgs,
}

/// Arguments of `remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The upstream and the server.
    #[command(flatten)]
    line: ServerLineArgs,
    /// Even the last live server (a full outage).
    #[arg(long)]
    force: bool,
    /// The drain timeout, a dry run, where nginx and the journal are.
    #[command(flatten)]
    edit: LineEditArgs,
}

/// Adds a server line, live.
pub async fn exec_add(global: &Global, args: AddArgs) -> anyhow::Result<i32> {
    let request = EditRequest {
        upstream: args.upstream,
        server: args.address,
        edit: LineEdit::Add(args.params),
        force: false,
        drain_timeout: args.edit.drain_timeout,
        dry_run: args.edit.dry_run,
    };
    run_edit(global, &args.edit.session, request).await
}

/// Removes a server line, live.
pub async fn exec_remove(global: &Global, args: RemoveArgs) -> anyhow::Result<i32> {
    let request = EditRequest {
        upstream: args.line.upstream,
        server: args.line.server,
        edit: LineEdit::Remove,
        force: args.force,
        drain_timeout: args.edit.drain_timeout,
        dry_run: args.edit.dry_run,
    };
    run_edit(global, &args.edit.session, request).await
}
