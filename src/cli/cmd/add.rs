//! `nginx-rollout add UPSTREAM ADDRESS [PARAM…]` and `remove UPSTREAM SERVER`.
use std::time::Duration;

use clap::Args;

use super::drain::run_edit;
use crate::cli::args::{Global, SessionArgs, duration, server_param};
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

/// Arguments of `remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The upstream.
    upstream: String,
    /// The server (address or unique host).
    server: String,
    /// Even the last live server (a full outage).
    #[arg(long)]
    force: bool,
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

/// Adds a server line, live.
pub async fn exec_add(global: &Global, args: AddArgs) -> anyhow::Result<i32> {
    let request = EditRequest {
        upstream: args.upstream,
        server: args.address,
        edit: LineEdit::Add(args.params),
        force: false,
        drain_timeout: args.drain_timeout,
        dry_run: args.dry_run,
    };
    run_edit(global, &args.session, request).await
}

/// Removes a server line, live.
pub async fn exec_remove(global: &Global, args: RemoveArgs) -> anyhow::Result<i32> {
    let request = EditRequest {
        upstream: args.upstream,
        server: args.server,
        edit: LineEdit::Remove,
        force: args.force,
        drain_timeout: args.drain_timeout,
        dry_run: args.dry_run,
    };
    run_edit(global, &args.session, request).await
}
