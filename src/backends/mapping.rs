//! Which container an upstream `server` address points at.
use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, EndpointSettings};
use bollard::query_parameters::ListContainersOptions;
use futures_util::{StreamExt, stream};

use crate::docker::{self, ComposeLabel, ComposeRef};

/// A container behind an upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendContainer {
    /// Full container id.
    pub id: String,
    /// Container name (without the leading `/`).
    pub name: String,
    /// Image reference the container was created from.
    pub image: String,
    /// The id of the image it runs (`sha256:…`).
    pub image_id: String,
    /// Its compose project and service, when compose made it.
    pub compose: Option<ComposeRef>,
    /// Names of the networks it is attached to.
    pub networks: Vec<String>,
    /// Whether it ran when it was looked up.
    pub running: bool,
    /// Compose's container number ([`ComposeLabel::ContainerNumber`]).
    pub number: Option<u32>,
    /// Its addresses on its networks (network name → IP).
    pub addresses: Vec<(String, String)>,
}

/// What the host of a `server` line names on nginx's networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// One container.
    One(Box<BackendContainer>),
    /// Several containers that are replicas of one thing: one compose
    /// service's containers, or containers sharing a network alias; in order
    /// (compose's container number, else name).
    Replicas(Vec<BackendContainer>),
}

/// Finds the container that `host` (the host part of a `server` address)
/// names, as seen from nginx's networks: a compose service name, a container
/// name, a network alias or an IP on a network shared with nginx. Several
/// containers are an error (see [`resolve_backends`] for replica sets).
pub async fn resolve_backend(
    docker: &Docker,
    nginx_networks: &[String],
    host: &str,
) -> Result<BackendContainer> {
    match resolve_backends(docker, nginx_networks, host).await? {
        Resolved::One(b) => Ok(*b),
        Resolved::Replicas(all) => bail!(
            "server {host}: ambiguous for one container, it names {} replicas ({}); pick one with --map {host}=CONTAINER",
            all.len(),
            all.iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Finds what `host` names on nginx's networks: one container, or the
/// replicas of one compose service or network alias. Several containers that
/// are not one service's replicas are an error listing them. (To resolve
/// several hosts, list the networks once: [`OnNetworks`].)
pub async fn resolve_backends(
    docker: &Docker,
    nginx_networks: &[String],
    host: &str,
) -> Result<Resolved> {
    let mut on_networks = OnNetworks::list(docker, nginx_networks).await?;
    on_networks.resolve(docker, host).await
}

/// Whether a running container on nginx's networks answers to `host` (a
/// name, an alias or an address): whether nginx resolves it at its next
/// reload, as Docker's DNS answers only for running containers.
pub async fn answers(docker: &Docker, nginx_networks: &[String], host: &str) -> Result<bool> {
    Ok(OnNetworks::list(docker, nginx_networks)
        .await?
        .answers(host))
}

/// How many containers are inspected at once when nginx's networks are listed.
const INSPECTS_AT_ONCE: usize = 8;

/// The containers on nginx's networks, each inspected once, what `server`
/// hosts are resolved against: one listing for every line of an upstream.
pub struct OnNetworks {
    networks: Vec<String>,
    candidates: Vec<(BackendContainer, Vec<EndpointSettings>)>,
    /// Per image id: whether it carries compose labels (see [`Self::resolve`]).
    image_carries_compose: HashMap<String, bool>,
}

impl OnNetworks {
    /// Lists the containers on `nginx_networks` and inspects them, a few at
    /// a time; one gone in between is left out.
    pub async fn list(docker: &Docker, nginx_networks: &[String]) -> Result<OnNetworks> {
        let mut on = OnNetworks {
            networks: nginx_networks.to_vec(),
            candidates: Vec::new(),
            image_carries_compose: HashMap::new(),
        };
        if nginx_networks.is_empty() {
            return Ok(on);
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
            .with_context(|| format!("listing the containers on {}", nginx_networks.join(", ")))?;
        let inspected: Vec<_> = stream::iter(summaries.into_iter().filter_map(|s| s.id))
            .map(|id| async move { (docker.inspect_container(&id, None).await, id) })
            .buffered(INSPECTS_AT_ONCE)
            .collect()
            .await;
        for (inspect, id) in inspected {
            let inspect = match inspect {
                Ok(inspect) => inspect,
                Err(e) if docker::is_not_found(&e) => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("inspecting container {}", docker::shown(&id)));
                }
            };
            let shared = shared_endpoints(&inspect, nginx_networks);
            if !shared.is_empty() {
                on.candidates.push((backend_from(&inspect), shared));
            }
        }
        Ok(on)
    }

    /// What `host` names (see [`resolve_backends`]), its compose labels
    /// checked: those of a container whose image carries compose labels (or
    /// cannot be inspected) are dropped. Every container made from such an
    /// image inherits them, `docker run` too, so they need not be compose's,
    /// and their paths would have compose run, as root, on files the image's
    /// author chose; such a container is recreated from its own spec, with a
    /// warning.
    pub async fn resolve(&mut self, docker: &Docker, host: &str) -> Result<Resolved> {
        if self.networks.is_empty() {
            bail!("server {host}: nginx is on no network, so no container can be found by name");
        }
        let mut resolved = pick(host, &self.networks, self.candidates.clone())?;
        let backends = match &mut resolved {
            Resolved::One(b) => std::slice::from_mut(&mut **b),
            Resolved::Replicas(all) => all.as_mut_slice(),
        };
        for b in backends.iter_mut().filter(|b| b.compose.is_some()) {
            let carries = match self.image_carries_compose.get(&b.image_id) {
                Some(&carries) => carries,
                None => {
                    let carries = image_carries_compose(docker, &b.image_id).await;
                    self.image_carries_compose
                        .insert(b.image_id.clone(), carries);
                    carries
                }
            };
            if carries {
                drop_inherited(b);
            }
        }
        Ok(resolved)
    }

    /// Whether a running container answers to `host` (see [`answers`]).
    pub fn answers(&self, host: &str) -> bool {
        let wanted = unbracketed(host);
        self.candidates
            .iter()
            .any(|(b, eps)| b.running && names_of(b, eps).iter().any(|n| n == wanted))
    }
}

/// Whether image `id` carries compose labels, or cannot be inspected.
async fn image_carries_compose(docker: &Docker, id: &str) -> bool {
    match docker.inspect_image(id).await {
        Ok(image) => image
            .config
            .and_then(|c| c.labels)
            .is_some_and(|l| l.keys().any(|k| k.starts_with(ComposeLabel::PREFIX))),
        Err(_) => true,
    }
}

/// Drops `b`'s compose labels, which its image carries (see
/// [`OnNetworks::resolve`]), with a warning.
fn drop_inherited(b: &mut BackendContainer) {
    tracing::warn!(
        "container {}: its image {} carries compose labels, which every container \
         made from it inherits: they are not taken as compose's, and it is recreated \
         from its own spec",
        b.name,
        b.image
    );
    b.compose = None;
}

/// `host` without the brackets of an IPv6 address (`[fd00::2]`).
fn unbracketed(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The backend for an explicit container name or id (`--map SERVER=CONTAINER`).
pub async fn backend_by_name(docker: &Docker, name: &str) -> Result<BackendContainer> {
    let inspect = docker
        .inspect_container(name, None)
        .await
        .with_context(|| format!("container {name}: inspect (for --map)"))?;
    let mut backend = backend_from(&inspect);
    if backend.compose.is_some() && image_carries_compose(docker, &backend.image_id).await {
        drop_inherited(&mut backend);
    }
    Ok(backend)
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
        image_id: inspect.image.clone().unwrap_or_default(),
        number: config
            .labels
            .as_ref()
            .and_then(|l| l.get(ComposeLabel::ContainerNumber.key()))
            .and_then(|n| n.parse().ok()),
        compose: config.labels.as_ref().and_then(ComposeRef::from_labels),
        addresses: inspect
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.as_ref())
            .map(|n| {
                let mut a: Vec<(String, String)> = n
                    .iter()
                    .filter_map(|(net, ep)| {
                        Some((
                            net.clone(),
                            ep.ip_address.clone().filter(|ip| !ip.is_empty())?,
                        ))
                    })
                    .collect();
                a.sort();
                a
            })
            .unwrap_or_default(),
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

/// The compose service of a container, as (project, service).
fn service_of(b: &BackendContainer) -> Option<(&str, &str)> {
    b.compose
        .as_ref()
        .map(|c| (c.project.as_str(), c.service.as_str()))
}

fn pick(
    host: &str,
    nginx_networks: &[String],
    candidates: Vec<(BackendContainer, Vec<EndpointSettings>)>,
) -> Result<Resolved> {
    let wanted = unbracketed(host);
    let described: Vec<(BackendContainer, Vec<String>, Vec<String>)> = candidates
        .into_iter()
        .map(|(b, eps)| {
            let names = names_of(&b, &eps);
            let aliases = eps
                .iter()
                .flat_map(|e| e.aliases.iter().flatten().cloned())
                .collect();
            (b, names, aliases)
        })
        .collect();
    let mut matches: Vec<&(BackendContainer, Vec<String>, Vec<String>)> = described
        .iter()
        .filter(|(_, names, _)| names.iter().any(|n| n == wanted))
        .collect();
    match matches.len() {
        1 => return Ok(Resolved::One(Box::new(matches.remove(0).0.clone()))),
        0 => {
            let list = if described.is_empty() {
                "none".to_string()
            } else {
                described
                    .iter()
                    .map(|(b, names, _)| format!("{} ({})", b.name, names.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            bail!(
                "server {host}: no container on nginx's networks [{}] answers to that name; \
                 candidates: {list} (use --map {host}=CONTAINER)",
                nginx_networks.join(", ")
            )
        }
        _ => {}
    }
    // Replicas: one compose service (named by the service), or containers
    // that all answer to the name as a network alias, none by its own name.
    let service = service_of(&matches[0].0);
    let one_service = service
        .is_some_and(|s| s.1 == wanted && matches.iter().all(|(b, _, _)| service_of(b) == Some(s)));
    let one_alias = matches
        .iter()
        .all(|(b, _, aliases)| b.name != wanted && aliases.iter().any(|a| a == wanted));
    if one_service || one_alias {
        let mut replicas: Vec<BackendContainer> =
            matches.iter().map(|(b, _, _)| b.clone()).collect();
        replicas.sort_by_key(|b| (b.number.unwrap_or(u32::MAX), b.name.clone()));
        return Ok(Resolved::Replicas(replicas));
    }
    bail!(
        "server {host}: ambiguous, it names {} (use --map {host}=CONTAINER)",
        matches
            .iter()
            .map(|(b, _, _)| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
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
        let (project, service) = match service.map(|s| s.split_once('/').unwrap_or(("p", s))) {
            Some((p, s)) => (p, Some(s)),
            None => ("p", None),
        };
        let compose = service.map(|s| ComposeRef {
            project: project.into(),
            service: s.into(),
            working_dir: None,
            config_files: vec![],
            config_hash: None,
            env_files: vec![],
            profiles: vec![],
            named_from: None,
        });
        (
            BackendContainer {
                id: format!("id-{name}"),
                name: name.into(),
                image: "app:v1".into(),
                image_id: "sha256:app".into(),
                compose,
                networks: vec!["net".into()],
                running: true,
                number: name.rsplit(['_', '-']).next().and_then(|n| n.parse().ok()),
                addresses: vec![("net".into(), ip.into())],
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

    fn one(host: &str, candidates: Vec<(BackendContainer, Vec<EndpointSettings>)>) -> String {
        match pick(host, &["net".to_string()], candidates).unwrap() {
            Resolved::One(b) => b.name,
            Resolved::Replicas(r) => panic!("{host}: replicas {r:?}"),
        }
    }

    fn replicas(
        host: &str,
        candidates: Vec<(BackendContainer, Vec<EndpointSettings>)>,
    ) -> Vec<String> {
        match pick(host, &["net".to_string()], candidates).unwrap() {
            Resolved::Replicas(r) => r.into_iter().map(|b| b.name).collect(),
            Resolved::One(b) => panic!("{host}: one container {}", b.name),
        }
    }

    #[test]
    fn matches_service_name_alias_and_ip() {
        assert_eq!(one("app1", two()), "p_app1_1");
        assert_eq!(one("p_app1_1", two()), "p_app1_1");
        assert_eq!(one("two", two()), "solo");
        assert_eq!(one("10.0.0.3", two()), "solo");
    }

    #[test]
    fn one_services_containers_are_replicas_in_number_order_whatever_their_names() {
        let web = vec![
            candidate("p-web-2", Some("web"), "web", "10.0.0.3"),
            candidate("p_web_1", Some("web"), "web", "10.0.0.2"),
            candidate("p_web_10", Some("web"), "web", "10.0.0.4"),
            candidate("solo", None, "two", "10.0.0.9"),
        ];
        assert_eq!(
            replicas("web", web.clone()),
            ["p_web_1", "p-web-2", "p_web_10"]
        );
        assert_eq!(
            one("p_web_1", web),
            "p_web_1",
            "a container's own name names one"
        );
        let alias = vec![
            candidate("blue", None, "api", "10.0.0.2"),
            candidate("green", None, "api", "10.0.0.3"),
        ];
        assert_eq!(replicas("api", alias), ["blue", "green"]);
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
        c.push(candidate("other", Some("q/app1"), "x", "10.0.0.4"));
        let err = pick("app1", &["net".to_string()], c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ambiguous") && err.contains("other"), "{err}");
    }
}
