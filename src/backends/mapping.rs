//! Which container an upstream `server` address points at.
use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, EndpointSettings};
use bollard::query_parameters::ListContainersOptions;

use crate::docker::{self, ComposeRef};

/// A container behind an upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendContainer {
    /// Full container id.
    pub id: String,
    /// Container name (without the leading `/`).
    pub name: String,
    /// Image reference the container was created from.
    pub image: String,
    /// Its compose project and service, when compose made it.
    pub compose: Option<ComposeRef>,
    /// Names of the networks it is attached to.
    pub networks: Vec<String>,
    /// Whether it ran when it was looked up.
    pub running: bool,
}

/// Finds the container that `host` (the host part of a `server` address)
/// names, as seen from nginx's networks: a compose service name, a container
/// name, a network alias or an IP on a network shared with nginx.
pub async fn resolve_backend(
    docker: &Docker,
    nginx_networks: &[String],
    host: &str,
) -> Result<BackendContainer> {
    if nginx_networks.is_empty() {
        bail!("server {host}: nginx is on no network, so no container can be found by name");
    }
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "network".to_string(),
            nginx_networks.to_vec(),
        )])),
        ..Default::default()
    };
    let summaries = docker
        .list_containers(Some(options))
        .await
        .with_context(|| format!("server {host}: list containers"))?;
    let mut candidates = Vec::new();
    for s in summaries {
        let Some(id) = s.id else { continue };
        // A container may disappear between list and inspect; that is not an error.
        let Ok(inspect) = docker.inspect_container(&id, None).await else {
            continue;
        };
        let shared = shared_endpoints(&inspect, nginx_networks);
        if !shared.is_empty() {
            candidates.push((backend_from(&inspect), shared));
        }
    }
    pick(host, nginx_networks, candidates)
}

/// The backend for an explicit container name or id (`--map SERVER=CONTAINER`).
pub async fn backend_by_name(docker: &Docker, name: &str) -> Result<BackendContainer> {
    let inspect = docker
        .inspect_container(name, None)
        .await
        .with_context(|| format!("container {name}: inspect (for --map)"))?;
    Ok(backend_from(&inspect))
}

fn backend_from(inspect: &ContainerInspectResponse) -> BackendContainer {
    let config = inspect.config.clone().unwrap_or_default();
    let mut networks: Vec<String> = inspect
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    BackendContainer {
        id: inspect.id.clone().unwrap_or_default(),
        name: docker::name_of(inspect, "").to_string(),
        image: config.image.unwrap_or_default(),
        compose: config.labels.as_ref().and_then(ComposeRef::from_labels),
        networks,
        running: inspect.state.as_ref().and_then(|s| s.running) == Some(true),
    }
}

/// The container's endpoints on networks nginx is also on (by name or id).
fn shared_endpoints(
    inspect: &ContainerInspectResponse,
    nginx_networks: &[String],
) -> Vec<EndpointSettings> {
    let on_nginx_network = |name: &str, ep: &EndpointSettings| {
        nginx_networks.iter().any(|n| {
            n == name
                || ep
                    .network_id
                    .as_deref()
                    .is_some_and(|id| !n.is_empty() && id.starts_with(n.as_str()))
        })
    };
    inspect
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .map(|nets: &HashMap<String, EndpointSettings>| {
            nets.iter()
                .filter(|(name, ep)| on_nginx_network(name, ep))
                .map(|(_, ep)| ep.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// How `host` can name a container on a shared network.
fn names_of(backend: &BackendContainer, endpoints: &[EndpointSettings]) -> Vec<String> {
    let mut names = vec![backend.name.clone()];
    if let Some(c) = &backend.compose {
        names.push(c.service.clone());
    }
    for ep in endpoints {
        names.extend(ep.aliases.iter().flatten().cloned());
        names.extend(ep.ip_address.iter().filter(|ip| !ip.is_empty()).cloned());
        names.extend(
            ep.global_ipv6_address
                .iter()
                .filter(|ip| !ip.is_empty())
                .cloned(),
        );
    }
    names.sort();
    names.dedup();
    names
}

fn pick(
    host: &str,
    nginx_networks: &[String],
    candidates: Vec<(BackendContainer, Vec<EndpointSettings>)>,
) -> Result<BackendContainer> {
    let wanted = host.trim_start_matches('[').trim_end_matches(']');
    let described: Vec<(BackendContainer, Vec<String>)> = candidates
        .into_iter()
        .map(|(b, eps)| {
            let names = names_of(&b, &eps);
            (b, names)
        })
        .collect();
    let mut matches: Vec<&(BackendContainer, Vec<String>)> = described
        .iter()
        .filter(|(_, names)| names.iter().any(|n| n == wanted))
        .collect();
    match matches.len() {
        1 => Ok(matches.remove(0).0.clone()),
        0 => {
            let list = if described.is_empty() {
                "none".to_string()
            } else {
                described
                    .iter()
                    .map(|(b, names)| format!("{} ({})", b.name, names.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            bail!(
                "server {host}: no container on nginx's networks [{}] answers to that name; \
                 candidates: {list} (use --map {host}=CONTAINER)",
                nginx_networks.join(", ")
            )
        }
        _ => bail!(
            "server {host}: ambiguous, it names {} (use --map {host}=CONTAINER)",
            matches
                .iter()
                .map(|(b, _)| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(
        name: &str,
        service: Option<&str>,
        alias: &str,
        ip: &str,
    ) -> (BackendContainer, Vec<EndpointSettings>) {
        let compose = service.map(|s| ComposeRef {
            project: "p".into(),
            service: s.into(),
            working_dir: None,
            config_files: vec![],
            config_hash: None,
        });
        (
            BackendContainer {
                id: format!("id-{name}"),
                name: name.into(),
                image: "app:v1".into(),
                compose,
                networks: vec!["net".into()],
                running: true,
            },
            vec![EndpointSettings {
                aliases: Some(vec![alias.into()]),
                ip_address: Some(ip.into()),
                ..Default::default()
            }],
        )
    }

    fn two() -> Vec<(BackendContainer, Vec<EndpointSettings>)> {
        vec![
            candidate("p_app1_1", Some("app1"), "one", "10.0.0.2"),
            candidate("solo", None, "two", "10.0.0.3"),
        ]
    }

    #[test]
    fn matches_service_name_alias_and_ip() {
        let net = ["net".to_string()];
        assert_eq!(pick("app1", &net, two()).unwrap().name, "p_app1_1");
        assert_eq!(pick("p_app1_1", &net, two()).unwrap().name, "p_app1_1");
        assert_eq!(pick("two", &net, two()).unwrap().name, "solo");
        assert_eq!(pick("10.0.0.3", &net, two()).unwrap().name, "solo");
    }

    #[test]
    fn no_match_names_the_server_and_lists_candidates() {
        let err = pick("app9", &["net".to_string()], two())
            .unwrap_err()
            .to_string();
        assert!(err.contains("server app9"), "{err}");
        assert!(
            err.contains("p_app1_1 (") && err.contains("solo ("),
            "{err}"
        );
    }

    #[test]
    fn several_matches_are_ambiguous() {
        let mut c = two();
        c.push(candidate("other", Some("app1"), "x", "10.0.0.4"));
        let err = pick("app1", &["net".to_string()], c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ambiguous") && err.contains("other"), "{err}");
    }
}
