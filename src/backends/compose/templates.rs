//! The fast path's templates: what compose creates as one more container of
//! a service, as a spec from which the rollout creates the service's
//! containers through the API (with the networks compose connects only at
//! start, read from the project). With compose v1's reading script it is
//! compose's own create request, kept from the daemon
//! ([`template_from_request`]); else compose makes the container, not
//! started, and the rollout captures it and removes it ([`compose_templates`]).
use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::models::{ContainerConfig, EndpointIpamConfig, HostConfig};
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use futures_util::future::join_all;
use serde_json::Value as Json;

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
/// template as compose created it (with its first network only). Every
/// container of the project the run left is captured as the template of
/// its service and removed, whether or not compose said it succeeded.
pub(super) async fn make_templates(
    cli: ComposeCli<'_>,
    docker: &Docker,
    r: &ComposeRef,
    services: &[(String, usize)],
) -> Result<HashMap<String, ContainerSpec>> {
    let args = template_args(services);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let before = project_containers(docker, &r.project).await?;
    let mut failure = run(cli, r, &argv).await.err();
    let after = match project_containers(docker, &r.project).await {
        Ok(after) => after,
        Err(e) => return Err(failure.unwrap_or(e)),
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
        return Err(e.context(format!(
            "compose project {}: making the template containers of {}",
            r.project,
            names.join(", ")
        )));
    }
    match services.iter().find(|(s, _)| !templates.contains_key(s)) {
        Some((missing, _)) => Err(anyhow!(
            "compose project {}: `up --no-start --scale` made no container of {missing}",
            r.project
        )),
        None => Ok(templates),
    }
}

/// The `up` arguments with which compose makes one more container of each
/// of `services` (name, containers it has), not started.
fn template_args(services: &[(String, usize)]) -> Vec<String> {
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

/// The template compose asked the daemon for: the body of its create
/// request for a container named `name` (which `reading.py` keeps from the
/// daemon), as a spec without networks (see
/// [`finish_templates`](ComposeProject::finish_templates)). Containers made
/// from it are what compose itself would make, the daemon filling in the
/// same defaults. `Err` when the request holds a value the spec would not
/// carry (a key the API's types here do not know): compose's own `up`
/// makes the templates then.
pub(super) fn template_from_request(name: &str, body: &Json) -> Result<ContainerSpec> {
    fn parse<T: serde::de::DeserializeOwned>(name: &str, what: &str, value: &Json) -> Result<T> {
        serde_json::from_value(value.clone())
            .with_context(|| format!("compose's request to create {name}: its {what}"))
    }
    // The docker SDK leaves out a null member; the daemon reads one as absent.
    let mut asked = without_nulls(body.clone());
    let mut config: ContainerConfig = parse(name, "config", &asked)?;
    let host_config: HostConfig = match asked.get("HostConfig") {
        Some(h) => parse(name, "HostConfig", h)?,
        None => HostConfig::default(),
    };
    let image = config
        .image
        .take()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| anyhow!("compose's request to create {name} names no image"))?;
    let mut carried = serde_json::to_value(&config)?;
    carried["Image"] = Json::from(image.as_str());
    carried["HostConfig"] = serde_json::to_value(&host_config)?;
    if let Some(asked) = asked.as_object_mut() {
        // The networks are the project's, as compose connects them at start.
        asked.remove("NetworkingConfig");
        asked
            .entry("HostConfig")
            .or_insert_with(|| Json::Object(Default::default()));
    }
    if let Some(path) = first_difference(&asked, &without_nulls(carried)) {
        bail!("compose's request to create {name}: its {path} would not be carried");
    }
    Ok(ContainerSpec {
        name: name.to_string(),
        image,
        config,
        host_config,
        networks: Vec::new(),
    })
}

/// `value` without the members that are null (the daemon reads a missing
/// member as null).
fn without_nulls(value: Json) -> Json {
    match value {
        Json::Object(members) => Json::Object(
            members
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Where `a` and `b` first differ (a path of member names), if they do.
fn first_difference(a: &Json, b: &Json) -> Option<String> {
    match (a, b) {
        (Json::Object(a), Json::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| match (a.get(k), b.get(k)) {
                (Some(x), Some(y)) => first_difference(x, y).map(|p| match p.is_empty() {
                    true => k.clone(),
                    false => format!("{k}.{p}"),
                }),
                _ => Some(k.clone()),
            })
        }
        _ => (a != b).then(String::new),
    }
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

    /// A create request as compose v1 (docker SDK 5) makes it for seed 002's
    /// app1, with what a service may add.
    fn request() -> Json {
        serde_json::json!({
            "Hostname": null, "Domainname": null, "ExposedPorts": {"3000/tcp": {}},
            "User": null, "Tty": false, "OpenStdin": false, "StdinOnce": false,
            "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
            "Env": ["MESSAGE=app1,v2"], "Cmd": null, "Image": "app:v2", "Volumes": {"/data": {}},
            "NetworkDisabled": false, "Entrypoint": null, "WorkingDir": null,
            "HostConfig": {
                "NetworkMode": "shop_default", "VolumesFrom": [], "Binds": ["/srv/conf:/conf:ro"],
                "PortBindings": {"3000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                "Links": [], "LogConfig": {"Type": "", "Config": {}},
                "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
                "Memory": 268435456
            },
            "NetworkingConfig": {"EndpointsConfig": {"shop_default": {"Aliases": ["app1"], "IPAMConfig": {}}}},
            "MacAddress": null,
            "Labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "app1",
                       "com.docker.compose.container-number": "2"},
            "StopSignal": null,
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000, "Retries": 3},
            "StopTimeout": 10, "Runtime": null
        })
    }

    #[test]
    fn a_template_is_composes_create_request_as_asked() {
        let spec = template_from_request("shop_app1_2", &request()).unwrap();
        assert_eq!(spec.name, "shop_app1_2");
        assert_eq!(spec.image, "app:v2");
        assert_eq!(spec.config.image, None);
        assert_eq!(spec.config.env, Some(vec!["MESSAGE=app1,v2".to_string()]));
        assert_eq!(
            spec.config.exposed_ports,
            Some(vec!["3000/tcp".to_string()])
        );
        assert_eq!(spec.config.volumes, Some(vec!["/data".to_string()]));
        assert_eq!(spec.config.stop_timeout, Some(10));
        assert_eq!(spec.config.cmd, None);
        let labels = spec.config.labels.as_ref().unwrap();
        assert_eq!(labels["com.docker.compose.container-number"], "2");
        let host = &spec.host_config;
        assert_eq!(host.network_mode.as_deref(), Some("shop_default"));
        assert_eq!(host.binds, Some(vec!["/srv/conf:/conf:ro".to_string()]));
        assert_eq!(host.memory, Some(268435456));
        let bound = &host.port_bindings.as_ref().unwrap()["3000/tcp"];
        assert_eq!(
            bound.as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        // The networks are the project's, set as compose connects them at start.
        assert!(spec.networks.is_empty());

        // A service that exposes nothing: the SDK's nulls are no values.
        let mut body = request();
        body["ExposedPorts"] = Json::Null;
        body["HostConfig"]["Memory"] = Json::Null;
        let spec = template_from_request("shop_app1_2", &body).unwrap();
        assert_eq!(spec.config.exposed_ports, None);
        assert_eq!(spec.host_config.memory, None);
    }

    #[test]
    fn a_request_with_a_value_the_spec_would_not_carry_is_refused_by_name() {
        let refused = |change: fn(&mut Json)| {
            let mut body = request();
            change(&mut body);
            template_from_request("shop_app1_2", &body)
                .unwrap_err()
                .to_string()
        };
        let e = refused(|b| b["Frobnicate"] = Json::from(true));
        assert!(e.contains("its Frobnicate would not be carried"), "{e}");
        let e = refused(|b| b["HostConfig"]["LogConfig"]["Rotate"] = Json::from("daily"));
        assert!(
            e.contains("its HostConfig.LogConfig.Rotate would not be carried"),
            "{e}"
        );
        let e = refused(|b| b["Image"] = Json::Null);
        assert!(e.contains("names no image"), "{e}");
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
}
