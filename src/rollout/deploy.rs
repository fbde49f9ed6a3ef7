//! `deploy`: which servers, which containers, what to deploy on each, the
//! policy in effect, the plan — then the run.
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::watch;

use super::run::{Ended, Origin, Planned, Runner, new_rollout};
use super::session::{Session, refuse_if_unfinished};
use super::world::{Desired, DockerWorld};
use crate::backends::{
    ComposeProject, TemplateVars, backend_by_name, capture_spec, next_slot, policy_sections,
    render_value, resolve_backend,
};
use crate::exec::{Observer, PlanKind, RolloutKind, ServerRecord, ServerState, World};
use crate::plan::{
    ComposeSection, Direction, Order, Overrides, Plan, Target, Timeouts, UpdateConfig, resolve,
    rolling_update,
};

/// How a backend is redeployed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Compose when the container belongs to a compose project and no image/env/label is given, else engine.
    #[default]
    Auto,
    /// `docker compose up -d --no-deps --force-recreate SERVICE` (the seed's own step).
    Compose,
    /// Recreate through the Engine API, keeping the container's configuration.
    Engine,
}

/// What `deploy` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    /// The upstream.
    pub upstream: String,
    /// Servers to update (address or unique host); empty = all.
    pub servers: Vec<String>,
    /// New image (tera template).
    pub image: Option<String>,
    /// Environment changes (values are tera templates).
    pub env: Vec<(String, String)>,
    /// Label changes (values are tera templates).
    pub labels: Vec<(String, String)>,
    /// Server → container mappings discovery cannot make.
    pub maps: Vec<(String, String)>,
    /// Compose or engine.
    pub mode: Mode,
    /// Redeploy even services whose compose config did not change.
    pub force: bool,
    /// Update policy flags.
    pub update: Overrides,
    /// Rollback policy flags.
    pub rollback: Overrides,
    /// Wait limits.
    pub timeouts: Timeouts,
    /// Show the plan; change nothing (no lock, no journal).
    pub dry_run: bool,
}

/// A deploy's plan with everything the journal must keep.
struct Prepared {
    plan: Plan,
    rollback_policy: UpdateConfig,
    servers: Vec<ServerRecord<Desired>>,
    skipped: Vec<(String, String)>,
}

/// Rolls the upstream's containers to what the request (or their compose
/// files) say, by the policy in effect.
pub async fn deploy(
    session: &Session,
    request: &DeployRequest,
    observer: &mut dyn Observer,
    cancel: watch::Receiver<bool>,
) -> Result<Ended> {
    let world = &session.world;
    if request.dry_run {
        // Read-only: no lock, no journal, no state directory.
        let prepared = prepare(world, request).await?;
        return Ok(Ended::Planned(Box::new(Planned {
            kind: PlanKind::Deploy,
            revision: 0,
            plan: prepared.plan,
            skipped: prepared.skipped,
        })));
    }
    let locked = session.lock(observer).await?;
    let state = &locked.state;
    refuse_if_unfinished::<Desired>(state, &request.upstream)?;
    let prepared = prepare(world, request).await?;
    for (server, why) in &prepared.skipped {
        observer.notice(&format!("skipping {server}: {why}"));
    }
    if !observer.approve(PlanKind::Deploy, &prepared.plan)? {
        return Ok(Ended::Declined);
    }
    let origin = Origin {
        revision: state.next_revision()?,
        kind: RolloutKind::Deploy,
        undoes: None,
        command: &session.command,
        nginx: &world.nginx.name,
    };
    let rollout = new_rollout(
        origin,
        prepared.plan,
        prepared.rollback_policy,
        prepared.servers,
    );
    let mut runner = Runner {
        world,
        state,
        observer,
        cancel,
    };
    Ok(Ended::Ran(runner.start(rollout).await?))
}

/// Builds the plan for a deploy.
async fn prepare(world: &DockerWorld, request: &DeployRequest) -> Result<Prepared> {
    let config = world.load_config().await?;
    let up = config.upstream(&request.upstream)?;
    let selected: Vec<_> = if request.servers.is_empty() {
        up.servers.iter().filter(|s| !s.is_backup()).collect()
    } else {
        request
            .servers
            .iter()
            .map(|name| up.server(name))
            .collect::<Result<_, _>>()?
    };
    let engine_changes =
        request.image.is_some() || !request.env.is_empty() || !request.labels.is_empty();
    let mut records = Vec::new();
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    let mut sections: Option<(Option<ComposeSection>, Option<ComposeSection>)> = None;
    // What compose computes for each project, asked once per project.
    let mut projects: HashMap<(String, Option<PathBuf>), ComposeProject> = HashMap::new();
    for (index, server) in selected.into_iter().enumerate() {
        let address = &server.address;
        let backend = match request
            .maps
            .iter()
            .find(|(s, _)| s == address || *s == server.host)
        {
            Some((_, container)) => backend_by_name(&world.docker, container).await?,
            None => resolve_backend(&world.docker, &world.nginx.networks, &server.host)
                .await
                .with_context(|| {
                    format!(
                        "upstream {} server {address} (use --map {address}=CONTAINER)",
                        up.name
                    )
                })?,
        };
        let old = capture_spec(&world.docker, &backend.id).await?;
        // The policy comes from the first compose service's deploy section, in either mode.
        if let (None, Some(compose)) = (&sections, &backend.compose) {
            sections = Some(policy_sections(compose)?);
        }
        let use_compose = match request.mode {
            Mode::Engine => false,
            Mode::Compose => true,
            Mode::Auto => {
                !engine_changes && backend.compose.is_some() && world.compose_cli().is_some()
            }
        };
        let desired = if use_compose {
            let compose = backend.compose.clone().ok_or_else(|| {
                anyhow!(
                    "container {} was not made by compose; use --mode engine",
                    backend.name
                )
            })?;
            let cli = world
                .compose_cli()
                .ok_or_else(|| anyhow!("--mode compose: no compose CLI installed"))?;
            let key = (compose.project.clone(), compose.working_dir.clone());
            let project = match projects.entry(key) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(ComposeProject::load(cli, &compose).await?),
            };
            // The image the compose file asks for: what the summary reports as new.
            let image = project
                .service(&compose.service)?
                .get("image")
                .and_then(|i| i.as_str())
                .unwrap_or(&backend.image)
                .to_string();
            if !request.force && !project.needs_update(&compose)? {
                skipped.push((
                    address.clone(),
                    format!(
                        "compose service {} is unchanged (--force redeploys it)",
                        compose.service
                    ),
                ));
                continue;
            }
            Desired::Compose { compose, image }
        } else {
            let vars = TemplateVars {
                server: address.clone(),
                service: backend
                    .compose
                    .as_ref()
                    .map_or(backend.name.clone(), |c| c.service.clone()),
                container: backend.name.clone(),
                index,
            };
            let mut spec = old.clone();
            if let Some(image) = &request.image {
                spec = spec.with_image(render_value(image, &vars)?);
            }
            for (k, v) in &request.env {
                spec = spec.with_env(k, &render_value(v, &vars)?);
            }
            for (k, v) in &request.labels {
                spec = spec.with_label(k, &render_value(v, &vars)?);
            }
            Desired::Engine {
                spec: Box::new(spec),
            }
        };
        targets.push(Target {
            server: address.clone(),
            container: backend.name.clone(),
            replacement: None,
            drained_by_us: false,
            dead: !backend.running,
        });
        records.push(ServerRecord {
            server: address.clone(),
            container: backend.name.clone(),
            old_spec: Some(Desired::Engine {
                spec: Box::new(old),
            }),
            new_spec: Some(desired),
            state: ServerState::Pending,
            new_container: None,
            healthy_at: None,
            error: None,
            replacement: None,
        });
    }
    let (update_section, rollback_section) = sections.unwrap_or_default();
    let update = resolve(Direction::Update, update_section.as_ref(), &request.update)?;
    let rollback_policy = resolve(
        Direction::Rollback,
        rollback_section.as_ref(),
        &request.rollback,
    )?;
    if update.order.value == Order::StartFirst {
        for (t, rec) in targets.iter_mut().zip(records.iter_mut()) {
            if matches!(rec.new_spec, Some(Desired::Compose { .. })) {
                bail!(
                    "start-first replaces {} beside the old container, which compose cannot do; give --image/--env or --mode engine",
                    t.container
                );
            }
            let name = next_slot(&t.container);
            t.replacement = Some(name.clone());
            rec.replacement = Some(name);
        }
    }
    if targets.is_empty() {
        bail!(
            "nothing to deploy in upstream {}: {}",
            request.upstream,
            skipped
                .iter()
                .map(|(s, why)| format!("{s}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let plan = rolling_update(
        &config,
        &request.upstream,
        &targets,
        &update,
        request.timeouts,
    )?;
    Ok(Prepared {
        plan,
        rollback_policy,
        servers: records,
        skipped,
    })
}
