//! The planner on in-memory configs: step order, reload count, capacity, diffs.
use std::path::Path;
use std::time::Duration;

use super::policy::{Order, UpdateConfig};
use super::{Action, PlanError, ServerChange, Target, Timeouts, rolling_update as plan};
use crate::conf::ConfigSet;
use crate::conf::MemFs;

const MAIN: &str = "/etc/nginx/nginx.conf";
const TIMEOUTS: Timeouts = Timeouts {
    drain: Duration::from_secs(30),
    health: Duration::from_secs(60),
};

fn config(servers: &[&str]) -> ConfigSet {
    let lines: String = servers
        .iter()
        .map(|s| format!("        server {s};\n"))
        .collect();
    let text = format!("http {{\n    upstream apps {{\n{lines}    }}\n}}\n");
    ConfigSet::load_single(Path::new(MAIN), &MemFs::one(MAIN, text)).unwrap()
}

fn target(server: &str) -> Target {
    let host = server.split(':').next().unwrap();
    Target {
        server: server.into(),
        container: format!("{host}-c"),
        replacement: None,
        drained_by_us: false,
        dead: false,
    }
}

/// A stop-first plan of app1..app3 with `parallelism`, and the config it starts from.
fn three_servers(parallelism: u32) -> (ConfigSet, super::Plan) {
    let servers = ["app1:3000", "app2:3000", "app3:3000"];
    let cfg = config(&servers);
    let targets = servers.map(target);
    let p = plan(
        &cfg,
        "apps",
        &targets,
        &policy(|c| c.parallelism.value = parallelism),
        TIMEOUTS,
    )
    .unwrap();
    (cfg, p)
}

fn kinds(p: &super::Plan) -> Vec<&'static str> {
    p.steps.iter().map(|s| s.action.kind()).collect()
}

fn policy(f: impl FnOnce(&mut UpdateConfig)) -> UpdateConfig {
    let mut p = UpdateConfig::engine_defaults();
    p.monitor.value = Duration::ZERO;
    f(&mut p);
    p
}

#[test]
fn stop_first_restores_and_drains_in_one_reload() {
    let cfg = config(&["app1:3000", "app2:3000"]);
    let p = plan(
        &cfg,
        "apps",
        &[target("app1:3000"), target("app2:3000")],
        &policy(|_| {}),
        TIMEOUTS,
    )
    .unwrap();
    assert_eq!(
        kinds(&p),
        [
            "edit",
            "reload",
            "wait-drained",
            "recreate",
            "wait-healthy", //
            "edit",
            "reload",
            "wait-drained",
            "recreate",
            "wait-healthy", //
            "edit",
            "reload"
        ]
    );
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| matches!(s.action, Action::Reload))
            .count(),
        3,
        "N+1 reloads"
    );
    let Action::Edit { changes, .. } = &p.steps[5].action else {
        panic!()
    };
    assert_eq!(
        changes,
        &[
            ServerChange::Restore {
                server: "app1:3000".into()
            },
            ServerChange::Drain {
                server: "app2:3000".into()
            }
        ]
    );
    let diff = p.steps[5].diff.as_deref().unwrap();
    assert!(
        diff.contains("-        server app1:3000 down;\n")
            && diff.contains("+        server app1:3000;\n"),
        "{diff}"
    );
    assert!(diff.contains("+        server app2:3000 down;"), "{diff}");
}

#[test]
fn the_last_plan_step_leaves_the_config_as_it_was() {
    let (cfg, p) = three_servers(2);
    let mut live = cfg.clone();
    for step in &p.steps {
        if let Action::Edit { changes, .. } = &step.action {
            super::planner::apply_changes(&mut live, "apps", changes).unwrap();
        }
    }
    assert!(
        live.changes_since(&cfg).is_empty(),
        "restores undo every drain byte for byte"
    );
}

#[test]
fn stop_first_never_drains_the_last_live_server() {
    let (_, p) = three_servers(0);
    for step in &p.steps {
        if let Action::Recreate { servers } = &step.action {
            assert!(
                servers.len() <= 2,
                "at most live-1 = 2 at once, got {servers:?}"
            );
        }
    }
    let single = config(&["app1:3000", "backup:3000 backup"]);
    let err = plan(
        &single,
        "apps",
        &[target("app1:3000")],
        &policy(|_| {}),
        TIMEOUTS,
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::SingleLiveServer { .. }), "{err}");
    assert!(err.to_string().contains("--order start-first"));
}

#[test]
fn start_first_swaps_the_line_after_the_replacement_is_healthy() {
    let cfg = config(&["app1:3000"]);
    let mut t = target("app1:3000");
    t.replacement = Some("app1-c-b".into());
    let p = plan(
        &cfg,
        "apps",
        &[t],
        &policy(|c| c.order.value = Order::StartFirst),
        TIMEOUTS,
    )
    .unwrap();
    assert_eq!(
        kinds(&p),
        [
            "start-new",
            "wait-healthy",
            "edit",
            "reload",
            "wait-drained",
            "stop-old"
        ]
    );
    let Action::WaitHealthy { servers, .. } = &p.steps[1].action else {
        panic!()
    };
    assert_eq!(
        servers[0].address, "app1-c-b:3000",
        "the probe goes to the replacement"
    );
    let diff = p.steps[2].diff.as_deref().unwrap();
    assert!(
        diff.contains("-        server app1:3000;\n+        server app1-c-b:3000;"),
        "{diff}"
    );
    let Action::StopOld { servers } = &p.steps[5].action else {
        panic!()
    };
    assert_eq!(servers[0].container, "app1-c");
}

#[test]
fn dead_then_drained_servers_are_recreated_first_without_an_edit() {
    let cfg = config(&["app1:3000", "app2:3000 down", "app3:3000"]);
    let mut dead = target("app3:3000");
    dead.dead = true;
    let mut ours = target("app2:3000");
    ours.drained_by_us = true;
    let p = plan(
        &cfg,
        "apps",
        &[target("app1:3000"), ours, dead],
        &policy(|_| {}),
        TIMEOUTS,
    )
    .unwrap();
    let first: Vec<&str> = kinds(&p).into_iter().take(6).collect();
    assert_eq!(
        first,
        [
            "recreate",
            "wait-healthy",
            "reload",
            "wait-drained",
            "recreate",
            "wait-healthy"
        ],
        "the dead server first (no nginx -t can pass before it runs), then the drained one \
         after a reload that makes its `down` live"
    );
    let recreated = |i: usize| match &p.steps[i].action {
        Action::Recreate { servers } => servers[0].server.clone(),
        a => panic!("{a:?}"),
    };
    assert_eq!([recreated(0), recreated(4)], ["app3:3000", "app2:3000"]);
    let Action::Edit { changes, .. } = &p.steps[6].action else {
        panic!("{:?}", p.steps[6])
    };
    assert_eq!(
        changes,
        &[
            ServerChange::Restore {
                server: "app3:3000".into()
            },
            ServerChange::Restore {
                server: "app2:3000".into()
            },
            ServerChange::Drain {
                server: "app1:3000".into()
            }
        ]
    );
    let last_edit = p.steps.iter().rev().find_map(|s| match &s.action {
        Action::Edit { changes, .. } => Some(changes.clone()),
        _ => None,
    });
    assert_eq!(
        last_edit.unwrap(),
        [ServerChange::Restore {
            server: "app1:3000".into()
        }]
    );
}

#[test]
fn a_delay_puts_the_batch_back_before_waiting() {
    let cfg = config(&["app1:3000", "app2:3000"]);
    let p = plan(
        &cfg,
        "apps",
        &[target("app1:3000"), target("app2:3000")],
        &policy(|c| c.delay.value = Duration::from_secs(2)),
        TIMEOUTS,
    )
    .unwrap();
    let k = kinds(&p);
    let delay = k.iter().position(|k| *k == "delay").unwrap();
    assert_eq!(
        &k[delay - 2..delay],
        ["edit", "reload"],
        "restore + reload right before the delay: {k:?}"
    );
}

#[test]
fn unknown_servers_list_the_available_ones() {
    let cfg = config(&["app1:3000", "app2:3000"]);
    let err = plan(
        &cfg,
        "apps",
        &[target("app9:3000")],
        &policy(|_| {}),
        TIMEOUTS,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "upstream apps has no server app9:3000 (available: app1:3000, app2:3000)"
    );
    assert!(
        plan(
            &cfg,
            "nope",
            &[target("app1:3000")],
            &policy(|_| {}),
            TIMEOUTS
        )
        .is_err()
    );
}

#[test]
fn a_monitor_window_adds_a_final_watch() {
    let cfg = config(&["app1:3000", "app2:3000"]);
    let p = plan(
        &cfg,
        "apps",
        &[target("app1:3000")],
        &UpdateConfig::engine_defaults(),
        TIMEOUTS,
    )
    .unwrap();
    assert!(
        matches!(p.steps.last().unwrap().action, Action::Monitor { window } if window == Duration::from_secs(5))
    );
}

#[test]
fn only_a_drain_of_ours_needs_a_reload_before_its_recreate() {
    let cfg = config(&["app1:3000", "app2:3000 down"]);
    let mut ours = target("app2:3000");
    ours.drained_by_us = true;
    let p = plan(&cfg, "apps", &[ours], &policy(|_| {}), TIMEOUTS).unwrap();
    assert_eq!(
        kinds(&p)[..4],
        ["reload", "wait-drained", "recreate", "wait-healthy"]
    );
    // The operator's own `down` stays down and needs no reload.
    let p = plan(
        &cfg,
        "apps",
        &[target("app2:3000")],
        &policy(|_| {}),
        TIMEOUTS,
    )
    .unwrap();
    assert_eq!(kinds(&p), ["recreate", "wait-healthy"]);
}
