//! Hooks run: post-start, pre-stop and pre-deploy, their failures, and
//! failures of watched containers while they run.
use super::*;
use crate::plan::{Action, HookCommand, HookKind};

fn hooks() -> Hooks {
    Hooks {
        post_start: vec![HookCommand::from_flag("--post-start", "warm-up").unwrap()],
        pre_stop: vec![HookCommand::from_flag("--pre-stop", "drain-queue").unwrap()],
    }
}

/// Runs a rollout of every server of the fake with [`hooks`] (made by
/// [`rollout_with`]) to its end.
async fn run_with(
    fake: &Fake,
    pre_deploy: Option<&PreDeploy>,
    policy: UpdateConfig,
) -> (Outcome, Rollout<String>, Vec<Event>) {
    let r = rollout_with(fake, &hooks(), pre_deploy, policy).await;
    run_to_end(fake, r).await
}

#[tokio::test]
async fn hooks_run_in_the_old_container_before_its_stop_and_the_new_one_after_its_start() {
    let fake = Fake::new(2);
    let (outcome, r, events) = run_with(&fake, None, on_failure(FailureAction::Pause)).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Done; 2]);
    // The fake's containers keep their names; recreate sits between the two hooks.
    assert_eq!(
        *fake.ran.borrow(),
        [
            "exec app1 drain-queue",
            "exec app1 warm-up",
            "exec app2 drain-queue",
            "exec app2 warm-up"
        ]
    );
    let ran: Vec<(HookKind, i64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Hook {
                hook, exit_code, ..
            } => Some((*hook, *exit_code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ran,
        [
            (HookKind::PreStop, 0),
            (HookKind::PostStart, 0),
            (HookKind::PreStop, 0),
            (HookKind::PostStart, 0)
        ]
    );
}

#[tokio::test]
async fn a_failing_post_start_fails_its_server_under_the_failure_action() {
    let mut fake = Fake::new(2);
    fake.failing_hooks.insert("app1 warm-up".into());
    let (outcome, r, _) = run_with(&fake, None, on_failure(FailureAction::Rollback)).await;
    let Outcome::RollbackRequested(why) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        why.contains("app1:3000: post-start hook `warm-up` (flag --post-start) in container app1 exited with code 1, output ends:\nran warm-up"),
        "{why}"
    );
    assert_eq!(r.servers[0].state, ServerState::Failed);
    assert_eq!(
        *fake.replaced.borrow(),
        ["app1:3000"],
        "nothing after the failure"
    );
    assert_eq!(
        fake.down_lines(),
        ["server app1:3000 down;"],
        "the failed server stays drained"
    );
    let failed_step = r
        .steps
        .iter()
        .zip(&r.plan.steps)
        .find(|(rec, _)| rec.status == StepStatus::Failed)
        .map(|(_, s)| s.action.kind());
    assert_eq!(failed_step, Some("post-start"));
}

#[tokio::test]
async fn a_world_gone_away_during_a_hook_fails_the_step_and_no_server() {
    let mut fake = Fake::new(2);
    fake.unreachable_hooks.insert("app1".into());
    let (outcome, r, _) = run_with(&fake, None, on_failure(FailureAction::Continue)).await;
    assert_world_gone(
        &outcome,
        &r,
        "pre-stop hook `drain-queue` (flag --pre-stop) in container app1",
    );
    assert!(fake.replaced.borrow().is_empty(), "nothing after it");
}

#[tokio::test]
async fn a_failing_pre_stop_leaves_the_old_container_serving_nothing_and_untouched() {
    let mut fake = Fake::new(3);
    fake.failing_hooks.insert("app2 drain-queue".into());
    let (outcome, r, _) = run_with(
        &fake,
        None,
        policy(FailureAction::Continue, 0.5, Duration::ZERO),
    )
    .await;
    assert_eq!(outcome, Outcome::Done, "1 of 3 is within the ratio");
    use ServerState::*;
    assert_eq!(states(&r), [Done, Failed, Done]);
    assert_eq!(
        *fake.replaced.borrow(),
        ["app1:3000", "app3:3000"],
        "app2's old container is not replaced"
    );
    assert!(
        r.servers[1]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("pre-stop hook `drain-queue`")),
        "{:?}",
        r.servers[1].error
    );
    assert_eq!(fake.down_lines(), ["server app2:3000 down;"]);
}

/// A fake of two servers whose hook commands take 3 s each: app1's new
/// container is healthy 6 s in and its crash, seen 7 s in, falls in app2's
/// pre-stop (6 s to 9 s; the clock is tokio's, paused: nothing else takes time).
fn app1_crashing_in_app2s_pre_stop() -> Fake {
    let mut fake = Fake::new(2);
    fake.hook_takes = Duration::from_secs(3);
    fake.crashes.insert("app1:3000".into());
    fake.crash_seen_after = Some((tokio::time::Instant::now(), Duration::from_secs(7)));
    fake
}

fn pre_stop(action: &Action) -> bool {
    matches!(action, Action::PreStop { .. })
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_a_hook_runs_is_taken_out_before_the_hook_ends() {
    let fake = app1_crashing_in_app2s_pre_stop();
    let (outcome, r, events) = run_with(
        &fake,
        None,
        policy(FailureAction::Continue, 1.0, Duration::from_secs(10)),
    )
    .await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Failed, ServerState::Done]);
    assert_eq!(
        inside_step(&events, pre_stop, 1),
        (true, true),
        "app1 failed and taken out with a reload inside app2's pre-stop: {events:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_firing_the_action_while_a_hook_runs_stops_the_run_once_the_hook_ends() {
    let fake = app1_crashing_in_app2s_pre_stop();
    let (outcome, r, events) = run_with(&fake, None, pause_in_a_monitor_window()).await;
    assert_paused_by_the_monitor(&outcome);
    assert_eq!(
        inside_step(&events, pre_stop, 1),
        (true, true),
        "{events:#?}"
    );
    let app2_pre_stop = |e: &Event| match e {
        Event::Hook {
            hook: HookKind::PreStop,
            server,
            exit_code,
            ..
        } => server == "app2:3000" && *exit_code == 0,
        _ => false,
    };
    assert!(
        events.iter().any(app2_pre_stop),
        "app2's pre-stop ran to its end: {events:#?}"
    );
    let pre_stops: Vec<StepStatus> = r
        .plan
        .steps
        .iter()
        .zip(&r.steps)
        .filter(|(s, _)| pre_stop(&s.action))
        .map(|(_, rec)| rec.status)
        .collect();
    assert_eq!(pre_stops, [StepStatus::Done, StepStatus::Failed]);
    assert_eq!(
        *fake.replaced.borrow(),
        ["app1:3000"],
        "nothing after the hook"
    );
}

fn job() -> PreDeploy {
    PreDeploy {
        command: HookCommand::from_flag("--pre-deploy", "migrate").unwrap(),
        server: "app1:3000".into(),
        container: "app1-nr-pre-deploy".into(),
        image: "app:v2".into(),
    }
}

#[tokio::test]
async fn pre_deploy_runs_once_in_a_one_off_of_the_new_spec_first() {
    let fake = Fake::new(2);
    let (outcome, _, _) = run_with(&fake, Some(&job()), on_failure(FailureAction::Pause)).await;
    assert_eq!(outcome, Outcome::Done);
    let ran = fake.ran.borrow();
    assert_eq!(ran[0], "one-off app1-nr-pre-deploy v2 migrate", "{ran:?}");
    assert_eq!(ran.iter().filter(|r| r.starts_with("one-off")).count(), 1);
}

#[tokio::test]
async fn a_failing_pre_deploy_changes_nothing_and_is_rejected() {
    let mut fake = Fake::new(2);
    fake.pre_deploy_fails = true;
    let before = fake.conf.borrow().clone();
    let (outcome, r, _) = run_with(&fake, Some(&job()), on_failure(FailureAction::Rollback)).await;
    let Outcome::Failed(why) = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        why,
        "step 1 (pre-deploy) failed: pre-deploy hook `migrate` (flag --pre-deploy) in container \
         app1-nr-pre-deploy exited with code 2, output ends:\nmigrating\nno database\nno server was touched"
    );
    assert_eq!(r.status, Status::Rejected, "nothing to resume or roll back");
    assert_eq!(*fake.conf.borrow(), before);
    assert_eq!(*fake.reloads.borrow(), 0);
    assert!(fake.replaced.borrow().is_empty());
    assert_eq!(
        *fake.ran.borrow(),
        ["one-off app1-nr-pre-deploy v2 migrate"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_whose_new_container_fails_during_its_own_failing_pre_stop_is_told_once() {
    // Start-first: app1's new container is healthy (and watched) before the
    // pre-stop hook runs in the old one; it crashes while that hook runs, and
    // the hook fails too.
    let mut fake = Fake::new(1);
    fake.hook_takes = Duration::from_secs(3);
    fake.crashes.insert("app1:3000".into());
    fake.crash_seen_after = Some((tokio::time::Instant::now(), Duration::from_secs(4)));
    fake.failing_hooks.insert("app1 drain-queue".into());
    let mut p = policy(FailureAction::Continue, 1.0, Duration::from_secs(10));
    p.order.value = crate::plan::Order::StartFirst;
    let beside = Target {
        replacement: Some("app1-b".into()),
        ..target(1, &hooks())
    };
    let r = rollout_of(&fake, &[beside], None, p).await;
    let (_, r, events) = run_to_end(&fake, r).await;
    assert!(
        inside_step(&events, pre_stop, 0).0,
        "the crash is seen inside the pre-stop: {events:#?}"
    );
    let told: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Failure { server, reason, .. } if server == "app1:3000" => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("monitor window"), "{told:?}");
    assert_eq!(states(&r), [ServerState::Failed]);
}
