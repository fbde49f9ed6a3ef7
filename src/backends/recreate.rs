//! Engine-mode recreate: stop and remove the old container, create and start
//! the new one from a [`ContainerSpec`] — as two steps (start-first, or a
//! caller that wants them apart) or as one tight stop-first swap.
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, NetworkConnectRequest};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, RenameContainerOptions, StopContainerOptions,
};
use chrono::{DateTime, Utc};

use super::spec::ContainerSpec;
use crate::docker;

/// Docker's stop timeout when a container sets none.
const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// The old container of a [`recreate_stop_first`], stopped and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When the stop was asked for (local clock).
    pub stop_requested_at: DateTime<Utc>,
    /// When its process ended, from Docker (`State.FinishedAt`).
    pub stopped_at: DateTime<Utc>,
    /// Its exit code.
    pub exit_code: i64,
}

/// Stops the container `inspect` describes with its own stop signal and stop
/// timeout (so it can finish in-flight requests), then removes it (keeping
/// its volumes). No API call beyond the stop and the remove: under load each
/// inspect costs what a step waits for.
pub async fn stop_and_remove(docker: &Docker, inspect: &ContainerInspectResponse) -> Result<()> {
    let id = inspect
        .id
        .as_deref()
        .ok_or_else(|| anyhow!("an inspected container without an id"))?;
    let name = docker::name_of(inspect, id).to_string();
    request_stop(docker, id, &name, inspect).await?;
    remove(docker, id, &name).await
}

/// Stops `container` (a name or id) with its own stop signal and stop
/// timeout, and keeps it. Whether it was running: one stopped already, or
/// gone, is left as it is.
pub async fn stop_and_keep(docker: &Docker, container: &str) -> Result<bool> {
    let Some(inspect) = docker::inspect(docker, container).await? else {
        return Ok(false);
    };
    if !inspect
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false)
    {
        return Ok(false);
    }
    let id = inspect.id.clone().unwrap_or_else(|| container.to_string());
    let name = docker::name_of(&inspect, &id).to_string();
    request_stop(docker, &id, &name, &inspect).await?;
    Ok(true)
}

/// Stops container `id` (named `name`, described by `inspect` for its stop
/// timeout), letting the daemon send its StopSignal and wait its
/// StopTimeout; a container stopped already is fine.
async fn request_stop(
    docker: &Docker,
    id: &str,
    name: &str,
    inspect: &ContainerInspectResponse,
) -> Result<()> {
    let timeout = inspect
        .config
        .as_ref()
        .and_then(|c| c.stop_timeout)
        .unwrap_or(DEFAULT_STOP_TIMEOUT);
    let options = StopContainerOptions {
        t: Some(i32::try_from(timeout).unwrap_or(i32::MAX)),
        signal: None,
    };
    let stop = tokio::time::timeout(
        Duration::from_secs(timeout.max(0) as u64 + 30),
        docker.stop_container(id, Some(options)),
    )
    .await
    .map_err(|_| anyhow!("container {name}: stop did not finish"))?;
    match stop {
        Ok(())
        | Err(DockerError::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("container {name}: stop")),
    }
}

/// [`request_stop`], then what Docker recorded of the stop.
async fn stop_inspected(
    docker: &Docker,
    id: &str,
    inspect: &ContainerInspectResponse,
) -> Result<Stopped> {
    let name = docker::name_of(inspect, id).to_string();
    let stop_requested_at = Utc::now();
    request_stop(docker, id, &name, inspect).await?;
    let state = docker
        .inspect_container(id, None)
        .await
        .with_context(|| format!("container {name}: inspect after stop"))?
        .state
        .unwrap_or_default();
    let stopped_at = docker::parse_time(
        state.finished_at.as_deref().unwrap_or_default(),
        &format!("container {name}: FinishedAt"),
    )?;
    Ok(Stopped {
        id: id.to_string(),
        name,
        stop_requested_at,
        stopped_at,
        exit_code: state.exit_code.unwrap_or(-1),
    })
}

async fn remove(docker: &Docker, id: &str, name: &str) -> Result<()> {
    docker
        .remove_container(id, None::<RemoveContainerOptions>)
        .await
        .with_context(|| format!("container {name}: remove"))
}

/// Creates container `name` from `spec`, attaches it to all the spec's
/// networks with their aliases before it starts, starts it and returns its
/// id. On failure the half-made container is removed again.
pub async fn create_and_start(docker: &Docker, spec: &ContainerSpec, name: &str) -> Result<String> {
    let id = create(docker, spec, name).await?;
    if let Err(e) = start(docker, &id, name).await {
        force_remove(docker, &id).await;
        return Err(e);
    }
    Ok(id)
}

/// The result of [`recreate_stop_first`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recreated {
    /// The old container, stopped and removed.
    pub stopped: Stopped,
    /// Id of the new container, running under the old one's name.
    pub id: String,
}

/// Whether a container standing where a new one is to be made, known by
/// its id and when Docker created it, is the caller's own to remove (a
/// leftover of a stopped run of its own): the caller proves it, a name
/// never does.
pub type Ours<'a> = &'a dyn Fn(&str, DateTime<Utc>) -> bool;

/// A container standing where a new one is to be made that the caller
/// cannot prove its own (see [`in_the_way`]): it is never removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "container {name} ({id}) has the name a new container of this rollout takes, and nothing \
     shows this rollout made it, so it is left alone: rename it (`docker rename {name} \
     NEW-NAME`) or remove it, then run the command again (`resume`, if a rollout stopped on it)"
)]
pub struct NotOurs {
    /// Its name.
    pub name: String,
    /// Its short id.
    pub id: String,
}

/// The container named `name`, if one stands there and `ours` claims it (to
/// remove); one it does not claim is an error, [`NotOurs`]. Only reads.
pub async fn in_the_way(
    docker: &Docker,
    name: &str,
    ours: Ours<'_>,
) -> Result<Option<ContainerInspectResponse>> {
    let Some(info) = docker::inspect(docker, name).await? else {
        return Ok(None);
    };
    let id = info.id.clone().unwrap_or_default();
    let created = docker::parse_time(
        info.created.as_deref().unwrap_or_default(),
        &format!("container {name}: Created"),
    )?;
    if !ours(&id, created) {
        let id = docker::shown(&id).to_string();
        return Err(NotOurs {
            name: name.to_string(),
            id,
        }
        .into());
    }
    Ok(Some(info))
}

/// Makes way for a container named `name`: one standing there that `ours`
/// claims is stopped and removed; any other is an error, and stays.
async fn make_way(docker: &Docker, name: &str, ours: Ours<'_>) -> Result<()> {
    match in_the_way(docker, name, ours).await? {
        Some(info) => stop_and_remove(docker, &info).await,
        None => Ok(()),
    }
}

/// A replacement for container `name`, created from `spec` (not started)
/// under a temporary name while the old one still serves, for
/// [`recreate_stop_first`]. A leftover of a stopped run under that name is
/// removed first if `ours` claims it. Returns its id.
pub async fn create_replacement(
    docker: &Docker,
    name: &str,
    spec: &ContainerSpec,
    ours: Ours<'_>,
) -> Result<String> {
    let [next, _] = temporary_names(name);
    make_way(docker, &next, ours).await?;
    create(docker, spec, &next).await
}

/// Removes a replacement made by [`create_replacement`] that was not used.
pub async fn discard_replacement(docker: &Docker, id: &str) {
    force_remove(docker, id).await;
}

/// Removes the replacement for container `name` that a killed run created
/// ahead and never started, if `ours` claims it; one that ran is left alone
/// (not ours to judge).
pub async fn discard_leftover_replacement(docker: &Docker, name: &str, ours: Ours<'_>) {
    let [next, _] = temporary_names(name);
    if let Ok(Some(c)) = in_the_way(docker, &next, ours).await
        && c.state.and_then(|s| s.status) == Some(ContainerStateStatusEnum::CREATED)
        && let Some(id) = c.id
    {
        force_remove(docker, &id).await;
    }
}

/// Removes what a killed stop-first recreate of container `name` left under
/// its temporary names (between its renames: the old container parked, the
/// replacement not yet renamed) that `ours` claims. Best effort: nothing
/// needs those names.
pub async fn discard_parked(docker: &Docker, name: &str, ours: Ours<'_>) {
    for temporary in temporary_names(name) {
        if let Ok(Some(info)) = in_the_way(docker, &temporary, ours).await {
            let _ = stop_and_remove(docker, &info).await;
        }
    }
}

/// The temporary names a stop-first recreate of container `name` uses: its
/// replacement's until the swap, then the old container's until removed.
pub fn temporary_names(name: &str) -> [String; 2] {
    [format!("{name}-nr-next"), format!("{name}-nr-old")]
}

/// Stop-first recreate of container `old` (as just inspected) from `spec`, under the same
/// name, with as little as possible between the old container's stop and the
/// new one's start: the new container is created (and attached to its
/// networks) before the old one is stopped — or earlier, by
/// [`create_replacement`], given here as `ready` — the names are swapped by
/// rename, and the old container is removed only after the new one started.
///
/// If the new container cannot be created, the old one is left untouched; if
/// it cannot be started, it is removed and the old (stopped) container gets
/// its name back. A container in the way of the temporary names is removed
/// only if `ours` claims it.
pub async fn recreate_stop_first(
    docker: &Docker,
    old: &ContainerInspectResponse,
    spec: &ContainerSpec,
    ready: Option<String>,
    ours: Ours<'_>,
) -> Result<Recreated> {
    let old_id = old
        .id
        .as_deref()
        .context("the container to recreate was inspected without an id")?;
    let name = docker::name_of(old, old_id).to_string();
    let [_, parked] = temporary_names(&name);
    make_way(docker, &parked, ours).await?;
    let id = match ready {
        Some(id) => id,
        None => create_replacement(docker, &name, spec, ours).await?,
    };
    let stopped = match stop_inspected(docker, old_id, old).await {
        Ok(s) => s,
        Err(e) => {
            force_remove(docker, &id).await;
            return Err(e);
        }
    };
    let swapped = async {
        rename(docker, old_id, &parked).await?;
        rename(docker, &id, &name).await?;
        start(docker, &id, &name).await
    };
    if let Err(e) = swapped.await {
        force_remove(docker, &id).await;
        // Best effort: the old container was renamed only if that step passed.
        let _ = rename(docker, old_id, &name).await;
        return Err(e);
    }
    remove(docker, old_id, &parked).await?;
    Ok(Recreated { stopped, id })
}

/// Creates container `name` from `spec` and connects its other networks.
pub(super) async fn create(docker: &Docker, spec: &ContainerSpec, name: &str) -> Result<String> {
    let options = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let id = docker
        .create_container(Some(options), spec.create_body())
        .await
        .with_context(|| format!("container {name}: create from {}", spec.image))?
        .id;
    for net in spec.networks.iter().skip(1) {
        let request = NetworkConnectRequest {
            container: id.clone(),
            endpoint_config: Some(net.endpoint()),
        };
        if let Err(e) = docker.connect_network(&net.network, request).await {
            force_remove(docker, &id).await;
            return Err(e)
                .with_context(|| format!("container {name}: connect to network {}", net.network));
        }
    }
    Ok(id)
}

pub(super) async fn start(docker: &Docker, id: &str, name: &str) -> Result<()> {
    docker
        .start_container(id, None)
        .await
        .with_context(|| format!("container {name}: start"))
}

/// Removes a container this module made, ignoring errors (cleanup on a path
/// that already fails).
async fn force_remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    let _ = docker.remove_container(id, Some(options)).await;
}

/// Renames container `id` to `new_name`.
pub async fn rename(docker: &Docker, id: &str, new_name: &str) -> Result<()> {
    docker
        .rename_container(
            id,
            RenameContainerOptions {
                name: new_name.to_string(),
            },
        )
        .await
        .with_context(|| format!("container {}: rename to {new_name}", docker::shown(id)))
}

/// The name for a start-first replacement of container `current`: names
/// alternate between a base name and the base with `-b`, so repeated deploys
/// never grow them (`app1` → `app1-b` → `app1`). The one home of that suffix.
pub fn next_slot(current: &str) -> String {
    match current.strip_suffix("-b") {
        Some(base) => base.to_string(),
        None => format!("{current}-b"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_alternate_and_never_grow() {
        let mut current = "app1".to_string();
        let mut seen = Vec::new();
        for _ in 0..4 {
            current = next_slot(&current);
            seen.push(current.clone());
        }
        assert_eq!(seen, ["app1-b", "app1", "app1-b", "app1"]);
    }
}
