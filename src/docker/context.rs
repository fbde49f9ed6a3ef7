//! The docker CLI's configuration directory, read as `docker` reads it:
//! `config.json`'s `currentContext`, and the context store —
//! `contexts/meta/<sha256 of the name>/meta.json` for a context's endpoint,
//! `contexts/tls/<the same>/docker/{ca,cert,key}.pem` for its TLS files.
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::endpoint::EndpointError;

/// The largest `config.json` or `meta.json` read (docker's own are a few hundred bytes).
const MAX_FILE: u64 = 1 << 20;

/// The endpoint name of the Docker engine in a context (`cli/context/docker`).
const DOCKER_ENDPOINT: &str = "docker";

/// A docker CLI configuration directory (`--config`, `$DOCKER_CONFIG`, `~/.docker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDir(pub PathBuf);

/// A context read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContext {
    /// Its `meta.json`, for messages.
    pub file: PathBuf,
    /// The Docker endpoint's address (`Endpoints.docker.Host`).
    pub host: String,
    /// `Endpoints.docker.SkipTLSVerify`.
    pub skip_tls_verify: bool,
    /// The directory of its TLS files, when it has one.
    pub tls_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "currentContext", default)]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Endpoints", alias = "endpoints", default)]
    endpoints: HashMap<String, EndpointMeta>,
}

#[derive(Deserialize)]
struct EndpointMeta {
    #[serde(rename = "Host", alias = "host", default)]
    host: Option<String>,
    #[serde(rename = "SkipTLSVerify", alias = "skipTLSVerify", default)]
    skip_tls_verify: bool,
}

impl ConfigDir {
    /// `config.json`'s `currentContext`, if the file exists and names one.
    pub fn current_context(&self) -> Result<Option<String>, EndpointError> {
        let file = self.0.join("config.json");
        let Some(bytes) = read_small(&file)? else {
            return Ok(None);
        };
        let config: ConfigFile = parse(&file, &bytes)?;
        Ok(config.current_context.filter(|c| !c.is_empty()))
    }

    /// The context `name` from the store; `origin` says who named it.
    pub fn context(&self, name: &str, origin: &str) -> Result<StoredContext, EndpointError> {
        if !valid_context_name(name) {
            return Err(EndpointError::ContextName {
                name: name.into(),
                origin: origin.into(),
            });
        }
        let id = context_id(name);
        let file = self.0.join("contexts/meta").join(&id).join("meta.json");
        let Some(bytes) = read_small(&file)? else {
            return Err(EndpointError::NoContext {
                name: name.into(),
                origin: origin.into(),
                file,
            });
        };
        let meta: Meta = parse(&file, &bytes)?;
        let Some((host, endpoint)) = meta
            .endpoints
            .get(DOCKER_ENDPOINT)
            .and_then(|e| Some((e.host.clone().filter(|h| !h.is_empty())?, e)))
        else {
            return Err(EndpointError::NoDockerEndpoint {
                name: name.into(),
                file,
            });
        };
        let tls_dir = self.0.join("contexts/tls").join(&id).join(DOCKER_ENDPOINT);
        Ok(StoredContext {
            file,
            host,
            skip_tls_verify: endpoint.skip_tls_verify,
            tls_dir: tls_dir.is_dir().then_some(tls_dir),
        })
    }
}

/// The store's directory name for a context: the hex SHA-256 of its name.
pub(super) fn context_id(name: &str) -> String {
    format!("{:x}", Sha256::digest(name.as_bytes()))
}

/// docker's rule for context names: `^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`.
fn valid_context_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
}

/// The bytes of `file`, `None` when it does not exist; larger than
/// [`MAX_FILE`] is an error.
fn read_small(file: &Path) -> Result<Option<Vec<u8>>, EndpointError> {
    let read_error = |source| EndpointError::Read {
        file: file.to_path_buf(),
        source,
    };
    let handle = match std::fs::File::open(file) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let mut bytes = Vec::new();
    handle
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(EndpointError::TooLarge {
            file: file.to_path_buf(),
            limit: MAX_FILE,
        });
    }
    Ok(Some(bytes))
}

fn parse<T: serde::de::DeserializeOwned>(file: &Path, bytes: &[u8]) -> Result<T, EndpointError> {
    serde_json::from_slice(bytes).map_err(|e| EndpointError::BadFile {
        file: file.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_ids_are_the_sha256_of_the_name() {
        // `echo -n d2 | sha256sum`
        assert_eq!(
            context_id("d2"),
            "e788103ee15318fcd2af9b73b4ebbb33a903b020de7b307d71f5fed0f433e548"
        );
    }

    #[test]
    fn context_names_follow_dockers_rule() {
        for good in ["d2", "prod-eu.1", "a_b+c", "00"] {
            assert!(valid_context_name(good), "{good}");
        }
        for bad in ["", "a", "-x", ".x", "a b", "a/b", "ü1"] {
            assert!(!valid_context_name(bad), "{bad}");
        }
    }
}
