//! What Docker Compose records about a container in its labels.
use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// written by compose v2), or the operator's `--env-file`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable (the operator's `--profile`; compose records none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
}

impl ComposeRef {
    /// Reads the compose labels; `None` when the container was not made by compose.
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        let get = |k: &str| labels.get(&format!("com.docker.compose.{k}")).cloned();
        Some(ComposeRef {
            project: get("project")?,
            service: get("service")?,
            working_dir: get("project.working_dir").map(PathBuf::from),
            config_files: paths(get("project.config_files")),
            config_hash: get("config-hash"),
            env_files: paths(get("project.environment_file")),
            profiles: Vec::new(),
        })
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
        assert!(ComposeRef::from_labels(&HashMap::new()).is_none());
    }
}
