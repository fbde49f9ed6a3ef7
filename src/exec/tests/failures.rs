//! Failures: the failure action and ratio, a world gone
//! away, the monitor window, a failing `nginx -t`, failed replicas.
use super::*;
use crate::plan::{Action, HookCommand};

#[tokio::test]
async fn one_failure_in_four_pauses_above_a_ratio_of_0_2_before_the_next_server() {
    let mut fake = Fake::new(4);
    fake.unhealthy.insert("app3:3000".into());
    let (outcome, r, events) =
        run_all(&fake, policy(FailureAction::Pause, 0.2, Duration::ZERO)).await;
    assert!(
        matches!(&outcome, Outcome::Paused(why) if why.contains("1 of 4")),
        "{outcome:?}"
    );
    assert_eq!(r.status, Status::Paused);
    use ServerState::*;
    assert_eq!(states(&r), [Done, Done, Failed, Pending]);
    assert_eq!(
        *fake.replaced.borrow(),
        ["app1:3000", "app2:3000", "app3:3000"]
    );
    assert_eq!(
        fake.down_lines(),
        ["server app3:3000 down;"],
        "the failed server stays drained"
    );
    let failure = events.iter().find_map(|e| match e {
        Event::Failure {
            failures, total, ..
        } => Some((*failures, *total)),
        _ => None,
    });
    assert_eq!(failure, Some((1, 4)));
}

#[tokio::test]
async fn one_failure_in_four_within_a_ratio_of_0_3_goes_on_without_restoring_it() {
    let mut fake = Fake::new(4);
    fake.unhealthy.insert("app3:3000".into());
    let (outcome, r, _) = run_all(&fake, policy(FailureAction::Pause, 0.3, Duration::ZERO)).await;
    assert_eq!(outcome, Outcome::Done);
    use ServerState::*;
    assert_eq!(states(&r), [Done, Done, Failed, Done]);
    assert_eq!(
        fake.down_lines(),
        ["server app3:3000 down;"],
        "a failed server's restore is skipped"
    );
}

/// A resumed rollout starts fresh, as a new Swarm update does: its failure
/// ratio is over the servers its plan has left, not those done before the
/// pause. App1 was done then; of the three left, app2 fails: 1 of 3 is
/// above 0.3, where 1 of 4 would not be.
#[tokio::test]
async fn a_resumed_rollout_counts_its_failure_ratio_over_the_servers_it_has_left() {
    let mut fake = Fake::new(4);
    fake.unhealthy.insert("app2:3000".into());
    let left: Vec<Target> = (2..=4).map(|k| target(k, &Hooks::default())).collect();
    let p = policy(FailureAction::Pause, 0.3, Duration::ZERO);
    let mut r = rollout_of(&fake, &left, None, p).await;
    let mut done = server_record("app1:3000", "app1");
    done.state = ServerState::Done;
    r.servers.insert(0, done);
    let (outcome, r, events) = run_to_end(&fake, r).await;
    assert!(
        matches!(&outcome, Outcome::Paused(why) if why.contains("1 of 3")),
        "{outcome:?}"
    );
    use ServerState::*;
    assert_eq!(states(&r), [Done, Failed, Pending, Pending]);
    let failure = events.iter().find_map(|e| match e {
        Event::Failure {
            failures, total, ..
        } => Some((*failures, *total)),
        _ => None,
    });
    assert_eq!(failure, Some((1, 3)));
}

#[tokio::test]
async fn failure_actions_rollback_and_continue() {
    let mut fake = Fake::new(2);
    fake.unhealthy.insert("app1:3000".into());
    let (outcome, r, _) = run_all(&fake, on_failure(FailureAction::Rollback)).await;
    assert!(
        matches!(outcome, Outcome::RollbackRequested(_)),
        "{outcome:?}"
    );
    assert_eq!(r.status, Status::Failed);
    assert_eq!(
        *fake.replaced.borrow(),
        ["app1:3000"],
        "nothing after the failure"
    );

    let mut fake = Fake::new(3);
    fake.unhealthy.insert("app1:3000".into());
    let (outcome, r, _) = run_all(&fake, on_failure(FailureAction::Continue)).await;
    assert_eq!(outcome, Outcome::Done);
    use ServerState::*;
    assert_eq!(states(&r), [Failed, Done, Done]);
    assert_eq!(fake.down_lines(), ["server app1:3000 down;"]);
}

#[tokio::test]
async fn a_world_gone_away_fails_the_step_and_no_server_even_with_continue() {
    let mut fake = Fake::new(2);
    fake.unreachable.insert("app1:3000".into());
    let (outcome, r, _) = run_all(&fake, on_failure(FailureAction::Continue)).await;
    assert_world_gone(&outcome, &r, "");
    assert_eq!(r.status, Status::Failed, "unfinished: resume or rollback");
    assert_eq!(*fake.replaced.borrow(), ["app1:3000"], "nothing after it");
}

#[tokio::test]
async fn a_world_gone_away_during_a_recreate_fails_the_step_and_no_server() {
    let mut fake = Fake::new(2);
    fake.unreachable_replace.insert("app1:3000".into());
    let (outcome, r, _) = run_all(&fake, on_failure(FailureAction::Continue)).await;
    assert_world_gone(&outcome, &r, "");
    assert!(fake.replaced.borrow().is_empty(), "nothing after it");
}

#[tokio::test]
async fn continue_never_drains_the_last_live_server() {
    let mut fake = Fake::new(2);
    fake.unhealthy.insert("app1:3000".into());
    let (outcome, r, _) = run_all(&fake, on_failure(FailureAction::Continue)).await;
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("last live server")),
        "{outcome:?}"
    );
    assert_eq!(states(&r), [ServerState::Failed, ServerState::Pending]);
    assert_eq!(*fake.replaced.borrow(), ["app1:3000"]);
    assert_eq!(
        fake.down_lines(),
        ["server app1:3000 down;"],
        "app2 still serves"
    );
}

#[tokio::test]
async fn a_failure_inside_the_monitor_window_drains_the_server_and_fires_the_action() {
    let mut fake = Fake::new(2);
    fake.crashes.insert("app1:3000".into());
    let (outcome, r, events) = run_all(&fake, pause_in_a_monitor_window()).await;
    assert_paused_by_the_monitor(&outcome);
    assert_eq!(r.servers[0].state, ServerState::Failed);
    assert_eq!(
        fake.down_lines(),
        ["server app1:3000 down;"],
        "taken back out of the upstream"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Failure { server, .. } if server == "app1:3000"))
    );
}

/// Runs `r` (app1's replacement failing once swapped in) to its end:
/// paused by the monitor, app1 failed, and its swapped line taken out (its
/// container gone, pinned to nowhere), not given back to the old container.
async fn assert_taken_out_on_the_swapped_line(fake: &Fake, r: Rollout<String>) {
    let (outcome, r, _) = run_to_end(fake, r).await;
    assert_paused_by_the_monitor(&outcome);
    assert_eq!(r.servers[0].state, ServerState::Failed);
    let text = fake.text();
    assert!(!text.contains("server app1-b:3000;"), "taken out:\n{text}");
    assert_eq!(
        fake.down_lines(),
        ["server 192.0.2.1:3000 down; # nginx-rollout pin: app1-b:3000"],
        "its container gone, the swapped line points nowhere:\n{text}"
    );
}

#[tokio::test]
async fn a_start_first_replacement_failing_after_its_swap_gives_the_line_back_to_its_old_container()
{
    let mut fake = Fake::new(2);
    fake.crashes.insert("app1:3000".into());
    fake.crash_noticed = Some(|fake| fake.text().contains("server app1-b:3000;"));
    let r = start_first_with(&fake, &Hooks::default(), pause_in_a_monitor_window()).await;
    let (outcome, r, events) = run_to_end(&fake, r).await;
    assert_paused_by_the_monitor(&outcome);
    assert_eq!(r.servers[0].state, ServerState::Failed);
    let text = fake.text();
    assert!(
        text.contains("server app1:3000;") && !text.contains("app1-b"),
        "the old container serves on its line again:\n{text}"
    );
    assert!(fake.down_lines().is_empty(), "{text}");
    assert_eq!(
        *fake.stopped.borrow(),
        ["new-app1:3000"],
        "the failed replacement is removed, the old container left running"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Failure { server, reason, .. }
            if server == "app1:3000" && reason.contains("back on its old container app1"))),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_swapped_back_replacement_that_still_runs_is_removed_once_the_old_workers_are_gone() {
    // Noticed once nginx ran the swap (its reload done), or before.
    let after_the_reload: fn(&Fake) -> bool =
        |fake| fake.text().contains("server app1-b:3000;") && *fake.reloads.borrow() > 0;
    let before_it: fn(&Fake) -> bool = |fake| fake.text().contains("server app1-b:3000;");
    for (noticed, waited_for) in [(after_the_reload, true), (before_it, false)] {
        let mut fake = Fake::new(2);
        fake.crashes.insert("app1:3000".into());
        fake.still_running = true;
        fake.crash_noticed = Some(noticed);
        let r = start_first_with(&fake, &Hooks::default(), pause_in_a_monitor_window()).await;
        let (outcome, _, _) = run_to_end(&fake, r).await;
        assert_paused_by_the_monitor(&outcome);
        assert!(fake.text().contains("server app1:3000;"), "{}", fake.text());
        // The swap-back's reload is the last: its old workers (which ran the
        // config naming the replacement, if nginx ever ran it) are waited
        // for, then it is removed.
        let last = *fake.reloads.borrow() as u32;
        assert_eq!(
            fake.waited.borrow().iter().any(|w| w.contains(&last)),
            waited_for,
            "{:?}",
            fake.waited.borrow()
        );
        assert_eq!(*fake.stopped.borrow(), ["new-app1:3000"]);
    }
}

#[tokio::test]
async fn a_resumed_runs_swapped_in_replacement_failing_is_taken_out_not_swapped_back() {
    let mut fake = Fake::new(2);
    // The run it resumes swapped app1's line to app1-b, and may have run the
    // old container's pre-stop hooks: this run does not give the line back.
    let swapped = fake
        .text()
        .replace("server app1:3000;", "server app1-b:3000;");
    *fake.conf.borrow_mut() = swapped.into_bytes();
    fake.crashes.insert("app1:3000".into());
    let targets = [Target {
        replacement: Some("app1-b".into()),
        swapped: true,
        ..target(1, &Hooks::default())
    }];
    let mut policy = pause_in_a_monitor_window();
    policy.order.value = Order::StartFirst;
    let mut r = rollout_of(&fake, &targets, None, policy).await;
    r.servers[0].state = ServerState::Healthy;
    r.servers[0].new_container = Some("new-app1:3000".into());
    r.servers[0].healthy_at = Some(crate::exec::journal::time::now());
    assert_taken_out_on_the_swapped_line(&fake, r).await;
}

#[tokio::test]
async fn a_start_first_replacement_failing_once_its_old_containers_pre_stop_began_is_taken_out_on_the_swapped_line()
 {
    let mut fake = Fake::new(2);
    fake.crashes.insert("app1:3000".into());
    fake.crash_noticed = Some(|fake| {
        fake.ran
            .borrow()
            .iter()
            .any(|r| r == "exec app1 drain-queue")
    });
    let hooks = Hooks {
        pre_stop: vec![HookCommand::from_flag("--pre-stop", "drain-queue").unwrap()],
        ..Hooks::default()
    };
    let r = start_first_with(&fake, &hooks, pause_in_a_monitor_window()).await;
    assert_taken_out_on_the_swapped_line(&fake, r).await;
}

#[tokio::test]
async fn a_start_first_replacement_failing_before_its_swap_leaves_the_old_line_serving() {
    let mut fake = Fake::new(2);
    fake.crashes.insert("app1:3000".into());
    // Noticed while the old container still has the line (before the swap edit).
    fake.crash_noticed = Some(|fake| !fake.text().contains("app1-b"));
    let r = start_first_with(&fake, &Hooks::default(), pause_in_a_monitor_window()).await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_paused_by_the_monitor(&outcome);
    assert_eq!(r.servers[0].state, ServerState::Failed);
    let text = fake.text();
    assert!(
        text.contains("server app1:3000;"),
        "the old container serves on:\n{text}"
    );
    assert!(fake.down_lines().is_empty(), "{text}");
    assert!(
        fake.stopped.borrow().iter().any(|c| c == "new-app1:3000"),
        "the failed replacement is stopped: {:?}",
        fake.stopped.borrow()
    );
}

/// Two servers rolled with `action` above `ratio`, a 10-s monitor window,
/// each drain taking `drain`, and app1's new container crashing `after`
/// into the run (the clock is tokio's, paused: nothing else takes time).
async fn app1_crashing_after(
    after: Duration,
    drain: Duration,
    action: FailureAction,
    ratio: f64,
) -> (Outcome, Rollout<String>, Vec<Event>) {
    let mut fake = Fake::new(2);
    fake.crashes.insert("app1:3000".into());
    fake.drain_takes = drain;
    fake.crash_seen_after = Some((tokio::time::Instant::now(), after));
    run_all(&fake, policy(action, ratio, Duration::from_secs(10))).await
}

fn monitor(action: &Action) -> bool {
    matches!(action, Action::Monitor { .. })
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_a_step_waits_is_taken_out_before_the_wait_ends() {
    let (outcome, r, events) = app1_crashing_after(
        Duration::from_secs(2),
        Duration::ZERO,
        FailureAction::Continue,
        1.0,
    )
    .await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Failed, ServerState::Done]);
    assert_eq!(
        inside_step(&events, monitor, 0),
        (true, true),
        "app1 failed and taken out with a reload inside the monitor step: {events:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_the_next_drain_is_waited_for_is_taken_out_before_it_ends() {
    // Each drain takes 5 s: app1's crash, noticed 7 s in, falls in app2's.
    let (outcome, r, events) = app1_crashing_after(
        Duration::from_secs(7),
        Duration::from_secs(5),
        FailureAction::Continue,
        1.0,
    )
    .await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Failed, ServerState::Done]);
    let drain = |a: &Action| matches!(a, Action::WaitDrained { .. });
    assert_eq!(inside_step(&events, drain, 1), (true, true), "{events:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_a_step_waits_that_fires_the_action_stops_the_run_there() {
    let (outcome, r, events) = app1_crashing_after(
        Duration::from_secs(2),
        Duration::ZERO,
        FailureAction::Pause,
        0.0,
    )
    .await;
    assert_paused_by_the_monitor(&outcome);
    assert_eq!(
        inside_step(&events, monitor, 0),
        (true, true),
        "{events:#?}"
    );
    let monitor = r
        .plan
        .steps
        .iter()
        .position(|s| matches!(s.action, Action::Monitor { .. }))
        .unwrap();
    assert_eq!(
        r.steps[monitor].status,
        StepStatus::Failed,
        "waited again on resume"
    );
    assert!(
        r.steps[monitor]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("stopped: ")),
        "{:?}",
        r.steps[monitor].error
    );
}

#[tokio::test]
async fn a_container_whose_window_ended_sound_is_not_checked_again_nor_failed_later() {
    // Both new containers became healthy an hour before they are checked:
    // their 10-s windows are over. App1's crash comes once app2 is replaced.
    let mut fake = Fake::new(2);
    fake.healthy_ago = Duration::from_secs(3600);
    fake.crashes.insert("app1:3000".into());
    fake.crash_noticed = Some(|fake| fake.replaced.borrow().len() >= 2);
    let (outcome, r, _) = run_all(&fake, pause_in_a_monitor_window()).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Done, ServerState::Done]);
    let app1_checks = fake
        .checked
        .borrow()
        .iter()
        .filter(|id| *id == "new-app1:3000")
        .count();
    assert_eq!(
        app1_checks,
        1,
        "checked once, after its window: {:?}",
        fake.checked.borrow()
    );
}

/// After the last batch, Swarm's updater watches for the monitor window, or
/// for the delay and a second when the delay is at least as long: app2, the
/// last batch, healthy once the 5-s delay is over, fails 3 s later, past its
/// 2-s monitor window but inside the 6-s watch, and that counts. The clock
/// is tokio's, paused: nothing else takes time.
#[tokio::test(start_paused = true)]
async fn a_failure_of_the_last_batch_within_the_delay_and_a_second_counts() {
    let mut fake = Fake::new(2);
    fake.crashes.insert("app2:3000".into());
    fake.crash_seen_after = Some((tokio::time::Instant::now(), Duration::from_secs(8)));
    let mut p = policy(FailureAction::Pause, 0.0, Duration::from_secs(2));
    p.delay.value = Duration::from_secs(5);
    let (outcome, r, events) = run_all(&fake, p).await;
    assert!(
        matches!(&outcome, Outcome::Paused(why) if why.contains("app2:3000") && why.contains("monitor window")),
        "{outcome:?}"
    );
    assert_eq!(states(&r), [ServerState::Done, ServerState::Failed]);
    let watch = events.iter().find_map(|e| match e {
        Event::Wait {
            what,
            timeout_seconds,
            ..
        } if what.starts_with("the monitor window") => Some(*timeout_seconds),
        _ => None,
    });
    assert!(
        watch.is_some_and(|s| (5.5..=6.0).contains(&s)),
        "the final watch is the delay and a second: {watch:?}"
    );
}

/// Two servers rolled with `continue` and a monitor window, app1's new
/// container crashed but its crash seen only once `noticed` says so: the
/// rollout ends done, app1 failed and app2 updated. Returns the fake.
async fn app1_crash_noticed_when(noticed: fn(&Fake) -> bool) -> Fake {
    let mut fake = Fake::new(2);
    fake.crashes.insert("app1:3000".into());
    fake.crash_noticed = Some(noticed);
    let (outcome, r, _) = run_all(
        &fake,
        policy(FailureAction::Continue, 1.0, Duration::from_secs(10)),
    )
    .await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Failed, ServerState::Done]);
    fake
}

#[tokio::test(start_paused = true)]
async fn a_failure_noticed_between_an_edit_and_its_reload_keeps_that_edits_server_changes() {
    // Writes: drain app1; restore app1 and drain app2; restore app2. App1's
    // crash is noticed at the boundary before app2's restore is reloaded.
    let fake = app1_crash_noticed_when(|fake| *fake.writes.borrow() >= 3).await;
    assert_eq!(
        fake.down_lines(),
        ["server 192.0.2.1:3000 down; # nginx-rollout pin: app1:3000"],
        "the crashed container's line names nothing nginx must resolve"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_taken_out_before_a_drain_wait_leaves_the_drains_old_workers_waited_for() {
    // Reload 2 restores app1 and drains app2; app1's crash is noticed before
    // the wait for its old workers, and taking app1 out is reload 3.
    let fake = app1_crash_noticed_when(|fake| *fake.reloads.borrow() >= 2).await;
    assert_eq!(
        *fake.waited.borrow(),
        [vec![1], vec![2, 3]],
        "workers that still proxy to the drained app2 are waited for before it stops"
    );
}

#[tokio::test]
async fn a_resumed_runs_first_reload_waits_for_the_workers_earlier_runs_left_too() {
    let fake = Fake::new(2);
    let mut r = rollout(&fake, on_failure(FailureAction::Pause)).await;
    // A first run stopped before its first step: this one is its second.
    r.runs = 1;
    run_to_end(&fake, r).await;
    assert_eq!(
        *fake.waited.borrow(),
        [vec![1, 101], vec![2]],
        "the first wait covers what the run it resumes left; later ones, this run's own"
    );
    // A first run waits for its own reloads' workers only.
    let fake = Fake::new(2);
    run_all(&fake, on_failure(FailureAction::Pause)).await;
    assert_eq!(*fake.waited.borrow(), [vec![1], vec![2]]);
}

/// Asserts p_web_1's pinned line is buried (to nowhere, `down`) and p_web_2's kept.
fn assert_p_web_1_buried(fake: &Fake) {
    let text = fake.text();
    assert!(
        text.contains("server 192.0.2.1:8000 down; # nginx-rollout pin: web:8000\n")
            && text.contains("server p_web_2:8000; # nginx-rollout pin: web:8000\n")
            && !text.contains("p_web_1"),
        "{text}"
    );
}

/// A fake of two servers whose upstream also holds `lines` (pinned
/// replicas' lines, indented from the second on) after app2's.
fn with_pinned_replicas(lines: &str) -> Fake {
    let fake = Fake::new(2);
    let text = fake.text().replace(
        "        server app2:3000;\n",
        &format!("        server app2:3000;\n        {lines}"),
    );
    *fake.conf.borrow_mut() = text.into_bytes();
    fake
}

#[tokio::test]
async fn a_pause_buries_the_pinned_line_of_a_replica_that_is_gone_and_only_that_one() {
    let mut fake = with_pinned_replicas(
        "server p_web_1:8000 down; # nginx-rollout pin: web:8000\n        server p_web_2:8000; # nginx-rollout pin: web:8000\n",
    );
    fake.crashes.insert("p_web_1".into());
    fake.unhealthy.insert("app2:3000".into());
    let (outcome, _, _) = run_all(&fake, on_failure(FailureAction::Pause)).await;
    assert!(matches!(outcome, Outcome::Paused(_)), "{outcome:?}");
    assert_p_web_1_buried(&fake);
}

#[tokio::test]
async fn every_edit_buries_the_pinned_line_of_a_replica_that_died_since_the_plan() {
    let mut fake = with_pinned_replicas(
        "server p_web_1:8000; # nginx-rollout pin: web:8000\n        server p_web_2:8000; # nginx-rollout pin: web:8000\n",
    );
    fake.crashes.insert("p_web_1".into());
    let (outcome, _, _) = run_all(&fake, on_failure(FailureAction::Pause)).await;
    assert_eq!(outcome, Outcome::Done);
    assert_p_web_1_buried(&fake);
}

#[tokio::test]
async fn a_failing_nginx_t_restores_the_bytes_and_the_server_states() {
    let mut fake = Fake::new(2);
    fake.bad_config = true;
    let before = fake.conf.borrow().clone();
    let (outcome, r, _) = run_all(&fake, on_failure(FailureAction::Pause)).await;
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("host not found") && why.contains("restored byte for byte")),
        "{outcome:?}"
    );
    assert_eq!(*fake.conf.borrow(), before);
    assert_eq!(*fake.reloads.borrow(), 0);
    assert!(fake.replaced.borrow().is_empty());
    assert_eq!(states(&r), [ServerState::Pending, ServerState::Pending]);
    // The edit whose bytes were put back is to be written again by a resume.
    assert!(matches!(r.plan.steps[0].action, Action::Edit { .. }));
    let statuses: Vec<StepStatus> = r.steps[..2].iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Pending, StepStatus::Failed]);
}

#[tokio::test]
async fn a_failing_nginx_t_over_an_operators_edit_keeps_the_edit_and_says_both() {
    let mut fake = Fake::new(2);
    fake.bad_config = true;
    let edit = "    keepalive_timeout 7s; # the operator's\n    upstream apps {\n";
    *fake.edit_during_test.borrow_mut() = Some(("    upstream apps {\n".into(), edit.into()));
    let (outcome, r, _) = run_all(&fake, on_failure(FailureAction::Pause)).await;
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("host not found")
            && why.contains("not restored")
            && why.contains("changed since nginx-rollout read it")),
        "{outcome:?}"
    );
    // Neither the operator's bytes nor our drain under them were written over.
    assert!(fake.text().contains(edit), "{}", fake.text());
    assert_eq!(fake.down_lines(), ["server app1:3000 down;"]);
    assert_eq!(*fake.reloads.borrow(), 0);
    // The drain in the file is on record, its edit done: a resume tests and
    // reloads what is there.
    assert_eq!(states(&r), [ServerState::Drained, ServerState::Pending]);
    let statuses: Vec<StepStatus> = r.steps[..2].iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Done, StepStatus::Failed]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_replicas_own_line_is_taken_out_only_once_it_is_journaled_failed() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let mut fake = set_fake();
    fake.journal = Some(state.clone());
    // p_web_3 (replacing p_web_1) crashes once its line is live.
    fake.crashes.insert("p_web_1:8000".into());
    fake.crash_noticed = Some(|fake| fake.text().contains("server p_web_3:8000;"));
    let mut p = policy(FailureAction::Continue, 1.0, Duration::from_secs(10));
    p.order.value = Order::StartFirst;
    let r = set_rollout(
        &fake,
        web(&["p_web_1", "p_web_2"], &["p_web_3", "p_web_4"]),
        p,
    )
    .await;
    let (_tx, rx) = watch::channel(false);
    run_in(&state, &fake, r, rx, &mut Events::default()).await;
    let at = fake.at_writes.borrow();
    let live = |text: &str| text.contains("server p_web_3:8000;");
    let out = (1..at.len())
        .find(|&i| live(&at[i - 1].0) && !live(&at[i].0))
        .expect("p_web_3's line is taken out");
    assert_eq!(at[out].1[0], ServerState::Failed, "{}", at[out].0);
}

#[tokio::test]
async fn a_failed_start_first_slots_old_replica_keeps_serving_on_its_line() {
    // Both new replicas fail their health check; the first failure is
    // within the ratio (1 of 2), the second pauses.
    let mut fake = set_fake();
    fake.unhealthy.insert("p_web_1:8000".into());
    fake.unhealthy.insert("p_web_2:8000".into());
    let mut p = policy(FailureAction::Pause, 0.5, Duration::ZERO);
    p.order.value = Order::StartFirst;
    let r = set_rollout(
        &fake,
        web(&["p_web_1", "p_web_2"], &["p_web_3", "p_web_4"]),
        p,
    )
    .await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert!(matches!(outcome, Outcome::Paused(_)), "{outcome:?}");
    assert_eq!(states(&r), [ServerState::Failed; 2]);
    let text = fake.text();
    assert!(
        text.contains("server p_web_1:8000; # nginx-rollout pin: web:8000")
            && text.contains("server p_web_2:8000; # nginx-rollout pin: web:8000")
            && !text.contains("192.0.2.1"),
        "both old replicas still run and serve:\n{text}"
    );
}

#[tokio::test]
async fn a_failed_replica_that_still_runs_is_stopped_before_its_sets_line_comes_back() {
    // Stop-first with continue: p_web_1's new replica never turns healthy
    // and still runs; Docker's DNS would answer with it once `web` is back.
    let mut fake = set_fake();
    fake.unhealthy.insert("p_web_1:8000".into());
    let p = policy(FailureAction::Continue, 0.0, Duration::ZERO);
    let r = set_rollout(
        &fake,
        web(
            &["p_web_1", "p_web_2", "p_web_3"],
            &["p_web_1", "p_web_2", "p_web_3"],
        ),
        p,
    )
    .await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        states(&r),
        [ServerState::Failed, ServerState::Done, ServerState::Done]
    );
    assert_eq!(*fake.kept_stopped.borrow(), ["new-p_web_1:8000"]);
    let error = r.servers[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("stopped (and kept)"), "{error}");
    let text = fake.text();
    assert!(text.contains("server web:8000;"), "{text}");
}
