//! Access to configuration files, as nginx sees their paths.
use std::io;
use std::path::{Path, PathBuf};

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
        std::fs::read(path)
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
