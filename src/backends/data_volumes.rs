//! What a container recreated by compose keeps of its predecessor's volumes:
//! compose v1's `get_container_data_volumes` and `merge_volume_bindings`
//! (compose/service.py), applied to the container compose creates from
//! scratch for the service (a template), so that the fast path recreates
//! what `docker-compose up --force-recreate` recreates.
//!
//! Compose keeps an old volume at a place only where the new service
//! declares an anonymous volume there (short syntax, `- /data`) or the old
//! container's image declares one; never at a tmpfs or a long-syntax mount's
//! place, never a host path bound. A long-syntax volume (`type: volume`)
//! takes the old volume's name as its source. Whatever it kept, the new
//! container's environment names the old one (`affinity:container`).
use bollard::models::{ContainerInspectResponse, ImageConfig, MountType};

use super::spec::ContainerSpec;

/// What compose's recreate looks at in the container it replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataVolumes {
    /// The container's id: the affinity names it.
    pub id: String,
    /// Its mounts: the place, and the volume's name (none: a host path or a tmpfs).
    pub mounts: Vec<(String, Option<String>)>,
    /// The places its image declares a `VOLUME`. Compose reads them from the
    /// image's `ContainerConfig` (the classic builder's), which the API types
    /// here do not carry and Docker 25 no longer reports; the image's
    /// `Config` is read instead. An image built otherwise (BuildKit, `docker
    /// import`) declares them only there: compose v1 then makes its image
    /// volumes anew on a recreate, where this keeps them.
    pub image_volumes: Vec<String>,
}

impl DataVolumes {
    /// From a container's and its image's inspect output.
    pub(super) fn from_inspect(inspect: &ContainerInspectResponse, image: &ImageConfig) -> Self {
        DataVolumes {
            id: inspect.id.clone().unwrap_or_default(),
            mounts: (inspect.mounts.iter().flatten())
                .filter_map(|m| {
                    let name = m.name.clone().filter(|n| !n.is_empty());
                    Some((m.destination.clone()?, name))
                })
                .collect(),
            image_volumes: image.volumes.clone().unwrap_or_default(),
        }
    }

    /// The name of the volume mounted at `place`, if one is.
    fn volume_at(&self, place: &str) -> Option<&str> {
        self.mounts
            .iter()
            .find(|(p, _)| p == place)
            .and_then(|(_, name)| name.as_deref())
    }
}

impl ContainerSpec {
    /// This spec — compose's create request for the service, made from
    /// scratch — as compose's recreate of `old` asks for it (see the module
    /// doc): old volumes bound again, long-syntax volumes' sources set, and
    /// the affinity when either happened.
    pub fn with_data_volumes_of(mut self, old: &DataVolumes) -> Self {
        let place = |bind: &str| bind.split(':').nth(1).map(str::to_string);
        let binds = self.host_config.binds.clone().unwrap_or_default();
        let bound: Vec<String> = binds.iter().filter_map(|b| place(b)).collect();
        let tmpfs: Vec<String> = (self.host_config.tmpfs.iter().flatten())
            .map(|(p, _)| p.clone())
            .collect();
        let mounted: Vec<String> = (self.host_config.mounts.iter().flatten())
            .filter_map(|m| m.target.clone())
            .collect();
        // The service's anonymous volumes (its others are bound: external),
        // then the old image's.
        let mut candidates: Vec<String> = (self.config.volumes.iter().flatten())
            .filter(|v| !bound.contains(v))
            .chain(&old.image_volumes)
            .cloned()
            .collect();
        dedup_keeping_first(&mut candidates);
        let kept: Vec<(String, String)> = candidates
            .into_iter()
            .filter(|p| !tmpfs.contains(p) && !mounted.contains(p))
            .filter_map(|p| {
                let name = old.volume_at(&p)?;
                let bind = format!("{name}:{p}:rw");
                Some((p, bind))
            })
            .collect();
        let mut adopted = false;
        for m in self.host_config.mounts.iter_mut().flatten() {
            if m.typ != Some(MountType::VOLUME) {
                continue;
            }
            if let Some(name) = m.target.as_deref().and_then(|t| old.volume_at(t)) {
                m.source = Some(name.to_string());
                adopted = true;
            }
        }
        if kept.is_empty() && !adopted {
            return self;
        }
        // Keyed by place, as compose's bindings are: an old volume takes the
        // place of a bind there (an image volume's place), else comes last.
        let mut binds = binds;
        for (p, bind) in kept {
            match binds
                .iter()
                .position(|b| place(b).as_deref() == Some(p.as_str()))
            {
                Some(i) => binds[i] = bind,
                None => binds.push(bind),
            }
        }
        if !binds.is_empty() {
            self.host_config.binds = Some(binds);
        }
        self.with_env("affinity:container", &format!("={}", old.id))
    }
}

/// Removes later repeats, keeping the order of first appearance.
fn dedup_keeping_first(items: &mut Vec<String>) {
    let mut seen = Vec::new();
    items.retain(|i| {
        let first = !seen.contains(i);
        if first {
            seen.push(i.clone());
        }
        first
    });
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerConfig, HostConfig, Mount};

    use super::*;

    const OLD: &str = "0123456789abcdef";

    fn template(volumes: &[&str], binds: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: "p_web_1".into(),
            image: "app:v2".into(),
            config: ContainerConfig {
                volumes: Some(volumes.iter().map(|v| v.to_string()).collect()),
                ..Default::default()
            },
            host_config: HostConfig {
                binds: (!binds.is_empty()).then(|| binds.iter().map(|b| b.to_string()).collect()),
                ..Default::default()
            },
            networks: Vec::new(),
        }
    }

    fn old(mounts: &[(&str, Option<&str>)], image_volumes: &[&str]) -> DataVolumes {
        DataVolumes {
            id: OLD.into(),
            mounts: mounts
                .iter()
                .map(|(p, n)| (p.to_string(), n.map(str::to_string)))
                .collect(),
            image_volumes: image_volumes.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn affinity() -> Option<Vec<String>> {
        Some(vec![format!("affinity:container=={OLD}")])
    }

    #[test]
    fn an_anonymous_volume_the_service_still_declares_is_kept_with_the_affinity() {
        let new = template(&["/data", "/named"], &["p_named:/named:rw"]);
        let old = old(&[("/data", Some("v1")), ("/named", Some("p_named"))], &[]);
        let spec = new.with_data_volumes_of(&old);
        assert_eq!(
            spec.host_config.binds,
            Some(vec!["p_named:/named:rw".into(), "v1:/data:rw".into()])
        );
        assert_eq!(spec.config.env, affinity());
    }

    #[test]
    fn a_volume_the_service_no_longer_declares_is_left_behind_unless_the_image_declares_it() {
        let old = old(
            &[("/data", Some("v1")), ("/cache", Some("v2"))],
            &["/cache"],
        );
        let spec = template(&[], &[]).with_data_volumes_of(&old);
        assert_eq!(spec.host_config.binds, Some(vec!["v2:/cache:rw".into()]));
        let spec = template(&[], &[]).with_data_volumes_of(&DataVolumes {
            image_volumes: Vec::new(),
            ..old
        });
        assert_eq!(spec.host_config.binds, None);
        assert_eq!(spec.config.env, None, "nothing kept: no affinity");
    }

    #[test]
    fn a_host_path_a_tmpfs_or_a_long_syntax_mount_at_the_place_keeps_nothing() {
        // The old container had a host path there: nothing to keep.
        let spec = template(&["/data"], &[]).with_data_volumes_of(&old(&[("/data", None)], &[]));
        assert_eq!(spec.host_config.binds, None);
        // The service mounts a tmpfs there now.
        let mut new = template(&["/data"], &[]);
        new.host_config.tmpfs = Some(HashMap::from([("/data".to_string(), String::new())]));
        let spec = new.with_data_volumes_of(&old(&[("/data", Some("v1"))], &[]));
        assert_eq!(spec.host_config.binds, None);
        // A long-syntax bind there (the image's volume place).
        let mut new = template(&[], &[]);
        new.host_config.mounts = Some(vec![Mount {
            target: Some("/cache".into()),
            source: Some("/srv/cache".into()),
            typ: Some(MountType::BIND),
            ..Default::default()
        }]);
        let spec = new.with_data_volumes_of(&old(&[("/cache", Some("v2"))], &["/cache"]));
        assert_eq!(spec.host_config.binds, None);
        assert_eq!(spec.config.env, None);
    }

    #[test]
    fn a_long_syntax_volume_takes_the_old_volumes_name() {
        let mut new = template(&[], &[]);
        new.host_config.mounts = Some(vec![Mount {
            target: Some("/data".into()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        }]);
        let spec = new.with_data_volumes_of(&old(&[("/data", Some("v1"))], &[]));
        let mounts = spec.host_config.mounts.unwrap();
        assert_eq!(mounts[0].source.as_deref(), Some("v1"));
        assert_eq!(spec.host_config.binds, None);
        assert_eq!(spec.config.env, affinity());
    }

    #[test]
    fn an_image_volume_takes_the_place_of_a_bind_there_as_in_composes_bindings() {
        let new = template(&["/cache"], &["other:/cache:rw"]);
        let old = old(&[("/cache", Some("p_cache"))], &["/cache"]);
        let spec = new.with_data_volumes_of(&old);
        assert_eq!(
            spec.host_config.binds,
            Some(vec!["p_cache:/cache:rw".into()])
        );
    }
}
