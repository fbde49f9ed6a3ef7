//! `-i`: human output plus a prompt before each step.
use std::io::IsTerminal;

use console::style;

use super::Style;
use super::human::Human;
use super::render::{indent, step_line};
use crate::exec::{Decision, Event, Observer};
use crate::plan::Step;

/// `--interactive` without a terminal to ask on.
#[derive(Debug, thiserror::Error)]
#[error("--interactive needs a terminal on stdin and stderr; use --yes to run without prompts")]
pub struct NoTerminal;

/// Human output plus a prompt before each step.
pub struct Interactive {
    human: Human,
    /// The step just shown with its prompt: its start is not printed again.
    shown: Option<usize>,
    /// The operator answered *all*: the remaining steps run without asking.
    all: bool,
}

impl Interactive {
    /// An interactive front end; needs a TTY on stdin and stderr.
    pub fn new(style: Style) -> anyhow::Result<Interactive> {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(NoTerminal.into());
        }
        Ok(Interactive {
            human: Human::new(style, false),
            shown: None,
            all: false,
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

    fn notice(&mut self, text: &str) {
        self.human.notice(text);
    }

    fn confirm(&mut self, step: &Step) -> Decision {
        if self.all {
            return Decision::Yes;
        }
        self.human.stop_spinner();
        self.shown = Some(step.index);
        errln!(
            "{}",
            style(step_line(step, self.human.total)).bold().for_stderr()
        );
        if let Some(diff) = &step.diff {
            errtext!(
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
            Ok(Some(2)) => {
                self.all = true;
                Decision::All
            }
            Ok(Some(4)) => Decision::Rollback,
            _ => Decision::Quit,
        }
    }
}
