//! What the executor needs from the outside world — nginx and the backend
//! containers — as a trait, so the executor's logic is unit-tested against a
//! fake and run against Docker.
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::leftover::Leftover;
use crate::conf::{ConfigSet, FileChange};
use crate::plan::{HookCommand, HookExit, ServerRef};

/// nginx's worker processes before and after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Workers of the previous configuration (now finishing their requests).
    pub old_workers: Vec<u32>,
    /// Workers that were finishing their requests already, left by earlier reloads.
    pub shutting_down: Vec<u32>,
    /// Workers of the new configuration.
    pub new_workers: Vec<u32>,
}

/// Context of a world error that is no verdict on any server: the world
/// stopped answering (the Docker daemon went away). The step fails and the
/// rollout stops, resumable; no server is marked failed for it.
#[derive(Debug, thiserror::Error)]
#[error("the Docker daemon stopped answering")]
pub struct Unreachable;

/// The nginx container, its config and the backend containers.
#[allow(async_fn_in_trait)]
pub trait World {
    /// What a server's container is deployed from (kept in the journal).
    type Spec: Clone + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned;

    /// Loads the config nginx runs, with its includes.
    async fn load_config(&self) -> Result<ConfigSet>;
    /// Writes changed files where nginx reads them and verifies nginx sees the new bytes.
    async fn write_config(&self, changes: &[FileChange]) -> Result<()>;
    /// `nginx -t`; the error carries nginx's message.
    async fn test_config(&self) -> Result<()>;
    /// `nginx -s reload` and confirmation that new workers run.
    async fn reload(&self) -> Result<Reloaded>;
    /// Waits until the given old workers have exited.
    async fn wait_drained(&self, old_workers: &[u32], timeout: Duration) -> Result<()>;
    /// Stop-first: replaces `server.container` by a container made from `spec`, same name.
    /// Returns the new container's id. A container in the way of its
    /// temporary names is removed only if `ours` claims it, else an error.
    async fn replace(
        &self,
        server: &ServerRef,
        spec: &Self::Spec,
        ours: &Leftover,
    ) -> Result<String>;
    /// Stop-first, ahead of `replace`: creates (does not start) the replacement
    /// while the old container still serves, so `replace` only stops, renames
    /// and starts. Best effort: `replace` creates it itself if this did not.
    /// A server prepared already is left as it is. `ours` as for `replace`.
    async fn prepare(&self, server: &ServerRef, spec: &Self::Spec, ours: &Leftover) -> Result<()>;
    /// Removes what `prepare` created and no `replace` used: this run's (it
    /// stopped early) and, for each given container, one a killed run left
    /// that its [`Leftover`] claims.
    async fn discard_prepared(&self, containers: &[(String, Leftover)]);
    /// Start-first: starts a container named `server.container` from `spec`
    /// beside the old one. A container already of that name is removed first
    /// if `ours` claims it; any other is an error, and stays.
    async fn start_new(
        &self,
        server: &ServerRef,
        spec: &Self::Spec,
        ours: &Leftover,
    ) -> Result<String>;
    /// Stops (gracefully) and removes a container.
    async fn stop_old(&self, container: &str) -> Result<()>;
    /// Stops (gracefully) a container if it runs, and keeps it, for its logs
    /// and state to be read: Docker's DNS no longer answers with it. Whether
    /// it was running.
    async fn stop(&self, container: &str) -> Result<bool>;
    /// Whether a container (name or id) exists and runs.
    async fn is_running(&self, container: &str) -> Result<bool>;
    /// Whether nginx resolves `host` at its next reload: a running container
    /// on its networks answers to it (Docker's DNS knows only running ones).
    async fn resolves(&self, host: &str) -> Result<bool>;
    /// Waits until a container is healthy; returns when it became so.
    async fn wait_healthy(
        &self,
        server: &ServerRef,
        container_id: &str,
        timeout: Duration,
    ) -> Result<DateTime<Utc>>;
    /// Runs one hook command in a running container (`docker exec`) and
    /// returns how it ended; a command still running after `timeout` is an error.
    async fn exec_hook(
        &self,
        container: &str,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookExit>;
    /// Runs `command` once in a new one-off container `name` made from `spec`
    /// (the image's command replaced, no published ports, not one of the
    /// service's containers), waits until it exits and removes it. A leftover
    /// of that name from a killed run is removed first; after `timeout` the
    /// container is killed and removed, and that is an error.
    async fn run_one_off(
        &self,
        name: &str,
        spec: &Self::Spec,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookExit>;
    /// Whether a container failed (exited, restarted, turned unhealthy) between
    /// `since` and `since + window`; `Some(reason)` if it did.
    async fn check(
        &self,
        container_id: &str,
        since: DateTime<Utc>,
        window: Duration,
    ) -> Result<Option<String>>;
    /// Whether `e`, from this world, says it stopped answering rather than
    /// anything about a server (marked [`Unreachable`], by default).
    fn is_unreachable(&self, e: &anyhow::Error) -> bool {
        e.downcast_ref::<Unreachable>().is_some()
    }
}
