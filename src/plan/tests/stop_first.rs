//! Stop-first: drain, recreate, put back; never the last live server.
use super::*;

#[test]
fn stop_first_restores_and_drains_in_one_reload() {
    let (_, p) = two_servers(&[target("app1:3000"), target("app2:3000")], &policy(|_| {}));
    assert_eq!(
        kinds(&p),
        in_order(&[&STOP_FIRST_BATCH, &STOP_FIRST_BATCH, &["edit", "reload"]])
    );
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| matches!(s.action, Action::Reload))
            .count(),
        3,
        "N+1 reloads"
    );
    assert_eq!(
        changes_at(&p, 5),
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
    assert!(
        leaves_as_it_was(&cfg, &p),
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
    let err = plan(&single, &[target("app1:3000")], &policy(|_| {})).unwrap_err();
    assert!(matches!(err, PlanError::SingleLiveServer { .. }), "{err}");
    assert!(err.to_string().contains("--order start-first"));
}

#[test]
fn a_delay_puts_the_batch_back_before_waiting() {
    let (_, p) = two_servers(
        &[target("app1:3000"), target("app2:3000")],
        &policy(|c| c.delay.value = Duration::from_secs(2)),
    );
    let k = kinds(&p);
    let delay = k.iter().position(|k| *k == "delay").unwrap();
    assert_eq!(
        &k[delay - 2..delay],
        ["edit", "reload"],
        "restore + reload right before the delay: {k:?}"
    );
}

#[test]
fn a_monitor_window_adds_a_final_watch() {
    let (_, p) = two_servers(&[target("app1:3000")], &UpdateConfig::engine_defaults());
    assert!(
        matches!(p.steps.last().unwrap().action, Action::Monitor { window, .. } if window == Duration::from_secs(5))
    );
}

/// Swarm's updater watches after its last slot for the monitor window, or
/// for the delay and a second when the delay is at least as long (its worker
/// waits the delay after the last slot too): the final step watches the
/// last batch's new containers that long; with neither, there is no watch.
#[test]
fn the_last_batch_is_watched_for_the_monitor_window_or_the_delay_and_a_second() {
    let secs = Duration::from_secs;
    let ms = Duration::from_millis;
    for (monitor, delay, watch) in [
        (secs(5), Duration::ZERO, Some(secs(5))),
        (secs(5), ms(4500), Some(secs(5))),
        (secs(5), secs(5), Some(secs(6))),
        (secs(2), secs(5), Some(secs(6))),
        (Duration::ZERO, secs(2), Some(secs(3))),
        (Duration::ZERO, Duration::ZERO, None),
    ] {
        let (_, p) = two_servers(
            &[target("app1:3000"), target("app2:3000")],
            &policy(|c| {
                c.monitor.value = monitor;
                c.delay.value = delay;
            }),
        );
        let last = &p.steps.last().unwrap().action;
        match (last, watch) {
            (Action::Monitor { window, servers }, Some(watch)) => {
                assert_eq!(*window, watch, "monitor {monitor:?}, delay {delay:?}");
                let watched: Vec<&str> = servers.iter().map(|s| s.server.as_str()).collect();
                assert_eq!(watched, ["app2:3000"], "the last batch only");
            }
            (last, None) => assert_ne!(last.kind(), "monitor", "no watch"),
            (last, Some(_)) => panic!("no final watch: {last}"),
        }
    }
}
