//! The three front ends — human (with its ask-once), JSON lines and
//! interactive — and what every live command does with them: choose one,
//! show a dry run, listen for signals, turn how a run ended into an exit code.
mod human;
mod interactive;
mod json;
mod render;

use std::io::IsTerminal;

use tokio::sync::watch;

pub use interactive::NoTerminal;
pub use render::{render_history, render_status};

use super::args::{ConfirmArgs, Global, Output};
use super::exit;
use crate::exec::{Event, Observer};
use crate::rollout::{Ended, Planned};
use human::Human;
use interactive::Interactive;
use json::Json;
use render::render_plan;

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

/// The front end for this invocation: interactive with `-i`, else JSON lines
/// or human output; human output asks once before a plan runs when stdin and
/// stderr are terminals and `--yes` was not given.
pub fn observer(global: &Global, confirm: &ConfirmArgs) -> anyhow::Result<Box<dyn Observer>> {
    let style = Style::detect(global.quiet, global.verbose);
    Ok(match (global.output, confirm.interactive) {
        (_, true) => Box::new(Interactive::new(style)?),
        (Output::Json, false) => Box::new(Json),
        (Output::Human, false) => {
            let ask_once =
                !confirm.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
            Box::new(Human::new(style, ask_once))
        }
    })
}

/// SIGINT/SIGTERM flip the returned flag; the executor stops at a safe point.
pub fn signals() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(false);
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        errln!(
            "nginx-rollout: interrupted; stopping at a safe point (a step under way finishes or is undone)"
        );
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Shows how a run ended (a dry run's plan; that nothing was done) and
/// returns the exit code.
pub fn finish(global: &Global, ended: Ended) -> i32 {
    match ended {
        Ended::Planned(planned) => {
            show_planned(global, &planned);
            exit::DONE
        }
        Ended::Declined => {
            errln!("nothing done");
            exit::DONE
        }
        Ended::Closed(revision) => {
            errln!("revision {revision} closed; nothing else done");
            exit::DONE
        }
        Ended::Ran(report) => exit::of_status(report.status),
    }
}

/// A dry run: the servers left alone, then the plan as text on stdout or
/// as one JSON `plan` event.
fn show_planned(global: &Global, planned: &Planned) {
    for notice in &planned.notices {
        errln!("{}", render::shown(notice));
    }
    match global.output {
        Output::Json => Json.event(&Event::Plan {
            revision: planned.revision,
            kind: planned.kind,
            plan: Box::new(planned.plan.clone()),
        }),
        Output::Human => {
            let color = Style::detect(false, false).color && std::io::stdout().is_terminal();
            // A reader that went away (`| head`) has seen what it wanted.
            let _ = outtext!("{}", render_plan(&planned.plan, color));
        }
    }
}
