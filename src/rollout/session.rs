//! A session: the one place that connects to Docker, finds nginx, locates the
//! state directory, takes its lock and refuses to start over an unfinished
//! rollout. Every use case starts from one.
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::de::DeserializeOwned;

use super::world::{DockerWorld, ProbeKind};
use crate::docker::{DockerOptions, Endpoint};
use crate::exec::{Lock, Observer, StateDir};

/// Which daemon, where nginx and the journal are, and who is asking.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The daemon, as docker's flags name it (with the environment and the
    /// docker CLI's config for the rest).
    pub docker: DockerOptions,
    /// The nginx container (name or id); default: compose service `nginx` of
    /// the project in `cwd`, else the only nginx.
    pub nginx: Option<String>,
    /// The journal directory; default: `.nginx-rollout/` next to nginx.conf on the host.
    pub state_dir: Option<PathBuf>,
    /// The directory the command runs in.
    pub cwd: PathBuf,
    /// The command line, kept in the journal and in the lock.
    pub command: String,
    /// How a container without a Docker healthcheck is judged ready.
    pub probe: ProbeKind,
}

/// A connection to the Docker daemon and the nginx container a command acts on.
pub struct Session {
    pub(crate) world: DockerWorld,
    state_dir: Option<PathBuf>,
    pub(crate) command: String,
}

/// The state directory, locked for this run.
pub(crate) struct Locked {
    /// The journal.
    pub state: StateDir,
    _lock: Lock,
}

impl Session {
    /// Chooses the daemon as the docker CLI does, connects to it and finds
    /// the nginx container.
    pub async fn open(options: SessionOptions) -> Result<Session> {
        let endpoint = Endpoint::resolve(&options.docker)?;
        let world = DockerWorld::connect(
            endpoint,
            options.nginx.as_deref(),
            &options.cwd,
            options.probe,
        )
        .await?;
        Ok(Session {
            world,
            state_dir: options.state_dir,
            command: options.command,
        })
    }

    /// Where the state directory is (it may not exist yet): the explicit one,
    /// else `.nginx-rollout/` next to the host's copy of the main config (a
    /// local daemon's bind mount), else `./.nginx-rollout/`.
    async fn state_root(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.state_dir {
            return Ok(dir.clone());
        }
        let fs = self.world.files().await?;
        Ok(
            match fs
                .host_path(&self.world.nginx.conf_path)
                .and_then(|p| p.parent().map(Path::to_path_buf))
            {
                Some(dir) => dir.join(".nginx-rollout"),
                None => std::env::current_dir()?.join(".nginx-rollout"),
            },
        )
    }

    /// The state directory if it exists (reading commands create nothing).
    pub(crate) async fn existing_state(&self) -> Result<Option<StateDir>> {
        let root = self.state_root().await?;
        Ok(if root.exists() {
            Some(StateDir::open(&root)?)
        } else {
            None
        })
    }

    /// Opens (creating) the state directory and takes its lock; a lock taken
    /// over from a process that died holding it is told to `observer`.
    pub(crate) async fn lock(&self, observer: &mut dyn Observer) -> Result<Locked> {
        let state = StateDir::open(&self.state_root().await?)?;
        let lock = Lock::acquire(&state.root().join("lock"), &self.command)?;
        if let Some(dead) = &lock.taken_over_from {
            observer.notice(&format!(
                "took over the lock of pid {} ({}, since {}), which died holding it; `status` shows what it left",
                dead.pid, dead.command, dead.since
            ));
        }
        Ok(Locked { state, _lock: lock })
    }
}

/// Fails when `upstream` has a rollout that is not finished: it must be
/// resumed or rolled back before anything new starts.
pub(crate) fn refuse_if_unfinished<S: DeserializeOwned>(
    state: &StateDir,
    upstream: &str,
) -> Result<()> {
    if let Some(r) = state.unfinished::<S>(Some(upstream))? {
        bail!(
            "revision {} ({} of upstream {}) is {:?}: run `nginx-rollout resume` or `nginx-rollout rollback` first",
            r.revision,
            r.kind,
            r.upstream,
            r.status
        );
    }
    Ok(())
}
