//! A config file on this host as writes and careful reads reach it
//! ([`HostFile`]): its directory held open and its name there. Every step
//! then names the file through the open directory, so a directory on its
//! path renamed, or swapped for a symlink, meanwhile cannot move a read or a
//! write elsewhere — which matters where a container can write that
//! directory and this tool runs as root.
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

use super::fs::{check_regular, read_bounded};

/// How directories are opened: to list, to sync, and to name files in.
const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// A file on this host: its directory, held open, and its name in it.
#[derive(Debug)]
pub struct HostFile {
    dir: OwnedFd,
    name: OsString,
    shown: PathBuf,
}

impl HostFile {
    /// `path`, every symlink on it followed (an operator's own file, or the
    /// source of a mount as the operator named it).
    pub fn named(path: &Path) -> io::Result<HostFile> {
        let real = std::fs::canonicalize(path)?;
        let (parent, name) = match (real.parent(), real.file_name()) {
            (Some(parent), Some(name)) => (parent, name.to_os_string()),
            _ => (real.as_path(), OsString::from(".")),
        };
        let dir = rustix::fs::open(parent, DIR, Mode::empty())?;
        Ok(HostFile {
            dir,
            name,
            shown: real,
        })
    }

    /// `rel` beneath the directory `root` (named as by [`HostFile::named`]),
    /// with no symlink and no `..` on the way nor at its end: a directory a
    /// container can write, where a symlink found now was swapped in after
    /// the path was resolved. An empty `rel` is `root` itself.
    pub fn beneath(root: &Path, rel: &Path) -> io::Result<HostFile> {
        let shown = root.join(rel);
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(part) => parts.push(part),
                Component::CurDir => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: leads out of {}", shown.display(), root.display()),
                    ));
                }
            }
        }
        let Some(name) = parts.pop() else {
            return Self::named(root);
        };
        let mut dir = rustix::fs::open(root, DIR, Mode::empty())?;
        let mut walked = root.to_path_buf();
        for part in parts {
            walked.push(part);
            dir = match rustix::fs::openat(&dir, part, DIR | OFlags::NOFOLLOW, Mode::empty()) {
                Ok(next) => next,
                Err(_) if is_symlink(&dir, part) => return Err(swapped(&shown, &walked)),
                Err(e) => return Err(e.into()),
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

    /// Opens the file to read it: no symlink, never blocking (a FIFO), and
    /// only when it is a regular file within the engine's bound.
    pub fn open_read(&self) -> io::Result<File> {
        let file = self.open(OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
        check_regular(&file.metadata()?)?;
        Ok(file)
    }

    /// The file's bytes ([`HostFile::open_read`], read bounded).
    pub fn read(&self) -> io::Result<Vec<u8>> {
        read_bounded(self.open_read()?)
    }

    /// Opens the file with `flags` (no symlink followed).
    pub(super) fn open(&self, flags: OFlags, mode: Mode) -> io::Result<File> {
        self.open_named(&self.name, flags, mode)
    }

    /// Opens `name` in the file's directory with `flags` (no symlink followed).
    pub(super) fn open_named(&self, name: &OsStr, flags: OFlags, mode: Mode) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.dir,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
        )
        .map_err(|e| match is_symlink(&self.dir, name) {
            true => swapped(&self.shown, &self.sibling(name)),
            false => io::Error::from(e),
        })?;
        Ok(File::from(fd))
    }

    /// `name` beside the file, for messages.
    pub(super) fn sibling(&self, name: &OsStr) -> PathBuf {
        self.shown.with_file_name(name)
    }

    /// The file's name in its directory.
    pub(super) fn name(&self) -> &OsStr {
        &self.name
    }

    /// Renames `from` to `to`, both in the file's directory.
    pub(super) fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.dir, from, &self.dir, to)?)
    }

    /// Removes `name` from the file's directory.
    pub(super) fn remove(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.dir, name, AtFlags::empty())?)
    }

    /// Makes the directory's entries durable.
    pub(super) fn sync_dir(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.dir)?)
    }

    /// The owner of the file (not of a symlink's target).
    pub(super) fn owner(&self) -> io::Result<u32> {
        let st = rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(st.st_uid)
    }

    /// Whether the name exists (a dangling symlink does).
    pub fn exists(&self) -> bool {
        rustix::fs::statat(&self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
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
        let dir = self.open(OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        Ok(names)
    }
}

/// Whether `name` in `dir` is a symlink (which a directory opened without
/// following it fails on with ENOTDIR, a file with ELOOP).
fn is_symlink(dir: &OwnedFd, name: &OsStr) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink())
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

    #[test]
    fn beneath_takes_no_symlink_on_the_way_nor_at_the_end() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, elsewhere) = (tmp.path().join("mount"), tmp.path().join("elsewhere"));
        std::fs::create_dir_all(root.join("conf.d")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("a.conf"), "host file\n").unwrap();
        std::fs::write(root.join("conf.d/a.conf"), "mounted\n").unwrap();
        let file = HostFile::beneath(&root, Path::new("conf.d/a.conf")).unwrap();
        assert_eq!(file.read().unwrap(), b"mounted\n");

        std::os::unix::fs::symlink(&elsewhere, root.join("linked.d")).unwrap();
        let e = HostFile::beneath(&root, Path::new("linked.d/a.conf")).unwrap_err();
        assert!(e.to_string().contains("is a symlink now"), "{e}");
        std::os::unix::fs::symlink(elsewhere.join("a.conf"), root.join("b.conf")).unwrap();
        let b = HostFile::beneath(&root, Path::new("b.conf")).unwrap();
        let e = b.read().unwrap_err();
        assert!(e.to_string().contains("is a symlink now"), "{e}");
        assert_eq!(b.link_target().unwrap(), Some(elsewhere.join("a.conf")));
        assert!(HostFile::beneath(&root, Path::new("../elsewhere/a.conf")).is_err());
    }

    #[test]
    fn a_directory_swapped_after_opening_does_not_move_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, elsewhere) = (tmp.path().join("mount"), tmp.path().join("elsewhere"));
        std::fs::create_dir_all(root.join("conf.d")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(root.join("conf.d/a.conf"), "mounted\n").unwrap();
        std::fs::write(elsewhere.join("a.conf"), "host file\n").unwrap();
        let file = HostFile::beneath(&root, Path::new("conf.d/a.conf")).unwrap();
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
        let mut names = HostFile::beneath(&root, Path::new("moved.d"))
            .unwrap()
            .list()
            .unwrap();
        names.sort();
        assert_eq!(names, [OsString::from("a.conf")]);
    }
}
