//! Canary ramps run: each share held, a dying canary taken out, a pause
//! gate, the other watched containers checked during a hold.
use super::*;
use crate::plan::{Action, Canary, Direction, Gate, Overrides, Share, resolve};

fn ramp(gate: Gate, action: FailureAction) -> UpdateConfig {
    let flags = Overrides {
        failure_action: Some(action),
        monitor: Some(Duration::ZERO),
        canary: Some(Canary {
            shares: vec![Share::new(10).unwrap(), Share::new(50).unwrap()],
            gate: Some(gate),
        }),
        ..Overrides::default()
    };
    resolve(Direction::Update, None, &flags).unwrap()
}

const NO_HOLD: Gate = Gate::Delay {
    duration: Duration::ZERO,
};

#[tokio::test]
async fn a_ramp_holds_each_share_then_leaves_every_byte_as_it_was() {
    let fake = Fake::new(2);
    let before = fake.conf.borrow().clone();
    let (outcome, r, events) = run_all(&fake, ramp(NO_HOLD, FailureAction::Pause)).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Done; 2]);
    assert_eq!(*fake.conf.borrow(), before);
    assert_eq!(
        *fake.reloads.borrow(),
        5,
        "drain, two shares, weights back with the next drain, restore"
    );
    let holds: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Wait { what, .. } if what.starts_with("canary") => Some(what.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        holds,
        [
            "canary app1:3000 at 10% of the traffic, watching app1",
            "canary app1:3000 at 50% of the traffic, watching app1"
        ]
    );
}

#[tokio::test]
async fn a_canary_dying_in_its_ramp_is_taken_out_with_its_weight_back() {
    let mut fake = Fake::new(2);
    fake.crashes.insert("app1:3000".into());
    let (outcome, r, events) = run_all(&fake, ramp(NO_HOLD, FailureAction::Pause)).await;
    assert!(
        matches!(&outcome, Outcome::Paused(why) if why.contains("failed at 10% of the traffic")),
        "{outcome:?}"
    );
    assert_eq!(states(&r), [ServerState::Failed, ServerState::Pending]);
    assert_eq!(
        r.servers[0].pinned.as_deref(),
        Some("server app1:3000;"),
        "the operator's statement, without the ramp's weight, comes back later"
    );
    let text = fake.text();
    assert!(
        text.contains("server 192.0.2.1:3000 down; # nginx-rollout pin: app1:3000"),
        "its container is gone: pinned to nowhere\n{text}"
    );
    assert!(
        text.contains("server app2:3000 weight=9;"),
        "the others keep their (uniformly scaled) weights until resume or rollback\n{text}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Failure { server, .. } if server == "app1:3000"))
    );
    assert_eq!(*fake.replaced.borrow(), ["app1:3000"], "app2 untouched");
}

#[tokio::test]
async fn a_pause_gate_stops_at_each_share_and_the_same_plan_goes_on() {
    let fake = Fake::new(2);
    let before = fake.conf.borrow().clone();
    let mut rollout = rollout(&fake, ramp(Gate::Pause, FailureAction::Pause)).await;
    for share in ["10%", "50%"] {
        let (outcome, r, _) = run_to_end(&fake, rollout).await;
        assert!(
            matches!(&outcome, Outcome::Paused(why) if why.contains(&format!("canary app1:3000 takes {share}"))
                && why.contains("resume")),
            "{outcome:?}"
        );
        assert_eq!(r.status, Status::Paused);
        assert!(
            r.plan
                .ramp_underway(|i| r.steps[i].status == StepStatus::Done)
        );
        assert!(fake.text().contains("weight="));
        rollout = r;
    }
    let (outcome, r, _) = run_to_end(&fake, rollout).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Done; 2]);
    assert_eq!(*fake.conf.borrow(), before);
    assert_eq!(
        *fake.replaced.borrow(),
        ["app1:3000", "app2:3000"],
        "each once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_of_an_earlier_batch_while_the_canary_holds_is_taken_out_during_the_hold() {
    // app1, left drained by a killed run, goes first and is healthy at once;
    // its crash, seen 2 s in, falls in the canary's (app2's) 5-s hold (the
    // clock is tokio's, paused: nothing else takes time).
    let mut fake = Fake::new(3);
    let text = fake
        .text()
        .replace("server app1:3000;", "server app1:3000 down;");
    *fake.conf.borrow_mut() = text.into_bytes();
    fake.crashes.insert("app1:3000".into());
    fake.crash_seen_after = Some((tokio::time::Instant::now(), Duration::from_secs(2)));
    let flags = Overrides {
        failure_action: Some(FailureAction::Continue),
        monitor: Some(Duration::from_secs(10)),
        canary: Some(Canary {
            shares: vec![Share::new(10).unwrap()],
            gate: Some(Gate::Delay {
                duration: Duration::from_secs(5),
            }),
        }),
        ..Overrides::default()
    };
    let policy = resolve(Direction::Update, None, &flags).unwrap();
    let targets: Vec<Target> = (1..=3)
        .map(|k| Target {
            drained_by_us: k == 1,
            ..target(k, &Hooks::default())
        })
        .collect();
    let r = rollout_of(&fake, &targets, None, policy).await;
    let (outcome, r, events) = run_to_end(&fake, r).await;
    assert_eq!(outcome, Outcome::Done);
    use ServerState::*;
    assert_eq!(states(&r), [Failed, Done, Done]);
    let canary = |a: &Action| matches!(a, Action::Canary { .. });
    assert_eq!(
        inside_step(&events, canary, 0),
        (true, true),
        "app1 failed and taken out with a reload inside the hold: {events:#?}"
    );
}
