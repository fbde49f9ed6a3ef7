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

use std::fmt;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
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

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Paused => "paused",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::RolledBack => "rolled-back",
            Status::Rejected => "rejected",
        })
    }
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

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerState::Pending => "pending",
            ServerState::Drained => "drained",
            ServerState::Replacing => "replacing",
            ServerState::Healthy => "healthy",
            ServerState::Done => "done",
            ServerState::Failed => "failed",
        })
    }
}

/// One server's record. `S` is what the world deploys (a container spec);
/// the executor only carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: DeserializeOwned"))]
pub struct ServerRecord<S> {
    /// The server's address in the upstream when the rollout started.
    pub server: String,
    /// The container that served it when the rollout started.
    pub container: String,
    /// What that container was (for rollback); none for a drain or undrain.
    #[serde(default)]
    pub old_spec: Option<S>,
    /// What to deploy; none for a drain or undrain.
    #[serde(default)]
    pub new_spec: Option<S>,
    /// Where it is now.
    pub state: ServerState,
    /// The new container's id, once created.
    #[serde(default)]
    pub new_container: Option<String>,
    /// When the new container became healthy.
    #[serde(default, with = "time::option")]
    pub healthy_at: Option<DateTime<Utc>>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Start-first: the replacement container's name.
    #[serde(default)]
    pub replacement: Option<String>,
    /// The replica set (the operator's line) this slot belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// The operator's statement, when the rollout pinned this server's line to
    /// nowhere because its container is gone (to put it back later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
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
    /// When it started.
    #[serde(default, with = "time::option")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default, with = "time::option")]
    pub finished_at: Option<DateTime<Utc>>,
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

/// What a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutKind {
    /// A rolling update.
    Deploy,
    /// The undoing of an earlier rollout.
    Rollback,
    /// A live `drain` of one server.
    Drain,
    /// A live `undrain` of one server.
    Undrain,
}

impl fmt::Display for RolloutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RolloutKind::Deploy => "deploy",
            RolloutKind::Rollback => "rollback",
            RolloutKind::Drain => "drain",
            RolloutKind::Undrain => "undrain",
        })
    }
}

/// A rollout: a deploy, a rollback, a drain or an undrain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "S: Serialize", deserialize = "S: DeserializeOwned"))]
pub struct Rollout<S> {
    /// Revision number, from 1.
    pub revision: u32,
    /// What it is.
    pub kind: RolloutKind,
    /// For a rollback: the revision it undoes.
    #[serde(default)]
    pub undoes: Option<u32>,
    /// The command line that made it.
    pub command: String,
    /// When it started.
    #[serde(with = "time")]
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default, with = "time::option")]
    pub finished_at: Option<DateTime<Utc>>,
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
    pub servers: Vec<ServerRecord<S>>,
    /// The plan being run.
    pub plan: Plan,
    /// The settings a rollback of this rollout uses.
    pub rollback_policy: UpdateConfig,
    /// One record per plan step.
    pub steps: Vec<StepRecord>,
}

impl<S> Rollout<S> {
    /// The record of `server`.
    pub fn server_mut(&mut self, server: &str) -> Option<&mut ServerRecord<S>> {
        self.servers.iter_mut().find(|s| s.server == server)
    }
}

impl<S> ServerRecord<S> {
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
    pub fn load<S: DeserializeOwned>(&self, revision: u32) -> Result<Rollout<S>> {
        let path = self.revision_dir(revision).join("rollout.json");
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a rollout record", path.display()))
    }

    /// Every revision, oldest first (unreadable ones are skipped with a warning).
    pub fn history<S: DeserializeOwned>(&self) -> Result<Vec<Rollout<S>>> {
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
    pub fn unfinished<S: DeserializeOwned>(
        &self,
        upstream: Option<&str>,
    ) -> Result<Option<Rollout<S>>> {
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

    /// Writes a rollout record durably (temp file, fsync, rename, fsync the directory).
    pub fn save<S: Serialize>(&self, rollout: &Rollout<S>) -> Result<()> {
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
            if self
                .load::<serde::de::IgnoredAny>(r)
                .is_ok_and(|ro| ro.status.is_unfinished())
            {
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

/// Times in the journal and in events: RFC 3339, UTC, milliseconds
/// (`2026-11-30T09:10:37.123Z`). Reads any RFC 3339 time (journals of earlier
/// versions kept nanoseconds and an offset) and keeps its milliseconds.
pub mod time {
    use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// The current time, to the millisecond the journal keeps.
    pub fn now() -> DateTime<Utc> {
        millis(Utc::now())
    }

    /// `t` to the millisecond the journal keeps.
    pub fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
        t.trunc_subsecs(3)
    }

    /// `t` as the journal writes it.
    pub fn format(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Serde: a time as [`format`] writes it.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&format(*t))
    }

    /// Serde: any RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<DateTime<Utc>, D::Error> {
        parse(&String::deserialize(de)?).map_err(serde::de::Error::custom)
    }

    /// Any RFC 3339 time, to the millisecond.
    fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s).map(|t| millis(t.with_timezone(&Utc)))
    }

    /// The same for optional times.
    pub mod option {
        use super::*;

        /// Serde: an optional time.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            ser: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, ser),
                None => ser.serialize_none(),
            }
        }

        /// Serde: an optional time.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            de: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(de)?
                .map(|s| parse(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
