//! `nginx-rollout status [UPSTREAM]`.
use clap::Args;

use crate::cli::args::{Global, Output, SessionArgs};
use crate::cli::{exit, front};
use crate::rollout::{self, ProbeKind, Session};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this upstream.
    upstream: Option<String>,
    /// Where nginx and the journal are.
    #[command(flatten)]
    session: SessionArgs,
}

/// Prints the table (or one JSON document) of servers, containers and the unfinished rollout.
pub async fn exec(global: &Global, args: StatusArgs) -> anyhow::Result<i32> {
    let session = Session::open(args.session.options(global, ProbeKind::default())?).await?;
    let report = rollout::status(&session, args.upstream.as_deref()).await?;
    match global.output {
        Output::Json => outtext!("{}\n", serde_json::to_string(&report)?)?,
        Output::Human => outtext!("{}", front::render_status(&report))?,
    }
    Ok(exit::DONE)
}
