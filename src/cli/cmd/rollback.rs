//! `nginx-rollout rollback [UPSTREAM] [--to N]`.
use clap::Args;

use crate::cli::args::{ConfirmArgs, Global, RollbackFlags, SessionArgs};
use crate::cli::front;
use crate::rollout::{self, ProbeKind, RollbackRequest, Session};

/// Arguments of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Only rollouts of this upstream.
    upstream: Option<String>,
    /// Redeploy what revision N deployed.
    #[arg(long)]
    to: Option<u32>,
    /// Override the rollback settings the rollout was started with.
    #[command(flatten)]
    policy: RollbackFlags,
    /// Dry-run, interactive or scripted.
    #[command(flatten)]
    confirm: ConfirmArgs,
    /// Where nginx and the journal are.
    #[command(flatten)]
    session: SessionArgs,
}

/// Undoes the unfinished or the last rollout (or goes back to revision N).
pub async fn exec(global: &Global, args: RollbackArgs) -> anyhow::Result<i32> {
    let mut observer = front::observer(global, &args.confirm)?;
    let session = Session::open(args.session.options(global, ProbeKind::default())?).await?;
    let request = RollbackRequest {
        upstream: args.upstream,
        to: args.to,
        flags: (&args.policy).into(),
        dry_run: args.confirm.dry_run,
    };
    let ended = rollout::rollback(&session, &request, &mut *observer, front::signals()?).await?;
    Ok(front::finish(global, ended))
}
