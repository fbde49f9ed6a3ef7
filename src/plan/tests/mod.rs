//! The planner on in-memory configs: step order, reload count, capacity, diffs.
//!
//! One file per subject; the fixtures they share are here: configs, targets,
//! replica sets, policies, the planner called with the usual timeouts, and
//! replaying a plan's edits.
use std::path::Path;
use std::time::Duration;

use super::policy::{Order, UpdateConfig};
use super::{
    Action, Plan, PlanError, Replica, ReplicaSet, RollingUpdate, ServerChange, Slot, Target,
    Timeouts, apply_changes_with, rolling_update,
};
use crate::conf::{ConfigSet, MemFs};

mod canary;
mod hooks;
mod line_edits;
mod replica_sets;
mod schema;
mod start_first;
mod stop_first;
mod targets;

const MAIN: &str = "/etc/nginx/nginx.conf";
/// Where a compose seed's upstream lives.
const CONF_D: &str = "/etc/nginx/conf.d/default.conf";
const TIMEOUTS: Timeouts = Timeouts {
    drain: Duration::from_secs(30),
    health: Duration::from_secs(60),
    ..Timeouts::DEFAULT
};

/// `text` as the one file at `path`.
fn load(path: &str, text: &str) -> ConfigSet {
    ConfigSet::load_single(Path::new(path), &MemFs::one(path, text)).unwrap()
}

/// An `http { upstream apps { … } }` with one `server` line per entry.
fn config(servers: &[&str]) -> ConfigSet {
    let lines: String = servers
        .iter()
        .map(|s| format!("        server {s};\n"))
        .collect();
    load(
        MAIN,
        &format!("http {{\n    upstream apps {{\n{lines}    }}\n}}\n"),
    )
}

/// The target of `server` (`app1:3000`), served by container `app1-c`.
fn target(server: &str) -> Target {
    let host = server.split(':').next().unwrap();
    Target {
        server: server.into(),
        container: format!("{host}-c"),
        replacement: None,
        swapped: false,
        drained_by_us: false,
        dead: false,
        pinned: None,
        via: None,
        hooks: Default::default(),
    }
}

/// [`target`] replaced start-first by the container `replacement`.
fn replaced_by(server: &str, replacement: &str) -> Target {
    Target {
        replacement: Some(replacement.into()),
        ..target(server)
    }
}

/// [`target`] whose container is not running.
fn dead(server: &str) -> Target {
    Target {
        dead: true,
        ..target(server)
    }
}

/// [`target`] whose `down` an earlier run of ours wrote.
fn drained_by_us(server: &str) -> Target {
    Target {
        drained_by_us: true,
        ..target(server)
    }
}

/// The set of `web:8000` retiring `members` (container, dead), dead ones
/// first, for `new`, pairwise in order.
fn replica_set(members: &[(&str, bool)], new: &[&str]) -> ReplicaSet {
    let mut old: Vec<Replica> = members
        .iter()
        .map(|(c, dead)| Replica {
            container: c.to_string(),
            dead: *dead,
        })
        .collect();
    old.sort_by_key(|r| !r.dead);
    ReplicaSet {
        server: "web:8000".into(),
        statement: String::new(),
        kept: Vec::new(),
        slots: (0..old.len().max(new.len()))
            .map(|i| Slot {
                old: old.get(i).cloned(),
                new: new.get(i).map(|n| n.to_string()),
            })
            .collect(),
        via: None,
        hooks: Default::default(),
    }
}

/// The engine's defaults with no monitor window, changed by `f`.
fn policy(f: impl FnOnce(&mut UpdateConfig)) -> UpdateConfig {
    let mut p = UpdateConfig::engine_defaults();
    p.monitor.value = Duration::ZERO;
    f(&mut p);
    p
}

/// A rolling update of `upstream` under `policy` that rolls nothing yet, with
/// [`TIMEOUTS`]: a test names what it rolls with `..update(…)`.
fn update<'a>(
    config: &'a ConfigSet,
    upstream: &'a str,
    policy: &'a UpdateConfig,
) -> RollingUpdate<'a> {
    RollingUpdate {
        config,
        upstream,
        targets: &[],
        sets: &[],
        pre_deploy: None,
        policy,
        timeouts: TIMEOUTS,
        ramp: None,
    }
}

/// A rolling update of single-server targets of `apps` only.
fn plan(config: &ConfigSet, targets: &[Target], policy: &UpdateConfig) -> Result<Plan, PlanError> {
    rolling_update(RollingUpdate {
        targets,
        ..update(config, "apps", policy)
    })
}

/// A rolling update of one replica set of `backend` only.
fn plan_set(config: &ConfigSet, set: ReplicaSet, policy: &UpdateConfig) -> Result<Plan, PlanError> {
    rolling_update(RollingUpdate {
        sets: &[set],
        ..update(config, "backend", policy)
    })
}

/// A stop-first plan of app1..app3 with `parallelism`, and the config it starts from.
fn three_servers(parallelism: u32) -> (ConfigSet, Plan) {
    let servers = ["app1:3000", "app2:3000", "app3:3000"];
    let cfg = config(&servers);
    let p = plan(
        &cfg,
        &servers.map(target),
        &policy(|c| c.parallelism.value = parallelism),
    )
    .unwrap();
    (cfg, p)
}

/// A plan of `targets` of `apps` = app1:3000, app2:3000 under `policy`, and
/// the config it starts from.
fn two_servers(targets: &[Target], policy: &UpdateConfig) -> (ConfigSet, Plan) {
    let cfg = config(&["app1:3000", "app2:3000"]);
    let p = plan(&cfg, targets, policy).unwrap();
    (cfg, p)
}

/// The kinds of a stop-first batch: its drain (with the previous batch's
/// restore) reloaded and waited for, its containers recreated and healthy.
const STOP_FIRST_BATCH: [&str; 5] = ["edit", "reload", "wait-drained", "recreate", "wait-healthy"];

/// The kinds of a start-first batch: the new containers started and healthy,
/// the line moved to them and reloaded, the old ones drained and stopped.
const START_FIRST_BATCH: [&str; 6] = [
    "start-new",
    "wait-healthy",
    "edit",
    "reload",
    "wait-drained",
    "stop-old",
];

/// These runs of step kinds one after another, to compare with [`kinds`].
fn in_order(runs: &[&[&'static str]]) -> Vec<&'static str> {
    runs.concat()
}

fn kinds(p: &Plan) -> Vec<&'static str> {
    p.steps.iter().map(|s| s.action.kind()).collect()
}

/// The delays of a plan: (the kind of the step before, counted from the stop).
fn delays(p: &Plan) -> Vec<(&'static str, bool)> {
    p.steps
        .windows(2)
        .filter_map(|w| match w[1].action {
            Action::Delay { from_stop, .. } => Some((w[0].action.kind(), from_stop)),
            _ => None,
        })
        .collect()
}

/// The config after each edit of `p`, applied in order from `config`, each
/// one a config the engine parses.
fn replay(config: &ConfigSet, p: &Plan) -> Vec<ConfigSet> {
    let mut live = config.clone();
    let mut seen = Vec::new();
    for step in &p.steps {
        if let Action::Edit {
            upstream, changes, ..
        } = &step.action
        {
            apply_changes_with(&mut live, upstream, changes, false).unwrap();
            seen.push(live.clone());
        }
    }
    seen
}

/// Whether every edit of `p`, replayed on `config`, leaves it byte for byte as it was.
fn leaves_as_it_was(config: &ConfigSet, p: &Plan) -> bool {
    replay(config, p)
        .last()
        .is_none_or(|end| end.changes_since(config).is_empty())
}

/// The servers of each `recreate` step, in order.
fn recreated(p: &Plan) -> Vec<Vec<String>> {
    p.steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Recreate { servers } => {
                Some(servers.iter().map(|s| s.server.clone()).collect())
            }
            _ => None,
        })
        .collect()
}

/// The changes of the edit at step `i`.
fn changes_at(p: &Plan, i: usize) -> &[ServerChange] {
    match &p.steps[i].action {
        Action::Edit { changes, .. } => changes,
        other => panic!("step {i} is {other:?}, not an edit: {:?}", kinds(p)),
    }
}

/// Owned strings, for comparing with lists of names.
fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
