//! A session: the one place that connects to Docker, finds nginx, locates the
//! state directory, takes its lock and refuses to start over an unfinished
//! rollout. Every use case starts from one.
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::de::DeserializeOwned;

use super::state_location::{StateRoot, locate, move_command, refuse_if_container_writable};
use super::world::{DockerWorld, ProbeKind};
use crate::docker::{DaemonLocation, DockerOptions, Endpoint};
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
    /// The journal directory; default: see [`state_location`](super::state_location).
    pub state_dir: Option<PathBuf>,
    /// The directory the command runs in.
    pub cwd: PathBuf,
    /// The command line, kept in the journal and in the lock.
    pub command: String,
    /// How a container without a Docker healthcheck is judged ready.
    pub probe: ProbeKind,
    /// Whether the command will read a compose project with compose v1's own
    /// code: its interpreter starts as the session opens.
    pub read_compose: bool,
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
            options.read_compose,
        )
        .await?;
        Ok(Session {
            world,
            state_dir: options.state_dir,
            command: options.command,
        })
    }

    /// Where the state directory is (it may not exist yet): see
    /// [`state_location`](super::state_location). One inside a mount the
    /// nginx container can write is refused. A remote daemon's nginx is
    /// named with its daemon (another daemon may have one by the same name),
    /// and its mounts, paths on another host, say nothing about this one.
    async fn state_root(&self) -> Result<StateRoot> {
        let fs = self.world.files().await?;
        let nginx = &self.world.nginx;
        let host = fs.host_path(&nginx.conf_path);
        let (container, mounts) = match nginx.daemon {
            DaemonLocation::Local => (nginx.name.clone(), nginx.mounts.as_slice()),
            DaemonLocation::Remote => (
                format!("{}/{}", self.world.endpoint().host(), nginx.name),
                &[][..],
            ),
        };
        let root = locate(self.state_dir.as_deref(), host.as_deref(), &container)?;
        refuse_if_container_writable(&root.path, &nginx.name, mounts)?;
        Ok(root)
    }

    /// The state directory if it exists (reading commands create nothing).
    pub(crate) async fn existing_state(&self) -> Result<Option<StateDir>> {
        let root = self.state_root().await?;
        if let Some(advice) = move_advice(&root) {
            tracing::warn!("{advice}");
        }
        Ok(if root.path.exists() {
            Some(StateDir::open(&root.path)?)
        } else {
            None
        })
    }

    /// Opens (creating) the state directory and takes its lock; a lock taken
    /// over from a process that died holding it is told to `observer`.
    pub(crate) async fn lock(&self, observer: &mut dyn Observer) -> Result<Locked> {
        let root = self.state_root().await?;
        if let Some(advice) = move_advice(&root) {
            observer.notice(&advice);
        }
        let state = StateDir::open(&root.path)?;
        let lock = Lock::acquire(&state.root().join("lock"), &self.command)?;
        // A run that holds the lock changes nginx's config: the shell its
        // tests run through starts while it reads and plans.
        self.world.start_config_tester();
        if let Some(dead) = &lock.taken_over_from {
            observer.notice(&format!(
                "took over the lock of pid {} ({}, since {}), which died holding it; `status` shows what it left",
                dead.pid, dead.command, dead.since
            ));
        }
        Ok(Locked { state, _lock: lock })
    }
}

/// What to tell about a state directory an earlier version kept next to nginx.conf.
pub(crate) fn move_advice(root: &StateRoot) -> Option<String> {
    root.move_to.as_ref().map(|to| {
        format!(
            "using the state directory {} of an earlier version, next to nginx.conf; move it where \
             no container can write: `{}`",
            root.path.display(),
            move_command(&root.path, to)
        )
    })
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
