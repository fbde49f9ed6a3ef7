//! Hooks: commands run in containers at fixed points of a rollout — compose's
//! own `post_start` / `pre_stop` (compose v2.30+) and the `--post-start`,
//! `--pre-stop` and `--pre-deploy` flags. Data only: the planner places them
//! as steps, the executor runs them through the world.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::policy::Source;

/// Which point of a rollout a hook runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    /// Once, before the first server is touched, in a one-off container of the new spec.
    PreDeploy,
    /// In a new container right after it starts, before its health is awaited.
    PostStart,
    /// In an old container once nginx no longer sends it requests, right before it stops.
    PreStop,
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookKind::PreDeploy => "pre-deploy",
            HookKind::PostStart => "post-start",
            HookKind::PreStop => "pre-stop",
        })
    }
}

/// One command of a hook, as compose's hook definition has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookCommand {
    /// The program and its arguments (exec form; no shell unless the command names one).
    pub argv: Vec<String>,
    /// Run as this user (`user[:group]`); default the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run with extended privileges.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Run in this directory; default the container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Extra environment, `KEY=VALUE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// Where it was given: a flag, or compose's `services.S.post_start[N]`.
    pub source: Source,
}

/// A command a hook flag or compose's string form gives as one string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// Unbalanced quotes or a trailing backslash.
    #[error(
        "{command:?}: unbalanced quotes or a trailing backslash (split as a POSIX shell splits words)"
    )]
    Unsplittable {
        /// The command as given.
        command: String,
    },
    /// Nothing to run.
    #[error("an empty command")]
    Empty,
}

/// Splits `command` into words as a POSIX shell does (quotes, backslashes;
/// no expansion, no pipes: a command that needs them names a shell,
/// `sh -c '…'`), as compose splits a hook's string `command`. The one rule
/// for hook commands given as a string.
pub fn split_command(command: &str) -> Result<Vec<String>, CommandError> {
    let argv = shell_words::split(command).map_err(|_| CommandError::Unsplittable {
        command: command.to_string(),
    })?;
    if argv.is_empty() {
        return Err(CommandError::Empty);
    }
    Ok(argv)
}

/// A command's words as one line a POSIX shell reads back into the same words.
pub fn command_line(argv: &[String]) -> String {
    shell_words::join(argv)
}

impl HookCommand {
    /// A command given by `flag` (`--post-start`) as one string.
    pub fn from_flag(flag: &str, command: &str) -> Result<HookCommand, CommandError> {
        Ok(HookCommand {
            argv: split_command(command)?,
            user: None,
            privileged: false,
            working_dir: None,
            environment: Vec::new(),
            source: Source::Flag(flag.to_string()),
        })
    }
}

impl fmt::Display for HookCommand {
    /// The command as a shell would read it back, then `as USER` etc. and its source.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", command_line(&self.argv))?;
        if let Some(user) = &self.user {
            write!(f, " as {user}")?;
        }
        if let Some(dir) = &self.working_dir {
            write!(f, " in {dir}")?;
        }
        if self.privileged {
            f.write_str(" privileged")?;
        }
        write!(f, " ({})", self.source)
    }
}

/// The post-start and pre-stop hooks of what a server is deployed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// Run in each new container right after it starts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<HookCommand>,
    /// Run in each old container right before it stops, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<HookCommand>,
}

impl Hooks {
    /// No hook at all.
    pub fn is_empty(&self) -> bool {
        self.post_start.is_empty() && self.pre_stop.is_empty()
    }

    /// These hooks, each kind the flags give replaced by the flags' commands
    /// (flags win over the compose file, as for the update policy).
    pub fn overridden_by(self, flags: &Hooks) -> Hooks {
        let pick = |mine: Vec<HookCommand>, theirs: &Vec<HookCommand>| {
            if theirs.is_empty() {
                mine
            } else {
                theirs.clone()
            }
        };
        Hooks {
            post_start: pick(self.post_start, &flags.post_start),
            pre_stop: pick(self.pre_stop, &flags.pre_stop),
        }
    }

    /// The commands of one kind (none for pre-deploy, which is not per server).
    pub fn of(&self, kind: HookKind) -> &[HookCommand] {
        match kind {
            HookKind::PostStart => &self.post_start,
            HookKind::PreStop => &self.pre_stop,
            HookKind::PreDeploy => &[],
        }
    }
}

/// The pre-deploy hook: one command, run once before the first server is
/// touched, in a one-off container made from a server's new container spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreDeploy {
    /// The command (it replaces the image's command; the entrypoint stays, as in `compose run`).
    pub command: HookCommand,
    /// The server (journal record) whose new container spec the one-off is made from.
    pub server: String,
    /// The one-off container's name.
    pub container: String,
    /// The image it runs (for the plan).
    pub image: String,
}

/// How a hook's command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookExit {
    /// Its exit code.
    pub code: i64,
    /// The last lines of its output (stdout and stderr, interleaved).
    pub output: String,
}

impl HookExit {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Why a hook that ended like this failed, naming the hook, the command
    /// and the container; `None` when it succeeded. The one wording of a hook failure.
    pub fn failure(
        &self,
        kind: HookKind,
        command: &HookCommand,
        container: &str,
    ) -> Option<String> {
        if self.success() {
            return None;
        }
        let mut why = format!(
            "{kind} hook {command} in container {container} exited with code {}",
            self.code
        );
        match self.output.trim() {
            "" => why.push_str(" and printed nothing"),
            tail => {
                why.push_str(", output ends:\n");
                why.push_str(tail);
            }
        }
        Some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_shell_words_not_like_a_shell() {
        assert_eq!(
            split_command(r#"sh -c 'echo "a b" > /tmp/x'"#).unwrap(),
            ["sh", "-c", r#"echo "a b" > /tmp/x"#]
        );
        assert_eq!(
            split_command("migrate --to $VERSION | tee").unwrap(),
            ["migrate", "--to", "$VERSION", "|", "tee"],
            "no expansion, no pipes: words as written"
        );
        assert_eq!(split_command("  "), Err(CommandError::Empty));
        assert!(matches!(
            split_command("echo 'unterminated"),
            Err(CommandError::Unsplittable { .. })
        ));
    }

    #[test]
    fn a_command_shows_as_a_shell_would_read_it_back() {
        let mut c = HookCommand::from_flag("--post-start", "sh -c 'echo hi'").unwrap();
        assert_eq!(c.to_string(), "`sh -c 'echo hi'` (flag --post-start)");
        c.user = Some("www-data".into());
        c.source = Source::Compose("services.app1.post_start[0]".into());
        assert_eq!(
            c.to_string(),
            "`sh -c 'echo hi'` as www-data (compose services.app1.post_start[0])"
        );
    }

    #[test]
    fn flags_replace_the_compose_hooks_of_their_kind_only() {
        let compose = |s: &str| HookCommand {
            source: Source::Compose(s.into()),
            ..HookCommand::from_flag("x", "true").unwrap()
        };
        let file = Hooks {
            post_start: vec![compose("a")],
            pre_stop: vec![compose("b")],
        };
        let flags = Hooks {
            post_start: vec![HookCommand::from_flag("--post-start", "warm").unwrap()],
            pre_stop: Vec::new(),
        };
        let hooks = file.clone().overridden_by(&flags);
        assert_eq!(hooks.post_start, flags.post_start);
        assert_eq!(hooks.pre_stop, file.pre_stop);
        assert_eq!(file.clone().overridden_by(&Hooks::default()), file);
    }

    #[test]
    fn a_failure_names_the_hook_command_container_code_and_output() {
        let c = HookCommand::from_flag("--pre-stop", "drain-queue").unwrap();
        let ok = HookExit {
            code: 0,
            output: "fine".into(),
        };
        assert_eq!(ok.failure(HookKind::PreStop, &c, "app1"), None);
        let bad = HookExit {
            code: 3,
            output: "step 1\nqueue busy\n".into(),
        };
        assert_eq!(
            bad.failure(HookKind::PreStop, &c, "app1").unwrap(),
            "pre-stop hook `drain-queue` (flag --pre-stop) in container app1 exited with code 3, output ends:\nstep 1\nqueue busy"
        );
        let silent = HookExit {
            code: 1,
            output: String::new(),
        };
        assert!(
            silent
                .failure(HookKind::PreStop, &c, "app1")
                .unwrap()
                .ends_with("code 1 and printed nothing")
        );
    }
}
