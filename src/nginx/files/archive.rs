//! The Docker archive API, for a daemon whose container files this host
//! cannot read: the snapshot [`ContainerFs::load`] takes (a directory, then
//! the targets of symlinks leading out of it), one file's bytes, and a
//! one-file tar uploaded with the file's mode and owner.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures_util::TryStreamExt;

use super::ContainerFs;
use super::tree::{Meta, Node, Tree};
use crate::conf::MAX_FILE_BYTES;
use crate::docker::is_not_found;

/// Most bytes one archive-API snapshot may take (a config directory is
/// kilobytes; a huge file in it is refused, not loaded).
const MAX_ARCHIVE_BYTES: u64 = 4 * MAX_FILE_BYTES;

/// Rounds of fetching symlink targets outside the config dir (e.g. Debian's
/// `modules-enabled/*.conf` pointing into `/usr/share/nginx`).
const LINK_FETCH_ROUNDS: usize = 4;

impl ContainerFs {
    /// Adds `path` (a file or directory inside the container) to the
    /// snapshot, then the targets of symlinks it holds that lead elsewhere.
    pub async fn prefetch(&self, docker: &Docker, path: &Path) -> Result<()> {
        if !self.add(docker, path).await? {
            bail!(
                "{}: no such file in container {}",
                path.display(),
                self.container
            );
        }
        for _ in 0..LINK_FETCH_ROUNDS {
            let missing: Vec<PathBuf> = self
                .lock()
                .missing_targets()
                .into_iter()
                .filter(|p| self.mount_for(p).is_none())
                .collect();
            let mut added = false;
            for target in missing {
                added |= self.add(docker, &target).await?;
            }
            if !added {
                break;
            }
        }
        Ok(())
    }

    /// Adds container path `path` (file, directory or symlink) to the snapshot,
    /// through the archive API. `false` when there is no such path.
    async fn add(&self, docker: &Docker, path: &Path) -> Result<bool> {
        let Some(bytes) = self.download(docker, path).await? else {
            return Ok(false);
        };
        self.lock()
            .add_tar(path, &bytes)
            .with_context(|| self.place(path))?;
        Ok(true)
    }

    /// Writes `bytes` to container file `path` as a one-file tar unpacked
    /// into its directory, with `meta`'s mode and owner.
    pub(super) async fn upload(
        &self,
        docker: &Docker,
        path: &Path,
        bytes: &[u8],
        meta: Meta,
    ) -> Result<()> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            bail!("{}: not a file path", self.place(path));
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_data(&mut header, name, bytes)
            .and_then(|_| builder.finish())
            .with_context(|| format!("building the archive for {}", self.place(path)))?;
        let tar = builder.into_inner().with_context(|| self.place(path))?;
        docker
            .upload_to_container(
                &self.container,
                Some(UploadToContainerOptions {
                    path: dir.to_string_lossy().into_owned(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await
            .with_context(|| format!("uploading {}", self.place(path)))
    }

    /// The archive-API tar of `path`, or `None` when it does not exist.
    async fn download(&self, docker: &Docker, path: &Path) -> Result<Option<Vec<u8>>> {
        let options = DownloadFromContainerOptions {
            path: path.to_string_lossy().into_owned(),
        };
        let mut stream = docker.download_from_container(&self.container, Some(options));
        let mut bytes = Vec::new();
        let result = loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > MAX_ARCHIVE_BYTES {
                        bail!(
                            "{}: its archive is larger than {} MiB; nginx-rollout reads no more",
                            self.place(path),
                            MAX_ARCHIVE_BYTES >> 20
                        );
                    }
                }
                Ok(None) => break Ok(bytes),
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("downloading {}", self.place(path))),
        }
    }

    /// The bytes of one regular file, fetched through the archive API.
    pub(super) async fn download_file(
        &self,
        docker: &Docker,
        path: &Path,
    ) -> Result<Option<Vec<u8>>> {
        let Some(tar) = self.download(docker, path).await? else {
            return Ok(None);
        };
        let mut one = Tree::default();
        one.add_tar(path, &tar).with_context(|| self.place(path))?;
        Ok(match one.get(path).with_context(|| self.place(path))? {
            Some((_, Node::File(bytes, _))) => Some(bytes.clone()),
            _ => None,
        })
    }
}
