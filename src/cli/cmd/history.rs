//! `nginx-rollout history [UPSTREAM]`.
use clap::Args;

use crate::cli::args::{Global, Output, SessionArgs};
use crate::cli::{exit, front};
use crate::rollout::{self, ProbeKind, Session};

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this upstream.
    upstream: Option<String>,
    /// Where nginx and the journal are.
    #[command(flatten)]
    session: SessionArgs,
}

/// Prints the revisions kept, oldest first (or one JSON array).
pub async fn exec(global: &Global, args: HistoryArgs) -> anyhow::Result<i32> {
    let session = Session::open(args.session.options(global, ProbeKind::default())?).await?;
    let entries = rollout::history(&session, args.upstream.as_deref()).await?;
    match global.output {
        Output::Json => outtext!("{}\n", serde_json::to_string(&entries)?)?,
        Output::Human => outtext!("{}", front::render_history(&entries))?,
    }
    Ok(exit::DONE)
}
