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
use crate::plan::{
    Action, FailureAction, HookCommand, HookExit, HookKind, Hooks, Order, PreDeploy, ServerRef,
    Target, Timeouts, UpdateConfig, rolling_update,
};

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
    /// Servers whose health the world cannot tell: the daemon went away.
    unreachable: HashSet<String>,
    /// Servers whose new container fails inside the monitor window.
    crashes: HashSet<String>,
    /// `nginx -t` fails.
    bad_config: bool,
    /// A signal arrives while old workers drain (the sender is flipped).
    signal_on_drain: Option<watch::Sender<bool>>,
    /// Servers whose containers were replaced or started, in order.
    replaced: RefCell<Vec<String>>,
    /// Servers whose replacement was created ahead, not yet used by `replace`.
    prepared: RefCell<Vec<String>>,
    /// Servers whose replacement was created ahead and used by `replace`.
    used_prepared: RefCell<Vec<String>>,
    /// Servers whose replacement was created ahead and discarded unused.
    discarded: RefCell<Vec<String>>,
    reloads: RefCell<usize>,
    /// Hook commands that exit 1, as `CONTAINER PROGRAM` (old and new
    /// containers share their names in the fake).
    failing_hooks: HashSet<String>,
    /// The pre-deploy one-off exits 2.
    pre_deploy_fails: bool,
    /// What ran, in order: `exec CONTAINER ARGV…` or `one-off NAME SPEC ARGV…`.
    ran: RefCell<Vec<String>>,
    /// An operator's edit (from, to) that lands between our read and our next write.
    operator_edit: RefCell<Option<(String, String)>>,
    /// How long stopping an old container takes.
    stop_takes: Duration,
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
        if let Some((from, to)) = self.operator_edit.borrow_mut().take() {
            let text = String::from_utf8(self.conf.borrow().clone())?;
            *self.conf.borrow_mut() = text.replace(&from, &to).into_bytes();
        }
        for c in changes {
            if *self.conf.borrow() != c.before {
                return Err(crate::conf::FileChanged {
                    path: c.path.clone(),
                }
                .into());
            }
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

    async fn prepare(&self, server: &ServerRef, _spec: &String) -> Result<()> {
        self.prepared.borrow_mut().push(server.server.clone());
        Ok(())
    }

    async fn discard_prepared(&self, _containers: &[String]) {
        let left = std::mem::take(&mut *self.prepared.borrow_mut());
        self.discarded.borrow_mut().extend(left);
    }

    async fn replace(&self, server: &ServerRef, _spec: &String) -> Result<String> {
        let mut prepared = self.prepared.borrow_mut();
        if let Some(at) = prepared.iter().position(|s| *s == server.server) {
            self.used_prepared.borrow_mut().push(prepared.remove(at));
        }
        self.replaced.borrow_mut().push(server.server.clone());
        Ok(Fake::id(server))
    }

    async fn start_new(&self, server: &ServerRef, spec: &String) -> Result<String> {
        self.replace(server, spec).await
    }

    async fn stop_old(&self, _container: &str) -> Result<()> {
        tokio::time::sleep(self.stop_takes).await;
        Ok(())
    }

    async fn exec_hook(
        &self,
        container: &str,
        command: &HookCommand,
        _timeout: Duration,
    ) -> Result<HookExit> {
        self.ran
            .borrow_mut()
            .push(format!("exec {container} {}", command.argv.join(" ")));
        let code = i64::from(
            self.failing_hooks
                .contains(&format!("{container} {}", command.argv[0])),
        );
        Ok(HookExit {
            code,
            output: format!("ran {}", command.argv.join(" ")),
        })
    }

    async fn run_one_off(
        &self,
        name: &str,
        spec: &String,
        command: &HookCommand,
        _timeout: Duration,
    ) -> Result<HookExit> {
        self.ran
            .borrow_mut()
            .push(format!("one-off {name} {spec} {}", command.argv.join(" ")));
        Ok(HookExit {
            code: if self.pre_deploy_fails { 2 } else { 0 },
            output: "migrating\nno database".into(),
        })
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
        if self.unreachable.contains(&server.server) {
            return Err(anyhow::anyhow!("connection refused").context(super::world::Unreachable));
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
    rollout_with(fake, servers, &Hooks::default(), None, policy).await
}

/// [`rollout`] with `hooks` on every server and a pre-deploy job.
async fn rollout_with(
    fake: &Fake,
    servers: usize,
    hooks: &Hooks,
    pre_deploy: Option<&PreDeploy>,
    policy: UpdateConfig,
) -> Rollout<String> {
    let targets: Vec<Target> = (1..=servers)
        .map(|k| Target {
            server: format!("app{k}:3000"),
            container: format!("app{k}"),
            replacement: None,
            drained_by_us: false,
            dead: false,
            pinned: None,
            via: None,
            hooks: hooks.clone(),
        })
        .collect();
    rollout_of(fake, &targets, pre_deploy, policy).await
}

/// A start-first rollout of every server of the fake's upstream (`appK` by
/// `appK-b`), with `delay` between them.
async fn start_first_rollout(fake: &Fake, servers: usize, delay: Duration) -> Rollout<String> {
    let targets: Vec<Target> = (1..=servers)
        .map(|k| Target {
            server: format!("app{k}:3000"),
            container: format!("app{k}"),
            replacement: Some(format!("app{k}-b")),
            drained_by_us: false,
            dead: false,
            pinned: None,
            via: None,
            hooks: Hooks::default(),
        })
        .collect();
    let mut policy = policy(FailureAction::Pause, 0.0, Duration::ZERO);
    policy.order.value = Order::StartFirst;
    policy.delay.value = delay;
    rollout_of(fake, &targets, None, policy).await
}

/// The record of a rollout of `targets`, planned against the fake's config.
async fn rollout_of(
    fake: &Fake,
    targets: &[Target],
    pre_deploy: Option<&PreDeploy>,
    policy: UpdateConfig,
) -> Rollout<String> {
    let config = fake.load_config().await.unwrap();
    let timeouts = Timeouts {
        drain: Duration::from_secs(1),
        health: Duration::from_secs(1),
        ..Timeouts::DEFAULT
    };
    let plan = rolling_update(
        &config,
        "apps",
        targets,
        &[],
        pre_deploy,
        &policy,
        timeouts,
        None,
    )
    .unwrap();
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
async fn an_operators_edit_under_a_drain_is_kept_and_the_drain_spliced_again() {
    let fake = Fake::new(2);
    *fake.operator_edit.borrow_mut() = Some((
        "    upstream apps {\n".into(),
        "    keepalive_timeout 7s; # the operator's\n    upstream apps {\n".into(),
    ));
    let (outcome, r, _) =
        run_all(&fake, 2, policy(FailureAction::Pause, 0.0, Duration::ZERO)).await;
    assert!(matches!(outcome, Outcome::Done), "{outcome:?}");
    assert_eq!(r.status, Status::Done);
    let text = String::from_utf8(fake.conf.borrow().clone()).unwrap();
    assert_eq!(
        text,
        String::from_utf8(conf(2)).unwrap().replace(
            "    upstream apps {\n",
            "    keepalive_timeout 7s; # the operator's\n    upstream apps {\n"
        )
    );
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
async fn a_world_gone_away_fails_the_step_and_no_server_even_with_continue() {
    let mut fake = Fake::new(2);
    fake.unreachable.insert("app1:3000".into());
    let (outcome, r, _) = run_all(
        &fake,
        2,
        policy(FailureAction::Continue, 0.0, Duration::ZERO),
    )
    .await;
    match &outcome {
        Outcome::Failed(why) => assert!(why.contains("Docker daemon"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.status, Status::Failed, "unfinished: resume or rollback");
    assert!(r.status.is_unfinished());
    assert!(
        !states(&r).contains(&ServerState::Failed),
        "no server is blamed: {:?}",
        states(&r)
    );
    assert_eq!(*fake.replaced.borrow(), ["app1:3000"], "nothing after it");
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
    assert_eq!(
        *fake.discarded.borrow(),
        ["app1:3000"],
        "the replacement created while draining is removed"
    );
}

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
        let r = start_first_rollout(&fake, 2, Duration::from_secs(1)).await;
        let (_tx, rx) = watch::channel(false);
        let (outcome, r, events) = run(&fake, r, rx).await;
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(states(&r), [ServerState::Done; 2]);
        assert_eq!(delays_waited(&events), [left], "a stop of {stop} ms");
    }
}

/// A run resumed at the delay did not see the stop begin: it waits the whole delay.
#[tokio::test(start_paused = true)]
async fn a_resumed_run_waits_the_whole_delay() {
    let fake = Fake::new(2);
    let mut r = start_first_rollout(&fake, 2, Duration::from_secs(1)).await;
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

#[tokio::test]
async fn each_replacement_is_created_while_its_old_container_drains() {
    let fake = Fake::new(3);
    let (outcome, _, _) =
        run_all(&fake, 3, policy(FailureAction::Pause, 0.0, Duration::ZERO)).await;
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        *fake.used_prepared.borrow(),
        *fake.replaced.borrow(),
        "every replace found its container made ahead"
    );
    assert_eq!(fake.replaced.borrow().len(), 3);
    assert!(fake.discarded.borrow().is_empty());
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

mod canary {
    use super::*;
    use crate::plan::{Canary, Direction, Gate, LineEdit, Overrides, Share, resolve, single_edit};

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

    fn conf_text(fake: &Fake) -> String {
        String::from_utf8(fake.conf.borrow().clone()).unwrap()
    }

    #[tokio::test]
    async fn a_ramp_holds_each_share_then_leaves_every_byte_as_it_was() {
        let fake = Fake::new(2);
        let before = fake.conf.borrow().clone();
        let (outcome, r, events) = run_all(&fake, 2, ramp(NO_HOLD, FailureAction::Pause)).await;
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
        let (outcome, r, events) = run_all(&fake, 2, ramp(NO_HOLD, FailureAction::Pause)).await;
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
        let text = conf_text(&fake);
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
        let mut rollout = rollout(&fake, 2, ramp(Gate::Pause, FailureAction::Pause)).await;
        for share in ["10%", "50%"] {
            let (_tx, rx) = watch::channel(false);
            let (outcome, r, _) = run(&fake, rollout, rx).await;
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
            assert!(conf_text(&fake).contains("weight="));
            rollout = r;
        }
        let (_tx, rx) = watch::channel(false);
        let (outcome, r, _) = run(&fake, rollout, rx).await;
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
        let mut r = rollout(&fake, 1, UpdateConfig::engine_defaults()).await;
        r.kind = RolloutKind::Weight;
        r.steps = vec![r.steps[0].clone(); plan.steps.len()];
        r.plan = plan;
        r.servers = vec![ServerRecord {
            server: "app2:3000".into(),
            container: String::new(),
            old_spec: None,
            new_spec: None,
            state: ServerState::Pending,
            new_container: None,
            healthy_at: None,
            error: None,
            replacement: None,
            set: None,
            pinned: None,
        }];
        let (_tx, rx) = watch::channel(false);
        let (outcome, r, _) = run(&fake, r, rx).await;
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(states(&r), [ServerState::Done]);
        assert!(conf_text(&fake).contains("server app2:3000 weight=3;"));
    }
}
fn hooks() -> Hooks {
    Hooks {
        post_start: vec![HookCommand::from_flag("--post-start", "warm-up").unwrap()],
        pre_stop: vec![HookCommand::from_flag("--pre-stop", "drain-queue").unwrap()],
    }
}

/// Runs a rollout made by [`rollout_with`], no signal arriving.
async fn run_with(
    fake: &Fake,
    servers: usize,
    pre_deploy: Option<&PreDeploy>,
    policy: UpdateConfig,
) -> (Outcome, Rollout<String>, Vec<Event>) {
    let r = rollout_with(fake, servers, &hooks(), pre_deploy, policy).await;
    let (_tx, rx) = watch::channel(false);
    run(fake, r, rx).await
}

#[tokio::test]
async fn hooks_run_in_the_old_container_before_its_stop_and_the_new_one_after_its_start() {
    let fake = Fake::new(2);
    let (outcome, r, events) = run_with(
        &fake,
        2,
        None,
        policy(FailureAction::Pause, 0.0, Duration::ZERO),
    )
    .await;
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
    let (outcome, r, _) = run_with(
        &fake,
        2,
        None,
        policy(FailureAction::Rollback, 0.0, Duration::ZERO),
    )
    .await;
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
        down_lines(&fake),
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
async fn a_failing_pre_stop_leaves_the_old_container_serving_nothing_and_untouched() {
    let mut fake = Fake::new(3);
    fake.failing_hooks.insert("app2 drain-queue".into());
    let (outcome, r, _) = run_with(
        &fake,
        3,
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
    assert_eq!(down_lines(&fake), ["server app2:3000 down;"]);
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
    let (outcome, _, _) = run_with(
        &fake,
        2,
        Some(&job()),
        policy(FailureAction::Pause, 0.0, Duration::ZERO),
    )
    .await;
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
    let (outcome, r, _) = run_with(
        &fake,
        2,
        Some(&job()),
        policy(FailureAction::Rollback, 0.0, Duration::ZERO),
    )
    .await;
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
