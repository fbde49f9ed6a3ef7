//! The planner on in-memory configs: step order, reload count, capacity, diffs.
use std::path::Path;
use std::time::Duration;

use super::policy::{Order, UpdateConfig};
use super::{Action, PlanError, ServerChange, Target, Timeouts, rolling_update};
use crate::conf::ConfigSet;
use crate::conf::MemFs;

/// A rolling update of single-server targets only.
fn plan(
    config: &ConfigSet,
    upstream: &str,
    targets: &[Target],
    policy: &UpdateConfig,
    timeouts: Timeouts,
) -> Result<crate::plan::Plan, crate::plan::PlanError> {
    rolling_update(config, upstream, targets, &[], None, policy, timeouts, None)
}

const MAIN: &str = "/etc/nginx/nginx.conf";
const TIMEOUTS: Timeouts = Timeouts {
    drain: Duration::from_secs(30),
    health: Duration::from_secs(60),
    ..Timeouts::DEFAULT
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
        pinned: None,
        via: None,
        hooks: Default::default(),
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

/// The delays of a plan: (the kind of the step before, counted from the stop).
fn delays(p: &super::Plan) -> Vec<(&'static str, bool)> {
    p.steps
        .windows(2)
        .filter_map(|w| match w[1].action {
            Action::Delay { from_stop, .. } => Some((w[0].action.kind(), from_stop)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_delay_counts_from_the_old_containers_stop_only_when_a_stop_ends_the_batch() {
    let servers = ["app1:3000", "app2:3000", "app3:3000"];
    let cfg = config(&servers);
    let one_second = |order| {
        policy(move |c| {
            c.order.value = order;
            c.delay.value = Duration::from_secs(1);
        })
    };
    // Start-first: a batch ends by stopping its old containers; the delay
    // runs from that stop request, as Swarm's updater's does.
    let start_first: Vec<Target> = servers
        .iter()
        .map(|s| {
            let mut t = target(s);
            t.replacement = Some(format!("{}-b", t.container));
            t
        })
        .collect();
    let p = plan(
        &cfg,
        "apps",
        &start_first,
        &one_second(Order::StartFirst),
        TIMEOUTS,
    )
    .unwrap();
    assert_eq!(delays(&p), [("stop-old", true); 2]);
    assert!(
        p.steps
            .iter()
            .filter(|s| matches!(s.action, Action::Delay { .. }))
            .all(|s| s.action.to_string() == "delay 1s, counted from the old containers' stop"),
        "the plan says so: {:?}",
        p.steps
    );
    // Stop-first: a batch ends by putting its servers back; the delay follows that.
    let p = plan(
        &cfg,
        "apps",
        &servers.map(target),
        &one_second(Order::StopFirst),
        TIMEOUTS,
    )
    .unwrap();
    assert_eq!(delays(&p), [("reload", false); 2]);
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

mod replica_sets {
    use super::*;
    use crate::conf::{Edit, EditOptions};
    use crate::plan::{Replica, ReplicaSet, Slot, apply_changes_with};

    const SEED000: &str = "upstream backend {\n    # web is the compose service\n    server web:8000 max_fails=2;\n}\n\nserver {\n    listen 80;\n    location / { proxy_pass http://backend; }\n}\n";

    fn seed000() -> ConfigSet {
        let path = "/etc/nginx/conf.d/default.conf";
        ConfigSet::load_single(Path::new(path), &MemFs::one(path, SEED000)).unwrap()
    }

    /// A set retiring `members` (dead ones first) for `new`, pairwise in order.
    fn set(members: &[(&str, bool)], new: &[&str]) -> ReplicaSet {
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

    fn run(set: ReplicaSet, f: impl FnOnce(&mut UpdateConfig)) -> super::super::Plan {
        rolling_update(
            &seed000(),
            "backend",
            &[],
            &[set],
            None,
            &policy(f),
            TIMEOUTS,
            None,
        )
        .unwrap()
    }

    /// Applies every edit of `plan` in order, checking each leaves a config the
    /// engine parses; returns the bytes after each edit.
    fn replay(plan: &super::super::Plan) -> Vec<String> {
        let mut config = seed000();
        let mut seen = Vec::new();
        for step in &plan.steps {
            if let Action::Edit {
                upstream, changes, ..
            } = &step.action
            {
                apply_changes_with(&mut config, upstream, changes, false).unwrap();
                let text = String::from_utf8(config.files().next().unwrap().1.to_vec()).unwrap();
                seen.push(text);
            }
        }
        seen
    }

    #[test]
    fn start_first_replicas_stop_inside_the_delay_and_the_last_before_the_unpin() {
        let p = run(
            set(
                &[("p_web_1", false), ("p_web_2", false), ("p_web_3", false)],
                &["p_web_4", "p_web_1", "p_web_2"],
            ),
            |p| {
                p.order.value = Order::StartFirst;
                p.delay.value = Duration::from_secs(1);
            },
        );
        assert_eq!(super::delays(&p), [("stop-old", true); 2]);
        // No delay after the last slot: its stop ends before the operator's
        // line comes back (Docker's DNS must no longer answer with it).
        let unpin = p
            .steps
            .iter()
            .position(|s| matches!(&s.action, Action::Edit { changes, .. } if changes.iter().any(|c| matches!(c, ServerChange::Unpin { .. }))))
            .unwrap();
        assert_eq!(p.steps[unpin - 1].action.kind(), "stop-old");
    }

    #[test]
    fn start_first_replaces_one_replica_per_reload_and_puts_the_line_back() {
        let p = run(
            set(
                &[("p_web_1", false), ("p_web_2", false), ("p_web_3", false)],
                &["p_web_4", "p_web_1", "p_web_2"],
            ),
            |p| {
                p.order.value = Order::StartFirst;
                p.delay.value = Duration::from_secs(1);
            },
        );
        assert_eq!(
            kinds(&p),
            [
                "start-new",
                "wait-healthy",
                "edit",
                "reload",
                "wait-drained",
                "stop-old",
                "delay",
                "start-new",
                "wait-healthy",
                "edit",
                "reload",
                "wait-drained",
                "stop-old",
                "delay",
                "start-new",
                "wait-healthy",
                "edit",
                "reload",
                "wait-drained",
                "stop-old",
                "edit",
                "reload",
            ]
        );
        // Each new replica runs before its line is added and the old one drained.
        let Action::Edit { changes, .. } = &p.steps[2].action else {
            panic!("an edit")
        };
        assert!(
            matches!(&changes[0], ServerChange::Pin { server, lines } if server == "web:8000" && lines.len() == 3)
        );
        assert_eq!(
            changes[1..],
            [
                ServerChange::Add {
                    server: "web:8000".into(),
                    address: "p_web_4:8000".into(),
                    slot: "p_web_1:8000".into(),
                    completes: false,
                },
                ServerChange::Drain {
                    server: "p_web_1:8000".into()
                },
            ]
        );
        let configs = replay(&p);
        assert!(
            configs[0].contains("    server p_web_1:8000 max_fails=2 down; # nginx-rollout pin: web:8000\n    server p_web_2:8000 max_fails=2; # nginx-rollout pin: web:8000\n    server p_web_3:8000 max_fails=2; # nginx-rollout pin: web:8000\n    server p_web_4:8000 max_fails=2; # nginx-rollout pin: web:8000\n"),
            "{}",
            configs[0]
        );
        // The stopped replica's name no longer resolves: its line is buried in the next edit.
        assert!(
            configs[1].contains("server 192.0.2.1:8000 max_fails=2 down;"),
            "{}",
            configs[1]
        );
        assert!(
            configs[1].contains("server p_web_2:8000 max_fails=2 down;"),
            "{}",
            configs[1]
        );
        assert_eq!(
            configs.last().unwrap(),
            SEED000,
            "the operator's line comes back byte for byte"
        );
        assert_eq!(
            p.steps
                .iter()
                .filter(|s| s.action == Action::Reload)
                .count(),
            4,
            "N + 1 reloads"
        );
        assert!(
            p.steps.iter().filter(|s| s.diff.is_some()).all(|s| !s
                .diff
                .as_ref()
                .unwrap()
                .is_empty())
        );
    }

    #[test]
    fn stop_first_recreates_each_replica_on_its_own_line() {
        let p = run(
            set(
                &[("p_web_1", false), ("p_web_2", false), ("p_web_3", false)],
                &["p_web_1", "p_web_2", "p_web_3"],
            ),
            |p| p.parallelism.value = 2,
        );
        assert_eq!(
            kinds(&p),
            [
                "edit",
                "reload",
                "wait-drained",
                "recreate",
                "wait-healthy",
                "edit",
                "reload",
                "wait-drained",
                "recreate",
                "wait-healthy",
                "edit",
                "reload",
            ]
        );
        let configs = replay(&p);
        assert_eq!(
            configs[0].matches(" down;").count(),
            2,
            "parallelism 2 drains two at once:\n{}",
            configs[0]
        );
        assert_eq!(
            configs[1].matches(" down;").count(),
            1,
            "the first two back, the third drained:\n{}",
            configs[1]
        );
        assert_eq!(configs.last().unwrap(), SEED000);
        let renamed = rolling_update(
            &seed000(),
            "backend",
            &[],
            &[set(
                &[("p_web_1", false), ("p_web_2", false)],
                &["p_web_3", "p_web_4"],
            )],
            None,
            &policy(|_| {}),
            TIMEOUTS,
            None,
        );
        assert!(
            matches!(renamed, Err(PlanError::RenamedInPlace(_))),
            "{renamed:?}"
        );
    }

    #[test]
    fn a_dead_replica_gets_no_line_and_is_replaced_first() {
        let p = run(
            set(
                &[("p_web_1", false), ("p_web_2", true)],
                &["p_web_3", "p_web_2"],
            ),
            |p| p.order.value = Order::StartFirst,
        );
        let set = &p.sets[0];
        assert_eq!(
            set.key(&set.slots[0]),
            "p_web_2:8000",
            "the dead replica's slot first"
        );
        // nginx still sends requests to the dead replica's old address: the
        // line is pinned to the live ones and reloaded before anything else.
        assert_eq!(kinds(&p)[..3], ["edit", "reload", "start-new"]);
        let configs = replay(&p);
        assert!(
            configs[..2].iter().all(|c| !c.contains("p_web_2:8000")),
            "a dead replica is never written (a new p_web_2 comes later): {configs:#?}"
        );
        assert!(
            configs[0].contains("server p_web_1:8000 max_fails=2;"),
            "{}",
            configs[0]
        );
        assert!(configs[1].contains("server p_web_3:8000"), "{}", configs[1]);
        assert_eq!(configs.last().unwrap(), SEED000);
        let Some(Action::StopOld { servers }) = p
            .steps
            .iter()
            .map(|s| &s.action)
            .find(|a| matches!(a, Action::StopOld { .. }))
        else {
            panic!("{:?}", kinds(&p))
        };
        assert_eq!(
            servers[0].container, "p_web_2",
            "the dead container is removed"
        );
    }

    #[test]
    fn a_dead_server_is_pinned_to_nowhere_first_and_put_back_once_healthy() {
        let cfg = config(&["app1:3000 weight=2", "app2:3000"]);
        let mut dead = target("app1:3000");
        dead.dead = true;
        dead.pinned = Some("server app1:3000 weight=2;".into());
        let p = plan(
            &cfg,
            "apps",
            &[dead, target("app2:3000")],
            &policy(|_| {}),
            TIMEOUTS,
        )
        .unwrap();
        assert_eq!(
            kinds(&p)[..5],
            ["edit", "reload", "recreate", "wait-healthy", "edit"]
        );
        let diff = p.steps[0].diff.as_deref().unwrap();
        assert!(
            diff.contains(
                "+        server 192.0.2.1:3000 weight=2 down; # nginx-rollout pin: app1:3000"
            ),
            "{diff}"
        );
        let Action::Edit { changes, .. } = &p.steps[4].action else {
            panic!("{:?}", kinds(&p))
        };
        assert!(matches!(&changes[0], ServerChange::Unpin { server, .. } if server == "app1:3000"));
        assert_eq!(
            changes[1],
            ServerChange::Drain {
                server: "app2:3000".into()
            }
        );
    }

    #[test]
    fn a_replica_a_killed_run_drained_is_reloaded_and_waited_for_before_it_stops() {
        let mut config = seed000();
        let lines = ["p_web_1:8000", "p_web_2:8000"]
            .iter()
            .map(|a| crate::conf::PinnedLine {
                address: a.to_string(),
                down: *a == "p_web_1:8000",
            })
            .collect();
        config
            .apply("backend", "web", Edit::Pin(lines), EditOptions::default())
            .unwrap();
        let mut s = set(&[("p_web_1", false)], &[]);
        s.statement = "server web:8000 max_fails=2;".into();
        s.kept = vec![Replica {
            container: "p_web_2".into(),
            dead: false,
        }];
        let p = rolling_update(
            &config,
            "backend",
            &[],
            &[s],
            None,
            &policy(|p| p.order.value = Order::StartFirst),
            TIMEOUTS,
            None,
        )
        .unwrap();
        assert_eq!(
            kinds(&p),
            ["reload", "wait-drained", "stop-old", "edit", "reload"],
            "the drain may never have been loaded"
        );
    }

    #[test]
    fn scaling_up_adds_lines_and_scaling_down_drains_and_buries() {
        let up = run(set(&[("p_web_1", false)], &["p_web_2", "p_web_3"]), |p| {
            p.order.value = Order::StartFirst
        });
        let slots = &up.sets[0].slots;
        assert_eq!((slots.len(), slots[1].old.is_none()), (2, true));
        let configs = replay(&up);
        assert!(configs[1].contains("p_web_3:8000"), "{}", configs[1]);
        assert_eq!(configs.last().unwrap(), SEED000);

        let down = run(
            set(
                &[("p_web_1", false), ("p_web_2", false), ("p_web_3", false)],
                &["p_web_1", "p_web_2"],
            ),
            |_| {},
        );
        assert_eq!(
            kinds(&down)[kinds(&down).len() - 3..],
            ["stop-old", "edit", "reload"]
        );
        let configs = replay(&down);
        assert!(
            configs[2].contains("server p_web_3:8000 max_fails=2 down;"),
            "the removed replica is drained before it stops: {configs:#?}"
        );
        // No reload between its stop and the operator's line coming back.
        assert_eq!(configs.last().unwrap(), SEED000);
    }

    #[test]
    fn a_resumed_set_is_not_pinned_again_and_its_dead_lines_are_buried_first() {
        let mut config = seed000();
        config
            .apply(
                "backend",
                "web",
                Edit::Pin(
                    ["p_web_1:8000", "p_web_2:8000"]
                        .iter()
                        .map(|a| crate::conf::PinnedLine {
                            address: a.to_string(),
                            down: false,
                        })
                        .collect(),
                ),
                EditOptions::default(),
            )
            .unwrap();
        let mut s = set(
            &[("p_web_1", true), ("p_web_2", false)],
            &["p_web_1", "p_web_2"],
        );
        s.statement = "server web:8000 max_fails=2;".into();
        let p = rolling_update(
            &config,
            "backend",
            &[],
            &[s],
            None,
            &policy(|_| {}),
            TIMEOUTS,
            None,
        )
        .unwrap();
        let Action::Edit { changes, .. } = &p.steps[0].action else {
            panic!("{:?}", kinds(&p))
        };
        assert_eq!(
            changes[0],
            ServerChange::Bury {
                server: "p_web_1:8000".into()
            }
        );
        assert!(
            !changes
                .iter()
                .any(|c| matches!(c, ServerChange::Pin { .. }))
        );
    }
}

/// Planner tests of hook steps: where post-start, pre-stop and pre-deploy go.
mod hooks {
    use super::*;
    use crate::plan::{
        HookCommand, HookRun, Hooks, PreDeploy, Replica, ReplicaSet, ServerRef, Slot,
    };

    fn cmd(flag: &str, command: &str) -> HookCommand {
        HookCommand::from_flag(flag, command).unwrap()
    }

    fn both() -> Hooks {
        Hooks {
            post_start: vec![cmd("--post-start", "warm-up")],
            pre_stop: vec![cmd("--pre-stop", "drain-queue")],
        }
    }

    fn hooked(server: &str) -> Target {
        Target {
            hooks: both(),
            ..target(server)
        }
    }

    /// Each hook step as (kind, the containers it runs in).
    fn hook_steps(p: &super::super::Plan) -> Vec<(&'static str, Vec<String>)> {
        p.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::PostStart { runs, .. } | Action::PreStop { runs, .. } => Some((
                    s.action.kind(),
                    runs.iter().map(|r| r.server.container.clone()).collect(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stop_first_runs_pre_stop_after_the_drain_and_post_start_before_health() {
        let cfg = config(&["app1:3000", "app2:3000"]);
        let p = plan(
            &cfg,
            "apps",
            &[hooked("app1:3000"), target("app2:3000")],
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
                "pre-stop",
                "recreate",
                "post-start",
                "wait-healthy", // app1: its hooks
                "edit",
                "reload",
                "wait-drained",
                "recreate",
                "wait-healthy", // app2 has none: no hook step
                "edit",
                "reload"
            ]
        );
        let Action::PreStop { runs, timeout } = &p.steps[3].action else {
            panic!()
        };
        assert_eq!(*timeout, Timeouts::DEFAULT.hook);
        assert_eq!(
            runs,
            &[HookRun {
                server: ServerRef {
                    server: "app1:3000".into(),
                    container: "app1-c".into(),
                    address: "app1:3000".into()
                },
                commands: both().pre_stop
            }]
        );
        assert_eq!(
            p.steps[3].action.to_string(),
            "in app1-c: `drain-queue` (flag --pre-stop) (timeout 1m each)"
        );
    }

    #[test]
    fn start_first_runs_post_start_in_the_replacement_and_pre_stop_in_the_old_one() {
        let cfg = config(&["app1:3000"]);
        let mut t = hooked("app1:3000");
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
                "post-start",
                "wait-healthy",
                "edit",
                "reload",
                "wait-drained",
                "pre-stop",
                "stop-old"
            ]
        );
        assert_eq!(
            hook_steps(&p),
            [
                ("post-start", vec!["app1-c-b".to_string()]),
                ("pre-stop", vec!["app1-c".to_string()])
            ]
        );
    }

    #[test]
    fn a_batch_runs_its_hooks_in_one_step_and_a_dead_container_gets_no_pre_stop() {
        let cfg = config(&["app1:3000", "app2:3000", "app3:3000", "app4:3000"]);
        let mut dead = hooked("app4:3000");
        dead.dead = true;
        let p = plan(
            &cfg,
            "apps",
            &[
                hooked("app1:3000"),
                hooked("app2:3000"),
                hooked("app3:3000"),
                dead,
            ],
            &policy(|c| c.parallelism.value = 2),
            TIMEOUTS,
        )
        .unwrap();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            hook_steps(&p),
            [
                // The dead one first, alone (no nginx -t before it runs): nothing to stop.
                ("post-start", names(&["app4-c"])),
                ("pre-stop", names(&["app1-c", "app2-c"])),
                ("post-start", names(&["app1-c", "app2-c"])),
                ("pre-stop", names(&["app3-c"])),
                ("post-start", names(&["app3-c"])),
            ]
        );
    }

    #[test]
    fn pre_deploy_is_the_first_step_before_any_edit() {
        let cfg = config(&["app1:3000", "app2:3000"]);
        let mut dead = target("app2:3000");
        dead.dead = true;
        dead.pinned = Some("server app2:3000;".into());
        let job = PreDeploy {
            command: cmd("--pre-deploy", "sh -c 'migrate --all'"),
            server: "app1:3000".into(),
            container: "app1-c-nr-pre-deploy".into(),
            image: "app:v2".into(),
        };
        let p = rolling_update(
            &cfg,
            "apps",
            &[target("app1:3000"), dead],
            &[],
            Some(&job),
            &policy(|_| {}),
            TIMEOUTS,
            None,
        )
        .unwrap();
        assert_eq!(
            kinds(&p)[..3],
            ["pre-deploy", "edit", "reload"],
            "before the burial of the dead server's line"
        );
        let Action::PreDeploy {
            job: planned,
            timeout,
        } = &p.steps[0].action
        else {
            panic!()
        };
        assert_eq!((planned, *timeout), (&job, Timeouts::DEFAULT.pre_deploy));
        assert_eq!(
            p.steps[0].action.to_string(),
            "run `sh -c 'migrate --all'` (flag --pre-deploy) once in a one-off container \
             app1-c-nr-pre-deploy of app1:3000's new spec (app:v2), timeout 10m"
        );
        assert_eq!(
            kinds(&p).iter().filter(|k| **k == "pre-deploy").count(),
            1,
            "once, whatever the number of servers"
        );
    }

    #[test]
    fn plans_with_hooks_round_trip_through_the_journal() {
        let cfg = config(&["app1:3000", "app2:3000"]);
        let p = plan(
            &cfg,
            "apps",
            &[hooked("app1:3000"), hooked("app2:3000")],
            &policy(|_| {}),
            TIMEOUTS,
        )
        .unwrap();
        let back: super::super::Plan =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        // A plan of an earlier version, without hook timeouts, loads with the defaults.
        let old = r#"{"drain":"30s","health":"1m"}"#;
        let t: Timeouts = serde_json::from_str(old).unwrap();
        assert_eq!(t, TIMEOUTS);
    }

    fn set(order: &[(&str, bool)], new: &[&str]) -> ReplicaSet {
        ReplicaSet {
            server: "web:8000".into(),
            statement: "server web:8000;".into(),
            kept: Vec::new(),
            slots: (0..order.len().max(new.len()))
                .map(|i| Slot {
                    old: order.get(i).map(|(c, dead)| Replica {
                        container: c.to_string(),
                        dead: *dead,
                    }),
                    new: new.get(i).map(|n| n.to_string()),
                })
                .collect(),
            via: None,
            hooks: both(),
        }
    }

    fn set_plan(s: ReplicaSet, order: Order) -> super::super::Plan {
        let path = "/etc/nginx/conf.d/default.conf";
        let cfg = ConfigSet::load_single(
            Path::new(path),
            &MemFs::one(path, "upstream backend {\n    server web:8000;\n}\n"),
        )
        .unwrap();
        rolling_update(
            &cfg,
            "backend",
            &[],
            &[s],
            None,
            &policy(|c| c.order.value = order),
            TIMEOUTS,
            None,
        )
        .unwrap()
    }

    #[test]
    fn replica_sets_run_hooks_around_each_replica_in_both_orders() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let start_first = set_plan(
            set(
                &[("p_web_1", false), ("p_web_2", false)],
                &["p_web_3", "p_web_1"],
            ),
            Order::StartFirst,
        );
        assert_eq!(
            hook_steps(&start_first),
            [
                ("post-start", names(&["p_web_3"])),
                ("pre-stop", names(&["p_web_1"])),
                ("post-start", names(&["p_web_1"])),
                ("pre-stop", names(&["p_web_2"])),
            ]
        );
        let k = kinds(&start_first);
        assert_eq!(
            k[..3],
            ["start-new", "post-start", "wait-healthy"],
            "post-start before health: {k:?}"
        );
        let pre_stop = k.iter().position(|k| *k == "pre-stop").unwrap();
        assert_eq!(
            k[pre_stop - 1..=pre_stop + 1],
            ["wait-drained", "pre-stop", "stop-old"]
        );

        // Stop-first, scaling down from three to two with the first replica
        // dead: no pre-stop in the dead one, the removed one's right before it stops.
        let stop_first = set_plan(
            set(
                &[("p_web_1", true), ("p_web_2", false), ("p_web_3", false)],
                &["p_web_1", "p_web_2"],
            ),
            Order::StopFirst,
        );
        assert_eq!(
            hook_steps(&stop_first),
            [
                ("post-start", names(&["p_web_1"])),
                ("pre-stop", names(&["p_web_2"])),
                ("post-start", names(&["p_web_2"])),
                ("pre-stop", names(&["p_web_3"])),
            ]
        );
        let k = kinds(&stop_first);
        let last_stop = k.iter().rposition(|k| *k == "stop-old").unwrap();
        assert_eq!(k[last_stop - 1], "pre-stop", "{k:?}");
        let recreate = k.iter().rposition(|k| *k == "recreate").unwrap();
        assert_eq!(
            k[recreate - 1..=recreate + 2],
            ["pre-stop", "recreate", "post-start", "wait-healthy"],
            "{k:?}"
        );
    }

    #[test]
    fn parallel_replica_slots_share_one_hook_step() {
        let p = {
            let path = "/etc/nginx/conf.d/default.conf";
            let cfg = ConfigSet::load_single(
                Path::new(path),
                &MemFs::one(path, "upstream backend {\n    server web:8000;\n}\n"),
            )
            .unwrap();
            rolling_update(
                &cfg,
                "backend",
                &[],
                &[set(
                    &[("p_web_1", false), ("p_web_2", false)],
                    &["p_web_3", "p_web_4"],
                )],
                None,
                &policy(|c| {
                    c.order.value = Order::StartFirst;
                    c.parallelism.value = 2;
                }),
                TIMEOUTS,
                None,
            )
            .unwrap()
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            hook_steps(&p),
            [
                ("post-start", names(&["p_web_3", "p_web_4"])),
                ("pre-stop", names(&["p_web_1", "p_web_2"])),
            ]
        );
    }
}

mod canary {
    use super::*;
    use crate::plan::canary::{LineWeight, Ramp};
    use crate::plan::policy::Setting;
    use crate::plan::{Canary, FailureAction, Gate, Share};

    fn ramp_policy(shares: &[u8], gate: Option<Gate>) -> UpdateConfig {
        policy(|c| {
            c.canary = Some(Setting {
                value: Canary {
                    shares: shares.iter().map(|&p| Share::new(p).unwrap()).collect(),
                    gate,
                },
                source: crate::plan::policy::Source::Flag("--canary-weights".into()),
            })
        })
    }

    /// The weight each line is written with after every edit of `p`, replayed on `cfg`.
    fn weights_after_each_edit(cfg: &ConfigSet, p: &super::super::Plan) -> Vec<Vec<(String, u32)>> {
        let mut live = cfg.clone();
        let mut out = Vec::new();
        for step in &p.steps {
            if let Action::Edit { changes, .. } = &step.action {
                super::super::planner::apply_changes(&mut live, "apps", changes).unwrap();
                let up = live.upstream("apps").unwrap();
                out.push(
                    up.servers
                        .iter()
                        .filter(|s| s.is_live())
                        .map(|s| {
                            let w = s.params.iter().find_map(|p| match p {
                                crate::conf::Param::Weight(w) => Some(*w),
                                _ => None,
                            });
                            (s.address.clone(), w.unwrap_or(1))
                        })
                        .collect(),
                );
            }
        }
        out
    }

    /// The canary's share of round-robin traffic with these weights, in percent.
    fn share_of(first: &str, weights: &[(String, u32)]) -> f64 {
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        let mine = weights.iter().find(|(s, _)| s == first).unwrap().1;
        f64::from(mine) * 100.0 / f64::from(total)
    }

    #[test]
    fn each_share_is_an_edit_a_reload_and_a_hold_then_the_weights_go_back() {
        let cfg = config(&["app1:3000", "app2:3000"]);
        let hold = Gate::Delay {
            duration: Duration::from_secs(30),
        };
        let p = plan(
            &cfg,
            "apps",
            &[target("app1:3000"), target("app2:3000")],
            &ramp_policy(&[10, 50], Some(hold)),
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
                "wait-healthy", // app1, the canary
                "edit",
                "reload",
                "wait-drained",
                "canary", // back at 10 %
                "edit",
                "reload",
                "wait-drained",
                "canary", // 50 %
                "edit",
                "reload",
                "wait-drained",
                "recreate",
                "wait-healthy", // the weights back, app2 drained in the same reload
                "edit",
                "reload"
            ]
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
                ServerChange::Weight {
                    server: "app1:3000".into(),
                    weight: Some(1)
                },
                ServerChange::Weight {
                    server: "app2:3000".into(),
                    weight: Some(9)
                },
            ],
            "10 %: 1 against 9"
        );
        let diff = p.steps[5].diff.as_deref().unwrap();
        for line in [
            "-        server app1:3000 down;\n",
            "-        server app2:3000;\n",
            "+        server app1:3000 weight=1;\n",
            "+        server app2:3000 weight=9;\n",
        ] {
            assert!(diff.contains(line), "{line:?} not in:\n{diff}");
        }
        let Action::Canary {
            server,
            share,
            gate,
        } = &p.steps[8].action
        else {
            panic!()
        };
        assert_eq!(
            (
                server.server.as_str(),
                server.container.as_str(),
                share.percent(),
                *gate
            ),
            ("app1:3000", "app1-c", 10, hold)
        );
        let Action::Edit { changes, .. } = &p.steps[13].action else {
            panic!()
        };
        assert_eq!(
            changes,
            &[
                ServerChange::Weight {
                    server: "app1:3000".into(),
                    weight: None
                },
                ServerChange::Weight {
                    server: "app2:3000".into(),
                    weight: None
                },
                ServerChange::Drain {
                    server: "app2:3000".into()
                },
            ]
        );
        let mut live = cfg.clone();
        for step in &p.steps {
            if let Action::Edit { changes, .. } = &step.action {
                super::super::planner::apply_changes(&mut live, "apps", changes).unwrap();
            }
        }
        assert!(
            live.changes_since(&cfg).is_empty(),
            "every weight back byte for byte"
        );
        assert_eq!(
            p.ramp,
            Some(Ramp {
                server: "app1:3000".into(),
                weights: vec![
                    LineWeight {
                        server: "app1:3000".into(),
                        weight: None
                    },
                    LineWeight {
                        server: "app2:3000".into(),
                        weight: None
                    }
                ]
            })
        );
    }

    #[test]
    fn the_weights_give_the_canary_exactly_its_share_whatever_the_others_weigh() {
        let cfg = config(&[
            "app1:3000",
            "app2:3000 weight=2",
            "app3:3000 weight=5 max_fails=3",
            "app4:3000 backup",
            "app5:3000 down",
        ]);
        let p = plan(
            &cfg,
            "apps",
            &[target("app1:3000")],
            &ramp_policy(&[1, 10, 33, 50, 99], None),
            TIMEOUTS,
        )
        .unwrap();
        let seen = weights_after_each_edit(&cfg, &p);
        // The drain, five shares, the weights back (the canary's own restore
        // rides on the first share).
        assert_eq!(seen.len(), 7, "{seen:?}");
        for (weights, want) in seen[1..6].iter().zip([1.0, 10.0, 33.0, 50.0, 99.0]) {
            let got = share_of("app1:3000", weights);
            assert!(
                (got - want).abs() < 1e-9,
                "{want} %: {weights:?} gives {got}"
            );
        }
        assert_eq!(
            seen[1],
            [
                ("app1:3000".to_string(), 7),
                ("app2:3000".to_string(), 198),
                ("app3:3000".to_string(), 495)
            ],
            "1 %: 1·7 against 99·(2+5), the backup and the down line untouched"
        );
        let mut live = cfg.clone();
        for step in &p.steps {
            if let Action::Edit { changes, .. } = &step.action {
                super::super::planner::apply_changes(&mut live, "apps", changes).unwrap();
            }
        }
        assert!(
            live.changes_since(&cfg).is_empty(),
            "weight=2 and weight=5 back as written"
        );
    }

    #[test]
    fn weights_a_share_would_take_past_nginx_s_largest_are_an_error_not_a_wrap() {
        // 99 % against 2147483647 + 1: the canary's line needs 99 × 2147483648
        // (nothing divides the three), past nginx's largest weight and a u32.
        let cfg = config(&["app1:3000", "app2:3000 weight=2147483647", "app3:3000"]);
        let err = plan(
            &cfg,
            "apps",
            &[target("app1:3000")],
            &ramp_policy(&[99], None),
            TIMEOUTS,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("99% for app1:3000 needs a weight above nginx's largest (2147483647)"),
            "{err}"
        );
        // Against 2147483647 alone the products share it as a divisor: 99 and 1.
        let cfg = config(&["app1:3000", "app2:3000 weight=2147483647"]);
        let p = plan(
            &cfg,
            "apps",
            &[target("app1:3000")],
            &ramp_policy(&[99], None),
            TIMEOUTS,
        )
        .unwrap();
        assert_eq!(
            weights_after_each_edit(&cfg, &p)[1],
            [("app1:3000".to_string(), 99), ("app2:3000".to_string(), 1)]
        );
    }

    #[test]
    fn the_canary_goes_alone_and_the_others_follow_in_batches() {
        let servers = ["app1:3000", "app2:3000", "app3:3000", "app4:3000"];
        let cfg = config(&servers);
        let p = plan(
            &cfg,
            "apps",
            &servers.map(target),
            &ramp_policy(&[25], None),
            TIMEOUTS,
        )
        .unwrap();
        let batches: Vec<usize> = p
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Recreate { servers } => Some(servers.len()),
                _ => None,
            })
            .collect();
        assert_eq!(batches, [1, 1, 1, 1], "parallelism 1");
        let mut par = ramp_policy(&[25], None);
        par.parallelism.value = 3;
        let p = plan(&cfg, "apps", &servers.map(target), &par, TIMEOUTS).unwrap();
        let batches: Vec<Vec<String>> = p
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Recreate { servers } => {
                    Some(servers.iter().map(|s| s.server.clone()).collect())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            batches,
            [
                vec!["app1:3000".to_string()],
                vec!["app2:3000".into(), "app3:3000".into(), "app4:3000".into()]
            ]
        );
        // Without a gate, each share is held for the monitor window.
        let Some(Action::Canary { gate, .. }) = p
            .steps
            .iter()
            .map(|s| &s.action)
            .find(|a| matches!(a, Action::Canary { .. }))
        else {
            panic!()
        };
        assert_eq!(
            *gate,
            Gate::Delay {
                duration: par.monitor.value
            }
        );
    }

    #[test]
    fn the_canary_is_the_first_server_that_serves() {
        let cfg = config(&["app1:3000 down", "app2:3000", "app3:3000"]);
        let p = plan(
            &cfg,
            "apps",
            &[
                target("app1:3000"),
                target("app2:3000"),
                target("app3:3000"),
            ],
            &ramp_policy(&[10], Some(Gate::Pause)),
            TIMEOUTS,
        )
        .unwrap();
        assert_eq!(p.ramp.as_ref().unwrap().server, "app2:3000");
        let recreated: Vec<String> = p
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Recreate { servers } => Some(servers[0].server.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            recreated,
            ["app1:3000", "app2:3000", "app3:3000"],
            "the operator's down server first (no traffic), then the canary"
        );
        let all_down = config(&["app1:3000 down", "app2:3000"]);
        let err = plan(
            &all_down,
            "apps",
            &[target("app1:3000")],
            &ramp_policy(&[10], None),
            TIMEOUTS,
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::CanaryNothingServes(_)), "{err}");
    }

    #[test]
    fn start_first_and_replica_sets_are_refused_with_the_reason() {
        let cfg = config(&["app1:3000", "app2:3000"]);
        let mut t = target("app1:3000");
        t.replacement = Some("app1-c-b".into());
        let mut start_first = ramp_policy(&[10], None);
        start_first.order.value = Order::StartFirst;
        let err = plan(&cfg, "apps", &[t], &start_first, TIMEOUTS).unwrap_err();
        assert!(matches!(err, PlanError::CanaryStartFirst), "{err}");
        assert!(err.to_string().contains("--order stop-first"), "{err}");

        let set = crate::plan::ReplicaSet {
            server: "app2:3000".into(),
            statement: String::new(),
            kept: Vec::new(),
            slots: vec![crate::plan::Slot {
                old: Some(crate::plan::Replica {
                    container: "a".into(),
                    dead: false,
                }),
                new: Some("a".into()),
            }],
            via: None,
            hooks: Default::default(),
        };
        let err = rolling_update(
            &cfg,
            "apps",
            &[target("app1:3000")],
            &[set],
            None,
            &ramp_policy(&[10], None),
            TIMEOUTS,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::CanaryReplicaSet(_)), "{err}");
        assert!(err.to_string().contains("replica set"), "{err}");
    }

    #[test]
    fn a_plan_that_continues_a_cut_ramp_puts_the_weights_back_first() {
        // Paused after the canary (app1) failed at 10 %: the others kept their ramp weight.
        let cfg = config(&[
            "app1:3000 down",
            "app2:3000 weight=9",
            "app3:3000 weight=27",
        ]);
        let ramp = Ramp {
            server: "app1:3000".into(),
            weights: vec![
                LineWeight {
                    server: "app1:3000".into(),
                    weight: None,
                },
                LineWeight {
                    server: "app2:3000".into(),
                    weight: None,
                },
                LineWeight {
                    server: "app3:3000".into(),
                    weight: Some(3),
                },
            ],
        };
        let mut canary = target("app1:3000");
        canary.drained_by_us = true;
        let mut pol = ramp_policy(&[10], None);
        pol.failure_action.value = FailureAction::Pause;
        let p = rolling_update(
            &cfg,
            "apps",
            &[canary.clone(), target("app2:3000")],
            &[],
            None,
            &pol,
            TIMEOUTS,
            Some(&ramp),
        )
        .unwrap();
        let Action::Edit { changes, .. } = &p.steps[0].action else {
            panic!("{:?}", kinds(&p))
        };
        assert_eq!(
            changes,
            &[
                ServerChange::Weight {
                    server: "app2:3000".into(),
                    weight: None
                },
                ServerChange::Weight {
                    server: "app3:3000".into(),
                    weight: Some(3)
                },
            ]
        );
        assert_eq!(p.ramp.as_ref(), Some(&ramp), "the same weights to put back");
        assert_eq!(
            p.steps
                .iter()
                .filter(|s| matches!(s.action, Action::Canary { .. }))
                .count(),
            1,
            "the canary ramps again"
        );
        // Undone instead (no ramp in the rollback's policy): only the weights back.
        let p = rolling_update(
            &cfg,
            "apps",
            &[canary],
            &[],
            None,
            &policy(|_| {}),
            TIMEOUTS,
            Some(&ramp),
        )
        .unwrap();
        assert!(
            !p.steps
                .iter()
                .any(|s| matches!(s.action, Action::Canary { .. })),
            "{:?}",
            kinds(&p)
        );
        assert!(
            p.steps[0]
                .diff
                .as_deref()
                .unwrap()
                .contains("+        server app3:3000 weight=3;")
        );
    }

    #[test]
    fn a_run_stopped_between_two_holds_is_inside_its_ramp() {
        let cfg = config(&["app1:3000", "app2:3000"]);
        let p = plan(
            &cfg,
            "apps",
            &[target("app1:3000"), target("app2:3000")],
            &ramp_policy(&[10, 50], Some(Gate::Pause)),
            TIMEOUTS,
        )
        .unwrap();
        let holds: Vec<usize> = (0..p.steps.len())
            .filter(|&i| matches!(p.steps[i].action, Action::Canary { .. }))
            .collect();
        let restore = holds[1] + 1;
        assert!(!p.ramp_underway(|i| i < holds[0]), "before the first hold");
        assert!(p.ramp_underway(|i| i <= holds[0]), "paused at 10 %");
        assert!(p.ramp_underway(|i| i <= holds[1]), "paused at 50 %");
        assert!(!p.ramp_underway(|i| i <= restore), "weights back");
        let no_ramp = plan(
            &cfg,
            "apps",
            &[target("app1:3000")],
            &policy(|_| {}),
            TIMEOUTS,
        )
        .unwrap();
        assert!(!no_ramp.ramp_underway(|_| true));
    }
}

mod line_edits {
    use super::*;
    use crate::plan::{LineEdit, revert_lines, single_edit};

    const WAIT: Duration = Duration::from_secs(7);

    #[test]
    fn weight_add_and_remove_are_an_edit_a_reload_and_the_old_workers_wait() {
        let cfg = config(&["app1:3000", "app2:3000 max_fails=3"]);
        let weight = single_edit(&cfg, "apps", "app2", LineEdit::Weight(5), false, WAIT).unwrap();
        assert_eq!(kinds(&weight), ["edit", "reload", "wait-drained"]);
        assert!(
            matches!(weight.steps[2].action, Action::WaitDrained { timeout } if timeout == WAIT)
        );
        assert!(weight.line_only());
        let diff = weight.steps[0].diff.as_deref().unwrap();
        assert!(
            diff.contains(
                "-        server app2:3000 max_fails=3;\n+        server app2:3000 weight=5 max_fails=3;\n"
            ),
            "{diff}"
        );
        let add = single_edit(
            &cfg,
            "apps",
            "app3:3000",
            LineEdit::Add(vec!["weight=2".into(), "backup".into()]),
            false,
            WAIT,
        )
        .unwrap();
        let diff = add.steps[0].diff.as_deref().unwrap();
        assert!(
            diff.contains(
                "         server app2:3000 max_fails=3;\n+        server app3:3000 weight=2 backup;\n     }"
            ),
            "indented like the line before it: {diff}"
        );
        let remove = single_edit(&cfg, "apps", "app1", LineEdit::Remove, false, WAIT).unwrap();
        assert_eq!(
            remove.steps[0].action,
            Action::Edit {
                upstream: "apps".into(),
                changes: vec![ServerChange::Remove {
                    server: "app1:3000".into()
                }],
                force: false
            }
        );
        let undrain = single_edit(&cfg, "apps", "app1", LineEdit::Undrain, false, WAIT).unwrap();
        assert_eq!(
            kinds(&undrain),
            ["edit", "reload"],
            "putting one back takes nothing away"
        );
    }

    #[test]
    fn bad_edits_are_refused_before_anything_runs() {
        let cfg = config(&["app1:3000", "app2:3000 down"]);
        let last = single_edit(&cfg, "apps", "app1", LineEdit::Remove, false, WAIT).unwrap_err();
        assert!(last.to_string().contains("last live server"), "{last}");
        assert!(single_edit(&cfg, "apps", "app1", LineEdit::Remove, true, WAIT).is_ok());
        let zero = single_edit(&cfg, "apps", "app1", LineEdit::Weight(0), false, WAIT).unwrap_err();
        assert!(zero.to_string().contains("invalid weight 0"), "{zero}");
        let unknown =
            single_edit(&cfg, "apps", "app9", LineEdit::Weight(2), false, WAIT).unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("available: app1:3000, app2:3000"),
            "{unknown}"
        );
        let bad = single_edit(
            &cfg,
            "apps",
            "app3:3000;",
            LineEdit::Add(Vec::new()),
            false,
            WAIT,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("must be one bare word"), "{bad}");
    }

    #[test]
    fn a_revert_puts_the_lines_back_only_over_what_the_edit_left() {
        let before = config(&["app1:3000", "app2:3000"]);
        let removed = config(&["app1:3000"]);
        let (b, a) = (
            before.upstream("apps").unwrap().body,
            removed.upstream("apps").unwrap().body,
        );
        let p = revert_lines(&removed, "apps", &a, &b, WAIT).unwrap();
        assert_eq!(kinds(&p), ["edit", "reload", "wait-drained"]);
        let mut live = removed.clone();
        let Action::Edit { changes, .. } = &p.steps[0].action else {
            panic!()
        };
        super::super::planner::apply_changes(&mut live, "apps", changes).unwrap();
        assert!(live.changes_since(&before).is_empty(), "byte for byte");

        let edited_since = config(&["app1:3000 weight=4"]);
        let err = revert_lines(&edited_since, "apps", &a, &b, WAIT).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("changed since")
                && text.contains("server app1:3000 weight=4;")
                && text.contains(":3:9"),
            "names the line that differs and where: {text}"
        );
    }
}
