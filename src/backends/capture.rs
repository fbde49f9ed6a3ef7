//! Capturing a running container's [`ContainerSpec`] from its `inspect` and
//! its image's, so the same container can be created again.
//!
//! Values that merely repeat the image's defaults are dropped, so that a
//! container recreated from a new image gets the new image's defaults
//! instead of the old ones frozen in (the watchtower mistake). Anonymous
//! volumes are kept or left fresh ([`Anonymous`]); the networks keep only
//! their own aliases.
use std::collections::HashMap;

use anyhow::{Context, Result};
use bollard::Docker;
use bollard::models::{
    ContainerConfig, ContainerInspectResponse, EndpointIpamConfig, EndpointSettings, HostConfig,
    ImageConfig,
};

use super::data_volumes::DataVolumes;
use super::spec::{ContainerSpec, NetworkAttachment};
use crate::docker;

/// What a captured spec does with the container's anonymous volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    /// Bind them by name, so the data survives a recreate (as compose does).
    Keep,
    /// Leave them declared, so each container made from the spec gets fresh
    /// ones (a template's own volumes are removed with it).
    Fresh,
}

/// Inspects container `id` and its image and captures its spec, keeping its
/// anonymous volumes.
pub async fn capture_spec(docker: &Docker, id: &str) -> Result<ContainerSpec> {
    capture(docker, id, Anonymous::Keep).await
}

/// [`capture_spec`], with what compose's recreate of the container keeps
/// of its volumes ([`DataVolumes`]), from the same two inspects.
pub async fn capture_for_recreate(
    docker: &Docker,
    id: &str,
) -> Result<(ContainerSpec, DataVolumes)> {
    let (inspect, image) = inspect_with_image(docker, id).await?;
    let volumes = DataVolumes::from_inspect(&inspect, &image);
    Ok((spec_from_inspect(inspect, &image, Anonymous::Keep), volumes))
}

/// Inspects container `id` and its image and captures its spec.
pub async fn capture(docker: &Docker, id: &str, anonymous: Anonymous) -> Result<ContainerSpec> {
    let (inspect, image) = inspect_with_image(docker, id).await?;
    Ok(spec_from_inspect(inspect, &image, anonymous))
}

/// Container `id`'s inspect output and its image's config.
async fn inspect_with_image(
    docker: &Docker,
    id: &str,
) -> Result<(ContainerInspectResponse, ImageConfig)> {
    let inspect = docker
        .inspect_container(id, None)
        .await
        .with_context(|| format!("inspect container {}", docker::shown(id)))?;
    let image_id = inspect.image.clone().unwrap_or_default();
    let image = docker.inspect_image(&image_id).await.with_context(|| {
        format!(
            "container {}: inspect its image {}",
            docker::shown(id),
            docker::shown(&image_id)
        )
    })?;
    Ok((inspect, image.config.unwrap_or_default()))
}

/// Builds the spec from a container's and its image's inspect output.
fn spec_from_inspect(
    inspect: ContainerInspectResponse,
    image: &ImageConfig,
    anonymous: Anonymous,
) -> ContainerSpec {
    let name = docker::name_of(&inspect, "").to_string();
    let id = inspect.id.unwrap_or_default();
    let mut config = inspect.config.unwrap_or_default();
    let image_ref = config.image.take().unwrap_or_default();
    strip_image_defaults(&mut config, image, &id);
    let mut host_config = inspect.host_config.unwrap_or_default();
    if anonymous == Anonymous::Keep {
        keep_anonymous_volumes(
            &mut config,
            &mut host_config,
            inspect.mounts.unwrap_or_default(),
        );
    }
    let networks = attachments(
        inspect
            .network_settings
            .and_then(|s| s.networks)
            .unwrap_or_default(),
        host_config.network_mode.as_deref(),
        &id,
        &name,
    );
    ContainerSpec {
        name,
        image: image_ref,
        config,
        host_config,
        networks,
    }
}

/// Removes from `config` every value that only repeats the image's default.
fn strip_image_defaults(config: &mut ContainerConfig, image: &ImageConfig, id: &str) {
    fn same<T: PartialEq>(field: &mut Option<T>, default: &Option<T>) {
        if field.is_some() && field == default {
            *field = None;
        }
    }
    fn minus<T: PartialEq>(field: &mut Option<Vec<T>>, default: &Option<Vec<T>>) {
        if let (Some(values), Some(defaults)) = (field.as_mut(), default) {
            values.retain(|v| !defaults.contains(v));
        }
        if field.as_ref().is_some_and(Vec::is_empty) {
            *field = None;
        }
    }
    minus(&mut config.env, &image.env);
    minus(&mut config.exposed_ports, &image.exposed_ports);
    minus(&mut config.volumes, &image.volumes);
    // Docker fills in the image's Cmd only when the entrypoint is not given:
    // an entrypoint equal to the image's, with no Cmd where the image has
    // one, was given (`entrypoint:` the image's own, no `command:`), and
    // without it Docker would run the image's Cmd too. Cmd is only a
    // default while the entrypoint is one too.
    let image_cmd = image.cmd.as_ref().is_some_and(|c| !c.is_empty());
    let entrypoint_given = image_cmd && config.cmd.as_ref().is_none_or(Vec::is_empty);
    if !entrypoint_given {
        same(&mut config.entrypoint, &image.entrypoint);
    }
    if config.entrypoint.is_none() {
        same(&mut config.cmd, &image.cmd);
    }
    same(&mut config.healthcheck, &image.healthcheck);
    same(&mut config.working_dir, &image.working_dir);
    same(&mut config.user, &image.user);
    same(&mut config.stop_signal, &image.stop_signal);
    same(&mut config.shell, &image.shell);
    same(&mut config.on_build, &image.on_build);
    same(&mut config.args_escaped, &image.args_escaped);
    if let (Some(labels), Some(defaults)) = (config.labels.as_mut(), &image.labels) {
        labels.retain(|k, v| defaults.get(k) != Some(v));
    }
    for field in [
        &mut config.working_dir,
        &mut config.user,
        &mut config.domainname,
        &mut config.hostname,
    ] {
        if field.as_deref() == Some("") {
            *field = None;
        }
    }
    // Docker names the host after the container id unless told otherwise.
    if config
        .hostname
        .as_deref()
        .is_some_and(|h| !h.is_empty() && id.starts_with(h))
    {
        config.hostname = None;
    }
}

/// Anonymous volumes would be created anew (empty) with the new container;
/// bind the existing ones by name instead, like compose does.
fn keep_anonymous_volumes(
    config: &mut ContainerConfig,
    host: &mut HostConfig,
    mounts: Vec<bollard::models::MountPoint>,
) {
    let bound = |dest: &str, host: &HostConfig| {
        host.binds
            .iter()
            .flatten()
            .any(|b| b.split(':').nth(1) == Some(dest))
            || host
                .mounts
                .iter()
                .flatten()
                .any(|m| m.target.as_deref() == Some(dest))
    };
    for m in mounts {
        let (Some("volume"), Some(name), Some(dest)) = (
            m.typ.as_deref(),
            m.name.as_deref(),
            m.destination.as_deref(),
        ) else {
            continue;
        };
        if bound(dest, host) {
            continue;
        }
        let mode = if m.rw == Some(false) { ":ro" } else { "" };
        host.binds
            .get_or_insert_with(Vec::new)
            .push(format!("{name}:{dest}{mode}"));
        if let Some(volumes) = config.volumes.as_mut() {
            volumes.retain(|v| v != dest);
        }
    }
    if config.volumes.as_ref().is_some_and(Vec::is_empty) {
        config.volumes = None;
    }
}

/// The networks with their user-given aliases, `network_mode`'s first.
fn attachments(
    networks: HashMap<String, EndpointSettings>,
    network_mode: Option<&str>,
    id: &str,
    name: &str,
) -> Vec<NetworkAttachment> {
    let short_id = docker::short_id(id);
    let mut out: Vec<NetworkAttachment> = networks
        .into_iter()
        .map(|(network, ep)| NetworkAttachment {
            network,
            aliases: ep
                .aliases
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a != short_id && a != id && a != name)
                .collect(),
            ipam_config: ep
                .ipam_config
                .filter(|c| *c != EndpointIpamConfig::default()),
            links: ep.links.unwrap_or_default(),
            driver_opts: ep.driver_opts.filter(|o| !o.is_empty()),
        })
        .collect();
    out.sort_by(|a, b| {
        let first = |n: &NetworkAttachment| Some(n.network.as_str()) != network_mode;
        (first(a), &a.network).cmp(&(first(b), &b.network))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ComposeLabel;
    use bollard::models::{HealthConfig, MountPoint, NetworkSettings};

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn image() -> ImageConfig {
        ImageConfig {
            env: Some(vec!["PATH=/bin".into(), "PORT=3000".into()]),
            cmd: Some(vec!["/app".into()]),
            exposed_ports: Some(vec!["3000/tcp".into()]),
            labels: Some(HashMap::from([("maintainer".into(), "x".into())])),
            healthcheck: Some(HealthConfig {
                test: Some(vec!["CMD".into(), "/check".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn inspect(config: ContainerConfig) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(ID.into()),
            name: Some("/app1".into()),
            config: Some(config),
            host_config: Some(HostConfig {
                network_mode: Some("net-b".into()),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                networks: Some(HashMap::from([
                    (
                        "net-a".to_string(),
                        EndpointSettings {
                            aliases: Some(vec!["app1".into(), ID[..12].into(), "web".into()]),
                            ipam_config: Some(EndpointIpamConfig::default()),
                            ..Default::default()
                        },
                    ),
                    (
                        "net-b".to_string(),
                        EndpointSettings {
                            ipam_config: Some(EndpointIpamConfig {
                                ipv4_address: Some("10.9.0.5".into()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn drops_image_defaults_and_keeps_overrides() {
        let config = ContainerConfig {
            image: Some("app:v1".into()),
            hostname: Some(ID[..12].into()),
            env: Some(vec![
                "PATH=/bin".into(),
                "PORT=3000".into(),
                "MESSAGE=hi".into(),
            ]),
            cmd: Some(vec!["/app".into()]),
            exposed_ports: Some(vec!["3000/tcp".into(), "9000/tcp".into()]),
            labels: Some(HashMap::from([
                ("maintainer".into(), "x".into()),
                (ComposeLabel::Service.to_string(), "app1".into()),
            ])),
            healthcheck: image().healthcheck,
            working_dir: Some("".into()),
            ..Default::default()
        };
        let spec = spec_from_inspect(inspect(config), &image(), Anonymous::Keep);
        assert_eq!(spec.name, "app1");
        assert_eq!(spec.image, "app:v1");
        let c = &spec.config;
        assert_eq!(c.env, Some(vec!["MESSAGE=hi".to_string()]));
        assert_eq!(c.cmd, None);
        assert_eq!(c.healthcheck, None);
        assert_eq!(c.hostname, None);
        assert_eq!(c.working_dir, None);
        assert_eq!(c.image, None);
        assert_eq!(c.exposed_ports, Some(vec!["9000/tcp".to_string()]));
        assert_eq!(
            c.labels,
            Some(HashMap::from([(
                ComposeLabel::Service.to_string(),
                "app1".to_string()
            )]))
        );
    }

    #[test]
    fn overridden_values_are_kept() {
        let config = ContainerConfig {
            env: Some(vec!["PORT=4000".into()]),
            cmd: Some(vec!["/app".into(), "--fast".into()]),
            healthcheck: Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            hostname: Some("custom".into()),
            ..Default::default()
        };
        let spec = spec_from_inspect(inspect(config), &image(), Anonymous::Keep);
        assert_eq!(spec.env("PORT"), Some("4000"));
        assert_eq!(spec.config.cmd.as_ref().map(Vec::len), Some(2));
        assert!(spec.config.healthcheck.is_some());
        assert_eq!(spec.config.hostname.as_deref(), Some("custom"));
    }

    #[test]
    fn cmd_equal_to_image_is_kept_when_entrypoint_is_overridden() {
        let config = ContainerConfig {
            entrypoint: Some(vec!["/other".into()]),
            cmd: Some(vec!["/app".into()]),
            ..Default::default()
        };
        let spec = spec_from_inspect(inspect(config), &image(), Anonymous::Keep);
        assert_eq!(spec.config.cmd, Some(vec!["/app".to_string()]));
    }

    #[test]
    fn an_entrypoint_given_as_the_images_own_without_a_cmd_is_kept() {
        // `entrypoint: ["/entry"]` as the image has it, no command: Docker
        // left Cmd empty; created without the entrypoint, the container
        // would run the image's `/entry /app`.
        let image = ImageConfig {
            entrypoint: Some(vec!["/entry".into()]),
            ..image()
        };
        let given = ContainerConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: None,
            ..Default::default()
        };
        let spec = spec_from_inspect(inspect(given), &image, Anonymous::Keep);
        assert_eq!(spec.config.entrypoint, Some(vec!["/entry".to_string()]));
        assert_eq!(spec.config.cmd, None);
        // Both the image's: defaults, left to the image.
        let inherited = ContainerConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["/app".into()]),
            ..Default::default()
        };
        let spec = spec_from_inspect(inspect(inherited), &image, Anonymous::Keep);
        assert_eq!((spec.config.entrypoint, spec.config.cmd), (None, None));
    }

    #[test]
    fn networks_keep_user_aliases_and_static_ips_network_mode_first() {
        let spec = spec_from_inspect(
            inspect(ContainerConfig::default()),
            &image(),
            Anonymous::Keep,
        );
        let names: Vec<_> = spec.networks.iter().map(|n| n.network.as_str()).collect();
        assert_eq!(names, ["net-b", "net-a"]);
        assert_eq!(spec.networks[1].aliases, ["web"]);
        assert_eq!(spec.networks[1].ipam_config, None);
        assert_eq!(
            spec.networks[0]
                .ipam_config
                .as_ref()
                .and_then(|c| c.ipv4_address.as_deref()),
            Some("10.9.0.5")
        );
        let body = spec.create_body();
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(endpoints.keys().collect::<Vec<_>>(), ["net-b"]);
    }

    #[test]
    fn anonymous_volumes_become_named_binds() {
        let mut i = inspect(ContainerConfig {
            volumes: Some(vec!["/data".into(), "/cache".into()]),
            ..Default::default()
        });
        i.host_config.as_mut().unwrap().binds = Some(vec!["/srv/cache:/cache".into()]);
        i.mounts = Some(vec![
            MountPoint {
                typ: Some("volume".into()),
                name: Some("abc123".into()),
                destination: Some("/data".into()),
                rw: Some(true),
                ..Default::default()
            },
            MountPoint {
                typ: Some("bind".into()),
                source: Some("/srv/cache".into()),
                destination: Some("/cache".into()),
                ..Default::default()
            },
        ]);
        let spec = spec_from_inspect(i.clone(), &image(), Anonymous::Keep);
        assert_eq!(
            spec.host_config.binds,
            Some(vec![
                "/srv/cache:/cache".to_string(),
                "abc123:/data".to_string()
            ])
        );
        assert_eq!(spec.config.volumes, Some(vec!["/cache".to_string()]));

        // A template's own volumes stay declared; a recreate adopts the old
        // ones, which the same inspect gives.
        let fresh = spec_from_inspect(i.clone(), &image(), Anonymous::Fresh);
        assert_eq!(
            fresh.host_config.binds,
            Some(vec!["/srv/cache:/cache".to_string()])
        );
        let old = DataVolumes::from_inspect(&i, &image());
        assert_eq!(
            old.mounts,
            [
                ("/data".to_string(), Some("abc123".to_string())),
                ("/cache".to_string(), None)
            ]
        );
        let adopted = fresh.clone().with_data_volumes_of(&old);
        assert_eq!(
            adopted.host_config.binds,
            Some(vec![
                "/srv/cache:/cache".to_string(),
                "abc123:/data:rw".to_string()
            ])
        );
        assert_eq!(
            adopted.config.volumes, fresh.config.volumes,
            "still declared, as compose has it"
        );
        assert_eq!(
            adopted.config.env,
            Some(vec![format!("affinity:container=={ID}")]),
            "compose marks a container that kept its predecessor's volumes"
        );
    }
}
