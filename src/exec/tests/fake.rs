//! The fake [`World`]: an in-memory nginx.conf, containers that are healthy
//! unless told otherwise, no Docker; and what happened to it.
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::MAIN;
use crate::conf::{ConfigSet, FileChange, MemFs};
use crate::exec::world::{Reloaded, World};
use crate::exec::{Leftover, Rollout, ServerState, StateDir};
use crate::plan::{HookCommand, HookExit, ServerRef};

/// An `http { upstream apps { … } }` of `app1:3000`…`appN:3000`.
pub(super) fn conf(servers: usize) -> Vec<u8> {
    let lines: String = (1..=servers)
        .map(|k| format!("        server app{k}:3000;\n"))
        .collect();
    format!("http {{\n    upstream apps {{\n{lines}    }}\n}}\n").into_bytes()
}

/// What the fake does, and what happened to it.
#[derive(Default)]
pub(super) struct Fake {
    /// How many servers its upstream has (`app1:3000`…).
    pub servers: usize,
    pub conf: RefCell<Vec<u8>>,
    /// Servers whose new container never becomes healthy.
    pub unhealthy: HashSet<String>,
    /// Servers whose health the world cannot tell: the daemon went away.
    pub unreachable: HashSet<String>,
    /// Servers whose replace finds the daemon gone.
    pub unreachable_replace: HashSet<String>,
    /// Containers whose hooks find the daemon gone.
    pub unreachable_hooks: HashSet<String>,
    /// Servers whose new container fails inside the monitor window.
    pub crashes: HashSet<String>,
    /// A crashed new container still runs (it turned unhealthy).
    pub still_running: bool,
    /// When a crash is noticed (always, if unset).
    pub crash_noticed: Option<fn(&Fake) -> bool>,
    /// A crash noticed only this long after this instant (tokio's clock).
    pub crash_seen_after: Option<(tokio::time::Instant, Duration)>,
    /// How many times the config was written.
    pub writes: RefCell<usize>,
    /// `nginx -t` fails.
    pub bad_config: bool,
    /// A signal arrives while old workers drain (the sender is flipped).
    pub signal_on_drain: Option<watch::Sender<bool>>,
    /// Servers whose containers were replaced or started, in order.
    pub replaced: RefCell<Vec<String>>,
    /// Servers whose replacement was created ahead, not yet used by `replace`.
    pub prepared: RefCell<Vec<String>>,
    /// Servers whose replacement was created ahead and used by `replace`.
    pub used_prepared: RefCell<Vec<String>>,
    /// Servers whose replacement was created ahead and discarded unused.
    pub discarded: RefCell<Vec<String>>,
    /// What each replace or start was told is its own to remove, by server.
    pub told_ours: RefCell<Vec<(String, Leftover)>>,
    /// Reloads done; reload `n` replaces worker `n` by worker `n + 1`.
    pub reloads: RefCell<usize>,
    /// The old workers of each wait for them to exit.
    pub waited: RefCell<Vec<Vec<u32>>>,
    /// The servers created ahead (and not yet used) as each wait for old workers began.
    pub prepared_at_wait: RefCell<Vec<Vec<String>>>,
    /// Hook commands that exit 1, as `CONTAINER PROGRAM` (old and new
    /// containers share their names in the fake).
    pub failing_hooks: HashSet<String>,
    /// How long each hook command run in a container (`exec_hook`) takes.
    pub hook_takes: Duration,
    /// The pre-deploy one-off exits 2.
    pub pre_deploy_fails: bool,
    /// What ran, in order: `exec CONTAINER ARGV…` or `one-off NAME SPEC ARGV…`.
    pub ran: RefCell<Vec<String>>,
    /// An operator's edit (from, to) that lands between our read and our next write.
    pub operator_edit: RefCell<Option<(String, String)>>,
    /// An operator's edit (from, to) that lands while `nginx -t` runs.
    pub edit_during_test: RefCell<Option<(String, String)>>,
    /// How long the old workers take to exit after each drain.
    pub drain_takes: Duration,
    /// How long stopping an old container takes.
    pub stop_takes: Duration,
    /// The containers stopped, in order: old ones, and start-first
    /// replacements that failed (by their id or name).
    pub stopped: RefCell<Vec<String>>,
    /// The containers stopped and kept (failed new replicas), in order.
    pub kept_stopped: RefCell<Vec<String>>,
    /// How long before it is asked a new container became healthy.
    pub healthy_ago: Duration,
    /// How long a new container takes to become healthy.
    pub health_takes: Duration,
    /// The new containers the monitor checked, once per check.
    pub checked: RefCell<Vec<String>>,
    /// The run's state directory, whose journal is read at every write.
    pub journal: Option<StateDir>,
    /// Each write's config, and the journal's server states as it was written.
    pub at_writes: RefCell<Vec<(String, Vec<ServerState>)>>,
}

impl Fake {
    /// A fake whose upstream has `servers` servers, all healthy.
    pub fn new(servers: usize) -> Fake {
        Fake {
            servers,
            conf: RefCell::new(conf(servers)),
            ..Fake::default()
        }
    }

    /// Its nginx.conf as it is now.
    pub fn text(&self) -> String {
        String::from_utf8(self.conf.borrow().clone()).unwrap()
    }

    /// The lines of its nginx.conf that say `down`, trimmed.
    pub fn down_lines(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains("down"))
            .map(|l| l.trim().to_string())
            .collect()
    }

    /// Lands the operator's edit (from, to) `edit` holds, if any (once).
    fn land(&self, edit: &RefCell<Option<(String, String)>>) {
        if let Some((from, to)) = edit.borrow_mut().take() {
            let text = self.text();
            *self.conf.borrow_mut() = text.replace(&from, &to).into_bytes();
        }
    }

    fn id(server: &ServerRef) -> String {
        format!("new-{}", server.server)
    }

    /// What the world says when the daemon went away.
    fn gone() -> anyhow::Error {
        anyhow::anyhow!("connection refused").context(crate::exec::world::Unreachable)
    }
}

impl World for Fake {
    type Spec = String;

    async fn load_config(&self) -> Result<ConfigSet> {
        Ok(ConfigSet::load_single(
            Path::new(MAIN),
            &MemFs::one(MAIN, self.conf.borrow().clone()),
        )?)
    }

    async fn write_config(&self, changes: &[FileChange]) -> Result<()> {
        self.land(&self.operator_edit);
        for c in changes {
            if *self.conf.borrow() != c.before {
                return Err(crate::conf::FileChanged {
                    path: c.path.clone(),
                }
                .into());
            }
            assert_eq!(
                *self.conf.borrow(),
                c.before,
                "edits apply to the bytes they were made from"
            );
            *self.conf.borrow_mut() = c.after.clone();
        }
        *self.writes.borrow_mut() += 1;
        if let Some(state) = &self.journal {
            let r: Rollout<String> = state.load(1)?;
            let states = r.servers.iter().map(|s| s.state).collect();
            self.at_writes.borrow_mut().push((self.text(), states));
        }
        Ok(())
    }

    async fn test_config(&self) -> Result<()> {
        self.land(&self.edit_during_test);
        if self.bad_config {
            bail!("nginx: [emerg] host not found in upstream \"app1:3000\"");
        }
        Ok(())
    }

    async fn reload(&self) -> Result<Reloaded> {
        let n = {
            let mut reloads = self.reloads.borrow_mut();
            *reloads += 1;
            *reloads as u32
        };
        Ok(Reloaded {
            old_workers: vec![n],
            // What earlier reloads left finishing requests.
            shutting_down: vec![100 + n],
            new_workers: vec![n + 1],
        })
    }

    async fn wait_drained(&self, old: &[u32], _timeout: Duration) -> Result<()> {
        self.waited.borrow_mut().push(old.to_vec());
        let prepared = self.prepared.borrow().clone();
        self.prepared_at_wait.borrow_mut().push(prepared);
        tokio::time::sleep(self.drain_takes).await;
        if let Some(tx) = &self.signal_on_drain {
            tx.send(true).unwrap();
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn prepare(&self, server: &ServerRef, _spec: &String, _ours: &Leftover) -> Result<()> {
        let mut prepared = self.prepared.borrow_mut();
        if !prepared.contains(&server.server) {
            prepared.push(server.server.clone());
        }
        Ok(())
    }

    async fn discard_prepared(&self, _containers: &[(String, Leftover)]) {
        let left = std::mem::take(&mut *self.prepared.borrow_mut());
        self.discarded.borrow_mut().extend(left);
    }

    async fn replace(&self, server: &ServerRef, _spec: &String, ours: &Leftover) -> Result<String> {
        if self.unreachable_replace.contains(&server.server) {
            return Err(Fake::gone());
        }
        let mut prepared = self.prepared.borrow_mut();
        if let Some(at) = prepared.iter().position(|s| *s == server.server) {
            self.used_prepared.borrow_mut().push(prepared.remove(at));
        }
        self.replaced.borrow_mut().push(server.server.clone());
        (self.told_ours.borrow_mut()).push((server.server.clone(), ours.clone()));
        Ok(Fake::id(server))
    }

    async fn start_new(
        &self,
        server: &ServerRef,
        spec: &String,
        ours: &Leftover,
    ) -> Result<String> {
        self.replace(server, spec, ours).await
    }

    async fn stop_old(&self, container: &str) -> Result<()> {
        self.stopped.borrow_mut().push(container.to_string());
        tokio::time::sleep(self.stop_takes).await;
        Ok(())
    }

    async fn stop(&self, container: &str) -> Result<bool> {
        let running = self.is_running(container).await?;
        if running {
            self.kept_stopped.borrow_mut().push(container.to_string());
        }
        Ok(running)
    }

    async fn exec_hook(
        &self,
        container: &str,
        command: &HookCommand,
        _timeout: Duration,
    ) -> Result<HookExit> {
        if self.unreachable_hooks.contains(container) {
            return Err(Fake::gone());
        }
        self.ran
            .borrow_mut()
            .push(format!("exec {container} {}", command.argv.join(" ")));
        tokio::time::sleep(self.hook_takes).await;
        let code = i64::from(
            self.failing_hooks
                .contains(&format!("{container} {}", command.argv[0])),
        );
        Ok(HookExit {
            code,
            output: format!("ran {}", command.argv.join(" ")),
        })
    }

    async fn run_one_off(
        &self,
        name: &str,
        spec: &String,
        command: &HookCommand,
        _timeout: Duration,
    ) -> Result<HookExit> {
        self.ran
            .borrow_mut()
            .push(format!("one-off {name} {spec} {}", command.argv.join(" ")));
        Ok(HookExit {
            code: if self.pre_deploy_fails { 2 } else { 0 },
            output: "migrating\nno database".into(),
        })
    }

    async fn is_running(&self, container: &str) -> Result<bool> {
        let server = container.trim_start_matches("new-");
        Ok(!self.crashes.contains(server) || (self.still_running && server != container))
    }

    async fn resolves(&self, host: &str) -> Result<bool> {
        self.is_running(host).await
    }

    async fn wait_healthy(
        &self,
        server: &ServerRef,
        _id: &str,
        _timeout: Duration,
    ) -> Result<DateTime<Utc>> {
        tokio::time::sleep(self.health_takes).await;
        if self.unhealthy.contains(&server.server) {
            bail!("container {} turned unhealthy", server.container);
        }
        if self.unreachable.contains(&server.server) {
            return Err(Fake::gone());
        }
        Ok(Utc::now() - self.healthy_ago)
    }

    async fn check(
        &self,
        id: &str,
        _since: DateTime<Utc>,
        _window: Duration,
    ) -> Result<Option<String>> {
        self.checked.borrow_mut().push(id.to_string());
        let server = id.trim_start_matches("new-");
        Ok((self.crashes.contains(server)
            && self.crash_noticed.is_none_or(|noticed| noticed(self))
            && self
                .crash_seen_after
                .is_none_or(|(from, after)| from.elapsed() >= after))
        .then(|| format!("{id} exited with code 1")))
    }
}
