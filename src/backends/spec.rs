//! A backend container's full specification, enough to create the same
//! container again (and stored in the rollout journal so a rollback recreates
//! the previous one exactly): [`ContainerSpec`] and what a deploy changes in
//! it (image, env, labels, name, volumes kept, a one-off of it), and
//! [`NetworkAttachment`]. Capturing one from a running container is
//! [`super::capture`]'s.
use std::collections::HashMap;

use bollard::models::{
    ContainerConfig, ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig,
    NetworkingConfig,
};
use serde::{Deserialize, Serialize};

use crate::docker::ComposeLabel;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec of `app1` with `config`: on `net-b` (its network mode, with
    /// a fixed address) and `net-a` (with alias `web`).
    fn app1(config: ContainerConfig) -> ContainerSpec {
        let network = |name: &str, aliases: &[&str], ip: Option<&str>| NetworkAttachment {
            network: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            ipam_config: ip.map(|ip| EndpointIpamConfig {
                ipv4_address: Some(ip.into()),
                ..Default::default()
            }),
            links: Vec::new(),
            driver_opts: None,
        };
        ContainerSpec {
            name: "app1".into(),
            image: "app:v1".into(),
            config,
            host_config: HostConfig {
                network_mode: Some("net-b".into()),
                ..Default::default()
            },
            networks: vec![
                network("net-b", &[], Some("10.9.0.5")),
                network("net-a", &["web"], None),
            ],
        }
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
        let mut spec = app1(config);
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
    fn with_env_replaces_or_appends_and_spec_round_trips_through_json() {
        let spec = app1(ContainerConfig {
            env: Some(vec!["MESSAGE=v1".into()]),
            ..Default::default()
        })
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
