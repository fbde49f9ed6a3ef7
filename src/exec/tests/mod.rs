//! The executor's logic against a fake [`World`](super::World) (see
//! [`fake`]): one file per subject, over the fixtures here that make a
//! rollout's record and run it.
use std::time::Duration;

use tokio::sync::watch;

use super::event::{Event, Observer};
use super::executor::{Executor, Outcome};
use super::journal::{
    Rollout, RolloutKind, ServerRecord, ServerState, Status, StepRecord, StepStatus,
};
use super::state_dir::StateDir;
use super::world::World;
use crate::plan::{
    FailureAction, Hooks, Order, Plan, PreDeploy, Replica, ReplicaSet, RollingUpdate, Slot, Target,
    Timeouts, UpdateConfig, rolling_update,
};
use fake::Fake;

mod canary;
mod delays;
mod failures;
mod fake;
mod hooks;
mod leftovers;
mod runs;
mod stops;

const MAIN: &str = "/etc/nginx/nginx.conf";
/// The waits of the rollouts planned here.
const TIMEOUTS: Timeouts = Timeouts {
    drain: Duration::from_secs(1),
    health: Duration::from_secs(1),
    ..Timeouts::DEFAULT
};

#[derive(Default)]
struct Events(Vec<Event>);

impl Observer for Events {
    fn event(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}

fn policy(action: FailureAction, ratio: f64, monitor: Duration) -> UpdateConfig {
    let mut p = UpdateConfig::engine_defaults();
    p.failure_action.value = action;
    p.max_failure_ratio.value = ratio;
    p.monitor.value = monitor;
    p
}

/// [`policy`] pausing on the first failure, with a 10-s monitor window.
fn pause_in_a_monitor_window() -> UpdateConfig {
    policy(FailureAction::Pause, 0.0, Duration::from_secs(10))
}

/// Asserts that the run paused for a failure in the monitor window.
fn assert_paused_by_the_monitor(outcome: &Outcome) {
    assert!(
        matches!(outcome, Outcome::Paused(why) if why.contains("monitor window")),
        "{outcome:?}"
    );
}

/// [`policy`] with `action` on the first failure and no monitor window.
fn on_failure(action: FailureAction) -> UpdateConfig {
    policy(action, 0.0, Duration::ZERO)
}

/// The fake's server `appK:3000`, served by container `appK`, with `hooks`.
fn target(k: usize, hooks: &Hooks) -> Target {
    Target {
        server: format!("app{k}:3000"),
        container: format!("app{k}"),
        replacement: None,
        swapped: false,
        drained_by_us: false,
        dead: false,
        pinned: None,
        via: None,
        hooks: hooks.clone(),
    }
}

/// The journal's record of `server` in `container`, pending, from spec v1 to v2.
fn server_record(server: &str, container: &str) -> ServerRecord<String> {
    ServerRecord::pending(
        server.into(),
        container.into(),
        Some("v1".into()),
        Some("v2".into()),
    )
}

/// The record of a deploy of `servers` by `plan`, no step run yet.
pub(super) fn record(plan: Plan, servers: Vec<ServerRecord<String>>) -> Rollout<String> {
    let step = StepRecord {
        status: StepStatus::Pending,
        started_at: None,
        finished_at: None,
        error: None,
    };
    Rollout {
        revision: 1,
        kind: RolloutKind::Deploy,
        undoes: None,
        command: "test".into(),
        started_at: super::journal::time::now(),
        finished_at: None,
        status: Status::Running,
        reason: None,
        nginx: "nginx".into(),
        upstream: "apps".into(),
        config_before: Vec::new(),
        servers,
        steps: vec![step; plan.steps.len()],
        rollback_policy: UpdateConfig::engine_defaults(),
        plan,
        runs: 0,
    }
}

/// A stop-first rollout of every server of the fake's upstream.
async fn rollout(fake: &Fake, policy: UpdateConfig) -> Rollout<String> {
    rollout_with(fake, &Hooks::default(), None, policy).await
}

/// [`rollout`] with `hooks` on every server and a pre-deploy job.
async fn rollout_with(
    fake: &Fake,
    hooks: &Hooks,
    pre_deploy: Option<&PreDeploy>,
    policy: UpdateConfig,
) -> Rollout<String> {
    let targets: Vec<Target> = (1..=fake.servers).map(|k| target(k, hooks)).collect();
    rollout_of(fake, &targets, pre_deploy, policy).await
}

/// A start-first rollout of every server of the fake's upstream (`appK` by
/// `appK-b`), with `delay` between them.
async fn start_first_rollout(fake: &Fake, delay: Duration) -> Rollout<String> {
    let mut policy = on_failure(FailureAction::Pause);
    policy.delay.value = delay;
    start_first_with(fake, &Hooks::default(), policy).await
}

/// A start-first rollout of every server of the fake's upstream (`appK` by
/// `appK-b`), with `hooks` on every server, under `policy`.
async fn start_first_with(fake: &Fake, hooks: &Hooks, mut policy: UpdateConfig) -> Rollout<String> {
    let targets: Vec<Target> = (1..=fake.servers)
        .map(|k| Target {
            replacement: Some(format!("app{k}-b")),
            ..target(k, hooks)
        })
        .collect();
    policy.order.value = Order::StartFirst;
    rollout_of(fake, &targets, None, policy).await
}

/// The record of a rollout of `targets`, planned against the fake's config
/// (each server's record names its start-first replacement, as a deploy's does).
async fn rollout_of(
    fake: &Fake,
    targets: &[Target],
    pre_deploy: Option<&PreDeploy>,
    policy: UpdateConfig,
) -> Rollout<String> {
    let config = fake.load_config().await.unwrap();
    let plan = rolling_update(RollingUpdate {
        config: &config,
        upstream: "apps",
        targets,
        sets: &[],
        pre_deploy,
        policy: &policy,
        timeouts: TIMEOUTS,
        ramp: None,
    })
    .unwrap();
    let servers = targets
        .iter()
        .map(|t| ServerRecord {
            replacement: t.replacement.clone(),
            ..server_record(&t.server, &t.container)
        })
        .collect();
    record(plan, servers)
}

/// A fake whose upstream is the one line `server web:8000;`: a replica set.
fn set_fake() -> Fake {
    let fake = Fake::new(0);
    *fake.conf.borrow_mut() =
        b"http {\n    upstream apps {\n        server web:8000;\n    }\n}\n".to_vec();
    fake
}

/// The set `web:8000` whose replicas `old` are replaced by `new`, pairwise.
fn web(old: &[&str], new: &[&str]) -> ReplicaSet {
    ReplicaSet {
        server: "web:8000".into(),
        statement: String::new(),
        kept: Vec::new(),
        slots: old
            .iter()
            .zip(new)
            .map(|(o, n)| Slot {
                old: Some(Replica {
                    container: o.to_string(),
                    dead: false,
                }),
                new: Some(n.to_string()),
            })
            .collect(),
        via: None,
        hooks: Hooks::default(),
    }
}

/// The record of a rollout of `set` in the fake's upstream under `policy`:
/// one server record per slot, keyed as the journal keys them.
async fn set_rollout(fake: &Fake, set: ReplicaSet, policy: UpdateConfig) -> Rollout<String> {
    let config = fake.load_config().await.unwrap();
    let plan = rolling_update(RollingUpdate {
        config: &config,
        upstream: "apps",
        targets: &[],
        sets: std::slice::from_ref(&set),
        pre_deploy: None,
        policy: &policy,
        timeouts: TIMEOUTS,
        ramp: None,
    })
    .unwrap();
    let servers = set
        .slots
        .iter()
        .map(|slot| ServerRecord {
            replacement: slot.new.clone(),
            set: Some(set.server.clone()),
            ..server_record(
                &set.key(slot),
                slot.old.as_ref().map_or("", |o| o.container.as_str()),
            )
        })
        .collect();
    record(plan, servers)
}

/// Runs the rollout; (outcome, the record, the events).
async fn run(
    fake: &Fake,
    rollout: Rollout<String>,
    cancel: watch::Receiver<bool>,
) -> (Outcome, Rollout<String>, Vec<Event>) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let mut events = Events::default();
    let (outcome, record) = run_in(&state, fake, rollout, cancel, &mut events).await;
    (outcome, record, events.0)
}

/// Runs the rollout journaled in `state`, telling `observer`; (outcome, the record).
async fn run_in(
    state: &StateDir,
    fake: &Fake,
    rollout: Rollout<String>,
    cancel: watch::Receiver<bool>,
    observer: &mut dyn Observer,
) -> (Outcome, Rollout<String>) {
    let mut exec = Executor::new(fake, observer, state, rollout, cancel);
    let outcome = exec.run().await.unwrap();
    let record = exec.rollout;
    assert_eq!(
        state.load(1).unwrap(),
        record,
        "the journal holds the final record"
    );
    (outcome, record)
}

/// [`run`] with no signal arriving (the sender outlives the run: a closed
/// channel ends waits).
async fn run_to_end(
    fake: &Fake,
    rollout: Rollout<String>,
) -> (Outcome, Rollout<String>, Vec<Event>) {
    let (_tx, rx) = watch::channel(false);
    run(fake, rollout, rx).await
}

/// Plans a stop-first rollout of every server of the fake and runs it to its end.
async fn run_all(fake: &Fake, policy: UpdateConfig) -> (Outcome, Rollout<String>, Vec<Event>) {
    let r = rollout(fake, policy).await;
    run_to_end(fake, r).await
}

/// The events of the `nth` step whose action `is` (from its start to its
/// finish), and whether app1's failure and a reload are among them.
fn inside_step(events: &[Event], is: fn(&crate::plan::Action) -> bool, nth: usize) -> (bool, bool) {
    let start = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::StepStart { step } if is(&step.action)))
        .map(|(i, _)| i)
        .nth(nth)
        .expect("the step ran");
    let Event::StepStart { step } = &events[start] else {
        unreachable!()
    };
    let finish = events
        .iter()
        .position(|e| matches!(e, Event::StepFinish { index, .. } if *index == step.index))
        .expect("the step finished");
    let inside = &events[start..finish];
    (
        inside
            .iter()
            .any(|e| matches!(e, Event::Failure { server, .. } if server == "app1:3000")),
        inside.iter().any(|e| matches!(e, Event::Reload { .. })),
    )
}

fn states(r: &Rollout<String>) -> Vec<ServerState> {
    r.servers.iter().map(|s| s.state).collect()
}

/// A run the Docker daemon stopped answering: it failed saying so
/// (`also` in its reason too), unfinished for `resume` or `rollback`, and
/// blaming no server.
fn assert_world_gone(outcome: &Outcome, r: &Rollout<String>, also: &str) {
    match outcome {
        Outcome::Failed(why) => {
            assert!(why.contains("Docker daemon") && why.contains(also), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert!(r.status.is_unfinished());
    assert!(
        !states(r).contains(&ServerState::Failed),
        "no server is blamed: {:?}",
        states(r)
    );
}
