//! The world a rollout acts on: one Docker daemon, the nginx container with
//! its config files, and the backend containers — the [`World`] the executor
//! runs plans against, built from the nginx and backend wings.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::desired::Desired;
use crate::backends::{
    self, ComposeCli, ComposeCliProbe, ContainerSpec, Probe, ReadingAhead, compose_container,
    compose_recreate, create_and_start, create_replacement, discard_leftover_replacement,
    discard_parked, discard_replacement, exec_hook, in_the_way, recreate_stop_first,
    resolve_backend, run_one_off, stop_and_keep, stop_and_remove,
};
use crate::conf::{Address, ConfigSet, FileChange};
use crate::docker::{self, ContainerInspectResponse, Docker, Endpoint};
use crate::exec::{Leftover, Reloaded, World};
use crate::nginx::{
    self, ConfigTester, ContainerFs, NginxContainer, NginxTestError, Workers, find_nginx,
};
use crate::plan::{HookCommand, HookExit, ServerRef};

/// How long nginx may take to start new workers after `-s reload`.
const RELOAD_CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// How a container without a Docker healthcheck is judged ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProbeKind {
    /// A TCP connect from the nginx container (the default).
    #[default]
    Tcp,
    /// `GET path` from the nginx container answers 2xx.
    Http(String),
}

/// The Docker daemon, the nginx container and its backends.
pub(crate) struct DockerWorld {
    /// The daemon.
    pub docker: Docker,
    /// Where it is, for the compose CLI.
    endpoint: Endpoint,
    /// The nginx container as found: its name, config path, mounts and
    /// networks, which a restart keeps. Its processes and files are read
    /// through [`Self::nginx_now`].
    pub nginx: NginxContainer,
    /// The nginx container with its main process as last inspected.
    running: Mutex<NginxContainer>,
    /// The compose CLI, if one is installed: looked for while the world is
    /// found, answered on first use.
    compose_cli: ComposeCliProbe,
    /// Compose v1's reading script, started as the world is found when the
    /// run will read a compose project (see [`ReadingAhead`]).
    reading_ahead: ReadingAhead,
    /// The health probe for containers without a healthcheck.
    probe: ProbeKind,
    /// nginx's config files: fetched from the container once per run, again
    /// only after a restart of the container (bind-mounted files are read from
    /// the host at every access; files only in the container change only
    /// through our own writes, which update this copy).
    files: Mutex<Option<Arc<ContainerFs>>>,
    /// Runs `nginx -t` in the nginx container.
    tester: ConfigTester,
    /// nginx's processes as listed by the last `test_config`, for the reload after it.
    workers_before_reload: Mutex<Option<Workers>>,
    /// Replacements created ahead by `prepare`, by the name of the container they replace.
    prepared: Mutex<HashMap<String, String>>,
    /// The daemon's version ([`docker::engine_version`]; `None`: it did not
    /// say), asked once per run: as the world is found when the run will
    /// read a compose project (a kept reading names it), so that its answer
    /// overlaps the discovery, else on first use.
    engine: Shared<BoxFuture<'static, Option<String>>>,
}

impl DockerWorld {
    /// Connects to the daemon at `endpoint` and finds the nginx container
    /// (`nginx`, else compose service `nginx` of the project in `cwd`, else
    /// the only one); with `read_compose`, compose v1's reading script
    /// starts meanwhile.
    pub async fn connect(
        endpoint: Endpoint,
        nginx: Option<&str>,
        cwd: &Path,
        probe: ProbeKind,
        read_compose: bool,
    ) -> Result<Self> {
        let compose_cli = ComposeCliProbe::start();
        let reading_ahead = match read_compose {
            true => ReadingAhead::start(&endpoint),
            false => ReadingAhead::none(),
        };
        let docker = docker::connect(&endpoint).await?;
        let engine = {
            let docker = docker.clone();
            let ask = async move {
                (docker::engine_version(&docker).await)
                    .map_err(|e| tracing::debug!("{e:#}"))
                    .ok()
            };
            match read_compose {
                true => {
                    let asked = tokio::spawn(ask);
                    async move { asked.await.ok().flatten() }.boxed().shared()
                }
                false => ask.boxed().shared(),
            }
        };
        let location = endpoint.location();
        tracing::debug!("daemon at {endpoint}: {location:?}");
        let nginx = find_nginx(&docker, location, nginx, cwd).await?;
        let running = Mutex::new(nginx.clone());
        Ok(DockerWorld {
            docker,
            endpoint,
            nginx,
            running,
            compose_cli,
            reading_ahead,
            probe,
            files: Mutex::new(None),
            tester: ConfigTester::default(),
            workers_before_reload: Mutex::new(None),
            prepared: Mutex::new(HashMap::new()),
            engine,
        })
    }

    /// The daemon's version ([`docker::engine_version`]), asked once per
    /// run; `None` when the daemon did not say.
    pub async fn engine_version(&self) -> Option<String> {
        self.engine.clone().await
    }

    /// Starts, in the background, the shell in the nginx container that
    /// `nginx -t` runs through ([`ConfigTester`]): for a run that will
    /// change the config, so that it is up by its first test.
    pub fn start_config_tester(&self) {
        self.tester.start_ahead(&self.docker, &self.nginx);
    }

    /// The daemon this world acts on.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Lets compose v1's reading script started ahead go, `because` no
    /// project will be read.
    pub fn discard_reading_ahead(&self, because: &str) {
        self.reading_ahead.discard(because);
    }

    /// The compose CLI (`docker compose` or `docker-compose`), if one is
    /// installed, pointed at this world's daemon.
    pub fn compose_cli(&self) -> Option<ComposeCli<'_>> {
        self.compose_cli.get().map(|kind| ComposeCli {
            kind,
            daemon: &self.endpoint,
            ahead: &self.reading_ahead,
        })
    }

    /// The nginx container as it runs now: inspected again once the main
    /// process known is gone (someone restarted the container), so that
    /// nginx's processes and files are read through the new one rather than
    /// through the daemon's slower ways for a process that no longer exists.
    /// No lock is held across the inspect: a wait paused mid-call (see the
    /// executor's `watching`) must not keep others from it.
    async fn nginx_now(&self) -> Result<NginxContainer> {
        let known = self.running.lock().expect("not poisoned").clone();
        if known.is_current() {
            return Ok(known);
        }
        let now = known.restarted(&self.docker).await?;
        tracing::debug!(
            "nginx container {} restarted: its main process is now {:?}",
            now.name,
            now.main_pid
        );
        *self.running.lock().expect("not poisoned") = now.clone();
        Ok(now)
    }

    /// The config files as nginx sees them (loaded again after a restart of
    /// the container; no lock held across the load, as for [`Self::nginx_now`]).
    pub async fn files(&self) -> Result<Arc<ContainerFs>> {
        let known = self.files.lock().expect("not poisoned").clone();
        match known {
            Some(fs) if fs.is_current() => return Ok(fs),
            Some(_) => tracing::warn!(
                "nginx container {} was restarted: its files are read again",
                self.nginx.name
            ),
            None => {}
        }
        let fs = Arc::new(ContainerFs::load(&self.docker, &self.nginx_now().await?).await?);
        *self.files.lock().expect("not poisoned") = Some(fs.clone());
        Ok(fs)
    }

    fn probe_for(&self, server: &str) -> Probe {
        match &self.probe {
            ProbeKind::Tcp => Probe::Tcp {
                nginx: self.nginx.name.clone(),
                addr: server.to_string(),
            },
            ProbeKind::Http(path) => Probe::Http {
                nginx: self.nginx.name.clone(),
                addr: server.to_string(),
                path: path.clone(),
            },
        }
    }

    async fn deploy(&self, name: &str, desired: &Desired) -> Result<String> {
        match desired {
            Desired::Engine { spec, .. } => create_and_start(&self.docker, spec, name).await,
            Desired::Compose { compose, .. } => {
                let cli = self.compose_cli().ok_or_else(|| {
                    anyhow!("no compose CLI (docker compose / docker-compose) installed")
                })?;
                compose_recreate(cli, compose).await?;
                compose_container(&self.docker, compose).await
            }
        }
    }

    fn prepared_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A poisoned map only lost a best-effort shortcut.
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of a container, or `None` if there is none by that name.
    async fn remove_if_present(&self, container: &str) -> Result<()> {
        if let Some(info) = docker::inspect(&self.docker, container).await? {
            stop_and_remove(&self.docker, &info).await?;
        }
        Ok(())
    }

    /// What we know of a host `nginx -t` could not resolve: a stopped
    /// backend, which Docker's DNS does not answer for.
    async fn stopped_backend_hint(&self, host: &str) -> Option<String> {
        let backend = resolve_backend(&self.docker, &self.nginx.networks, host)
            .await
            .ok()?;
        (!backend.running).then(|| {
            format!(
                "container {} (server {host}) is not running, and Docker's DNS resolves only running \
                 containers: start it, or include its server in the deploy (a stopped server is \
                 recreated first, before any config edit)",
                backend.name
            )
        })
    }
}

impl World for DockerWorld {
    type Spec = Desired;

    async fn load_config(&self) -> Result<ConfigSet> {
        let fs = self.files().await?;
        let loaded = ConfigSet::load(&self.nginx.conf_path, &*fs);
        if fs.is_current() {
            return Ok(loaded?);
        }
        // Read through a process that exited meanwhile (nginx restarted):
        // files it no longer showed may be there. Read them again.
        let fs = self.files().await?;
        Ok(ConfigSet::load(&self.nginx.conf_path, &*fs)?)
    }

    async fn write_config(&self, changes: &[FileChange]) -> Result<()> {
        for c in changes {
            // Taken for each file: after a restart of nginx while the one
            // before was written, a file's owner and mode are read through
            // the new main process.
            let fs = self.files().await?;
            fs.write(&self.docker, &c.path, &c.before, &c.after).await?;
        }
        Ok(())
    }

    async fn test_config(&self) -> Result<()> {
        let nginx = self.nginx_now().await?;
        // The workers a reload replaces are listed while nginx -t runs.
        let (test, workers) = tokio::join!(
            self.tester.test(&self.docker, &nginx),
            nginx::worker_pids(&self.docker, &nginx)
        );
        if let Err(mut e) = test {
            if let (Some(host), NginxTestError::Rejected { hint, .. }) =
                (e.unresolved_host(), &mut e)
            {
                *hint = self.stopped_backend_hint(&host).await;
            }
            return Err(e.into());
        }
        // Unreadable while nginx restarted (the test waited for it): list again.
        let workers = match workers {
            Ok(w) => w,
            Err(_) => nginx::worker_pids(&self.docker, &self.nginx_now().await?).await?,
        };
        *self.workers_before_reload.lock().expect("not poisoned") = Some(workers);
        Ok(())
    }

    async fn reload(&self) -> Result<Reloaded> {
        let before = self
            .workers_before_reload
            .lock()
            .expect("not poisoned")
            .take();
        let nginx = self.nginx_now().await?;
        let out = nginx::reload(&self.docker, &nginx, before, RELOAD_CONFIRM_TIMEOUT).await?;
        Ok(Reloaded {
            old_workers: out.old_workers,
            shutting_down: out.shutting_down,
            new_workers: out.new_workers,
        })
    }

    async fn wait_drained(&self, old_workers: &[u32], timeout: Duration) -> Result<()> {
        let nginx = self.nginx_now().await?;
        nginx::wait_old_workers_exit(&self.docker, &nginx, old_workers, timeout).await
    }

    async fn prepare(&self, server: &ServerRef, desired: &Desired, ours: &Leftover) -> Result<()> {
        // The compose CLI makes its container in one go: nothing to do ahead.
        let Desired::Engine { spec, .. } = desired else {
            return Ok(());
        };
        if self.prepared_lock().contains_key(&server.container) {
            return Ok(());
        }
        let Some(old) = docker::inspect(&self.docker, &server.container).await? else {
            return Ok(());
        };
        if let Some(read_back) = desired.read_back() {
            refuse_escalation(&old, &server.container, read_back)?;
        }
        let claims = |id: &str, at| ours.claims(id, at);
        let id = create_replacement(&self.docker, &server.container, spec, &claims).await?;
        self.prepared_lock().insert(server.container.clone(), id);
        Ok(())
    }

    async fn discard_prepared(&self, containers: &[(String, Leftover)]) {
        let left: Vec<String> = self.prepared_lock().drain().map(|(_, id)| id).collect();
        for id in left {
            discard_replacement(&self.docker, &id).await;
        }
        for (name, ours) in containers {
            let claims = |id: &str, at| ours.claims(id, at);
            discard_leftover_replacement(&self.docker, name, &claims).await;
        }
    }

    async fn replace(&self, server: &ServerRef, spec: &Desired, ours: &Leftover) -> Result<String> {
        let ready = self.prepared_lock().remove(&server.container);
        match (
            spec,
            docker::inspect(&self.docker, &server.container).await?,
        ) {
            // The replacement is created before the old one stops (while nginx
            // drains it, if `prepare` ran), so only stop → start is downtime. By
            // id: the name moves to the replacement on the way.
            (desired @ Desired::Engine { spec, .. }, Some(old)) => {
                if let Some(read_back) = desired.read_back() {
                    refuse_escalation(&old, &server.container, read_back)?;
                }
                let claims = |id: &str, at| ours.claims(id, at);
                Ok(
                    recreate_stop_first(&self.docker, &old, spec, ready, &claims)
                        .await?
                        .id,
                )
            }
            // Gone already (a resumed rollout that was killed between stop and
            // start): what that run parked under the temporary names goes first.
            _ => {
                if matches!(spec, Desired::Engine { .. }) {
                    let claims = |id: &str, at| ours.claims(id, at);
                    discard_parked(&self.docker, &server.container, &claims).await;
                }
                self.deploy(&server.container, spec).await
            }
        }
    }

    async fn start_new(
        &self,
        server: &ServerRef,
        spec: &Desired,
        ours: &Leftover,
    ) -> Result<String> {
        // The container serving the server now is the one this one replaces
        // (looked for only when there is a spec read back to check).
        let host = Address::parse(&server.server).host;
        let escalation = async {
            let Some(read_back) = spec.read_back() else {
                return Ok(());
            };
            match resolve_backend(&self.docker, &self.nginx.networks, &host).await {
                Ok(live) => match docker::inspect(&self.docker, &live.id).await? {
                    Some(info) => refuse_escalation(&info, &live.id, read_back),
                    // Gone since: nothing to compare.
                    None => Ok(()),
                },
                Err(_) => Ok(()),
            }
        };
        // Both only read, so they are asked at once (each round trip is time
        // before the create under load); nothing is removed unless allowed.
        let claims = |id: &str, at| ours.claims(id, at);
        let (escalation, leftover) = tokio::join!(
            escalation,
            in_the_way(&self.docker, &server.container, &claims)
        );
        escalation?;
        // A container of this name is removed only as a leftover of a stopped
        // run of ours (the journal proves it); an operator's is an error.
        if let Some(info) = leftover? {
            stop_and_remove(&self.docker, &info).await?;
        }
        self.deploy(&server.container, spec).await
    }

    async fn stop_old(&self, container: &str) -> Result<()> {
        self.remove_if_present(container).await
    }

    async fn stop(&self, container: &str) -> Result<bool> {
        stop_and_keep(&self.docker, container).await
    }

    async fn is_running(&self, container: &str) -> Result<bool> {
        Ok(docker::inspect(&self.docker, container)
            .await?
            .and_then(|info| info.state?.running)
            .unwrap_or(false))
    }

    async fn resolves(&self, host: &str) -> Result<bool> {
        backends::answers(&self.docker, &self.nginx.networks, host).await
    }

    async fn wait_healthy(
        &self,
        server: &ServerRef,
        container_id: &str,
        timeout: Duration,
    ) -> Result<DateTime<Utc>> {
        let probe = self.probe_for(&server.address);
        let at = backends::wait_healthy(&self.docker, container_id, &probe, timeout).await?;
        Ok(at.healthy_at)
    }

    async fn exec_hook(
        &self,
        container: &str,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookExit> {
        exec_hook(&self.docker, container, command, timeout).await
    }

    async fn run_one_off(
        &self,
        name: &str,
        spec: &Desired,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookExit> {
        match spec {
            Desired::Engine { spec, .. } => {
                run_one_off(&self.docker, spec, name, command, timeout).await
            }
            Desired::Compose { compose, .. } => bail!(
                "compose service {} is redeployed by the compose CLI, so its new container's spec is not known before compose makes it",
                compose.service
            ),
        }
    }

    async fn check(
        &self,
        container_id: &str,
        since: DateTime<Utc>,
        window: Duration,
    ) -> Result<Option<String>> {
        let failed = backends::failed_within(&self.docker, container_id, since, window)
            .await
            .with_context(|| format!("container {}: monitor", docker::shown(container_id)))?;
        Ok(failed.map(|e| e.to_string()))
    }

    fn is_unreachable(&self, e: &anyhow::Error) -> bool {
        docker::is_unreachable(e)
    }
}

/// Refuses to create a container from `spec`, read back from the journal
/// ([`Desired::read_back`]), that would have privileges the running
/// container `live` (inspected; `name` if it has none), which it replaces,
/// does not have: the journal must not be trusted to grant more.
fn refuse_escalation(
    live: &ContainerInspectResponse,
    name: &str,
    spec: &ContainerSpec,
) -> Result<()> {
    let name = docker::name_of(live, name);
    match spec.escalation_over(&live.host_config.clone().unwrap_or_default(), name) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
