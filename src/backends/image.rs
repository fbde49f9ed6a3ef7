//! The images a deploy needs, made sure of before the first server is
//! drained: a missing image found out at the recreate step would leave a
//! stop-first server without a container.
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use crate::docker::is_not_found;

/// How long pulling one image may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether an image was already on the daemon or had to be pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFound {
    /// Present on the daemon.
    Present,
    /// Absent; `pull` is false (a dry run) so it was not fetched.
    Absent,
    /// Pulled just now.
    Pulled,
}

/// Makes sure `image` is on the daemon: present, else pulled (when `pull`).
/// A pull that fails is an error naming the image and the registry's answer.
pub async fn ensure_image(docker: &Docker, image: &str, pull: bool) -> Result<ImageFound> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(ImageFound::Present),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(anyhow!(e).context(format!("image {image}: inspect"))),
    }
    if !pull {
        return Ok(ImageFound::Absent);
    }
    let (name, tag) = split_reference(image);
    let options = CreateImageOptions {
        from_image: Some(name.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    let pulling = async {
        let mut stream = docker.create_image(Some(options), None, None);
        while let Some(progress) = stream.next().await {
            let progress = progress?;
            if let Some(detail) = progress.error_detail.and_then(|d| d.message) {
                bail!("{detail}");
            }
        }
        Ok(())
    };
    tokio::time::timeout(PULL_TIMEOUT, pulling)
        .await
        .map_err(|_| anyhow!("no answer after {PULL_TIMEOUT:?}"))
        .and_then(|r| r)
        .map_err(|e| {
            anyhow!(
                "image {image} is not on this host and cannot be pulled: {e:#}; nothing was changed"
            )
        })?;
    Ok(ImageFound::Pulled)
}

/// `name[:tag][@digest]` → (name, tag or digest); no tag means `latest`.
fn split_reference(image: &str) -> (&str, &str) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, digest);
    }
    // A colon after the last slash separates the tag (not a registry's port).
    let last = image.rfind('/').map_or(0, |i| i + 1);
    match image[last..].rfind(':') {
        Some(i) => (&image[..last + i], &image[last + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_docker_pull() {
        assert_eq!(split_reference("app:v2"), ("app", "v2"));
        assert_eq!(split_reference("app"), ("app", "latest"));
        assert_eq!(
            split_reference("registry:5000/team/app"),
            ("registry:5000/team/app", "latest")
        );
        assert_eq!(
            split_reference("registry:5000/team/app:1.2"),
            ("registry:5000/team/app", "1.2")
        );
        assert_eq!(split_reference("app@sha256:abc"), ("app", "sha256:abc"));
    }
}
