//! Reading a compose v1 project again without running compose. What compose
//! read of a project last time — each service's configuration as compose hashes
//! it, the project's `config`, the templates — is kept with the
//! inputs it came from (`inputs.rs`: what they are, how they are taken now).
//! When the files differ from those only in environment values or images — as
//! written, or through variables (the process environment, `.env`) that compose
//! v1 interpolates in the forms `variables.rs` follows — compose's answer for
//! them follows exactly: the new values in the configuration it hashes, in its
//! `config` and in each template (its `Env`; for another image, its image, with
//! the values the service sets that the old image's defaults repeated put back
//! — not a healthcheck set in part, which Docker completed from the old
//! image's), the hashes computed as compose v1 computes them (SHA-256 of
//! Python's `json.dumps(…, sort_keys=True, separators=(',', ':'))`). So does a
//! file named in place of another, the same but for those values (a release
//! written as a new override file): the templates' files label is compose's for
//! the new names. Anything else changed — another key, a variable used
//! elsewhere (a build argument passed through from the environment among them),
//! an env file not in the plainest form, compose itself, a new image under the
//! same name — and compose reads the project again. So it does when a value
//! names a variable whose value is not known here (one nginx-rollout sets or
//! removes for compose; one the process environment does not set and such an
//! env file may), or when a value a later file sets again is not one followed
//! (compose checks each file before merging them). No reading is kept of a
//! project where compose puts other containers' ids in what it hashes or makes
//! (`network_mode`, `ipc`, `pid` of another service or container,
//! `volumes_from`): they change whenever those containers are made again.
//! Compose v2 (Go, fast to start) is always run.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::inputs::Inputs;
use super::new_image::for_new_image;
use super::project::{ComposeProject, ProjectQuery};
use super::python_json::python_json;
use super::templates::template_from_request;
use super::variables::interpolate;
use super::written::Written;
use crate::backends::spec::ContainerSpec;
use crate::docker::ComposeRef;

/// What compose read of a project, with the inputs it read it from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reading {
    inputs: Inputs,
    /// What a reading follows: the values the files set, merged over them.
    written: Written,
    /// Each service's configuration as compose v1 hashes it (`config_dict()`).
    dicts: BTreeMap<String, Json>,
    /// The project as compose answered: its `config`, hashes and templates.
    project: ComposeProject,
}

/// What `reading.py` prints: compose's `config`, and each service's
/// configuration as compose v1 hashes it, with the hash.
#[derive(Debug, Deserialize)]
pub(super) struct Printed {
    /// What `config` prints.
    pub(super) config: String,
    services: BTreeMap<String, PrintedService>,
    /// The templates compose asked for, when the script was asked for them.
    templates: Option<PrintedTemplates>,
}

/// The templates `reading.py` asked compose for.
#[derive(Debug, Deserialize)]
struct PrintedTemplates {
    /// Whether compose failed to ask for one.
    failed: bool,
    /// What compose printed, and why it failed.
    said: String,
    /// Each service's create request.
    made: BTreeMap<String, Asked>,
}

/// A create request compose made, kept from the daemon.
#[derive(Debug, Deserialize)]
struct Asked {
    /// The container's name.
    name: String,
    /// The request's body.
    body: Json,
}

/// One service as `reading.py` prints it.
#[derive(Debug, Deserialize)]
struct PrintedService {
    /// `config_dict()` as compose's `json_hash` serialises it.
    dict: String,
    /// Its SHA-256, compose's `config_hash`.
    hash: String,
}

impl Printed {
    /// Reads the script's output.
    pub(super) fn parse(text: &str) -> Result<Printed> {
        serde_json::from_str(text).context("compose's reading script printed no JSON")
    }

    /// The template of each of `services` in `r`'s project, from the create
    /// request compose made for it ([`template_from_request`]).
    pub(super) fn templates(
        &self,
        r: &ComposeRef,
        services: &[String],
    ) -> Result<HashMap<String, ContainerSpec>> {
        let made = match &self.templates {
            Some(PrintedTemplates {
                failed: false,
                made,
                ..
            }) => made,
            Some(PrintedTemplates { said, .. }) => bail!(
                "compose project {}: compose could not make the templates: {}",
                r.project,
                said.trim()
            ),
            None => bail!("compose's reading script was not asked for templates"),
        };
        services
            .iter()
            .map(|service| {
                let asked = made.get(service).ok_or_else(|| {
                    anyhow!(
                        "compose project {}: compose made no template of {service}",
                        r.project
                    )
                })?;
                Ok((
                    service.clone(),
                    template_from_request(&asked.name, &asked.body)?,
                ))
            })
            .collect()
    }

    /// Every service's hash, as compose gives it.
    pub(super) fn hashes(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.services
            .iter()
            .map(|(s, p)| (s.clone(), p.hash.clone()))
    }
}

impl Reading {
    /// Keeps compose's reading: `now` (the inputs and environment read before
    /// compose ran, and still so after), `printed` what `reading.py` printed,
    /// `project` what compose answered. Each service's configuration must
    /// print here exactly as compose printed it and hash to the hashes
    /// compose gave (the script's, the templates' labels), which the project
    /// has for every service.
    pub(super) fn new(
        (inputs, written): (Inputs, Written),
        printed: &Printed,
        project: &ComposeProject,
    ) -> Result<Reading> {
        let mut dicts = BTreeMap::new();
        for (service, p) in &printed.services {
            let dict: Json = serde_json::from_str(&p.dict)
                .with_context(|| format!("service {service}: not JSON"))?;
            if python_json(&dict) != p.dict {
                bail!("service {service}: its configuration prints otherwise here than in Python");
            }
            if format!("{:x}", Sha256::digest(&p.dict)) != p.hash {
                bail!("service {service}: compose's hash is not the SHA-256 of its configuration");
            }
            if project.hash(service) != Some(p.hash.as_str()) {
                bail!("service {service}: the reading script and compose hash it differently");
            }
            let config = project.service(service).ok();
            if let Some(what) = other_containers(&dict, config, project.template(service)) {
                bail!(
                    "service {service}: its {what} is another container's, found anew each time compose reads"
                );
            }
            dicts.insert(service.clone(), dict);
        }
        Ok(Reading {
            inputs,
            written,
            dicts,
            project: project.clone(),
        })
    }

    /// Compose's answer for the files as they are `now`, with what changed
    /// (`service: VAR, image, …`), when they differ from this reading's only
    /// in environment values and images compose reads as this follows them
    /// (written, or through variables), and in the names of files the same
    /// but for those ([`Inputs::files_replaced_in`]); and every image
    /// `query`'s services name is the one compose would hash (the new one
    /// on this host, the same one under an unchanged name). `Err` says why
    /// not.
    pub(super) async fn derive(
        &self,
        docker: &Docker,
        (inputs, written): &(Inputs, Written),
        query: &ProjectQuery,
    ) -> std::result::Result<(Reading, Vec<String>), String> {
        let replaced = self
            .inputs
            .files_replaced_in(inputs)
            .ok_or("its files, variables or compose changed")?;
        if let Some(s) = query
            .templates
            .keys()
            .find(|s| self.project.template(s).is_none())
        {
            return Err(format!("service {s} had no template"));
        }
        let mut next = self.clone();
        let mut changes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        // A value written the same, naming variables of the same values, is
        // what compose read; any other is followed when both interpolate.
        let values = |old: Option<&str>, new: &str| {
            if old == Some(new) && self.written.same_values(written, new) {
                return Ok(None);
            }
            let old = old.and_then(|o| interpolate(o, &self.written.values));
            match (old, interpolate(new, &written.values)) {
                (Some(old), Some(new)) => Ok((old != new).then_some((old, new))),
                _ => Err(()),
            }
        };
        let unfollowed = |service: &str, what: &str| {
            format!("{service}'s {what} is not a value this follows before and after")
        };
        for (service, image) in &written.images {
            let old = self.written.images.get(service).map(String::as_str);
            let Some((old, new)) = values(old, image).map_err(|()| unfollowed(service, "image"))?
            else {
                continue;
            };
            next.set_image(docker, service, &old, &new).await?;
            changes.entry(service).or_default().push("image");
        }
        for (service, vars) in &written.env {
            let before = self.written.env.get(service);
            for (name, value) in vars {
                let old = before.and_then(|b| b.get(name));
                if old == Some(value) && value.as_str().is_none() {
                    continue;
                }
                let (old, Some(new)) = (old.and_then(Json::as_str), value.as_str()) else {
                    return Err(unfollowed(service, name));
                };
                let Some((old, new)) = values(old, new).map_err(|()| unfollowed(service, name))?
                else {
                    continue;
                };
                next.set_env(service, name, &old, &new)?;
                changes.entry(service).or_default().push(name);
            }
        }
        for service in query.hashed.iter().chain(query.templates.keys()) {
            let dict = next
                .dicts
                .get(service)
                .ok_or_else(|| format!("service {service} was not read"))?;
            let (Some(image), Some(id)) = (
                dict.pointer("/options/image").and_then(Json::as_str),
                dict.get("image_id").and_then(Json::as_str),
            ) else {
                return Err(format!("service {service} names no image"));
            };
            if image_id(docker, image).await.as_deref() != Some(id) {
                return Err(format!("image {image} is not the one compose read"));
            }
        }
        let mut changed = Vec::new();
        for (service, what) in changes {
            next.rehash(service);
            changed.push(format!("{service}: {}", what.join(", ")));
        }
        let through = self.written.changed_values(written);
        if !changed.is_empty() && !through.is_empty() {
            changed.push(format!("variables {}", through.join(", ")));
        }
        if !replaced.is_empty() {
            let label = |i: &Inputs| i.files_label().ok_or("a compose file's name is not UTF-8");
            next.project
                .set_files_label(&label(&self.inputs)?, &label(inputs)?)
                .ok_or("compose labelled its templates with other files than these")?;
            let files = replaced
                .iter()
                .map(|(old, new)| format!("{} in place of {}", new.display(), old.display()));
            changed.push(format!("files {}", files.collect::<Vec<_>>().join(", ")));
        }
        next.inputs = inputs.clone();
        next.written = written.clone();
        Ok((next, changed))
    }

    /// Sets `service`'s image from `old` to `new` (which must be on this
    /// host) in its configuration as compose hashes it (name and id), in its
    /// `config`, and in its template, made for the new image
    /// ([`for_new_image`]).
    async fn set_image(
        &mut self,
        docker: &Docker,
        service: &str,
        old: &str,
        new: &str,
    ) -> std::result::Result<(), String> {
        let differs = || format!("compose did not read {service}'s image as written");
        let dict = self.dicts.get_mut(service).ok_or_else(differs)?;
        if dict.pointer("/options/image").and_then(Json::as_str) != Some(old) {
            return Err(differs());
        }
        let old_id = dict
            .get("image_id")
            .and_then(Json::as_str)
            .ok_or_else(|| format!("compose found no image {old}"))?
            .to_string();
        let new_id = image_id(docker, new)
            .await
            .ok_or_else(|| format!("image {new} is not on this host"))?;
        if let Some(template) = self.project.template_mut(service) {
            let defaults = docker
                .inspect_image(&old_id)
                .await
                .ok()
                .and_then(|i| i.config)
                .ok_or_else(|| format!("image {old} is no longer on this host"))?;
            if template.image != old {
                return Err(differs());
            }
            for_new_image(template, &dict["options"], &defaults)
                .map_err(|why| format!("{service}: {why}"))?;
            template.image = new.to_string();
        }
        self.project
            .set_image(service, old, new)
            .ok_or_else(differs)?;
        dict["options"]["image"] = Json::String(new.into());
        dict["image_id"] = Json::String(new_id);
        Ok(())
    }

    /// Sets `name` from `old` to `new` in `service`'s configuration as
    /// compose hashes it, in its `config` and in its template; each must
    /// have had `old`, as compose gives the value written.
    fn set_env(
        &mut self,
        service: &str,
        name: &str,
        old: &str,
        new: &str,
    ) -> std::result::Result<(), String> {
        let differs = || format!("compose did not read {service}'s {name} as written");
        let hashed = self
            .dicts
            .get_mut(service)
            .and_then(|d| d.pointer_mut("/options/environment"))
            .and_then(|e| e.get_mut(name))
            .filter(|v| v.as_str() == Some(old))
            .ok_or_else(differs)?;
        *hashed = Json::String(new.into());
        self.project
            .set_env(service, name, old, new)
            .ok_or_else(differs)
    }

    /// Hashes `service` as compose v1 does, into the project and its template.
    fn rehash(&mut self, service: &str) {
        let text = python_json(&self.dicts[service]);
        self.project
            .set_hash(service, format!("{:x}", Sha256::digest(text)));
    }

    /// The project as compose answered (or as it follows from that).
    pub(super) fn project(&self) -> &ComposeProject {
        &self.project
    }
}

/// What of a service compose resolved to another container's id as it read
/// it (`None`: nothing), which a kept reading would keep after that
/// container is made again: in its configuration as compose hashes it
/// (`dict`), `net` a container's id (`network_mode: container:X`) or
/// `ipc_mode` `container:<id>` (`ipc: service:X` or `container:X`); in its
/// template, `NetworkMode`, `IpcMode` or `PidMode` `container:<id>` (of a
/// `service:X` or `container:X`) or `VolumesFrom` (container ids). An
/// `ipc`, `network_mode` or `pid` of `service:X` in its `config` counts
/// too: while X has no container compose hashes or makes none, and X's id
/// once it has one.
fn other_containers(
    dict: &Json,
    config: Option<&serde_norway::Value>,
    template: Option<&ContainerSpec>,
) -> Option<&'static str> {
    let container = |mode: &str| mode.starts_with("container:");
    let id = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let hashed = |key: &str| dict.get(key).and_then(Json::as_str);
    let of_service = |key: &str| {
        config
            .and_then(|c| c.get(key))
            .and_then(serde_norway::Value::as_str)
            .is_some_and(|mode| mode.starts_with("service:"))
    };
    if hashed("net").is_some_and(|net| container(net) || id(net)) {
        return Some("network_mode");
    }
    if hashed("ipc_mode").is_some_and(container) || of_service("ipc") {
        return Some("ipc");
    }
    let host = &template?.host_config;
    let modes = [
        ("network_mode", &host.network_mode),
        ("ipc", &host.ipc_mode),
        ("pid", &host.pid_mode),
    ];
    for (key, mode) in modes {
        if mode.as_deref().is_some_and(container) || of_service(key) {
            return Some(key);
        }
    }
    host.volumes_from
        .as_ref()
        .is_some_and(|v| !v.is_empty())
        .then_some("volumes_from")
}

/// The id of image `name` on this host, if it is there.
async fn image_id(docker: &Docker, name: &str) -> Option<String> {
    docker.inspect_image(name).await.ok()?.id
}

/// Counted up when what a kept reading is trusted for narrows: one kept by
/// an earlier version is not used (2: files compose's YAML 1.1 could read
/// otherwise are not followed; 3: nor projects where compose resolves other
/// containers' ids, [`other_containers`]; 4: nor one read on a daemon of
/// another version).
const KEPT_VERSION: u32 = 4;

/// Whether `name` is where an earlier version kept a reading (`compose-HASH.json`
/// before versions were counted, `compose-N-HASH.json` with N below
/// `KEPT_VERSION`): never used again. A later version's is not.
pub fn superseded_reading(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("compose-") else {
        return false;
    };
    let Some(rest) = rest.strip_suffix(".json") else {
        return false;
    };
    let hash = |h: &str| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit());
    match rest.split_once('-') {
        None => hash(rest),
        Some((version, h)) => version.parse::<u32>().is_ok_and(|v| v < KEPT_VERSION) && hash(h),
    }
}

/// Where a reading of `r`'s project is kept: one name per project and directory.
pub fn reading_name(r: &ComposeRef) -> String {
    let key = format!(
        "{}\0{}",
        r.project,
        r.working_dir.as_deref().unwrap_or(Path::new("")).display()
    );
    format!(
        "compose-{KEPT_VERSION}-{}.json",
        &format!("{:x}", Sha256::digest(key))[..16]
    )
}

#[cfg(test)]
mod tests {
    use bollard::models::HostConfig;

    use super::*;

    #[test]
    fn a_reading_naming_other_containers_by_id_is_not_kept() {
        let id = "0123456789abcdef".repeat(4);
        let dict = |net: &str, ipc: Json| serde_json::json!({"net": net, "ipc_mode": ipc});
        let plain = dict("p_default", Json::Null);
        let config = |text: &str| serde_norway::from_str::<serde_norway::Value>(text).unwrap();
        let web = config("image: app:v1\n");
        let template = |host_config: HostConfig| ContainerSpec {
            name: "p_web_1".into(),
            image: "app:v1".into(),
            config: Default::default(),
            host_config,
            networks: Vec::new(),
        };
        let bridged = template(HostConfig {
            network_mode: Some("p_default".into()),
            ipc_mode: Some("private".into()),
            ..Default::default()
        });
        assert_eq!(other_containers(&plain, Some(&web), Some(&bridged)), None);
        // Hashed: compose hashes the id of the container it found.
        assert_eq!(
            other_containers(&dict(&id, Json::Null), Some(&web), None),
            Some("network_mode")
        );
        let ipc = Json::String(format!("container:{id}"));
        assert_eq!(
            other_containers(&dict("p_default", ipc), Some(&web), None),
            Some("ipc")
        );
        // `ipc: service:X` while X has no container: hashed as none, for now.
        let sharing = config("image: app:v1\nipc: service:db\n");
        assert_eq!(other_containers(&plain, Some(&sharing), None), Some("ipc"));
        // Made: a service's or container's namespace, or its volumes, by id.
        let container = Some(format!("container:{id}"));
        for (host, what) in [
            (
                HostConfig {
                    network_mode: container.clone(),
                    ..Default::default()
                },
                "network_mode",
            ),
            (
                HostConfig {
                    pid_mode: container.clone(),
                    ..Default::default()
                },
                "pid",
            ),
            (
                HostConfig {
                    volumes_from: Some(vec![format!("{id}:ro")]),
                    ..Default::default()
                },
                "volumes_from",
            ),
        ] {
            let t = template(host);
            assert_eq!(other_containers(&plain, Some(&web), Some(&t)), Some(what));
        }
        let joined = config("image: app:v1\nnetwork_mode: service:vpn\n");
        assert_eq!(
            other_containers(&plain, Some(&joined), Some(&bridged)),
            Some("network_mode")
        );
        // A service only hashed, joining another's network: compose hashes
        // that service's name, not its container's id.
        assert_eq!(
            other_containers(&dict("vpn", Json::Null), Some(&joined), None),
            None
        );
    }

    #[test]
    fn readings_kept_by_earlier_versions_are_superseded_and_this_ones_are_not() {
        let r = ComposeRef {
            project: "shop".into(),
            service: "web".into(),
            working_dir: Some("/srv/shop".into()),
            config_files: vec!["docker-compose.yml".into()],
            config_hash: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            named_from: None,
        };
        assert!(!superseded_reading(&reading_name(&r)));
        assert!(superseded_reading("compose-0123456789abcdef.json"));
        assert!(superseded_reading("compose-1-0123456789abcdef.json"));
        // A later version's, left by a downgrade, is not this one's to remove.
        assert!(!superseded_reading(&format!(
            "compose-{}-0123456789abcdef.json",
            KEPT_VERSION + 1
        )));
        assert!(!superseded_reading("compose-x.json"));
        assert!(!superseded_reading("lock"));
        assert!(!superseded_reading("compose-notes.txt"));
    }
}
