//! What a rollout may remove as its own where it makes a container
//! ([`Leftover`]): the rule itself, what a stopped rollout's journal proves,
//! the executor handing that proof to the world and spending it, and the old
//! container stopped, and its pre-stop hooks run, by its recorded id.
use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::exec::Leftover;
use crate::exec::leftover::CreateWindow;
use crate::plan::Action;

/// A time the steps below began at.
fn began() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// The position of the first step of `r` whose action `is`.
fn first(r: &Rollout<String>, is: fn(&Action) -> bool) -> usize {
    r.plan
        .steps
        .iter()
        .position(|s| is(&s.action))
        .expect("the plan has that step")
}

/// Marks step `i` of `r` begun at `at` and left as `status`.
fn begun(r: &mut Rollout<String>, i: usize, at: DateTime<Utc>, status: StepStatus) {
    r.steps[i].status = status;
    r.steps[i].started_at = Some(at);
}

/// A start-first rollout of the fake's servers, and the position of its
/// first start step (app1's).
async fn start_first_and_its_start(fake: &Fake) -> (Rollout<String>, usize) {
    let r = start_first_rollout(fake, Duration::ZERO).await;
    let start = first(&r, |a| matches!(a, Action::StartNew { .. }));
    (r, start)
}

#[test]
fn a_container_is_ours_by_an_id_recorded_or_created_since_a_create_left_unrecorded() {
    let t = began();
    let second = TimeDelta::seconds(1);
    assert!(
        !Leftover::default().claims("c0ffee", t),
        "no name, and no time without a create begun, makes a container ours"
    );
    let recorded = Leftover {
        ids: vec!["c0ffee".into()],
        ..Leftover::default()
    };
    assert!(recorded.claims("c0ffee", t - TimeDelta::days(30)));
    assert!(!recorded.claims("decade", t + second));
    let unrecorded = Leftover {
        creates: vec![CreateWindow {
            since: t,
            until: None,
        }],
        ..Leftover::default()
    };
    assert!(unrecorded.claims("decade", t) && unrecorded.claims("decade", t + second));
    assert!(
        !unrecorded.claims("decade", t - second),
        "created before the create began: not what it made"
    );
    assert!(
        !unrecorded.ids_only().claims("decade", t + second),
        "under another name a creation time proves nothing"
    );
    // Two creates that failed a day apart: not what was made between them.
    let two = Leftover {
        creates: vec![
            CreateWindow {
                since: t,
                until: Some(t + second),
            },
            CreateWindow {
                since: t + TimeDelta::days(1),
                until: Some(t + TimeDelta::days(1) + second),
            },
        ],
        ..Leftover::default()
    };
    assert!(two.claims("first", t + second) && two.claims("second", t + TimeDelta::days(1)));
    assert!(
        !two.claims("operators", t + TimeDelta::hours(1)),
        "made between the two creates"
    );
}

#[tokio::test]
async fn a_start_first_run_killed_inside_its_start_proves_containers_created_since() {
    let fake = Fake::new(2);
    let (mut r, start) = start_first_and_its_start(&fake).await;
    for i in 0..start {
        begun(&mut r, i, began() - TimeDelta::seconds(5), StepStatus::Done);
    }
    // Killed inside app1's start: no id recorded.
    begun(&mut r, start, began(), StepStatus::Running);
    r.servers[0].state = ServerState::Replacing;
    r.servers[0].container_id = Some("old-app1".into());
    assert_eq!(
        r.leftover_of("app1:3000"),
        Leftover {
            ids: vec!["old-app1".into()],
            creates: vec![CreateWindow {
                since: began(),
                until: None,
            }],
        }
    );
    assert_eq!(
        r.leftover_of("app2:3000"),
        Leftover::default(),
        "app2's start never began"
    );
    // Its start done, its id recorded: only ids prove it.
    r.servers[0].new_container = Some("new-app1".into());
    r.steps[start].status = StepStatus::Done;
    assert_eq!(
        r.leftover_of("app1:3000"),
        Leftover {
            ids: vec!["new-app1".into(), "old-app1".into()],
            ..Leftover::default()
        }
    );
}

#[tokio::test]
async fn a_stop_first_run_killed_after_its_drain_reload_began_proves_from_that_reload() {
    // The drain's reload creates the recreate's replacement ahead (its wait
    // again, if that failed).
    let fake = Fake::new(2);
    let mut r = rollout(&fake, on_failure(FailureAction::Pause)).await;
    let recreate = first(&r, |a| matches!(a, Action::Recreate { .. }));
    let wait = first(&r, |a| matches!(a, Action::WaitDrained { .. }));
    let reload = first(&r, |a| matches!(a, Action::Reload));
    assert_eq!(
        (reload + 1, wait + 1),
        (wait, recreate),
        "{:#?}",
        r.plan.steps
    );
    begun(&mut r, reload, began(), StepStatus::Running);
    let open = CreateWindow {
        since: began(),
        until: None,
    };
    assert_eq!(r.leftover_of("app1:3000").creates, [open]);
    r.steps[reload].status = StepStatus::Done;
    begun(
        &mut r,
        wait,
        began() + TimeDelta::milliseconds(200),
        StepStatus::Running,
    );
    r.servers[0].state = ServerState::Drained;
    assert_eq!(r.leftover_of("app1:3000").creates, [open]);
    // Killed once the wait was over, before the recreate: the same.
    r.steps[wait].status = StepStatus::Done;
    assert_eq!(r.leftover_of("app1:3000").creates, [open]);
    // Paused there instead: the wait's end bounds it.
    let ended = began() + TimeDelta::seconds(1);
    r.steps[wait].finished_at = Some(ended);
    assert_eq!(
        r.leftover_of("app1:3000").creates,
        [CreateWindow {
            since: began(),
            until: Some(ended),
        }]
    );
    // The recreate done: nothing left unrecorded.
    begun(
        &mut r,
        recreate,
        began() + TimeDelta::seconds(1),
        StepStatus::Done,
    );
    assert_eq!(r.leftover_of("app1:3000").creates, []);
}

#[tokio::test]
async fn a_resumed_run_is_told_what_its_killed_run_left_and_spends_it() {
    let fake = Fake::new(2);
    let (mut r, start) = start_first_and_its_start(&fake).await;
    begun(&mut r, start, began(), StepStatus::Running);
    r.servers[0].state = ServerState::Replacing;
    r.servers[0].new_container = Some("earlier".into());
    // What `resume` does before it replaces the step records.
    r.carry_leftovers();
    let left = Leftover {
        ids: vec!["earlier".into()],
        creates: vec![CreateWindow {
            since: began(),
            until: None,
        }],
    };
    assert_eq!(r.servers[0].leftover, left);
    for step in &mut r.steps {
        *step = StepRecord {
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            error: None,
        };
    }
    r.servers[0].state = ServerState::Pending;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        *fake.told_ours.borrow(),
        [
            ("app1:3000".to_string(), left),
            ("app2:3000".to_string(), Leftover::default()),
        ],
        "each server is told its own, nothing by name"
    );
    assert!(
        r.servers.iter().all(|s| s.leftover.is_empty()),
        "spent once the new container is made"
    );
}

#[tokio::test]
async fn a_failed_start_proves_only_containers_created_while_it_ran() {
    let fake = Fake::new(2);
    let (mut r, start) = start_first_and_its_start(&fake).await;
    begun(&mut r, start, began(), StepStatus::Failed);
    r.steps[start].finished_at = Some(began() + TimeDelta::seconds(2));
    let left = r.leftover_of("app1:3000");
    assert!(left.claims("half-made", began() + TimeDelta::seconds(1)));
    assert!(
        !left.claims("operators", began() + TimeDelta::days(2)),
        "made days after the failed start ended (a paused rollout waits): not the rollout's"
    );
    // Carried into a resumed run whose start fails again a day later: each
    // claims its own time, not the day between.
    r.carry_leftovers();
    r.steps[start].started_at = Some(began() + TimeDelta::days(1));
    r.steps[start].finished_at = Some(began() + TimeDelta::days(1) + TimeDelta::seconds(2));
    let left = r.leftover_of("app1:3000");
    assert!(left.claims("half-made", began() + TimeDelta::seconds(1)));
    assert!(left.claims("half-made-again", began() + TimeDelta::days(1)));
    assert!(!left.claims("operators", began() + TimeDelta::hours(12)));
}

#[tokio::test]
async fn the_old_container_is_stopped_by_the_id_recorded_not_by_its_name() {
    let fake = Fake::new(2);
    let mut r = start_first_rollout(&fake, Duration::ZERO).await;
    // app1's name may hold another container by the time its stop comes.
    r.servers[0].container_id = Some("c0ffee".into());
    let (outcome, _, _) = run_to_end(&fake, r).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(*fake.stopped.borrow(), ["c0ffee", "app2"]);
}

#[tokio::test]
async fn the_old_containers_pre_stop_hooks_run_in_it_by_the_id_recorded() {
    let fake = Fake::new(1);
    let hooks = Hooks {
        pre_stop: vec![crate::plan::HookCommand::from_flag("--pre-stop", "drain-queue").unwrap()],
        ..Hooks::default()
    };
    let mut r = start_first_with(&fake, &hooks, on_failure(FailureAction::Pause)).await;
    r.servers[0].container_id = Some("c0ffee".into());
    let (outcome, _, _) = run_to_end(&fake, r).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(*fake.ran.borrow(), ["exec c0ffee drain-queue"]);
    assert_eq!(*fake.stopped.borrow(), ["c0ffee"]);
}

#[tokio::test]
async fn a_replacement_never_swapped_in_is_found_by_its_id_and_discarding_it_leaves_its_server_untouched()
 {
    let fake = Fake::new(2);
    let (mut r, start) = start_first_and_its_start(&fake).await;
    let never_swapped_in = |r: &Rollout<String>, fake: &Fake| {
        let config = futures_util::FutureExt::now_or_never(fake.load_config())
            .unwrap()
            .unwrap();
        let up = config.upstream("apps").unwrap();
        (r.never_swapped_in(&up).into_iter())
            .map(|(rec, name, made)| (rec.server.clone(), name, made))
            .collect::<Vec<_>>()
    };
    assert_eq!(never_swapped_in(&r, &fake), [], "nothing made yet");
    // app1's replacement healthy, not swapped in; app2's failed.
    r.servers[0].state = ServerState::Healthy;
    r.servers[0].new_container = Some("new-app1".into());
    r.servers[0].container_id = Some("old-app1".into());
    r.servers[1].state = ServerState::Failed;
    r.servers[1].new_container = Some("new-app2".into());
    let by_its_id = Leftover {
        ids: vec!["new-app1".into()],
        ..Leftover::default()
    };
    assert_eq!(
        never_swapped_in(&r, &fake),
        [("app1:3000".to_string(), "app1-b".to_string(), by_its_id)],
        "never the container it retires; a failed one's is removed as it fails"
    );
    // Killed inside its start: the window of that start proves it.
    r.servers[0].state = ServerState::Replacing;
    r.servers[0].new_container = None;
    begun(&mut r, start, began(), StepStatus::Running);
    let (_, _, made) = never_swapped_in(&r, &fake).remove(0);
    assert!(
        made.claims("made-then", began()) && !made.claims("old-app1", began() - TimeDelta::days(1))
    );
    // Swapped in: its line names it, so nginx may send it requests.
    let swapped = String::from_utf8(fake.conf.borrow().clone())
        .unwrap()
        .replace("server app1:3000", "server app1-b:3000");
    *fake.conf.borrow_mut() = swapped.into_bytes();
    assert_eq!(never_swapped_in(&r, &fake), []);
    // Discarded: untouched, pending again; unless its line was pinned to
    // nowhere (a dead container's), which a rollback must still put back.
    let mut rec = r.servers[0].clone();
    rec.new_container = Some("new-app1".into());
    rec.replacement_discarded();
    assert_eq!(
        (rec.state, rec.new_container.as_ref(), rec.healthy_at),
        (ServerState::Pending, None, None)
    );
    let mut pinned = r.servers[0].clone();
    pinned.pinned = Some("server app1:3000;".into());
    pinned.state = ServerState::Healthy;
    pinned.replacement_discarded();
    assert_eq!(pinned.state, ServerState::Replacing);
}

/// Which steps make a stop-first recreate's replacement ahead: the drain's
/// reload and wait (and the pre-stop hooks after them), never a reload with
/// no drain wait after it. The executor's creates and the journal's window
/// both follow it.
#[test]
fn a_replacement_is_made_ahead_only_from_a_drains_reload_and_wait() {
    use crate::exec::replace::made_ahead_from;
    use crate::plan::Step;
    let plan = |actions: Vec<Action>| -> Vec<Step> {
        (actions.into_iter().enumerate())
            .map(|(i, action)| Step {
                index: i + 1,
                action,
                diff: None,
            })
            .collect()
    };
    let pre_stop = || Action::PreStop {
        runs: Vec::new(),
        timeout: Duration::from_secs(1),
    };
    let recreate = || Action::Recreate {
        servers: Vec::new(),
    };
    let wait = || Action::WaitDrained {
        timeout: Duration::from_secs(1),
    };
    let drained = plan(vec![Action::Reload, wait(), pre_stop(), recreate()]);
    assert_eq!(made_ahead_from(&drained, 3), 0);
    let undrained = plan(vec![Action::Reload, pre_stop(), recreate()]);
    assert_eq!(made_ahead_from(&undrained, 2), 1);
    let alone = plan(vec![Action::Reload, recreate()]);
    assert_eq!(made_ahead_from(&alone, 1), 1);
}
