//! What the executor reports while it runs. Front ends render these; with
//! `--output json` each one is one line on stdout (schema: `docs/events.schema.json`).
use std::fmt;

use serde::Serialize;

use super::journal::{RolloutKind, Status};
use crate::plan::{HookKind, Plan, Step};

/// One event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The plan about to run.
    Plan {
        /// Revision number of this rollout.
        revision: u32,
        /// What runs.
        kind: PlanKind,
        /// The plan.
        plan: Box<Plan>,
    },
    /// A step starts.
    StepStart {
        /// The step.
        step: Step,
    },
    /// A step ended.
    StepFinish {
        /// Its index.
        index: usize,
        /// How it ended.
        result: StepResult,
        /// Seconds it took.
        seconds: f64,
        /// Why it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A wait begins (drain, health, monitor, delay); front ends show a spinner until the step finishes.
    Wait {
        /// Index of the waiting step.
        index: usize,
        /// What is awaited.
        what: String,
        /// The limit, in seconds.
        timeout_seconds: f64,
    },
    /// nginx runs a new configuration.
    Reload {
        /// Worker pids before.
        old_workers: Vec<u32>,
        /// Worker pids after.
        new_workers: Vec<u32>,
    },
    /// A server's container changed health.
    Health {
        /// The server.
        server: String,
        /// The container.
        container: String,
        /// Healthy or not.
        status: HealthVerdict,
    },
    /// A hook command ended (it ran, whatever its exit code).
    Hook {
        /// Index of the step that ran it.
        index: usize,
        /// Which hook.
        hook: HookKind,
        /// The server it ran for (the journal record of a pre-deploy's spec).
        server: String,
        /// The container it ran in.
        container: String,
        /// The command.
        command: Vec<String>,
        /// Its exit code.
        exit_code: i64,
        /// The last lines of its output.
        output: String,
    },
    /// A server failed.
    Failure {
        /// The server.
        server: String,
        /// Why.
        reason: String,
        /// Failures so far.
        failures: usize,
        /// Servers the run's plan updates (a resumed rollout's: those left).
        total: usize,
    },
    /// The rollout will be rolled back.
    Rollback {
        /// Why.
        reason: String,
    },
    /// The end: one per rollout.
    Summary {
        /// Revision number.
        revision: u32,
        /// Final status; front ends that show an exit code derive it from this.
        status: Status,
        /// Per server.
        servers: Vec<ServerSummary>,
        /// Reloads done.
        reloads: usize,
        /// Wall time in seconds.
        seconds: f64,
        /// Why it did not finish.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Closed by `rollback` without running (it changed no server): the
        /// command did what was asked, whatever the status.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        closed: bool,
    },
}

/// One row of the final summary.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSummary {
    /// The server.
    pub server: String,
    /// Image before.
    pub old_image: String,
    /// Image after.
    pub new_image: String,
    /// Seconds from the step that replaced it to healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_to_healthy: Option<f64>,
    /// Where it ended up.
    pub result: ServerResult,
}

/// What a `plan` event is the plan of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanKind {
    /// A rolling update.
    Deploy,
    /// A rollback.
    Rollback,
    /// What `resume` would run (dry run; a resumed rollout keeps its own kind).
    Resume,
    /// A live drain.
    Drain,
    /// A live undrain.
    Undrain,
    /// A live weight change.
    Weight,
    /// A live add of a server line.
    Add,
    /// A live remove of a server line.
    Remove,
}

impl From<RolloutKind> for PlanKind {
    fn from(kind: RolloutKind) -> Self {
        match kind {
            RolloutKind::Deploy => PlanKind::Deploy,
            RolloutKind::Rollback => PlanKind::Rollback,
            RolloutKind::Drain => PlanKind::Drain,
            RolloutKind::Undrain => PlanKind::Undrain,
            RolloutKind::Weight => PlanKind::Weight,
            RolloutKind::Add => PlanKind::Add,
            RolloutKind::Remove => PlanKind::Remove,
        }
    }
}

impl fmt::Display for PlanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlanKind::Deploy => "deploy",
            PlanKind::Rollback => "rollback",
            PlanKind::Resume => "resume",
            PlanKind::Drain => "drain",
            PlanKind::Undrain => "undrain",
            PlanKind::Weight => "weight",
            PlanKind::Add => "add",
            PlanKind::Remove => "remove",
        })
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepResult {
    /// It ran to its end.
    Done,
    /// The operator skipped it.
    Skipped,
    /// It failed.
    Failed,
}

impl fmt::Display for StepResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepResult::Done => "done",
            StepResult::Skipped => "skipped",
            StepResult::Failed => "failed",
        })
    }
}

/// A new container's health as a `health` event reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthVerdict {
    /// It passed its health gate.
    Healthy,
    /// It did not.
    Unhealthy,
}

impl fmt::Display for HealthVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthVerdict::Healthy => "healthy",
            HealthVerdict::Unhealthy => "unhealthy",
        })
    }
}

/// Where a server ended up, in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ServerResult {
    /// Its new container serves.
    #[serde(rename = "updated")]
    Updated,
    /// Its new container failed.
    #[serde(rename = "failed")]
    Failed,
    /// Not touched.
    #[serde(rename = "pending")]
    Pending,
    /// Touched, not finished.
    #[serde(rename = "in progress")]
    InProgress,
}

impl fmt::Display for ServerResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerResult::Updated => "updated",
            ServerResult::Failed => "failed",
            ServerResult::Pending => "pending",
            ServerResult::InProgress => "in progress",
        })
    }
}

/// The operator's answer before a step (interactive mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Yes,
    /// Do not run it; go on with the next.
    Skip,
    /// Run it and every following step without asking (the front end stops asking).
    All,
    /// Stop safely, leaving a resumable journal.
    Quit,
    /// Stop and roll back.
    Rollback,
}

/// A front end: receives events, approves a plan before it runs, answers
/// before each step, and hears notices meant for the operator.
pub trait Observer {
    /// Called for every event.
    fn event(&mut self, event: &Event);

    /// Called once before a plan runs; `false` runs nothing. Front ends that
    /// do not ask say yes.
    fn approve(&mut self, _kind: PlanKind, _plan: &Plan) -> anyhow::Result<bool> {
        Ok(true)
    }

    /// Called before each step; non-interactive front ends always say yes.
    fn confirm(&mut self, _step: &Step) -> Decision {
        Decision::Yes
    }

    /// Something the operator should know that is not an event (a server
    /// skipped, a lock taken over from a dead process).
    fn notice(&mut self, _text: &str) {}
}

impl<T: Observer + ?Sized> Observer for Box<T> {
    fn event(&mut self, event: &Event) {
        (**self).event(event)
    }

    fn approve(&mut self, kind: PlanKind, plan: &Plan) -> anyhow::Result<bool> {
        (**self).approve(kind, plan)
    }

    fn confirm(&mut self, step: &Step) -> Decision {
        (**self).confirm(step)
    }

    fn notice(&mut self, text: &str) {
        (**self).notice(text)
    }
}
