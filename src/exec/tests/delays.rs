//! The delay between batches: counted from a start-first stop, whole on resume.
use super::*;
use crate::plan::Action;

/// The delays a run announced (what was left of each when it began), in ms.
fn delays_waited(events: &[Event]) -> Vec<u128> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Wait {
                what,
                timeout_seconds,
                ..
            } if what == "the delay between batches" => {
                Some((*timeout_seconds * 1000.0).round() as u128)
            }
            _ => None,
        })
        .collect()
}

/// Start-first, the old containers stop inside the delay that follows: it
/// counts from their stop request, so a stop of 400 ms leaves 600 ms of a
/// 1 s delay, and one longer than the delay leaves none. Tokio's paused
/// clock only moves when every task waits, so these figures are exact.
#[tokio::test(start_paused = true)]
async fn a_start_first_delay_counts_from_the_old_containers_stop() {
    for (stop, left) in [(400, 600), (1500, 0), (0, 1000)] {
        let fake = Fake {
            stop_takes: Duration::from_millis(stop),
            ..Fake::new(2)
        };
        let r = start_first_rollout(&fake, Duration::from_secs(1)).await;
        let (outcome, r, events) = run_to_end(&fake, r).await;
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(states(&r), [ServerState::Done; 2]);
        assert_eq!(delays_waited(&events), [left], "a stop of {stop} ms");
    }
}

/// A run resumed at the delay did not see the stop begin: it waits the whole delay.
#[tokio::test(start_paused = true)]
async fn a_resumed_run_waits_the_whole_delay() {
    let fake = Fake::new(2);
    let mut r = start_first_rollout(&fake, Duration::from_secs(1)).await;
    let delay = r
        .plan
        .steps
        .iter()
        .position(|s| {
            matches!(
                s.action,
                Action::Delay {
                    from_stop: true,
                    ..
                }
            )
        })
        .unwrap();
    // The first server went through its stop in a run that was killed then.
    let (_tx, rx) = watch::channel(false);
    let first_part = {
        let mut head = r.clone();
        head.plan.steps.truncate(delay);
        head.steps.truncate(delay);
        run(&fake, head, rx.clone()).await.1
    };
    r.servers = first_part.servers;
    for (i, s) in first_part.steps.into_iter().enumerate() {
        r.steps[i] = s;
    }
    let (outcome, _, events) = run(&fake, r, rx).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(delays_waited(&events), [1000]);
}
