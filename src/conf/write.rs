//! Writing an operator's config file without replacing it.
//!
//! A single-file Docker bind mount pins the file's inode: replacing the file
//! (write-to-temp-then-rename, `sed -i`, most editors) leaves the container
//! reading the old inode forever (moby/moby#22627). So we truncate and rewrite
//! the same inode, which also keeps its mode and owner, and follow symlinks.
use super::error::ConfError;
use super::set::FileChange;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

/// Overwrites `path` with `bytes` on the same inode, then fsyncs it.
pub fn write_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes every change in place. If a write fails, the previous bytes of the
/// files already written (and of the one that failed) are put back, so the
/// set of files is all-old or all-new; the error names the file.
pub fn write_changes(changes: &[FileChange]) -> Result<(), ConfError> {
    for (i, c) in changes.iter().enumerate() {
        if let Err(e) = write_in_place(&c.path, &c.after) {
            let mut msg = format!("cannot write {}: {e}", c.path.display());
            for undo in changes[..=i].iter().rev() {
                if let Err(e2) = write_in_place(&undo.path, &undo.before) {
                    msg.push_str(&format!(
                        "; restoring {} failed too: {e2}",
                        undo.path.display()
                    ));
                }
            }
            return Err(ConfError::new(msg));
        }
    }
    Ok(())
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
}
