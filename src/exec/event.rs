//! What the executor reports while it runs. Front ends render these; with
//! `--output json` each one is one line on stdout (schema: `docs/events.schema.json`).
use serde::Serialize;

use crate::plan::{Plan, Step};

/// Version of the JSON event schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The plan about to run.
    Plan {
        /// Revision number of this rollout.
        revision: u32,
        /// `deploy` or `rollback`.
        kind: String,
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
        /// `done`, `skipped` or `failed`.
        result: String,
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
        /// `healthy`, `unhealthy`, …
        status: String,
    },
    /// A server failed.
    Failure {
        /// The server.
        server: String,
        /// Why.
        reason: String,
        /// Failures so far.
        failures: usize,
        /// Servers in the rollout.
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
        /// Final status (`done`, `paused`, `failed`, `interrupted`, `rolled-back`).
        status: String,
        /// Process exit code that follows.
        exit_code: i32,
        /// Per server.
        servers: Vec<ServerSummary>,
        /// Reloads done.
        reloads: usize,
        /// Wall time in seconds.
        seconds: f64,
        /// Why it did not finish.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
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
    /// `updated`, `failed`, `skipped`, `pending`.
    pub result: String,
}

/// The operator's answer before a step (interactive mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Yes,
    /// Do not run it; go on with the next.
    Skip,
    /// Run it and every following step without asking.
    All,
    /// Stop safely, leaving a resumable journal.
    Quit,
    /// Stop and roll back.
    Rollback,
}

/// A front end: receives events and answers before each step.
pub trait Observer {
    /// Called for every event.
    fn event(&mut self, event: &Event);

    /// Called before each step; non-interactive front ends always say yes.
    fn confirm(&mut self, _step: &Step) -> Decision {
        Decision::Yes
    }
}

impl<T: Observer + ?Sized> Observer for Box<T> {
    fn event(&mut self, event: &Event) {
        (**self).event(event)
    }

    fn confirm(&mut self, step: &Step) -> Decision {
        (**self).confirm(step)
    }
}
