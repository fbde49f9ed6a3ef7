//! Live edits of server lines, no container touched: `single_edit` plans
//! one command's edit (`drain`, `undrain`, `weight`, `add`, `remove`),
//! `revert_lines` the undoing of a rollout's line edits.
use std::time::Duration;

use super::builder::{apply_changes_with, diff_of};
use super::planner::{Plan, PlanError, Timeouts};
use super::policy::UpdateConfig;
use super::step::{Action, ServerChange, Step};
use crate::conf::ConfigSet;

/// A live change to one `server` line of an upstream, as the commands name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEdit {
    /// `drain`: add `down`.
    Drain,
    /// `undrain`: remove the `down`.
    Undrain,
    /// `weight`: write `weight=N` (N ≥ 1).
    Weight(u32),
    /// `add`: a new line with these parameters.
    Add(Vec<String>),
    /// `remove`: delete the line.
    Remove,
}

/// The plan of a single live edit of one server line (`drain`, `undrain`,
/// `weight`, `add`, `remove`): the edit, the reload, and the wait for the
/// old workers (except after an undrain, which takes nothing away). `server`
/// is resolved in the upstream (address as written, or unique host); for
/// [`LineEdit::Add`] it is the new line's address.
pub fn single_edit(
    config: &ConfigSet,
    upstream: &str,
    server: &str,
    edit: LineEdit,
    force: bool,
    drain_timeout: Duration,
) -> Result<Plan, PlanError> {
    let up = config.upstream(upstream)?;
    let address = || -> Result<String, PlanError> { Ok(up.server(server)?.address.clone()) };
    let wait = edit != LineEdit::Undrain;
    let change = match edit {
        LineEdit::Drain => ServerChange::Drain { server: address()? },
        LineEdit::Undrain => ServerChange::Restore { server: address()? },
        LineEdit::Weight(w) => ServerChange::Weight {
            server: address()?,
            weight: Some(w),
            expect: None,
        },
        LineEdit::Add(params) => ServerChange::AddServer {
            address: server.to_string(),
            params,
        },
        LineEdit::Remove => ServerChange::Remove { server: address()? },
    };
    edit_plan(config, upstream, vec![change], force, wait, drain_timeout)
}

/// The plan that puts upstream `upstream`'s contents back to `before`,
/// provided they still read `after` (as the rollout being undone left them):
/// one edit, the reload, the wait for the old workers.
pub fn revert_lines(
    config: &ConfigSet,
    upstream: &str,
    after: &str,
    before: &str,
    drain_timeout: Duration,
) -> Result<Plan, PlanError> {
    let change = ServerChange::Revert {
        expect: after.to_string(),
        with: before.to_string(),
    };
    edit_plan(config, upstream, vec![change], false, true, drain_timeout)
}

/// A plan of one edit and its reload (and, if asked, the old workers' wait),
/// with no container to touch.
fn edit_plan(
    config: &ConfigSet,
    upstream: &str,
    changes: Vec<ServerChange>,
    force: bool,
    wait_drained: bool,
    drain_timeout: Duration,
) -> Result<Plan, PlanError> {
    let mut after = config.clone();
    apply_changes_with(&mut after, upstream, &changes, force)?;
    let diff = diff_of(&after, config);
    let timeouts = Timeouts {
        drain: drain_timeout,
        ..Timeouts::DEFAULT
    };
    let mut steps = vec![
        Step {
            index: 1,
            action: Action::Edit {
                upstream: upstream.into(),
                changes,
                force,
            },
            diff: Some(diff),
        },
        Step {
            index: 2,
            action: Action::Reload,
            diff: None,
        },
    ];
    if wait_drained {
        steps.push(Step {
            index: 3,
            action: Action::WaitDrained {
                timeout: drain_timeout,
            },
            diff: None,
        });
    }
    let mut policy = UpdateConfig::engine_defaults();
    policy.monitor.value = Duration::ZERO;
    Ok(Plan {
        upstream: upstream.into(),
        targets: Vec::new(),
        sets: Vec::new(),
        policy,
        timeouts,
        ramp: None,
        steps,
    })
}
