//! The live environment: the Docker daemon, the nginx container and its
//! config files, as an [`exec::Backend`](crate::exec::Backend).
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::conf::{ConfigSet, FileChange};
use crate::docker::backend::{
    ComposeCli, ContainerSpec, Probe, compose_cli, compose_container, compose_recreate,
    create_and_start, recreate_stop_first, stop_and_remove, wait_healthy,
};
use crate::docker::{
    ComposeRef, ContainerFs, NginxContainer, Workers, find_nginx, is_not_found, reload, worker_pids,
};
use crate::exec::{Backend, StateDir};
use crate::plan::ServerRef;

/// How long nginx may take to start new workers after `-s reload`.
const RELOAD_CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// What the backend deploys for one server: stored in the journal as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Desired {
    /// Recreate through the Engine API from this spec.
    Engine {
        /// The container to create.
        spec: Box<ContainerSpec>,
    },
    /// `up -d --no-deps --force-recreate SERVICE` with the project's compose file.
    Compose {
        /// The service.
        compose: ComposeRef,
        /// The image the compose file gives the service (for the summary).
        image: String,
    },
}

impl Desired {
    /// The image this deploys (as far as known before it runs).
    pub fn image(&self) -> &str {
        match self {
            Desired::Engine { spec } => &spec.image,
            Desired::Compose { image, .. } => image,
        }
    }
}

/// How a container without a Docker healthcheck is judged ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// A TCP connect from the nginx container (the default).
    #[default]
    Tcp,
    /// `GET path` from the nginx container answers 2xx.
    Http(String),
}

/// The Docker daemon and the nginx container a rollout acts on.
pub struct Live {
    /// The daemon.
    pub docker: Docker,
    /// The nginx container.
    pub nginx: NginxContainer,
    /// The compose CLI, if one is installed: looked for on first use, since
    /// starting `docker-compose` (Python) just to ask costs most of a second.
    compose_cli: OnceLock<Option<ComposeCli>>,
    /// The health probe for containers without a healthcheck.
    pub probe: ProbeKind,
    /// nginx's config files: fetched from the container once per run (bind-mounted
    /// files are read from the host at every access; files only in the container
    /// change only through our own writes, which update this copy).
    files: tokio::sync::OnceCell<ContainerFs>,
    /// nginx's processes as listed by the last `test_config`, for the reload after it.
    workers_before_reload: Mutex<Option<Workers>>,
}

impl Live {
    /// Connects and finds the nginx container (`--nginx`, else compose service `nginx` in `cwd`, else the only one).
    pub async fn connect(nginx: Option<&str>, cwd: &Path) -> Result<Live> {
        let docker = crate::docker::connect().await?;
        let nginx = find_nginx(&docker, nginx, cwd).await?;
        Ok(Live {
            docker,
            nginx,
            compose_cli: OnceLock::new(),
            probe: ProbeKind::default(),
            files: tokio::sync::OnceCell::new(),
            workers_before_reload: Mutex::new(None),
        })
    }

    /// The compose CLI (`docker compose` or `docker-compose`), if one is installed.
    pub fn compose_cli(&self) -> Option<ComposeCli> {
        *self.compose_cli.get_or_init(compose_cli)
    }

    /// The config files as nginx sees them.
    pub async fn files(&self) -> Result<&ContainerFs> {
        self.files
            .get_or_try_init(|| ContainerFs::load(&self.docker, &self.nginx))
            .await
    }

    /// The state directory: `explicit`, else `.nginx-rollout/` next to the host's
    /// copy of the main config, else `./.nginx-rollout/`. Created if missing.
    pub async fn state_dir(&self, explicit: Option<&Path>) -> Result<StateDir> {
        StateDir::open(&self.state_root(explicit).await?)
    }

    /// Where the state directory is (it may not exist yet).
    pub async fn state_root(&self, explicit: Option<&Path>) -> Result<PathBuf> {
        let root: PathBuf = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let fs = self.files().await?;
                match fs
                    .host_path(&self.nginx.conf_path)
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                {
                    Some(dir) => dir.join(".nginx-rollout"),
                    None => std::env::current_dir()?.join(".nginx-rollout"),
                }
            }
        };
        Ok(root)
    }

    fn probe_for(&self, server: &str) -> Probe {
        match &self.probe {
            ProbeKind::Tcp => Probe::Tcp {
                nginx: self.nginx.id.clone(),
                addr: server.to_string(),
            },
            ProbeKind::Http(path) => Probe::Http {
                nginx: self.nginx.id.clone(),
                addr: server.to_string(),
                path: path.clone(),
            },
        }
    }

    async fn deploy(&self, name: &str, spec: &serde_json::Value) -> Result<String> {
        let desired: Desired = serde_json::from_value(spec.clone())
            .context("journal holds an unknown container spec")?;
        match desired {
            Desired::Engine { spec } => create_and_start(&self.docker, &spec, name).await,
            Desired::Compose { compose, .. } => {
                let cli = self.compose_cli().ok_or_else(|| {
                    anyhow!("no compose CLI (docker compose / docker-compose) installed")
                })?;
                compose_recreate(cli, &compose).await?;
                compose_container(&self.docker, &compose).await
            }
        }
    }

    /// A container's inspect data, or `None` if there is no such container.
    async fn inspect(&self, container: &str) -> Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(container, None).await {
            Ok(info) => Ok(Some(info)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("container {container}")),
        }
    }

    /// The id of a container, or `None` if there is none by that name.
    async fn id_of(&self, container: &str) -> Result<Option<String>> {
        Ok(self.inspect(container).await?.and_then(|info| info.id))
    }

    /// Whether a container exists and runs (nginx can resolve only running containers' names).
    pub async fn is_running(&self, container: &str) -> Result<bool> {
        Ok(self
            .inspect(container)
            .await?
            .and_then(|info| info.state?.running)
            .unwrap_or(false))
    }

    async fn remove_if_present(&self, container: &str) -> Result<()> {
        if let Some(id) = self.id_of(container).await? {
            stop_and_remove(&self.docker, &id).await?;
        }
        Ok(())
    }
}

impl Backend for Live {
    async fn load_config(&self) -> Result<ConfigSet> {
        let fs = self.files().await?;
        Ok(ConfigSet::load(&self.nginx.conf_path, fs)?)
    }

    async fn write_config(&self, changes: &[FileChange]) -> Result<()> {
        let fs = self.files().await?;
        for c in changes {
            fs.write(&self.docker, &c.path, &c.after).await?;
        }
        Ok(())
    }

    async fn test_config(&self) -> Result<()> {
        // The workers a reload replaces are listed while nginx -t runs.
        let (test, workers) = tokio::join!(
            reload::test_config(&self.docker, &self.nginx),
            worker_pids(&self.docker, &self.nginx)
        );
        test?;
        *self.workers_before_reload.lock().expect("not poisoned") = Some(workers?);
        Ok(())
    }

    async fn reload(&self) -> Result<(Vec<u32>, Vec<u32>)> {
        let before = self
            .workers_before_reload
            .lock()
            .expect("not poisoned")
            .take();
        let out = reload::reload(&self.docker, &self.nginx, before, RELOAD_CONFIRM_TIMEOUT).await?;
        Ok((out.old_workers, out.new_workers))
    }

    async fn wait_drained(&self, old_workers: &[u32], timeout: Duration) -> Result<()> {
        reload::wait_old_workers_exit(&self.docker, &self.nginx, old_workers, timeout).await
    }

    async fn replace(&self, server: &ServerRef, spec: &serde_json::Value) -> Result<String> {
        let desired: Desired = serde_json::from_value(spec.clone())
            .context("journal holds an unknown container spec")?;
        match (desired, self.id_of(&server.container).await?) {
            // The replacement is created before the old one stops, so only stop → start is
            // downtime. By id: the name moves to the replacement on the way.
            (Desired::Engine { spec }, Some(old_id)) => {
                Ok(recreate_stop_first(&self.docker, &old_id, &spec).await?.id)
            }
            // Gone already (a resumed rollout that was killed between stop and start).
            _ => self.deploy(&server.container, spec).await,
        }
    }

    async fn start_new(&self, server: &ServerRef, spec: &serde_json::Value) -> Result<String> {
        // A leftover from an interrupted start-first run has this name: it is ours to replace.
        self.remove_if_present(&server.container).await?;
        self.deploy(&server.container, spec).await
    }

    async fn stop_old(&self, container: &str) -> Result<()> {
        self.remove_if_present(container).await
    }

    async fn wait_healthy(
        &self,
        server: &ServerRef,
        container_id: &str,
        timeout: Duration,
    ) -> Result<SystemTime> {
        let at = wait_healthy(
            &self.docker,
            container_id,
            &self.probe_for(&server.address),
            timeout,
        )
        .await?;
        Ok(at.healthy_at.into())
    }

    async fn check(
        &self,
        container_id: &str,
        since: SystemTime,
        window: Duration,
    ) -> Result<Option<String>> {
        let until: DateTime<Utc> = (since + window).into();
        let since: DateTime<Utc> = since.into();
        let Some(info) = self.inspect(container_id).await? else {
            return Ok(Some(format!("container {container_id} disappeared")));
        };
        let name = info
            .name
            .as_deref()
            .unwrap_or(container_id)
            .trim_start_matches('/')
            .to_string();
        let state = info.state.unwrap_or_default();
        let parse = |s: Option<&String>| {
            s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc))
        };
        let within = |t: DateTime<Utc>| t >= since && t <= until;
        if state.running != Some(true) {
            let finished = parse(state.finished_at.as_ref());
            if finished.is_none_or(within) {
                return Ok(Some(format!(
                    "{name} exited with code {}",
                    state.exit_code.unwrap_or(-1)
                )));
            }
            return Ok(None);
        }
        let started = parse(state.started_at.as_ref());
        if info.restart_count.unwrap_or(0) > 0 && started.is_some_and(within) {
            return Ok(Some(format!(
                "{name} restarted ({} restarts)",
                info.restart_count.unwrap_or(0)
            )));
        }
        if let Some(health) = state.health
            && health.status == Some(bollard::models::HealthStatusEnum::UNHEALTHY)
        {
            let failed_in_window = health.log.unwrap_or_default().iter().any(|entry| {
                entry.exit_code != Some(0)
                    && parse(entry.start.as_ref()).is_some_and(|t| t <= until)
            });
            if failed_in_window {
                return Ok(Some(format!("{name} turned unhealthy")));
            }
        }
        Ok(None)
    }
}
