//! The front ends' output: human (stderr, spinners on a TTY), JSON lines
//! (stdout), and the interactive prompt before each step.
use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::event::{Decision, Event, Observer, SCHEMA_VERSION, ServerSummary};
use crate::plan::{Plan, Step, Timeouts};

/// How human output looks.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// ANSI colors (a TTY on stderr and no `NO_COLOR`).
    pub color: bool,
    /// Spinners (a TTY on stderr).
    pub animate: bool,
    /// Only errors and the summary.
    pub quiet: bool,
    /// Also worker pids, timings of every wait.
    pub verbose: bool,
}

impl Style {
    /// Detects the terminal and `NO_COLOR`.
    pub fn detect(quiet: bool, verbose: bool) -> Style {
        let tty = std::io::stderr().is_terminal();
        let no_color = crate::diff::no_color();
        console::set_colors_enabled_stderr(tty && !no_color);
        console::set_colors_enabled(std::io::stdout().is_terminal() && !no_color);
        Style {
            color: tty && !no_color,
            animate: tty,
            quiet,
            verbose,
        }
    }
}

/// Renders a plan: the policy in effect with sources, then every step with its diff.
pub fn render_plan(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Plan for upstream {} ({} servers):\n",
        plan.upstream,
        plan.targets.len()
    ));
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
    out.push_str(&table.to_string());
    out.push('\n');
    for step in &plan.steps {
        out.push_str(&step_line(step, plan.steps.len()));
        out.push('\n');
        if let Some(diff) = &step.diff {
            out.push_str(&indent(&crate::diff::colorize(diff, color), "      "));
        }
    }
    out
}

fn step_line(step: &Step, total: usize) -> String {
    format!(
        "[{:>2}/{total}] {:<13} {}",
        step.index,
        step.action.kind(),
        step.action
    )
}

fn indent(text: &str, prefix: &str) -> String {
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
        table.add_row(vec![s.server.clone(), image, healthy, s.result.clone()]);
    }
    table.to_string()
}

/// Human progress on stderr.
pub struct Human {
    style: Style,
    total: usize,
    spinner: Option<ProgressBar>,
}

impl Human {
    /// A human front end.
    pub fn new(style: Style) -> Human {
        Human {
            style,
            total: 0,
            spinner: None,
        }
    }

    fn line(&mut self, text: impl AsRef<str>) {
        let text = text.as_ref();
        match &self.spinner {
            Some(sp) => sp.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn stop_spinner(&mut self) {
        if let Some(sp) = self.spinner.take() {
            sp.finish_and_clear();
        }
    }
}

impl Observer for Human {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Plan {
                revision,
                kind,
                plan,
            } => {
                self.total = plan.steps.len();
                if !self.style.quiet {
                    self.line(format!(
                        "{kind} revision {revision}: {} steps",
                        plan.steps.len()
                    ));
                }
            }
            Event::StepStart { step } => {
                if !self.style.quiet {
                    let text = step_line(step, self.total);
                    self.line(style(text).bold().for_stderr().to_string());
                }
            }
            Event::Wait {
                what,
                timeout_seconds,
                ..
            } => {
                let what = format!("waiting for {what} (timeout {:.0}s)", timeout_seconds);
                if self.style.animate && !self.style.quiet {
                    let sp = ProgressBar::new_spinner().with_message(what);
                    sp.set_draw_target(ProgressDrawTarget::stderr());
                    sp.set_style(
                        ProgressStyle::with_template("      {spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    sp.enable_steady_tick(Duration::from_millis(100));
                    self.spinner = Some(sp);
                } else if self.style.verbose {
                    self.line(format!("      {what}"));
                }
            }
            Event::StepFinish {
                result,
                seconds,
                error,
                ..
            } => {
                self.stop_spinner();
                match error {
                    Some(e) => self.line(format!(
                        "      {} {e}",
                        style(result.to_uppercase()).red().bold().for_stderr()
                    )),
                    None if self.style.verbose => {
                        self.line(format!("      {result} in {seconds:.2}s"))
                    }
                    None => {}
                }
            }
            Event::Reload {
                old_workers,
                new_workers,
            } => {
                if self.style.verbose {
                    self.line(format!("      workers {old_workers:?} → {new_workers:?}"));
                }
            }
            Event::Health {
                server,
                container,
                status,
            } => {
                if !self.style.quiet {
                    self.line(format!("      {container} ({server}) is {status}"));
                }
            }
            Event::Failure {
                server,
                reason,
                failures,
                total,
            } => {
                self.line(format!(
                    "      {} {server}: {reason} ({failures}/{total} failed)",
                    style("failure").red().bold().for_stderr()
                ));
            }
            Event::Rollback { reason } => {
                self.line(format!(
                    "{} {reason}",
                    style("rolling back:").yellow().bold().for_stderr()
                ));
            }
            Event::Summary {
                revision,
                status,
                servers,
                reloads,
                seconds,
                reason,
                ..
            } => {
                self.stop_spinner();
                self.line(render_summary(servers));
                let status = match status.as_str() {
                    "done" => style(status.clone()).green(),
                    _ => style(status.clone()).red(),
                };
                self.line(format!(
                    "revision {revision}: {} in {seconds:.1}s, {reloads} nginx reloads",
                    status.bold().for_stderr()
                ));
                if let Some(reason) = reason {
                    self.line(format!("  {reason}"));
                }
            }
        }
    }
}

/// JSON lines on stdout, one per event, each with the schema version `v`.
#[derive(Debug, Default)]
pub struct Json;

impl Observer for Json {
    fn event(&mut self, event: &Event) {
        let mut value = serde_json::to_value(event).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("v".into(), SCHEMA_VERSION.into());
            map.insert("time".into(), crate::exec::journal::now().into());
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }
}

/// `--interactive` without a terminal to ask on.
#[derive(Debug, thiserror::Error)]
#[error("--interactive needs a terminal on stdin and stderr; use --yes to run without prompts")]
pub struct NoTerminal;

/// Human output plus a prompt before each step.
pub struct Interactive {
    human: Human,
    /// The step just shown with its prompt: its start is not printed again.
    shown: Option<usize>,
}

impl Interactive {
    /// An interactive front end; needs a TTY on stdin and stderr.
    pub fn new(style: Style) -> anyhow::Result<Interactive> {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(NoTerminal.into());
        }
        Ok(Interactive {
            human: Human::new(style),
            shown: None,
        })
    }
}

impl Observer for Interactive {
    fn event(&mut self, event: &Event) {
        match event {
            Event::StepStart { step } if self.shown == Some(step.index) => {}
            _ => self.human.event(event),
        }
    }

    fn confirm(&mut self, step: &Step) -> Decision {
        self.human.stop_spinner();
        self.shown = Some(step.index);
        eprintln!(
            "{}",
            style(step_line(step, self.human.total)).bold().for_stderr()
        );
        if let Some(diff) = &step.diff {
            eprint!(
                "{}",
                indent(
                    &crate::diff::colorize(diff, self.human.style.color),
                    "      "
                )
            );
        }
        let items = [
            "yes, run this step",
            "skip this step",
            "all: run the rest without asking",
            "quit (resumable)",
            "rollback",
        ];
        let choice = dialoguer::Select::new()
            .with_prompt("run this step?")
            .items(items)
            .default(0)
            .interact_opt();
        match choice {
            Ok(Some(0)) => Decision::Yes,
            Ok(Some(1)) => Decision::Skip,
            Ok(Some(2)) => Decision::All,
            Ok(Some(4)) => Decision::Rollback,
            _ => Decision::Quit,
        }
    }
}
