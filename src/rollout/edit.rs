//! `drain`, `undrain`, `weight`, `add`, `remove`: one server line changed
//! live, with the full reload protocol, journaled like any rollout (so
//! `rollback` puts the line back).
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use super::run::{Ended, Origin, Planned, Runner, new_rollout};
use super::session::{Session, refuse_if_unfinished};
use super::world::Desired;
use crate::exec::{Observer, PlanKind, RolloutKind, ServerRecord, ServerState, World};
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
    let plan_of = |config| {
        single_edit(
            config,
            &request.upstream,
            &request.server,
            request.edit.clone(),
            request.force,
            request.drain_timeout,
        )
    };
    if request.dry_run {
        let plan = plan_of(&world.load_config().await?)?;
        return Ok(Ended::Planned(Box::new(Planned {
            kind: kind.into(),
            revision: 0,
            plan,
            notices: Vec::new(),
        })));
    }
    let locked = session.lock(observer).await?;
    // A drain or undrain may help a paused rollout along; the new edits would
    // change lines under its feet.
    if !matches!(kind, RolloutKind::Drain | RolloutKind::Undrain) {
        refuse_if_unfinished::<Desired>(&locked.state, &request.upstream)?;
    }
    let config = world.load_config().await?;
    let plan = plan_of(&config)?;
    let address = match &request.edit {
        LineEdit::Add(_) => request.server.clone(),
        _ => config
            .upstream(&request.upstream)?
            .server(&request.server)?
            .address
            .clone(),
    };
    let record = ServerRecord {
        server: address,
        container: String::new(),
        old_spec: None,
        new_spec: None,
        state: ServerState::Pending,
        new_container: None,
        healthy_at: None,
        error: None,
        replacement: None,
        set: None,
        pinned: None,
    };
    if !observer.approve(PlanKind::from(kind), &plan)? {
        return Ok(Ended::Declined);
    }
    let origin = Origin {
        revision: locked.state.next_revision()?,
        kind,
        undoes: None,
        command: &session.command,
        nginx: &world.nginx.name,
    };
    let rollout = new_rollout(origin, plan, UpdateConfig::engine_defaults(), vec![record]);
    let mut runner = Runner {
        world,
        state: &locked.state,
        observer,
        cancel,
    };
    Ok(Ended::Ran(runner.start(rollout).await?))
}
