//! Hook steps: where post-start, pre-stop and pre-deploy go.
use super::*;
use crate::plan::{HookCommand, HookRun, Hooks, PreDeploy, ServerRef};

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
fn hook_steps(p: &Plan) -> Vec<(&'static str, Vec<String>)> {
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
    let (_, p) = two_servers(&[hooked("app1:3000"), target("app2:3000")], &policy(|_| {}));
    assert_eq!(
        kinds(&p),
        in_order(&[
            &[
                "edit",
                "reload",
                "wait-drained",
                "pre-stop",
                "recreate",
                "post-start",
                "wait-healthy", // app1: its hooks
            ],
            &STOP_FIRST_BATCH, // app2 has none: no hook step
            &["edit", "reload"],
        ])
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
    let p = plan(&cfg, &[t], &policy(|c| c.order.value = Order::StartFirst)).unwrap();
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
    let dead = Target {
        dead: true,
        ..hooked("app4:3000")
    };
    let p = plan(
        &cfg,
        &[
            hooked("app1:3000"),
            hooked("app2:3000"),
            hooked("app3:3000"),
            dead,
        ],
        &policy(|c| c.parallelism.value = 2),
    )
    .unwrap();
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
    let dead = Target {
        pinned: Some("server app2:3000;".into()),
        ..dead("app2:3000")
    };
    let job = PreDeploy {
        command: cmd("--pre-deploy", "sh -c 'migrate --all'"),
        server: "app1:3000".into(),
        container: "app1-c-nr-pre-deploy".into(),
        image: "app:v2".into(),
    };
    let p = rolling_update(RollingUpdate {
        targets: &[target("app1:3000"), dead],
        pre_deploy: Some(&job),
        ..update(&cfg, "apps", &policy(|_| {}))
    })
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
    let (_, p) = two_servers(&[hooked("app1:3000"), hooked("app2:3000")], &policy(|_| {}));
    let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    // A plan of an earlier version, without hook timeouts, loads with the defaults.
    let old = r#"{"drain":"30s","health":"1m"}"#;
    let t: Timeouts = serde_json::from_str(old).unwrap();
    assert_eq!(t, TIMEOUTS);
}

/// [`replica_set`] with both hooks, written `server web:8000;`.
fn set(members: &[(&str, bool)], new: &[&str]) -> ReplicaSet {
    ReplicaSet {
        statement: "server web:8000;".into(),
        hooks: both(),
        ..replica_set(members, new)
    }
}

/// The plan of `s` on an upstream of `server web:8000;` alone under `policy`.
fn set_plan(s: ReplicaSet, policy: &UpdateConfig) -> Plan {
    let cfg = load(CONF_D, "upstream backend {\n    server web:8000;\n}\n");
    plan_set(&cfg, s, policy).unwrap()
}

#[test]
fn replica_sets_run_hooks_around_each_replica_in_both_orders() {
    let start_first = set_plan(
        set(
            &[("p_web_1", false), ("p_web_2", false)],
            &["p_web_3", "p_web_1"],
        ),
        &policy(|c| c.order.value = Order::StartFirst),
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
        &policy(|c| c.order.value = Order::StopFirst),
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
    let p = set_plan(
        set(
            &[("p_web_1", false), ("p_web_2", false)],
            &["p_web_3", "p_web_4"],
        ),
        &policy(|c| {
            c.order.value = Order::StartFirst;
            c.parallelism.value = 2;
        }),
    );
    assert_eq!(
        hook_steps(&p),
        [
            ("post-start", names(&["p_web_3", "p_web_4"])),
            ("pre-stop", names(&["p_web_1", "p_web_2"])),
        ]
    );
}
