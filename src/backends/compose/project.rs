//! A compose project's desired state, as compose's `config` and `config
//! --hash=*` print it: each service's merged configuration, its lifecycle
//! hooks, its config hash (to tell whether a container is out of date) and
//! how many containers it declares; read once per project, with the templates
//! a deploy needs made at the same time.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use bollard::Docker;
use serde::{Deserialize, Serialize};

use super::cli::{ComposeCli, run};
use super::hooks::parse_hooks;
use super::inputs::inputs_now;
use super::reading::{Printed, Reading};
use super::reading_script::run_reading_script;
use super::templates::make_templates;
use crate::backends::spec::ContainerSpec;
use crate::docker::{ComposeLabel, ComposeRef};
use crate::plan::Hooks;

/// What compose makes of a project's files now: every service's merged
/// configuration (`config`) and config hash, asked once for all its
/// services, and the templates ([`compose_templates`]) a deploy
/// asked for up front.
///
/// [`compose_templates`]: super::compose_templates
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComposeProject {
    /// Its name (`-p`).
    pub(super) project: String,
    services: serde_norway::Value,
    /// Its top-level `networks`, which templates are attached to.
    pub(super) networks: serde_norway::Value,
    hashes: HashMap<String, String>,
    templates: HashMap<String, ContainerSpec>,
}

/// A project as a deploy reads it.
#[derive(Debug)]
pub struct Loaded {
    /// What compose says of it (or what follows from what it said).
    pub project: ComposeProject,
    /// What to keep for the next deploy, if it can be kept.
    pub reading: Option<Reading>,
    /// When compose did not run: what changed since the kept reading
    /// (`service: VAR, …`).
    pub derived: Option<Vec<String>>,
}

/// What a deploy will ask of one compose project, known from its containers'
/// labels before compose runs, so that compose is asked all of it at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectQuery {
    /// The services whose config hash the deploy compares.
    pub hashed: BTreeSet<String>,
    /// The services whose template compose makes beside `config`, each with
    /// the number of containers it has now (see [`compose_templates`]).
    ///
    /// [`compose_templates`]: super::compose_templates
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

    /// `r`'s project for a deploy that asks `query` of it. With `engine`
    /// (the daemon's version, [`crate::docker::engine_version`]), what
    /// compose read is kept ([`Loaded::reading`]), and a `kept` reading
    /// answers instead of compose when the files changed only in
    /// environment values or images since (see [`Reading`]).
    pub async fn load_for(
        cli: ComposeCli<'_>,
        docker: &Docker,
        r: &ComposeRef,
        query: &ProjectQuery,
        engine: Option<&str>,
        kept: Option<&Reading>,
    ) -> Result<Loaded> {
        let now = match engine {
            Some(engine) => inputs_now(cli, r, engine).unwrap_or_else(|e| {
                tracing::debug!("compose project {}: {e:#}", r.project);
                None
            }),
            None => None,
        };
        if let (Some(kept), Some(now)) = (kept, &now) {
            match kept.derive(docker, now, query).await {
                Ok((reading, changed)) => {
                    cli.ahead.discard("a kept reading answered");
                    return Ok(Loaded {
                        project: reading.project().clone(),
                        reading: Some(reading),
                        derived: Some(changed),
                    });
                }
                Err(why) => {
                    tracing::debug!("compose project {}: read by compose: {why}", r.project)
                }
            }
        }
        let python = now.as_ref().map(|(inputs, _)| inputs.python());
        if python.is_none() {
            cli.ahead
                .discard("compose's own commands read this project");
        }
        let (project, printed) = ComposeProject::read(cli, docker, r, query, python).await?;
        let reading = match (now, printed, engine) {
            (Some(now), Some(printed), Some(engine)) => match inputs_now(cli, r, engine) {
                Ok(Some(again)) if again == now => Reading::new(now, &printed, &project)
                    .map_err(|e| tracing::debug!("compose project {}: not kept: {e:#}", r.project))
                    .ok(),
                _ => None,
            },
            _ => None,
        };
        Ok(Loaded {
            project,
            reading,
            derived: None,
        })
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
    ///
    /// [`compose_templates`]: super::compose_templates
    pub async fn load_with(
        cli: ComposeCli<'_>,
        docker: &Docker,
        r: &ComposeRef,
        query: &ProjectQuery,
    ) -> Result<ComposeProject> {
        Ok(ComposeProject::read(cli, docker, r, query, None).await?.0)
    }

    /// [`load_with`](Self::load_with); with `python` (compose v1's
    /// interpreter) compose's own code prints `config` and every service's
    /// hash and asks for the templates in one run ([`read_by_script`]), and
    /// only when that fails do `config`, `config --hash=*` and `up` run.
    ///
    /// [`read_by_script`]: Self::read_by_script
    async fn read(
        cli: ComposeCli<'_>,
        docker: &Docker,
        r: &ComposeRef,
        query: &ProjectQuery,
        python: Option<&Path>,
    ) -> Result<(ComposeProject, Option<Printed>)> {
        let wanted: Vec<(String, usize)> = query
            .templates
            .iter()
            .map(|(s, n)| (s.clone(), *n))
            .collect();
        if let Some(python) = python {
            match ComposeProject::read_by_script(cli, docker, r, &wanted, python).await {
                Ok(read) => return Ok(read),
                Err(e) => tracing::debug!(
                    "compose project {}: {e:#}; compose's `config` instead",
                    r.project
                ),
            }
        }
        let hash_now =
            wanted.is_empty() || !query.hashed.iter().all(|s| query.templates.contains_key(s));
        let hashes = async {
            match hash_now {
                true => run(cli, r, &["config", "--hash=*"]).await.map(Some),
                false => Ok(None),
            }
        };
        let made = async {
            match wanted.is_empty() {
                true => None,
                false => Some(make_templates(cli, docker, r, &wanted).await),
            }
        };
        let (config, hashes, made) = tokio::join!(run(cli, r, &["config"]), hashes, made);
        let mut project =
            ComposeProject::from_config(&r.project, &config?, &hashes?.unwrap_or_default())?;
        if let Some(made) = made
            && !project.take_templates(docker, r, made).await?
            && !hash_now
        {
            project.hashes = parse_hashes(&run(cli, r, &["config", "--hash=*"]).await?);
        }
        Ok((project, None))
    }

    /// The project from one run of compose's own code through `python`
    /// ([`Printed`]: `config` and every service's hash), which also asks
    /// for the `wanted` templates in the same process ([`Printed::templates`]).
    /// `Err` when the script fails (compose's own commands run then); when
    /// only the templates fail, the project has none (see
    /// [`load_with`](Self::load_with)).
    async fn read_by_script(
        cli: ComposeCli<'_>,
        docker: &Docker,
        r: &ComposeRef,
        wanted: &[(String, usize)],
        python: &Path,
    ) -> Result<(ComposeProject, Option<Printed>)> {
        let services: Vec<String> = wanted.iter().map(|(s, _)| s.clone()).collect();
        let templates = (!wanted.is_empty()).then_some(services.as_slice());
        let printed = Printed::parse(&run_reading_script(cli, python, r, templates).await?)?;
        let mut project = ComposeProject::from_config(&r.project, &printed.config, "")?;
        project.hashes.extend(printed.hashes());
        if templates.is_some() {
            project
                .take_templates(docker, r, printed.templates(r, &services))
                .await?;
        }
        Ok((project, Some(printed)))
    }

    /// Takes the templates compose `made`, with the networks it attaches at
    /// start, and their services' hashes from their `config-hash` labels.
    /// `false` when compose could not make them: nothing is kept of them,
    /// and [`compose_templates`] asks again for the services that need one,
    /// so that its error is about them.
    ///
    /// [`compose_templates`]: super::compose_templates
    async fn take_templates(
        &mut self,
        docker: &Docker,
        r: &ComposeRef,
        made: Result<HashMap<String, ContainerSpec>>,
    ) -> Result<bool> {
        let made = match made {
            Ok(raw) => self.finish_templates(docker, raw).await,
            Err(e) => Err(e),
        };
        let templates = match made {
            Ok(templates) => templates,
            Err(e) => {
                tracing::debug!(
                    "compose project {}: no templates beside `config` ({e:#}); asked again where needed",
                    r.project
                );
                return Ok(false);
            }
        };
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
            self.hashes.insert(service.clone(), hash);
        }
        self.templates = templates;
        Ok(true)
    }

    /// The hash compose gives `service` now, if it was asked.
    pub(super) fn hash(&self, service: &str) -> Option<&str> {
        self.hashes.get(service).map(String::as_str)
    }

    /// `service`'s hash, in its template's label too.
    pub(super) fn set_hash(&mut self, service: &str, hash: String) {
        if let Some(labels) = self
            .templates
            .get_mut(service)
            .and_then(|t| t.config.labels.as_mut())
        {
            labels.insert(ComposeLabel::ConfigHash.to_string(), hash.clone());
        }
        self.hashes.insert(service.to_string(), hash);
    }

    /// Sets every template's compose files label from `old` to `new`
    /// (`None`, changing nothing, unless each had `old`).
    pub(super) fn set_files_label(&mut self, old: &str, new: &str) -> Option<()> {
        let key = ComposeLabel::ConfigFiles.to_string();
        let mut labels: Vec<_> = self
            .templates
            .values_mut()
            .map(|t| t.config.labels.as_mut()?.get_mut(&key))
            .collect::<Option<_>>()?;
        if labels.iter().any(|l| l.as_str() != old) {
            return None;
        }
        for label in &mut labels {
            **label = new.to_string();
        }
        Some(())
    }

    /// The template of `service`, to change.
    pub(super) fn template_mut(&mut self, service: &str) -> Option<&mut ContainerSpec> {
        self.templates.get_mut(service)
    }

    /// Sets `service`'s image from `old` to `new` in its `config` (`None`,
    /// changing nothing, unless it had `old`).
    pub(super) fn set_image(&mut self, service: &str, old: &str, new: &str) -> Option<()> {
        let image = self
            .services
            .get_mut(service)?
            .get_mut("image")
            .filter(|v| v.as_str() == Some(&as_printed(old)))?;
        *image = serde_norway::Value::String(as_printed(new));
        Some(())
    }

    /// Sets `service`'s environment variable `name` from `old` to `new` in
    /// its `config` and its template (`None`, changing nothing, unless both
    /// have `old`).
    pub(super) fn set_env(
        &mut self,
        service: &str,
        name: &str,
        old: &str,
        new: &str,
    ) -> Option<()> {
        let config = self
            .services
            .get_mut(service)?
            .get_mut("environment")?
            .get_mut(name)
            .filter(|v| v.as_str() == Some(&as_printed(old)))?;
        let entry = match self.templates.get_mut(service) {
            Some(t) => Some(
                t.config
                    .env
                    .as_mut()?
                    .iter_mut()
                    .find(|e| **e == format!("{name}={old}"))?,
            ),
            None => None,
        };
        *config = serde_norway::Value::String(as_printed(new));
        if let Some(entry) = entry {
            *entry = format!("{name}={new}");
        }
        Some(())
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

    /// What of the service the fast path does not carry to the containers it
    /// makes from a template, if anything: what compose sets as it connects
    /// a container to each network (the aliases of `links` and
    /// `external_links`, `link_local_ips`) and `mac_address`. Compose must
    /// make such a service's containers itself.
    pub fn not_carried(&self, service: &str) -> Option<String> {
        let svc = self.services.get(service)?;
        let mut keys: Vec<&str> = ["links", "external_links", "mac_address"]
            .into_iter()
            .filter(|k| svc.get(*k).is_some())
            .collect();
        let networks = svc.get("networks").and_then(|n| n.as_mapping());
        if networks.is_some_and(|n| n.values().any(|net| net.get("link_local_ips").is_some())) {
            keys.push("networks.*.link_local_ips");
        }
        (!keys.is_empty()).then(|| {
            format!(
                "service {service} sets {}, which containers made through the API from compose's \
                 template would not get",
                keys.join(", ")
            )
        })
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

/// `value` as compose v1's `config` prints it: every `$` doubled, so that
/// reading the output as a compose file gives the value back.
fn as_printed(value: &str) -> String {
    value.replace('$', "$$")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hash_lines_of_v1_and_v2() {
        let hashes = parse_hashes("app10 x\napp1 1a2b3c\nbroken\n\n");
        assert_eq!(hashes.get("app1").map(String::as_str), Some("1a2b3c"));
        assert_eq!(hashes.get("app10").map(String::as_str), Some("x"));
        assert_eq!(hashes.len(), 2);
    }

    #[test]
    fn values_are_set_in_config_as_compose_prints_them() {
        let config =
            "services:\n  web:\n    image: app:v1\n    environment:\n      MESSAGE: v1-$$\n";
        let mut p = ComposeProject::from_config("p", config, "web h\n").unwrap();
        assert_eq!(p.set_env("web", "MESSAGE", "v1-$$", "v2"), None);
        assert_eq!(p.set_env("web", "MESSAGE", "v1-$", "v2-$"), Some(()));
        assert_eq!(p.service("web").unwrap()["environment"]["MESSAGE"], "v2-$$");
        assert_eq!(p.set_image("web", "app:v1", "app:v2"), Some(()));
        assert_eq!(p.service("web").unwrap()["image"], "app:v2");
    }

    #[test]
    fn a_service_with_what_compose_sets_at_connect_is_not_carried() {
        let config = "services:\n  plain:\n    image: app:v1\n    networks:\n      front:\n        aliases: [a]\n  linked:\n    image: app:v1\n    links: [db:database]\n    mac_address: 02:42:ac:11:00:02\n  local:\n    image: app:v1\n    networks:\n      front:\n        link_local_ips: [169.254.8.8]\n";
        let p = ComposeProject::from_config("p", config, "").unwrap();
        assert_eq!(p.not_carried("plain"), None);
        let linked = p.not_carried("linked").unwrap();
        assert!(linked.contains("sets links, mac_address,"), "{linked}");
        let local = p.not_carried("local").unwrap();
        assert!(local.contains("networks.*.link_local_ips"), "{local}");
    }
}
