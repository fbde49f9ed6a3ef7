//! The container's mounts as this host reaches them: each mount's source
//! held open from the moment the files are loaded ([`HostSource`]), checked
//! against what the container has at its destination (through its root, or
//! `stat` in it) and set aside when it no longer is ([`MountAt::Replaced`]);
//! a container path's place beneath a source ([`HostPlace`]); and a path
//! looked up inside the container's root ([`in_root`]).
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bollard::Docker;

use super::super::Mount;
use crate::conf::{HostDir, HostFile};
use crate::docker::exec_in;

/// One of the container's mounts, by where the container has it.
#[derive(Debug, Clone)]
pub(super) struct ContainerMount {
    /// Where the container has it.
    pub(super) destination: PathBuf,
    /// A bind mount (not a volume or a tmpfs).
    pub(super) bind: bool,
    /// Where its bytes are reached.
    pub(super) at: MountAt,
}

/// Where a mount's bytes are reached.
#[derive(Debug, Clone)]
pub(super) enum MountAt {
    /// Its source on this host, held open since the files were loaded.
    Host(HostSource),
    /// Its source on this host (this path) is no longer what the container
    /// has there: read through the container, and neither is written.
    Replaced(PathBuf),
    /// Only through the container: a remote daemon's mount, a tmpfs, a
    /// source this host does not show.
    Container,
}

/// A host mount's source.
#[derive(Debug, Clone)]
pub(super) enum HostSource {
    /// A directory, held open.
    Dir(HostDir),
    /// A single file: its directory held open, its name there, and which
    /// file it was (device, inode) when the files were loaded.
    File {
        dir: HostDir,
        name: OsString,
        id: (u64, u64),
    },
}

impl HostSource {
    /// Whether it is still the source the container has (a single file
    /// replaced by rename, or moved, since is not).
    pub(super) fn unchanged(&self) -> bool {
        match self {
            HostSource::Dir(_) => true,
            HostSource::File { dir, name, id } => {
                rustix::fs::statat(dir.fd(), name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| (st.st_dev, st.st_ino) == *id)
            }
        }
    }

    /// Which directory or file it is (device, inode).
    pub(super) fn identity(&self) -> io::Result<(u64, u64)> {
        match self {
            HostSource::Dir(dir) => dir.identity(),
            HostSource::File { id, .. } => Ok(*id),
        }
    }

    /// The host path, for messages.
    pub(super) fn path(&self) -> PathBuf {
        match self {
            HostSource::Dir(dir) => dir.shown().to_path_buf(),
            HostSource::File { dir, name, .. } => dir.shown().join(name),
        }
    }
}

/// A container path's place on this host: beneath the source of the mount
/// holding it. The container can write under a source it mounts rw, so the
/// rest of the path is opened beneath it with no symlink followed
/// ([`HostFile::beneath`]): the path was resolved as the container's kernel
/// would, so a symlink found there now was swapped in since.
#[derive(Debug, Clone)]
pub(super) struct HostPlace {
    /// The source of the mount holding it (or the container's root).
    pub(super) source: HostSource,
    /// The rest of the path beneath it (empty for the source itself).
    pub(super) rest: PathBuf,
}

impl HostPlace {
    pub(super) fn open(&self) -> io::Result<HostFile> {
        match &self.source {
            HostSource::Dir(dir) => HostFile::beneath(dir, &self.rest),
            HostSource::File { dir, name, .. } if self.rest.as_os_str().is_empty() => {
                HostFile::beneath(dir, Path::new(name))
            }
            HostSource::File { .. } => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{}: not a directory", self.source.path().display()),
            )),
        }
    }

    /// The host path, for messages.
    pub(super) fn path(&self) -> PathBuf {
        match self.rest.as_os_str().is_empty() {
            true => self.source.path(),
            false => self.source.path().join(&self.rest),
        }
    }
}

/// Without the container's root to look at (a docker-group user, the
/// `/proc` shortcuts off, this tool in another pid namespace), what the
/// container has at each host mount's destination is asked of it (`stat
/// -L` in the container): a source that is no longer the same is not
/// used, as when the root is looked at. Where `stat` does not answer (an
/// image without it), sources are used as named.
pub(super) async fn check_through_exec(
    docker: &Docker,
    container: &str,
    mounts: &mut [ContainerMount],
) {
    let held: Vec<(usize, (u64, u64), String)> = mounts
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match &m.at {
            MountAt::Host(source) => Some((
                i,
                source.identity().ok()?,
                m.destination.to_str()?.to_string(),
            )),
            _ => None,
        })
        .collect();
    if held.is_empty() {
        return;
    }
    let mut seen = HashMap::new();
    // `stat`, else busybox's (an image with busybox but not its links).
    for stat in [&["stat"][..], &["busybox", "stat"]] {
        let mut argv = stat.to_vec();
        argv.extend(["-L", "-c", "%d %i %n", "--"]);
        argv.extend(held.iter().map(|(_, _, dest)| dest.as_str()));
        match exec_in(docker, container, &argv).await {
            Ok(out) => seen.extend(out.stdout.lines().filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                let dev: u64 = parts.next()?.parse().ok()?;
                let ino: u64 = parts.next()?.parse().ok()?;
                Some((parts.next()?.to_string(), (dev, ino)))
            })),
            Err(e) => tracing::debug!("cannot check the mounts of {container}: {e:#}"),
        }
        if !seen.is_empty() {
            break;
        }
    }
    for (i, ours, dest) in &held {
        if let Some(theirs) = seen.get(dest.as_str()).filter(|theirs| *theirs != ours) {
            let m = &mut mounts[*i];
            if let MountAt::Host(source) = &m.at {
                let source = source.path();
                not_what_it_mounts(&source, &m.destination, &format!("{theirs:?} there"));
                m.at = MountAt::Replaced(source);
            }
        }
    }
}

/// Container path `real` under the container's root `root`, held without
/// being opened (`O_PATH`; its last component followed only if `follow`):
/// resolved by the kernel inside that root (`openat2` with
/// `RESOLVE_IN_ROOT`), or where that is missing (kernels before 5.6) or
/// forbidden (a seccomp profile) walked with no symlink at all.
pub(super) fn in_root(
    root: &HostDir,
    real: &Path,
    follow: bool,
) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let rel = real.strip_prefix("/").unwrap_or(real);
    let flags = match follow {
        true => OFlags::PATH | OFlags::CLOEXEC,
        false => OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
    };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(root.fd(), rel, flags, Mode::empty(), resolve) {
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
            HostFile::beneath(root, rel)?.held()
        }
        other => Ok(other?),
    }
}

/// Where mount `m` is reached from this host: its source held open when it
/// is still what the container has at its destination (checked where the
/// container's root can be looked at); [`MountAt::Replaced`] when its path
/// changed since the container started (replaced by rename, moved, or
/// swapped for a symlink by a container that can write where it lies);
/// [`MountAt::Container`] when this host does not show it.
pub(super) fn host_mount(m: &Mount, root: Option<&HostDir>) -> MountAt {
    let Ok(meta) = std::fs::metadata(&m.source) else {
        return MountAt::Container;
    };
    let source = match meta.is_dir() {
        true => HostDir::open(&m.source).map(HostSource::Dir),
        false => single_file(&m.source),
    };
    let Ok(source) = source else {
        return MountAt::Container;
    };
    if let Some(root) = root {
        let ours = source.identity();
        let theirs = in_root(root, &m.destination, true)
            .and_then(|held| std::fs::File::from(held).metadata())
            .map(|m| (m.dev(), m.ino()));
        let why = match (ours, theirs) {
            (Ok(a), Ok(b)) if a == b => None,
            (Ok(_), Ok(_)) => Some("another file".to_string()),
            (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
        };
        if let Some(why) = why {
            not_what_it_mounts(&m.source, &m.destination, &why);
            return MountAt::Replaced(m.source.clone());
        }
    }
    MountAt::Host(source)
}

/// Says that `source` is no longer what the container mounts at `destination`.
fn not_what_it_mounts(source: &Path, destination: &Path, why: &str) {
    tracing::warn!(
        "{} is no longer what the nginx container mounts at {} ({why}): its files there are \
         read through the container, and not written",
        source.display(),
        destination.display()
    );
}

/// A single-file mount's source: its directory held open, and which file it is.
pub(super) fn single_file(source: &Path) -> io::Result<HostSource> {
    let real = std::fs::canonicalize(source)?;
    let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let dir = HostDir::open(parent)?;
    let st = rustix::fs::statat(dir.fd(), name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(HostSource::File {
        dir,
        name: name.to_os_string(),
        id: (st.st_dev, st.st_ino),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_source_that_is_no_longer_what_the_container_mounts_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc/nginx")).unwrap();
        std::fs::create_dir_all(tmp.path().join("other")).unwrap();
        let held = HostDir::open(&root).unwrap();
        let mount = |source: PathBuf| Mount {
            kind: "bind".into(),
            source,
            destination: PathBuf::from("/etc/nginx"),
            writable: true,
        };
        let held_at = |m: MountAt| matches!(m, MountAt::Host(_));
        // What the container has at /etc/nginx (here: the same directory).
        assert!(held_at(host_mount(
            &mount(root.join("etc/nginx")),
            Some(&held)
        )));
        // Its path now leads elsewhere (renamed, or a symlink swapped in).
        let other = host_mount(&mount(tmp.path().join("other")), Some(&held));
        assert!(matches!(other, MountAt::Replaced(_)), "{other:?}");
        std::os::unix::fs::symlink(tmp.path().join("other"), tmp.path().join("link")).unwrap();
        let link = host_mount(&mount(tmp.path().join("link")), Some(&held));
        assert!(matches!(link, MountAt::Replaced(_)), "{link:?}");
        // Without the container's root to compare with, it is taken as named.
        assert!(held_at(host_mount(&mount(tmp.path().join("other")), None)));
        let none = host_mount(&mount(tmp.path().join("none")), None);
        assert!(matches!(none, MountAt::Container), "{none:?}");
    }
}
