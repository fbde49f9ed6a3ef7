//! `drain`, `undrain`, `weight`, `add`, `remove`: one server line changed
//! live, with the full reload protocol, journaled like any rollout (so
//! `rollback` puts the line back).
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use super::desired::Desired;
use super::run::{Ended, Origin, Runner, new_rollout, show_or_approve};
use super::session::{Session, refuse_if_unfinished};
use crate::exec::{Observer, RolloutKind, ServerRecord, World};
use crate::plan::{LineEdit, UpdateConfig, single_edit};

/// What a live line edit is asked.
#[derive(Debug, Clone)]
pub struct EditRequest {
    /// The upstream.
    pub upstream: String,
    /// The server (address as written, or unique host); for an add, the new address.
    pub server: String,
    /// What to change.
    pub edit: LineEdit,
    /// Even the last live server (a full outage).
    pub force: bool,
    /// How long old workers may take to finish their requests.
    pub drain_timeout: Duration,
    /// Show the plan (the diff); change nothing.
    pub dry_run: bool,
}

impl EditRequest {
    fn kind(&self) -> RolloutKind {
        match self.edit {
            LineEdit::Drain => RolloutKind::Drain,
            LineEdit::Undrain => RolloutKind::Undrain,
            LineEdit::Weight(_) => RolloutKind::Weight,
            LineEdit::Add(_) => RolloutKind::Add,
            LineEdit::Remove => RolloutKind::Remove,
        }
    }
}

/// Changes one server line, live.
pub async fn edit_server(
    session: &Session,
    request: &EditRequest,
    observer: &mut dyn Observer,
    cancel: watch::Receiver<bool>,
) -> Result<Ended> {
    let world = &session.world;
    let kind = request.kind();
    // A dry run is read-only: no lock, no journal.
    let locked = if request.dry_run {
        None
    } else {
        Some(session.lock(observer).await?)
    };
    let run_in = locked.as_ref().map(|l| &l.state);
    // A drain or undrain may help a paused rollout along; the new edits would
    // change lines under its feet.
    if let Some(state) = run_in
        && !matches!(kind, RolloutKind::Drain | RolloutKind::Undrain)
    {
        refuse_if_unfinished::<Desired>(state, &request.upstream)?;
    }
    let config = world.load_config().await?;
    let plan = single_edit(
        &config,
        &request.upstream,
        &request.server,
        request.edit.clone(),
        request.force,
        request.drain_timeout,
    )?;
    let state = match show_or_approve(run_in, observer, kind.into(), 0, &plan, Vec::new())? {
        ControlFlow::Continue(state) => state,
        ControlFlow::Break(ended) => return Ok(ended),
    };
    // The same lookup as the planner's, which found the server.
    let address = match &request.edit {
        LineEdit::Add(_) => request.server.clone(),
        _ => config
            .upstream(&request.upstream)?
            .server(&request.server)?
            .address
            .clone(),
    };
    let record = ServerRecord::pending(address, String::new(), None, None);
    let origin = Origin {
        revision: state.next_revision()?,
        kind,
        undoes: None,
        command: &session.command,
        nginx: &world.nginx.name,
    };
    let rollout = new_rollout(origin, plan, UpdateConfig::engine_defaults(), vec![record]);
    let mut runner = Runner::new(world, state, observer, cancel);
    Ok(Ended::Ran(runner.start(rollout).await?))
}
