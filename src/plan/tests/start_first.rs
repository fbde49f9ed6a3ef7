//! Start-first: the replacement runs and is healthy before the line moves to it.
use super::*;
use crate::plan::{HookCommand, Hooks};

#[test]
fn start_first_swaps_the_line_after_the_replacement_is_healthy() {
    let cfg = config(&["app1:3000"]);
    let p = plan(
        &cfg,
        &[replaced_by("app1:3000", "app1-c-b")],
        &policy(|c| c.order.value = Order::StartFirst),
    )
    .unwrap();
    assert_eq!(kinds(&p), START_FIRST_BATCH);
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
    let start_first = servers.map(|s| {
        let container = target(s).container;
        replaced_by(s, &format!("{container}-b"))
    });
    let p = plan(&cfg, &start_first, &one_second(Order::StartFirst)).unwrap();
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
    let p = plan(&cfg, &servers.map(target), &one_second(Order::StopFirst)).unwrap();
    assert_eq!(delays(&p), [("reload", false); 2]);
}

#[test]
fn a_server_swapped_already_only_has_its_old_container_stopped_first() {
    // app1's replacement serves on its swapped line (a run stopped before
    // the old container's stop); app2 has not been touched.
    let cfg = config(&["app1-c-b:3000", "app2:3000"]);
    let swapped = Target {
        swapped: true,
        hooks: Hooks {
            post_start: Vec::new(),
            pre_stop: vec![HookCommand::from_flag("--pre-stop", "drain-queue").unwrap()],
        },
        ..replaced_by("app1:3000", "app1-c-b")
    };
    let p = plan(
        &cfg,
        &[swapped, replaced_by("app2:3000", "app2-c-b")],
        &policy(|c| c.order.value = Order::StartFirst),
    )
    .unwrap();
    let kinds = kinds(&p);
    assert_eq!(
        &kinds[..4],
        ["reload", "wait-drained", "pre-stop", "stop-old"],
        "{kinds:?}"
    );
    assert_eq!(&kinds[4..], START_FIRST_BATCH, "then app2 as ever");
    let Action::StopOld { servers } = &p.steps[3].action else {
        panic!()
    };
    assert_eq!(
        (servers[0].server.as_str(), servers[0].container.as_str()),
        ("app1:3000", "app1-c")
    );
    // Its line is found as the swap left it; the operator's address is not there.
    let gone = config(&["app2:3000"]);
    let swapped = Target {
        swapped: true,
        ..replaced_by("app1:3000", "app1-c-b")
    };
    assert!(matches!(
        plan(&gone, &[swapped], &policy(|c| c.order.value = Order::StartFirst)),
        Err(PlanError::UnknownServer { server, .. }) if server == "app1-c-b:3000"
    ));
}
