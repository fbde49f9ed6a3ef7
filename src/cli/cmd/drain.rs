//! `nginx-rollout drain UPSTREAM SERVER` and `undrain UPSTREAM SERVER`.
use std::time::Duration;

use clap::Args;

use crate::cli::args::{ConfirmArgs, Global, ServerLineArgs, SessionArgs, duration};
use crate::cli::front;
use crate::plan::LineEdit;
use crate::rollout::{self, EditRequest, ProbeKind, Session};

/// Arguments of `drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The upstream and the server.
    #[command(flatten)]
    line: ServerLineArgs,
    /// Even the last live server (a full outage).
    #[arg(long)]
    force: bool,
    /// How long old workers may take.
    #[arg(long, value_parser = duration, default_value = "30s")]
    drain_timeout: Duration,
    /// Where nginx and the journal are.
    #[command(flatten)]
    session: SessionArgs,
}

/// Arguments of `undrain`.
#[derive(Debug, Args)]
pub struct UndrainArgs {
    /// The upstream and the server.
    #[command(flatten)]
    line: ServerLineArgs,
    /// Where nginx and the journal are.
    #[command(flatten)]
    session: SessionArgs,
}

/// Takes the server out, live.
pub async fn exec_drain(global: &Global, args: DrainArgs) -> anyhow::Result<i32> {
    let request = EditRequest {
        upstream: args.line.upstream,
        server: args.line.server,
        edit: LineEdit::Drain,
        force: args.force,
        drain_timeout: args.drain_timeout,
        dry_run: false,
    };
    run_edit(global, &args.session, request).await
}

/// Puts the server back, live.
pub async fn exec_undrain(global: &Global, args: UndrainArgs) -> anyhow::Result<i32> {
    let request = EditRequest {
        upstream: args.line.upstream,
        server: args.line.server,
        edit: LineEdit::Undrain,
        force: false,
        drain_timeout: Duration::from_secs(30),
        dry_run: false,
    };
    run_edit(global, &args.session, request).await
}

/// Runs one live line edit (never asking: the command is the decision).
pub(super) async fn run_edit(
    global: &Global,
    session: &SessionArgs,
    request: EditRequest,
) -> anyhow::Result<i32> {
    let never_ask = ConfirmArgs {
        dry_run: false,
        interactive: false,
        yes: true,
    };
    let mut observer = front::observer(global, &never_ask)?;
    let session = Session::open(session.options(global, ProbeKind::default())?).await?;
    let ended = rollout::edit_server(&session, &request, &mut *observer, front::signals()?).await?;
    Ok(front::finish(global, ended))
}
