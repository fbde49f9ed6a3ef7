//! `drain` / `undrain`: one server line changed live, with the full reload
//! protocol, journaled like any rollout.
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use super::run::{Ended, Origin, Runner, new_rollout};
use super::session::Session;
use crate::exec::{Observer, RolloutKind, ServerRecord, ServerState, World};
use crate::plan::{UpdateConfig, single_edit};

/// What `drain` or `undrain` is asked.
#[derive(Debug, Clone)]
pub struct EditRequest {
    /// The upstream.
    pub upstream: String,
    /// The server (address as written, or unique host).
    pub server: String,
    /// Take it out (`drain`) or put it back (`undrain`).
    pub drain: bool,
    /// Even the last live server (a full outage).
    pub force: bool,
    /// How long old workers may take to finish their requests.
    pub drain_timeout: Duration,
}

/// Drains or restores one server, live.
pub async fn edit_server(
    session: &Session,
    request: &EditRequest,
    observer: &mut dyn Observer,
    cancel: watch::Receiver<bool>,
) -> Result<Ended> {
    let locked = session.lock(observer).await?;
    let world = &session.world;
    let config = world.load_config().await?;
    let plan = single_edit(
        &config,
        &request.upstream,
        &request.server,
        request.drain,
        request.force,
        request.drain_timeout,
    )?;
    let address = config
        .upstream(&request.upstream)?
        .server(&request.server)?
        .address
        .clone();
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
    let kind = if request.drain {
        RolloutKind::Drain
    } else {
        RolloutKind::Undrain
    };
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
