//! What the executor needs from the outside world — nginx and the backend
//! containers — as a trait, so the executor's logic is unit-tested against a
//! fake and run against Docker.
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::conf::{ConfigSet, FileChange};
use crate::plan::ServerRef;

/// nginx's worker processes before and after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Workers of the previous configuration (now finishing their requests).
    pub old_workers: Vec<u32>,
    /// Workers of the new configuration.
    pub new_workers: Vec<u32>,
}

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
    /// Returns the new container's id.
    async fn replace(&self, server: &ServerRef, spec: &Self::Spec) -> Result<String>;
    /// Start-first: starts a container named `server.container` from `spec` beside the old one.
    async fn start_new(&self, server: &ServerRef, spec: &Self::Spec) -> Result<String>;
    /// Stops (gracefully) and removes a container.
    async fn stop_old(&self, container: &str) -> Result<()>;
    /// Whether a container (name or id) exists and runs.
    async fn is_running(&self, container: &str) -> Result<bool>;
    /// Waits until a container is healthy; returns when it became so.
    async fn wait_healthy(
        &self,
        server: &ServerRef,
        container_id: &str,
        timeout: Duration,
    ) -> Result<DateTime<Utc>>;
    /// Whether a container failed (exited, restarted, turned unhealthy) between
    /// `since` and `since + window`; `Some(reason)` if it did.
    async fn check(
        &self,
        container_id: &str,
        since: DateTime<Utc>,
        window: Duration,
    ) -> Result<Option<String>>;
}
