//! Canary ramps: each share a weight edit, a reload and a hold; the weights
//! back byte for byte.
use super::*;
use crate::plan::canary::{LineWeight, Ramp, RampLeft};
use crate::plan::policy::Setting;
use crate::plan::step::Expected;
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
fn weights_after_each_edit(cfg: &ConfigSet, p: &Plan) -> Vec<Vec<(String, u32)>> {
    replay(cfg, p)
        .iter()
        .map(|live| {
            live.upstream("apps")
                .unwrap()
                .servers
                .iter()
                .filter(|s| s.is_live())
                .map(|s| {
                    let w = s.params.iter().find_map(|p| match p {
                        crate::conf::Param::Weight(w) => Some(*w),
                        _ => None,
                    });
                    (s.address.clone(), w.unwrap_or(1))
                })
                .collect()
        })
        .collect()
}

/// The canary's share of round-robin traffic with these weights, in percent.
fn share_of(first: &str, weights: &[(String, u32)]) -> f64 {
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    let mine = weights.iter().find(|(s, _)| s == first).unwrap().1;
    f64::from(mine) * 100.0 / f64::from(total)
}

#[test]
fn each_share_is_an_edit_a_reload_and_a_hold_then_the_weights_go_back() {
    let hold = Gate::Delay {
        duration: Duration::from_secs(30),
    };
    let (cfg, p) = two_servers(
        &[target("app1:3000"), target("app2:3000")],
        &ramp_policy(&[10, 50], Some(hold)),
    );
    assert_eq!(
        kinds(&p),
        in_order(&[
            &STOP_FIRST_BATCH,                             // app1, the canary
            &["edit", "reload", "wait-drained", "canary"], // back at 10 %
            &["edit", "reload", "wait-drained", "canary"], // 50 %
            &STOP_FIRST_BATCH, // the weights back, app2 drained in the same reload
            &["edit", "reload"],
        ])
    );
    assert_eq!(
        changes_at(&p, 5),
        &[
            ServerChange::Restore {
                server: "app1:3000".into()
            },
            ServerChange::Weight {
                server: "app1:3000".into(),
                weight: Some(1),
                expect: Some(Expected { weight: None })
            },
            ServerChange::Weight {
                server: "app2:3000".into(),
                weight: Some(9),
                expect: Some(Expected { weight: None })
            },
        ],
        "10 %: 1 against 9, over the lines as written"
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
    assert_eq!(
        changes_at(&p, 13),
        &[
            ServerChange::Weight {
                server: "app1:3000".into(),
                weight: None,
                expect: Some(Expected { weight: Some(1) })
            },
            ServerChange::Weight {
                server: "app2:3000".into(),
                weight: None,
                expect: Some(Expected { weight: Some(1) })
            },
            ServerChange::Drain {
                server: "app2:3000".into()
            },
        ],
        "back over the weights of 50 %: 1 against 1"
    );
    assert!(
        leaves_as_it_was(&cfg, &p),
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
        &[target("app1:3000")],
        &ramp_policy(&[1, 10, 33, 50, 99], None),
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
    assert!(
        leaves_as_it_was(&cfg, &p),
        "weight=2 and weight=5 back as written"
    );
}

#[test]
fn weights_a_share_would_take_past_nginx_s_largest_are_an_error_not_a_wrap() {
    // 99 % against 2147483647 + 1: the canary's line needs 99 × 2147483648
    // (nothing divides the three), past nginx's largest weight and a u32.
    let cfg = config(&["app1:3000", "app2:3000 weight=2147483647", "app3:3000"]);
    let err = plan(&cfg, &[target("app1:3000")], &ramp_policy(&[99], None)).unwrap_err();
    assert!(
        err.to_string()
            .contains("99% for app1:3000 needs a weight above nginx's largest (2147483647)"),
        "{err}"
    );
    // Against 2147483647 alone the products share it as a divisor: 99 and 1.
    let cfg = config(&["app1:3000", "app2:3000 weight=2147483647"]);
    let p = plan(&cfg, &[target("app1:3000")], &ramp_policy(&[99], None)).unwrap();
    assert_eq!(
        weights_after_each_edit(&cfg, &p)[1],
        [("app1:3000".to_string(), 99), ("app2:3000".to_string(), 1)]
    );
}

#[test]
fn the_canary_goes_alone_and_the_others_follow_in_batches() {
    let servers = ["app1:3000", "app2:3000", "app3:3000", "app4:3000"];
    let cfg = config(&servers);
    let p = plan(&cfg, &servers.map(target), &ramp_policy(&[25], None)).unwrap();
    let batches: Vec<usize> = recreated(&p).iter().map(Vec::len).collect();
    assert_eq!(batches, [1, 1, 1, 1], "parallelism 1");
    let mut par = ramp_policy(&[25], None);
    par.parallelism.value = 3;
    let p = plan(&cfg, &servers.map(target), &par).unwrap();
    assert_eq!(
        recreated(&p),
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
        &[
            target("app1:3000"),
            target("app2:3000"),
            target("app3:3000"),
        ],
        &ramp_policy(&[10], Some(Gate::Pause)),
    )
    .unwrap();
    assert_eq!(p.ramp.as_ref().unwrap().server, "app2:3000");
    let first_of_each: Vec<String> = recreated(&p).iter().map(|b| b[0].clone()).collect();
    assert_eq!(
        first_of_each,
        ["app1:3000", "app2:3000", "app3:3000"],
        "the operator's down server first (no traffic), then the canary"
    );
    let all_down = config(&["app1:3000 down", "app2:3000"]);
    let err = plan(&all_down, &[target("app1:3000")], &ramp_policy(&[10], None)).unwrap_err();
    assert!(matches!(err, PlanError::CanaryNothingServes(_)), "{err}");
}

#[test]
fn start_first_and_replica_sets_are_refused_with_the_reason() {
    let cfg = config(&["app1:3000", "app2:3000"]);
    let mut start_first = ramp_policy(&[10], None);
    start_first.order.value = Order::StartFirst;
    let err = plan(&cfg, &[replaced_by("app1:3000", "app1-c-b")], &start_first).unwrap_err();
    assert!(matches!(err, PlanError::CanaryStartFirst), "{err}");
    assert!(err.to_string().contains("--order stop-first"), "{err}");

    let set = ReplicaSet {
        server: "app2:3000".into(),
        ..replica_set(&[("a", false)], &["a"])
    };
    let err = rolling_update(RollingUpdate {
        targets: &[target("app1:3000")],
        sets: &[set],
        ..update(&cfg, "apps", &ramp_policy(&[10], None))
    })
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
    // What the run left: its 10 % (app1's weight went back as it was taken out).
    let left = [
        LineWeight {
            server: "app2:3000".into(),
            weight: Some(9),
        },
        LineWeight {
            server: "app3:3000".into(),
            weight: Some(27),
        },
    ];
    let cut = RampLeft {
        ramp: &ramp,
        weights: &left,
    };
    let canary = drained_by_us("app1:3000");
    let mut pol = ramp_policy(&[10], None);
    pol.failure_action.value = FailureAction::Pause;
    let p = rolling_update(RollingUpdate {
        targets: &[canary.clone(), target("app2:3000")],
        ramp: Some(cut),
        ..update(&cfg, "apps", &pol)
    })
    .unwrap();
    assert_eq!(
        changes_at(&p, 0),
        &[
            ServerChange::Weight {
                server: "app2:3000".into(),
                weight: None,
                expect: Some(Expected { weight: Some(9) })
            },
            ServerChange::Weight {
                server: "app3:3000".into(),
                weight: Some(3),
                expect: Some(Expected { weight: Some(27) })
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
    let p = rolling_update(RollingUpdate {
        targets: &[canary],
        ramp: Some(cut),
        ..update(&cfg, "apps", &policy(|_| {}))
    })
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
    let (cfg, p) = two_servers(
        &[target("app1:3000"), target("app2:3000")],
        &ramp_policy(&[10, 50], Some(Gate::Pause)),
    );
    let holds: Vec<usize> = (0..p.steps.len())
        .filter(|&i| matches!(p.steps[i].action, Action::Canary { .. }))
        .collect();
    let restore = holds[1] + 1;
    assert!(!p.ramp_underway(|i| i < holds[0]), "before the first hold");
    assert!(p.ramp_underway(|i| i <= holds[0]), "paused at 10 %");
    assert!(p.ramp_underway(|i| i <= holds[1]), "paused at 50 %");
    assert!(!p.ramp_underway(|i| i <= restore), "weights back");
    let no_ramp = plan(&cfg, &[target("app1:3000")], &policy(|_| {})).unwrap();
    assert!(!no_ramp.ramp_underway(|_| true));
}

/// app1's ramp, app1 and app2 written without a weight before it.
fn app1s_ramp_over_unweighted_lines() -> Ramp {
    Ramp {
        server: "app1:3000".into(),
        weights: ["app1:3000", "app2:3000"]
            .map(|s| LineWeight {
                server: s.into(),
                weight: None,
            })
            .into(),
    }
}

/// A ramp's runs left app2 at weight=9 (10 % to app1).
fn app2_left_at_9() -> [LineWeight; 1] {
    [LineWeight {
        server: "app2:3000".into(),
        weight: Some(9),
    }]
}

#[test]
fn a_plan_that_continues_a_ramp_refuses_a_weight_changed_by_hand_since() {
    // Paused at 10 % (app1 weight=1, app2 weight=9); the operator wrote
    // app2 weight=5 since. Resumed after a failure, or rolled back: refused
    // before anything runs, naming the line, and nothing planned over it.
    let cfg = config(&["app1:3000 down", "app2:3000 weight=5"]);
    let ramp = app1s_ramp_over_unweighted_lines();
    let left = app2_left_at_9();
    let cut = RampLeft {
        ramp: &ramp,
        weights: &left,
    };
    for pol in [ramp_policy(&[10], None), policy(|_| {})] {
        let err = rolling_update(RollingUpdate {
            targets: &[drained_by_us("app1:3000")],
            ramp: Some(cut),
            ..update(&cfg, "apps", &pol)
        })
        .unwrap_err();
        let PlanError::Conf(e) = &err else {
            panic!("{err}")
        };
        assert_eq!(
            (e.file(), e.line(), e.column()),
            (Some(Path::new(MAIN)), Some(4), Some(9)),
            "app2's line: {err}"
        );
        let shown = err.to_string();
        for said in [
            "server \"app2:3000\" of upstream \"apps\" reads weight=5, but the rollout left weight=9",
            "put weight=9 back, then run `nginx-rollout resume` or `nginx-rollout rollback`",
            "in /etc/nginx/nginx.conf:4:9",
        ] {
            assert!(shown.contains(said), "{said:?} not in:\n{shown}");
        }
    }
    // Put back, it goes back as it was written before the ramp.
    let cfg = config(&["app1:3000 down", "app2:3000 weight=9"]);
    let p = rolling_update(RollingUpdate {
        targets: &[drained_by_us("app1:3000")],
        ramp: Some(cut),
        ..update(&cfg, "apps", &policy(|_| {}))
    })
    .unwrap();
    assert!(
        p.steps[0]
            .diff
            .as_deref()
            .unwrap()
            .contains("+        server app2:3000;"),
        "{:?}",
        p.steps[0].diff
    );
}

#[test]
fn a_weight_set_after_the_ramp_put_every_weight_back_is_left_alone() {
    // The ramp ended with every weight as before (none); the operator then set
    // app2 weight=3 with `weight`: a rollback of that deploy plans no weight.
    let cfg = config(&["app1:3000", "app2:3000 weight=3"]);
    let ramp = app1s_ramp_over_unweighted_lines();
    let up = cfg.upstream("apps").unwrap();
    assert_eq!(ramp.restore(&up, &ramp.weights), []);
    // Left mid-ramp (weight=9), it is the ramp's to put back.
    let left = app2_left_at_9();
    assert_eq!(ramp.restore(&up, &left).len(), 1);
}

#[test]
fn the_weights_a_run_left_are_those_its_last_edit_done_wrote() {
    let (_, p) = two_servers(
        &[target("app1:3000"), target("app2:3000")],
        &ramp_policy(&[10, 50], Some(Gate::Pause)),
    );
    let holds: Vec<usize> = (0..p.steps.len())
        .filter(|&i| matches!(p.steps[i].action, Action::Canary { .. }))
        .collect();
    let weights = |app1: Option<u32>, app2: Option<u32>| {
        vec![
            LineWeight {
                server: "app1:3000".into(),
                weight: app1,
            },
            LineWeight {
                server: "app2:3000".into(),
                weight: app2,
            },
        ]
    };
    assert_eq!(p.weights_left(|_| false), weights(None, None), "as written");
    assert_eq!(
        p.weights_left(|i| i <= holds[0]),
        weights(Some(1), Some(9)),
        "paused at 10 %"
    );
    assert_eq!(
        p.weights_left(|i| i <= holds[1]),
        weights(Some(1), Some(1)),
        "paused at 50 %"
    );
    // The 50 % edit skipped at a prompt: what the 10 % one wrote.
    let edit_at_50 = holds[1] - 3;
    assert!(matches!(p.steps[edit_at_50].action, Action::Edit { .. }));
    assert_eq!(
        p.weights_left(|i| i <= holds[1] && i != edit_at_50),
        weights(Some(1), Some(9))
    );
    assert_eq!(p.weights_left(|_| true), weights(None, None), "back");
}
