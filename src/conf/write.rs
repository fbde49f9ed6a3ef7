//! Writing an operator's config file without replacing it.
//!
//! A single-file Docker bind mount pins the file's inode: replacing the file
//! (write-to-temp-then-rename, `sed -i`, most editors) leaves the container
//! reading the old inode forever (moby/moby#22627). So we truncate and rewrite
//! the same inode, which also keeps its mode and owner, and follow symlinks.
use super::error::ConfError;
use super::fs::MAX_FILE_BYTES;
use super::host_file::{HostFile, read_from_start};
use super::set::FileChange;
use rustix::fs::OFlags;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A file was changed by someone else between our reading it and our
/// writing it: nothing was written to it.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} changed since nginx-rollout read it (edited by someone else?); nothing was written to it",
    path.display()
)]
pub struct FileChanged {
    /// The file.
    pub path: PathBuf,
}

impl FileChanged {
    /// Whether `e` or one of its causes is a [`FileChanged`].
    pub fn is_cause_of(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(e);
        while let Some(e) = next {
            let inner = e
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .map(|i| i as &(dyn std::error::Error + 'static));
            if e.is::<FileChanged>() || inner.is_some_and(|i| i.is::<FileChanged>()) {
                return true;
            }
            next = e.source();
        }
        false
    }
}

/// First line of a save file.
const SAVE_MAGIC: &[u8] = b"nginx-rollout save 1\n";

/// The save file's name for `file`: `.NAME.nginx-rollout-save` beside it. It
/// exists only while a write of the file is under way, or after one was
/// interrupted.
fn save_name(file: &HostFile) -> OsString {
    let mut name = OsString::from(".");
    name.push(file.name());
    name.push(".nginx-rollout-save");
    name
}

/// How long a read, write or recovery of a file waits for another
/// nginx-rollout's write of it to finish (a write takes milliseconds).
const WRITE_PATIENCE: Duration = Duration::from_secs(10);

/// An advisory `flock` on a config file, held by nginx-rollout while it
/// writes the file or finishes an interrupted write (exclusive) and while
/// it reads it (shared). So a process never reads another one's write half
/// done, and never takes a write that is still under way for an interrupted
/// one. Released when dropped, or by the kernel when the process dies. The
/// file is read, and written, through the descriptor locked: the file
/// checked and locked is the file written, whatever is renamed meanwhile.
#[derive(Debug)]
pub(super) struct FileLock {
    /// The open file the lock is on; closing it releases the lock.
    file: File,
    /// Whether `file` is open for writing too.
    writable: bool,
}

impl FileLock {
    /// An exclusive lock on `file`, to write it.
    pub(super) fn exclusive(file: &HostFile) -> io::Result<FileLock> {
        Self::take(file, true)
    }

    /// A shared lock on `file`, to read it.
    pub(super) fn shared(file: &HostFile) -> io::Result<FileLock> {
        Self::take(file, false)
    }

    fn take(file: &HostFile, exclusive: bool) -> io::Result<FileLock> {
        use rustix::fs::FlockOperation::{NonBlockingLockExclusive, NonBlockingLockShared};
        let name = file.name();
        let held = file.hold(name)?;
        // An exclusive lock is taken on the file open for writing where it may
        // be (NFS emulates flock with byte-range locks, which need that); a
        // reader who may not write it still locks it to finish a write.
        let (open, writable) = match exclusive {
            true => match file.reopen(&held, name, OFlags::RDWR) {
                Ok(f) => (f, true),
                Err(e) if read_only(&e) => (file.reopen(&held, name, OFlags::RDONLY)?, false),
                Err(e) => return Err(e),
            },
            false => (file.reopen(&held, name, OFlags::RDONLY)?, false),
        };
        let op = match exclusive {
            true => NonBlockingLockExclusive,
            false => NonBlockingLockShared,
        };
        let locked = crate::retry::within(
            WRITE_PATIENCE,
            Duration::from_millis(10),
            || rustix::fs::flock(&open, op),
            |e| *e == rustix::io::Errno::WOULDBLOCK,
        );
        match locked {
            Ok(()) => Ok(FileLock {
                file: open,
                writable,
            }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{}: another nginx-rollout process has been writing it for {} s",
                    file.shown().display(),
                    WRITE_PATIENCE.as_secs()
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The locked file's bytes (bounded).
    pub(super) fn read(&self) -> io::Result<Vec<u8>> {
        read_from_start(&self.file)
    }

    /// The locked file, `file`, open to write it in place (the same file).
    fn writable(&self, file: &HostFile) -> io::Result<File> {
        match self.writable {
            true => self.file.try_clone(),
            false => file.reopen(&self.file, file.name(), OFlags::RDWR),
        }
    }
}

/// Whether `e` says this process may not write there.
fn read_only(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Whether an interrupted write of `file` left its save (or one is under way).
pub(super) fn save_exists(file: &HostFile) -> bool {
    file.has(&save_name(file))
}

/// A point inside a write where a test may make the writer wait
/// (`NGINX_ROLLOUT_TEST_PAUSE=STAGE:MILLISECONDS`), to kill it there or
/// change the file under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Just before the file's bytes are compared with what was read.
    BeforeCheck,
    /// The file is truncated and its new bytes not written yet.
    Truncated,
}

fn test_pause(stage: Stage, path: &Path) {
    let Ok(spec) = std::env::var("NGINX_ROLLOUT_TEST_PAUSE") else {
        return;
    };
    let name = match stage {
        Stage::BeforeCheck => "before-check",
        Stage::Truncated => "truncated",
    };
    if let Some(ms) = spec
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|ms| ms.parse().ok())
    {
        let _ = writeln!(
            io::stderr(),
            "nginx-rollout: test pause {name} {}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Overwrites `path` (symlinks followed) with `bytes` on the same inode,
/// then fsyncs it.
///
/// Recoverable: the previous bytes (and the new ones) are first saved
/// durably beside the file; the save is removed once the new bytes are on
/// disk. If the process dies in between, the next read of the file through
/// the engine ([`recover`]) puts the previous bytes back.
pub fn write_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file = HostFile::named(path)?;
    let lock = FileLock::exclusive(&file)?;
    let old = lock.read()?;
    write_over(&file, &lock, &old, bytes)
}

/// [`write_in_place`] of `file` only if it still holds `expected` (compare
/// and swap): a file changed since it was read fails with [`FileChanged`]
/// and is left as it is.
pub fn write_if_unchanged(file: &HostFile, expected: &[u8], bytes: &[u8]) -> io::Result<()> {
    let lock = FileLock::exclusive(file)?;
    test_pause(Stage::BeforeCheck, file.shown());
    let current = lock.read()?;
    if current != expected {
        return Err(io::Error::other(FileChanged {
            path: file.shown().to_path_buf(),
        }));
    }
    if current == bytes {
        return Ok(());
    }
    write_over(file, &lock, &current, bytes)
}

/// Writes `new` over the file `lock` holds exclusively, which holds `old`.
fn write_over(file: &HostFile, lock: &FileLock, old: &[u8], new: &[u8]) -> io::Result<()> {
    let out = lock.writable(file)?;
    let save = save_name(file);
    let mut saving = Temp::beside(file).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot save the bytes of {} before writing it: {e}",
                file.shown().display()
            ),
        )
    })?;
    let saved = (|| {
        let out = saving.file();
        out.write_all(SAVE_MAGIC)?;
        out.write_all(format!("{} {}\n", old.len(), new.len()).as_bytes())?;
        out.write_all(old)?;
        out.write_all(new)?;
        out.sync_all()?;
        saving.place(file, &save).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => kept_save(file, &save),
            _ => e,
        })
    })();
    if let Err(e) = saved {
        saving.discard(file);
        return Err(e);
    }
    file.sync_dir()?;
    let written = (|| {
        out.set_len(0)?;
        test_pause(Stage::Truncated, file.shown());
        out.write_all_at(new, 0)?;
        out.sync_all()
    })();
    if let Err(e) = written {
        // Put the previous bytes back at once if the disk lets us; else the
        // save stays for the next read to restore them.
        let restored = out.set_len(0).and_then(|()| out.write_all_at(old, 0));
        if restored.and_then(|()| out.sync_all()).is_ok() {
            let _ = file.remove(&save).and_then(|()| file.sync_dir());
        }
        return Err(e);
    }
    file.remove(&save)?;
    file.sync_dir()
}

/// A save kept from an earlier interrupted write that the file no longer
/// matches: it is the operator's to compare, never overwritten.
fn kept_save(file: &HostFile, save: &OsStr) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} holds the bytes of {} from before an interrupted write; compare, then delete it",
            file.sibling(save).display(),
            file.shown().display()
        ),
    )
}

/// The save file being written, not in place yet: unnamed where the file
/// system allows (a process killed now leaves nothing), else under a name
/// of this process's own.
enum Temp {
    Unnamed(File),
    Named(OsString, File),
}

impl Temp {
    /// A new file beside `file`, only this process's (mode 0600).
    fn beside(file: &HostFile) -> io::Result<Temp> {
        if let Some(unnamed) = file.create_unnamed()? {
            return Ok(Temp::Unnamed(unnamed));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for attempt in 0..100 {
            let name = OsString::from(format!(
                ".nginx-rollout-save.{}.{nanos:x}.{attempt}",
                std::process::id()
            ));
            match file.create(&name) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                created => return created.map(|f| Temp::Named(name, f)),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)))
    }

    fn file(&mut self) -> &mut File {
        match self {
            Temp::Unnamed(f) | Temp::Named(_, f) => f,
        }
    }

    /// Names it `to` beside `file`; `to` must not exist.
    fn place(&self, file: &HostFile, to: &OsStr) -> io::Result<()> {
        match self {
            Temp::Unnamed(f) => file.link_new(f, to),
            Temp::Named(name, _) => file.rename_new(name, to),
        }
    }

    /// Removes it, not placed.
    fn discard(self, file: &HostFile) {
        if let Temp::Named(name, _) = self {
            let _ = file.remove(&name);
        }
    }
}

/// What [`recover`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No interrupted write.
    Clean,
    /// An interrupted write had left the file torn: its previous bytes are back.
    Restored(PathBuf),
    /// An interrupted write's save was found, but the file was edited since:
    /// both are left as they are for the operator to compare.
    Kept {
        /// The file.
        file: PathBuf,
        /// The save of its bytes from before the interrupted write.
        save: PathBuf,
    },
}

/// Finishes an interrupted [`write_in_place`] of `file`: when the file is
/// torn (a prefix of the bytes being written, or zeros where they were to
/// go), its previous bytes are written back. A file that holds the old or
/// the new bytes in full just loses the save. The save is trusted only when
/// it is a regular file (never a symlink) owned by this process's user (who
/// made it) or the file's owner. A write still under way in another
/// process is waited for, never taken for an interrupted one.
pub fn recover(file: &HostFile) -> io::Result<Recovery> {
    let lock = FileLock::exclusive(file)?;
    let save = save_name(file);
    let shown_save = file.sibling(&save);
    let saved = match file.open_checked(&save) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovery::Clean),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("{}: not taken as a save: {e}", shown_save.display()),
            ));
        }
    };
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a save of {} made by nginx-rollout ({why}); remove it",
                shown_save.display(),
                file.shown().display()
            ),
        )
    };
    let owner = saved.metadata()?.uid();
    if owner != rustix::process::geteuid().as_raw() && owner != lock.file.metadata()?.uid() {
        return Err(bad("another owner"));
    }
    let mut bytes = Vec::new();
    (&saved)
        .take(2 * MAX_FILE_BYTES + 64)
        .read_to_end(&mut bytes)?;
    let Some(rest) = bytes.strip_prefix(SAVE_MAGIC) else {
        return Err(bad("no header"));
    };
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("no lengths"))?;
    let lengths = String::from_utf8_lossy(&rest[..nl]).into_owned();
    let body = &rest[nl + 1..];
    let (old_len, new_len) = lengths
        .split_once(' ')
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .filter(|(a, b)| a.checked_add(*b) == Some(body.len()))
        .ok_or_else(|| bad("lengths do not match"))?;
    let (old, new) = body.split_at(old_len);
    debug_assert_eq!(new.len(), new_len);
    let current = lock.read()?;
    if current == old || current == new {
        match file.remove(&save).and_then(|()| file.sync_dir()) {
            // A reader who may not write there: the file is whole.
            Err(e) if read_only(&e) => tracing::warn!(
                "{}: left from a write that finished; cannot remove it: {e}",
                shown_save.display()
            ),
            other => other?,
        }
        return Ok(Recovery::Clean);
    }
    let torn =
        current.len() <= new.len() && current.iter().zip(new).all(|(&c, &n)| c == n || c == 0);
    if !torn {
        return Ok(Recovery::Kept {
            file: file.shown().to_path_buf(),
            save: shown_save,
        });
    }
    let out = lock.writable(file)?;
    out.set_len(0)?;
    out.write_all_at(old, 0)?;
    out.sync_all()?;
    file.remove(&save)?;
    file.sync_dir()?;
    Ok(Recovery::Restored(file.shown().to_path_buf()))
}

/// Writes every change in place, each only if its file still holds the
/// change's `before` bytes. If a write fails, the previous bytes of the
/// files already written are put back, so the set of files is all-old or
/// all-new; the error names the file (a [`FileChanged`] is told apart by
/// [`WriteError::Changed`], for the caller to read and edit again).
pub fn write_changes(changes: &[FileChange]) -> Result<(), WriteError> {
    for (i, c) in changes.iter().enumerate() {
        if let Err(e) =
            HostFile::named(&c.path).and_then(|f| write_if_unchanged(&f, &c.before, &c.after))
        {
            let changed = FileChanged::is_cause_of(&e);
            let mut msg = format!("cannot write {}: {e}", c.path.display());
            for undo in changes[..i].iter().rev() {
                if let Err(e2) = HostFile::named(&undo.path)
                    .and_then(|f| write_if_unchanged(&f, &undo.after, &undo.before))
                {
                    msg.push_str(&format!(
                        "; restoring {} failed too: {e2}",
                        undo.path.display()
                    ));
                }
            }
            return Err(if changed {
                WriteError::Changed(ConfError::new(msg))
            } else {
                WriteError::Failed(ConfError::new(msg))
            });
        }
    }
    Ok(())
}

/// Why [`write_changes`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A file was changed by someone else since it was read.
    #[error("{0}")]
    Changed(ConfError),
    /// A file could not be written.
    #[error("{0}")]
    Failed(ConfError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn keeps_inode_mode_and_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("nginx.conf");
        std::fs::write(&real, b"old contents that are longer\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.conf");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let before = std::fs::metadata(&real).unwrap();

        write_in_place(&link, b"new\n").unwrap();

        let after = std::fs::metadata(&real).unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"new\n");
        assert_eq!(before.ino(), after.ino());
        assert_eq!(after.mode() & 0o777, 0o640);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn failed_write_restores_earlier_files() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("a.conf");
        std::fs::write(&ok, b"old").unwrap();
        let change = |path: &Path| FileChange {
            path: path.to_path_buf(),
            before: b"old".to_vec(),
            after: b"new".to_vec(),
        };
        let missing = dir.path().join("no/such.conf");
        let err = write_changes(&[change(&ok), change(&missing)]).unwrap_err();
        assert!(err.to_string().contains("no/such.conf"), "{err}");
        assert_eq!(std::fs::read(&ok).unwrap(), b"old");
        write_changes(&[change(&ok)]).unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"new");
    }

    #[test]
    fn a_file_changed_since_it_was_read_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.conf"), dir.path().join("b.conf"));
        std::fs::write(&a, b"a0").unwrap();
        std::fs::write(&b, b"someone else's edit").unwrap();
        let change = |path: &Path, before: &[u8], after: &[u8]| FileChange {
            path: path.to_path_buf(),
            before: before.to_vec(),
            after: after.to_vec(),
        };
        let err = write_changes(&[change(&a, b"a0", b"a1"), change(&b, b"b0", b"b1")]).unwrap_err();
        assert!(matches!(err, WriteError::Changed(_)), "{err}");
        assert!(err.to_string().contains("changed since"), "{err}");
        assert_eq!(std::fs::read(&a).unwrap(), b"a0", "all-old");
        assert_eq!(std::fs::read(&b).unwrap(), b"someone else's edit");
    }

    /// The save file's path beside `file`.
    fn save_path(file: &Path) -> PathBuf {
        file.with_file_name(save_name(&HostFile::named(file).unwrap()))
    }

    fn host(path: &Path) -> HostFile {
        HostFile::named(path).unwrap()
    }

    fn interrupted(dir: &Path, old: &[u8], new: &[u8], now: &[u8]) -> PathBuf {
        let file = dir.join("nginx.conf");
        std::fs::write(&file, now).unwrap();
        let mut save = SAVE_MAGIC.to_vec();
        save.extend(format!("{} {}\n", old.len(), new.len()).bytes());
        save.extend(old);
        save.extend(new);
        std::fs::write(save_path(&file), save).unwrap();
        file
    }

    #[test]
    fn a_torn_file_gets_its_previous_bytes_back_on_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        for torn in [&b""[..], b"server a down", b"server a \0\0\0\0"] {
            let file = interrupted(dir.path(), b"server a;\n", b"server a down;\n", torn);
            let inode = std::fs::metadata(&file).unwrap().ino();
            assert_eq!(
                crate::conf::read_host_file(&host(&file)).unwrap(),
                b"server a;\n"
            );
            assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
            assert!(!save_path(&file).exists());
        }
        // Whole new bytes: the write had finished; they stay.
        let file = interrupted(dir.path(), b"old\n", b"new\n", b"new\n");
        assert_eq!(recover(&host(&file)).unwrap(), Recovery::Clean);
        assert_eq!(std::fs::read(&file).unwrap(), b"new\n");
        // Edited since: nothing is overwritten.
        let file = interrupted(dir.path(), b"old\n", b"new\n", b"the operator's\n");
        assert!(matches!(
            recover(&host(&file)).unwrap(),
            Recovery::Kept { .. }
        ));
        assert_eq!(std::fs::read(&file).unwrap(), b"the operator's\n");
    }

    #[test]
    fn a_save_kept_for_the_operator_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = interrupted(dir.path(), b"old\n", b"new\n", b"the operator's\n");
        let save = std::fs::read(save_path(&file)).unwrap();
        assert!(matches!(
            recover(&host(&file)).unwrap(),
            Recovery::Kept { .. }
        ));
        let e = write_if_unchanged(&host(&file), b"the operator's\n", b"x\n").unwrap_err();
        assert!(e.to_string().contains("compare, then delete it"), "{e}");
        assert_eq!(std::fs::read(save_path(&file)).unwrap(), save);
        assert_eq!(std::fs::read(&file).unwrap(), b"the operator's\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");
    }

    #[test]
    fn a_save_being_written_has_no_name_until_it_is_placed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, b"old\n").unwrap();
        let file = host(&path);
        let mut temp = Temp::beside(&file).unwrap();
        temp.file().write_all(b"saved").unwrap();
        let names = || -> Vec<_> {
            let entries = std::fs::read_dir(dir.path()).unwrap();
            entries.map(|e| e.unwrap().file_name()).collect()
        };
        assert_eq!(names(), ["nginx.conf"], "a kill now leaves nothing");
        temp.place(&file, OsStr::new(".saved")).unwrap();
        assert_eq!(std::fs::read(dir.path().join(".saved")).unwrap(), b"saved");
        let again = Temp::beside(&file).unwrap();
        let e = again.place(&file, OsStr::new(".saved")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn the_file_locked_and_checked_is_the_file_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, b"checked\n").unwrap();
        let file = host(&path);
        let lock = FileLock::exclusive(&file).unwrap();
        // Someone puts another file in its place after the check.
        std::fs::rename(&path, dir.path().join("moved.conf")).unwrap();
        std::fs::write(&path, b"put in its place\n").unwrap();
        write_over(&file, &lock, b"checked\n", b"written\n").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("moved.conf")).unwrap(),
            b"written\n"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"put in its place\n");
    }

    #[test]
    fn a_planted_save_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, b"x;\n").unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"top secret").unwrap();
        std::os::unix::fs::symlink(&secret, save_path(&file)).unwrap();
        assert!(recover(&host(&file)).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"x;\n");
    }
}
