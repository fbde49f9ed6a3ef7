//! One rollout per nginx config at a time.
//!
//! An exclusive OS lock (`flock`) on `<state dir>/lock`, which the kernel
//! releases when the holder dies, so a lock left by a killed run is never
//! stale: the next run takes it and sees the dead holder's note. The file
//! holds who has it (pid, command, since when) for the refusal message.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Most bytes of a lock file's note read: ours is one short line of JSON.
const MAX_NOTE: u64 = 64 << 10;

/// Who holds (or last held) a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Its command line.
    pub command: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// The lock is held by another live process.
#[derive(Debug, thiserror::Error)]
#[error("another rollout holds the lock {path}: pid {} ({}) since {}", holder.pid, holder.command, holder.since)]
pub struct LockHeld {
    /// The lock file.
    pub path: String,
    /// Who holds it.
    pub holder: Holder,
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    file: File,
    /// The previous holder, when it died without releasing (its rollout may need `resume`).
    pub taken_over_from: Option<Holder>,
}

impl Lock {
    /// Takes the lock, waiting for it at most `patience` (polled: quick
    /// offline edits queue up behind each other), else fails with [`LockHeld`].
    pub fn acquire_within(path: &Path, command: &str, patience: Duration) -> Result<Lock> {
        crate::retry::within(
            patience,
            Duration::from_millis(20),
            || Lock::acquire(path, command),
            |e| e.is::<LockHeld>(),
        )
    }

    /// Takes the lock at once or fails with [`LockHeld`]. The lock file is
    /// never opened through a symlink, and must be a regular file of ours.
    pub fn acquire(path: &Path, command: &str) -> Result<Lock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(path)
            .with_context(|| format!("cannot open lock {} (a symlink?)", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot read lock {}", path.display()))?;
        let me = rustix::process::geteuid().as_raw();
        if !meta.is_file() || meta.uid() != me {
            anyhow::bail!(
                "refusing the lock {}: not a regular file of uid {me}",
                path.display()
            );
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot lock {} (flock)", path.display())));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let previous = read_note(&file).unwrap_or_default();
                let holder = serde_json::from_slice(&previous).unwrap_or(Holder {
                    pid: 0,
                    command: "unknown (its note is unreadable)".into(),
                    since: "unknown".into(),
                });
                return Err(LockHeld {
                    path: path.display().to_string(),
                    holder,
                }
                .into());
            }
        }
        let previous =
            read_note(&file).with_context(|| format!("cannot read lock {}", path.display()))?;
        let taken_over_from = serde_json::from_slice::<Holder>(&previous).ok();
        let me = Holder {
            pid: std::process::id(),
            command: command.to_string(),
            since: super::journal::time::format(chrono::Utc::now()),
        };
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(serde_json::to_string(&me)?.as_bytes())?;
            file.sync_all()
        };
        write(&mut file).with_context(|| format!("cannot write lock {}", path.display()))?;
        Ok(Lock {
            file,
            taken_over_from,
        })
    }
}

/// The note in a lock file: at most [`MAX_NOTE`] bytes of it.
fn read_note(file: &File) -> std::io::Result<Vec<u8>> {
    let mut note = Vec::new();
    file.take(MAX_NOTE).read_to_end(&mut note)?;
    Ok(note)
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Clear the note so the next holder does not think we died holding it.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_ones_details() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = Lock::acquire(&path, "deploy apps").unwrap();
        assert!(first.taken_over_from.is_none());
        let err = Lock::acquire(&path, "deploy apps").unwrap_err();
        let held = err.downcast_ref::<LockHeld>().unwrap();
        assert_eq!(held.holder.pid, std::process::id());
        assert_eq!(held.holder.command, "deploy apps");
        drop(first);
        let again = Lock::acquire(&path, "resume").unwrap();
        assert!(
            again.taken_over_from.is_none(),
            "a clean release leaves no note"
        );
    }

    #[test]
    fn a_planted_lock_symlink_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        let path = dir.path().join("lock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = Lock::acquire(&path, "deploy apps").unwrap_err();
        assert!(format!("{err:#}").contains("symlink"), "{err:#}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }

    #[test]
    fn a_waiting_taker_gets_the_lock_once_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = Lock::acquire(&path, "conf drain").unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                Lock::acquire_within(&path, "conf drain", Duration::from_secs(30)).map(|_| ())
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        waiter.join().unwrap().unwrap();
        let held = Lock::acquire(&path, "one").unwrap();
        let err = Lock::acquire_within(&path, "two", Duration::ZERO).unwrap_err();
        assert!(err.is::<LockHeld>());
        drop(held);
    }

    #[test]
    fn a_note_is_read_only_up_to_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        std::fs::write(&path, vec![b'x'; 1 << 20]).unwrap();
        let note = read_note(&File::open(&path).unwrap()).unwrap();
        assert_eq!(note.len() as u64, MAX_NOTE);
        let lock = Lock::acquire(&path, "resume").unwrap();
        assert_eq!(lock.taken_over_from, None);
    }

    #[test]
    fn a_dead_holders_note_is_reported_on_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let dead = Holder {
            pid: 999_999,
            command: "deploy apps".into(),
            since: "2026-01-01T00:00:00Z".into(),
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        let lock = Lock::acquire(&path, "resume").unwrap();
        assert_eq!(lock.taken_over_from, Some(dead));
    }
}
