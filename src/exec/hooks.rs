//! Hooks: the pre-deploy one-off container before anything is touched, and
//! the post-start and pre-stop commands run in the containers of a batch.
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::future::join_all;

use super::event::{Event, Observer};
use super::executor::{Executor, StepError};
use super::world::World;
use crate::plan::{HookCommand, HookExit, HookKind, HookRun, Order, PreDeploy};

impl<W: World, O: Observer + ?Sized> Executor<'_, W, O> {
    /// The pre-deploy hook: its one-off container, made from the new spec of
    /// `job.server`, must exit 0. It runs to its end (bounded by `timeout`)
    /// even when a signal arrives: a migration is not cut short halfway.
    pub(super) async fn pre_deploy(
        &mut self,
        index: usize,
        job: &PreDeploy,
        timeout: Duration,
    ) -> Result<(), StepError> {
        let spec = self
            .rollout
            .server(&job.server)
            .and_then(|r| r.new_spec.clone())
            .ok_or_else(|| anyhow!("no new spec for server {} in the journal", job.server))?;
        self.announce_wait(
            index,
            &format!(
                "pre-deploy {} in one-off container {}",
                job.command, job.container
            ),
            timeout,
        );
        let exit = self
            .world
            .run_one_off(&job.container, &spec, &job.command, timeout)
            .await
            .map_err(|e| anyhow!("pre-deploy hook {}: {e:#}", job.command))?;
        self.hook_event(
            index,
            HookKind::PreDeploy,
            &job.server,
            &job.container,
            &job.command,
            &exit,
        );
        match exit.failure(HookKind::PreDeploy, &job.command, &job.container) {
            None => Ok(()),
            Some(why) => Err(StepError::Fatal(anyhow!("{why}\nno server was touched"))),
        }
    }

    /// Post-start or pre-stop hooks, each container's commands in order
    /// (concurrently across containers); a failing command fails its server,
    /// which then counts against the failure ratio. Servers failed already
    /// are skipped. Like the pre-deploy hook, never cut short by a signal,
    /// nor by a failure of a watched container meanwhile (see
    /// [`Self::watching_to_end`]).
    pub(super) async fn run_hooks(
        &mut self,
        index: usize,
        kind: HookKind,
        runs: &[HookRun],
        timeout: Duration,
    ) -> Result<(), StepError> {
        let runs: Vec<&HookRun> = runs
            .iter()
            .filter(|r| !self.is_failed(&r.server.server))
            .collect();
        let names = runs
            .iter()
            .map(|r| r.server.container.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        self.announce_wait(index, &format!("{kind} hooks in {names}"), timeout);
        // A pre-stop hook runs in the old container as its stop finds it
        // (`ServerRecord::old_container`).
        let targets: Vec<String> = (runs.iter())
            .map(|r| match self.rollout.server(&r.server.server) {
                Some(rec) if kind == HookKind::PreStop => rec.old_container().to_string(),
                _ => r.server.container.clone(),
            })
            .collect();
        let world = self.world;
        let hooks = join_all(runs.iter().zip(&targets).map(|(r, target)| async move {
            let container = &r.server.container;
            // A container that is gone or stopped has nothing left to prepare for its stop.
            if kind == HookKind::PreStop && !world.is_running(target).await? {
                return Ok(None);
            }
            let mut ran: Vec<(&HookCommand, HookExit)> = Vec::new();
            for command in &r.commands {
                let exit = world
                    .exec_hook(target, command, timeout)
                    .await
                    .with_context(|| format!("{kind} hook {command} in container {container}"))?;
                let failed = !exit.success();
                ran.push((command, exit));
                if failed {
                    break;
                }
            }
            anyhow::Ok(Some(ran))
        }));
        let (results, watched) = self.watching_to_end(hooks).await;
        let mut failed = Vec::new();
        for (r, result) in runs.iter().zip(results) {
            let container = &r.server.container;
            let why = match result {
                Ok(None) => {
                    self.observer.notice(&format!(
                        "{kind} hooks of {} skipped: container {container} does not run",
                        r.server.server
                    ));
                    None
                }
                Ok(Some(ran)) => {
                    for (command, exit) in &ran {
                        self.hook_event(index, kind, &r.server.server, container, command, exit);
                    }
                    ran.iter()
                        .find_map(|(command, exit)| exit.failure(kind, command, container))
                }
                // Not the server's fault: the step fails, no server with it.
                Err(e) if self.world.is_unreachable(&e) => {
                    self.save()?;
                    return Err(StepError::Fatal(e));
                }
                Err(e) => Some(format!("{e:#}")),
            };
            if let Some(why) = why {
                if kind == HookKind::PostStart
                    && self.rollout.plan.policy.order.value == Order::StartFirst
                {
                    // The old container still serves; the failed replacement
                    // must not linger. By the id recorded: the name is not proof.
                    let made = self.rollout.server(&r.server.server);
                    if let Some(id) = made.and_then(|rec| rec.new_container.clone()) {
                        let _ = self.world.stop_old(&id).await;
                    }
                }
                failed.push((r.server.server.clone(), why));
            }
        }
        // Taken out and counted meanwhile by the watch (its new container
        // failed while the hook ran in the old one): told once.
        failed.retain(|(server, _)| !self.is_failed(server));
        if let Err(ended) = watched {
            // The hooks ran to their end: their failures count; the step ends as the watch did.
            if !failed.is_empty() {
                self.record_failures(failed)?;
            }
            return Err(ended);
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(StepError::Servers(failed))
        }
    }

    /// Reports one hook command and how it exited.
    fn hook_event(
        &mut self,
        index: usize,
        hook: HookKind,
        server: &str,
        container: &str,
        command: &HookCommand,
        exit: &HookExit,
    ) {
        self.observer.event(&Event::Hook {
            index,
            hook,
            server: server.to_string(),
            container: container.to_string(),
            command: command.argv.clone(),
            exit_code: exit.code,
            output: exit.output.clone(),
        });
    }
}
