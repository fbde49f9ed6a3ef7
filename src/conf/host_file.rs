//! A config file on this host as writes and careful reads reach it
//! ([`HostFile`]): its directory held open and its name there, looked up
//! beneath a directory held open since it was named ([`HostDir`]) with no
//! symlink followed. A file is opened only once it is known to be a
//! regular file (never a device or a FIFO, which opening alone may act
//! on), and a write uses that one descriptor from the lock to the last
//! byte. So a container that can write the directory, and renames or swaps
//! in a symlink, a device or another file meanwhile, cannot move a read or
//! a write of this root tool elsewhere.
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};

use super::fs::{check_kind, read_bounded};

/// How directories on the way are held: to look names up in, nothing more
/// (no read permission needed, as for a path walk).
const WALK: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// A directory of this host held open since it was named: what is looked
/// up beneath it ([`HostFile::beneath`]) never goes through its path again.
#[derive(Debug, Clone)]
pub struct HostDir {
    fd: Arc<OwnedFd>,
    shown: PathBuf,
}

impl HostDir {
    /// Opens directory `path` (its symlinks followed: an operator's path, a
    /// mount's source, `/proc/PID/root`).
    pub fn open(path: &Path) -> io::Result<HostDir> {
        let fd = rustix::fs::open(path, WALK, Mode::empty())?;
        Ok(HostDir {
            fd: Arc::new(fd),
            shown: path.to_path_buf(),
        })
    }

    /// The path it was opened by, for messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// The open directory.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory's device and inode: which directory it is.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        let st = rustix::fs::fstat(self.fd())?;
        Ok((st.st_dev, st.st_ino))
    }
}

/// A file on this host: its directory, held open, and its name in it.
#[derive(Debug)]
pub struct HostFile {
    dir: OwnedFd,
    name: OsString,
    shown: PathBuf,
}

impl HostFile {
    /// `path`, every symlink on it followed (an operator's own file, or a
    /// single-file mount's source as the operator named it).
    pub fn named(path: &Path) -> io::Result<HostFile> {
        let real = std::fs::canonicalize(path)?;
        let (parent, name) = match (real.parent(), real.file_name()) {
            (Some(parent), Some(name)) => (parent, name.to_os_string()),
            _ => (real.as_path(), OsString::from(".")),
        };
        let dir = rustix::fs::open(parent, WALK, Mode::empty())?;
        Ok(HostFile {
            dir,
            name,
            shown: real,
        })
    }

    /// `rel` beneath `root`, with no symlink and no `..` on the way nor at
    /// its end: under a directory a container can write, a symlink found now
    /// was swapped in after the path was resolved. An empty `rel` is `root`.
    pub fn beneath(root: &HostDir, rel: &Path) -> io::Result<HostFile> {
        let shown = root.shown.join(rel);
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(part) => parts.push(part),
                Component::CurDir => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: leads out of {}", shown.display(), root.shown.display()),
                    ));
                }
            }
        }
        let Some(name) = parts.pop() else {
            return Ok(HostFile {
                dir: rustix::io::fcntl_dupfd_cloexec(root.fd(), 0)?,
                name: OsString::from("."),
                shown: root.shown.clone(),
            });
        };
        let mut dir = rustix::io::fcntl_dupfd_cloexec(root.fd(), 0)?;
        let mut walked = root.shown.clone();
        for part in parts {
            walked.push(part);
            dir = match rustix::fs::openat(&dir, part, WALK | OFlags::NOFOLLOW, Mode::empty()) {
                Ok(next) => next,
                Err(e) => return Err(named_error(e, &dir, part, &shown, &walked)),
            };
        }
        Ok(HostFile {
            dir,
            name: name.to_os_string(),
            shown,
        })
    }

    /// The file's path, for messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// The file's bytes: a regular file within the engine's bound, never a
    /// symlink, a device or a FIFO.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        read_from_start(&self.open_checked(&self.name)?)
    }

    /// The file's metadata, not following a symlink and opening nothing.
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        File::from(self.held()?).metadata()
    }

    /// The file held without being opened (`O_PATH`; a symlink itself).
    pub fn held(&self) -> io::Result<OwnedFd> {
        self.open_path(&self.name)
    }

    /// Opens `name` in the file's directory to read it: looked at first
    /// without being opened ([`HostFile::hold`]), then opened through that
    /// descriptor, so the file checked is the file opened.
    pub(super) fn open_checked(&self, name: &OsStr) -> io::Result<File> {
        self.reopen(&self.hold(name)?, name, OFlags::RDONLY)
    }

    /// `name` in the file's directory held without being opened (`O_PATH`),
    /// when it is a regular file (no symlink followed; a device or a FIFO,
    /// which opening alone may act on, is an error).
    pub(super) fn hold(&self, name: &OsStr) -> io::Result<File> {
        let held = File::from(self.open_path(name)?);
        let meta = held.metadata()?;
        if meta.file_type().is_symlink() {
            return Err(swapped(&self.shown, &self.sibling(name)));
        }
        check_kind(&meta)?;
        Ok(held)
    }

    /// Opens `held`, which holds `name` in the file's directory, with `flags`
    /// (see [`reopen_or`]; without `/proc`, `name` opened again).
    pub(super) fn reopen(&self, held: &File, name: &OsStr, flags: OFlags) -> io::Result<File> {
        reopen_or(held, flags, |flags| {
            rustix::fs::openat(&self.dir, name, flags | OFlags::NOFOLLOW, Mode::empty())
        })
    }

    /// Opens the file to read it (as [`HostFile::read`] does), for a caller
    /// that reads it bounded itself.
    pub fn open_read(&self) -> io::Result<File> {
        self.open_checked(&self.name)
    }

    /// `name` in the file's directory, held without being opened.
    fn open_path(&self, name: &OsStr) -> io::Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(&self.dir, name, flags, Mode::empty())
            .map_err(|e| named_error(e, &self.dir, name, &self.shown, &self.sibling(name)))
    }

    /// Creates `name` in the file's directory, only this process's (it must
    /// not exist; mode 0600), to write.
    pub(super) fn create(&self, name: &OsStr) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.dir, name, flags, Mode::from_raw_mode(0o600))?;
        Ok(File::from(fd))
    }

    /// A new file in the file's directory with no name yet (`O_TMPFILE`),
    /// only this process's (mode 0600), to write and then [`Self::link_new`]:
    /// a process killed before that leaves nothing behind. `None` where the
    /// file system cannot make one (NFS, 9p, FUSE).
    pub(super) fn create_unnamed(&self) -> io::Result<Option<File>> {
        use rustix::io::Errno;
        let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.dir, ".", flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives `file` (made by [`Self::create_unnamed`]) the name `to` in the
    /// file's directory; `to` must not exist (`AlreadyExists` if it does).
    pub(super) fn link_new(&self, file: &File, to: &OsStr) -> io::Result<()> {
        use rustix::io::Errno;
        let linked = match rustix::fs::linkat(file, "", &self.dir, to, AtFlags::EMPTY_PATH) {
            // `AT_EMPTY_PATH` needs CAP_DAC_READ_SEARCH; /proc does not.
            Err(Errno::NOENT | Errno::PERM) => {
                let magic = format!("/proc/self/fd/{}", file.as_raw_fd());
                let cwd = rustix::fs::CWD;
                rustix::fs::linkat(cwd, magic.as_str(), &self.dir, to, AtFlags::SYMLINK_FOLLOW)
            }
            other => other,
        };
        match linked {
            Err(Errno::EXIST) => Err(io::ErrorKind::AlreadyExists.into()),
            other => Ok(other?),
        }
    }

    /// `name` beside the file, for messages.
    pub(super) fn sibling(&self, name: &OsStr) -> PathBuf {
        match self.name == "." {
            true => self.shown.join(name),
            false => self.shown.with_file_name(name),
        }
    }

    /// The file's name in its directory.
    pub(super) fn name(&self) -> &OsStr {
        &self.name
    }

    /// Renames `from` to `to`, both in the file's directory; `to` must not
    /// exist (`AlreadyExists` if it does). On file systems without
    /// `RENAME_NOREPLACE` (NFS, 9p, FUSE) a hard link stands in for it (it
    /// fails on an existing name too); without hard links either, the name
    /// is looked for first (the caller holds the file's exclusive lock).
    pub(super) fn rename_new(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        use rustix::io::Errno;
        let flags = rustix::fs::RenameFlags::NOREPLACE;
        match rustix::fs::renameat_with(&self.dir, from, &self.dir, to, flags) {
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            other => return Ok(other?),
        }
        match rustix::fs::linkat(&self.dir, from, &self.dir, to, AtFlags::empty()) {
            Ok(()) => return Ok(rustix::fs::unlinkat(&self.dir, from, AtFlags::empty())?),
            Err(Errno::EXIST) => return Err(io::ErrorKind::AlreadyExists.into()),
            Err(_) => {}
        }
        if rustix::fs::statat(&self.dir, to, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        Ok(rustix::fs::renameat(&self.dir, from, &self.dir, to)?)
    }

    /// Removes `name` from the file's directory.
    pub(super) fn remove(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.dir, name, AtFlags::empty())?)
    }

    /// Makes the directory's entries durable.
    pub(super) fn sync_dir(&self) -> io::Result<()> {
        let dir = rustix::fs::openat(
            &self.dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(rustix::fs::fsync(&dir)?)
    }

    /// Whether the name exists (a dangling symlink does).
    pub fn exists(&self) -> bool {
        self.has(&self.name)
    }

    /// Whether `name` exists in the file's directory (a dangling symlink does).
    pub(super) fn has(&self, name: &OsStr) -> bool {
        rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// The target of the file when it is a symlink (none when it is not
    /// one, or does not exist).
    pub fn link_target(&self) -> io::Result<Option<PathBuf>> {
        match rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink() => {
                let target = rustix::fs::readlinkat(&self.dir, &self.name, Vec::new())?;
                Ok(Some(PathBuf::from(OsString::from_vec(target.into_bytes()))))
            }
            Ok(_) | Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The names in the file, a directory (not `.` and `..`).
    pub fn list(&self) -> io::Result<Vec<OsString>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::openat(&self.dir, &self.name, flags, Mode::empty())
            .map_err(|e| named_error(e, &self.dir, &self.name, &self.shown, &self.shown))?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::new(dir)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        Ok(names)
    }
}

/// Opens the regular file that `held` (an `O_PATH` descriptor) holds, with
/// `flags`; anything else (a device, a FIFO, a directory) is an error and
/// never opened. Needs `/proc` (as the container's root does).
pub fn open_held(held: impl Into<File>, flags: OFlags) -> io::Result<File> {
    let held: File = held.into();
    check_kind(&held.metadata()?)?;
    reopen_or(&held, flags, |_| Err(rustix::io::Errno::NOENT))
}

/// Opens what `held` (an `O_PATH` descriptor) holds, with `flags`, through
/// `/proc/self/fd`: the very file looked at, never one put in its place.
/// Without `/proc` (a chroot), `again` opens it by name once more, and that
/// is kept only if it is the same file.
pub(super) fn reopen_or(
    held: &File,
    flags: OFlags,
    again: impl FnOnce(OFlags) -> rustix::io::Result<OwnedFd>,
) -> io::Result<File> {
    let flags = (flags - OFlags::NOFOLLOW) | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let magic = format!("/proc/self/fd/{}", held.as_raw_fd());
    let fd = match rustix::fs::open(&magic, flags, Mode::empty()) {
        Err(rustix::io::Errno::NOENT) => {
            let fd = again(flags).map_err(|e| match e {
                rustix::io::Errno::NOENT => io::Error::other(format!(
                    "cannot open a file through {magic} (is /proc mounted?)"
                )),
                e => e.into(),
            })?;
            let (a, b) = (rustix::fs::fstat(held)?, rustix::fs::fstat(&fd)?);
            if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
                return Err(io::Error::other(
                    "the file was replaced while it was being opened; nothing was read or written",
                ));
            }
            fd
        }
        other => other?,
    };
    Ok(File::from(fd))
}

/// The bytes of open file `file` from its start, read bounded.
pub(super) fn read_from_start(mut file: &File) -> io::Result<Vec<u8>> {
    file.rewind()?;
    read_bounded(file.try_clone()?)
}

/// The error of opening `name` in `dir`: a symlink there was swapped in.
fn named_error(
    e: rustix::io::Errno,
    dir: &OwnedFd,
    name: &OsStr,
    file: &Path,
    link: &Path,
) -> io::Error {
    let symlink = matches!(e, rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
        && rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink());
    match symlink {
        true => swapped(file, link),
        false => e.into(),
    }
}

/// A symlink where the path had none when it was resolved.
fn swapped(file: &Path, link: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: {} is a symlink now (swapped in after the path was resolved?); not followed",
            file.display(),
            link.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(tmp: &Path) -> (PathBuf, PathBuf, HostDir) {
        let (root, elsewhere) = (tmp.join("mount"), tmp.join("elsewhere"));
        std::fs::create_dir_all(root.join("conf.d")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("a.conf"), "host file\n").unwrap();
        std::fs::write(root.join("conf.d/a.conf"), "mounted\n").unwrap();
        let dir = HostDir::open(&root).unwrap();
        (root, elsewhere, dir)
    }

    #[test]
    fn beneath_takes_no_symlink_on_the_way_nor_at_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, elsewhere, dir) = mount(tmp.path());
        let file = HostFile::beneath(&dir, Path::new("conf.d/a.conf")).unwrap();
        assert_eq!(file.read().unwrap(), b"mounted\n");

        std::os::unix::fs::symlink(&elsewhere, root.join("linked.d")).unwrap();
        let e = HostFile::beneath(&dir, Path::new("linked.d/a.conf")).unwrap_err();
        assert!(e.to_string().contains("is a symlink now"), "{e}");
        std::os::unix::fs::symlink(elsewhere.join("a.conf"), root.join("b.conf")).unwrap();
        let b = HostFile::beneath(&dir, Path::new("b.conf")).unwrap();
        let e = b.read().unwrap_err();
        assert!(e.to_string().contains("is a symlink now"), "{e}");
        assert_eq!(b.link_target().unwrap(), Some(elsewhere.join("a.conf")));
        assert!(HostFile::beneath(&dir, Path::new("../elsewhere/a.conf")).is_err());
        // The root itself, as for a glob from `/` of a container's root.
        let mut names = HostFile::beneath(&dir, Path::new(""))
            .unwrap()
            .list()
            .unwrap();
        names.sort();
        assert_eq!(names, ["b.conf", "conf.d", "linked.d"].map(OsString::from));
    }

    #[test]
    fn a_directory_swapped_after_opening_does_not_move_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, elsewhere, dir) = mount(tmp.path());
        let file = HostFile::beneath(&dir, Path::new("conf.d/a.conf")).unwrap();
        // The container moves the directory away and links the host's in.
        std::fs::rename(root.join("conf.d"), root.join("moved.d")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("conf.d")).unwrap();
        assert_eq!(file.read().unwrap(), b"mounted\n");
        crate::conf::write_if_unchanged(&file, b"mounted\n", b"written\n").unwrap();
        assert_eq!(
            std::fs::read(root.join("moved.d/a.conf")).unwrap(),
            b"written\n"
        );
        assert_eq!(
            std::fs::read(elsewhere.join("a.conf")).unwrap(),
            b"host file\n"
        );
        assert_eq!(
            std::fs::read_dir(&elsewhere).unwrap().count(),
            1,
            "no save left there"
        );
        // The mount's own path swapped too: its directory was held open.
        std::fs::rename(&root, tmp.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        let again = HostFile::beneath(&dir, Path::new("moved.d/a.conf")).unwrap();
        assert_eq!(again.read().unwrap(), b"written\n");
    }

    #[test]
    fn a_fifo_or_a_device_is_never_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, _, dir) = mount(tmp.path());
        crate::conf::make_fifo(&root.join("fifo.conf"));
        let fifo = HostFile::beneath(&dir, Path::new("fifo.conf")).unwrap();
        let e = fifo.read().unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = crate::conf::write_if_unchanged(&fifo, b"", b"x").unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let dev = HostFile::beneath(
            &HostDir::open(Path::new("/dev")).unwrap(),
            Path::new("null"),
        )
        .unwrap();
        let e = dev.read().unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
    }
}
