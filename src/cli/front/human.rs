//! Human progress on stderr: a line per step, spinners on a terminal, the
//! summary table; asks once before a plan runs when on a terminal without `--yes`.
use std::time::Duration;

use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Style;
use super::render::{render_plan, render_summary, shown, step_line};
use crate::exec::{Event, Observer, PlanKind, Status};
use crate::plan::{Plan, command_line};

/// Human progress on stderr.
pub struct Human {
    pub(super) style: Style,
    /// Show the plan and ask once before it runs (a terminal without `--yes`).
    ask_once: bool,
    pub(super) total: usize,
    spinner: Option<ProgressBar>,
}

impl Human {
    /// A human front end; `ask_once` shows the plan and asks before it runs.
    pub fn new(style: Style, ask_once: bool) -> Human {
        Human {
            style,
            ask_once,
            total: 0,
            spinner: None,
        }
    }

    /// One line on stderr; its text comes from configs and containers, so
    /// callers pass it through [`shown`] before styling it.
    fn line(&mut self, text: impl AsRef<str>) {
        let text = text.as_ref();
        match &self.spinner {
            Some(sp) => sp.println(text),
            None => errln!("{text}"),
        }
    }

    /// Shows `plan` and asks whether to run it; Ctrl-C at the question says no.
    pub(super) fn ask_to_run(&self, plan: &Plan) -> anyhow::Result<bool> {
        errtext!("{}", render_plan(plan, self.style.color));
        match dialoguer::Confirm::new()
            .with_prompt("run this plan?")
            .default(false)
            .interact()
        {
            Ok(yes) => Ok(yes),
            // Ctrl-C at the question: nothing is run.
            Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                Ok(false)
            }
            Err(e) => Err(anyhow::Error::new(e).context("asking whether to run the plan")),
        }
    }

    pub(super) fn stop_spinner(&mut self) {
        if let Some(sp) = self.spinner.take() {
            sp.finish_and_clear();
        }
    }
}

impl Observer for Human {
    fn approve(&mut self, _kind: PlanKind, plan: &Plan) -> anyhow::Result<bool> {
        if !self.ask_once {
            return Ok(true);
        }
        self.ask_to_run(plan)
    }

    fn notice(&mut self, text: &str) {
        self.line(shown(&format!("nginx-rollout: {text}")));
    }

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
                        "      {} {}",
                        style(result.to_string().to_uppercase())
                            .red()
                            .bold()
                            .for_stderr(),
                        shown(e)
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
                    self.line(shown(&format!("      {container} ({server}) is {status}")));
                }
            }
            Event::Hook {
                hook,
                container,
                command,
                exit_code,
                ..
            } => {
                if !self.style.quiet {
                    self.line(format!(
                        "      {hook} `{}` in {container}: exit {exit_code}",
                        command_line(command)
                    ));
                }
            }
            Event::Failure {
                server,
                reason,
                failures,
                total,
            } => {
                self.line(format!(
                    "      {} {} ({failures}/{total} failed)",
                    style("failure").red().bold().for_stderr(),
                    shown(&format!("{server}: {reason}"))
                ));
            }
            Event::Rollback { reason } => {
                self.line(format!(
                    "{} {}",
                    style("rolling back:").yellow().bold().for_stderr(),
                    shown(reason)
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
                let status = match status {
                    Status::Done => style(status.to_string()).green(),
                    _ => style(status.to_string()).red(),
                };
                self.line(format!(
                    "revision {revision}: {} in {seconds:.1}s, {reloads} nginx reloads",
                    status.bold().for_stderr()
                ));
                if let Some(reason) = reason {
                    self.line(shown(&format!("  {reason}")));
                }
            }
        }
    }
}
