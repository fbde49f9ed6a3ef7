//! The executor's logic against a fake [`World`]: an in-memory nginx.conf,
//! containers that are healthy unless told otherwise, no Docker.
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::event::{Event, HealthVerdict, Observer};
use super::executor::{Executor, Outcome};
use super::journal::{
    Rollout, RolloutKind, ServerRecord, ServerState, StateDir, Status, StepRecord, StepStatus,
};
use super::world::{Reloaded, World};
use crate::conf::MemFs;
use crate::conf::{ConfigSet, FileChange};
use crate::plan::{FailureAction, ServerRef, Target, Timeouts, UpdateConfig, rolling_update};

/// A rolling update of single-server targets only.
fn plan(
    config: &ConfigSet,
    upstream: &str,
    targets: &[Target],
    policy: &UpdateConfig,
    timeouts: Timeouts,
) -> Result<crate::plan::Plan, crate::plan::PlanError> {
    rolling_update(config, upstream, targets, &[], policy, timeouts)
}

const MAIN: &str = "/etc/nginx/nginx.conf";

fn conf(servers: usize) -> Vec<u8> {
    let lines: String = (1..=servers)
        .map(|k| format!("        server app{k}:3000;\n"))
        .collect();
    format!("http {{\n    upstream apps {{\n{lines}    }}\n}}\n").into_bytes()
}

/// What the fake does, and what happened to it.
#[derive(Default)]
struct Fake {
    conf: RefCell<Vec<u8>>,
    /// Servers whose new container never becomes healthy.
    unhealthy: HashSet<String>,
    /// Servers whose new container fails inside the monitor window.
    crashes: HashSet<String>,
    /// `nginx -t` fails.
    bad_config: bool,
    /// A signal arrives while old workers drain (the sender is flipped).
    signal_on_drain: Option<watch::Sender<bool>>,
    /// Servers whose containers were replaced or started, in order.
    replaced: RefCell<Vec<String>>,
    reloads: RefCell<usize>,
}

impl Fake {
    fn new(servers: usize) -> Fake {
        Fake {
            conf: RefCell::new(conf(servers)),
            ..Fake::default()
        }
    }

    fn id(server: &ServerRef) -> String {
        format!("new-{}", server.server)
    }
}

impl World for Fake {
    type Spec = String;

    async fn load_config(&self) -> Result<ConfigSet> {
        Ok(ConfigSet::load_single(
            Path::new(MAIN),
            &MemFs::one(MAIN, self.conf.borrow().clone()),
        )?)
    }

    async fn write_config(&self, changes: &[FileChange]) -> Result<()> {
        for c in changes {
            assert_eq!(
                *self.conf.borrow(),
                c.before,
                "edits apply to the bytes they were made from"
            );
            *self.conf.borrow_mut() = c.after.clone();
        }
        Ok(())
    }

    async fn test_config(&self) -> Result<()> {
        if self.bad_config {
            bail!("nginx: [emerg] host not found in upstream \"app1:3000\"");
        }
        Ok(())
    }

    async fn reload(&self) -> Result<Reloaded> {
        *self.reloads.borrow_mut() += 1;
        Ok(Reloaded {
            old_workers: vec![1],
            new_workers: vec![2],
        })
    }

    async fn wait_drained(&self, _old: &[u32], _timeout: Duration) -> Result<()> {
        if let Some(tx) = &self.signal_on_drain {
            tx.send(true).unwrap();
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn replace(&self, server: &ServerRef, _spec: &String) -> Result<String> {
        self.replaced.borrow_mut().push(server.server.clone());
        Ok(Fake::id(server))
    }

    async fn start_new(&self, server: &ServerRef, spec: &String) -> Result<String> {
        self.replace(server, spec).await
    }

    async fn stop_old(&self, _container: &str) -> Result<()> {
        Ok(())
    }

    async fn is_running(&self, container: &str) -> Result<bool> {
        let server = container.trim_start_matches("new-");
        Ok(!self.crashes.contains(server))
    }

    async fn wait_healthy(
        &self,
        server: &ServerRef,
        _id: &str,
        _timeout: Duration,
    ) -> Result<DateTime<Utc>> {
        if self.unhealthy.contains(&server.server) {
            bail!("container {} turned unhealthy", server.container);
        }
        Ok(Utc::now())
    }

    async fn check(
        &self,
        id: &str,
        _since: DateTime<Utc>,
        _window: Duration,
    ) -> Result<Option<String>> {
        let server = id.trim_start_matches("new-");
        Ok(self
            .crashes
            .contains(server)
            .then(|| format!("{id} exited with code 1")))
    }
}

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

/// A stop-first rollout of every server of the fake's upstream.
async fn rollout(fake: &Fake, servers: usize, policy: UpdateConfig) -> Rollout<String> {
    let config = fake.load_config().await.unwrap();
    let targets: Vec<Target> = (1..=servers)
        .map(|k| Target {
            server: format!("app{k}:3000"),
            container: format!("app{k}"),
            replacement: None,
            drained_by_us: false,
            dead: false,
            pinned: None,
            via: None,
        })
        .collect();
    let timeouts = Timeouts {
        drain: Duration::from_secs(1),
        health: Duration::from_secs(1),
    };
    let plan = plan(&config, "apps", &targets, &policy, timeouts).unwrap();
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
        servers: targets
            .iter()
            .map(|t| ServerRecord {
                server: t.server.clone(),
                container: t.container.clone(),
                old_spec: Some("v1".into()),
                new_spec: Some("v2".into()),
                state: ServerState::Pending,
                new_container: None,
                healthy_at: None,
                error: None,
                replacement: None,
                set: None,
                pinned: None,
            })
            .collect(),
        steps: vec![step; plan.steps.len()],
        rollback_policy: UpdateConfig::engine_defaults(),
        plan,
    }
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
    let mut exec = Executor::new(fake, &mut events, &state, rollout, cancel);
    let outcome = exec.run().await.unwrap();
    let record = exec.rollout;
    assert_eq!(
        state.load(1).unwrap(),
        record,
        "the journal holds the final record"
    );
    (outcome, record, events.0)
}

/// Plans a stop-first rollout of the fake's first `servers` servers and runs it,
/// with no signal arriving (the sender outlives the run: a closed channel ends waits).
async fn run_all(
    fake: &Fake,
    servers: usize,
    policy: UpdateConfig,
) -> (Outcome, Rollout<String>, Vec<Event>) {
    let r = rollout(fake, servers, policy).await;
    let (_tx, rx) = watch::channel(false);
    run(fake, r, rx).await
}

fn states(r: &Rollout<String>) -> Vec<ServerState> {
    r.servers.iter().map(|s| s.state).collect()
}

fn down_lines(fake: &Fake) -> Vec<String> {
    String::from_utf8(fake.conf.borrow().clone())
        .unwrap()
        .lines()
        .filter(|l| l.contains("down"))
        .map(|l| l.trim().to_string())
        .collect()
}

#[tokio::test]
async fn one_failure_in_four_pauses_above_a_ratio_of_0_2_before_the_next_server() {
    let mut fake = Fake::new(4);
    fake.unhealthy.insert("app3:3000".into());
    let (outcome, r, events) =
        run_all(&fake, 4, policy(FailureAction::Pause, 0.2, Duration::ZERO)).await;
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
        down_lines(&fake),
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
    let (outcome, r, _) =
        run_all(&fake, 4, policy(FailureAction::Pause, 0.3, Duration::ZERO)).await;
    assert_eq!(outcome, Outcome::Done);
    use ServerState::*;
    assert_eq!(states(&r), [Done, Done, Failed, Done]);
    assert_eq!(
        down_lines(&fake),
        ["server app3:3000 down;"],
        "a failed server's restore is skipped"
    );
}

#[tokio::test]
async fn failure_actions_rollback_and_continue() {
    let mut fake = Fake::new(2);
    fake.unhealthy.insert("app1:3000".into());
    let (outcome, r, _) = run_all(
        &fake,
        2,
        policy(FailureAction::Rollback, 0.0, Duration::ZERO),
    )
    .await;
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
    let (outcome, r, _) = run_all(
        &fake,
        3,
        policy(FailureAction::Continue, 0.0, Duration::ZERO),
    )
    .await;
    assert_eq!(outcome, Outcome::Done);
    use ServerState::*;
    assert_eq!(states(&r), [Failed, Done, Done]);
    assert_eq!(down_lines(&fake), ["server app1:3000 down;"]);
}

#[tokio::test]
async fn continue_never_drains_the_last_live_server() {
    let mut fake = Fake::new(2);
    fake.unhealthy.insert("app1:3000".into());
    let (outcome, r, _) = run_all(
        &fake,
        2,
        policy(FailureAction::Continue, 0.0, Duration::ZERO),
    )
    .await;
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("last live server")),
        "{outcome:?}"
    );
    assert_eq!(states(&r), [ServerState::Failed, ServerState::Pending]);
    assert_eq!(*fake.replaced.borrow(), ["app1:3000"]);
    assert_eq!(
        down_lines(&fake),
        ["server app1:3000 down;"],
        "app2 still serves"
    );
}

#[tokio::test]
async fn a_failure_inside_the_monitor_window_drains_the_server_and_fires_the_action() {
    let mut fake = Fake::new(2);
    fake.crashes.insert("app1:3000".into());
    let (outcome, r, events) = run_all(
        &fake,
        2,
        policy(FailureAction::Pause, 0.0, Duration::from_millis(10)),
    )
    .await;
    assert!(
        matches!(&outcome, Outcome::Paused(why) if why.contains("monitor window")),
        "{outcome:?}"
    );
    assert_eq!(r.servers[0].state, ServerState::Failed);
    assert_eq!(
        down_lines(&fake),
        ["server app1:3000 down;"],
        "taken back out of the upstream"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Failure { server, .. } if server == "app1:3000"))
    );
}

#[tokio::test]
async fn a_failing_nginx_t_restores_the_bytes_and_the_server_states() {
    let mut fake = Fake::new(2);
    fake.bad_config = true;
    let before = fake.conf.borrow().clone();
    let (outcome, r, _) =
        run_all(&fake, 2, policy(FailureAction::Pause, 0.0, Duration::ZERO)).await;
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("host not found") && why.contains("restored byte for byte")),
        "{outcome:?}"
    );
    assert_eq!(*fake.conf.borrow(), before);
    assert_eq!(*fake.reloads.borrow(), 0);
    assert!(fake.replaced.borrow().is_empty());
    assert_eq!(states(&r), [ServerState::Pending, ServerState::Pending]);
}

#[tokio::test]
async fn an_interrupt_while_draining_restores_the_untouched_server() {
    let (tx, rx) = watch::channel(false);
    let mut fake = Fake::new(2);
    fake.signal_on_drain = Some(tx);
    let before = fake.conf.borrow().clone();
    let r = rollout(&fake, 2, policy(FailureAction::Pause, 0.0, Duration::ZERO)).await;
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
}

#[tokio::test]
async fn a_clean_rollout_updates_every_server_with_n_plus_one_reloads() {
    let fake = Fake::new(3);
    let (outcome, r, events) =
        run_all(&fake, 3, policy(FailureAction::Pause, 0.0, Duration::ZERO)).await;
    assert_eq!(outcome, Outcome::Done);
    let healthy = events
        .iter()
        .filter(|e| matches!(e, Event::Health { status, .. } if *status == HealthVerdict::Healthy))
        .count();
    assert_eq!(healthy, 3);
    assert_eq!(states(&r), [ServerState::Done; 3]);
    assert!(down_lines(&fake).is_empty());
    assert_eq!(*fake.reloads.borrow(), 4, "N servers cost N+1 reloads");
}
