//! What Docker Compose records about a container in its labels: the one
//! home of their keys ([`ComposeLabel`]) and a container's place in a
//! project read from them ([`ComposeRef`]).
use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One of compose's label keys as compose writes it.
macro_rules! compose_key {
    ($key:literal) => {
        concat!("com.docker.compose.", $key)
    };
}

/// A label compose writes on the containers and networks it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeLabel {
    /// The project's name (`com.docker.compose.project`).
    Project,
    /// The service's name (`com.docker.compose.service`).
    Service,
    /// `True` on a `compose run` container, `False` on a service's own.
    OneOff,
    /// A container's number within its service (1, 2, …).
    ContainerNumber,
    /// Compose's hash of the service's configuration when the container was made.
    ConfigHash,
    /// The directory compose ran in.
    WorkingDir,
    /// The compose files used, comma-separated.
    ConfigFiles,
    /// The env files compose read, comma-separated (compose v2).
    EnvironmentFile,
    /// On a network: its key in the compose file's `networks:`.
    Network,
}

impl ComposeLabel {
    /// What every compose label key starts with.
    pub const PREFIX: &str = compose_key!("");

    /// The label's key, e.g. `com.docker.compose.project`.
    pub fn key(self) -> &'static str {
        match self {
            ComposeLabel::Project => compose_key!("project"),
            ComposeLabel::Service => compose_key!("service"),
            ComposeLabel::OneOff => compose_key!("oneoff"),
            ComposeLabel::ContainerNumber => compose_key!("container-number"),
            ComposeLabel::ConfigHash => compose_key!("config-hash"),
            ComposeLabel::WorkingDir => compose_key!("project.working_dir"),
            ComposeLabel::ConfigFiles => compose_key!("project.config_files"),
            ComposeLabel::EnvironmentFile => compose_key!("project.environment_file"),
            ComposeLabel::Network => compose_key!("network"),
        }
    }

    /// The Docker API `label` filter for this label holding `value` (`KEY=VALUE`).
    pub fn filter(self, value: &str) -> String {
        format!("{}={value}", self.key())
    }
}

/// The Docker API list `filters` keeping what carries every one of `labels`
/// (each `KEY=VALUE`, as [`ComposeLabel::filter`] writes it).
pub fn label_filters(labels: Vec<String>) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels)])
}

impl fmt::Display for ComposeLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A container's place in a compose project, read from its `com.docker.compose.*` labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeRef {
    /// Project name (`com.docker.compose.project`).
    pub project: String,
    /// Service name (`com.docker.compose.service`).
    pub service: String,
    /// Directory compose ran in (`com.docker.compose.project.working_dir`).
    pub working_dir: Option<PathBuf>,
    /// Compose files used (`com.docker.compose.project.config_files`, comma-separated).
    pub config_files: Vec<PathBuf>,
    /// Hash of the service's configuration when the container was created.
    pub config_hash: Option<String>,
    /// Env files compose read (`com.docker.compose.project.environment_file`,
    /// written for `--env-file`), or the operator's `--env-file`; relative
    /// ones, as the files, from [`compose_dir`](Self::compose_dir).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable (the operator's `--profile`; compose records none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// The directory relative `config_files` were named from, where it is
    /// not `working_dir` (see [`compose_dir`](Self::compose_dir)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_from: Option<PathBuf>,
}

impl ComposeRef {
    /// Reads the compose labels; `None` when the container was not made by compose.
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        let get = |l: ComposeLabel| labels.get(l.key()).cloned();
        Some(
            ComposeRef {
                project: get(ComposeLabel::Project)?,
                service: get(ComposeLabel::Service)?,
                working_dir: get(ComposeLabel::WorkingDir).map(PathBuf::from),
                config_files: paths(get(ComposeLabel::ConfigFiles)),
                config_hash: get(ComposeLabel::ConfigHash),
                env_files: paths(get(ComposeLabel::EnvironmentFile)),
                profiles: Vec::new(),
                named_from: None,
            }
            .with_named_from_inferred(),
        )
    }

    /// Where compose runs for this project, and relative `config_files`
    /// are: the directory they were named from (the operator's, when they
    /// named them), else the project directory. Compose records the files
    /// as it was given them, so the containers it makes from there carry
    /// the names the operator's own compose run would.
    pub fn compose_dir(&self) -> Option<&Path> {
        self.named_from.as_deref().or(self.working_dir.as_deref())
    }

    /// `file`, one of `config_files`, as a path to read.
    pub fn file_path(&self, file: &Path) -> PathBuf {
        match self.compose_dir() {
            Some(dir) => dir.join(file),
            None => file.to_path_buf(),
        }
    }

    /// Compose v1 names the files in its label as it was given them,
    /// relative to where it ran, and takes the first one's directory as the
    /// project directory: a first file `numbers/docker-compose.yml` in
    /// project directory `/x/numbers` was named from `/x` (seed 003's
    /// `docker-compose -f ./numbers/docker-compose.yml …`).
    fn with_named_from_inferred(mut self) -> Self {
        let (Some(dir), Some(first)) = (&self.working_dir, self.config_files.first()) else {
            return self;
        };
        let Some(parent) = first
            .parent()
            .filter(|p| first.is_relative() && !p.as_os_str().is_empty())
        else {
            return self;
        };
        let mut from = dir.clone();
        for part in parent.components().rev() {
            match part {
                Component::Normal(name) if from.file_name() == Some(name) => {
                    from.pop();
                }
                _ => return self,
            }
        }
        self.named_from = Some(from);
        self
    }
}

/// A comma-separated list of paths, as compose writes it in a label.
fn paths(list: Option<String>) -> Vec<PathBuf> {
    list.unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compose_v1_labels() {
        let labels: HashMap<String, String> = [
            ("com.docker.compose.project", "seed"),
            ("com.docker.compose.service", "app1"),
            ("com.docker.compose.project.working_dir", "/srv/seed"),
            (
                "com.docker.compose.project.config_files",
                "docker-compose.yml,override.yml",
            ),
            ("com.docker.compose.config-hash", "abc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = ComposeRef::from_labels(&labels).unwrap();
        assert_eq!(r.service, "app1");
        assert_eq!(r.config_files.len(), 2);
        assert_eq!(r.config_hash.as_deref(), Some("abc"));
        assert_eq!(r.compose_dir(), Some(Path::new("/srv/seed")));
        assert_eq!(
            r.file_path(Path::new("override.yml")),
            Path::new("/srv/seed/override.yml")
        );
        assert!(ComposeRef::from_labels(&HashMap::new()).is_none());
    }

    #[test]
    fn files_named_from_above_the_project_directory_are_found_there() {
        let r = |dir: &str, files: &str| {
            let labels: HashMap<String, String> = [
                ("com.docker.compose.project", "numbers"),
                ("com.docker.compose.service", "api"),
                ("com.docker.compose.project.working_dir", dir),
                ("com.docker.compose.project.config_files", files),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            ComposeRef::from_labels(&labels).unwrap()
        };
        // Seed 003: `docker-compose -f ./numbers/docker-compose.yml -f ./numbers/prod.yml`
        // run in /x/exercises.
        let seed = r(
            "/x/exercises/numbers",
            "numbers/docker-compose.yml,numbers/prod.yml",
        );
        assert_eq!(seed.compose_dir(), Some(Path::new("/x/exercises")));
        assert_eq!(
            seed.file_path(&seed.config_files[1]),
            Path::new("/x/exercises/numbers/prod.yml")
        );
        // Named in the project directory, absolute, or not from above it.
        for (dir, files) in [
            ("/x/numbers", "docker-compose.yml"),
            ("/x/numbers", "/x/numbers/docker-compose.yml"),
            ("/x/numbers", "other/docker-compose.yml"),
            ("/x/numbers", "../numbers/docker-compose.yml"),
        ] {
            assert_eq!(r(dir, files).compose_dir(), Some(Path::new(dir)), "{files}");
        }
    }

    /// The keys as compose spells them (spelled out here on purpose: these
    /// are what compose writes, whatever the code calls them).
    #[test]
    fn keys_are_spelled_as_compose_writes_them() {
        for (label, key) in [
            (ComposeLabel::Project, "com.docker.compose.project"),
            (ComposeLabel::Service, "com.docker.compose.service"),
            (ComposeLabel::OneOff, "com.docker.compose.oneoff"),
            (
                ComposeLabel::ContainerNumber,
                "com.docker.compose.container-number",
            ),
            (ComposeLabel::ConfigHash, "com.docker.compose.config-hash"),
            (
                ComposeLabel::WorkingDir,
                "com.docker.compose.project.working_dir",
            ),
            (
                ComposeLabel::ConfigFiles,
                "com.docker.compose.project.config_files",
            ),
            (
                ComposeLabel::EnvironmentFile,
                "com.docker.compose.project.environment_file",
            ),
            (ComposeLabel::Network, "com.docker.compose.network"),
        ] {
            assert_eq!(label.key(), key);
            assert_eq!(label.to_string(), key);
            assert!(key.starts_with(ComposeLabel::PREFIX), "{key}");
        }
        assert_eq!(ComposeLabel::PREFIX, "com.docker.compose.");
        assert_eq!(
            ComposeLabel::Project.filter("shop"),
            "com.docker.compose.project=shop"
        );
    }
}
