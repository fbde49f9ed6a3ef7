//! Which servers a plan may name, and those not serving when it starts:
//! dead containers, lines drained by us or by the operator.
use super::*;

#[test]
fn unknown_servers_list_the_available_ones() {
    let cfg = config(&["app1:3000", "app2:3000"]);
    let err = plan(&cfg, &[target("app9:3000")], &policy(|_| {})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "upstream apps has no server app9:3000 (available: app1:3000, app2:3000)"
    );
    assert!(
        rolling_update(RollingUpdate {
            targets: &[target("app1:3000")],
            ..update(&cfg, "nope", &policy(|_| {}))
        })
        .is_err()
    );
}

#[test]
fn dead_then_drained_servers_are_recreated_first_without_an_edit() {
    let cfg = config(&["app1:3000", "app2:3000 down", "app3:3000"]);
    let p = plan(
        &cfg,
        &[
            target("app1:3000"),
            drained_by_us("app2:3000"),
            dead("app3:3000"),
        ],
        &policy(|_| {}),
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
    assert_eq!(
        changes_at(&p, 6),
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
fn only_a_drain_of_ours_needs_a_reload_before_its_recreate() {
    let cfg = config(&["app1:3000", "app2:3000 down"]);
    let p = plan(&cfg, &[drained_by_us("app2:3000")], &policy(|_| {})).unwrap();
    assert_eq!(
        kinds(&p)[..4],
        ["reload", "wait-drained", "recreate", "wait-healthy"]
    );
    // The operator's own `down` stays down and needs no reload.
    let p = plan(&cfg, &[target("app2:3000")], &policy(|_| {})).unwrap();
    assert_eq!(kinds(&p), ["recreate", "wait-healthy"]);
}

#[test]
fn a_dead_server_is_pinned_to_nowhere_first_and_put_back_once_healthy() {
    let cfg = config(&["app1:3000 weight=2", "app2:3000"]);
    let pinned = Target {
        pinned: Some("server app1:3000 weight=2;".into()),
        ..dead("app1:3000")
    };
    let p = plan(&cfg, &[pinned, target("app2:3000")], &policy(|_| {})).unwrap();
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
    let changes = changes_at(&p, 4);
    assert!(matches!(&changes[0], ServerChange::Unpin { server, .. } if server == "app1:3000"));
    assert_eq!(
        changes[1],
        ServerChange::Drain {
            server: "app2:3000".into()
        }
    );
}
