//! How a run stops short of its end: a signal, a pause, the operator's
//! *quit* or *rollback* at a prompt; what each puts back into nginx (a
//! pause lets a start-first batch swap its healthy replacements in, a
//! replica set's too), and a run stopped before its first step, which is
//! cancelled.
use super::*;
use crate::exec::Decision;
use crate::plan::{Action, HookCommand};

#[tokio::test]
async fn an_interrupt_while_draining_restores_the_untouched_server() {
    let (tx, rx) = watch::channel(false);
    let mut fake = Fake::new(2);
    fake.signal_on_drain = Some(tx);
    let before = fake.conf.borrow().clone();
    let r = rollout(&fake, on_failure(FailureAction::Pause)).await;
    let (outcome, r, _) = run(&fake, r, rx).await;
    assert_eq!(outcome, Outcome::Interrupted);
    assert_eq!(r.status, Status::Interrupted);
    assert_eq!(*fake.conf.borrow(), before, "the drain is undone");
    assert_eq!(
        *fake.reloads.borrow(),
        2,
        "drain and restore were both reloaded"
    );
    assert!(
        fake.replaced.borrow().is_empty(),
        "no container was touched"
    );
    assert_eq!(states(&r), [ServerState::Pending, ServerState::Pending]);
    assert_eq!(
        *fake.discarded.borrow(),
        ["app1:3000"],
        "the replacement created while draining is removed"
    );
}

#[tokio::test]
async fn a_signal_before_the_first_step_cancels_the_run_and_leaves_nothing_unfinished() {
    let (tx, rx) = watch::channel(false);
    tx.send(true).unwrap();
    let fake = Fake::new(2);
    let before = fake.conf.borrow().clone();
    let r = rollout(&fake, on_failure(FailureAction::Pause)).await;
    let (outcome, r, _) = run(&fake, r, rx).await;
    assert_eq!(outcome, Outcome::Interrupted);
    assert_eq!(
        r.status,
        Status::Cancelled,
        "nothing to resume or roll back"
    );
    assert!(!r.status.is_unfinished());
    assert_eq!(*fake.conf.borrow(), before);
    assert_eq!(*fake.reloads.borrow(), 0);
    // A resumed rollout's earlier runs may have left lines down or pinned.
    let (tx, rx) = watch::channel(false);
    tx.send(true).unwrap();
    let mut resumed = rollout(&fake, on_failure(FailureAction::Pause)).await;
    resumed.runs = 1;
    let (_, r, _) = run(&fake, resumed, rx).await;
    assert_eq!(r.status, Status::Interrupted, "a resume is never cancelled");
}

/// The pinned line of app1 once its new container, crashed, is taken out.
const APP1_PINNED_OUT: &str = "server 192.0.2.1:3000 down; # nginx-rollout pin: app1:3000";

#[tokio::test]
async fn a_pause_lets_the_batch_under_way_finish_and_puts_it_back_into_nginx() {
    // Three servers; app1's crash is noticed once app2 is recreated, before
    // its health wait: a pause (Swarm's waits for the slots it handed out).
    let mut fake = Fake::new(3);
    fake.crashes.insert("app1:3000".into());
    fake.crash_noticed = Some(|fake| fake.replaced.borrow().len() >= 2);
    let (outcome, r, _) = run_all(&fake, pause_in_a_monitor_window()).await;
    assert_paused_by_the_monitor(&outcome);
    use ServerState::*;
    assert_eq!(
        states(&r),
        [Failed, Done, Pending],
        "app2 is done: resume does not replace it again"
    );
    assert_eq!(
        fake.down_lines(),
        [APP1_PINNED_OUT],
        "app2 and app3 serve while the rollout is paused"
    );
    assert_eq!(*fake.replaced.borrow(), ["app1:3000", "app2:3000"]);
}

#[tokio::test(start_paused = true)]
async fn a_pause_during_a_batchs_health_wait_lets_it_end_and_puts_the_batch_back() {
    // Each new container takes 5 s to be healthy: app1's crash, seen 7 s
    // in, falls in app2's health wait (5 s to 10 s).
    let mut fake = Fake::new(3);
    fake.health_takes = Duration::from_secs(5);
    fake.crashes.insert("app1:3000".into());
    fake.crash_seen_after = Some((tokio::time::Instant::now(), Duration::from_secs(7)));
    let (outcome, r, events) = run_all(&fake, pause_in_a_monitor_window()).await;
    assert_paused_by_the_monitor(&outcome);
    let healthy = |a: &Action| matches!(a, Action::WaitHealthy { .. });
    assert!(
        inside_step(&events, healthy, 1).0,
        "app1 failed inside app2's health wait: {events:#?}"
    );
    use ServerState::*;
    assert_eq!(states(&r), [Failed, Done, Pending]);
    assert_eq!(fake.down_lines(), [APP1_PINNED_OUT]);
}

#[tokio::test]
async fn a_pause_in_a_sets_last_batch_restores_the_healthy_replicas_own_line() {
    // Stop-first, one replica at a time: p_web_2's restore was to come
    // with the operator's line back, which a pause does not write.
    let mut fake = set_fake();
    fake.crashes.insert("p_web_1:8000".into());
    fake.crash_noticed = Some(|fake| fake.replaced.borrow().len() >= 2);
    let r = set_rollout(
        &fake,
        web(&["p_web_1", "p_web_2"], &["p_web_1", "p_web_2"]),
        pause_in_a_monitor_window(),
    )
    .await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert!(matches!(outcome, Outcome::Paused(_)), "{outcome:?}");
    assert_eq!(states(&r), [ServerState::Failed, ServerState::Done]);
    let text = fake.text();
    assert!(
        text.contains("server 192.0.2.1:8000 down; # nginx-rollout pin: web:8000")
            && text.contains("server p_web_2:8000; # nginx-rollout pin: web:8000"),
        "p_web_1 buried, p_web_2 serves:\n{text}"
    );
}

/// [`on_failure`] `pause`, two servers at once.
fn pause_two_at_once() -> UpdateConfig {
    let mut p = on_failure(FailureAction::Pause);
    p.parallelism.value = 2;
    p
}

/// Asserts that a start-first run of app1 and app2 in one batch paused on
/// app1's failure with app2 swapped in, as the batch would have without
/// the pause: app2's line names its replacement, its old container is
/// stopped and its record done; app1's old container keeps its line.
fn assert_app2_swapped_in(fake: &Fake, outcome: &Outcome, r: &Rollout<String>) {
    assert_paused_with_the_other_swapped_in(fake, outcome, r, ["app1:3000", "app1", "app2"]);
    let text = fake.text();
    assert!(
        text.contains("server app1:3000;")
            && text.contains("server app2-b:3000;")
            && !text.contains("app1-b")
            && !text.contains("app2:3000")
            && fake.down_lines().is_empty(),
        "app1's old container and app2's replacement serve:\n{text}"
    );
}

/// Asserts that a start-first run of a batch of two paused on the failure
/// of `failed` (its server, its old container) with the other's new one
/// swapped in, as the batch would have without the pause: the records
/// failed and done, the other's old container (`swapped`) stopped and the
/// failed one's kept.
fn assert_paused_with_the_other_swapped_in(
    fake: &Fake,
    outcome: &Outcome,
    r: &Rollout<String>,
    [failed, kept, swapped]: [&str; 3],
) {
    assert!(
        matches!(outcome, Outcome::Paused(why) if why.contains(failed)),
        "{outcome:?}"
    );
    assert_eq!(states(r), [ServerState::Failed, ServerState::Done]);
    let stopped = fake.stopped.borrow();
    assert!(
        stopped.iter().any(|c| c == swapped) && !stopped.iter().any(|c| c == kept),
        "{swapped} is stopped, {kept} is not: {stopped:?}"
    );
}

/// Asserts that a pause fired during the second of three batches' swap
/// drain wait (10 s, from `start`), by the first batch's new container
/// failing, let that wait run to its end: the first failed, the second
/// done, the third not begun, and the old containers of the first two
/// (`stopped`) stopped in that order, the second's once its old workers
/// were done.
fn assert_drain_waited_out_then_stopped(
    fake: &Fake,
    start: tokio::time::Instant,
    r: &Rollout<String>,
    stopped: [&str; 2],
) {
    assert!(
        start.elapsed() >= Duration::from_secs(10),
        "the drain wait ran to its end: {:?}",
        start.elapsed()
    );
    use ServerState::*;
    assert_eq!(states(r), [Failed, Done, Pending]);
    assert_eq!(
        *fake.stopped.borrow(),
        stopped,
        "{} stops once its old workers are done",
        stopped[1]
    );
}

/// The rollout `resume` makes of the paused `r` (`rollout/recover.rs`): a
/// new plan, against the config as the run left it, for the servers not
/// done, each pending again; the records of those done are kept.
async fn resumed(fake: &Fake, r: &Rollout<String>) -> Rollout<String> {
    let left: Vec<Target> = (r.plan.targets.iter())
        .filter(|t| {
            r.server(&t.server)
                .is_some_and(|s| s.state != ServerState::Done)
        })
        .cloned()
        .collect();
    let mut next = rollout_of(fake, &left, None, r.plan.policy.clone()).await;
    next.servers = (r.servers.iter())
        .map(|s| match s.state {
            ServerState::Done => s.clone(),
            _ => ServerRecord {
                state: ServerState::Pending,
                error: None,
                ..s.clone()
            },
        })
        .collect();
    next.runs = r.runs;
    next
}

#[tokio::test]
async fn a_pause_lets_a_start_first_batch_swap_its_healthy_replacement_in_and_resume_leaves_it() {
    // One batch of two: app1's replacement never turns healthy, app2's does
    // (Swarm's pause lets the slots it handed out finish).
    let mut fake = Fake::new(2);
    fake.unhealthy.insert("app1:3000".into());
    let r = start_first_with(&fake, &Hooks::default(), pause_two_at_once()).await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_app2_swapped_in(&fake, &outcome, &r);
    assert_eq!(
        *fake.stopped.borrow(),
        ["new-app1:3000", "app2"],
        "app1's failed replacement is removed"
    );
    fake.unhealthy.clear();
    let r = resumed(&fake, &r).await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Done; 2]);
    assert_eq!(
        *fake.replaced.borrow(),
        ["app1:3000", "app2:3000", "app1:3000"],
        "resume does not start app2's replacement again"
    );
    let text = fake.text();
    assert!(
        text.contains("server app1-b:3000;") && text.contains("server app2-b:3000;"),
        "{text}"
    );
}

#[tokio::test]
async fn a_pause_on_a_failed_post_start_waits_for_the_batchs_other_replacement_and_swaps_it_in() {
    let mut fake = Fake::new(2);
    fake.failing_hooks.insert("app1-b warm-up".into());
    let hooks = Hooks {
        post_start: vec![HookCommand::from_flag("--post-start", "warm-up").unwrap()],
        pre_stop: Vec::new(),
    };
    let r = start_first_with(&fake, &hooks, pause_two_at_once()).await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_app2_swapped_in(&fake, &outcome, &r);
}

#[tokio::test(start_paused = true)]
async fn a_pause_during_a_start_first_swaps_drain_wait_waits_it_out_then_stops_the_old_container() {
    // One server at a time, each drain wait taking 5 s: app1's new
    // container crashes 7 s in, while the workers that still proxy to
    // app2's old container are waited for (5 s to 10 s).
    let mut fake = Fake::new(3);
    fake.drain_takes = Duration::from_secs(5);
    fake.crashes.insert("app1:3000".into());
    let start = tokio::time::Instant::now();
    fake.crash_seen_after = Some((start, Duration::from_secs(7)));
    let r = start_first_with(&fake, &Hooks::default(), pause_in_a_monitor_window()).await;
    let (outcome, r, events) = run_to_end(&fake, r).await;
    assert_paused_by_the_monitor(&outcome);
    let drain = |a: &Action| matches!(a, Action::WaitDrained { .. });
    assert!(
        inside_step(&events, drain, 1).0,
        "app1 failed inside app2's drain wait: {events:#?}"
    );
    assert_drain_waited_out_then_stopped(&fake, start, &r, ["app1", "app2"]);
    assert!(fake.text().contains("server app2-b:3000;"));
}

/// The set `web:8000` (p_web_1, p_web_2 by p_web_3, p_web_4) started first,
/// both slots in one batch, pausing on the first failure; with `hooks`.
async fn set_started_first_two_at_once(fake: &Fake, hooks: Hooks) -> Rollout<String> {
    let mut p = pause_two_at_once();
    p.order.value = Order::StartFirst;
    let set = ReplicaSet {
        hooks,
        ..web(&["p_web_1", "p_web_2"], &["p_web_3", "p_web_4"])
    };
    set_rollout(fake, set, p).await
}

/// Asserts that a run of [`set_started_first_two_at_once`] paused on the
/// first slot's failure with the second's new replica swapped in, as the
/// batch would have without the pause: p_web_4 serves on its own line,
/// p_web_2's line is drained (or buried once it is gone) and p_web_2 is
/// stopped, its slot done; p_web_1 keeps serving on its line, p_web_3 has
/// none; the set stays pinned (its operator's line comes back on `resume`).
fn assert_p_web_4_swapped_in(fake: &Fake, outcome: &Outcome, r: &Rollout<String>) {
    assert_paused_with_the_other_swapped_in(
        fake,
        outcome,
        r,
        ["p_web_1:8000", "p_web_1", "p_web_2"],
    );
    let text = fake.text();
    assert!(
        text.contains("server p_web_1:8000; # nginx-rollout pin: web:8000")
            && text.contains("server p_web_4:8000; # nginx-rollout pin: web:8000")
            && !text.contains("server p_web_2:8000;")
            && !text.contains("p_web_3")
            && !text.contains("server web:8000;"),
        "p_web_1 and p_web_4 serve, the set still pinned:\n{text}"
    );
}

#[tokio::test]
async fn a_pause_lets_a_replica_sets_start_first_batch_swap_its_healthy_replica_in() {
    // One batch of two slots: p_web_3 (for p_web_1) never turns healthy,
    // p_web_4 (for p_web_2) does.
    let mut fake = set_fake();
    fake.unhealthy.insert("p_web_1:8000".into());
    let r = set_started_first_two_at_once(&fake, Hooks::default()).await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_p_web_4_swapped_in(&fake, &outcome, &r);
    assert_eq!(
        *fake.stopped.borrow(),
        ["new-p_web_1:8000", "p_web_2"],
        "p_web_3, failed, is removed"
    );
}

#[tokio::test]
async fn a_pause_on_a_failed_post_start_waits_for_the_sets_other_new_replica_and_swaps_it_in() {
    let mut fake = set_fake();
    fake.failing_hooks.insert("p_web_3 warm-up".into());
    let hooks = Hooks {
        post_start: vec![HookCommand::from_flag("--post-start", "warm-up").unwrap()],
        pre_stop: Vec::new(),
    };
    let r = set_started_first_two_at_once(&fake, hooks).await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_p_web_4_swapped_in(&fake, &outcome, &r);
}

#[tokio::test(start_paused = true)]
async fn a_pause_during_a_sets_start_first_drain_wait_waits_it_out_then_stops_the_old_replica() {
    // One slot at a time, each drain wait taking 5 s: p_web_4 (for p_web_1)
    // crashes 7 s in, while the workers that still proxy to p_web_2 are
    // waited for (5 s to 10 s).
    let mut fake = set_fake();
    fake.drain_takes = Duration::from_secs(5);
    fake.crashes.insert("p_web_1:8000".into());
    let start = tokio::time::Instant::now();
    fake.crash_seen_after = Some((start, Duration::from_secs(7)));
    let mut p = pause_in_a_monitor_window();
    p.order.value = Order::StartFirst;
    let r = set_rollout(
        &fake,
        web(
            &["p_web_1", "p_web_2", "p_web_3"],
            &["p_web_4", "p_web_5", "p_web_6"],
        ),
        p,
    )
    .await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_paused_by_the_monitor(&outcome);
    assert_drain_waited_out_then_stopped(&fake, start, &r, ["p_web_1", "p_web_2"]);
    let text = fake.text();
    assert!(
        text.contains("server p_web_5:8000; # nginx-rollout pin: web:8000")
            && text.contains("server p_web_3:8000; # nginx-rollout pin: web:8000")
            && !text.contains("server p_web_2:8000;")
            && !text.contains("server web:8000;"),
        "{text}"
    );
}

/// Answers each step's prompt with the next of its decisions, then yes.
struct Answers(Vec<Decision>);

impl Observer for Answers {
    fn event(&mut self, _event: &Event) {}

    fn confirm(&mut self, _step: &crate::plan::Step) -> Decision {
        match self.0.is_empty() {
            true => Decision::Yes,
            false => self.0.remove(0),
        }
    }
}

/// Runs the rollout, its prompts answered with `answers`; (outcome, the record).
pub(super) async fn run_answering(
    fake: &Fake,
    rollout: Rollout<String>,
    answers: Vec<Decision>,
) -> (Outcome, Rollout<String>) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let (_tx, rx) = watch::channel(false);
    run_in(&state, fake, rollout, rx, &mut Answers(answers)).await
}

#[tokio::test]
async fn rollback_asked_at_the_first_prompt_cancels_the_run() {
    let fake = Fake::new(2);
    let r = rollout(&fake, on_failure(FailureAction::Pause)).await;
    let (_, r) = run_answering(&fake, r, vec![Decision::Rollback]).await;
    assert_eq!(r.status, Status::Cancelled, "nothing to roll back");
}

#[tokio::test]
async fn rollback_asked_at_a_prompt_of_a_rollback_pauses_it_and_puts_the_drain_back() {
    let fake = Fake::new(2);
    let before = fake.conf.borrow().clone();
    let r = Rollout {
        kind: RolloutKind::Rollback,
        ..rollout(&fake, on_failure(FailureAction::Pause)).await
    };
    // Yes to the drain (edit, reload, wait), rollback at the recreate.
    let mut answers = vec![Decision::Yes; 3];
    answers.push(Decision::Rollback);
    let (outcome, r) = run_answering(&fake, r, answers).await;
    assert!(
        matches!(&outcome, Outcome::Paused(why) if why.contains("never rolled back")),
        "{outcome:?}"
    );
    assert_eq!(r.status, Status::Paused);
    assert_eq!(*fake.conf.borrow(), before, "the drained server is back");
    assert_eq!(*fake.reloads.borrow(), 2, "drained, then put back");
}
