//! `-i`: human output plus a prompt before each step, answered with one key
//! (`y`/`s`/`a`/`q`/`r`) or with the arrows and Enter.
use std::io::{self, IsTerminal};

use console::{Key, Term, style};

use super::Style;
use super::human::Human;
use super::render::{indent, step_line};
use crate::exec::{Decision, Event, Observer, PlanKind};
use crate::plan::{Plan, Step};

/// `--interactive` without a terminal to ask on.
#[derive(Debug, thiserror::Error)]
#[error("--interactive needs a terminal on stdin and stderr; use --yes to run without prompts")]
pub struct NoTerminal;

/// The answers to "run this step?": what each decides, its key, its menu line.
const ANSWERS: [(Decision, char, &str); 5] = [
    (Decision::Yes, 'y', "yes, run this step"),
    (Decision::Skip, 's', "skip this step"),
    (Decision::All, 'a', "all: run the rest without asking"),
    (Decision::Quit, 'q', "quit (resumable once a step ran)"),
    (Decision::Rollback, 'r', "rollback"),
];

/// The question, with its keys.
const QUESTION: &str = "run this step? [y]es [s]kip [a]ll [q]uit [r]ollback (or arrows and Enter)";

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

    /// Each step is asked about before it runs; a plan with no step (a
    /// rollout `rollback` only closes) is asked about as a whole.
    fn approve(&mut self, _kind: PlanKind, plan: &Plan) -> anyhow::Result<bool> {
        if plan.steps.is_empty() {
            self.human.ask_to_run(plan)
        } else {
            Ok(true)
        }
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
        match ask(&Term::stderr()) {
            Ok(Decision::All) => {
                self.all = true;
                Decision::All
            }
            Ok(decision) => decision,
            // The terminal went away (or Ctrl-C): stop safely.
            Err(_) => Decision::Quit,
        }
    }
}

/// What a key does to the menu while answer `at` is highlighted.
#[derive(Debug, PartialEq, Eq)]
enum Press {
    /// Highlight another answer.
    Move(usize),
    /// This answer is given.
    Answer(usize),
    /// Nothing.
    Ignore,
}

/// The index of the answer whose key is `key`.
fn by_key(key: char) -> Option<usize> {
    ANSWERS
        .iter()
        .position(|(_, k, _)| *k == key.to_ascii_lowercase())
}

fn press(at: usize, key: &Key) -> Press {
    let n = ANSWERS.len();
    match key {
        Key::ArrowUp | Key::BackTab => Press::Move((at + n - 1) % n),
        Key::ArrowDown | Key::Tab => Press::Move((at + 1) % n),
        Key::Enter => Press::Answer(at),
        Key::Char(c) => by_key(*c).map_or(Press::Ignore, Press::Answer),
        Key::Escape | Key::CtrlC => by_key('q').map_or(Press::Ignore, Press::Answer),
        _ => Press::Ignore,
    }
}

/// Asks [`QUESTION`] on `term` until it is answered (see [`press`]; the
/// first answer is the default). The answer stays on screen.
fn ask(term: &Term) -> io::Result<Decision> {
    term.write_line(&style(QUESTION).bold().for_stderr().to_string())?;
    term.hide_cursor()?;
    let mut at = 0;
    let chosen = loop {
        for (i, (_, key, label)) in ANSWERS.iter().enumerate() {
            let line = format!("{} {key}  {label}", if i == at { '>' } else { ' ' });
            term.write_line(&if i == at {
                style(line).cyan().for_stderr().to_string()
            } else {
                line
            })?;
        }
        // Ctrl-C in raw mode may come as an interrupted read.
        let key = match term.read_key() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Key::CtrlC),
            other => other,
        };
        term.clear_last_lines(ANSWERS.len())?;
        let key = match key {
            Ok(key) => key,
            Err(e) => {
                term.show_cursor()?;
                return Err(e);
            }
        };
        match press(at, &key) {
            Press::Move(to) => at = to,
            Press::Answer(i) => break i,
            Press::Ignore => {}
        }
    };
    term.clear_last_lines(1)?;
    term.show_cursor()?;
    term.write_line(&format!("run this step? {}", ANSWERS[chosen].2))?;
    Ok(ANSWERS[chosen].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(key: Key) -> Option<Decision> {
        match press(2, &key) {
            Press::Answer(i) => Some(ANSWERS[i].0),
            _ => None,
        }
    }

    #[test]
    fn one_key_per_answer_shown_in_the_question() {
        for (decision, key, _) in ANSWERS {
            assert_eq!(answer(Key::Char(key)), Some(decision));
            assert_eq!(answer(Key::Char(key.to_ascii_uppercase())), Some(decision));
            assert!(QUESTION.contains(&format!("[{key}]")), "{key}");
        }
        assert_eq!(answer(Key::Char('x')), None);
        assert_eq!(answer(Key::Escape), Some(Decision::Quit));
        assert_eq!(answer(Key::CtrlC), Some(Decision::Quit));
    }

    #[test]
    fn arrows_move_around_and_enter_takes_the_highlighted_one() {
        assert_eq!(press(0, &Key::ArrowDown), Press::Move(1));
        assert_eq!(press(0, &Key::ArrowUp), Press::Move(ANSWERS.len() - 1));
        assert_eq!(press(ANSWERS.len() - 1, &Key::ArrowDown), Press::Move(0));
        assert_eq!(answer(Key::Enter), Some(Decision::All));
    }
}
