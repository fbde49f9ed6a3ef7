//! Replica sets: one `server` line, several containers, rolled one replica
//! at a time on pinned lines.
use super::*;
use crate::conf::{Edit, EditOptions, PinnedLine};

const SEED000: &str = "upstream backend {\n    # web is the compose service\n    server web:8000 max_fails=2;\n}\n\nserver {\n    listen 80;\n    location / { proxy_pass http://backend; }\n}\n";

fn seed000() -> ConfigSet {
    load(CONF_D, SEED000)
}

/// [`SEED000`] as a run of ours left it: `web:8000` pinned to `lines`
/// (address, down).
fn pinned(lines: &[(&str, bool)]) -> ConfigSet {
    let mut config = seed000();
    let lines = lines
        .iter()
        .map(|(address, down)| PinnedLine {
            address: address.to_string(),
            down: *down,
        })
        .collect();
    config
        .apply("backend", "web", Edit::Pin(lines), EditOptions::default())
        .unwrap();
    config
}

/// `set` resumed on [`pinned`] lines: the operator's statement it puts back.
fn resumed(set: ReplicaSet) -> ReplicaSet {
    ReplicaSet {
        statement: "server web:8000 max_fails=2;".into(),
        ..set
    }
}

/// The plan of `set` on [`SEED000`] under the policy `f` makes.
fn run(set: ReplicaSet, f: impl FnOnce(&mut UpdateConfig)) -> Plan {
    plan_set(&seed000(), set, &policy(f)).unwrap()
}

/// Seed 000's three replicas replaced start-first by a new one and two
/// recreated under their names, a second apart.
fn three_by_one_start_first() -> Plan {
    run(
        replica_set(
            &[("p_web_1", false), ("p_web_2", false), ("p_web_3", false)],
            &["p_web_4", "p_web_1", "p_web_2"],
        ),
        |p| {
            p.order.value = Order::StartFirst;
            p.delay.value = Duration::from_secs(1);
        },
    )
}

/// The bytes of [`SEED000`] after each edit of `plan` (see [`replay`]).
fn texts(plan: &Plan) -> Vec<String> {
    replay(&seed000(), plan)
        .iter()
        .map(|c| String::from_utf8(c.files().next().unwrap().1.to_vec()).unwrap())
        .collect()
}

#[test]
fn start_first_replicas_stop_inside_the_delay_and_the_last_before_the_unpin() {
    let p = three_by_one_start_first();
    // Between the stop and the delay, the stopped replica's line is buried
    // (an edit with no reload): the delay still counts from the stop.
    assert_eq!(delays(&p), [("edit", true); 2]);
    for (i, step) in p.steps.iter().enumerate() {
        if step.action.kind() == "delay" {
            assert_eq!(p.steps[i - 2].action.kind(), "stop-old");
            assert!(
                changes_at(&p, i - 1)
                    .iter()
                    .all(|c| matches!(c, ServerChange::Bury { .. }))
            );
        }
    }
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
    let p = three_by_one_start_first();
    assert_eq!(
        kinds(&p),
        in_order(&[
            &START_FIRST_BATCH,
            &["edit", "delay"],
            &START_FIRST_BATCH,
            &["edit", "delay"],
            &START_FIRST_BATCH,
            // The last replica watched for the delay and a second (Swarm's).
            &["edit", "reload", "monitor"],
        ])
    );
    // Each new replica runs before its line is added and the old one drained.
    let changes = changes_at(&p, 2);
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
    let configs = texts(&p);
    assert!(
        configs[0].contains("    server p_web_1:8000 max_fails=2 down; # nginx-rollout pin: web:8000\n    server p_web_2:8000 max_fails=2; # nginx-rollout pin: web:8000\n    server p_web_3:8000 max_fails=2; # nginx-rollout pin: web:8000\n    server p_web_4:8000 max_fails=2; # nginx-rollout pin: web:8000\n"),
        "{}",
        configs[0]
    );
    // The stopped replica's name no longer resolves: its line is buried at
    // once, without a reload; the next edit drains the next replica.
    assert!(
        configs[1].contains("server 192.0.2.1:8000 max_fails=2 down;")
            && configs[1].contains("server p_web_2:8000 max_fails=2;"),
        "{}",
        configs[1]
    );
    assert!(
        configs[2].contains("server p_web_2:8000 max_fails=2 down;"),
        "{}",
        configs[2]
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
        p.steps
            .iter()
            .filter(|s| s.diff.is_some())
            .all(|s| !s.diff.as_ref().unwrap().is_empty())
    );
}

#[test]
fn stop_first_recreates_each_replica_on_its_own_line() {
    let p = run(
        replica_set(
            &[("p_web_1", false), ("p_web_2", false), ("p_web_3", false)],
            &["p_web_1", "p_web_2", "p_web_3"],
        ),
        |p| p.parallelism.value = 2,
    );
    assert_eq!(
        kinds(&p),
        in_order(&[&STOP_FIRST_BATCH, &STOP_FIRST_BATCH, &["edit", "reload"]])
    );
    let configs = texts(&p);
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
    let renamed = plan_set(
        &seed000(),
        replica_set(
            &[("p_web_1", false), ("p_web_2", false)],
            &["p_web_3", "p_web_4"],
        ),
        &policy(|_| {}),
    );
    assert!(
        matches!(renamed, Err(PlanError::RenamedInPlace(_))),
        "{renamed:?}"
    );
}

#[test]
fn stop_first_puts_each_replica_back_before_the_delay_or_with_the_next_drain() {
    let three = || {
        replica_set(
            &[("p_web_1", false), ("p_web_2", false), ("p_web_3", false)],
            &["p_web_1", "p_web_2", "p_web_3"],
        )
    };
    let reloads = |p: &Plan| {
        p.steps
            .iter()
            .filter(|s| s.action == Action::Reload)
            .count()
    };
    let p = run(three(), |p| p.delay.value = Duration::from_secs(1));
    assert_eq!(
        kinds(&p),
        in_order(&[
            &STOP_FIRST_BATCH,
            &["edit", "reload", "delay"],
            &STOP_FIRST_BATCH,
            &["edit", "reload", "delay"],
            &STOP_FIRST_BATCH,
            // The last batch watched for the delay and a second, as Swarm does.
            &["edit", "reload", "monitor"],
        ])
    );
    let configs = texts(&p);
    for i in [1, 3] {
        assert!(
            !configs[i].contains(" down;"),
            "every replica serves during the delay:\n{}",
            configs[i]
        );
    }
    assert_eq!(configs.last().unwrap(), SEED000);
    assert_eq!(reloads(&p), 6, "a drain and a restore per batch, the unpin");
    // No delay: each restore rides on the next drain.
    let p = run(three(), |_| {});
    assert_eq!(
        kinds(&p),
        in_order(&[
            &STOP_FIRST_BATCH,
            &STOP_FIRST_BATCH,
            &STOP_FIRST_BATCH,
            &["edit", "reload"],
        ])
    );
    assert_eq!(reloads(&p), 4, "N + 1 reloads");
}

#[test]
fn a_dead_replica_gets_no_line_and_is_replaced_first() {
    let p = run(
        replica_set(
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
    let configs = texts(&p);
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
fn a_replica_a_killed_run_drained_is_reloaded_and_waited_for_before_it_stops() {
    let config = pinned(&[("p_web_1:8000", true), ("p_web_2:8000", false)]);
    let mut s = resumed(replica_set(&[("p_web_1", false)], &[]));
    s.kept = vec![Replica {
        container: "p_web_2".into(),
        dead: false,
    }];
    let p = plan_set(&config, s, &policy(|p| p.order.value = Order::StartFirst)).unwrap();
    assert_eq!(
        kinds(&p),
        ["reload", "wait-drained", "stop-old", "edit", "reload"],
        "the drain may never have been loaded"
    );
}

#[test]
fn scaling_up_adds_lines_and_scaling_down_drains_and_buries() {
    let up = run(
        replica_set(&[("p_web_1", false)], &["p_web_2", "p_web_3"]),
        |p| p.order.value = Order::StartFirst,
    );
    let slots = &up.sets[0].slots;
    assert_eq!((slots.len(), slots[1].old.is_none()), (2, true));
    let configs = texts(&up);
    assert!(
        configs[1].contains("server 192.0.2.1:8000 max_fails=2 down;"),
        "p_web_1's line buried once it stopped: {}",
        configs[1]
    );
    assert!(configs[2].contains("p_web_3:8000"), "{}", configs[2]);
    assert_eq!(configs.last().unwrap(), SEED000);

    let down = run(
        replica_set(
            &[("p_web_1", false), ("p_web_2", false), ("p_web_3", false)],
            &["p_web_1", "p_web_2"],
        ),
        |_| {},
    );
    assert_eq!(
        kinds(&down)[kinds(&down).len() - 3..],
        ["stop-old", "edit", "reload"]
    );
    let configs = texts(&down);
    assert!(
        configs[2].contains("server p_web_3:8000 max_fails=2 down;"),
        "the removed replica is drained before it stops: {configs:#?}"
    );
    // No reload between its stop and the operator's line coming back.
    assert_eq!(configs.last().unwrap(), SEED000);
}

#[test]
fn a_resumed_set_is_not_pinned_again_and_its_dead_lines_are_buried_first() {
    let config = pinned(&[("p_web_1:8000", false), ("p_web_2:8000", false)]);
    let s = resumed(replica_set(
        &[("p_web_1", true), ("p_web_2", false)],
        &["p_web_1", "p_web_2"],
    ));
    let p = plan_set(&config, s, &policy(|_| {})).unwrap();
    let changes = changes_at(&p, 0);
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

#[test]
fn an_undone_set_buries_every_pinned_line_whose_replica_is_gone_before_its_first_reload() {
    // What a start-first run paused by a monitor failure leaves: p_web_1
    // drained and removed (its line not buried yet), its replacement p_web_4
    // added, then dead; p_web_2 and p_web_3 still serve.
    let config = pinned(&[
        ("p_web_1:8000", true),
        ("p_web_2:8000", false),
        ("p_web_3:8000", false),
        ("p_web_4:8000", false),
    ]);
    let mut set = resumed(replica_set(&[("p_web_4", true)], &[]));
    set.kept = ["p_web_2", "p_web_3"]
        .map(|c| Replica {
            container: c.into(),
            dead: false,
        })
        .to_vec();
    set.slots.push(Slot {
        old: None,
        new: Some("p_web_5".into()),
    });
    let p = plan_set(&config, set, &policy(|p| p.order.value = Order::StartFirst)).unwrap();
    let first_edit = p
        .steps
        .iter()
        .position(|s| s.action.kind() == "edit")
        .unwrap();
    let buried: Vec<&ServerChange> = changes_at(&p, first_edit)
        .iter()
        .filter(|c| matches!(c, ServerChange::Bury { .. }))
        .collect();
    assert_eq!(
        buried,
        [
            &ServerChange::Bury {
                server: "p_web_1:8000".into()
            },
            &ServerChange::Bury {
                server: "p_web_4:8000".into()
            }
        ]
    );
    let after = replay(&config, &p);
    let text = String::from_utf8(after[0].files().next().unwrap().1.to_vec()).unwrap();
    assert!(
        !text.contains("p_web_1") && !text.contains("p_web_4"),
        "no name nginx cannot resolve:\n{text}"
    );
}

#[test]
fn an_undone_replica_that_never_got_a_line_is_stopped_without_a_drain() {
    // A run killed while it started p_web_4: it runs, but its line was never written.
    let config = pinned(&[
        ("p_web_1:8000", false),
        ("p_web_2:8000", false),
        ("p_web_3:8000", false),
    ]);
    let mut set = resumed(replica_set(&[("p_web_4", false)], &[]));
    set.kept = ["p_web_1", "p_web_2", "p_web_3"]
        .map(|c| Replica {
            container: c.into(),
            dead: false,
        })
        .to_vec();
    let p = plan_set(&config, set, &policy(|p| p.order.value = Order::StartFirst)).unwrap();
    let drains: Vec<&ServerChange> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Edit { changes, .. } => Some(changes),
            _ => None,
        })
        .flatten()
        .filter(|c| matches!(c, ServerChange::Drain { .. }))
        .collect();
    assert!(drains.is_empty(), "{drains:?}");
    assert!(p.steps.iter().any(|s| matches!(&s.action, Action::StopOld { servers } if servers.iter().any(|r| r.container == "p_web_4"))), "{:?}", kinds(&p));
}

#[test]
fn a_set_line_edited_since_the_journal_copied_it_comes_back_as_edited() {
    // A rollback long after its deploy: the journal's copy of the line says
    // max_fails=3, the operator has written max_fails=2 since.
    let stale = ReplicaSet {
        statement: "server web:8000 max_fails=3;".into(),
        ..replica_set(
            &[("p_web_4", false), ("p_web_5", false), ("p_web_6", false)],
            &["p_web_1", "p_web_2", "p_web_3"],
        )
    };
    let p = run(stale, |p| p.order.value = Order::StartFirst);
    assert_eq!(p.sets[0].statement, "server web:8000 max_fails=2;");
    assert_eq!(texts(&p).last().unwrap(), SEED000);
    // A pinned line (a run left it so) comes back as that run found it:
    // only the journal has it.
    let journaled = ReplicaSet {
        statement: "server web:8000 max_fails=3;".into(),
        ..replica_set(&[("p_web_1", false)], &["p_web_2"])
    };
    let p = plan_set(
        &pinned(&[("p_web_1:8000", false)]),
        journaled,
        &policy(|p| p.order.value = Order::StartFirst),
    )
    .unwrap();
    assert_eq!(p.sets[0].statement, "server web:8000 max_fails=3;");
}

#[test]
fn a_set_whose_line_the_operator_wrote_down_is_refused_not_given_traffic() {
    let config = load(
        CONF_D,
        &SEED000.replace(
            "server web:8000 max_fails=2;",
            "server web:8000 max_fails=2 down;",
        ),
    );
    let set = replica_set(
        &[("p_web_1", false), ("p_web_2", false)],
        &["p_web_3", "p_web_4"],
    );
    for order in [Order::StartFirst, Order::StopFirst] {
        let e = plan_set(&config, set.clone(), &policy(|p| p.order.value = order)).unwrap_err();
        assert!(
            matches!(&e, PlanError::DownReplicaSet(s) if s == "web:8000"),
            "{e}"
        );
        assert!(e.to_string().contains("is `down` in the config"), "{e}");
    }
}
