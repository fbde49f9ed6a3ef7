//! Building a plan's steps: the `Builder` (the steps so far and the config as
//! they leave it) and what every kind of plan shares: numbered steps, the delay
//! between batches, hook steps, and edit steps with their diffs. How an edit
//! step's changes apply to a config is here too: the executor applies them the
//! same way to the live files.
use std::time::Duration;

use super::hook::{HookKind, Hooks};
use super::planner::{PlanError, Timeouts};
use super::step::{Action, HookRun, ServerChange, ServerRef, Step};
use crate::conf::{Address, ConfError, ConfigSet, Edit, EditOptions, NOWHERE, PinnedLine};
use crate::diff;

/// Steps being built, with the config as the steps so far leave it.
pub(super) struct Builder<'a> {
    pub(super) config: ConfigSet,
    pub(super) upstream: &'a str,
    pub(super) steps: Vec<Step>,
    pub(super) timeouts: Timeouts,
}

impl Builder<'_> {
    /// Whether the config has lines pinned from the operator's line `server`.
    pub(super) fn is_pinned(&self, server: &str) -> Result<bool, PlanError> {
        Ok(self
            .config
            .upstream(self.upstream)?
            .servers
            .iter()
            .any(|s| s.pinned_from.as_deref() == Some(server)))
    }

    /// The addresses of the lines pinned from the operator's line `server`,
    /// but those buried already.
    pub(super) fn pinned_lines(&self, server: &str) -> Result<Vec<String>, PlanError> {
        Ok(self
            .config
            .upstream(self.upstream)?
            .servers
            .iter()
            .filter(|s| s.pinned_from.as_deref() == Some(server))
            .filter(|s| Address::parse(&s.address).host != NOWHERE)
            .map(|s| s.address.clone())
            .collect())
    }

    /// Whether the line written `address` is marked `down` now.
    pub(super) fn is_down(&self, address: &str) -> Result<bool, PlanError> {
        Ok(self.config.upstream(self.upstream)?.is_down(address))
    }

    /// Appends a step, numbered after the last.
    pub(super) fn push(&mut self, action: Action, diff: Option<String>) {
        let index = self.steps.len() + 1;
        self.steps.push(Step {
            index,
            action,
            diff,
        });
    }

    /// The delay between batches; counted from the old containers' stop
    /// request when the batch ends by stopping them (a stop-old step just
    /// before it), so the stop runs inside the delay rather than before it.
    pub(super) fn delay(&mut self, duration: Duration) {
        // Past the edits with no reload that bury what the stop took away.
        let from_stop = matches!(
            self.steps
                .iter()
                .rev()
                .find(|s| !matches!(s.action, Action::Edit { .. }))
                .map(|s| &s.action),
            Some(Action::StopOld { .. })
        );
        self.push(
            Action::Delay {
                duration,
                from_stop,
            },
            None,
        );
    }

    /// A post-start or pre-stop step running each server's hooks of that kind
    /// in its container; nothing when none of them has one.
    pub(super) fn hook(&mut self, kind: HookKind, servers: Vec<(ServerRef, &Hooks)>) {
        let runs: Vec<HookRun> = servers
            .into_iter()
            .filter(|(_, hooks)| !hooks.of(kind).is_empty())
            .map(|(server, hooks)| HookRun {
                server,
                commands: hooks.of(kind).to_vec(),
            })
            .collect();
        if runs.is_empty() {
            return;
        }
        let timeout = self.timeouts.hook;
        let action = match kind {
            HookKind::PostStart => Action::PostStart { runs, timeout },
            HookKind::PreStop => Action::PreStop { runs, timeout },
            HookKind::PreDeploy => unreachable!("pre-deploy is not a per-server hook"),
        };
        self.push(action, None);
    }

    /// An edit step (with its diff) that nginx need not load now, so no reload
    /// follows: the next one loads it. For burying the line of a replica that
    /// stopped: nginx sends it nothing already, but the file must not name it
    /// (`nginx -t` resolves every name) should anyone reload in between.
    pub(super) fn edit_without_reload(
        &mut self,
        changes: Vec<ServerChange>,
    ) -> Result<(), PlanError> {
        if changes.is_empty() {
            return Ok(());
        }
        let before = self.config.clone();
        apply_changes(&mut self.config, self.upstream, &changes)?;
        let diff = diff_of(&self.config, &before);
        if !diff.is_empty() {
            self.push(
                Action::Edit {
                    upstream: self.upstream.to_string(),
                    changes,
                    force: false,
                },
                Some(diff),
            );
        }
        Ok(())
    }

    /// An edit step (with its diff) followed by reload and, if asked, the drain wait.
    /// Nothing is pushed when the changes leave the bytes as they are.
    pub(super) fn edit(
        &mut self,
        changes: Vec<ServerChange>,
        wait_drained: bool,
    ) -> Result<(), PlanError> {
        let steps = self.steps.len();
        self.edit_without_reload(changes)?;
        if self.steps.len() == steps {
            return Ok(());
        }
        self.push(Action::Reload, None);
        if wait_drained {
            self.push(
                Action::WaitDrained {
                    timeout: self.timeouts.drain,
                },
                None,
            );
        }
        Ok(())
    }
}

/// The unified diff of every file `after` changed since `before`, as plans show it.
pub(super) fn diff_of(after: &ConfigSet, before: &ConfigSet) -> String {
    after
        .changes_since(before)
        .iter()
        .map(|c| diff::unified(&c.path.display().to_string(), &c.before, &c.after, false))
        .collect()
}

/// The server an edit of the whole upstream names: none.
static WHOLE_UPSTREAM: String = String::new();

/// Applies one edit step's changes to a config; the executor does exactly this to the live files.
pub fn apply_changes(
    config: &mut ConfigSet,
    upstream: &str,
    changes: &[ServerChange],
) -> Result<(), ConfError> {
    apply_changes_with(config, upstream, changes, false)
}

/// [`apply_changes`], optionally allowing the last live server to be drained.
pub fn apply_changes_with(
    config: &mut ConfigSet,
    upstream: &str,
    changes: &[ServerChange],
    force: bool,
) -> Result<(), ConfError> {
    for change in changes {
        let (server, edit) = match change {
            ServerChange::Drain { server } => (server, Edit::MarkDown),
            ServerChange::Restore { server } => (server, Edit::Restore),
            ServerChange::Replace { server, with } => (server, Edit::ReplaceAddress(with.clone())),
            ServerChange::Pin { server, lines } => (server, Edit::Pin(lines.clone())),
            ServerChange::Unpin { server, statement } => (
                server,
                Edit::Unpin {
                    statement: statement.clone(),
                },
            ),
            ServerChange::Add {
                server, address, ..
            } => (
                server,
                Edit::AddPinned(PinnedLine {
                    address: address.clone(),
                    down: false,
                }),
            ),
            ServerChange::Bury { server } => (server, Edit::Bury),
            ServerChange::Weight {
                server,
                weight: Some(w),
                expect: None,
            } => (server, Edit::SetWeight(*w)),
            ServerChange::Weight {
                server,
                weight: None,
                expect: None,
            } => (server, Edit::ClearWeight),
            ServerChange::Weight {
                server,
                weight,
                expect: Some(expect),
            } => (
                server,
                Edit::Reweight {
                    expect: expect.weight,
                    weight: *weight,
                },
            ),
            ServerChange::AddServer { address, params } => (
                address,
                Edit::Add {
                    address: address.clone(),
                    params: params.clone(),
                },
            ),
            ServerChange::Remove { server } => (server, Edit::Remove),
            ServerChange::Revert { expect, with } => (
                &WHOLE_UPSTREAM,
                Edit::ReplaceBody {
                    expect: expect.clone(),
                    with: with.clone(),
                },
            ),
        };
        config.apply(upstream, server, edit, EditOptions { force })?;
    }
    Ok(())
}
