//! The offline `conf` edits (drain, undrain, set-weight, add-server,
//! remove-server, replace-address): one server line of a config on this host,
//! offline — under the same lock as a live rollout of that config, and
//! written only over the bytes it was computed from.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use super::session::move_advice;
use super::state_location::locate;
use crate::conf::{
    ConfigSet, Edit, EditOptions, Lookup, WriteError, locate as locate_conf, write_changes,
};
use crate::exec::{Lock, StateDir};

/// How long an offline edit waits for the config's lock (another edit is
/// quick; a live rollout holding it is named in the error).
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// How often a file changed under us is read and edited again.
const ATTEMPTS: usize = 5;

/// What an offline edit is asked.
#[derive(Debug, Clone)]
pub struct FileEditRequest {
    /// The file edited (the main config or one it includes).
    pub file: PathBuf,
    /// nginx's `-p`, to find the main config (see [`Lookup`]).
    pub prefix: Option<PathBuf>,
    /// nginx's `-c`, the main config (see [`Lookup`]).
    pub conf: Option<PathBuf>,
    /// The upstream (`http:NAME` / `stream:NAME` when both exist).
    pub upstream: String,
    /// The server (address as written, or unique host).
    pub server: String,
    /// The edit.
    pub edit: Edit,
    /// Even the last live server.
    pub force: bool,
    /// `--state-dir`, where the lock is.
    pub state_dir: Option<PathBuf>,
    /// The command line, for the lock's note.
    pub command: String,
}

/// What an offline edit did.
#[derive(Debug, Clone)]
pub struct FileEdited {
    /// Whether any byte changed (editing twice is editing once).
    pub changed: bool,
    /// The configuration as written.
    pub set: ConfigSet,
    /// Things to tell the operator (an earlier version's state directory).
    pub notices: Vec<String>,
}

/// Edits one server line in place: takes the lock of the config's main
/// file, reads the files, splices, and writes each file only if it still
/// holds what was read; a file changed under us is read and spliced again.
pub fn edit_file(request: &FileEditRequest) -> Result<FileEdited> {
    let lookup = Lookup {
        file: &request.file,
        prefix: request.prefix.as_deref(),
        conf: request.conf.as_deref(),
    };
    let main = locate_conf(&lookup)?.set.main_path().to_path_buf();
    let root = locate(request.state_dir.as_deref(), Some(&main), "")?;
    let notices = move_advice(&root).into_iter().collect();
    let state = StateDir::open(&root.path)?;
    let _lock = Lock::acquire_within(&state.root().join("lock"), &request.command, LOCK_PATIENCE)?;
    for _ in 0..ATTEMPTS {
        let before = locate_conf(&lookup)?.set;
        let mut after = before.clone();
        let changed = after.apply(
            &request.upstream,
            &request.server,
            request.edit.clone(),
            EditOptions {
                force: request.force,
            },
        )?;
        match write_changes(&after.changes_since(&before)) {
            Ok(()) => {
                return Ok(FileEdited {
                    changed,
                    set: after,
                    notices,
                });
            }
            Err(WriteError::Changed(_)) => continue,
            Err(WriteError::Failed(e)) => return Err(e.into()),
        }
    }
    bail!(
        "{} kept changing while nginx-rollout edited it ({ATTEMPTS} attempts); nothing was written",
        request.file.display()
    )
}
