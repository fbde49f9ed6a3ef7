//! Running a prepared plan: lock, journal, executor, automatic rollback, summary.
use std::time::Instant;

use anyhow::{Result, bail};
use tokio::sync::watch;

use super::live::{Desired, Live};
use crate::exec::event::{Event, Observer, ServerSummary};
use crate::exec::journal::{Rollout, ServerState, StateDir, Status, StepRecord, StepStatus, now};
use crate::exec::{Backend, Executor, Outcome};
use crate::plan::{Order, Target, UpdateConfig, plan};

/// Exit codes, in the spirit of `kubectl rollout status`.
pub mod exit {
    /// Done.
    pub const DONE: i32 = 0;
    /// Failed (and rolled back, when the failure action says so).
    pub const FAILED: i32 = 1;
    /// Bad usage or a config error.
    pub const USAGE: i32 = 2;
    /// Paused: `resume` or `rollback` it.
    pub const PAUSED: i32 = 3;
    /// Interrupted by SIGINT/SIGTERM: `resume` or `rollback` it.
    pub const INTERRUPTED: i32 = 4;
    /// Another rollout holds the lock.
    pub const LOCKED: i32 = 5;
}

fn exit_code(outcome: &Outcome) -> i32 {
    match outcome {
        Outcome::Done => exit::DONE,
        Outcome::Paused(_) => exit::PAUSED,
        Outcome::Interrupted => exit::INTERRUPTED,
        Outcome::Failed(_) | Outcome::RollbackRequested(_) => exit::FAILED,
    }
}

/// Everything a run needs besides the plan.
pub struct Runner<'a, O: Observer> {
    /// Docker and nginx.
    pub live: &'a Live,
    /// The journal.
    pub state: &'a StateDir,
    /// The front end.
    pub observer: &'a mut O,
    /// Becomes true on SIGINT/SIGTERM.
    pub cancel: watch::Receiver<bool>,
    /// Ask before each step.
    pub interactive: bool,
}

impl<O: Observer> Runner<'_, O> {
    /// Starts a new rollout from `rollout` (already holding its plan and servers) and runs it,
    /// rolling back automatically when the failure action says so. Returns the exit code.
    pub async fn start(&mut self, mut rollout: Rollout) -> Result<i32> {
        let config = self.live.load_config().await?;
        let files: Vec<_> = config
            .files()
            .map(|(p, b)| (p.to_path_buf(), b.to_vec()))
            .collect();
        rollout.config_before = self.state.save_config(rollout.revision, &files)?;
        self.run(rollout).await
    }

    /// Runs (or continues) a rollout and reports it.
    pub async fn run(&mut self, rollout: Rollout) -> Result<i32> {
        let started = Instant::now();
        self.observer.event(&Event::Plan {
            revision: rollout.revision,
            kind: rollout.kind.clone(),
            plan: Box::new(rollout.plan.clone()),
        });
        let mut exec = Executor::new(
            self.live,
            self.observer,
            self.state,
            rollout,
            self.cancel.clone(),
            self.interactive,
        );
        let outcome = exec.run().await?;
        let (mut rollout, reloads, healthy) = (exec.rollout, exec.reloads, exec.time_to_healthy);
        let mut code = exit_code(&outcome);
        let mut reason = outcome.reason();
        if let Outcome::RollbackRequested(why) = &outcome {
            if rollout.kind == "rollback" {
                reason = Some(format!("{why}; a rollback is never rolled back"));
            } else {
                self.observer.event(&Event::Rollback {
                    reason: why.clone(),
                });
                let undo = self
                    .rollback_of(&rollout, None, &rollout.rollback_policy)
                    .await?;
                let undo_revision = undo.revision;
                let undo_code = Box::pin(self.start(undo)).await?;
                rollout.status = if undo_code == exit::DONE {
                    Status::RolledBack
                } else {
                    Status::Failed
                };
                rollout.reason = Some(format!("{why}; rolled back by revision {undo_revision}"));
                self.state.save(&rollout)?;
                code = exit::FAILED;
                reason = rollout.reason.clone();
            }
        }
        let servers = summarize(&rollout, &healthy);
        self.observer.event(&Event::Summary {
            revision: rollout.revision,
            status: serde_json::to_value(rollout.status)?
                .as_str()
                .unwrap_or_default()
                .to_string(),
            exit_code: code,
            servers,
            reloads,
            seconds: started.elapsed().as_secs_f64(),
            reason,
        });
        self.state.prune()?;
        Ok(code)
    }

    /// A rollout that undoes `of`: redeploys each touched server's previous container
    /// (or revision `to`'s containers) with the rollback settings.
    pub async fn rollback_of(
        &self,
        of: &Rollout,
        to: Option<&Rollout>,
        policy: &UpdateConfig,
    ) -> Result<Rollout> {
        let config = self.live.load_config().await?;
        let up = config.upstream(&of.upstream)?;
        let mut servers = Vec::new();
        let mut targets = Vec::new();
        for rec in of
            .servers
            .iter()
            .filter(|r| r.state != ServerState::Pending)
        {
            let (address, container) = match &rec.replacement {
                Some(name) if rec.state == ServerState::Done => (
                    crate::plan::planner::replacement_address(&rec.server, name),
                    name.clone(),
                ),
                _ => (rec.server.clone(), rec.container.clone()),
            };
            let desired = match to {
                Some(target) => match target.servers.iter().find(|r| r.server == rec.server) {
                    Some(t) => t.new_spec.clone(),
                    None => bail!("revision {} has no server {}", target.revision, rec.server),
                },
                None => rec.old_spec.clone(),
            };
            let drained_by_us = up.is_down(&address) && rec.drained_by_us();
            let mut record = rec.clone();
            record.server = address.clone();
            record.container = container.clone();
            record.old_spec = rec.new_spec.clone();
            record.new_spec = desired;
            record.state = if drained_by_us {
                ServerState::Drained
            } else {
                ServerState::Pending
            };
            record.new_container = None;
            record.healthy_at = None;
            record.error = None;
            record.replacement = None;
            let dead = !self.live.is_running(&container).await?;
            let mut target = Target {
                server: address,
                container,
                replacement: None,
                drained_by_us,
                dead,
            };
            if policy.order.value == Order::StartFirst {
                let base = target
                    .container
                    .strip_suffix("-b")
                    .unwrap_or(&target.container)
                    .to_string();
                let name = crate::docker::backend::slot_name(&base, &target.container);
                target.replacement = Some(name.clone());
                record.replacement = Some(name);
            }
            targets.push(target);
            servers.push(record);
        }
        if targets.is_empty() {
            bail!(
                "revision {} changed no server; nothing to roll back",
                of.revision
            );
        }
        let plan = plan(&config, &of.upstream, &targets, policy, of.plan.timeouts)?;
        Ok(new_rollout(
            self.state.next_revision()?,
            "rollback",
            Some(of.revision),
            &of.command,
            &self.live.nginx.name,
            plan,
            policy.clone(),
            servers,
        ))
    }
}

/// A fresh rollout record.
#[allow(clippy::too_many_arguments)]
pub fn new_rollout(
    revision: u32,
    kind: &str,
    undoes: Option<u32>,
    command: &str,
    nginx: &str,
    plan: crate::plan::Plan,
    rollback_policy: crate::plan::UpdateConfig,
    servers: Vec<crate::exec::journal::ServerRecord>,
) -> Rollout {
    let steps = vec![
        StepRecord {
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            error: None
        };
        plan.steps.len()
    ];
    Rollout {
        revision,
        kind: kind.into(),
        undoes,
        command: command.into(),
        started_at: now(),
        finished_at: None,
        status: Status::Running,
        reason: None,
        nginx: nginx.into(),
        upstream: plan.upstream.clone(),
        config_before: Vec::new(),
        servers,
        plan,
        rollback_policy,
        steps,
    }
}

fn image_of(spec: &serde_json::Value) -> String {
    serde_json::from_value::<Desired>(spec.clone())
        .map(|d| d.image().to_string())
        .unwrap_or_default()
}

fn summarize(
    rollout: &Rollout,
    healthy: &std::collections::HashMap<String, f64>,
) -> Vec<ServerSummary> {
    rollout
        .servers
        .iter()
        .map(|s| ServerSummary {
            server: s.server.clone(),
            old_image: image_of(&s.old_spec),
            new_image: image_of(&s.new_spec),
            seconds_to_healthy: healthy.get(&s.server).copied(),
            result: match s.state {
                ServerState::Done => "updated",
                ServerState::Failed => "failed",
                ServerState::Pending => "pending",
                _ => "in progress",
            }
            .into(),
        })
        .collect()
}
