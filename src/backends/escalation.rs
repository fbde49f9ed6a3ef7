//! Privilege escalation checks: a spec read back from the journal may never
//! grant a replacement more than the running container it replaces has.
use bollard::models::HostConfig;

use super::spec::ContainerSpec;

/// A privilege a spec grants that the container it replaces does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to recreate container {container} with host_config.{field} = {value}, which the running container \
     does not have: its spec was read back from the journal, which may have been altered. If the change is yours \
     (a compose file that adds it), recreate it with compose (`--mode compose-cli`, or `docker compose up -d`) or \
     by hand"
)]
pub struct Escalation {
    /// The container being replaced.
    pub container: String,
    /// The `HostConfig` field (`privileged`, `cap_add`, `binds`, …).
    pub field: &'static str,
    /// What the spec grants there.
    pub value: String,
}

impl ContainerSpec {
    /// The first privilege — privileged mode, a capability, a device, a host
    /// path mounted, a host namespace, a security option — this spec grants
    /// beyond `live`, the host config of the running `container` it would
    /// replace. A recreated container never gets more than its predecessor.
    pub fn escalation_over(&self, live: &HostConfig, container: &str) -> Option<Escalation> {
        let new = &self.host_config;
        let found = |field: &'static str, value: String| {
            Some(Escalation {
                container: container.to_string(),
                field,
                value,
            })
        };
        if new.privileged == Some(true) && live.privileged != Some(true) {
            return found("privileged", "true".into());
        }
        let beyond = |new: &Option<Vec<String>>, live: &Option<Vec<String>>| {
            let live = live.as_deref().unwrap_or_default();
            new.iter().flatten().find(|x| !live.contains(x)).cloned()
        };
        for (field, n, l) in [
            ("cap_add", &new.cap_add, &live.cap_add),
            ("security_opt", &new.security_opt, &live.security_opt),
            (
                "device_cgroup_rules",
                &new.device_cgroup_rules,
                &live.device_cgroup_rules,
            ),
            ("volumes_from", &new.volumes_from, &live.volumes_from),
        ] {
            if let Some(x) = beyond(n, l) {
                return found(field, x);
            }
        }
        fn first_beyond<'a, T: PartialEq>(
            new: &'a Option<Vec<T>>,
            live: &Option<Vec<T>>,
        ) -> Option<&'a T> {
            new.iter()
                .flatten()
                .find(|x| !live.iter().flatten().any(|l| l == *x))
        }
        if let Some(d) = first_beyond(&new.devices, &live.devices) {
            // As `docker run --device` takes it.
            let part = |p: &Option<String>| p.clone().unwrap_or_default();
            let device = [&d.path_on_host, &d.path_in_container, &d.cgroup_permissions]
                .map(part)
                .join(":");
            return found("devices", device);
        }
        if let Some(r) = first_beyond(&new.device_requests, &live.device_requests) {
            let request = format!(
                "driver {}, count {}, ids [{}], capabilities {:?}",
                r.driver.as_deref().unwrap_or("(default)"),
                r.count.unwrap_or(0),
                r.device_ids
                    .iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                r.capabilities.iter().flatten().collect::<Vec<_>>()
            );
            return found("device_requests", request);
        }
        let host_paths = |h: &HostConfig| -> Vec<String> {
            let binds = h
                .binds
                .iter()
                .flatten()
                .filter_map(|b| b.split(':').next().filter(|s| s.starts_with('/')));
            let mounts = h
                .mounts
                .iter()
                .flatten()
                .filter(|m| m.typ == Some(bollard::models::MountType::BIND))
                .filter_map(|m| m.source.as_deref());
            binds.chain(mounts).map(str::to_string).collect()
        };
        let live_paths = host_paths(live);
        if let Some(p) = host_paths(new)
            .into_iter()
            .find(|p| !live_paths.contains(p))
        {
            return found("binds", p);
        }
        for (field, n, l) in [
            ("network_mode", &new.network_mode, &live.network_mode),
            ("pid_mode", &new.pid_mode, &live.pid_mode),
            ("ipc_mode", &new.ipc_mode, &live.ipc_mode),
            ("uts_mode", &new.uts_mode, &live.uts_mode),
            ("userns_mode", &new.userns_mode, &live.userns_mode),
        ] {
            if n.as_deref() == Some("host") && l.as_deref() != Some("host") {
                return found(field, "host".into());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerConfig;

    use super::*;

    fn spec(host_config: HostConfig) -> ContainerSpec {
        ContainerSpec {
            name: "app1".into(),
            image: "app:v1".into(),
            config: ContainerConfig::default(),
            host_config,
            networks: Vec::new(),
        }
    }

    #[test]
    fn a_spec_never_grants_more_than_the_running_container_has() {
        let live = HostConfig {
            binds: Some(vec!["/srv/data:/data:rw".into(), "named:/cache".into()]),
            cap_add: Some(vec!["NET_BIND_SERVICE".into()]),
            ..Default::default()
        };
        assert_eq!(spec(live.clone()).escalation_over(&live, "app1"), None);
        let cases = [
            (
                HostConfig {
                    privileged: Some(true),
                    ..live.clone()
                },
                "privileged",
            ),
            (
                HostConfig {
                    cap_add: Some(vec!["SYS_ADMIN".into()]),
                    ..live.clone()
                },
                "cap_add",
            ),
            (
                HostConfig {
                    binds: Some(vec!["/:/host".into()]),
                    ..live.clone()
                },
                "binds",
            ),
            (
                HostConfig {
                    devices: Some(vec![bollard::models::DeviceMapping {
                        path_on_host: Some("/dev/sda".into()),
                        path_in_container: Some("/dev/xvda".into()),
                        cgroup_permissions: Some("rwm".into()),
                    }]),
                    ..live.clone()
                },
                "devices",
            ),
            (
                HostConfig {
                    pid_mode: Some("host".into()),
                    ..live.clone()
                },
                "pid_mode",
            ),
            (
                HostConfig {
                    security_opt: Some(vec!["seccomp=unconfined".into()]),
                    ..live.clone()
                },
                "security_opt",
            ),
        ];
        for (granted, field) in cases {
            let e = spec(granted).escalation_over(&live, "app1").unwrap();
            assert_eq!(e.field, field);
            if field == "devices" {
                assert_eq!(
                    e.value, "/dev/sda:/dev/xvda:rwm",
                    "as docker run --device takes it"
                );
            }
            let text = e.to_string();
            assert!(
                text.contains("container app1") && text.contains(field),
                "{text}"
            );
        }
        // Fewer privileges are fine.
        let less = HostConfig::default();
        assert_eq!(spec(less).escalation_over(&live, "app1"), None);
    }
}
