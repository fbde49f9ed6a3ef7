//! Access to configuration files, as nginx sees their paths.
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::host_file::{HostFile, reopen_or};

/// Largest file the engine reads (64 MiB; the 10 MB benchmark config is
/// already far beyond any real one). A bigger file is an error, so memory
/// stays bounded whatever a config includes.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads the regular file `path` (symlinks followed), of at most
/// [`MAX_FILE_BYTES`]. A FIFO, socket, device or directory is an error, and
/// is never opened in a way that blocks or has side effects; so is a file
/// that is (or grows) larger than the bound.
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    read_bounded(open_regular(path)?)
}

/// [`read_regular`] as UTF-8 text (other bytes are an `InvalidData` error).
pub fn read_regular_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_regular(path)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Opens the regular file `path` (symlinks followed), of at most
/// [`MAX_FILE_BYTES`], for a caller that reads it with a bound of its own.
/// A FIFO, socket, device or directory is an error, and is never opened in
/// a way that blocks or has side effects.
pub fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let held = std::fs::File::from(rustix::fs::open(
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )?);
    check_regular(&held.metadata()?)?;
    reopen_or(&held, OFlags::RDONLY, |flags| {
        rustix::fs::open(path, flags, Mode::empty())
    })
}

/// Makes a FIFO at `path`, for tests that a FIFO is refused, never read.
#[cfg(test)]
pub(crate) fn make_fifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("a FIFO can be made in a temp dir");
}

/// Reads a config file of this host the way every command does: an
/// interrupted write of it is finished first ([`super::recover`], said on
/// stderr; looked for under a shared lock, the exclusive one taken only
/// then), and the file is read (as [`HostFile::read`]) — after any write of
/// it by another nginx-rollout process, never in the middle of one.
pub fn read_host_file(file: &HostFile) -> io::Result<Vec<u8>> {
    let lock = super::write::FileLock::shared(file)?;
    if !super::write::save_exists(file) {
        return lock.read();
    }
    drop(lock);
    match super::write::recover(file)? {
        super::Recovery::Clean => {}
        super::Recovery::Restored(file) => tracing::warn!(
            "{}: an earlier write by nginx-rollout was interrupted and had left it torn; its previous bytes are restored",
            file.display()
        ),
        super::Recovery::Kept { file, save } => tracing::warn!(
            "{}: an earlier write by nginx-rollout was interrupted, and the file was changed since; \
             its bytes from before that write are in {}: compare, then delete that file",
            file.display(),
            save.display()
        ),
    }
    super::write::FileLock::shared(file)?.read()
}

/// Reads an open file that must be regular and at most [`MAX_FILE_BYTES`] long.
pub fn read_bounded(file: std::fs::File) -> io::Result<Vec<u8>> {
    let meta = file.metadata()?;
    check_regular(&meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "larger than {} MiB, nginx-rollout's limit for a config file",
            MAX_FILE_BYTES >> 20
        ),
    )
}

/// Fails unless `meta` is a regular file within [`MAX_FILE_BYTES`].
pub(super) fn check_regular(meta: &std::fs::Metadata) -> io::Result<()> {
    check_kind(meta)?;
    match meta.len() > MAX_FILE_BYTES {
        true => Err(too_large()),
        false => Ok(()),
    }
}

/// Fails unless `meta` is a regular file (of any size).
pub(super) fn check_kind(meta: &std::fs::Metadata) -> io::Result<()> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file ({what})"),
    ))
}

/// Where configuration files are read from.
///
/// Paths are the ones nginx uses (for a container: paths inside it). The
/// implementation maps them to wherever the bytes really live.
pub trait Fs {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Expands an `include` glob pattern (already made absolute) to the
    /// matching files, sorted as nginx sorts them (byte order).
    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>>;
}

/// The host's own file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostFs;

impl Fs for HostFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_host_file(&HostFile::named(path)?)
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        let pattern = pattern
            .to_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "non-UTF-8 glob"))?;
        let mut out = Vec::new();
        // Like glob(3), which nginx uses: `*` does not match a leading dot.
        let opts = glob::MatchOptions {
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        for entry in glob::glob_with(pattern, opts)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
        {
            out.push(entry.map_err(io::Error::from)?);
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_directories_are_errors_not_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.conf");
        make_fifo(&fifo);
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a device"),
            (dir.path(), "a directory"),
        ] {
            let e = HostFs.read(path).unwrap_err();
            assert!(e.to_string().contains(what), "{}: {e}", path.display());
        }
    }

    #[test]
    fn a_file_over_the_bound_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.conf");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let e = HostFs.read(&big).unwrap_err();
        assert!(e.to_string().contains("64 MiB"), "{e}");
        f.set_len(10).unwrap();
        assert_eq!(HostFs.read(&big).unwrap(), vec![0; 10]);
    }
}

/// Files held in memory: a journal's copy of the config as it was, and
/// unit tests of the logic above the engine.
#[derive(Debug, Default, Clone)]
pub struct MemFs(pub std::collections::BTreeMap<PathBuf, Vec<u8>>);

impl MemFs {
    /// One file.
    pub fn one(path: &str, bytes: impl Into<Vec<u8>>) -> MemFs {
        MemFs([(PathBuf::from(path), bytes.into())].into_iter().collect())
    }
}

impl Fs for MemFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        let pattern = glob::Pattern::new(&pattern.to_string_lossy())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(self
            .0
            .keys()
            .filter(|p| pattern.matches_path(p))
            .cloned()
            .collect())
    }
}
