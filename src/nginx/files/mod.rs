//! The nginx container's config files: read from the host where they are
//! bind-mounted (local daemon), from an archive-API snapshot otherwise;
//! written back the same way (a single-file bind mount of a remote daemon
//! through `sh -c 'cat > FILE'` in the container, which keeps its inode) and
//! verified through the container's own eyes.
mod tree;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures_util::TryStreamExt;

use super::procfs::{container_process, local_proc};
use super::{Mount, NginxContainer};
use crate::conf::{Fs, write_in_place};
use crate::docker::{DaemonLocation, exec_in, exec_with_input, is_not_found};
use tree::{Meta, Node, Tree, normalize};

/// Rounds of fetching symlink targets outside the config dir (e.g. Debian's
/// `modules-enabled/*.conf` pointing into `/usr/share/nginx`).
const LINK_FETCH_ROUNDS: usize = 4;

/// Where the bytes of one container path live.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// On this host, through a bind mount or volume (container path, host path).
    Host(PathBuf, PathBuf),
    /// Only inside the container (resolved container path).
    Container(PathBuf),
}

/// A file as seen from inside the container.
#[derive(Debug)]
struct ContainerView {
    bytes: Seen,
    inode: Option<u64>,
}

/// File contents read back from the container.
#[derive(Debug)]
enum Seen {
    /// The exact bytes.
    Exact(Vec<u8>),
    /// `cat` output through exec, decoded lossily as UTF-8.
    Decoded(String),
}

impl ContainerView {
    fn matches(&self, bytes: &[u8]) -> bool {
        match &self.bytes {
            Seen::Exact(seen) => seen == bytes,
            Seen::Decoded(seen) => *seen == String::from_utf8_lossy(bytes),
        }
    }
}

/// The nginx container's files as [`Fs`]: host reads for mounted paths,
/// an in-memory snapshot (taken at [`ContainerFs::load`]) for the rest.
#[derive(Debug)]
pub struct ContainerFs {
    container: String,
    host_mounts: Vec<Mount>,
    /// Container paths that are bind mounts read only through the daemon: the
    /// archive API cannot replace them (the daemon's unlink fails with EBUSY).
    bind_targets: Vec<PathBuf>,
    tree: Mutex<Tree>,
    /// The container's root as this host sees it (`/proc/PID/root`), when the daemon is local.
    local_root: Option<PathBuf>,
    /// Whether owners seen through `local_root` are the container's own (no user
    /// namespace remaps them), so files read there can be written back the same way.
    local_owners: bool,
}

impl ContainerFs {
    /// Snapshots the directory holding `nginx.conf_path` (unless it is
    /// mounted from this host) and the targets of symlinks leading out of it.
    pub async fn load(docker: &Docker, nginx: &NginxContainer) -> Result<Self> {
        // A remote daemon's mount sources are paths on its host, not here.
        let (host_mounts, remote_mounts): (Vec<Mount>, Vec<Mount>) =
            nginx.mounts.iter().cloned().partition(|m| {
                nginx.daemon == DaemonLocation::Local
                    && matches!(m.kind.as_str(), "bind" | "volume")
                    && m.source.exists()
            });
        let bind_targets = remote_mounts
            .into_iter()
            .filter(|m| m.kind == "bind")
            .map(|m| m.destination)
            .collect();
        let process = nginx
            .main_pid
            .zip(local_proc(nginx.daemon))
            .and_then(|(pid, proc)| container_process(proc, pid, &nginx.id));
        let local_owners = process.as_ref().is_some_and(|dir| {
            std::fs::read_to_string(dir.join("uid_map")).is_ok_and(|map| {
                map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
            })
        });
        let fs = ContainerFs {
            container: nginx.name.clone(),
            host_mounts,
            bind_targets,
            tree: Mutex::new(Tree::default()),
            local_root: process.map(|dir| dir.join("root")),
            local_owners,
        };
        let dir = nginx.conf_path.parent().unwrap_or(Path::new("/"));
        if fs.mount_for(dir).is_none() {
            fs.prefetch(docker, dir).await?;
        }
        Ok(fs)
    }

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

    /// Container path `path` as this host sees it through `/proc/PID/root`, when
    /// the daemon is local and every directory on the way is a real one: an
    /// absolute symlink there would resolve on this host. The last component may
    /// itself be a symlink; following it is the caller's choice.
    fn local_path(&self, path: &Path) -> Option<PathBuf> {
        let root = self.local_root.as_deref()?;
        let local = root.join(path.strip_prefix("/").unwrap_or(path));
        let real_dirs = local
            .ancestors()
            .skip(1)
            .take_while(|a| *a != root)
            .all(|a| a.symlink_metadata().is_ok_and(|m| m.file_type().is_dir()));
        real_dirs.then_some(local)
    }

    /// Adds container path `path` (file, directory or symlink) to the snapshot:
    /// read through [`Self::local_path`] when possible and the owners seen there
    /// are the container's, else through the archive API. `false` when there is
    /// no such path.
    async fn add(&self, docker: &Docker, path: &Path) -> Result<bool> {
        if let Some(local) = self.local_path(path).filter(|_| self.local_owners)
            && local.symlink_metadata().is_ok()
        {
            self.lock()
                .add_local(path, &local)
                .with_context(|| self.place(path))?;
            return Ok(true);
        }
        let Some(bytes) = self.download(docker, path).await? else {
            return Ok(false);
        };
        self.lock()
            .add_tar(path, &bytes)
            .with_context(|| self.place(path))?;
        Ok(true)
    }

    /// The host file behind container path `path`, when it is bind-mounted
    /// (or on a volume) readable from this host.
    pub fn host_path(&self, path: &Path) -> Option<PathBuf> {
        match self.locate(path) {
            Ok(Location::Host(_, host)) => Some(host),
            _ => None,
        }
    }

    /// Writes `bytes` to container path `path`: in place on the host file
    /// (same inode) when mounted from this host; in place through the
    /// container when it is a bind mount of the daemon's host; else by
    /// uploading a one-file tar that keeps the file's mode and owner. Then
    /// reads the file back through the container and fails, naming the file
    /// and the cause, if the container does not see exactly `bytes`.
    pub async fn write(&self, docker: &Docker, path: &Path, bytes: &[u8]) -> Result<()> {
        match self.locate(path).with_context(|| self.place(path))? {
            Location::Host(in_container, host) => {
                write_in_place(&host, bytes).with_context(|| {
                    format!(
                        "writing {} (host file of {})",
                        host.display(),
                        self.place(path)
                    )
                })?;
                self.verify_mounted(docker, &in_container, &host, bytes)
                    .await
            }
            Location::Container(real) => {
                let meta = match self.lock().get(&real) {
                    Ok(Some((_, Node::File(_, meta)))) => *meta,
                    _ => Meta::default(),
                };
                if self.bind_targets.contains(&real) {
                    self.write_through_exec(docker, &real, bytes).await?;
                } else {
                    self.upload(docker, &real, bytes, meta).await?;
                }
                match self.download_file(docker, &real).await? {
                    Some(seen) if seen == bytes => {}
                    Some(_) => bail!(
                        "{}: after writing, the container holds different bytes",
                        self.place(&real)
                    ),
                    None => bail!("{}: missing after writing", self.place(&real)),
                }
                self.lock().set_file(&real, bytes.to_vec(), meta);
                Ok(())
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn place(&self, path: &Path) -> String {
        format!("{} in container {}", path.display(), self.container)
    }

    /// The mount (deepest destination) holding `path`, and `path` on the host.
    fn mount_for(&self, path: &Path) -> Option<(&Mount, PathBuf)> {
        self.host_mounts
            .iter()
            .filter_map(|m| {
                let rest = path.strip_prefix(&m.destination).ok()?;
                Some((m, rest))
            })
            .max_by_key(|(m, _)| m.destination.components().count())
            .map(|(m, rest)| {
                let host = if rest.as_os_str().is_empty() {
                    m.source.clone()
                } else {
                    m.source.join(rest)
                };
                (m, host)
            })
    }

    fn locate(&self, path: &Path) -> io::Result<Location> {
        let path = normalize(path);
        if let Some((_, host)) = self.mount_for(&path) {
            return Ok(Location::Host(path, host));
        }
        let real = self.lock().resolve(&path)?;
        Ok(match self.mount_for(&real) {
            Some((_, host)) => Location::Host(real, host),
            None => Location::Container(real),
        })
    }

    /// Confirms the container sees `bytes` at a host-mounted path; explains
    /// the single-file bind mount inode trap when it does not.
    async fn verify_mounted(
        &self,
        docker: &Docker,
        path: &Path,
        host: &Path,
        bytes: &[u8],
    ) -> Result<()> {
        let seen = self.container_view(docker, path).await?;
        if seen.matches(bytes) {
            return Ok(());
        }
        let host_inode = std::fs::metadata(host).map(|m| m.ino()).ok();
        match (host_inode, seen.inode) {
            (Some(h), Some(c)) if h != c => bail!(
                "{}: the container does not see what was written to {}: the host file is now \
                 inode {h} but the container still reads inode {c}. The file was replaced \
                 (by rename: `sed -i`, an editor, …) after the container started, and a \
                 single-file bind mount stays on the old inode. Recreate or restart the \
                 container so it mounts the current file, and edit it in place from then on",
                self.place(path),
                host.display()
            ),
            (h, c) => bail!(
                "{}: the container reads different bytes than were written to {} \
                 (inode on the host {}, in the container {})",
                self.place(path),
                host.display(),
                h.map_or("unknown".into(), |i| i.to_string()),
                c.map_or("unknown".into(), |i| i.to_string()),
            ),
        }
    }

    /// The file at `path` as the container's own mount namespace shows it:
    /// through [`Self::local_path`] when it is no symlink itself, else by
    /// running `cat` and `ls -diL` in the container.
    async fn container_view(&self, docker: &Docker, path: &Path) -> Result<ContainerView> {
        if let Some(local) = self.local_path(path)
            && local
                .symlink_metadata()
                .is_ok_and(|m| !m.file_type().is_symlink())
            && let (Ok(bytes), Ok(meta)) = (std::fs::read(&local), std::fs::metadata(&local))
        {
            return Ok(ContainerView {
                bytes: Seen::Exact(bytes),
                inode: Some(meta.ino()),
            });
        }
        let p = path.to_string_lossy();
        let out = exec_in(docker, &self.container, &["cat", "--", &p]).await?;
        if !out.success() {
            bail!(
                "{}: cannot read it back through the container (`cat` exit {}): {}",
                self.place(path),
                out.exit_code,
                out.stderr.trim()
            );
        }
        let ls = exec_in(docker, &self.container, &["ls", "-diL", "--", &p]).await?;
        let inode = ls
            .stdout
            .split_whitespace()
            .next()
            .and_then(|i| i.parse::<u64>().ok())
            .filter(|_| ls.success());
        Ok(ContainerView {
            bytes: Seen::Decoded(out.stdout),
            inode,
        })
    }

    /// Overwrites the file in place from inside the container (`cat > FILE`
    /// truncates and writes the same inode, so a single-file bind mount keeps
    /// pointing at it).
    async fn write_through_exec(&self, docker: &Docker, path: &Path, bytes: &[u8]) -> Result<()> {
        let p = path.to_string_lossy();
        let argv = ["sh", "-c", "cat > \"$1\"", "sh", &p];
        let out = exec_with_input(docker, &self.container, &argv, bytes).await?;
        if !out.success() {
            bail!(
                "{}: cannot write it through the container (`sh -c 'cat > FILE'` exit {}): {}",
                self.place(path),
                out.exit_code,
                out.stderr.trim()
            );
        }
        Ok(())
    }

    async fn upload(&self, docker: &Docker, path: &Path, bytes: &[u8], meta: Meta) -> Result<()> {
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
        let result: Result<Vec<u8>, _> = docker
            .download_from_container(&self.container, Some(options))
            .map_ok(|chunk| chunk.to_vec())
            .try_concat()
            .await;
        match result {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("downloading {}", self.place(path))),
        }
    }

    /// The bytes of one regular file, fetched through the archive API.
    async fn download_file(&self, docker: &Docker, path: &Path) -> Result<Option<Vec<u8>>> {
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

impl Fs for ContainerFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.locate(path)? {
            Location::Host(_, host) => std::fs::read(&host).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("{} (host {}): {e}", self.place(path), host.display()),
                )
            }),
            Location::Container(real) => match self.lock().get(&real)? {
                Some((_, Node::File(bytes, _))) => Ok(bytes.clone()),
                Some(_) => Err(io::Error::other(format!(
                    "{}: not a regular file",
                    self.place(path)
                ))),
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{}: no such file in the fetched config files",
                        self.place(path)
                    ),
                )),
            },
        }
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        let text = pattern
            .to_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "non-UTF-8 glob"))?;
        let compiled =
            glob::Pattern::new(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let mut out: Vec<PathBuf> = self
            .lock()
            .file_paths()
            .into_iter()
            .filter(|p| self.mount_for(p).is_none())
            .collect();
        let literal: PathBuf = pattern
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        let depth = pattern.components().count();
        for mount in &self.host_mounts {
            let dest = &mount.destination;
            if dest.starts_with(&literal) || literal.starts_with(dest) {
                let levels = depth.saturating_sub(dest.components().count());
                host_files(mount, levels, &mut out);
            }
        }
        out.retain(|p| compiled.matches_path_with(p, options));
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Adds the container paths of the regular files under `mount` (host side),
/// at most `levels` directories down.
fn host_files(mount: &Mount, levels: usize, out: &mut Vec<PathBuf>) {
    fn walk(host: &Path, container: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(meta) = std::fs::metadata(host) else {
            return;
        };
        if meta.is_file() {
            out.push(container.to_path_buf());
        } else if meta.is_dir() && depth > 0 {
            for entry in std::fs::read_dir(host).into_iter().flatten().flatten() {
                walk(
                    &entry.path(),
                    &container.join(entry.file_name()),
                    depth - 1,
                    out,
                );
            }
        }
    }
    walk(&mount.source, &mount.destination, levels, out);
}
