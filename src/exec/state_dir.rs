//! The state directory: where the journal's records and the config files'
//! backups are kept, and how they are read and written.
//!
//! Layout of the state directory (mode 0700, files 0600, owned by the user
//! running the tool; see `rollout::state_location` for where it is):
//! ```text
//! <state dir>/
//!   lock                         the per-config lock (see `lock`)
//!   revisions/0007/rollout.json  the record, rewritten (temp + rename + fsync) at every change
//!   revisions/0007/config-0.bak  the bytes of each config file before the rollout
//!   kept/NAME                    what a run keeps for the next (what compose read of a project)
//! ```
//! Ten revisions are kept.
//!
//! Nothing in it is followed through a symlink: a state directory that is a
//! symlink, is not ours or is writable by others is refused, files are
//! created under random names with `O_EXCL` and renamed into place, and
//! files are opened with `O_NOFOLLOW`.
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::journal::{FileSnapshot, Rollout, RolloutKind, Status};
use crate::conf::may_name_the_same_upstream;

/// How many revisions are kept.
pub const KEEP_REVISIONS: usize = 10;

/// The state directory of one nginx config.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating if needed, mode 0700) the state directory at `root`.
    /// A state directory (or its `revisions`) that is a symlink, belongs to
    /// another user or is writable by others is refused; one readable by
    /// others (an earlier version made it 0755) is made private.
    pub fn open(root: &Path) -> Result<Self> {
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        private_dir(root)?;
        private_dir(&root.join("revisions"))?;
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
        let dir = self.root.join("revisions");
        let mut out: Vec<u32> = fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Loads one revision; a record that does not parse or has not the
    /// shape the executor needs ([`Rollout::check_shape`]) is an error
    /// naming the file.
    pub fn load<S: DeserializeOwned>(&self, revision: u32) -> Result<Rollout<S>> {
        let path = self.revision_dir(revision).join("rollout.json");
        let bytes = read_own(&path)?;
        let rollout: Rollout<S> = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a rollout record", path.display()))?;
        if let Err(why) = rollout.check_shape() {
            bail!("{} is not a rollout record: {why}", path.display());
        }
        Ok(rollout)
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

    /// The newest rollout of `upstream` (of any upstream, without one) that
    /// has not finished, if any: one behind later revisions too (a `drain`
    /// while it was paused, another upstream's deploy), which never finish
    /// it; but not one a later rollback finished undoing (journals of
    /// earlier versions did not always say so on the rollout undone), even
    /// if that rollback was itself rolled back since.
    pub fn unfinished<S: DeserializeOwned>(
        &self,
        upstream: Option<&str>,
    ) -> Result<Option<Rollout<S>>> {
        let history = self.history::<S>()?;
        let undone: Vec<u32> = (history.iter())
            .filter(|r| r.kind == RolloutKind::Rollback)
            .filter(|r| matches!(r.status, Status::Done | Status::RolledBack))
            .filter_map(|r| r.undoes)
            .collect();
        Ok(history
            .into_iter()
            .rev()
            .filter(|r| upstream.is_none_or(|u| may_name_the_same_upstream(&r.upstream, u)))
            .filter(|r| !undone.contains(&r.revision))
            .find(|r| r.status.is_unfinished()))
    }

    /// The next free revision number.
    pub fn next_revision(&self) -> Result<u32> {
        let Some(&last) = self.revisions()?.last() else {
            return Ok(1);
        };
        last.checked_add(1).with_context(|| {
            format!(
                "{}: no revision number follows {last}; remove that directory",
                self.revision_dir(last).display()
            )
        })
    }

    /// Saves the config files' bytes before a rollout and returns their snapshots.
    pub fn save_config(
        &self,
        revision: u32,
        files: &[(PathBuf, Vec<u8>)],
    ) -> Result<Vec<FileSnapshot>> {
        let dir = self.revision_dir(revision);
        private_dir(&dir)?;
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

    /// The config files' bytes as `rollout` saved them before it ran, main file first.
    pub fn config_before<S>(&self, rollout: &Rollout<S>) -> Result<Vec<(PathBuf, Vec<u8>)>> {
        let dir = self.revision_dir(rollout.revision);
        rollout
            .config_before
            .iter()
            .map(|f| {
                let path = dir.join(&f.backup);
                Ok((f.path.clone(), read_own(&path)?))
            })
            .collect()
    }

    /// Writes a rollout record durably (temp file, fsync, rename, fsync the directory).
    pub fn save<S: Serialize>(&self, rollout: &Rollout<S>) -> Result<()> {
        let dir = self.revision_dir(rollout.revision);
        private_dir(&dir)?;
        let bytes = serde_json::to_vec_pretty(rollout)?;
        write_durably(&dir.join("rollout.json"), &bytes)
    }

    /// The bytes [`keep`](Self::keep) last kept under `name`, if any.
    pub fn kept(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.root.join("kept").join(name);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => read_own(&path).map(Some),
        }
    }

    /// Keeps `bytes` under `name` (a file name) for a later run.
    pub fn keep(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.root.join("kept");
        private_dir(&dir)?;
        write_durably(&dir.join(name), bytes)
    }

    /// Removes what is kept under every name `stale` says is stale (a
    /// symlink there is removed, never followed; a directory is left).
    pub fn forget_kept(&self, stale: impl Fn(&str) -> bool) -> Result<()> {
        let dir = self.root.join("kept");
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other.with_context(|| format!("reading {}", dir.display()))?,
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let path = entry.path();
            let named = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(&stale);
            if !named || entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes the oldest revisions beyond [`KEEP_REVISIONS`], never an
    /// unfinished one, nor one that cannot be read (it may be the only
    /// record of a server drained by us).
    pub fn prune(&self) -> Result<()> {
        let revisions = self.revisions()?;
        let excess = revisions.len().saturating_sub(KEEP_REVISIONS);
        for r in revisions.into_iter().take(excess) {
            // A revision with no record was stopped before its first save:
            // it changed nothing.
            let record = self.revision_dir(r).join("rollout.json");
            let recorded = record.symlink_metadata().is_ok();
            match self.load::<serde::de::IgnoredAny>(r) {
                Ok(ro) if !ro.status.is_unfinished() => {}
                Ok(_) => continue,
                Err(_) if !recorded => {}
                Err(e) => {
                    tracing::warn!("{e:#}; kept");
                    continue;
                }
            }
            let dir = self.revision_dir(r);
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Makes `dir` exist as a private directory of ours (0700): created so, or
/// checked — not a symlink, ours, writable by nobody else — and its mode
/// tightened to 0700.
fn private_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let refuse = |why: String| -> Result<()> {
        bail!(
            "refusing the state directory {}: {why}; the journal holds the containers' environment \
             (secrets) and what `resume`/`rollback` recreate, so nobody else may change it. \
             Remove it, or choose another with --state-dir",
            dir.display()
        )
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symlink".into());
    }
    if !meta.is_dir() {
        return refuse("it is not a directory".into());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return refuse(format!(
            "it belongs to uid {}, not to us (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "others may write to it (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(())
}

/// Reads a file of ours, never through a symlink, bounded in size.
fn read_own(path: &Path) -> Result<Vec<u8>> {
    let ctx = || format!("cannot read {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .with_context(ctx)?;
    if !file.metadata().with_context(ctx)?.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let mut bytes = Vec::new();
    file.take(crate::conf::MAX_FILE_BYTES * 4)
        .read_to_end(&mut bytes)
        .with_context(ctx)?;
    Ok(bytes)
}

/// Writes a file of ours atomically and durably: a new file under a random
/// name (`O_EXCL`, mode 0600), fsync, rename over `path`, fsync the directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let ctx = || format!("cannot write {}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut f = tempfile::Builder::new()
        .prefix(".tmp.")
        .tempfile_in(dir)
        .with_context(ctx)?;
    f.write_all(bytes).with_context(ctx)?;
    f.as_file().sync_all().with_context(ctx)?;
    f.persist(path).map_err(|e| e.error).with_context(ctx)?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(ctx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::journal::FileSnapshot;
    use super::*;
    use crate::plan::{Action, Plan, Step, Timeouts, UpdateConfig};

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o777
    }

    /// The record of a plan of three reloads, none run yet.
    fn three_reloads() -> Rollout<String> {
        let plan = Plan {
            upstream: "apps".into(),
            targets: Vec::new(),
            sets: Vec::new(),
            policy: UpdateConfig::engine_defaults(),
            timeouts: Timeouts::DEFAULT,
            ramp: None,
            steps: (1..=3)
                .map(|index| Step {
                    index,
                    action: Action::Reload,
                    diff: None,
                })
                .collect(),
        };
        super::super::tests::record(plan, Vec::new())
    }

    #[test]
    fn an_unfinished_rollout_is_found_behind_later_revisions() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&tmp.path().join("state")).unwrap();
        let revision = |n: u32, upstream: &str, kind: RolloutKind, status: Status| {
            let mut r = three_reloads();
            (r.revision, r.kind, r.status) = (n, kind, status);
            r.upstream = upstream.into();
            state.save(&r).unwrap();
        };
        revision(1, "apps", RolloutKind::Deploy, Status::Done);
        revision(2, "apps", RolloutKind::Deploy, Status::Paused);
        revision(3, "apps", RolloutKind::Drain, Status::Done);
        revision(4, "web", RolloutKind::Deploy, Status::Done);
        for upstream in [Some("apps"), None] {
            let found = state.unfinished::<String>(upstream).unwrap();
            assert_eq!(found.map(|r| r.revision), Some(2), "{upstream:?}");
        }
        assert!(state.unfinished::<String>(Some("web")).unwrap().is_none());
        let named = state.unfinished::<String>(Some("http:apps")).unwrap();
        assert_eq!(named.map(|r| r.revision), Some(2), "the same upstream");
        // Its rollback, resumed to its end, finished it (as an earlier
        // version's journal may not say on revision 2 itself).
        let mut rollback = three_reloads();
        (rollback.revision, rollback.kind, rollback.undoes) = (5, RolloutKind::Rollback, Some(2));
        rollback.status = Status::Done;
        state.save(&rollback).unwrap();
        assert!(state.unfinished::<String>(Some("apps")).unwrap().is_none());
        rollback.status = Status::RolledBack;
        state.save(&rollback).unwrap();
        assert!(state.unfinished::<String>(Some("apps")).unwrap().is_none());
    }

    #[test]
    fn pruning_keeps_what_is_unfinished_or_unreadable() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&tmp.path().join("state")).unwrap();
        for n in 1..=(KEEP_REVISIONS as u32 + 3) {
            let mut r = three_reloads();
            r.revision = n;
            r.status = if n == 2 { Status::Paused } else { Status::Done };
            state.save(&r).unwrap();
        }
        fs::write(state.revision_dir(1).join("rollout.json"), b"{torn").unwrap();
        fs::remove_file(state.revision_dir(3).join("rollout.json")).unwrap();
        state.prune().unwrap();
        let kept = state.revisions().unwrap();
        // Of the three oldest beyond the ten kept, only the one with no record goes.
        assert_eq!(kept[..3], [1, 2, 4], "unreadable, unfinished: {kept:?}");
        assert_eq!(kept.len(), KEEP_REVISIONS + 2, "{kept:?}");
    }

    #[test]
    fn a_record_of_the_wrong_shape_is_refused_naming_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&tmp.path().join("state")).unwrap();
        let file = state.revision_dir(1).join("rollout.json");
        let refused = |r: &Rollout<String>| {
            state.save(r).unwrap();
            format!("{:#}", state.load::<String>(1).unwrap_err())
        };
        let good = three_reloads();
        state.save(&good).unwrap();
        assert_eq!(state.load::<String>(1).unwrap(), good);

        let mut missing = good.clone();
        missing.steps.pop();
        assert_eq!(
            refused(&missing),
            format!(
                "{} is not a rollout record: it has 2 step records for the 3 steps of its plan",
                file.display()
            )
        );
        let mut reordered = good.clone();
        reordered.plan.steps.swap(0, 1);
        assert_eq!(
            refused(&reordered),
            format!(
                "{} is not a rollout record: its plan's step 1 is numbered 2",
                file.display()
            )
        );
        let mut elsewhere = good.clone();
        elsewhere.config_before = vec![FileSnapshot {
            path: "/etc/nginx/nginx.conf".into(),
            backup: "../../other/config-0.bak".into(),
        }];
        assert_eq!(
            refused(&elsewhere),
            format!(
                "{} is not a rollout record: its backup of /etc/nginx/nginx.conf is named \
                 \"../../other/config-0.bak\", not a file of its directory",
                file.display()
            )
        );
    }

    #[test]
    fn a_duration_past_the_maximum_is_refused_on_load_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&tmp.path().join("state")).unwrap();
        let file = state.revision_dir(1).join("rollout.json");
        state.save(&three_reloads()).unwrap();
        for at in ["/plan/policy/monitor/value", "/plan/timeouts/drain"] {
            let mut json = serde_json::to_value(three_reloads()).unwrap();
            *json.pointer_mut(at).unwrap() = "300000y".into();
            fs::write(&file, serde_json::to_vec(&json).unwrap()).unwrap();
            let e = format!("{:#}", state.load::<String>(1).unwrap_err());
            assert!(
                e.starts_with(&format!("{} is not a rollout record: ", file.display()))
                    && e.contains("\"300000y\" is longer than 100years"),
                "{e}"
            );
        }
    }

    #[test]
    fn revisions_count_up_and_the_last_number_is_an_error_not_an_overflow() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&tmp.path().join("state")).unwrap();
        assert_eq!(state.next_revision().unwrap(), 1);
        fs::create_dir(state.revision_dir(7)).unwrap();
        assert_eq!(state.next_revision().unwrap(), 8);
        fs::create_dir(state.revision_dir(u32::MAX)).unwrap();
        let err = state.next_revision().unwrap_err();
        assert!(err.to_string().contains("4294967295"), "{err}");
    }

    #[test]
    fn the_state_directory_and_its_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a/b/state");
        let state = StateDir::open(&root).unwrap();
        let files = [(PathBuf::from("/etc/nginx/nginx.conf"), b"x;".to_vec())];
        let snaps = state.save_config(1, &files).unwrap();
        let backup = state.revision_dir(1).join(&snaps[0].backup);
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("revisions")), 0o700);
        assert_eq!(mode(&state.revision_dir(1)), 0o700);
        assert_eq!(mode(&backup), 0o600);
        assert_eq!(mode(tmp.path().join("a").as_path()), 0o700);

        // A directory an earlier version made 0755 is made private.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        StateDir::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn what_a_run_keeps_is_private_and_never_read_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&tmp.path().join("state")).unwrap();
        assert_eq!(state.kept("a.json").unwrap(), None);
        state.keep("a.json", b"one").unwrap();
        state.keep("a.json", b"two").unwrap();
        assert_eq!(state.kept("a.json").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(mode(&state.root().join("kept")), 0o700);
        assert_eq!(mode(&state.root().join("kept/a.json")), 0o600);
        let elsewhere = tmp.path().join("elsewhere");
        fs::write(&elsewhere, b"theirs").unwrap();
        std::os::unix::fs::symlink(&elsewhere, state.root().join("kept/b.json")).unwrap();
        assert!(state.kept("b.json").is_err());
        fs::create_dir(state.root().join("kept/c.json")).unwrap();
        state
            .forget_kept(|name| ["b.json", "c.json"].contains(&name))
            .unwrap();
        assert!(
            state.root().join("kept/c.json").is_dir(),
            "a directory is left"
        );
        assert_eq!(state.kept("b.json").unwrap(), None);
        assert_eq!(
            fs::read(&elsewhere).unwrap(),
            b"theirs",
            "the link, not its target"
        );
        assert_eq!(state.kept("a.json").unwrap().as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn a_state_directory_others_could_change_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = format!("{:#}", StateDir::open(&link).unwrap_err());
        assert!(err.contains("is a symlink"), "{err}");

        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", StateDir::open(&open).unwrap_err());
        assert!(err.contains("others may write"), "{err}");

        // A planted `revisions` symlink cannot redirect the journal.
        let planted = tmp.path().join("planted");
        fs::create_dir(&planted).unwrap();
        fs::set_permissions(&planted, fs::Permissions::from_mode(0o700)).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, planted.join("revisions")).unwrap();
        let err = format!("{:#}", StateDir::open(&planted).unwrap_err());
        assert!(err.contains("symlink"), "{err}");
    }

    #[test]
    fn planted_symlinks_in_a_revision_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(&tmp.path().join("state")).unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let dir = state.revision_dir(1);
        private_dir(&dir).unwrap();
        // What the previous version wrote through: fixed temp names, the backup itself.
        for name in ["rollout.tmp", "config-0.tmp", "config-0.bak"] {
            std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
        }
        state
            .save_config(1, &[(PathBuf::from("/x"), b"config".to_vec())])
            .unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(dir.join("config-0.bak")).unwrap(), b"config");
        std::os::unix::fs::symlink(&victim, dir.join("rollout.json")).unwrap();
        let err = format!("{:#}", state.load::<serde::de::IgnoredAny>(1).unwrap_err());
        assert!(err.contains("cannot read"), "{err}");
    }
}
