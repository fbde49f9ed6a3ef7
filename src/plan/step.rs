//! Steps: the data a plan is made of.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::canary::{Gate, Share};
use super::hook::{HookCommand, HookKind, PreDeploy};
use crate::conf::PinnedLine;

/// One server of the upstream and the container a step acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRef {
    /// The server's address as written in the upstream when the plan was made (`app1:3000`).
    pub server: String,
    /// The container the step acts on (for start-first steps: the old or the new one).
    pub container: String,
    /// The address nginx reaches that container at (a start-first replacement has its own).
    pub address: String,
}

/// A hook's commands for one server's container, run in order (the first
/// failure ends them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// The server and the container the commands run in.
    pub server: ServerRef,
    /// The commands.
    pub commands: Vec<HookCommand>,
}

/// The weight a [`ServerChange::Weight`] expects its line to read before it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The `weight=` as written (none: the line has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A change to one `server` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum ServerChange {
    /// Add `down`: nginx sends it no new requests.
    Drain {
        /// The server's address.
        server: String,
    },
    /// Remove the `down` we added.
    Restore {
        /// The server's address.
        server: String,
    },
    /// Point the line at a replacement container (start-first).
    Replace {
        /// The old address.
        server: String,
        /// The new address.
        with: String,
    },
    /// Replace the operator's line by one pinned line per container (a replica
    /// set), or by one `down` line nginx need not resolve (a gone container).
    Pin {
        /// The operator's address.
        server: String,
        /// The lines.
        lines: Vec<PinnedLine>,
    },
    /// Put the operator's statement back, byte for byte, in place of its pinned lines.
    Unpin {
        /// The operator's address.
        server: String,
        /// The operator's statement (`server web:8000;`).
        statement: String,
    },
    /// One more pinned line: a new replica.
    Add {
        /// The operator's address it is pinned from.
        server: String,
        /// The new line's address.
        address: String,
        /// The journal record of the slot it fills.
        slot: String,
        /// Adding the line finishes the slot (a replica added, none replaced).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        completes: bool,
    },
    /// A pinned line whose container is gone: pointed at nowhere, `down`.
    Bury {
        /// The pinned line's address.
        server: String,
    },
    /// Write the line's `weight=` (none: remove it, nginx's default 1).
    Weight {
        /// The line's address.
        server: String,
        /// The weight.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
        /// A ramp's: the weight the line reads as the rollout left it, which
        /// it must still read (else nothing is written: the operator changed
        /// it). None: not checked (a live `weight`, or a plan of an earlier version).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<Expected>,
    },
    /// A new `server` line after the last one, indented like its neighbours.
    AddServer {
        /// Its address.
        address: String,
        /// Its parameters, as written (`weight=2`, `backup`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        params: Vec<String>,
    },
    /// Delete the line (with its trailing comment, when it stands alone on its line).
    Remove {
        /// The line's address.
        server: String,
    },
    /// Put the upstream's contents back as they were before a rollout,
    /// provided they still read as it left them.
    Revert {
        /// The contents as the rollout left them.
        expect: String,
        /// The contents before it.
        with: String,
    },
}

impl ServerChange {
    /// The line it names (a new line's address; nothing for a revert, which
    /// names the whole upstream).
    pub fn server(&self) -> &str {
        match self {
            ServerChange::Drain { server }
            | ServerChange::Restore { server }
            | ServerChange::Replace { server, .. }
            | ServerChange::Pin { server, .. }
            | ServerChange::Unpin { server, .. }
            | ServerChange::Add { server, .. }
            | ServerChange::Bury { server }
            | ServerChange::Weight { server, .. }
            | ServerChange::Remove { server } => server,
            ServerChange::AddServer { address, .. } => address,
            ServerChange::Revert { .. } => "",
        }
    }
}

impl fmt::Display for ServerChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerChange::Drain { server } => write!(f, "drain {server}"),
            ServerChange::Restore { server } => write!(f, "restore {server}"),
            ServerChange::Replace { server, with } => write!(f, "replace {server} with {with}"),
            ServerChange::Pin { server, lines } => write!(
                f,
                "pin {server} to {}",
                lines
                    .iter()
                    .map(|l| l.address.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            ServerChange::Unpin { server, .. } => write!(f, "unpin {server}"),
            ServerChange::Add { address, .. } => write!(f, "add {address}"),
            ServerChange::Bury { server } => write!(f, "bury {server}"),
            ServerChange::Weight {
                server,
                weight: Some(w),
                ..
            } => write!(f, "weight {server} {w}"),
            ServerChange::Weight {
                server,
                weight: None,
                ..
            } => {
                write!(f, "weight {server} as nginx's default (no weight=)")
            }
            ServerChange::AddServer { address, params } if params.is_empty() => {
                write!(f, "add server {address}")
            }
            ServerChange::AddServer { address, params } => {
                write!(f, "add server {address} {}", params.join(" "))
            }
            ServerChange::Remove { server } => write!(f, "remove {server}"),
            ServerChange::Revert { .. } => f.write_str("put its lines back as they were"),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Change `server` lines of the upstream in one config edit (written in place, read back).
    Edit {
        /// The upstream's name.
        upstream: String,
        /// The changes, applied in order.
        changes: Vec<ServerChange>,
        /// Allow draining the last live server (`drain --force`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
    },
    /// `nginx -t`, then `nginx -s reload`, then confirm new workers serve the new config.
    Reload,
    /// Wait until the workers of the previous configuration have finished their requests and exited.
    WaitDrained {
        /// Give up (a failure) after this long.
        #[serde(with = "humantime_serde_compat")]
        timeout: Duration,
    },
    /// Stop-first: stop and remove the old container, create and start the new one under the same name.
    Recreate {
        /// The servers (containers) replaced.
        servers: Vec<ServerRef>,
    },
    /// Start-first: create and start the replacement beside the old container.
    StartNew {
        /// The servers and the replacement containers.
        servers: Vec<ServerRef>,
    },
    /// Start-first: stop and remove the old container once nginx no longer uses it.
    StopOld {
        /// The servers and the old containers.
        servers: Vec<ServerRef>,
    },
    /// Wait until the new containers are healthy.
    WaitHealthy {
        /// The servers and the new containers.
        servers: Vec<ServerRef>,
        /// Give up (a failure) after this long.
        #[serde(with = "humantime_serde_compat")]
        timeout: Duration,
    },
    /// Keep watching the new containers until each one's window has passed:
    /// `window` for the last batch's (`servers`), the monitor window for the others.
    Monitor {
        /// How long after becoming healthy a failure of the last batch's new
        /// containers still counts (the planner's `last_watch`).
        #[serde(with = "humantime_serde_compat")]
        window: Duration,
        /// The last batch's servers and new containers (plans of earlier
        /// versions name none: `window` was the monitor window, for every one).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        servers: Vec<ServerRef>,
    },
    /// Wait between batches.
    Delay {
        /// How long.
        #[serde(with = "humantime_serde_compat")]
        duration: Duration,
        /// Counted from the start of the stop-old step just before it (when
        /// the old containers were told to stop), not from its end: Swarm's
        /// start-first updater starts its delay once it has told the old task
        /// to shut down, without waiting for it to exit.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        from_stop: bool,
    },
    /// The canary serves `share` of the traffic: watch its new container
    /// (a failure counts under the failure action), then hold or pause.
    Canary {
        /// The canary and its new container.
        server: ServerRef,
        /// Its share now.
        share: Share,
        /// Hold it, or pause for the operator.
        gate: Gate,
    },
    /// Run the pre-deploy command once in a one-off container of the new spec,
    /// wait for it to exit, remove it; a failure stops the rollout before
    /// anything changed.
    PreDeploy {
        /// The command and where it runs.
        job: PreDeploy,
        /// Give up (a failure) after this long.
        #[serde(with = "humantime_serde_compat")]
        timeout: Duration,
    },
    /// Run post-start hooks in new containers that just started.
    PostStart {
        /// Per container, its commands.
        runs: Vec<HookRun>,
        /// Each command gives up (a failure) after this long.
        #[serde(with = "humantime_serde_compat")]
        timeout: Duration,
    },
    /// Run pre-stop hooks in old containers nginx no longer sends requests to.
    PreStop {
        /// Per container, its commands.
        runs: Vec<HookRun>,
        /// Each command gives up (a failure) after this long.
        #[serde(with = "humantime_serde_compat")]
        timeout: Duration,
    },
}

impl Action {
    /// The step's kind as one kebab-case word (`edit`, `wait-healthy`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Edit { .. } => "edit",
            Action::Reload => "reload",
            Action::WaitDrained { .. } => "wait-drained",
            Action::Recreate { .. } => "recreate",
            Action::StartNew { .. } => "start-new",
            Action::StopOld { .. } => "stop-old",
            Action::WaitHealthy { .. } => "wait-healthy",
            Action::Monitor { .. } => "monitor",
            Action::Delay { .. } => "delay",
            Action::Canary { .. } => "canary",
            Action::PreDeploy { .. } => "pre-deploy",
            Action::PostStart { .. } => "post-start",
            Action::PreStop { .. } => "pre-stop",
        }
    }

    /// The hook a step runs, if it is a hook step.
    pub fn hook(&self) -> Option<HookKind> {
        match self {
            Action::PreDeploy { .. } => Some(HookKind::PreDeploy),
            Action::PostStart { .. } => Some(HookKind::PostStart),
            Action::PreStop { .. } => Some(HookKind::PreStop),
            _ => None,
        }
    }
}

/// `in app1: `cmd` (source), `cmd2` (source); in app2: …`
fn hook_runs(runs: &[HookRun]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "in {}: {}",
                r.server.container,
                r.commands
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn containers(servers: &[ServerRef]) -> String {
    servers
        .iter()
        .map(|s| s.container.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            Action::Edit {
                upstream, changes, ..
            } => {
                let parts: Vec<String> = changes.iter().map(ServerChange::to_string).collect();
                write!(f, "edit upstream {upstream}: {}", parts.join(", "))
            }
            Action::Reload => {
                f.write_str("validate (nginx -t) and reload nginx, confirm new workers")
            }
            Action::WaitDrained { timeout } => {
                write!(
                    f,
                    "wait for old nginx workers to finish in-flight requests (timeout {})",
                    secs(timeout)
                )
            }
            Action::Recreate { servers } => {
                write!(f, "recreate {} (stop old, start new)", containers(servers))
            }
            Action::StartNew { servers } => {
                write!(f, "start {} beside the old container", containers(servers))
            }
            Action::StopOld { servers } => write!(f, "stop and remove {}", containers(servers)),
            Action::WaitHealthy { servers, timeout } => {
                write!(
                    f,
                    "wait until {} is healthy (timeout {})",
                    containers(servers),
                    secs(timeout)
                )
            }
            Action::Monitor { window, servers } if servers.is_empty() => write!(
                f,
                "monitor new containers for {} after healthy",
                secs(window)
            ),
            Action::Monitor { window, servers } => write!(
                f,
                "monitor new containers until their windows end ({} for {} after healthy)",
                containers(servers),
                secs(window)
            ),
            Action::Delay {
                duration,
                from_stop: false,
            } => write!(f, "delay {}", secs(duration)),
            Action::Delay {
                duration,
                from_stop: true,
            } => write!(
                f,
                "delay {}, counted from the old containers' stop",
                secs(duration)
            ),
            Action::Canary {
                server,
                share,
                gate,
            } => write!(
                f,
                "canary {} takes {share} of the traffic: watch {}, {gate}",
                server.server, server.container
            ),
            Action::PreDeploy { job, timeout } => write!(
                f,
                "run {} once in a one-off container {} of {}'s new spec ({}), timeout {}",
                job.command,
                job.container,
                job.server,
                job.image,
                secs(timeout)
            ),
            Action::PostStart { runs, timeout } | Action::PreStop { runs, timeout } => {
                write!(f, "{} (timeout {} each)", hook_runs(runs), secs(timeout))
            }
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Position in the plan, from 1.
    pub index: usize,
    /// What it does.
    pub action: Action,
    /// The unified diff of the config change it makes (edit steps only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// Serde for `Duration` as a human-readable string ("1m 30s"), read by the
/// tool's rule ([`crate::duration::parse`]: a journal edited past its bound
/// is refused).
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(de)?;
        crate::duration::parse(&s).map_err(serde::de::Error::custom)
    }
}
