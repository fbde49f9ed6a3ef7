//! Connecting to the Docker daemon.
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::Docker;

/// How long one API call may take before it is an error.
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether an API error is the daemon's "no such container / file" (404).
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Connects to the daemon named by `DOCKER_HOST` (or the local socket),
/// negotiates the API version and checks that the daemon answers.
pub async fn connect() -> Result<Docker> {
    let target =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let unreachable = || {
        format!(
            "cannot reach the Docker daemon at {target} (is dockerd running? try scripts/dev-env.sh)"
        )
    };
    let docker = Docker::connect_with_defaults()
        .with_context(unreachable)?
        .with_timeout(API_TIMEOUT);
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(unreachable)?;
    docker.ping().await.with_context(unreachable)?;
    Ok(docker)
}
