//! Canary ramps run: each share held, a dying canary taken out, a pause
//! gate, a weight changed by hand at a pause not written over, the other
//! watched containers checked during a hold.
use super::stops::run_answering;
use super::*;
use crate::exec::Decision;
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

#[tokio::test]
async fn a_weight_changed_by_hand_at_a_pause_stops_the_ramp_and_is_not_written_over() {
    let fake = Fake::new(2);
    let before = fake.conf.borrow().clone();
    let r = rollout(&fake, ramp(Gate::Pause, FailureAction::Pause)).await;
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert!(matches!(&outcome, Outcome::Paused(_)), "{outcome:?}");
    let paused = fake.text();
    assert!(
        paused.contains("server app2:3000 weight=9;"),
        "10 %:\n{paused}"
    );
    // While it is paused, the operator gives app2 a weight of their own.
    let edited = paused.replace("server app2:3000 weight=9;", "server app2:3000 weight=5;");
    *fake.conf.borrow_mut() = edited.clone().into_bytes();
    let (outcome, r, _) = run_to_end(&fake, r).await;
    let Outcome::Failed(why) = &outcome else {
        panic!("{outcome:?}")
    };
    for said in [
        "(edit) failed: server \"app2:3000\" of upstream \"apps\" reads weight=5, but the \
         rollout left weight=9 there",
        "put weight=9 back, then run `nginx-rollout resume` or `nginx-rollout rollback`",
        "in /etc/nginx/nginx.conf:4:9",
    ] {
        assert!(why.contains(said), "{said:?} not in:\n{why}");
    }
    assert_eq!(fake.text(), edited, "not a byte written");
    assert_eq!(*fake.reloads.borrow(), 2, "no reload since the pause");
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.plan
            .ramp_underway(|i| r.steps[i].status == StepStatus::Done),
        "`resume` goes on with the same plan"
    );
    // Put back, the same plan goes on: 50 %, then the rest, every byte as it was.
    *fake.conf.borrow_mut() = paused.into_bytes();
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert!(
        matches!(&outcome, Outcome::Paused(why) if why.contains("takes 50%")),
        "{outcome:?}"
    );
    // At the last hold too: the weights go back only over those of 50 %.
    let at_50 = fake.text();
    let edited = at_50.replace("server app1:3000 weight=1;", "server app1:3000 weight=2;");
    *fake.conf.borrow_mut() = edited.clone().into_bytes();
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("server \"app1:3000\" of upstream \"apps\" reads weight=2, but the rollout left weight=1")),
        "{outcome:?}"
    );
    assert_eq!(
        fake.text(),
        edited,
        "neither the weights back nor app2's drain"
    );
    *fake.conf.borrow_mut() = at_50.into_bytes();
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Done; 2]);
    assert_eq!(*fake.conf.borrow(), before);
}

#[tokio::test]
async fn a_share_skipped_at_a_prompt_puts_the_weights_back_over_the_share_before() {
    let fake = Fake::new(2);
    let before = fake.conf.borrow().clone();
    let r = rollout(&fake, ramp(NO_HOLD, FailureAction::Pause)).await;
    let hold_at_50 = r
        .plan
        .steps
        .iter()
        .position(|s| matches!(&s.action, Action::Canary { share, .. } if share.percent() == 50))
        .unwrap();
    // Its edit, reload and wait come before it; the edit is skipped.
    let edit_at_50 = hold_at_50 - 3;
    let mut answers = vec![Decision::Yes; edit_at_50];
    answers.push(Decision::Skip);
    let (outcome, r) = run_answering(&fake, r, answers).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(r.steps[edit_at_50].status, StepStatus::Skipped);
    assert_eq!(*fake.conf.borrow(), before, "back over the weights of 10 %");
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
