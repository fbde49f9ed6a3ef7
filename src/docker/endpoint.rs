//! What an endpoint is: the daemon this run talks to (its address, how it
//! is reached, its TLS files, who chose it) and docker's global flags that
//! name it, with a bollard client and a child CLI's environment for it.
//! Choosing it, as the docker CLI does, is `choose.rs`'s.
use std::fmt;
use std::path::PathBuf;

use super::host::Transport;
use super::ssh::{self, SshStderr};

/// The names of the TLS files in a certificate directory (`DOCKER_CERT_PATH`, a context's).
pub(super) const TLS_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

/// Every variable [`Endpoint::point`] sets or removes: a child CLI's value
/// of each may be other than this process's.
pub const POINTING_VARIABLES: [&str; 8] = [
    "DOCKER_HOST",
    "DOCKER_TLS_VERIFY",
    "DOCKER_TLS",
    "DOCKER_CERT_PATH",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND",
    "DOCKER_CLI_PLUGIN_SOCKET",
];

/// What the command line says about the daemon: docker's global flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerOptions {
    /// `--config DIR`: the docker CLI's configuration directory.
    pub config_dir: Option<PathBuf>,
    /// `-c/--context NAME`.
    pub context: Option<String>,
    /// `-H/--host URL`.
    pub host: Option<String>,
    /// `--tls`: TLS without verifying the daemon (refused: not supported).
    pub tls: bool,
    /// `--tlsverify`.
    pub tls_verify: bool,
    /// `--tlscacert FILE`.
    pub tls_ca: Option<PathBuf>,
    /// `--tlscert FILE`.
    pub tls_cert: Option<PathBuf>,
    /// `--tlskey FILE`.
    pub tls_key: Option<PathBuf>,
}

/// Whether the daemon runs on this host, so that its pids and host paths are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonLocation {
    /// Reached through a unix socket: it runs here.
    Local,
    /// Reached over tcp:// or ssh://, even to this machine: its pids and paths
    /// are taken to be another host's.
    Remote,
}

/// Who chose the endpoint, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `-H/--host`.
    HostFlag,
    /// `--context NAME`.
    ContextFlag(String),
    /// The `DOCKER_HOST` variable.
    DockerHost,
    /// The `DOCKER_CONTEXT` variable.
    DockerContext(String),
    /// `currentContext` of this `config.json`.
    CurrentContext(String, PathBuf),
    /// Nothing: the local socket.
    Default,
}

impl Origin {
    /// Where the choice was made, without the context's name.
    pub(super) fn source(&self) -> String {
        match self {
            Origin::HostFlag => "-H".into(),
            Origin::ContextFlag(_) => "--context".into(),
            Origin::DockerHost => "DOCKER_HOST".into(),
            Origin::DockerContext(_) => "DOCKER_CONTEXT".into(),
            Origin::CurrentContext(_, file) => format!("the currentContext of {}", file.display()),
            Origin::Default => "the default".into(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::ContextFlag(name)
            | Origin::DockerContext(name)
            | Origin::CurrentContext(name, _) => {
                write!(f, "context {name}, from {}", self.source())
            }
            _ => write!(f, "{}", self.source()),
        }
    }
}

/// Why no endpoint could be chosen: a configuration error, nothing was touched.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// `--context` and `-H` together.
    #[error("conflicting options: either specify --host or --context, not both")]
    Conflict,
    /// A context name docker would not accept.
    #[error(
        "{name:?} (from {origin}) is not a context name: letters, digits and `_.+-`, at least two characters"
    )]
    ContextName {
        /// The name.
        name: String,
        /// Who gave it.
        origin: String,
    },
    /// No such context in the store.
    #[error("context {name} (from {origin}) does not exist: there is no {} (`docker context ls` lists the contexts)", file.display())]
    NoContext {
        /// The name.
        name: String,
        /// Who gave it.
        origin: String,
        /// Where it would be.
        file: PathBuf,
    },
    /// A context without a Docker endpoint.
    #[error("{}: context {name} has no Docker endpoint (Endpoints.docker.Host)", file.display())]
    NoDockerEndpoint {
        /// The name.
        name: String,
        /// Its meta.json.
        file: PathBuf,
    },
    /// A file that cannot be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file too large to be docker's.
    #[error("{}: larger than {limit} bytes, not a docker CLI file", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A file that is not the JSON docker writes.
    #[error("{}:{line}:{column}: {message}", file.display())]
    BadFile {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// An address that is not one of the daemon's.
    #[error("{host} ({origin}): {why}")]
    BadHost {
        /// The address.
        host: String,
        /// Who gave it.
        origin: String,
        /// What is wrong.
        why: String,
    },
    /// TLS settings that cannot be used.
    #[error("TLS for {origin}: {why}")]
    Tls {
        /// Who asked for TLS.
        origin: String,
        /// What is wrong.
        why: String,
    },
}

/// A directory with `ca.pem`, `cert.pem` and `key.pem`: the daemon is verified
/// against the CA and we present the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDir(pub(super) PathBuf);

impl TlsDir {
    /// The directory, once all three files are found in it.
    pub(super) fn check(dir: PathBuf, origin: &Origin) -> Result<TlsDir, EndpointError> {
        let missing: Vec<&str> = TLS_FILES
            .into_iter()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(EndpointError::Tls {
                origin: origin.to_string(),
                why: format!("{} has no {}", dir.display(), missing.join(", ")),
            });
        }
        Ok(TlsDir(dir))
    }

    fn ca(&self) -> PathBuf {
        self.0.join(TLS_FILES[0])
    }

    fn cert(&self) -> PathBuf {
        self.0.join(TLS_FILES[1])
    }

    fn key(&self) -> PathBuf {
        self.0.join(TLS_FILES[2])
    }
}

/// The daemon this run talks to: where it is, how to reach it, and who chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The address as docker writes it (`unix:///…`, `tcp://host:port`, `ssh://…`).
    pub(super) host: String,
    pub(super) transport: Transport,
    pub(super) tls: Option<TlsDir>,
    pub(super) origin: Origin,
    /// `--config DIR`, passed on to child CLIs.
    pub(super) config_dir: Option<PathBuf>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.host, self.origin)
    }
}

impl Endpoint {
    /// The address as docker writes it (`unix:///…`, `tcp://host:port`, `ssh://…`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the daemon runs on this host.
    pub fn location(&self) -> DaemonLocation {
        match self.transport {
            Transport::Unix(_) => DaemonLocation::Local,
            Transport::Tcp(_) | Transport::Ssh(_) => DaemonLocation::Remote,
        }
    }

    /// Points a child docker or compose CLI at this daemon: `DOCKER_HOST` (and
    /// the TLS variables) set, `DOCKER_CONTEXT` and the plugin variables a
    /// docker CLI plugin inherits removed, so every compose version — v1
    /// ignores `DOCKER_CONTEXT` — reaches the same daemon. Only
    /// [`POINTING_VARIABLES`] are touched.
    pub fn point(&self, cmd: &mut tokio::process::Command) {
        cmd.env("DOCKER_HOST", &self.host);
        match &self.tls {
            Some(dir) => cmd
                .env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", &dir.0),
            None => cmd
                .env_remove("DOCKER_TLS_VERIFY")
                .env_remove("DOCKER_TLS")
                .env_remove("DOCKER_CERT_PATH"),
        };
        if let Some(dir) = &self.config_dir {
            cmd.env("DOCKER_CONFIG", dir);
        }
        for inherited in [
            "DOCKER_CONTEXT",
            "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND",
            "DOCKER_CLI_PLUGIN_SOCKET",
        ] {
            cmd.env_remove(inherited);
        }
    }

    /// The `DOCKER_CONFIG` a child CLI [`point`](Self::point)ed here has:
    /// `--config`'s, else this process's.
    pub fn docker_config(&self) -> Option<std::ffi::OsString> {
        match &self.config_dir {
            Some(dir) => Some(dir.clone().into_os_string()),
            None => std::env::var_os("DOCKER_CONFIG"),
        }
    }

    /// A bollard client for this endpoint (not yet connected), and for
    /// ssh:// what ssh says on stderr.
    pub(super) fn client(
        &self,
        timeout_secs: u64,
    ) -> (
        Result<bollard::Docker, bollard::errors::Error>,
        Option<SshStderr>,
    ) {
        use bollard::{API_DEFAULT_VERSION, Docker};
        let docker = match (&self.transport, &self.tls) {
            (Transport::Unix(path), _) => {
                Docker::connect_with_unix(path, timeout_secs, API_DEFAULT_VERSION)
            }
            (Transport::Tcp(addr), None) => {
                Docker::connect_with_http(addr, timeout_secs, API_DEFAULT_VERSION)
            }
            (Transport::Tcp(addr), Some(tls)) => Docker::connect_with_ssl(
                addr,
                &tls.key(),
                &tls.cert(),
                &tls.ca(),
                timeout_secs,
                API_DEFAULT_VERSION,
            ),
            (Transport::Ssh(target), _) => {
                let (docker, stderr) = ssh::client(target, timeout_secs);
                return (docker, Some(stderr));
            }
        };
        (docker, None)
    }

    /// What to check when the daemon does not answer.
    pub(super) fn hint(&self) -> &'static str {
        match (&self.transport, &self.origin) {
            (Transport::Unix(_), Origin::Default) => "is dockerd running?",
            (Transport::Unix(_), _) => "is a daemon listening on that socket?",
            (Transport::Tcp(_), _) => "is the daemon listening there, with these TLS settings?",
            (Transport::Ssh(_), _) => {
                "`ssh` must log in without a prompt (a key or an agent) and find `docker` there"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn a_child_is_pointed_with_the_pointing_variables_only() {
        let local = Endpoint {
            host: "unix:///var/run/docker.sock".into(),
            transport: Transport::Unix("/var/run/docker.sock".into()),
            tls: None,
            origin: Origin::Default,
            config_dir: None,
        };
        let remote = Endpoint {
            host: "tcp://daemon:2376".into(),
            transport: Transport::Tcp("daemon:2376".into()),
            tls: Some(TlsDir("/certs".into())),
            origin: Origin::HostFlag,
            config_dir: Some("/cfg".into()),
        };
        let mut touched = BTreeSet::new();
        for endpoint in [local, remote] {
            let mut cmd = tokio::process::Command::new("true");
            endpoint.point(&mut cmd);
            for (name, _) in cmd.as_std().get_envs() {
                touched.insert(name.to_str().unwrap().to_string());
            }
        }
        let listed: BTreeSet<String> = POINTING_VARIABLES.map(String::from).into();
        assert_eq!(touched, listed);
    }
}
