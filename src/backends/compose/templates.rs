//! The fast path's template containers: compose makes one more container of
//! a service, not started, and the rollout captures it as a spec, removes it,
//! and creates the service's containers from that spec through the API (with
//! the networks compose connects only at start, read from the project).
use std::collections::HashMap;

use anyhow::{Context, Result, anyhow};
use bollard::Docker;
use bollard::models::EndpointIpamConfig;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use futures_util::future::join_all;

use super::cli::{ComposeCli, run};
use super::project::ComposeProject;
use crate::backends::capture::{Anonymous, capture};
use crate::backends::spec::{ContainerSpec, NetworkAttachment};
use crate::docker::{ComposeLabel, ComposeRef, label_filters};

/// Whether `name` is one compose gives a container of `r`'s service itself
/// (`project_service_N`, compose v2 `project-service-N`) rather than the
/// service's own `container_name`, which compose cannot give a template.
pub fn compose_named(name: &str, r: &ComposeRef) -> bool {
    ['_', '-'].iter().any(|sep| {
        name.strip_prefix(&format!("{}{sep}{}{sep}", r.project, r.service))
            .is_some_and(|n| n.parse::<u32>().is_ok())
    })
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
pub(super) async fn make_templates(
    cli: ComposeCli<'_>,
    docker: &Docker,
    r: &ComposeRef,
    services: &[(String, usize)],
) -> Result<HashMap<String, ContainerSpec>> {
    let args = template_args(services);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let make = async { (run(cli, r, &argv).await.map(drop), ()) };
    templates_made_by(docker, r, services, make).await?.0
}

/// The `up` arguments with which compose makes one more container of each
/// of `services` (name, containers it has), not started.
pub(super) fn template_args(services: &[(String, usize)]) -> Vec<String> {
    let mut args: Vec<String> = ["up", "--no-start", "--no-deps", "--no-recreate"]
        .map(String::from)
        .to_vec();
    for (service, count) in services {
        args.push("--scale".into());
        args.push(format!("{service}={}", count + 1));
    }
    args.extend(services.iter().map(|(s, _)| s.clone()));
    args
}

/// Runs `make`, a compose run with [`template_args`] answering whether
/// compose made them and with whatever else it gives, and captures every
/// container of the project it left as the template of its service
/// (removing each, whether or not compose said it succeeded). `Err` when the
/// project's containers cannot be listed before (`make` does not run then).
pub(super) async fn templates_made_by<T>(
    docker: &Docker,
    r: &ComposeRef,
    services: &[(String, usize)],
    make: impl Future<Output = (Result<()>, T)>,
) -> Result<(Result<HashMap<String, ContainerSpec>>, T)> {
    let before = project_containers(docker, &r.project).await?;
    let (made, other) = make.await;
    let mut failure = made.err();
    let after = match project_containers(docker, &r.project).await {
        Ok(after) => after,
        Err(e) => return Ok((Err(failure.unwrap_or(e)), other)),
    };
    let made = after.into_iter().filter(|c| !before.contains(c));
    // One service's after another's would put their round trips on the way.
    let captured = join_all(made.map(|(id, service)| async move {
        let spec = capture(docker, &id, Anonymous::Fresh).await;
        remove_template(docker, &id).await;
        (service, spec)
    }))
    .await;
    let mut templates = HashMap::new();
    for (service, spec) in captured {
        match spec {
            Ok(spec) => {
                templates.insert(service, spec);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        let names: Vec<&str> = services.iter().map(|(s, _)| s.as_str()).collect();
        let e = e.context(format!(
            "compose project {}: making the template containers of {}",
            r.project,
            names.join(", ")
        ));
        return Ok((Err(e), other));
    }
    if let Some((missing, _)) = services.iter().find(|(s, _)| !templates.contains_key(s)) {
        let e = anyhow!(
            "compose project {}: `up --no-start --scale` made no container of {missing}",
            r.project
        );
        return Ok((Err(e), other));
    }
    Ok((Ok(templates), other))
}

impl ComposeProject {
    /// `raw` templates with the networks compose connects only when it
    /// starts a container, as this configuration declares them.
    pub(super) async fn finish_templates(
        &self,
        docker: &Docker,
        raw: HashMap<String, ContainerSpec>,
    ) -> Result<HashMap<String, ContainerSpec>> {
        // The networks compose labelled, asked once for every service that
        // has networks of its own.
        let own_networks = |s: &String| {
            self.service(s)
                .map_or(true, |svc| svc.get("network_mode").is_none())
        };
        let labelled = match raw.keys().any(own_networks) {
            true => project_networks(docker, &self.project).await?,
            false => Vec::new(),
        };
        let mut templates = HashMap::new();
        for (service, mut spec) in raw {
            let primary = spec.host_config.network_mode.clone();
            spec.networks = self.attachments(&service, primary.as_deref(), &labelled)?;
            templates.insert(service, spec);
        }
        Ok(templates)
    }

    /// The networks compose attaches the service's containers to, as it does
    /// when it starts them (a container it creates without starting has only
    /// its first): each network's real name (`external` or `name:` as given,
    /// else the one compose labelled with the key), the service's name and its
    /// aliases there, and its fixed addresses. The primary network
    /// (`network_mode`'s) first. Empty under a `network_mode` of its own.
    /// `labelled` is the project's networks ([`project_networks`]).
    fn attachments(
        &self,
        service: &str,
        primary: Option<&str>,
        labelled: &[(String, String)],
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
}

/// The networks compose made for a project: (key in the compose file, real name).
async fn project_networks(docker: &Docker, project: &str) -> Result<Vec<(String, String)>> {
    let options = bollard::query_parameters::ListNetworksOptions {
        filters: Some(label_filters(vec![ComposeLabel::Project.filter(project)])),
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
        filters: Some(label_filters(vec![ComposeLabel::Project.filter(project)])),
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
}
