//! The rollout journal: everything needed to resume or undo a rollout after a crash.
//!
//! The record is written *before* each step acts, so `kill -9` at any moment
//! leaves a record of every server we drained. `state_dir` keeps it on disk.
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::leftover::Leftover;
use crate::conf::{Server, Upstream};
use crate::plan::{LineWeight, Plan, UpdateConfig, replacement_address};

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
    /// Stopped before its first step ran (a signal, the operator quitting at
    /// the first step), or closed by `rollback` having changed no server:
    /// nothing to resume or roll back.
    Cancelled,
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
            Status::Cancelled => "cancelled",
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
    /// That container's id (none in journals of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
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
    /// What a stopped run of this rollout, or of the one a rollback undoes,
    /// may have left where this server's new container is made; spent once
    /// it is made.
    #[serde(default, skip_serializing_if = "Leftover::is_empty")]
    pub leftover: Leftover,
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

impl StepStatus {
    /// Whether the step has begun: running, done or failed (not pending,
    /// nor skipped by the operator).
    pub fn begun(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Skipped)
    }
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
    /// A live `weight` change of one server.
    Weight,
    /// A live `add` of a server line.
    Add,
    /// A live `remove` of a server line.
    Remove,
}

impl fmt::Display for RolloutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RolloutKind::Deploy => "deploy",
            RolloutKind::Rollback => "rollback",
            RolloutKind::Drain => "drain",
            RolloutKind::Undrain => "undrain",
            RolloutKind::Weight => "weight",
            RolloutKind::Add => "add",
            RolloutKind::Remove => "remove",
        })
    }
}

/// A rollout: a deploy, a rollback, or a live edit of one server line.
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
    /// How many runs it has had, this one included (journals of earlier
    /// versions, which did not count, are taken as run once).
    #[serde(default = "one_run")]
    pub runs: u32,
}

fn one_run() -> u32 {
    1
}

impl<S> Rollout<S> {
    /// The record of `server`.
    pub fn server(&self, server: &str) -> Option<&ServerRecord<S>> {
        self.servers.iter().find(|s| s.server == server)
    }

    /// The record of `server`, to change.
    pub fn server_mut(&mut self, server: &str) -> Option<&mut ServerRecord<S>> {
        self.servers.iter_mut().find(|s| s.server == server)
    }

    /// The record, neither pending nor done, whose part `line` of `up` shows,
    /// and whether the line stands for it under another address: its
    /// replacement's, started beside the old container (a single server's
    /// swapped line, a replica's own), or pinned to nowhere. A line stands
    /// for an address as [`Upstream::line_for`] says; for a record's
    /// replacement first (a compose replica may take the address of one an
    /// earlier batch retired), else for its server.
    pub fn record_on_line(&self, up: &Upstream, line: &Server) -> Option<(&ServerRecord<S>, bool)> {
        if !up.is_named(&self.upstream) {
            return None;
        }
        let on = |address: &str| up.line_for(address).is_some_and(|l| std::ptr::eq(l, line));
        let active = || {
            (self.servers.iter())
                .filter(|r| !matches!(r.state, ServerState::Pending | ServerState::Done))
        };
        active()
            .find(|r| (r.replica_line().or_else(|| r.swapped_line())).is_some_and(|a| on(&a)))
            .map(|r| (r, !r.goes_back_when_healthy()))
            .or_else(|| {
                active()
                    .find(|r| on(&r.server))
                    .map(|r| (r, line.address != r.server))
            })
    }

    /// Each line of its ramp with the weight its runs left there: what the
    /// last edit done wrote (see `Plan::weights_left`).
    pub fn weights_left(&self) -> Vec<LineWeight> {
        self.plan
            .weights_left(|i| self.steps[i].status == StepStatus::Done)
    }

    /// Checks the shape the executor indexes by: one step record per plan
    /// step, and the plan's steps numbered 1, 2, … in order; and that each
    /// config backup is named as a file of the revision's own directory. A
    /// corrupted or hand-edited journal without it is refused, not run.
    pub fn check_shape(&self) -> Result<(), String> {
        let plain = |name: &str| {
            let mut parts = std::path::Path::new(name).components();
            matches!(
                (parts.next(), parts.next()),
                (Some(std::path::Component::Normal(_)), None)
            )
        };
        if let Some(f) = self.config_before.iter().find(|f| !plain(&f.backup)) {
            return Err(format!(
                "its backup of {} is named {:?}, not a file of its directory",
                f.path.display(),
                f.backup
            ));
        }
        let (records, steps) = (self.steps.len(), self.plan.steps.len());
        if records != steps {
            return Err(format!(
                "it has {records} step records for the {steps} steps of its plan"
            ));
        }
        match self.plan.steps.iter().zip(1..).find(|(s, n)| s.index != *n) {
            Some((s, n)) => Err(format!("its plan's step {n} is numbered {}", s.index)),
            None => Ok(()),
        }
    }
}

impl<S> ServerRecord<S> {
    /// The record of `server`, served by `container`, going from `old_spec`
    /// to `new_spec`, before anything ran: pending, no new container, no
    /// replacement, set, pinned statement or leftover; its container's id unknown.
    pub fn pending(
        server: String,
        container: String,
        old_spec: Option<S>,
        new_spec: Option<S>,
    ) -> Self {
        Self {
            server,
            container,
            container_id: None,
            old_spec,
            new_spec,
            state: ServerState::Pending,
            new_container: None,
            healthy_at: None,
            error: None,
            replacement: None,
            set: None,
            pinned: None,
            leftover: Leftover::default(),
        }
    }

    /// The container it retires, as the world is to find it: by the id
    /// recorded as the rollout started, where there is one (its name may
    /// hold another container by then, an operator's made during a pause).
    pub fn old_container(&self) -> &str {
        self.container_id.as_deref().unwrap_or(&self.container)
    }

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

    /// Whether its new container, once healthy, only needs its line put back
    /// (restored, or added for a replica that had none): it took the old
    /// one's place (stop-first, under the same name) or was added. Not a
    /// start-first server's replacement: the old container serves until the
    /// edit that swaps the line to it.
    pub(super) fn goes_back_when_healthy(&self) -> bool {
        match &self.replacement {
            None => true,
            Some(new) => self.container.is_empty() || *new == self.container,
        }
    }

    /// Whether its batch's own steps swap its healthy replacement in and
    /// then stop the old container (the record is done then): started first
    /// beside the old container, under another name, and healthy, or for a
    /// replica's slot, drained by that swap (its edit adds the new replica's
    /// line and drains the old one's; a single server's only points its line
    /// at the replacement, which leaves the record healthy).
    pub(super) fn being_swapped_in(&self) -> bool {
        let healthy = match self.state {
            ServerState::Healthy => true,
            ServerState::Drained => self.set.is_some() && self.healthy_at.is_some(),
            _ => false,
        };
        healthy && !self.goes_back_when_healthy()
    }

    /// A single server's line once its replacement, started beside the old
    /// container under another name, is swapped in: its address with the
    /// replacement as the host (`app1:3000` + `app1-b` → `app1-b:3000`).
    pub fn swapped_line(&self) -> Option<String> {
        if self.set.is_some() || self.goes_back_when_healthy() {
            return None;
        }
        Some(replacement_address(
            &self.server,
            self.replacement.as_deref()?,
        ))
    }

    /// A replica's own line in the upstream: its set's address with its new
    /// container as the host (`web:8000` + `p_web_3` → `p_web_3:8000`); none
    /// for a single server.
    pub(super) fn replica_line(&self) -> Option<String> {
        Some(replacement_address(
            self.set.as_deref()?,
            self.replacement.as_deref()?,
        ))
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::de::IgnoredAny;

    use super::*;
    use crate::conf::{ConfigSet, MemFs};

    const MAIN: &str = "/etc/nginx/nginx.conf";

    /// `http { upstream apps { … } }` with `lines`, marker comments and all.
    fn upstream(lines: &[&str]) -> Upstream {
        let body: String = lines.iter().map(|l| format!("        {l}\n")).collect();
        let text = format!("http {{\n    upstream apps {{\n{body}    }}\n}}\n");
        let config = ConfigSet::load_single(Path::new(MAIN), &MemFs::one(MAIN, text)).unwrap();
        config.upstream("apps").unwrap()
    }

    /// The record of `server`, served by `container`, in `state`; its new
    /// container `replacement`; a slot of replica set `set`.
    fn record(
        server: &str,
        container: &str,
        replacement: Option<&str>,
        set: Option<&str>,
        state: ServerState,
    ) -> ServerRecord<IgnoredAny> {
        ServerRecord {
            state,
            replacement: replacement.map(Into::into),
            set: set.map(Into::into),
            ..ServerRecord::pending(server.into(), container.into(), None, None)
        }
    }

    /// A rollout of upstream `apps` with `servers` (the rest from an old journal).
    fn rollout(servers: Vec<ServerRecord<IgnoredAny>>) -> Rollout<IgnoredAny> {
        let mut r: Rollout<IgnoredAny> =
            serde_json::from_slice(include_bytes!("../../fixtures/journal/rev0001.json")).unwrap();
        r.servers = servers;
        r
    }

    /// For each line of `up`: the server of the record it shows, and whether
    /// it stands for it under another address.
    fn shown(r: &Rollout<IgnoredAny>, up: &Upstream) -> Vec<Option<(String, bool)>> {
        (up.servers.iter())
            .map(|line| {
                r.record_on_line(up, line)
                    .map(|(rec, elsewhere)| (rec.server.clone(), elsewhere))
            })
            .collect()
    }

    fn on(server: &str, elsewhere: bool) -> Option<(String, bool)> {
        Some((server.into(), elsewhere))
    }

    #[test]
    fn a_single_server_is_shown_on_its_line_swapped_or_pinned_to_nowhere() {
        let start_first = |state| record("app1:3000", "app1", Some("app1-b"), None, state);
        let r = rollout(vec![start_first(ServerState::Replacing)]);
        let up = upstream(&["server app1:3000;", "server app2:3000;"]);
        assert_eq!(shown(&r, &up), [on("app1:3000", false), None]);
        let r = rollout(vec![start_first(ServerState::Healthy)]);
        let up = upstream(&["server app1-b:3000;", "server app2:3000;"]);
        assert_eq!(shown(&r, &up), [on("app1:3000", true), None]);
        let r = rollout(vec![start_first(ServerState::Failed)]);
        let up = upstream(&["server 192.0.2.1:3000 down; # nginx-rollout pin: app1-b:3000"]);
        assert_eq!(shown(&r, &up), [on("app1:3000", true)]);
        let r = rollout(vec![record(
            "app1:3000",
            "app1",
            None,
            None,
            ServerState::Failed,
        )]);
        let up = upstream(&["server 192.0.2.1:3000 down; # nginx-rollout pin: app1:3000"]);
        assert_eq!(shown(&r, &up), [on("app1:3000", true)]);
    }

    #[test]
    fn a_replica_is_shown_on_its_old_line_and_its_own() {
        // `web:8000` pinned to one line per address.
        let pinned = |addresses: &[&str]| {
            let lines: Vec<String> = (addresses.iter())
                .map(|a| format!("server {a}; # nginx-rollout pin: web:8000"))
                .collect();
            upstream(&lines.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let slot = |old: &str, new: &str, state| {
            let server = match old {
                "" => format!("{new}:8000 (added)"),
                old => format!("{old}:8000"),
            };
            record(&server, old, Some(new), Some("web:8000"), state)
        };
        // Start-first, mid-swap: the old replica drained, the new one serving.
        let r = rollout(vec![slot("p_web_2", "p_web_3", ServerState::Drained)]);
        let up = pinned(&["p_web_1:8000", "p_web_2:8000 down", "p_web_3:8000"]);
        assert_eq!(
            shown(&r, &up),
            [None, on("p_web_2:8000", false), on("p_web_2:8000", true)]
        );
        // A new replica on the address of one an earlier batch retired; a
        // replica recreated under its own name; one added; a buried line.
        let r = rollout(vec![
            slot("p_web_1", "p_web_3", ServerState::Failed),
            slot("p_web_2", "p_web_1", ServerState::Drained),
            slot("p_web_4", "p_web_4", ServerState::Replacing),
            slot("", "p_web_5", ServerState::Failed),
        ]);
        let up = pinned(&[
            "p_web_3:8000 down",
            "p_web_2:8000 down",
            "p_web_1:8000",
            "p_web_4:8000 down",
            "p_web_5:8000 down",
            "192.0.2.1:8000 down",
        ]);
        assert_eq!(
            shown(&r, &up),
            [
                on("p_web_1:8000", true),
                on("p_web_2:8000", false),
                on("p_web_2:8000", true),
                on("p_web_4:8000", false),
                on("p_web_5:8000 (added)", false),
                None,
            ]
        );
    }

    #[test]
    fn a_pending_or_done_record_or_another_upstreams_is_not_shown() {
        let up = upstream(&["server app1:3000;", "server app2:3000;"]);
        let mut r = rollout(vec![
            record("app1:3000", "app1", None, None, ServerState::Pending),
            record("app2:3000", "app2", None, None, ServerState::Done),
        ]);
        assert_eq!(shown(&r, &up), [None, None]);
        r.servers[0].state = ServerState::Drained;
        assert_eq!(shown(&r, &up), [on("app1:3000", false), None]);
        r.upstream = "stream:apps".into();
        assert_eq!(shown(&r, &up), [None, None]);
    }
}
