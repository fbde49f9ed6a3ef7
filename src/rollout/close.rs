//! `rollback` of an unfinished rollout that changed no server (killed before
//! its first edit, paused with every drain put back, or killed with only
//! start-first replacements made and never swapped in, which it removes):
//! nothing to undo, so it is closed — a plan with no step, approved as any
//! plan is, then the rollout `cancelled`.
use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::Result;

use super::desired::Desired;
use super::leftovers::{Unswapped, discard};
use super::recover::interrupted_pre_deploys;
use super::run::{Ended, report_closed, show_or_approve};
use super::world::DockerWorld;
use crate::backends::remove_leftover;
use crate::exec::{Observer, PlanKind, Rollout, ServerState, StateDir, Status};
use crate::plan::{Plan, UpdateConfig};

/// Closes unfinished rollout `of`, which changed no server once its
/// `unswapped` replacements are removed: there is nothing to undo, so its
/// plan has no step. It is shown or approved as any plan is (a dry run ends
/// there); then those replacements and the one-off container of a
/// pre-deploy a killed run left are removed (one still running refuses the
/// close), `of` becomes `cancelled`, and its plan and summary are the run's
/// events.
pub(super) async fn close(
    world: &DockerWorld,
    state: &StateDir,
    observer: &mut dyn Observer,
    mut of: Rollout<Desired>,
    unswapped: &[Unswapped],
    policy: UpdateConfig,
    dry_run: bool,
) -> Result<Ended> {
    let closing = Plan {
        upstream: of.upstream.clone(),
        targets: Vec::new(),
        sets: Vec::new(),
        policy,
        timeouts: of.plan.timeouts,
        ramp: None,
        steps: Vec::new(),
    };
    let started = Instant::now();
    let leftover = interrupted_pre_deploys(world, &of, "rollback").await?;
    let mut notice = format!(
        "revision {} ({} of upstream {}, {}) changed no server: nothing to undo; `rollback` \
         closes it (status cancelled)",
        of.revision, of.kind, of.upstream, of.status
    );
    for name in &leftover {
        notice.push_str(&format!(
            " and removes {name}, the one-off container of its interrupted pre-deploy"
        ));
    }
    let mut notices = vec![notice];
    notices.extend(unswapped.iter().map(Unswapped::notice));
    let run_in = (!dry_run).then_some(state);
    if let ControlFlow::Break(ended) = show_or_approve(
        run_in,
        observer,
        PlanKind::Rollback,
        of.revision,
        &closing,
        notices,
    )? {
        return Ok(ended);
    }
    discard(world, observer, unswapped).await?;
    for name in &leftover {
        remove_leftover(&world.docker, name).await?;
    }
    of.status = Status::Cancelled;
    of.reason = Some("closed by `rollback`: it changed no server".into());
    state.save(&of)?;
    report_closed(observer, &of, &closing, started.elapsed());
    Ok(Ended::Closed(of.revision))
}

/// Whether unfinished rollout `of` left every server as it found it: a
/// deploy whose first step never ran, or whose drains were all put back
/// (a replica set's pinned lines, and a dead server's line pinned to
/// nowhere, are for the rollback to put back).
pub(super) fn changed_no_server(of: &Rollout<Desired>) -> bool {
    !of.plan.line_only()
        && (of.servers.iter())
            .all(|s| s.state == ServerState::Pending && s.set.is_none() && s.pinned.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine deploy of app1 and app2 (a journal of an earlier version).
    fn deploy() -> Rollout<Desired> {
        serde_json::from_slice(include_bytes!("../../fixtures/journal/rev0001.json")).unwrap()
    }

    #[test]
    fn a_deploy_changed_no_server_only_while_every_server_is_pending() {
        let mut r = deploy();
        for s in &mut r.servers {
            s.state = ServerState::Pending;
        }
        assert!(changed_no_server(&r));
        r.servers[1].state = ServerState::Drained;
        assert!(!changed_no_server(&r), "a drained server is to put back");
        r.servers[1].state = ServerState::Pending;
        r.servers[1].set = Some("web:8000".into());
        assert!(!changed_no_server(&r), "a replica set's line may be pinned");
        r.servers[1].set = None;
        r.servers[1].pinned = Some("server app2:3000;".into());
        assert!(
            !changed_no_server(&r),
            "a dead server's line is pinned to nowhere"
        );
        let mut drain: Rollout<Desired> =
            serde_json::from_slice(include_bytes!("../../fixtures/journal/rev0005.json")).unwrap();
        for s in &mut drain.servers {
            s.state = ServerState::Pending;
        }
        assert!(
            !changed_no_server(&drain),
            "a line edit is undone by its lines"
        );
    }
}
