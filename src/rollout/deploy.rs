//! `deploy`: which servers, which containers, what to deploy on each, the
//! policy in effect, the plan — then the run.
use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::watch;

use super::desired::Desired;
use super::leftovers::{identify, left_by, refuse_names_in_use};
use super::projects::{Projects, project};
use super::run::{Ended, Origin, Runner, new_rollout, show_or_approve};
use super::session::{Session, refuse_if_unfinished};
use super::world::DockerWorld;
use crate::backends::{
    BackendContainer, ComposeOptions, ContainerSpec, DataVolumes, ImageFound, OnNetworks, Resolved,
    TemplateVars, backend_by_name, capture_for_recreate, capture_spec, compose_templates,
    ensure_image, next_slot, policy_sections, render_value,
};
use crate::conf::Server;
use crate::docker::ComposeRef;
use crate::exec::{Observer, PlanKind, Rollout, RolloutKind, ServerRecord, StateDir, World};
use crate::plan::{
    Direction, HookCommand, Hooks, Order, Overrides, Plan, PreDeploy, RollingUpdate, Target,
    Timeouts, UpdateConfig, Via, resolve, rolling_update,
};

/// How a backend is redeployed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Compose when the container belongs to a compose project and no image/env/label is given, else engine.
    #[default]
    Auto,
    /// What compose creates for the service now, created through the Engine
    /// API (the compose CLI where that cannot be: `container_name`).
    Compose,
    /// Always the compose CLI: `up -d --no-deps --force-recreate SERVICE`.
    ComposeCli,
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
    /// The compose files and project the operator names (`-f`, `-p`, …), in
    /// place of what the containers' labels recorded.
    pub compose: Option<ComposeOptions>,
    /// Update policy flags.
    pub update: Overrides,
    /// Rollback policy flags.
    pub rollback: Overrides,
    /// Wait limits.
    pub timeouts: Timeouts,
    /// `--post-start` / `--pre-stop`: they replace the compose file's hooks of their kind.
    pub hooks: Hooks,
    /// `--pre-deploy`: run once in a one-off container of the new spec first.
    pub pre_deploy: Option<HookCommand>,
    /// Show the plan; change nothing (no lock, no journal).
    pub dry_run: bool,
}

/// A deploy's plan with everything the journal must keep.
struct Prepared {
    plan: Plan,
    rollback_policy: UpdateConfig,
    servers: Vec<ServerRecord<Desired>>,
    /// Servers left alone and why, images pulled or to pull.
    notices: Vec<String>,
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
    // A dry run is read-only: no lock, no journal, no state directory.
    let locked = if request.dry_run {
        None
    } else {
        Some(session.lock(observer).await?)
    };
    let run_in = locked.as_ref().map(|l| &l.state);
    let history = match run_in {
        Some(state) => {
            refuse_if_unfinished::<Desired>(state, &request.upstream)?;
            state.history()?
        }
        None => Vec::new(),
    };
    let prepared = prepare(world, request, run_in, &history).await?;
    let state = match show_or_approve(
        run_in,
        observer,
        PlanKind::Deploy,
        0,
        &prepared.plan,
        prepared.notices,
    )? {
        ControlFlow::Continue(state) => state,
        ControlFlow::Break(ended) => return Ok(ended),
    };
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
    let mut runner = Runner::new(world, state, observer, cancel);
    Ok(Ended::Ran(runner.start(rollout).await?))
}

/// The hooks of the definition container `id` was deployed from, when a
/// rollout in `history` created it (else none are known: compose or a person
/// made it). They go with its spec into the journal, so that a rollback to
/// it runs them.
pub(super) fn hooks_of(history: &[Rollout<Desired>], id: &str) -> Hooks {
    history
        .iter()
        .rev()
        .flat_map(|r| &r.servers)
        .find(|s| s.new_container.as_deref() == Some(id))
        .and_then(|s| s.new_spec.as_ref())
        .map(|d| d.hooks().clone())
        .unwrap_or_default()
}

impl DeployRequest {
    /// Whether it changes containers' own specs (`--image/--env/--label`).
    fn engine_changes(&self) -> bool {
        self.image.is_some() || !self.env.is_empty() || !self.labels.is_empty()
    }

    /// Whether it may read compose projects with compose v1's own code: a
    /// deploy that may use the fast path, and keeps what compose read (not a
    /// dry run, not `--mode compose-cli`; see `projects.rs`).
    pub fn reads_compose(&self) -> bool {
        !self.dry_run
            && match self.mode {
                Mode::Engine | Mode::ComposeCli => false,
                Mode::Compose => true,
                Mode::Auto => !self.engine_changes(),
            }
    }
}

/// Whether containers are redeployed from their compose files (else from
/// their own spec, changed by `--image/--env/--label`).
pub(super) fn use_compose(world: &DockerWorld, request: &DeployRequest, compose: bool) -> bool {
    match request.mode {
        Mode::Engine => false,
        Mode::Compose | Mode::ComposeCli => true,
        Mode::Auto => !request.engine_changes() && compose && world.compose_cli().is_some(),
    }
}

/// `spec` with the request's `--image`, `--env` and `--label` (templates over `vars`).
pub(super) fn engine_spec(
    request: &DeployRequest,
    mut spec: ContainerSpec,
    vars: &TemplateVars,
) -> Result<ContainerSpec> {
    if let Some(image) = &request.image {
        spec = spec.with_image(render_value(image, vars)?);
    }
    for (k, v) in &request.env {
        spec = spec.with_env(k, &render_value(v, vars)?);
    }
    for (k, v) in &request.labels {
        spec = spec.with_label(k, &render_value(v, vars)?);
    }
    Ok(spec)
}

/// How one container is redeployed, as far as known before compose's templates.
enum Route {
    /// Known: what to deploy, and how it was chosen.
    Ready(Desired, Via),
    /// What compose creates for this service now, through the API, as it
    /// recreates a container that had these volumes.
    Template(ComposeRef, DataVolumes),
}

/// Compose's own container for every service routed to a template, by
/// (project, service): made when its project was read, else one compose run
/// per project now (a dry run creates nothing: the container's own spec
/// stands in, for the plan's names).
async fn templates(
    world: &DockerWorld,
    request: &DeployRequest,
    projects: &Projects,
    singles: &[(&Server, BackendContainer, ContainerSpec, Route)],
) -> Result<HashMap<(String, String), ContainerSpec>> {
    let mut by_project: HashMap<String, (ComposeRef, Vec<(String, usize)>)> = HashMap::new();
    let mut out = HashMap::new();
    for (_, _, old, route) in singles {
        let Route::Template(c, _) = route else {
            continue;
        };
        let key = (c.project.clone(), c.service.clone());
        if request.dry_run {
            out.insert(key, old.clone());
            continue;
        }
        if let Some(template) = projects.get(c)?.template(&c.service) {
            out.insert(key, template.clone());
            continue;
        }
        let entry = by_project
            .entry(c.project.clone())
            .or_insert_with(|| (c.clone(), Vec::new()));
        entry.1.push((c.service.clone(), 1));
    }
    let Some(cli) = world.compose_cli() else {
        return Ok(out);
    };
    for (name, (r, services)) in by_project {
        let project = projects.get(&r)?;
        for (service, spec) in compose_templates(cli, &world.docker, project, &r, &services).await?
        {
            out.insert((name.clone(), service), spec);
        }
    }
    Ok(out)
}

/// The pre-deploy job: `command` in a one-off container made from the new
/// spec of the first server (in the upstream's order) that gets one.
fn pre_deploy_job(
    command: &HookCommand,
    order: &[String],
    records: &[ServerRecord<Desired>],
) -> Result<PreDeploy> {
    let line = |r: &ServerRecord<Desired>| {
        let line = r.set.as_ref().unwrap_or(&r.server);
        order.iter().position(|a| a == line).unwrap_or(usize::MAX)
    };
    let first = records
        .iter()
        .filter(|r| r.new_spec.is_some())
        .min_by_key(|r| line(r))
        .ok_or_else(|| anyhow!("--pre-deploy: no server gets a new container"))?;
    match &first.new_spec {
        Some(Desired::Engine { spec, .. }) => Ok(PreDeploy {
            command: command.clone(),
            server: first.server.clone(),
            container: format!("{}-nr-pre-deploy", spec.name),
            image: spec.image.clone(),
        }),
        _ => bail!(
            "--pre-deploy: server {} is redeployed by the compose CLI, whose new container is not known before compose makes it; \
             use --mode compose or engine (a service with container_name has only the compose CLI)",
            first.server
        ),
    }
}

/// Builds the plan for a deploy; `history` (the journal's revisions) tells
/// the hooks of containers an earlier rollout made; `state` (none in a dry
/// run) keeps what compose read of each project for the next deploy.
async fn prepare(
    world: &DockerWorld,
    request: &DeployRequest,
    state: Option<&StateDir>,
    history: &[Rollout<Desired>],
) -> Result<Prepared> {
    let config = world.load_config().await?;
    let up = config.upstream(&request.upstream)?;
    let up_order: Vec<String> = up.servers.iter().map(|s| s.address.clone()).collect();
    let selected: Vec<_> = if request.servers.is_empty() {
        up.servers.iter().filter(|s| !s.is_backup()).collect()
    } else {
        request
            .servers
            .iter()
            .map(|name| up.server(name))
            .collect::<Result<_, _>>()?
    };
    // Which containers each server line names (nginx's networks listed once).
    let mut on_networks = OnNetworks::list(&world.docker, &world.nginx.networks).await?;
    let mut found = Vec::new();
    for server in selected {
        let address = &server.address;
        let resolved = match request
            .maps
            .iter()
            .find(|(s, _)| s == address || *s == server.host)
        {
            Some((_, container)) => {
                Resolved::One(Box::new(backend_by_name(&world.docker, container).await?))
            }
            None => on_networks
                .resolve(&world.docker, &server.host)
                .await
                .with_context(|| {
                    format!(
                        "upstream {} server {address} (use --map {address}=CONTAINER)",
                        up.name
                    )
                })?,
        };
        found.push((server, resolved));
    }
    if let Some(options) = &request.compose {
        for (_, resolved) in &mut found {
            let members: Vec<&mut BackendContainer> = match resolved {
                Resolved::One(b) => vec![&mut **b],
                Resolved::Replicas(all) => all.iter_mut().collect(),
            };
            for b in members {
                if let Some(r) = &mut b.compose {
                    options.apply(&b.name, r)?;
                }
            }
        }
    }
    // The policy comes from the first compose service's deploy section, in either mode.
    let first_compose = found.iter().find_map(|(_, r)| match r {
        Resolved::One(b) => b.compose.clone(),
        Resolved::Replicas(all) => all.iter().find_map(|b| b.compose.clone()),
    });
    let (update_section, rollback_section) = match &first_compose {
        Some(compose) => policy_sections(world.compose_cli(), compose).await?,
        None => {
            world.discard_reading_ahead("no server's container is a compose project's");
            (None, None)
        }
    };
    let update = resolve(Direction::Update, update_section.as_ref(), &request.update)?;
    let rollback_policy = resolve(
        Direction::Rollback,
        rollback_section.as_ref(),
        &request.rollback,
    )?;
    let start_first = update.order.value == Order::StartFirst;
    let mut sets = Vec::new();
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    let mut projects = Projects::new(world, request, &found, state);
    // Single containers, with how each is redeployed (compose's templates come
    // after, one compose run per project for all its services).
    let mut singles: Vec<(&Server, BackendContainer, ContainerSpec, Route)> = Vec::new();
    for (index, (server, resolved)) in found.into_iter().enumerate() {
        let address = &server.address;
        let backend = match resolved {
            Resolved::One(backend) => *backend,
            Resolved::Replicas(members) => {
                match super::replicas::prepare(
                    world,
                    request,
                    &update,
                    &mut projects,
                    history,
                    (index, server),
                    members,
                )
                .await?
                {
                    Ok((set, set_records)) => {
                        sets.push(set);
                        records.extend(set_records);
                    }
                    Err(why) => skipped.push((address.clone(), why)),
                }
                continue;
            }
        };
        if !use_compose(world, request, backend.compose.is_some()) {
            let old = capture_spec(&world.docker, &backend.id).await?;
            let vars = TemplateVars {
                server: address.clone(),
                service: backend
                    .compose
                    .as_ref()
                    .map_or(backend.name.clone(), |c| c.service.clone()),
                container: backend.name.clone(),
                index,
            };
            let spec = engine_spec(request, old.clone(), &vars)?;
            let route = Route::Ready(Desired::engine(spec, request.hooks.clone()), Via::Engine);
            singles.push((server, backend, old, route));
            continue;
        }
        let compose = backend.compose.clone().ok_or_else(|| {
            anyhow!(
                "container {} was not made by compose; use --mode engine",
                backend.name
            )
        })?;
        let project = project(world, &mut projects, &compose).await?;
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
        let cli_because = if request.mode == Mode::ComposeCli {
            Some("--mode compose-cli".to_string())
        } else if project.fixed_name(&compose.service) {
            Some(format!(
                "service {} sets container_name, so compose cannot make its container twice",
                compose.service
            ))
        } else {
            project.not_carried(&compose.service)
        };
        match cli_because {
            Some(why) if start_first => bail!(
                "start-first starts {}'s replacement beside it, which the compose CLI cannot do ({why}); give --image/--env or --mode engine",
                backend.name
            ),
            Some(why) => {
                // The image the compose file asks for: what the summary reports as new.
                let image = project
                    .service(&compose.service)?
                    .get("image")
                    .and_then(|i| i.as_str())
                    .unwrap_or(&backend.image)
                    .to_string();
                let old = capture_spec(&world.docker, &backend.id).await?;
                // Compose runs the compose file's own hooks when it recreates the container.
                let route = Route::Ready(
                    Desired::Compose {
                        compose: Box::new(compose),
                        image,
                        hooks: request.hooks.clone(),
                    },
                    Via::ComposeCli(why),
                );
                singles.push((server, backend, old, route));
            }
            // Start-first on one compose container: a replica set of one, so its
            // replacement takes the next number and the line comes back as it was.
            None if start_first => {
                match super::replicas::prepare(
                    world,
                    request,
                    &update,
                    &mut projects,
                    history,
                    (index, server),
                    vec![backend],
                )
                .await?
                {
                    Ok((set, set_records)) => {
                        sets.push(set);
                        records.extend(set_records);
                    }
                    Err(why) => skipped.push((address.clone(), why)),
                }
            }
            None => {
                let (old, volumes) = capture_for_recreate(&world.docker, &backend.id).await?;
                singles.push((server, backend, old, Route::Template(compose, volumes)));
            }
        }
    }
    let templates = templates(world, request, &projects, &singles).await?;
    let mut targets = Vec::new();
    for (server, backend, old, route) in singles {
        let address = &server.address;
        let (desired, via) = match route {
            Route::Ready(desired, via) => (desired, via),
            Route::Template(compose, volumes) => {
                let template = templates
                    .get(&(compose.project.clone(), compose.service.clone()))
                    .cloned()
                    .ok_or_else(|| anyhow!("no template of compose service {}", compose.service))?;
                let spec = template
                    .named(&backend.name, backend.number)
                    .with_data_volumes_of(&volumes);
                let hooks = projects
                    .get(&compose)?
                    .hooks(&compose.service)?
                    .overridden_by(&request.hooks);
                (Desired::engine(spec, hooks), Via::Compose)
            }
        };
        let replacement = start_first.then(|| next_slot(&backend.name));
        // A dead container's line is pinned to nowhere until it serves again.
        let pinned = (!backend.running).then(|| server.statement.clone());
        targets.push(Target {
            server: address.clone(),
            container: backend.name.clone(),
            replacement: replacement.clone(),
            swapped: false,
            drained_by_us: false,
            dead: !backend.running,
            pinned: pinned.clone(),
            via: Some(via),
            hooks: desired.hooks().clone(),
        });
        records.push(ServerRecord {
            pinned,
            replacement,
            container_id: Some(backend.id.clone()),
            ..ServerRecord::pending(
                address.clone(),
                backend.name.clone(),
                Some(Desired::engine(old, hooks_of(history, &backend.id))),
                Some(desired),
            )
        });
    }
    if targets.is_empty() && sets.is_empty() {
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
    // Every image before the first drain: a missing one found at the
    // recreate step would leave a stop-first server without a container.
    let mut notices: Vec<String> = skipped
        .iter()
        .map(|(server, why)| format!("skipping {server}: {why}"))
        .collect();
    notices.extend_from_slice(projects.derived());
    let images: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r.new_spec.as_ref().map(Desired::image))
        .collect();
    for image in images {
        match ensure_image(&world.docker, image, !request.dry_run).await? {
            ImageFound::Present => {}
            ImageFound::Absent => notices.push(format!(
                "image {image} is not on this host: the deploy pulls it before the first drain"
            )),
            ImageFound::Pulled => notices.push(format!("pulled image {image}")),
        }
    }
    let pre_deploy = match &request.pre_deploy {
        Some(command) => Some(pre_deploy_job(command, &up_order, &records)?),
        None => None,
    };
    let plan = rolling_update(RollingUpdate {
        config: &config,
        upstream: &request.upstream,
        targets: &targets,
        sets: &sets,
        pre_deploy: pre_deploy.as_ref(),
        policy: &update,
        timeouts: request.timeouts,
        ramp: None,
    })?;
    // No rollout is unfinished: only the containers it retires are its own,
    // and a name it makes a container under that holds another refuses the
    // deploy now. So does a failed replacement an earlier, finished rollout
    // could not remove: the operator may have put it to use since.
    identify(world, &mut records).await?;
    refuse_names_in_use(world, &plan.steps, &records)
        .await
        .map_err(|e| left_by(e, history))?;
    Ok(Prepared {
        plan,
        rollback_policy,
        servers: records,
        notices,
    })
}
