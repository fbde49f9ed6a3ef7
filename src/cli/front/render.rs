//! Plans, summaries, and the `status` / `history` tables, as text.
use std::time::Duration;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

pub use crate::cli::output::shown;
use crate::exec::ServerSummary;
use crate::plan::{HookKind, Plan, Step, Timeouts};
use crate::rollout::{HistoryEntry, StatusReport};

/// Renders a plan: the policy in effect with sources, then every step with its diff.
pub fn render_plan(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    let replicas: usize = plan.sets.iter().map(|s| s.slots.len()).sum();
    out.push_str(&shown(&format!(
        "Plan for upstream {} ({} servers{}):\n",
        plan.upstream,
        plan.targets.len(),
        if replicas > 0 {
            format!(
                ", {replicas} replica slot{} of {}",
                if replicas == 1 { "" } else { "s" },
                plan.sets
                    .iter()
                    .map(|s| s.server.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        }
    )));
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_header(vec!["setting", "value", "from"]);
    for (name, value, source) in plan.policy.describe() {
        table.add_row(vec![name.to_string(), value, source.to_string()]);
    }
    // A timeout comes from its flag or is the default (a flag equal to the default reads "default").
    let timeout_row = |name: &str, value: Duration, default: Duration| {
        let from = if value == default {
            "default".to_string()
        } else {
            format!("flag --{name}")
        };
        vec![
            name.to_string(),
            humantime::format_duration(value).to_string(),
            from,
        ]
    };
    let (timeouts, default) = (plan.timeouts, Timeouts::DEFAULT);
    table.add_row(timeout_row("drain-timeout", timeouts.drain, default.drain));
    table.add_row(timeout_row(
        "health-timeout",
        timeouts.health,
        default.health,
    ));
    let hooks = |kinds: &[HookKind]| {
        plan.steps
            .iter()
            .any(|s| s.action.hook().is_some_and(|k| kinds.contains(&k)))
    };
    if hooks(&[HookKind::PostStart, HookKind::PreStop]) {
        table.add_row(timeout_row("hook-timeout", timeouts.hook, default.hook));
    }
    if hooks(&[HookKind::PreDeploy]) {
        table.add_row(timeout_row(
            "pre-deploy-timeout",
            timeouts.pre_deploy,
            default.pre_deploy,
        ));
    }
    out.push_str(&shown(&table.to_string()));
    out.push('\n');
    // How each server's new container is made.
    for t in &plan.targets {
        if let Some(via) = &t.via {
            out.push_str(&shown(&format!(
                "  {} ({}): {via}\n",
                t.server, t.container
            )));
        }
    }
    for s in &plan.sets {
        if let Some(via) = &s.via {
            out.push_str(&shown(&format!(
                "  {} ({} replicas): {via}\n",
                s.server,
                s.kept.len() + s.slots.iter().filter(|x| x.new.is_some()).count()
            )));
        }
    }
    if plan.steps.is_empty() {
        out.push_str("no step to run\n");
    }
    for step in &plan.steps {
        out.push_str(&step_line(step, plan.steps.len()));
        out.push('\n');
        if let Some(diff) = &step.diff {
            out.push_str(&indent(&crate::diff::colorize(diff, color), "      "));
        }
    }
    out
}

/// The one line a step is shown as: `[ 3/12] wait-drained  …`.
pub fn step_line(step: &Step, total: usize) -> String {
    shown(&format!(
        "[{:>2}/{total}] {:<13} {}",
        step.index,
        step.action.kind(),
        step.action
    ))
}

/// `text` with `prefix` before every line.
pub fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}\n")).collect()
}

/// Renders the final summary table.
pub fn render_summary(servers: &[ServerSummary]) -> String {
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_header(vec!["server", "image", "to healthy", "result"]);
    for s in servers {
        let image = if s.old_image == s.new_image {
            s.new_image.clone()
        } else {
            format!("{} → {}", s.old_image, s.new_image)
        };
        let healthy = s
            .seconds_to_healthy
            .map(|t| format!("{t:.1}s"))
            .unwrap_or_else(|| "-".into());
        table.add_row(vec![s.server.clone(), image, healthy, s.result.to_string()]);
    }
    shown(&table.to_string())
}

/// The `status` table and, below it, what to do about an unfinished rollout.
pub fn render_status(report: &StatusReport) -> String {
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header([
        "upstream",
        "server",
        "state",
        "container",
        "address",
        "image",
        "runs",
        "health",
        "started",
        "rollout",
    ]);
    for s in &report.servers {
        table.add_row([
            s.upstream.clone(),
            s.server.clone(),
            s.state.to_string(),
            s.container.clone(),
            s.address.clone(),
            s.image.clone(),
            s.runs.clone(),
            s.health.to_string(),
            s.started.clone(),
            s.rollout.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = format!("{table}\n");
    if let Some(r) = &report.unfinished {
        out.push_str(&format!(
            "revision {} ({} of upstream {}) is {:?}{}: `nginx-rollout resume` continues it, `nginx-rollout rollback` undoes it\n",
            r.revision,
            r.kind,
            r.upstream,
            r.status,
            r.reason
                .as_ref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        ));
    }
    shown(&out)
}

/// The `history` table.
pub fn render_history(entries: &[HistoryEntry]) -> String {
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_header(["rev", "kind", "status", "started", "upstream", "command"]);
    for r in entries {
        let kind = match r.undoes {
            Some(n) => format!("{} of {n}", r.kind),
            None => r.kind.to_string(),
        };
        table.add_row([
            r.revision.to_string(),
            kind,
            r.status.to_string(),
            crate::exec::time::format(r.started_at),
            r.upstream.clone(),
            r.command.clone(),
        ]);
    }
    shown(&format!("{table}\n"))
}
