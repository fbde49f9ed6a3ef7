//! The nginx container's config files as nginx sees them: [`ContainerFs`],
//! every container path resolved the way the container's kernel would, and
//! read where its bytes live: on this host where they are bind-mounted,
//! through `/proc/PID/root` when the daemon is local, else from an
//! archive-API snapshot (`archive.rs`). Where each mount's bytes are
//! reached from this host is `mounts.rs`; writing a file back and reading it
//! back through the container is `write.rs`.
mod archive;
mod mounts;
mod tree;
mod write;

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::Result;
use bollard::Docker;

use super::NginxContainer;
use super::procfs::{ProcessHere, container_process, local_proc};
use crate::conf::{Fs, HostDir, open_held, read_bounded, read_host_file};
use crate::docker::DaemonLocation;
use mounts::{
    ContainerMount, HostPlace, HostSource, MountAt, check_through_exec, host_mount, in_root,
};
use tree::{MAX_LINKS, Node, Tree};

/// Where the bytes of one container path live.
#[derive(Debug, Clone)]
enum Location {
    /// On this host, through a bind mount or volume (container path, host place).
    Host(PathBuf, HostPlace),
    /// Only inside the container (resolved container path).
    Container(PathBuf),
}

/// The nginx container's files as [`Fs`], every path resolved the way the
/// container's kernel would (symlinks inside the container, absolute ones
/// from its root, never out of it): host reads for bind-mounted paths; for
/// the rest, reads through `/proc/PID/root` of only the files asked for when
/// the daemon is local, else an archive-API snapshot taken at [`ContainerFs::load`].
#[derive(Debug)]
pub struct ContainerFs {
    container: String,
    /// The container's id.
    id: String,
    /// Every mount of the container, and where its bytes are reached.
    mounts: Vec<ContainerMount>,
    tree: Mutex<Tree>,
    /// The container's main process (`/proc/PID`), when the daemon is local
    /// and this host may read its root.
    process: Option<ProcessHere>,
    /// That process's root (`/proc/PID/root`), held open since it was
    /// checked to be the container's: a pid reused later changes nothing.
    local_root: Option<HostDir>,
    /// Whether owners seen through `local_root` are the container's own (no user
    /// namespace remaps them), so files read there can be written back the same way.
    local_owners: bool,
}

impl ContainerFs {
    /// Finds where the container's files are. Without a local `/proc/PID/root`
    /// to read them from, snapshots the directory holding `nginx.conf_path`
    /// (unless it is mounted from this host) and the targets of symlinks
    /// leading out of it.
    pub async fn load(docker: &Docker, nginx: &NginxContainer) -> Result<Self> {
        // Its root is readable only with ptrace rights over it (root here;
        // not a docker-group user): without, files come as for a remote daemon.
        let process = nginx
            .main_pid
            .zip(local_proc(nginx.daemon))
            .and_then(|(pid, proc)| container_process(proc, pid, &nginx.id));
        let local_root = process.as_ref().and_then(|p| {
            let root = HostDir::open(&p.dir().join("root")).ok()?;
            // Still the container's process once its root is held.
            p.is_alive_in(&nginx.id).then_some(root)
        });
        let process = process.filter(|_| local_root.is_some());
        let local_owners = process.as_ref().is_some_and(|p| {
            std::fs::read_to_string(p.dir().join("uid_map")).is_ok_and(|map| {
                map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
            })
        });
        let mounts = nginx
            .mounts
            .iter()
            .map(|m| ContainerMount {
                destination: m.destination.clone(),
                bind: m.kind == "bind",
                // A remote daemon's mount sources are paths on its host, not here.
                at: match nginx.daemon == DaemonLocation::Local
                    && matches!(m.kind.as_str(), "bind" | "volume")
                {
                    true => host_mount(m, local_root.as_ref()),
                    false => MountAt::Container,
                },
            })
            .collect();
        let mut fs = ContainerFs {
            container: nginx.name.clone(),
            id: nginx.id.clone(),
            mounts,
            tree: Mutex::new(Tree::default()),
            process,
            local_root,
            local_owners,
        };
        if fs.local_root.is_none() {
            check_through_exec(docker, &fs.container, &mut fs.mounts).await;
        }
        let dir = nginx.conf_path.parent().unwrap_or(Path::new("/"));
        if fs.mount_for(dir).is_none() && !fs.reads_locally() {
            fs.prefetch(docker, dir).await?;
        }
        Ok(fs)
    }

    /// Whether the container process these files are read through still
    /// runs: after a restart of the container, load them again.
    pub fn is_current(&self) -> bool {
        self.process
            .as_ref()
            .is_none_or(|p| p.is_alive_in(&self.id))
    }

    /// Whether files only inside the container are read through
    /// `/proc/PID/root` when asked for (the daemon is local, and owners seen
    /// there are the container's so a file can be written back alike).
    fn reads_locally(&self) -> bool {
        self.local_root.is_some() && self.local_owners
    }

    /// Container path `path` resolved as the container's kernel would:
    /// component by component, each symlink read where its bytes live (a host
    /// mount, the container's root, the snapshot), absolute targets taken
    /// from the container's root and `..` never above it. The result holds
    /// no symlink, so mapping it to a host path cannot lead out of a mount.
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        let mut todo: Vec<OsString> = Vec::new();
        push_components(&mut todo, path);
        let mut out = PathBuf::from("/");
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                out.pop();
                continue;
            }
            out.push(&c);
            if let Some(target) = self.link_at(&out)? {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!(
                        "{}: too many levels of symbolic links",
                        self.place(path)
                    )));
                }
                out.pop();
                if target.has_root() {
                    out = PathBuf::from("/");
                }
                push_components(&mut todo, &target);
            }
        }
        Ok(out)
    }

    /// Where container path `real` (resolved) can be looked at on this host:
    /// beneath a host mount's source, or beneath the container's root when
    /// files are read through it.
    fn seen_at(&self, real: &Path) -> Option<HostPlace> {
        match self.mount_for(real) {
            Some(host) => Some(host),
            None if self.reads_locally() => self.local_root.as_ref().map(|root| HostPlace {
                source: HostSource::Dir(root.clone()),
                rest: real.strip_prefix("/").unwrap_or(real).to_path_buf(),
            }),
            None => None,
        }
    }

    /// The target of `path` when it is a symlink (its directories being real ones).
    fn link_at(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        let Some(seen) = self.seen_at(path) else {
            return Ok(match self.lock().node(path) {
                Some(Node::Symlink(target)) => Some(target.clone()),
                _ => None,
            });
        };
        match seen.open() {
            Ok(file) => file.link_target(),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names in container directory `dir` (resolved), none when it does not exist.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let real = self.resolve(dir)?;
        let Some(seen) = self.seen_at(&real) else {
            return Ok(self.lock().children(&real));
        };
        match seen.open().and_then(|dir| dir.list()) {
            Ok(names) => Ok(names),
            Err(e) if missing(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Whether container path `path` exists (after resolving it).
    fn exists(&self, path: &Path) -> bool {
        match self.resolve(path) {
            Ok(real) => match self.seen_at(&real) {
                Some(seen) => seen.open().is_ok_and(|f| f.exists()),
                None => self.lock().node(&real).is_some(),
            },
            Err(_) => false,
        }
    }

    /// Reads container file `real` (resolved) through `/proc/PID/root`
    /// ([`Self::open_local`]), bounded like every config read.
    fn read_local(&self, real: &Path) -> io::Result<Vec<u8>> {
        read_bounded(self.open_local(real)?)
    }

    /// Opens container file `real` (resolved) through `/proc/PID/root`, the
    /// kernel resolving it inside that root (`openat2` with `RESOLVE_IN_ROOT`),
    /// non-blocking, its last component no symlink.
    fn open_local(&self, real: &Path) -> io::Result<std::fs::File> {
        let root = self
            .local_root
            .as_ref()
            .ok_or_else(|| io::Error::other("no local root"))?;
        open_held(in_root(root, real, false)?, rustix::fs::OFlags::RDONLY)
    }

    /// The host file behind container path `path`, when it is bind-mounted
    /// (or on a volume) readable from this host.
    pub fn host_path(&self, path: &Path) -> Option<PathBuf> {
        match self.locate(path) {
            Ok(Location::Host(_, host)) => Some(host.path()),
            _ => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn place(&self, path: &Path) -> String {
        format!("{} in container {}", path.display(), self.container)
    }

    /// The mount (deepest destination) holding `path`, and the rest of `path` beneath it.
    fn deepest<'p>(&self, path: &'p Path) -> Option<(&ContainerMount, &'p Path)> {
        self.mounts
            .iter()
            .filter_map(|m| Some((m, path.strip_prefix(&m.destination).ok()?)))
            .max_by_key(|(m, _)| m.destination.components().count())
    }

    /// `path`'s place on this host, when the mount holding it is one of
    /// this host's and still the source the container has.
    fn mount_for(&self, path: &Path) -> Option<HostPlace> {
        match self.deepest(path)? {
            (
                ContainerMount {
                    at: MountAt::Host(source),
                    ..
                },
                rest,
            ) if source.unchanged() => Some(HostPlace {
                source: source.clone(),
                rest: rest.to_path_buf(),
            }),
            _ => None,
        }
    }

    /// The host path of the mount holding `path` when it is no longer what
    /// the container has there (see [`MountAt::Replaced`]).
    fn replaced(&self, path: &Path) -> Option<(PathBuf, &Path)> {
        let (m, _) = self.deepest(path)?;
        match &m.at {
            MountAt::Replaced(source) => Some((source.clone(), &m.destination)),
            MountAt::Host(source) if !source.unchanged() => Some((source.path(), &m.destination)),
            _ => None,
        }
    }

    /// Whether `path` is a bind mount point reached only through the daemon:
    /// the archive API cannot replace it (the daemon's unlink fails with EBUSY).
    fn bind_target(&self, path: &Path) -> bool {
        self.deepest(path).is_some_and(|(m, rest)| {
            m.bind && rest.as_os_str().is_empty() && matches!(m.at, MountAt::Container)
        })
    }

    fn locate(&self, path: &Path) -> io::Result<Location> {
        let real = self.resolve(path)?;
        Ok(match self.mount_for(&real) {
            Some(host) => Location::Host(real, host),
            None => Location::Container(real),
        })
    }
}

impl Fs for ContainerFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let not_found = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file in the container", self.place(path)),
            )
        };
        let named = |e: io::Error| {
            if missing(&e) {
                not_found()
            } else {
                io::Error::new(e.kind(), format!("{}: {e}", self.place(path)))
            }
        };
        match self.locate(path)? {
            Location::Host(_, host) => {
                host.open()
                    .and_then(|f| read_host_file(&f))
                    .map_err(|e| match missing(&e) {
                        true => not_found(),
                        false => io::Error::new(
                            e.kind(),
                            format!("{} (host {}): {e}", self.place(path), host.path().display()),
                        ),
                    })
            }
            Location::Container(real) if self.reads_locally() => {
                self.read_local(&real).map_err(named)
            }
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

    /// Expands `pattern` one component at a time over the directories the
    /// container has (as [`Fs::read`] resolves them), like glob(3).
    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let mut found = vec![PathBuf::from("/")];
        for c in pattern.components() {
            let part = match c {
                Component::Normal(part) => part,
                Component::ParentDir => {
                    found.iter_mut().for_each(|p| p.push(".."));
                    continue;
                }
                _ => continue,
            };
            let text = part.to_string_lossy();
            if !text.contains(['*', '?', '[']) {
                found.iter_mut().for_each(|p| p.push(part));
                continue;
            }
            let compiled = glob::Pattern::new(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let mut next = Vec::new();
            for dir in &found {
                for name in self.list_dir(dir)? {
                    if compiled.matches_with(&name.to_string_lossy(), options) {
                        next.push(dir.join(name));
                    }
                }
            }
            found = next;
        }
        let mut out: Vec<PathBuf> = found.into_iter().filter(|p| self.exists(p)).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Pushes the components of `path` onto `todo` so that they pop in order.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    for c in path.components().rev() {
        match c {
            Component::Normal(part) => todo.push(part.to_os_string()),
            Component::ParentDir => todo.push(OsString::from("..")),
            _ => {}
        }
    }
}

/// A missing file or a missing directory on the way.
fn missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

#[cfg(test)]
mod tests {
    use super::mounts::single_file;
    use super::*;

    /// A container whose root is `root` (seen through its local view) and
    /// whose `/etc/nginx` is the host directory `mounted`.
    fn container(root: &Path, mounted: &Path) -> ContainerFs {
        ContainerFs {
            container: "proxy".into(),
            id: "abc123".into(),
            mounts: vec![ContainerMount {
                destination: PathBuf::from("/etc/nginx"),
                bind: true,
                at: MountAt::Host(HostSource::Dir(HostDir::open(mounted).unwrap())),
            }],
            tree: Mutex::new(Tree::default()),
            process: root.parent().map(ProcessHere::at),
            local_root: Some(HostDir::open(root).unwrap()),
            local_owners: true,
        }
    }

    #[test]
    fn files_read_through_a_process_that_is_gone_are_not_current() {
        let tmp = tempfile::tempdir().unwrap();
        let process = super::super::procfs::fake_process(tmp.path(), 7, "abc123");
        std::fs::create_dir(process.join("root")).unwrap();
        let fs = container(&process.join("root"), tmp.path());
        assert!(fs.is_current());
        // The container restarted: its old main process is gone.
        std::fs::remove_file(process.join("cgroup")).unwrap();
        assert!(!fs.is_current());
    }

    #[test]
    fn links_in_a_bind_mount_resolve_inside_the_container_never_on_the_host() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, mounted) = (tmp.path().join("root"), tmp.path().join("nginx"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(mounted.join("conf.d")).unwrap();
        std::fs::write(root.join("etc/shadow"), "the container's shadow\n").unwrap();
        std::fs::write(root.join("etc/passwd"), "the container's passwd\n").unwrap();
        std::fs::write(mounted.join("nginx.conf"), "include conf.d/*.conf;\n").unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, mounted.join("conf.d").join(name)).unwrap()
        };
        link("/etc/shadow", "a.conf");
        link("../../../../../../../../etc/passwd", "b.conf");
        link("../nginx.conf", "c.conf");
        let fs = container(&root, &mounted);

        let read = |p: &str| String::from_utf8(fs.read(Path::new(p)).unwrap()).unwrap();
        assert_eq!(read("/etc/nginx/conf.d/a.conf"), "the container's shadow\n");
        assert_eq!(read("/etc/nginx/conf.d/b.conf"), "the container's passwd\n");
        assert_eq!(read("/etc/nginx/conf.d/c.conf"), "include conf.d/*.conf;\n");
        assert_eq!(fs.host_path(Path::new("/etc/nginx/conf.d/a.conf")), None);
        assert_eq!(
            fs.host_path(Path::new("/etc/nginx/conf.d/c.conf")),
            Some(mounted.join("nginx.conf"))
        );
        assert_eq!(
            fs.glob(Path::new("/etc/nginx/conf.d/*.conf")).unwrap(),
            ["a", "b", "c"].map(|n| PathBuf::from(format!("/etc/nginx/conf.d/{n}.conf")))
        );
        link("d.conf", "d.conf");
        let e = fs.read(Path::new("/etc/nginx/conf.d/d.conf")).unwrap_err();
        assert!(e.to_string().contains("too many levels"), "{e}");
    }

    #[test]
    fn only_what_is_asked_is_read_from_the_container_and_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, mounted) = (tmp.path().join("root"), tmp.path().join("nginx"));
        std::fs::create_dir_all(root.join("usr/share/nginx")).unwrap();
        std::fs::create_dir_all(&mounted).unwrap();
        // Never included: a 3 GiB file and a FIFO in the container.
        std::fs::File::create(root.join("usr/share/nginx/huge.bin"))
            .unwrap()
            .set_len(3 << 30)
            .unwrap();
        crate::conf::make_fifo(&root.join("usr/share/nginx/fifo"));
        std::fs::write(root.join("usr/share/nginx/mod.conf"), "load_module x;\n").unwrap();
        let fs = container(&root, &mounted);
        assert_eq!(
            fs.read(Path::new("/usr/share/nginx/mod.conf")).unwrap(),
            b"load_module x;\n"
        );
        assert!(
            fs.lock().children(Path::new("/usr/share/nginx")).is_empty(),
            "no snapshot"
        );
        let e = fs.read(Path::new("/usr/share/nginx/huge.bin")).unwrap_err();
        assert!(e.to_string().contains("larger than 64 MiB"), "{e}");
        let e = fs.read(Path::new("/usr/share/nginx/fifo")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = fs
            .read(Path::new("/usr/share/nginx/none.conf"))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn a_single_file_mount_inside_a_directory_mount_is_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, mounted) = (tmp.path().join("root"), tmp.path().join("nginx"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&mounted).unwrap();
        std::fs::write(mounted.join("nginx.conf"), "the directory's copy\n").unwrap();
        std::fs::write(tmp.path().join("nginx.conf"), "the file mounted\n").unwrap();
        let mut fs = container(&root, &mounted);
        let file = single_file(&tmp.path().join("nginx.conf")).unwrap();
        fs.mounts.push(ContainerMount {
            destination: PathBuf::from("/etc/nginx/nginx.conf"),
            bind: true,
            at: MountAt::Host(file),
        });
        let conf = Path::new("/etc/nginx/nginx.conf");
        assert_eq!(fs.read(conf).unwrap(), b"the file mounted\n");
        // An editor's save replaces the file: the container keeps the old
        // inode, so neither the new file nor the directory's copy is it.
        std::fs::write(tmp.path().join("nginx.conf.swp"), "saved\n").unwrap();
        std::fs::rename(
            tmp.path().join("nginx.conf.swp"),
            tmp.path().join("nginx.conf"),
        )
        .unwrap();
        assert!(fs.host_path(conf).is_none());
        assert!(fs.replaced(conf).is_some());
        fs.mounts[1].at = MountAt::Replaced(tmp.path().join("nginx.conf"));
        assert!(fs.host_path(conf).is_none(), "not the directory's copy");
    }
}
