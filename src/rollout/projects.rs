//! The compose projects a deploy reads: what it will ask of each is known
//! before compose runs, and each is read once, on first use; what compose
//! read is kept in the state directory for the next deploy.
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::PathBuf;

use anyhow::{Result, anyhow};

use super::deploy::{DeployRequest, Mode, use_compose};
use super::world::DockerWorld;
use crate::backends::{
    BackendContainer, ComposeProject, ProjectQuery, Reading, Resolved, compose_named, reading_name,
    superseded_reading,
};
use crate::conf::Server;
use crate::docker::ComposeRef;
use crate::exec::StateDir;

/// The compose projects a deploy reads, by (project, working dir): what it
/// will ask of each, known before compose runs, and each as compose
/// answered, asked once on first use.
pub(super) struct Projects {
    queries: HashMap<ProjectKey, ProjectQuery>,
    loaded: HashMap<ProjectKey, ComposeProject>,
    /// Where readings are kept (none in a dry run or under `--mode compose-cli`).
    state: Option<StateDir>,
    /// The projects read without compose, and what changed in each.
    derived: Vec<String>,
}

/// A compose project: its name and working directory.
type ProjectKey = (String, Option<PathBuf>);

fn project_key(compose: &ComposeRef) -> ProjectKey {
    (compose.project.clone(), compose.working_dir.clone())
}

impl Projects {
    /// What the compose-mode servers of `found` will ask: each service's
    /// config hash, and a template of each service whose containers bear
    /// compose's own names (none in a dry run, which creates nothing, or
    /// under `--mode compose-cli`, which uses none), made at once.
    pub(super) fn new(
        world: &DockerWorld,
        request: &DeployRequest,
        found: &[(&Server, Resolved)],
        state: Option<&StateDir>,
    ) -> Self {
        let mut queries: HashMap<ProjectKey, ProjectQuery> = HashMap::new();
        for (_, resolved) in found {
            let members: &[BackendContainer] = match resolved {
                Resolved::One(b) => std::slice::from_ref(&**b),
                Resolved::Replicas(all) => all,
            };
            let Some(c) = members.iter().find_map(|m| m.compose.as_ref()) else {
                continue;
            };
            if !use_compose(world, request, true) {
                continue;
            }
            let query = queries.entry(project_key(c)).or_default();
            query.hashed.insert(c.service.clone());
            if !request.dry_run
                && request.mode != Mode::ComposeCli
                && members.iter().all(|m| compose_named(&m.name, c))
            {
                let count = query.templates.entry(c.service.clone()).or_default();
                *count = (*count).max(members.len());
            }
        }
        Projects {
            queries,
            loaded: HashMap::new(),
            // `--mode compose-cli`: compose does all of it, the reading too.
            state: state.filter(|_| request.reads_compose()).cloned(),
            derived: Vec::new(),
        }
    }

    /// A line for the plan's notices per project read without compose.
    pub(super) fn derived(&self) -> &[String] {
        &self.derived
    }

    /// A project already read.
    pub(super) fn get(&self, compose: &ComposeRef) -> Result<&ComposeProject> {
        self.loaded
            .get(&project_key(compose))
            .ok_or_else(|| anyhow!("compose project {} was not read", compose.project))
    }
}

/// The reading kept under `name`, if one is and it reads.
fn kept_reading(state: &StateDir, name: &str) -> Option<Reading> {
    let bytes = state
        .kept(name)
        .map_err(|e| tracing::debug!("{e:#}"))
        .ok()??;
    serde_json::from_slice(&bytes)
        .map_err(|e| tracing::debug!("kept {name}: {e}"))
        .ok()
}

/// What compose says of `compose`'s project, asked on first use (with
/// everything the deploy will ask of it).
pub(super) async fn project<'p>(
    world: &DockerWorld,
    projects: &'p mut Projects,
    compose: &ComposeRef,
) -> Result<&'p ComposeProject> {
    let cli = world.compose_cli().ok_or_else(|| {
        anyhow!("compose mode: no compose CLI (docker compose / docker-compose) installed")
    })?;
    let key = project_key(compose);
    Ok(match projects.loaded.entry(key) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => {
            let query = projects.queries.get(e.key()).cloned().unwrap_or_default();
            let name = reading_name(compose);
            let state = projects.state.as_ref();
            let kept = state.and_then(|s| kept_reading(s, &name));
            // A reading is kept only with a state directory to keep it in.
            let engine = match state {
                Some(_) => world.engine_version().await,
                None => None,
            };
            let loaded = ComposeProject::load_for(
                cli,
                &world.docker,
                compose,
                &query,
                engine.as_deref(),
                kept.as_ref(),
            )
            .await?;
            if let Some(changed) = &loaded.derived {
                projects.derived.push(match changed.is_empty() {
                    true => format!(
                        "compose project {}: its files are as compose last read them; compose did not run",
                        compose.project
                    ),
                    false => format!(
                        "compose project {}: only environment values or images changed since compose last read it ({}); compose did not run",
                        compose.project,
                        changed.join("; ")
                    ),
                });
            }
            if let (Some(state), Some(reading)) = (state, &loaded.reading) {
                let kept = serde_json::to_vec(reading)
                    .map_err(anyhow::Error::from)
                    .and_then(|bytes| state.keep(&name, &bytes));
                match kept {
                    // Once this version keeps a reading, those of earlier ones go.
                    Ok(()) => {
                        if let Err(e) = state.forget_kept(superseded_reading) {
                            tracing::warn!("readings of earlier versions not removed: {e:#}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!("compose project {}: not kept: {e:#}", compose.project)
                    }
                }
            }
            e.insert(loaded.project)
        }
    })
}
