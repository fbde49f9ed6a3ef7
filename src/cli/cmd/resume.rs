//! `nginx-rollout resume [UPSTREAM]`.
use clap::Args;

use crate::cli::args::{ConfirmArgs, Global, SessionArgs};
use crate::cli::front;
use crate::rollout::{self, ProbeKind, ResumeRequest, Session};

/// Arguments of `resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Only a rollout of this upstream.
    upstream: Option<String>,
    /// Dry-run, interactive or scripted.
    #[command(flatten)]
    confirm: ConfirmArgs,
    /// Where nginx and the journal are.
    #[command(flatten)]
    session: SessionArgs,
}

/// Continues the paused or interrupted rollout.
pub async fn exec(global: &Global, args: ResumeArgs) -> anyhow::Result<i32> {
    let mut observer = front::observer(global, &args.confirm)?;
    let session = Session::open(args.session.options(global, ProbeKind::default())?).await?;
    let request = ResumeRequest {
        upstream: args.upstream,
        dry_run: args.confirm.dry_run,
    };
    let ended = rollout::resume(&session, &request, &mut *observer, front::signals()?).await?;
    Ok(front::finish(global, ended))
}
