//! Engine-mode recreate: stop and remove the old container, create and start
//! the new one from a [`ContainerSpec`].
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::NetworkConnectRequest;
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, RenameContainerOptions, StopContainerOptions,
};
use chrono::{DateTime, Utc};

use super::health::docker_time;
use super::spec::ContainerSpec;

/// Docker's stop timeout when a container sets none.
const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// A container stopped and removed by [`stop_and_remove`].
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

/// Stops container `id` with its own stop signal and stop timeout (so it can
/// finish in-flight requests), then removes it (keeping its volumes).
pub async fn stop_and_remove(docker: &Docker, id: &str) -> Result<Stopped> {
    let inspect = docker
        .inspect_container(id, None)
        .await
        .with_context(|| format!("container {id}: inspect before stop"))?;
    let name = inspect
        .name
        .as_deref()
        .unwrap_or(id)
        .trim_start_matches('/')
        .to_string();
    let timeout = inspect
        .config
        .as_ref()
        .and_then(|c| c.stop_timeout)
        .unwrap_or(DEFAULT_STOP_TIMEOUT);
    let stop_requested_at = Utc::now();
    // The signal is left to the daemon, which sends the container's StopSignal.
    let options = StopContainerOptions {
        t: Some(i32::try_from(timeout).unwrap_or(i32::MAX)),
        signal: None,
    };
    let stop = tokio::time::timeout(
        Duration::from_secs(timeout.max(0) as u64 + 30),
        docker.stop_container(id, Some(options)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("container {name}: stop did not finish"))?;
    match stop {
        Ok(())
        | Err(DockerError::DockerResponseServerError {
            status_code: 304, ..
        }) => {}
        Err(e) => return Err(e).with_context(|| format!("container {name}: stop")),
    }
    let state = docker
        .inspect_container(id, None)
        .await
        .with_context(|| format!("container {name}: inspect after stop"))?
        .state
        .unwrap_or_default();
    let stopped_at = docker_time(
        state.finished_at.as_deref().unwrap_or_default(),
        &format!("container {name}: FinishedAt"),
    )?;
    docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                v: false,
                force: false,
                link: false,
            }),
        )
        .await
        .with_context(|| format!("container {name}: remove"))?;
    Ok(Stopped {
        id: id.to_string(),
        name,
        stop_requested_at,
        stopped_at,
        exit_code: state.exit_code.unwrap_or(-1),
    })
}

/// Creates container `name` from `spec`, attaches it to all the spec's
/// networks with their aliases before it starts, starts it and returns its
/// id. On failure the half-made container is removed again.
pub async fn create_and_start(docker: &Docker, spec: &ContainerSpec, name: &str) -> Result<String> {
    let options = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let id = docker
        .create_container(Some(options), spec.create_body())
        .await
        .with_context(|| format!("container {name}: create from {}", spec.image))?
        .id;
    if let Err(e) = connect_and_start(docker, spec, name, &id).await {
        let _ = docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        return Err(e);
    }
    Ok(id)
}

async fn connect_and_start(
    docker: &Docker,
    spec: &ContainerSpec,
    name: &str,
    id: &str,
) -> Result<()> {
    for net in spec.networks.iter().skip(1) {
        let request = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(net.endpoint()),
        };
        docker
            .connect_network(&net.network, request)
            .await
            .with_context(|| format!("container {name}: connect to network {}", net.network))?;
    }
    docker
        .start_container(id, None)
        .await
        .with_context(|| format!("container {name}: start"))
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
        .with_context(|| format!("container {id}: rename to {new_name}"))
}

/// The name for a start-first replacement: alternates between `base` and
/// `base-b`, so repeated deploys never grow the name. `base` is the name the
/// container had before its first start-first deploy.
pub fn slot_name(base: &str, current: &str) -> String {
    if current == base {
        format!("{base}-b")
    } else {
        base.to_string()
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
            current = slot_name("app1", &current);
            seen.push(current.clone());
        }
        assert_eq!(seen, ["app1-b", "app1", "app1-b", "app1"]);
    }

    #[test]
    fn foreign_current_name_goes_back_to_base() {
        assert_eq!(slot_name("app1", "something-else"), "app1");
    }
}
