//! Turning a `deploy` command into a plan: which servers, which containers,
//! what to deploy on each, and the policy in effect.
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};

use super::live::{Desired, Live};
use crate::conf::{ConfigSet, Upstream};
use crate::docker::backend::{
    ComposeProject, TemplateVars, backend_by_name, capture_spec, deploy_section, render_value,
    resolve_backend, slot_name,
};
use crate::exec::journal::{ServerRecord, ServerState};
use crate::plan::policy::{self, Direction, Overrides};
use crate::plan::{Order, Plan, Target, Timeouts, UpdateConfig, plan};

/// How a backend is redeployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Compose when the container belongs to a compose project and no image/env/label is given, else engine.
    Auto,
    /// `docker compose up -d --no-deps --force-recreate SERVICE` (the seed's own step).
    Compose,
    /// Recreate through the Engine API, keeping the container's configuration.
    Engine,
}

/// What `deploy` was asked to do.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The upstream.
    pub upstream: String,
    /// Servers to update (address or unique host); empty = all.
    pub servers: Vec<String>,
    /// New image (tera template).
    pub image: Option<String>,
    /// `K=V` environment changes (V is a tera template).
    pub env: Vec<String>,
    /// `K=V` label changes.
    pub labels: Vec<String>,
    /// `SERVER=CONTAINER` mapping overrides.
    pub maps: Vec<String>,
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
}

/// A plan ready to run, with everything the journal must keep.
#[derive(Debug)]
pub struct Prepared {
    /// The config as it is now.
    pub config: ConfigSet,
    /// The plan.
    pub plan: Plan,
    /// The rollback policy in effect.
    pub rollback_policy: UpdateConfig,
    /// One record per server: its container and specs.
    pub servers: Vec<ServerRecord>,
    /// Servers left alone, with why.
    pub skipped: Vec<(String, String)>,
}

fn split_kv<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    s.split_once('=')
        .ok_or_else(|| anyhow!("{what} {s:?}: expected KEY=VALUE"))
}

/// Finds servers of `up` by address as written or by unique host part.
pub fn select_servers(up: &Upstream, names: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(up
            .servers
            .iter()
            .filter(|s| !s.is_backup())
            .map(|s| s.address.clone())
            .collect());
    }
    let available = || {
        up.servers
            .iter()
            .map(|s| s.address.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    names
        .iter()
        .map(|name| {
            if let Some(s) = up.servers.iter().find(|s| s.address == *name) {
                return Ok(s.address.clone());
            }
            let by_host: Vec<_> = up.servers.iter().filter(|s| s.host == *name).collect();
            match by_host.as_slice() {
                [one] => Ok(one.address.clone()),
                [] => bail!(
                    "upstream {} has no server {name} (available: {})",
                    up.name,
                    available()
                ),
                _ => bail!(
                    "server {name} is ambiguous in upstream {} (available: {})",
                    up.name,
                    available()
                ),
            }
        })
        .collect()
}

/// Builds the plan for a deploy.
pub async fn prepare(live: &Live, opts: &DeployOptions) -> Result<Prepared> {
    use crate::exec::Backend;
    let config = live.load_config().await?;
    let up = config.upstream(&opts.upstream)?;
    let addresses = select_servers(&up, &opts.servers)?;
    let engine_changes = opts.image.is_some() || !opts.env.is_empty() || !opts.labels.is_empty();
    let mut records = Vec::new();
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    let mut compose_policy: Option<(String, serde_norway::Value)> = None;
    // What compose computes for each project, asked once per project.
    let mut projects: HashMap<(String, Option<PathBuf>), ComposeProject> = HashMap::new();
    for (index, address) in addresses.iter().enumerate() {
        let server = up
            .servers
            .iter()
            .find(|s| s.address == *address)
            .expect("selected from this upstream");
        let mapped = opts
            .maps
            .iter()
            .map(|m| split_kv(m, "--map"))
            .collect::<Result<Vec<_>>>()?;
        let backend = match mapped
            .iter()
            .find(|(s, _)| *s == address.as_str() || *s == server.host)
        {
            Some((_, container)) => backend_by_name(&live.docker, container).await?,
            None => resolve_backend(&live.docker, &live.nginx.networks, &server.host)
                .await
                .with_context(|| {
                    format!(
                        "upstream {} server {address} (use --map {address}=CONTAINER)",
                        up.name
                    )
                })?,
        };
        let old = capture_spec(&live.docker, &backend.id).await?;
        // The policy comes from the first compose service's deploy section, in either mode.
        if let (None, Some(compose)) = (&compose_policy, &backend.compose)
            && let Some(deploy) = deploy_section(compose)?
        {
            let file = compose
                .config_files
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            compose_policy = Some((
                format!("{file} services.{}.deploy", compose.service),
                deploy,
            ));
        }
        let use_compose = match opts.mode {
            Mode::Engine => false,
            Mode::Compose => true,
            Mode::Auto => {
                !engine_changes && backend.compose.is_some() && live.compose_cli().is_some()
            }
        };
        let desired = if use_compose {
            let compose = backend.compose.clone().ok_or_else(|| {
                anyhow!(
                    "container {} was not made by compose; use --mode engine",
                    backend.name
                )
            })?;
            let cli = live
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
            if !opts.force && !project.needs_update(&compose)? {
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
            if let Some(image) = &opts.image {
                spec = spec.with_image(render_value(image, &vars)?);
            }
            for kv in &opts.env {
                let (k, v) = split_kv(kv, "--env")?;
                spec = spec.with_env(k, &render_value(v, &vars)?);
            }
            for kv in &opts.labels {
                let (k, v) = split_kv(kv, "--label")?;
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
            old_spec: serde_json::to_value(Desired::Engine {
                spec: Box::new(old),
            })?,
            new_spec: serde_json::to_value(&desired)?,
            state: ServerState::Pending,
            new_container: None,
            healthy_at: None,
            error: None,
            replacement: None,
        });
    }
    let section = |key: &str| {
        compose_policy
            .as_ref()
            .and_then(|(at, deploy)| deploy.get(key).map(|v| (format!("{at}.{key}"), v.clone())))
    };
    let update_section = section("update_config");
    let rollback_section = section("rollback_config");
    let update = policy::resolve(
        Direction::Update,
        update_section.as_ref().map(|(a, v)| (a.as_str(), v)),
        &opts.update,
    )?;
    let rollback_policy = policy::resolve(
        Direction::Rollback,
        rollback_section.as_ref().map(|(a, v)| (a.as_str(), v)),
        &opts.rollback,
    )?;
    if update.order.value == Order::StartFirst {
        for (t, rec) in targets.iter_mut().zip(records.iter_mut()) {
            if rec.new_spec.get("mode").and_then(|m| m.as_str()) == Some("compose") {
                bail!(
                    "start-first replaces {} beside the old container, which compose cannot do; give --image/--env or --mode engine",
                    t.container
                );
            }
            let base = t.container.strip_suffix("-b").unwrap_or(&t.container);
            let name = slot_name(base, &t.container);
            t.replacement = Some(name.clone());
            rec.replacement = Some(name);
        }
    }
    if targets.is_empty() {
        bail!(
            "nothing to deploy in upstream {}: {}",
            opts.upstream,
            skipped
                .iter()
                .map(|(s, why)| format!("{s}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let plan = plan(&config, &opts.upstream, &targets, &update, opts.timeouts)?;
    Ok(Prepared {
        config,
        plan,
        rollback_policy,
        servers: records,
        skipped,
    })
}
