//! The pure planner's entry point: `rolling_update` turns (config, upstream,
//! targets, policy) into ordered steps with their diffs; here too are what it
//! is planned from (`RollingUpdate`, `Target`, `Via`, `Timeouts`), what it
//! makes (`Plan`) and why it fails (`PlanError`).
//!
//! It resolves the targets, orders them (those that take no traffic first),
//! picks the canary and the batch size, and lays out the steps with a
//! `Builder`: the pre-deploy hook, the edit that pins dead lines to nowhere,
//! the targets' batches (`targets.rs`), the replica sets' (`replicas.rs`),
//! the watch of the last batch (`last_watch`). Capacity never drops to zero:
//! stop-first drains at most (live servers − 1) at once.
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::builder::Builder;
use super::canary::{LineWeight, Ramp, RampLeft, Share};
use super::hook::{Hooks, PreDeploy};
use super::policy::{Order, UpdateConfig};
use super::replicas::ReplicaSet;
use super::step::{Action, Expected, ServerChange, Step};
use super::targets::CanaryRun;
use crate::conf::{Address, ConfError, ConfigSet, NOWHERE, PinnedLine};

/// One server to update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The server's address as written in the upstream (`app1:3000`).
    pub server: String,
    /// The container serving it now.
    pub container: String,
    /// Start-first only: the name of the replacement container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// Start-first: its replacement serves already, on the line the swap
    /// gave it (a run stopped between the swap and the stop of the old
    /// container); only the old container is left to stop.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub swapped: bool,
    /// The server is `down` now because an earlier run of ours drained it:
    /// it must end up live again.
    #[serde(default)]
    pub drained_by_us: bool,
    /// Its container is not running (crashed, or removed by a run killed mid-step).
    /// nginx cannot resolve its name, so no config edit can pass `nginx -t` until it
    /// is back: it is recreated first, before anything is drained.
    #[serde(default)]
    pub dead: bool,
    /// Its line is (to be) pinned to nowhere, `down`, because its container is
    /// gone: the operator's statement, put back once it serves again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// How its new container is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// The post-start and pre-stop hooks of what it is deployed from.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
}

/// How a server's new container is made, and why that way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "how", content = "why")]
pub enum Via {
    /// From the container's own spec, changed by `--image/--env/--label`.
    Engine,
    /// What compose itself creates for the service now, created through the
    /// Engine API under the name and number the rollout chooses.
    Compose,
    /// By the compose CLI (`up -d --no-deps --force-recreate`), for this reason.
    ComposeCli(String),
    /// The container it replaced, as the journal keeps it (a rollback).
    Previous,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Engine => f.write_str("engine: its own spec with --image/--env/--label"),
            Via::Compose => f.write_str("compose: what compose creates now, through the API"),
            Via::ComposeCli(why) => write!(f, "compose CLI: {why}"),
            Via::Previous => f.write_str("the container it replaced, from the journal"),
        }
    }
}

/// How long the waits of a plan may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Old nginx workers finishing their requests.
    #[serde(with = "super::step::humantime_serde_compat")]
    pub drain: Duration,
    /// A new container becoming healthy.
    #[serde(with = "super::step::humantime_serde_compat")]
    pub health: Duration,
    /// One post-start or pre-stop command (plans of earlier versions had none: the default).
    #[serde(
        default = "Timeouts::default_hook",
        with = "super::step::humantime_serde_compat"
    )]
    pub hook: Duration,
    /// The pre-deploy command.
    #[serde(
        default = "Timeouts::default_pre_deploy",
        with = "super::step::humantime_serde_compat"
    )]
    pub pre_deploy: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

impl Timeouts {
    /// The defaults of `--drain-timeout`, `--health-timeout`, `--hook-timeout`
    /// and `--pre-deploy-timeout`.
    pub const DEFAULT: Timeouts = Timeouts {
        drain: Duration::from_secs(30),
        health: Duration::from_secs(60),
        hook: Duration::from_secs(60),
        pre_deploy: Duration::from_secs(600),
    };

    fn default_hook() -> Duration {
        Timeouts::DEFAULT.hook
    }

    fn default_pre_deploy() -> Duration {
        Timeouts::DEFAULT.pre_deploy
    }
}

/// An ordered list of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The upstream being updated.
    pub upstream: String,
    /// The servers, in order.
    pub targets: Vec<Target>,
    /// The replica sets, in order (after the servers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<ReplicaSet>,
    /// The settings in effect.
    pub policy: UpdateConfig,
    /// The timeouts in effect.
    pub timeouts: Timeouts,
    /// The canary's ramp, with the weights it writes back (kept for a plan
    /// that continues or undoes this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
    /// The steps.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Whether it only edits lines (a live `drain`, `weight`, `add`…, or
    /// the undoing of one): no container to replace.
    pub fn line_only(&self) -> bool {
        self.targets.is_empty() && self.sets.is_empty()
    }

    /// Whether a run of this plan stopped inside the canary's ramp: a hold
    /// is done and the edit that puts the weights back is not. Such a run
    /// goes on with its own steps, not a new plan (which would drop the rest
    /// of the ramp: its canary is back in the upstream).
    pub fn ramp_underway(&self, done: impl Fn(usize) -> bool) -> bool {
        let holds: Vec<usize> = (0..self.steps.len())
            .filter(|&i| matches!(self.steps[i].action, Action::Canary { .. }))
            .collect();
        let (Some(&first), Some(&last)) = (holds.first(), holds.last()) else {
            return false;
        };
        let restore = (last + 1..self.steps.len())
            .find(|&i| matches!(self.steps[i].action, Action::Edit { .. }));
        done(first) && restore.is_some_and(|i| !done(i))
    }

    /// Each line of the ramp with its weight as a run of this plan left it:
    /// what the last edit `done` (not skipped) wrote on it, else what the
    /// plan's first change of it expects (the plan found it so), else, when
    /// no change names it, its weight before the ramp. A line no edit done
    /// wrote whose first change expects nothing (a plan of an earlier
    /// version) is left out: it is not checked.
    pub fn weights_left(&self, done: impl Fn(usize) -> bool) -> Vec<LineWeight> {
        let Some(ramp) = &self.ramp else {
            return Vec::new();
        };
        let mut left = Vec::new();
        for line in &ramp.weights {
            let mut first: Option<Option<Expected>> = None;
            let mut last: Option<Option<u32>> = None;
            for (i, step) in self.steps.iter().enumerate() {
                let Action::Edit { changes, .. } = &step.action else {
                    continue;
                };
                for change in changes {
                    if let ServerChange::Weight {
                        server,
                        weight,
                        expect,
                    } = change
                        && *server == line.server
                    {
                        if first.is_none() {
                            first = Some(*expect);
                        }
                        if done(i) {
                            last = Some(*weight);
                        }
                    }
                }
            }
            let weight = match (last, first) {
                (Some(written), _) => written,
                (None, Some(Some(expected))) => expected.weight,
                (None, Some(None)) => continue,
                (None, None) => line.weight,
            };
            left.push(LineWeight {
                server: line.server.clone(),
                weight,
            });
        }
        left
    }
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Unknown upstream or server, or an edit the config engine refuses.
    #[error(transparent)]
    Conf(#[from] ConfError),
    /// Stop-first on an upstream with a single live server.
    #[error(
        "upstream {upstream} has only one live server ({server}): stop-first would leave no live server; use --order start-first"
    )]
    SingleLiveServer {
        /// The upstream.
        upstream: String,
        /// Its only live server.
        server: String,
    },
    /// A target that is not a server of the upstream.
    #[error("upstream {upstream} has no server {server} (available: {available})")]
    UnknownServer {
        /// The upstream.
        upstream: String,
        /// The address asked for.
        server: String,
        /// The upstream's servers.
        available: String,
    },
    /// Start-first without a replacement name for a server.
    #[error("start-first needs a replacement container name for {0}")]
    NoReplacement(String),
    /// Nothing to do.
    #[error("no servers to update in upstream {0}")]
    Empty(String),
    /// A replica set none of whose containers runs: there is nothing to pin it to.
    #[error(
        "no container of {0} runs: nginx cannot resolve it, and its line has no replica to be \
         pinned to while the set is replaced; start one (`docker start NAME`), then deploy again"
    )]
    NoLiveReplica(String),
    /// A replica set whose line the operator wrote `down`: its pinned lines
    /// would send its replicas traffic while it is replaced.
    #[error(
        "server {0} is `down` in the config: its replicas take no traffic, and replacing them \
         one pinned line each would send them some; recreate them with compose (`docker-compose \
         up -d`), take `down` off the line first, or leave the line out with --servers"
    )]
    DownReplicaSet(String),
    /// Stop-first recreates a replica under its own name, so its line stays.
    #[error("stop-first recreates replica {0} in place: its replacement must keep its name")]
    RenamedInPlace(String),
    /// A ramp over a replica set.
    #[error(
        "--canary-weights ramps one server line, and {0} is a replica set (several containers \
         behind one line, pinned one line per replica for the rollout): use --servers to deploy \
         the single-container servers with a ramp, and the set without"
    )]
    CanaryReplicaSet(String),
    /// A ramp with start-first.
    #[error(
        "--canary-weights needs --order stop-first: start-first points the server's line at \
         the new container in the reload that retires the old one, leaving nothing to ramp from"
    )]
    CanaryStartFirst,
    /// A ramp when no server of the update takes traffic.
    #[error(
        "--canary-weights: no server of the update takes traffic in upstream {0} (each is down or its container is gone)"
    )]
    CanaryNothingServes(String),
    /// A ramp with no other live line to share the traffic with.
    #[error("--canary-weights: {0} would be the only live server; there is no traffic to share")]
    CanaryAlone(String),
    /// Weights so large that a share of them is past what nginx takes.
    #[error(
        "--canary-weights: {share} for {server} needs a weight above nginx's largest ({max}); lower the weights written in the upstream",
        max = i32::MAX
    )]
    CanaryWeightsTooLarge {
        /// The canary.
        server: String,
        /// The share asked for.
        share: Share,
    },
}

/// What a rolling update is planned from: the config as it is, the servers
/// and replica sets to replace, and how.
#[derive(Debug, Clone, Copy)]
pub struct RollingUpdate<'a> {
    /// The config files as they are now (read, never written).
    pub config: &'a ConfigSet,
    /// The upstream whose servers are replaced.
    pub upstream: &'a str,
    /// The servers backed by one container each, replaced first.
    pub targets: &'a [Target],
    /// The replica sets (one line, several containers), replaced after them.
    pub sets: &'a [ReplicaSet],
    /// The `pre-deploy` hook, run before anything is touched.
    pub pre_deploy: Option<&'a PreDeploy>,
    /// The update settings in effect (order, parallelism, canary, …).
    pub policy: &'a UpdateConfig,
    /// How long each wait may take.
    pub timeouts: Timeouts,
    /// The ramp of the plan this one continues or undoes: its weights are put
    /// back first where they changed (each over the weight that plan left,
    /// never over one changed by hand since), and its canary ramps again if
    /// it is a target and `policy` asks for a ramp.
    pub ramp: Option<RampLeft<'a>>,
}

/// Builds the plan of a rolling update: its `targets` (one container per
/// server line) and then its `sets` (replica sets), after its `pre_deploy`
/// hook if one is given. Pure: reads `config`, writes nothing.
pub fn rolling_update(update: RollingUpdate<'_>) -> Result<Plan, PlanError> {
    let RollingUpdate {
        config,
        upstream,
        targets,
        sets,
        pre_deploy,
        policy,
        timeouts,
        ramp,
    } = update;
    if targets.is_empty() && sets.is_empty() {
        return Err(PlanError::Empty(upstream.to_string()));
    }
    let up = config.upstream(upstream)?;
    let unknown = |server: &str| PlanError::UnknownServer {
        upstream: upstream.to_string(),
        server: server.to_string(),
        available: up
            .servers
            .iter()
            .map(|s| s.address.clone())
            .collect::<Vec<_>>()
            .join(", "),
    };
    // A set's line comes back as the config has it when the run begins,
    // unless it is pinned (a run before this one left it so): then as that
    // run found it. An operator's edit since an earlier run of it (a
    // rollback's, long after the deploy) is kept.
    let mut sets = sets.to_vec();
    for set in &mut sets {
        let line = (up.servers.iter()).find(|s| s.address == set.server && s.pinned_from.is_none());
        match line {
            Some(line) => set.statement = line.statement.clone(),
            None if set.statement.is_empty() => return Err(unknown(&set.server)),
            None => {}
        }
    }
    // Resolve every target against the config now so a typo fails before anything runs.
    let mut operator_down = Vec::new();
    for t in targets {
        let line = t.line();
        let server = up.line_for(&line).ok_or_else(|| unknown(&line))?;
        operator_down.push(server.is_down() && !t.drained_by_us);
    }
    // Servers that take no traffic now (down, or a dead container) go first, in a batch
    // that needs no config edit; a dead one must be running again before any `nginx -t`,
    // so the dead come first of all.
    let quiet = |i: usize| operator_down[i] || targets[i].drained_by_us || targets[i].dead;
    let mut order: Vec<usize> = (0..targets.len()).collect();
    order.sort_by_key(|&i| (!quiet(i), !targets[i].dead));
    let quiet_count = order.iter().filter(|&&i| quiet(i)).count();
    let targets: Vec<Target> = order.iter().map(|&i| targets[i].clone()).collect();
    let operator_down: Vec<bool> = order.iter().map(|&i| operator_down[i]).collect();
    let targets = targets.as_slice();
    let mut builder = Builder {
        config: config.clone(),
        upstream,
        steps: Vec::new(),
        timeouts,
    };
    // Before anything is touched (a burial is an edit already).
    if let Some(job) = pre_deploy {
        builder.push(
            Action::PreDeploy {
                job: job.clone(),
                timeout: timeouts.pre_deploy,
            },
            None,
        );
    }
    // A dead container's line names what nginx cannot resolve (every `nginx -t`
    // fails) while nginx still sends requests to the address it resolved last:
    // first of all, such lines are pinned to nowhere (`down`), and reloaded.
    let mut burials: Vec<ServerChange> = targets
        .iter()
        .filter(|t| t.dead)
        .filter(|t| up.servers.iter().any(|s| s.address == t.server))
        .filter_map(|t| {
            t.pinned.as_ref()?;
            Some(ServerChange::Pin {
                server: t.server.clone(),
                lines: vec![PinnedLine {
                    address: Address::with_host(&t.server, NOWHERE),
                    down: true,
                }],
            })
        })
        .collect();
    for set in &sets {
        let pinned = up
            .servers
            .iter()
            .any(|s| s.pinned_from.as_deref() == Some(set.server.as_str()));
        if !pinned && set.has_dead() {
            burials.push(set.pin()?);
        }
    }
    // A ramp cut short (paused, failed, killed) left its weights: back first.
    if let Some(cut) = ramp {
        burials.extend(cut.ramp.restore(&up, cut.weights));
    }
    builder.edit(burials, false)?;
    // The canary: the server the plan it continues named, else the first that serves.
    let canary = match &policy.canary {
        None => None,
        Some(_) if policy.order.value == Order::StartFirst => {
            return Err(PlanError::CanaryStartFirst);
        }
        Some(_) if !sets.is_empty() => {
            return Err(PlanError::CanaryReplicaSet(sets[0].server.clone()));
        }
        Some(setting) => {
            let serves = |i: usize| !operator_down[i] && !targets[i].dead;
            let pick = match ramp {
                Some(r) => {
                    (0..targets.len()).find(|&i| targets[i].server == r.ramp.server && serves(i))
                }
                None => Some(
                    (0..targets.len())
                        .find(|&i| serves(i) && !targets[i].drained_by_us)
                        .ok_or_else(|| PlanError::CanaryNothingServes(upstream.to_string()))?,
                ),
            };
            pick.map(|i| {
                let ramp = ramp
                    .map(|r| r.ramp.clone())
                    .unwrap_or_else(|| Ramp::of(&targets[i].server, &up));
                (i, ramp, setting.value.clone())
            })
        }
    };
    let plan_ramp = canary
        .as_ref()
        .map(|(_, r, _)| r.clone())
        .or(ramp.map(|r| r.ramp.clone()));
    let parallelism = match policy.parallelism.value {
        0 => targets
            .len()
            .max(sets.iter().map(|s| s.slots.len()).max().unwrap_or(0)),
        p => p as usize,
    };
    match policy.order.value {
        _ if targets.is_empty() => {}
        Order::StopFirst => {
            let live = up.servers.iter().filter(|s| s.is_live()).count()
                + targets.iter().filter(|t| t.drained_by_us).count();
            let live_targets: Vec<&Target> = targets
                .iter()
                .zip(&operator_down)
                .filter(|(_, down)| !**down)
                .map(|(t, _)| t)
                .collect();
            if live <= 1 && !live_targets.is_empty() {
                return Err(PlanError::SingleLiveServer {
                    upstream: upstream.to_string(),
                    server: live_targets[0].server.clone(),
                });
            }
            let batch = parallelism.min(live.saturating_sub(1)).max(1);
            let canary = canary.map(|(index, ramp, canary)| CanaryRun {
                index,
                ramp,
                canary,
                monitor: policy.monitor.value,
            });
            builder.stop_first(
                targets,
                &operator_down,
                quiet_count,
                batch,
                policy.delay.value,
                canary,
            )?;
        }
        Order::StartFirst => {
            if let Some(t) = targets.iter().find(|t| t.replacement.is_none()) {
                return Err(PlanError::NoReplacement(t.server.clone()));
            }
            builder.start_first(targets, parallelism, policy.delay.value)?;
        }
    }
    for set in &sets {
        builder.replica_set(set, policy.order.value, parallelism, policy.delay.value)?;
    }
    let window = last_watch(policy);
    if !window.is_zero() {
        let servers = builder
            .steps
            .iter()
            .rev()
            .find_map(|s| match &s.action {
                Action::WaitHealthy { servers, .. } => Some(servers.clone()),
                _ => None,
            })
            .unwrap_or_default();
        builder.push(Action::Monitor { window, servers }, None);
    }
    Ok(Plan {
        upstream: upstream.to_string(),
        targets: targets.to_vec(),
        sets,
        policy: policy.clone(),
        timeouts,
        ramp: plan_ramp,
        steps: builder.steps,
    })
}

/// How long the last batch's new containers are watched after they turned
/// healthy: the monitor window or, when a delay is set and is at least as
/// long, the delay and one second, as Swarm's updater watches after its last
/// slot (whose delay its worker waits too). No delay and no monitor window:
/// no watch.
fn last_watch(policy: &UpdateConfig) -> Duration {
    let (monitor, delay) = (policy.monitor.value, policy.delay.value);
    if !delay.is_zero() && delay >= monitor {
        delay.saturating_add(Duration::from_secs(1))
    } else {
        monitor
    }
}
