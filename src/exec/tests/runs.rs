//! Runs that go through: an operator's edit kept, replacements made ahead,
//! N+1 reloads, a live line edit.
use super::*;
use crate::exec::event::HealthVerdict;
use crate::plan::{LineEdit, single_edit};
use fake::conf;

#[tokio::test]
async fn an_operators_edit_under_a_drain_is_kept_and_the_drain_spliced_again() {
    let fake = Fake::new(2);
    *fake.operator_edit.borrow_mut() = Some((
        "    upstream apps {\n".into(),
        "    keepalive_timeout 7s; # the operator's\n    upstream apps {\n".into(),
    ));
    let (outcome, r, _) = run_all(&fake, on_failure(FailureAction::Pause)).await;
    assert!(matches!(outcome, Outcome::Done), "{outcome:?}");
    assert_eq!(r.status, Status::Done);
    let text = fake.text();
    assert_eq!(
        text,
        String::from_utf8(conf(2)).unwrap().replace(
            "    upstream apps {\n",
            "    keepalive_timeout 7s; # the operator's\n    upstream apps {\n"
        )
    );
}

#[tokio::test]
async fn each_replacement_is_created_while_its_old_container_drains() {
    let fake = Fake::new(3);
    let (outcome, _, _) = run_all(&fake, on_failure(FailureAction::Pause)).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        *fake.used_prepared.borrow(),
        *fake.replaced.borrow(),
        "every replace found its container made ahead"
    );
    assert_eq!(fake.replaced.borrow().len(), 3);
    assert!(fake.discarded.borrow().is_empty());
    // Made while nginx reloaded to drain the old one: there before its
    // old workers are waited for.
    let s = |s: &str| vec![s.to_string()];
    assert_eq!(
        *fake.prepared_at_wait.borrow(),
        [s("app1:3000"), s("app2:3000"), s("app3:3000")]
    );
}

#[tokio::test]
async fn a_clean_rollout_updates_every_server_with_n_plus_one_reloads() {
    let fake = Fake::new(3);
    let (outcome, r, events) = run_all(&fake, on_failure(FailureAction::Pause)).await;
    assert_eq!(outcome, Outcome::Done);
    let healthy = events
        .iter()
        .filter(|e| matches!(e, Event::Health { status, .. } if *status == HealthVerdict::Healthy))
        .count();
    assert_eq!(healthy, 3);
    assert_eq!(states(&r), [ServerState::Done; 3]);
    assert!(fake.down_lines().is_empty());
    assert_eq!(*fake.reloads.borrow(), 4, "N servers cost N+1 reloads");
}

#[tokio::test]
async fn a_live_line_edit_marks_its_record_done_once_nginx_runs_it() {
    let fake = Fake::new(2);
    let config = fake.load_config().await.unwrap();
    let plan = single_edit(
        &config,
        "apps",
        "app2",
        LineEdit::Weight(3),
        false,
        Duration::from_secs(1),
    )
    .unwrap();
    let r = Rollout {
        kind: RolloutKind::Weight,
        ..record(
            plan,
            vec![ServerRecord {
                old_spec: None,
                new_spec: None,
                ..server_record("app2:3000", "")
            }],
        )
    };
    let (outcome, r, _) = run_to_end(&fake, r).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(states(&r), [ServerState::Done]);
    assert!(fake.text().contains("server app2:3000 weight=3;"));
}
