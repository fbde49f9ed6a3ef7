//! The rollout journal: everything needed to resume or undo a rollout after a crash.
//!
//! Layout of the state directory:
//! ```text
//! .nginx-rollout/
//!   lock                         the per-config lock (see `lock`)
//!   revisions/0007/rollout.json  the record, rewritten (temp + rename + fsync) at every change
//!   revisions/0007/config-0.bak  the bytes of each config file before the rollout
//! ```
//! The record is written *before* each step acts, so `kill -9` at any moment
//! leaves a record of every server we drained. Ten revisions are kept.
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::plan::{Plan, UpdateConfig};

/// How many revisions are kept.
pub const KEEP_REVISIONS: usize = 10;

/// How a rollout ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Running, or killed while running (the lock tells which).
    Running,
    /// Every step done.
    Done,
    /// Stopped by the failure action `pause` or by the operator; `resume` or `rollback` it.
    Paused,
    /// Failed; nothing more will happen by itself.
    Failed,
    /// Stopped by SIGINT/SIGTERM.
    Interrupted,
    /// Undone by a rollback (that rollback has its own revision).
    RolledBack,
    /// Failed before it changed anything (e.g. `nginx -t` rejected its first
    /// edit, which was restored): nothing to resume or roll back.
    Rejected,
}

impl Status {
    /// Whether `resume` / `rollback` can act on a rollout in this state.
    pub fn is_unfinished(self) -> bool {
        matches!(
            self,
            Status::Running | Status::Paused | Status::Interrupted | Status::Failed
        )
    }
}

/// Where one server is in the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerState {
    /// Not touched yet.
    Pending,
    /// About to be drained, or drained (`down` in the upstream by us); old container untouched.
    Drained,
    /// Its container is being or has been replaced; the new one is not healthy yet.
    Replacing,
    /// The new container is healthy (but may still be drained).
    Healthy,
    /// Updated and serving again.
    Done,
    /// The new container failed; the server stays drained until resume or rollback.
    Failed,
}

/// One server's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The server's address in the upstream when the rollout started.
    pub server: String,
    /// The container that served it when the rollout started.
    pub container: String,
    /// The backend's full description of that container (for rollback).
    pub old_spec: serde_json::Value,
    /// The backend's description of the container to deploy.
    pub new_spec: serde_json::Value,
    /// Where it is now.
    pub state: ServerState,
    /// The new container's id, once created.
    #[serde(default)]
    pub new_container: Option<String>,
    /// When the new container became healthy (RFC 3339).
    #[serde(default)]
    pub healthy_at: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Start-first: the replacement container's name.
    #[serde(default)]
    pub replacement: Option<String>,
}

/// The status of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Started, not finished.
    Running,
    /// Finished.
    Done,
    /// Skipped by the operator.
    Skipped,
    /// Failed.
    Failed,
}

/// One step's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's status.
    pub status: StepStatus,
    /// When it started (RFC 3339).
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it finished.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A saved copy of one config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSnapshot {
    /// The file's path as nginx sees it.
    pub path: PathBuf,
    /// The backup's file name inside the revision directory.
    pub backup: String,
}

/// A rollout: a deploy, a rollback or a resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Revision number, from 1.
    pub revision: u32,
    /// `deploy` or `rollback`.
    pub kind: String,
    /// For a rollback: the revision it undoes.
    #[serde(default)]
    pub undoes: Option<u32>,
    /// The command line that made it.
    pub command: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Where it is.
    pub status: Status,
    /// Why it stopped, when it did not finish.
    #[serde(default)]
    pub reason: Option<String>,
    /// The nginx container.
    pub nginx: String,
    /// The upstream.
    pub upstream: String,
    /// The config files as they were before the rollout.
    pub config_before: Vec<FileSnapshot>,
    /// The servers.
    pub servers: Vec<ServerRecord>,
    /// The plan being run.
    pub plan: Plan,
    /// The settings a rollback of this rollout uses.
    pub rollback_policy: UpdateConfig,
    /// One record per plan step.
    pub steps: Vec<StepRecord>,
}

impl Rollout {
    /// The record of `server`.
    pub fn server_mut(&mut self, server: &str) -> Option<&mut ServerRecord> {
        self.servers.iter_mut().find(|s| s.server == server)
    }
}

impl ServerRecord {
    /// Whether this rollout drained the server and has not put it back yet.
    pub fn drained_by_us(&self) -> bool {
        matches!(
            self.state,
            ServerState::Drained
                | ServerState::Replacing
                | ServerState::Healthy
                | ServerState::Failed
        )
    }
}

/// The state directory of one nginx config.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating if needed) the state directory at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join("revisions"))
            .with_context(|| format!("cannot create state directory {}", root.display()))?;
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn revision_dir(&self, revision: u32) -> PathBuf {
        self.root.join("revisions").join(format!("{revision:04}"))
    }

    /// Every revision number, oldest first.
    pub fn revisions(&self) -> Result<Vec<u32>> {
        let mut out: Vec<u32> = fs::read_dir(self.root.join("revisions"))
            .with_context(|| format!("cannot read {}", self.root.display()))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Loads one revision.
    pub fn load(&self, revision: u32) -> Result<Rollout> {
        let path = self.revision_dir(revision).join("rollout.json");
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a rollout record", path.display()))
    }

    /// Every revision, oldest first (unreadable ones are skipped with a warning).
    pub fn history(&self) -> Result<Vec<Rollout>> {
        Ok(self
            .revisions()?
            .into_iter()
            .filter_map(|r| match self.load(r) {
                Ok(rollout) => Some(rollout),
                Err(e) => {
                    tracing::warn!("{e:#}");
                    None
                }
            })
            .collect())
    }

    /// The newest rollout of `upstream` that has not finished, if any.
    pub fn unfinished(&self, upstream: Option<&str>) -> Result<Option<Rollout>> {
        Ok(self
            .history()?
            .into_iter()
            .rev()
            .filter(|r| upstream.is_none_or(|u| r.upstream == u))
            .take(1)
            .find(|r| r.status.is_unfinished()))
    }

    /// The next free revision number.
    pub fn next_revision(&self) -> Result<u32> {
        Ok(self.revisions()?.last().map_or(1, |r| r + 1))
    }

    /// Saves the config files' bytes before a rollout and returns their snapshots.
    pub fn save_config(
        &self,
        revision: u32,
        files: &[(PathBuf, Vec<u8>)],
    ) -> Result<Vec<FileSnapshot>> {
        let dir = self.revision_dir(revision);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        files
            .iter()
            .enumerate()
            .map(|(i, (path, bytes))| {
                let backup = format!("config-{i}.bak");
                write_durably(&dir.join(&backup), bytes)?;
                Ok(FileSnapshot {
                    path: path.clone(),
                    backup,
                })
            })
            .collect()
    }

    /// Reads a saved config file back.
    pub fn read_snapshot(&self, revision: u32, snapshot: &FileSnapshot) -> Result<Vec<u8>> {
        let path = self.revision_dir(revision).join(&snapshot.backup);
        fs::read(&path).with_context(|| format!("cannot read backup {}", path.display()))
    }

    /// Writes a rollout record durably (temp file, fsync, rename, fsync the directory).
    pub fn save(&self, rollout: &Rollout) -> Result<()> {
        let dir = self.revision_dir(rollout.revision);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let bytes = serde_json::to_vec_pretty(rollout)?;
        write_durably(&dir.join("rollout.json"), &bytes)
    }

    /// Removes the oldest revisions beyond [`KEEP_REVISIONS`], never an unfinished one.
    pub fn prune(&self) -> Result<()> {
        let revisions = self.revisions()?;
        let excess = revisions.len().saturating_sub(KEEP_REVISIONS);
        for r in revisions.into_iter().take(excess) {
            if self.load(r).is_ok_and(|ro| ro.status.is_unfinished()) {
                continue;
            }
            let dir = self.revision_dir(r);
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Writes a file of ours atomically and durably.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let ctx = || format!("cannot write {}", path.display());
    let mut f = File::create(&tmp).with_context(ctx)?;
    f.write_all(bytes).with_context(ctx)?;
    f.sync_all().with_context(ctx)?;
    fs::rename(&tmp, path).with_context(ctx)?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(ctx)?;
    }
    Ok(())
}

/// The current time as RFC 3339.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
