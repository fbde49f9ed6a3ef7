//! The write path: a config file written back where its bytes live (in
//! place on a host file, through `sh -c 'cat > FILE'` in the container for a
//! single-file bind mount of a remote daemon, else an archive-API upload),
//! then read back through the container's own eyes, the single-file bind
//! mount's inode trap explained when it does not see what was written.
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use bollard::Docker;

use super::tree::{Meta, Node};
use super::{ContainerFs, HostPlace, Location};
use crate::conf::{FileChanged, write_if_unchanged};
use crate::docker::{EXEC_STDOUT_MAX, exec_in, exec_with_input};

// A config file read back with `cat` fits an exec's stdout whole.
const _: () = assert!(EXEC_STDOUT_MAX as u64 >= crate::conf::MAX_FILE_BYTES);

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

/// Why a container's read-back of a host-mounted file does not show the
/// `written` bytes, given the host file as it is now: none when it shows the
/// host's current bytes on the same inode (someone, e.g. the operator, wrote
/// the file in place right after us: the container does see the host file).
fn judge_read_back(
    seen: &ContainerView,
    written: &[u8],
    host_now: Option<&[u8]>,
    host_inode: Option<u64>,
) -> Result<()> {
    match (host_inode, seen.inode) {
        (Some(h), Some(c)) if h != c => bail!(
            "the host file is now inode {h} but the container still reads inode {c}. The file \
             was replaced (by rename: `sed -i`, an editor, …) after the container started, and \
             a single-file bind mount stays on the old inode. Recreate or restart the container \
             so it mounts the current file, and edit it in place from then on"
        ),
        (Some(_), Some(_)) if host_now.is_some_and(|now| now != written && seen.matches(now)) => {
            Ok(())
        }
        (h, c) => bail!(
            "it reads other bytes (inode on the host {}, in the container {})",
            h.map_or("unknown".into(), |i| i.to_string()),
            c.map_or("unknown".into(), |i| i.to_string()),
        ),
    }
}

impl ContainerFs {
    /// Writes `bytes` to container path `path` if it still holds `expected`
    /// (else a [`FileChanged`] error, nothing written): in place on the host
    /// file (same inode, recoverably) when mounted from this host; in place
    /// through the container when it is a bind mount of the daemon's host;
    /// else by uploading a one-file tar that keeps the file's mode and owner.
    /// Then reads the file back through the container and fails, naming the
    /// file and the cause, if the container does not see exactly `bytes`.
    pub async fn write(
        &self,
        docker: &Docker,
        path: &Path,
        expected: &[u8],
        bytes: &[u8],
    ) -> Result<()> {
        match self.locate(path).with_context(|| self.place(path))? {
            Location::Host(in_container, host) => {
                host.open()
                    .and_then(|file| write_if_unchanged(&file, expected, bytes))
                    .with_context(|| {
                        format!(
                            "writing {} (host file of {})",
                            host.path().display(),
                            self.place(path)
                        )
                    })?;
                self.verify_mounted(docker, &in_container, &host, bytes)
                    .await
            }
            Location::Container(real) => {
                if let Some((source, destination)) = self.replaced(&real) {
                    bail!(
                        "{}: {} on this host is no longer what the container mounts at {} (replaced \
                         by rename — `sed -i`, an editor — or moved after the container started; \
                         the container still reads the old inode): writing either would leave the \
                         other stale. Recreate or restart the container so it mounts the current \
                         one, and edit it in place from then on",
                        self.place(path),
                        source.display(),
                        destination.display()
                    );
                }
                let meta = match (self.lock().get(&real), self.local_root.as_ref()) {
                    (Ok(Some((_, Node::File(_, meta)))), _) => *meta,
                    (_, Some(_)) if self.reads_locally() => self
                        .seen_at(&real)
                        .and_then(|place| place.open().ok()?.metadata().ok())
                        .map_or_else(Meta::default, |m| Meta {
                            mode: m.mode() & 0o7777,
                            uid: u64::from(m.uid()),
                            gid: u64::from(m.gid()),
                        }),
                    _ => Meta::default(),
                };
                if self.download_file(docker, &real).await?.as_deref() != Some(expected) {
                    return Err(FileChanged { path: real }).with_context(|| self.place(path));
                }
                if self.bind_target(&real) {
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

    /// Confirms the container sees `bytes` at a host-mounted path; explains
    /// the single-file bind mount inode trap when it does not.
    async fn verify_mounted(
        &self,
        docker: &Docker,
        path: &Path,
        host: &HostPlace,
        bytes: &[u8],
    ) -> Result<()> {
        let seen = self.container_view(docker, path).await?;
        if seen.matches(bytes) {
            return Ok(());
        }
        // The bytes and the inode of one open file.
        let held = host.open().and_then(|f| f.open_read()).ok();
        let host_inode = held
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        let now = held.and_then(|f| crate::conf::read_bounded(f).ok());
        judge_read_back(&seen, bytes, now.as_deref(), host_inode).with_context(|| {
            format!(
                "{}: the container does not see what was written to {}",
                self.place(path),
                host.path().display()
            )
        })
    }

    /// The file at `path` as the container's own mount namespace shows it:
    /// through `/proc/PID/root` when the daemon is local and it is no symlink
    /// itself (resolved inside that root, read bounded: the container may swap
    /// a symlink, a FIFO or a device in meanwhile), else by running `cat` and
    /// `ls -diL` in the container.
    async fn container_view(&self, docker: &Docker, path: &Path) -> Result<ContainerView> {
        if let Ok(file) = self.open_local(path)
            && let Ok(meta) = file.metadata()
            && let Ok(bytes) = crate::conf::read_bounded(file)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_back_accepts_a_later_write_on_the_same_file_only() {
        let view = |bytes: &[u8], inode| ContainerView {
            bytes: Seen::Exact(bytes.to_vec()),
            inode: Some(inode),
        };
        let ours: &[u8] = b"server a down;\n";
        let theirs: &[u8] = b"# edited\nserver a down;\n";
        // The operator wrote in place after us: the container sees the host file.
        judge_read_back(&view(theirs, 7), ours, Some(theirs), Some(7)).unwrap();
        // A stale inode (the file was renamed over): the trap is explained.
        let e = judge_read_back(&view(b"old", 6), ours, Some(ours), Some(7)).unwrap_err();
        assert!(e.to_string().contains("still reads inode 6"), "{e}");
        // Same inode, yet neither our bytes nor the host's: refused.
        let e = judge_read_back(&view(b"other", 7), ours, Some(theirs), Some(7)).unwrap_err();
        assert!(e.to_string().contains("other bytes"), "{e}");
        // The host still holds ours but the container shows something else.
        let e = judge_read_back(&view(theirs, 7), ours, Some(ours), Some(7)).unwrap_err();
        assert!(e.to_string().contains("other bytes"), "{e}");
        // Unknown inodes never pass as the same file.
        let unknown = ContainerView {
            bytes: Seen::Decoded(String::from_utf8_lossy(theirs).into()),
            inode: None,
        };
        judge_read_back(&unknown, ours, Some(theirs), Some(7)).unwrap_err();
    }
}
