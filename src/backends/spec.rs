//! A backend container's full specification, captured from `inspect` so the
//! same container can be created again (and stored in the rollout journal so
//! a rollback recreates the previous one exactly).
//!
//! Values that merely repeat the image's defaults are dropped, so that a
//! container recreated from a new image gets the new image's defaults
//! instead of the old ones frozen in (the watchtower mistake).
//!
//! In order: [`ContainerSpec`] and what a deploy changes in it (image, env,
//! labels, name, a one-off of it), [`NetworkAttachment`]; then capturing one
//! ([`capture_spec`]): the image's defaults dropped, anonymous volumes kept
//! or left fresh ([`Anonymous`]), the networks with their own aliases.
use std::collections::HashMap;

use anyhow::{Context, Result};
use bollard::Docker;
use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, EndpointIpamConfig,
    EndpointSettings, HostConfig, ImageConfig, NetworkingConfig,
};
use serde::{Deserialize, Serialize};

use crate::docker::{self, ComposeLabel};

/// The label that marks a one-off container of ours (its value: its name).
pub const ONE_OFF_LABEL: &str = "nginx-rollout.one-off";

/// Everything needed to create a container again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Container name (without Docker's leading `/`).
    pub name: String,
    /// Image reference to create from, e.g. `app:v1`.
    pub image: String,
    /// Container config with the image's defaults removed (and `image` unset).
    pub config: ContainerConfig,
    /// Host config as inspected, with anonymous volumes turned into named binds
    /// so their data survives the recreate.
    pub host_config: HostConfig,
    /// Networks to attach, the one of `NetworkMode` first.
    pub networks: Vec<NetworkAttachment>,
}

/// One network a container is attached to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// Network name.
    pub network: String,
    /// Aliases set by the user or compose (not the ones Docker derives).
    pub aliases: Vec<String>,
    /// Static addresses (`--ip`, `--ip6`), when configured.
    pub ipam_config: Option<EndpointIpamConfig>,
    /// Legacy links on this network.
    pub links: Vec<String>,
    /// Driver options of the endpoint.
    pub driver_opts: Option<HashMap<String, String>>,
}

impl ContainerSpec {
    /// The same spec with another image.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// The same spec with `key=value` in the environment (replacing `key`).
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        let env = self.config.env.get_or_insert_with(Vec::new);
        let prefix = format!("{key}=");
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.starts_with(&prefix) || *e == key) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self
    }

    /// The same spec with label `key=value` (replacing `key`).
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.config
            .labels
            .get_or_insert_with(HashMap::new)
            .insert(key.to_string(), value.to_string());
        self
    }

    /// The same spec under another name, numbered `number` for compose
    /// ([`ComposeLabel::ContainerNumber`]), when it has compose labels.
    pub fn named(mut self, name: &str, number: Option<u32>) -> Self {
        self.name = name.to_string();
        if let (Some(n), Some(labels)) = (number, self.config.labels.as_mut())
            && labels.contains_key(ComposeLabel::ContainerNumber.key())
        {
            labels.insert(ComposeLabel::ContainerNumber.to_string(), n.to_string());
        }
        self
    }

    /// The same spec keeping the volumes of `old` (container `old_id`), as
    /// compose does when it recreates a container: every volume `old` had
    /// mounted by name (its anonymous volumes, declared or from its image)
    /// at a place this spec binds nothing to is bound again, and when any is,
    /// compose's `affinity:container==<old id>` is in the environment.
    pub fn with_volumes_of(mut self, old: &ContainerSpec, old_id: &str) -> Self {
        let place = |bind: &str| bind.split(':').nth(1).map(str::to_string);
        let bound: Vec<String> = self
            .host_config
            .binds
            .iter()
            .flatten()
            .filter_map(|b| place(b))
            .chain(
                self.host_config
                    .mounts
                    .iter()
                    .flatten()
                    .filter_map(|m| m.target.clone()),
            )
            .collect();
        // Compose writes these `NAME:PLACE:MODE`, read-write spelled `rw`.
        let kept: Vec<String> = old
            .host_config
            .binds
            .iter()
            .flatten()
            .filter(|b| !b.starts_with('/'))
            .filter(|b| place(b).is_some_and(|p| !bound.contains(&p)))
            .map(|b| match b.split(':').count() {
                2 => format!("{b}:rw"),
                _ => b.clone(),
            })
            .collect();
        if kept.is_empty() {
            return self;
        }
        self.host_config
            .binds
            .get_or_insert_with(Vec::new)
            .extend(kept);
        self.with_env("affinity:container", &format!("={old_id}"))
    }

    /// The spec of a one-off container that runs `argv` once, as `compose run`
    /// makes one: the command replaced (the entrypoint kept), the same
    /// environment, volumes and networks but no network aliases or fixed
    /// addresses (nothing resolves to it, nothing clashes with the service's
    /// containers), no published ports, no restart policy, no healthcheck, and
    /// compose's labels swapped for `nginx-rollout.one-off`, so compose never counts
    /// it among the service's containers.
    pub fn one_off(mut self, name: &str, argv: &[String]) -> ContainerSpec {
        self.name = name.to_string();
        self.config.cmd = Some(argv.to_vec());
        self.config.attach_stdout = Some(true);
        self.config.attach_stderr = Some(true);
        self.config.tty = Some(false);
        self.config.open_stdin = Some(false);
        self.config.healthcheck = Some(bollard::models::HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
        let labels = self.config.labels.get_or_insert_with(HashMap::new);
        labels.retain(|k, _| !k.starts_with(ComposeLabel::PREFIX));
        labels.insert(ONE_OFF_LABEL.to_string(), name.to_string());
        let host = &mut self.host_config;
        host.port_bindings = None;
        host.publish_all_ports = Some(false);
        host.restart_policy = None;
        host.auto_remove = Some(false);
        for net in &mut self.networks {
            net.aliases.clear();
            net.ipam_config = None;
        }
        self
    }

    /// The value of `key` in the spec's explicit environment.
    pub fn env(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}=");
        self.config
            .env
            .iter()
            .flatten()
            .find_map(|e| e.strip_prefix(&prefix))
    }

    /// The create request: config, host config and the first network (Docker
    /// attaches only one at create time; the others are connected before start).
    pub(super) fn create_body(&self) -> ContainerCreateBody {
        let c = self.config.clone();
        let networking_config = self.networks.first().map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n.network.clone(), n.endpoint())])),
        });
        ContainerCreateBody {
            hostname: c.hostname,
            domainname: c.domainname,
            user: c.user,
            attach_stdin: c.attach_stdin,
            attach_stdout: c.attach_stdout,
            attach_stderr: c.attach_stderr,
            exposed_ports: c.exposed_ports,
            tty: c.tty,
            open_stdin: c.open_stdin,
            stdin_once: c.stdin_once,
            env: c.env,
            cmd: c.cmd,
            healthcheck: c.healthcheck,
            args_escaped: c.args_escaped,
            image: Some(self.image.clone()),
            volumes: c.volumes,
            working_dir: c.working_dir,
            entrypoint: c.entrypoint,
            network_disabled: c.network_disabled,
            on_build: c.on_build,
            labels: c.labels,
            stop_signal: c.stop_signal,
            stop_timeout: c.stop_timeout,
            shell: c.shell,
            host_config: Some(self.host_config.clone()),
            networking_config,
        }
    }
}

impl NetworkAttachment {
    /// The endpoint settings to create or connect with.
    pub(super) fn endpoint(&self) -> EndpointSettings {
        EndpointSettings {
            aliases: (!self.aliases.is_empty()).then(|| self.aliases.clone()),
            ipam_config: self.ipam_config.clone(),
            links: (!self.links.is_empty()).then(|| self.links.clone()),
            driver_opts: self.driver_opts.clone(),
            ..Default::default()
        }
    }
}

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

/// Inspects container `id` and its image and captures its spec.
pub async fn capture(docker: &Docker, id: &str, anonymous: Anonymous) -> Result<ContainerSpec> {
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
    Ok(spec_from_inspect(
        inspect,
        &image.config.unwrap_or_default(),
        anonymous,
    ))
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
    // Docker drops the image's Cmd when the entrypoint is overridden, so Cmd is
    // only a default while the entrypoint is one too.
    same(&mut config.entrypoint, &image.entrypoint);
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
    fn a_one_off_keeps_env_volumes_and_networks_but_nothing_that_would_clash() {
        let config = ContainerConfig {
            env: Some(vec!["MESSAGE=hi".into(), "DATABASE_URL=pg://db".into()]),
            labels: Some(HashMap::from([
                (ComposeLabel::Service.to_string(), "app1".into()),
                (ComposeLabel::OneOff.to_string(), "False".into()),
                ("team".into(), "web".into()),
            ])),
            ..Default::default()
        };
        let mut spec = spec_from_inspect(inspect(config), &image(), Anonymous::Keep);
        spec.host_config.binds = Some(vec!["data:/var/lib/app".into()]);
        spec.host_config.port_bindings = Some(HashMap::from([("3000/tcp".into(), None)]));
        spec.host_config.restart_policy = Some(bollard::models::RestartPolicy {
            name: Some(bollard::models::RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        });
        let argv = vec!["migrate".to_string(), "--all".to_string()];
        let one = spec.clone().one_off("app1-nr-pre-deploy", &argv);
        assert_eq!(one.name, "app1-nr-pre-deploy");
        assert_eq!(one.config.cmd.as_ref(), Some(&argv));
        assert_eq!(
            one.config.entrypoint, spec.config.entrypoint,
            "entrypoint kept"
        );
        assert_eq!(one.config.env, spec.config.env);
        assert_eq!(one.host_config.binds, spec.host_config.binds);
        assert_eq!(one.host_config.port_bindings, None);
        assert_eq!(one.host_config.restart_policy, None);
        let labels = one.config.labels.as_ref().unwrap();
        assert!(labels.keys().all(|k| !k.starts_with(ComposeLabel::PREFIX)));
        assert_eq!(labels.get("team").map(String::as_str), Some("web"));
        assert_eq!(
            labels.get(ONE_OFF_LABEL).map(String::as_str),
            Some("app1-nr-pre-deploy")
        );
        let networks: Vec<&str> = one.networks.iter().map(|n| n.network.as_str()).collect();
        assert_eq!(networks, ["net-b", "net-a"], "the same networks");
        assert!(
            one.networks
                .iter()
                .all(|n| n.aliases.is_empty() && n.ipam_config.is_none()),
            "no alias nor fixed address: {:?}",
            one.networks
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

        // A template's own volumes stay declared; a recreate adopts the old ones.
        let fresh = spec_from_inspect(i, &image(), Anonymous::Fresh);
        assert_eq!(
            fresh.host_config.binds,
            Some(vec!["/srv/cache:/cache".to_string()])
        );
        let adopted = fresh.clone().with_volumes_of(&spec, ID);
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

    #[test]
    fn with_env_replaces_or_appends_and_spec_round_trips_through_json() {
        let spec = spec_from_inspect(
            inspect(ContainerConfig {
                env: Some(vec!["MESSAGE=v1".into()]),
                ..Default::default()
            }),
            &image(),
            Anonymous::Keep,
        )
        .with_env("MESSAGE", "v2")
        .with_env("EXTRA", "1")
        .with_label("l", "v")
        .with_image("app:v2");
        assert_eq!(
            spec.config.env,
            Some(vec!["MESSAGE=v2".to_string(), "EXTRA=1".to_string()])
        );
        assert_eq!(spec.image, "app:v2");
        let json = serde_json::to_string(&spec).unwrap();
        let back: ContainerSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }
}
