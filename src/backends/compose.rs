//! Compose mode: let the compose CLI recreate a service in its project's
//! directory, exactly as the operator would (`up -d --no-deps --force-recreate`).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use tokio::process::Command;

use super::spec::{Anonymous, ContainerSpec, NetworkAttachment, capture};
use crate::docker::{ComposeLabel, ComposeRef, Endpoint};
use crate::plan::{HookCommand, Hooks, Source, split_command};
use bollard::models::EndpointIpamConfig;

/// How long one compose command may run.
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(600);

/// Which compose CLI is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeKind {
    /// The `docker compose` plugin (v2).
    Plugin,
    /// The standalone `docker-compose` (v1 or v2).
    Standalone,
}

/// The installed compose CLI, pointed at the daemon this run talks to.
#[derive(Debug, Clone, Copy)]
pub struct ComposeCli<'a> {
    /// Which one.
    pub kind: ComposeKind,
    /// The daemon it must reach (whatever context or `DOCKER_HOST` it would pick itself).
    pub daemon: &'a Endpoint,
}

impl ComposeCli<'_> {
    /// The command line prefix, for messages.
    pub fn display(self) -> &'static str {
        match self.kind {
            ComposeKind::Plugin => "docker compose",
            ComposeKind::Standalone => "docker-compose",
        }
    }

    fn command(self) -> Command {
        let mut c = match self.kind {
            ComposeKind::Plugin => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
            ComposeKind::Standalone => Command::new("docker-compose"),
        };
        self.daemon.point(&mut c);
        c
    }
}

/// The installed compose CLI: the `docker compose` plugin if it answers,
/// else `docker-compose` if it is on `PATH` (not run: the Python one takes
/// most of a second to start), else `None`.
pub fn compose_cli() -> Option<ComposeKind> {
    let plugin = std::process::Command::new("docker")
        .args(["compose", "version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if plugin {
        Some(ComposeKind::Plugin)
    } else if on_path("docker-compose") {
        Some(ComposeKind::Standalone)
    } else {
        None
    }
}

/// Whether an executable file `program` is in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Runs compose for `r`'s project (same `-p`, same `-f` files, in its working
/// directory) with `args`; returns stdout, or an error carrying stderr.
pub(super) async fn run(cli: ComposeCli<'_>, r: &ComposeRef, args: &[&str]) -> Result<String> {
    let dir = r.working_dir.as_ref().ok_or_else(|| {
        anyhow!(
            "compose service {}/{}: its container has no working_dir label",
            r.project,
            r.service
        )
    })?;
    let mut cmd = cli.command();
    cmd.current_dir(dir)
        .arg("--project-directory")
        .arg(dir)
        .arg("-p")
        .arg(&r.project);
    for f in &r.config_files {
        cmd.arg("-f").arg(f);
    }
    for f in &r.env_files {
        cmd.arg("--env-file").arg(f);
    }
    for p in &r.profiles {
        cmd.arg("--profile").arg(p);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let line = format!(
        "`{} -p {} {}` in {}",
        cli.display(),
        r.project,
        args.join(" "),
        dir.display()
    );
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(COMPOSE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow!("{line}: no answer after {COMPOSE_TIMEOUT:?}"))?
        .with_context(|| format!("{line}: cannot run"))?;
    tracing::debug!(took = ?started.elapsed(), "{line}");
    if !output.status.success() {
        bail!(
            "{line} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Recreates the service with compose: `up -d --no-deps --force-recreate SERVICE`.
pub async fn compose_recreate(cli: ComposeCli<'_>, r: &ComposeRef) -> Result<()> {
    run(
        cli,
        r,
        &["up", "-d", "--no-deps", "--force-recreate", &r.service],
    )
    .await
    .map(drop)
}

/// What compose makes of a project's files now: every service's merged
/// configuration (`config`) and config hash, asked once for all its
/// services, and the template containers ([`compose_templates`]) a deploy
/// asked for up front.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    project: String,
    services: serde_norway::Value,
    networks: serde_norway::Value,
    hashes: HashMap<String, String>,
    templates: HashMap<String, ContainerSpec>,
}

/// What a deploy will ask of one compose project, known from its containers'
/// labels before compose runs, so that compose is asked all of it at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectQuery {
    /// The services whose config hash the deploy compares.
    pub hashed: BTreeSet<String>,
    /// The services whose template compose makes beside `config`, each with
    /// the number of containers it has now (see [`compose_templates`]).
    pub templates: BTreeMap<String, usize>,
}

impl ComposeProject {
    /// Runs compose for `r`'s project (its files, its directory): `config`
    /// and `config --hash=*`, both at the same time.
    pub async fn load(cli: ComposeCli<'_>, r: &ComposeRef) -> Result<ComposeProject> {
        let (config, hashes) = tokio::try_join!(
            run(cli, r, &["config"]),
            run(cli, r, &["config", "--hash=*"])
        )?;
        ComposeProject::from_config(&r.project, &config, &hashes)
    }

    /// Like [`load`](Self::load), and compose makes `query`'s templates at
    /// the same time as it prints `config` (each Python compose run costs
    /// most of a second, so they overlap rather than follow each other). A
    /// template's `config-hash` label is compose's hash of its service, so
    /// `config --hash=*` runs only for hashed services without a template.
    /// When compose cannot make them (a service with a `container_name`, an
    /// image it cannot pull), nothing is kept of them: the project has every
    /// hash (from `config --hash=*`, run then) and no template, and
    /// [`compose_templates`] asks again for the services that need one, so
    /// its error is about them.
    pub async fn load_with(
        cli: ComposeCli<'_>,
        docker: &Docker,
        r: &ComposeRef,
        query: &ProjectQuery,
    ) -> Result<ComposeProject> {
        if query.templates.is_empty() {
            return ComposeProject::load(cli, r).await;
        }
        let wanted: Vec<(String, usize)> = query
            .templates
            .iter()
            .map(|(s, n)| (s.clone(), *n))
            .collect();
        let hash_now = !query.hashed.iter().all(|s| query.templates.contains_key(s));
        let hashes = async {
            match hash_now {
                true => run(cli, r, &["config", "--hash=*"]).await.map(Some),
                false => Ok(None),
            }
        };
        let (config, hashes, made) = tokio::join!(
            run(cli, r, &["config"]),
            hashes,
            make_templates(cli, docker, r, &wanted)
        );
        let mut project =
            ComposeProject::from_config(&r.project, &config?, &hashes?.unwrap_or_default())?;
        let made = match made {
            Ok(raw) => project.finish_templates(docker, raw).await,
            Err(e) => Err(e),
        };
        match made {
            Ok(templates) => {
                for (service, spec) in &templates {
                    let hash = spec
                        .config
                        .labels
                        .as_ref()
                        .and_then(ComposeRef::from_labels)
                        .and_then(|c| c.config_hash)
                        .ok_or_else(|| {
                            anyhow!(
                                "compose project {}: the template of {service} has no config-hash label",
                                r.project
                            )
                        })?;
                    project.hashes.insert(service.clone(), hash);
                }
                project.templates = templates;
            }
            Err(e) => {
                tracing::debug!(
                    "compose project {}: no templates beside `config` ({e:#}); asked again where needed",
                    r.project
                );
                if !hash_now {
                    project.hashes = parse_hashes(&run(cli, r, &["config", "--hash=*"]).await?);
                }
            }
        }
        Ok(project)
    }

    /// The template of `service` made by [`load_with`](Self::load_with), if it was.
    pub fn template(&self, service: &str) -> Option<&ContainerSpec> {
        self.templates.get(service)
    }

    /// The project as compose's `config` and `config --hash=*` printed it.
    pub fn from_config(project: &str, config: &str, hashes: &str) -> Result<ComposeProject> {
        let doc: serde_norway::Value = serde_norway::from_str(config)
            .with_context(|| format!("compose project {project}: `config` printed invalid YAML"))?;
        Ok(ComposeProject {
            project: project.to_string(),
            services: doc.get("services").cloned().unwrap_or_default(),
            networks: doc.get("networks").cloned().unwrap_or_default(),
            hashes: parse_hashes(hashes),
            templates: HashMap::new(),
        })
    }

    /// The service's own lifecycle hooks, `post_start` and `pre_stop`
    /// (compose v2.30+; compose v1 rejects files that have them), typed: each
    /// a list of `{command, user, privileged, working_dir, environment}`,
    /// `command` a string (split into words as compose splits it) or a list,
    /// `environment` a list of `KEY=VALUE` or a mapping. A value of the wrong
    /// form is an error naming the project, the service and the key.
    pub fn hooks(&self, service: &str) -> Result<Hooks> {
        let svc = self.service(service)?;
        let list = |key: &str| {
            let path = format!("services.{service}.{key}");
            parse_hooks(&path, svc.get(key))
                .with_context(|| format!("compose project {}", self.project))
        };
        Ok(Hooks {
            post_start: list("post_start")?,
            pre_stop: list("pre_stop")?,
        })
    }

    /// A service's merged configuration, e.g. to read its `image`.
    pub fn service(&self, service: &str) -> Result<&serde_norway::Value> {
        self.services.get(service).ok_or_else(|| {
            anyhow!(
                "compose project {}: no service {service} in its configuration",
                self.project
            )
        })
    }

    /// The networks compose attaches the service's containers to, as it does
    /// when it starts them (a container it creates without starting has only
    /// its first): each network's real name (`external` or `name:` as given,
    /// else the one compose labelled with the key), the service's name and its
    /// aliases there, and its fixed addresses. The primary network
    /// (`network_mode`'s) first. Empty under a `network_mode` of its own.
    pub async fn attachments(
        &self,
        docker: &Docker,
        service: &str,
        primary: Option<&str>,
    ) -> Result<Vec<NetworkAttachment>> {
        use serde_norway::Value;
        let svc = self.service(service)?;
        if svc.get("network_mode").is_some() {
            return Ok(Vec::new());
        }
        let declared: Vec<(String, Value)> = match svc.get("networks") {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect(),
            Some(Value::Sequence(list)) => list
                .iter()
                .filter_map(|k| Some((k.as_str()?.to_string(), Value::Null)))
                .collect(),
            _ => vec![("default".to_string(), Value::Null)],
        };
        let labelled = project_networks(docker, &self.project).await?;
        let mut out = Vec::new();
        for (key, settings) in declared {
            let top = self.networks.get(key.as_str());
            let external = top.and_then(|t| t.get("external"));
            let named = top
                .and_then(|t| t.get("name"))
                .or_else(|| external.and_then(|e| e.get("name")))
                .and_then(Value::as_str)
                .map(str::to_string);
            let network = match (named, external) {
                (Some(name), _) => name,
                (None, Some(_)) => key.clone(),
                (None, None) => labelled
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, name)| name.clone())
                    .ok_or_else(|| {
                        anyhow!(
                            "compose project {}: no network labelled {key} (is the project up?)",
                            self.project
                        )
                    })?,
            };
            let mut aliases = vec![service.to_string()];
            aliases.extend(
                settings
                    .get("aliases")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_string)),
            );
            aliases.dedup();
            let address = |k: &str| settings.get(k).and_then(Value::as_str).map(str::to_string);
            let (v4, v6) = (address("ipv4_address"), address("ipv6_address"));
            let ipam_config = (v4.is_some() || v6.is_some()).then(|| EndpointIpamConfig {
                ipv4_address: v4,
                ipv6_address: v6,
                ..Default::default()
            });
            let priority = settings
                .get("priority")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            out.push((
                priority,
                NetworkAttachment {
                    network,
                    aliases,
                    ipam_config,
                    links: Vec::new(),
                    driver_opts: None,
                },
            ));
        }
        // The primary network first, then by priority (highest first) and name.
        out.sort_by(|(pa, a), (pb, b)| {
            let first = |n: &NetworkAttachment| Some(n.network.as_str()) != primary;
            (first(a), -pa, &a.network).cmp(&(first(b), -pb, &b.network))
        });
        Ok(out.into_iter().map(|(_, n)| n).collect())
    }

    /// How many containers the service declares (`deploy.replicas`, else
    /// `scale`), when it says.
    pub fn replicas(&self, service: &str) -> Option<usize> {
        let svc = self.services.get(service)?;
        svc.get("deploy")
            .and_then(|d| d.get("replicas"))
            .or_else(|| svc.get("scale"))
            .and_then(|n| n.as_u64().or_else(|| n.as_str()?.parse().ok()))
            .and_then(|n| usize::try_from(n).ok())
    }

    /// Whether the service names its container (`container_name`): compose
    /// cannot make a second one of it, so it has no template.
    pub fn fixed_name(&self, service: &str) -> bool {
        self.services
            .get(service)
            .is_some_and(|s| s.get("container_name").is_some())
    }

    /// True when `r`'s compose configuration changed since its container was
    /// created (its `config-hash` label differs from what compose computes now).
    pub fn needs_update(&self, r: &ComposeRef) -> Result<bool> {
        let Some(current) = &r.config_hash else {
            return Ok(true);
        };
        let now = self.hashes.get(&r.service).ok_or_else(|| {
            anyhow!(
                "compose service {}/{}: `config --hash=*` printed no hash for it",
                r.project,
                r.service
            )
        })?;
        Ok(now != current)
    }
}

/// Types one hook list of a service; `at` is its key path (`services.app1.post_start`).
fn parse_hooks(at: &str, list: Option<&serde_norway::Value>) -> Result<Vec<HookCommand>> {
    use serde_norway::Value;
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let Value::Sequence(items) = list else {
        bail!("{at}: expected a list of hooks");
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let at = format!("{at}[{n}]");
        let Value::Mapping(hook) = item else {
            bail!("{at}: expected a mapping with a command");
        };
        let text = |key: &str| -> Result<Option<String>> {
            hook.get(key)
                .map(|v| scalar(v).ok_or_else(|| anyhow!("{at}.{key}: expected a string")))
                .transpose()
        };
        let argv = match hook.get("command") {
            Some(Value::String(s)) => split_command(s).map_err(|e| anyhow!("{at}.command: {e}"))?,
            Some(Value::Sequence(words)) => words
                .iter()
                .map(|w| {
                    scalar(w).ok_or_else(|| anyhow!("{at}.command: expected a list of strings"))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => bail!("{at}.command: expected a string or a list of strings"),
            None => bail!("{at}: no command"),
        };
        if argv.is_empty() {
            bail!("{at}.command: an empty command");
        }
        let privileged = match hook.get("privileged") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => bail!("{at}.privileged: expected true or false"),
        };
        // `KEY` without a value (compose resolves it from its own
        // environment when it prints `config`) is left unset.
        let environment = match hook.get("environment") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(list)) => list
                .iter()
                .map(|e| {
                    scalar(e).ok_or_else(|| anyhow!("{at}.environment: expected KEY=VALUE strings"))
                })
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|e| e.contains('='))
                .collect(),
            Some(Value::Mapping(map)) => {
                let mut env = Vec::new();
                for (k, v) in map {
                    let key = scalar(k)
                        .ok_or_else(|| anyhow!("{at}.environment: expected string keys"))?;
                    match v {
                        Value::Null => {}
                        v => env.push(format!(
                            "{key}={}",
                            scalar(v).ok_or_else(|| anyhow!(
                                "{at}.environment.{key}: expected a string, number or boolean"
                            ))?
                        )),
                    }
                }
                env
            }
            Some(_) => bail!("{at}.environment: expected a list or a mapping"),
        };
        out.push(HookCommand {
            argv,
            user: text("user")?,
            privileged,
            working_dir: text("working_dir")?,
            environment,
            source: Source::Compose(at),
        });
    }
    Ok(out)
}

/// Reads `SERVICE HASH` lines.
fn parse_hashes(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

/// Whether `name` is one compose gives a container of `r`'s service itself
/// (`project_service_N`, compose v2 `project-service-N`) rather than the
/// service's own `container_name`, which compose cannot give a template.
pub fn compose_named(name: &str, r: &ComposeRef) -> bool {
    ['_', '-'].iter().any(|sep| {
        name.strip_prefix(&format!("{}{sep}{}{sep}", r.project, r.service))
            .is_some_and(|n| n.parse::<u32>().is_ok())
    })
}

/// The id of the service's container (found by compose labels), e.g. after
/// [`compose_recreate`]. Several containers (a scaled service) is an error.
pub async fn compose_container(docker: &Docker, r: &ComposeRef) -> Result<String> {
    let labels = vec![
        ComposeLabel::Project.filter(&r.project),
        ComposeLabel::Service.filter(&r.service),
        ComposeLabel::OneOff.filter("False"),
    ];
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), labels)])),
        ..Default::default()
    };
    let found = docker
        .list_containers(Some(options))
        .await
        .with_context(|| {
            format!(
                "compose service {}/{}: list containers",
                r.project, r.service
            )
        })?;
    match found.as_slice() {
        [one] => Ok(one.id.clone().unwrap_or_default()),
        [] => bail!("compose service {}/{}: no container", r.project, r.service),
        many => bail!(
            "compose service {}/{}: {} containers ({}); scaled services are not supported",
            r.project,
            r.service,
            many.len(),
            many.iter()
                .map(crate::docker::listed_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What compose would create now for each of `services` (name, containers
/// it has): compose creates one more container of each, not started (`up
/// --no-start --no-deps --no-recreate --scale`); each is captured as a spec
/// (its anonymous volumes left fresh, the networks compose connects only at
/// start attached from `project`) and removed again. The rollout creates
/// the service's containers from these through the API, under the names and
/// numbers it chooses — exactly what compose makes, without one compose run
/// per container.
pub async fn compose_templates(
    cli: ComposeCli<'_>,
    docker: &Docker,
    project: &ComposeProject,
    r: &ComposeRef,
    services: &[(String, usize)],
) -> Result<HashMap<String, ContainerSpec>> {
    let raw = make_templates(cli, docker, r, services).await?;
    project.finish_templates(docker, raw).await
}

/// [`compose_templates`]' compose run and captures, without `config`: each
/// template as compose created it (with its first network only).
async fn make_templates(
    cli: ComposeCli<'_>,
    docker: &Docker,
    r: &ComposeRef,
    services: &[(String, usize)],
) -> Result<HashMap<String, ContainerSpec>> {
    let before = project_containers(docker, &r.project).await?;
    let mut args: Vec<String> = ["up", "--no-start", "--no-deps", "--no-recreate"]
        .map(String::from)
        .to_vec();
    for (service, count) in services {
        args.push("--scale".into());
        args.push(format!("{service}={}", count + 1));
    }
    args.extend(services.iter().map(|(s, _)| s.clone()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let made = run(cli, r, &argv).await;
    let after = project_containers(docker, &r.project).await?;
    let mut templates = HashMap::new();
    let mut failure = made.err();
    for (id, service) in after.into_iter().filter(|c| !before.contains(c)) {
        let spec = capture(docker, &id, Anonymous::Fresh).await;
        remove_template(docker, &id).await;
        match spec {
            Ok(spec) => {
                templates.insert(service, spec);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        return Err(e.context(format!(
            "compose project {}: making the template containers of {}",
            r.project,
            services
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some((missing, _)) = services.iter().find(|(s, _)| !templates.contains_key(s)) {
        bail!(
            "compose project {}: `up --no-start --scale` made no container of {missing}",
            r.project
        );
    }
    Ok(templates)
}

impl ComposeProject {
    /// `raw` templates with the networks compose connects only when it
    /// starts a container, as this configuration declares them.
    async fn finish_templates(
        &self,
        docker: &Docker,
        raw: HashMap<String, ContainerSpec>,
    ) -> Result<HashMap<String, ContainerSpec>> {
        let mut templates = HashMap::new();
        for (service, mut spec) in raw {
            let primary = spec.host_config.network_mode.clone();
            spec.networks = self
                .attachments(docker, &service, primary.as_deref())
                .await?;
            templates.insert(service, spec);
        }
        Ok(templates)
    }
}

/// The networks compose made for a project: (key in the compose file, real name).
async fn project_networks(docker: &Docker, project: &str) -> Result<Vec<(String, String)>> {
    let options = bollard::query_parameters::ListNetworksOptions {
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![ComposeLabel::Project.filter(project)],
        )])),
    };
    let found = docker
        .list_networks(Some(options))
        .await
        .with_context(|| format!("compose project {project}: list networks"))?;
    Ok(found
        .into_iter()
        .filter_map(|n| {
            let key = n.labels?.get(ComposeLabel::Network.key())?.clone();
            Some((key, n.name?))
        })
        .collect())
}

/// Every container of a compose project: (id, service).
async fn project_containers(docker: &Docker, project: &str) -> Result<Vec<(String, String)>> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![ComposeLabel::Project.filter(project)],
        )])),
        ..Default::default()
    };
    let found = docker
        .list_containers(Some(options))
        .await
        .with_context(|| format!("compose project {project}: list containers"))?;
    Ok(found
        .into_iter()
        .filter_map(|c| {
            let service = c.labels?.get(ComposeLabel::Service.key())?.clone();
            Some((c.id?, service))
        })
        .collect())
}

/// Removes a template container and its fresh anonymous volumes.
async fn remove_template(docker: &Docker, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    if let Err(e) = docker.remove_container(id, Some(options)).await {
        tracing::warn!("could not remove compose template container {id}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `docker compose config` (v2.30+) prints for services with hooks;
    /// compose v1 rejects such files, so this is the only way to test them here.
    const V2_CONFIG: &str = r#"
name: shop
services:
  app1:
    image: nginx-rollout-fixture/app:v2
    post_start:
      - command:
          - sh
          - -c
          - echo started > /tmp/started
        user: root
        privileged: true
        working_dir: /srv
        environment:
          - STAGE=post
          - BARE
      - command: /bin/warm --all 'two words'
    pre_stop:
      - command: /bin/drain --grace 5
        environment:
          QUEUE: jobs
          RETRIES: 3
          UNSET: null
  app2:
    image: nginx-rollout-fixture/app:v2
networks:
  default:
    name: shop_default
"#;

    fn v2_project() -> ComposeProject {
        ComposeProject::from_config("shop", V2_CONFIG, "app1 h1\napp2 h2\n").unwrap()
    }

    #[test]
    fn reads_post_start_and_pre_stop_of_a_v2_config() {
        let hooks = v2_project().hooks("app1").unwrap();
        let [first, second] = hooks.post_start.as_slice() else {
            panic!("two post_start hooks: {hooks:?}")
        };
        assert_eq!(first.argv, ["sh", "-c", "echo started > /tmp/started"]);
        assert_eq!(first.user.as_deref(), Some("root"));
        assert!(first.privileged);
        assert_eq!(first.working_dir.as_deref(), Some("/srv"));
        assert_eq!(first.environment, ["STAGE=post"], "a bare KEY stays unset");
        assert_eq!(
            first.source,
            Source::Compose("services.app1.post_start[0]".into())
        );
        assert_eq!(
            second.argv,
            ["/bin/warm", "--all", "two words"],
            "a string command is split into words as compose does"
        );
        assert!(!second.privileged && second.user.is_none());
        let [stop] = hooks.pre_stop.as_slice() else {
            panic!("one pre_stop hook: {hooks:?}")
        };
        assert_eq!(stop.argv, ["/bin/drain", "--grace", "5"]);
        let mut env = stop.environment.clone();
        env.sort();
        assert_eq!(env, ["QUEUE=jobs", "RETRIES=3"]);
        assert_eq!(
            stop.source,
            Source::Compose("services.app1.pre_stop[0]".into())
        );
        assert!(v2_project().hooks("app2").unwrap().is_empty());
        assert!(v2_project().hooks("app3").is_err());
    }

    #[test]
    fn hooks_of_the_wrong_form_name_the_service_and_key() {
        let bad = |hook: &str| {
            let doc = format!("services:\n  web:\n    image: x\n    post_start:\n{hook}");
            let project = ComposeProject::from_config("p", &doc, "").unwrap();
            format!("{:#}", project.hooks("web").unwrap_err())
        };
        assert_eq!(
            bad("      - user: root\n"),
            "compose project p: services.web.post_start[0]: no command"
        );
        assert_eq!(
            bad("      - command: {a: b}\n"),
            "compose project p: services.web.post_start[0].command: expected a string or a list of strings"
        );
        assert_eq!(
            bad("      - command: \"echo 'open\"\n"),
            "compose project p: services.web.post_start[0].command: \"echo 'open\": unbalanced quotes or a trailing backslash (split as a POSIX shell splits words)"
        );
        assert_eq!(
            bad("      - command: [true]\n        privileged: sometimes\n"),
            "compose project p: services.web.post_start[0].privileged: expected true or false"
        );
        assert_eq!(
            bad("      - command: [true]\n        environment: 3\n"),
            "compose project p: services.web.post_start[0].environment: expected a list or a mapping"
        );
        assert_eq!(
            bad("      command: [true]\n"),
            "compose project p: services.web.post_start: expected a list of hooks"
        );
    }

    #[test]
    fn compose_hooks_become_steps_of_the_plan() {
        use crate::conf::{ConfigSet, MemFs};
        use crate::plan::{
            Action, Order, RollingUpdate, Target, Timeouts, UpdateConfig, rolling_update,
        };
        let text = "http {\n    upstream apps {\n        server app1:3000;\n        server app2:3000;\n    }\n}\n";
        let path = std::path::Path::new("/etc/nginx/nginx.conf");
        let config =
            ConfigSet::load_single(path, &MemFs::one("/etc/nginx/nginx.conf", text)).unwrap();
        let project = v2_project();
        let targets: Vec<Target> = ["app1", "app2"]
            .iter()
            .map(|s| Target {
                server: format!("{s}:3000"),
                container: format!("shop_{s}_1"),
                replacement: Some(format!("shop_{s}_1-b")),
                drained_by_us: false,
                dead: false,
                pinned: None,
                via: None,
                hooks: project.hooks(s).unwrap(),
            })
            .collect();
        for order in [Order::StopFirst, Order::StartFirst] {
            let mut policy = UpdateConfig::engine_defaults();
            policy.order.value = order;
            let plan = rolling_update(RollingUpdate {
                config: &config,
                upstream: "apps",
                targets: &targets,
                sets: &[],
                pre_deploy: None,
                policy: &policy,
                timeouts: Timeouts::DEFAULT,
                ramp: None,
            })
            .unwrap();
            let hooks: Vec<(&str, &str, usize)> = plan
                .steps
                .iter()
                .filter_map(|s| match &s.action {
                    Action::PostStart { runs, .. } | Action::PreStop { runs, .. } => Some(
                        runs.iter()
                            .map(|r| {
                                (
                                    s.action.kind(),
                                    r.server.container.as_str(),
                                    r.commands.len(),
                                )
                            })
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                })
                .flatten()
                .collect();
            // Stop-first: pre-stop in the drained container, then recreate, then
            // post-start in its successor; start-first: post-start in the
            // replacement, then (after the swap) pre-stop in the old one.
            let expected = match order {
                Order::StopFirst => [
                    ("pre-stop", "shop_app1_1", 1),
                    ("post-start", "shop_app1_1", 2),
                ],
                Order::StartFirst => [
                    ("post-start", "shop_app1_1-b", 2),
                    ("pre-stop", "shop_app1_1", 1),
                ],
            };
            assert_eq!(hooks, expected, "{order}: only app1 has hooks");
        }
    }

    #[test]
    fn tells_composes_own_names_from_a_container_name() {
        let labels = HashMap::from([
            (ComposeLabel::Project.to_string(), "shop".to_string()),
            (ComposeLabel::Service.to_string(), "app1".to_string()),
        ]);
        let r = ComposeRef::from_labels(&labels).unwrap();
        for own in ["shop_app1_1", "shop-app1-12"] {
            assert!(compose_named(own, &r), "{own}");
        }
        for other in [
            "app1",
            "shop_app1",
            "shop_app1_1-b",
            "shop_app10_1",
            "shop_app1_x",
            "shop-app1_1",
        ] {
            assert!(!compose_named(other, &r), "{other}");
        }
    }

    #[test]
    fn parses_hash_lines_of_v1_and_v2() {
        let hashes = parse_hashes("app10 x\napp1 1a2b3c\nbroken\n\n");
        assert_eq!(hashes.get("app1").map(String::as_str), Some("1a2b3c"));
        assert_eq!(hashes.get("app10").map(String::as_str), Some("x"));
        assert_eq!(hashes.len(), 2);
    }
}
