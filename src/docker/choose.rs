//! Choosing the daemon as the docker CLI does, first match wins:
//! `--context` > `-H` > `DOCKER_HOST` > `DOCKER_CONTEXT` > `currentContext`
//! of `config.json` > the local socket; TLS from the flags, the environment
//! or the context. The chosen address is read by `host.rs`.
use std::path::{Path, PathBuf};

use super::context::ConfigDir;
use super::endpoint::{DockerOptions, Endpoint, EndpointError, Origin, TLS_FILES, TlsDir};
use super::host::{Transport, parse_host};

/// The socket a local daemon listens on by default.
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";
/// The default address when TLS is on and no host is given (as docker has it).
const DEFAULT_TLS_HOST: &str = "tcp://localhost:2376";

impl Endpoint {
    /// The endpoint `options` and this process's environment choose.
    pub fn resolve(options: &DockerOptions) -> Result<Endpoint, EndpointError> {
        Self::resolve_with(options, &|name| std::env::var(name).ok())
    }

    /// The endpoint chosen with `env` as the environment.
    fn resolve_with(
        options: &DockerOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Endpoint, EndpointError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let config = ConfigDir(match (&options.config_dir, var("DOCKER_CONFIG")) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => dir.into(),
            (None, None) => var("HOME")
                .map(PathBuf::from)
                .or_else(std::env::home_dir)
                .unwrap_or_default()
                .join(".docker"),
        });
        let chooser = Chooser {
            options,
            var: &var,
            config: &config,
        };
        let mut endpoint = match (&options.context, &options.host) {
            (Some(_), Some(_)) => return Err(EndpointError::Conflict),
            (Some(name), None) => chooser.context(name, Origin::ContextFlag(name.clone()))?,
            (None, Some(host)) => chooser.default(Some(host.clone()), Origin::HostFlag)?,
            (None, None) => {
                if let Some(host) = var("DOCKER_HOST") {
                    chooser.default(Some(host), Origin::DockerHost)?
                } else if let Some(name) = var("DOCKER_CONTEXT") {
                    chooser.context(&name, Origin::DockerContext(name.clone()))?
                } else if let Some(name) = config.current_context()? {
                    let file = config.0.join("config.json");
                    chooser.context(&name, Origin::CurrentContext(name.clone(), file))?
                } else {
                    chooser.default(None, Origin::Default)?
                }
            }
        };
        endpoint.config_dir = options.config_dir.clone();
        Ok(endpoint)
    }
}

/// The rules that turn what was given into an endpoint.
struct Chooser<'a> {
    options: &'a DockerOptions,
    var: &'a dyn Fn(&str) -> Option<String>,
    config: &'a ConfigDir,
}

impl Chooser<'_> {
    /// The `default` context: `host`, else `DOCKER_HOST`, else the local
    /// socket; TLS from the flags and `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`.
    fn default(&self, host: Option<String>, origin: Origin) -> Result<Endpoint, EndpointError> {
        let o = self.options;
        let verify = o.tls_verify || (self.var)("DOCKER_TLS_VERIFY").is_some();
        let tls_on = verify || o.tls || (self.var)("DOCKER_TLS").is_some();
        let host = host
            .or_else(|| (self.var)("DOCKER_HOST"))
            .unwrap_or_else(|| {
                if tls_on {
                    DEFAULT_TLS_HOST
                } else {
                    DEFAULT_SOCKET
                }
                .to_string()
            });
        let (host, transport) = checked_host(&host, tls_on, &origin)?;
        let tls = match transport {
            Transport::Tcp(_) if tls_on => Some(self.tls_from_flags(verify, &origin)?),
            _ => None,
        };
        Ok(Endpoint {
            host,
            transport,
            tls,
            origin,
            config_dir: None,
        })
    }

    /// The TLS directory `--tlscacert/--tlscert/--tlskey` and `DOCKER_CERT_PATH`
    /// (default: the config directory) name.
    fn tls_from_flags(&self, verify: bool, origin: &Origin) -> Result<TlsDir, EndpointError> {
        let o = self.options;
        if !verify {
            return Err(EndpointError::Tls {
                origin: origin.to_string(),
                why: "TLS without verifying the daemon (--tls, DOCKER_TLS) is not supported; \
                      use --tlsverify or DOCKER_TLS_VERIFY=1 with a CA"
                    .into(),
            });
        }
        let dir = (self.var)("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.config.0.clone());
        let files = [&o.tls_ca, &o.tls_cert, &o.tls_key];
        let chosen: Vec<PathBuf> = files
            .iter()
            .zip(TLS_FILES)
            .map(|(flag, name)| (*flag).clone().unwrap_or_else(|| dir.join(name)))
            .collect();
        let dir = chosen[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if chosen
            .iter()
            .zip(TLS_FILES)
            .any(|(file, name)| *file != dir.join(name))
        {
            return Err(EndpointError::Tls {
                origin: origin.to_string(),
                why: format!(
                    "the files must be ca.pem, cert.pem and key.pem of one directory, as \
                     DOCKER_CERT_PATH has them (compose is given the same); got {}",
                    chosen
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        TlsDir::check(dir, origin)
    }

    /// Context `name`: `default` is the default endpoint, any other is read
    /// from the store, with its TLS files if it has them.
    fn context(&self, name: &str, origin: Origin) -> Result<Endpoint, EndpointError> {
        if name == "default" {
            return self.default(None, origin);
        }
        let stored = self.config.context(name, &origin.source())?;
        let (host, transport) = checked_host(&stored.host, stored.tls_dir.is_some(), &origin)?;
        let tcp = matches!(transport, Transport::Tcp(_));
        let tls = match stored.tls_dir {
            Some(dir) if tcp => Some(TlsDir::check(dir, &origin)?),
            _ => None,
        };
        if stored.skip_tls_verify && tcp {
            return Err(EndpointError::Tls {
                origin: origin.to_string(),
                why: format!(
                    "{}: SkipTLSVerify is not supported; give the context the daemon's CA",
                    stored.file.display()
                ),
            });
        }
        Ok(Endpoint {
            host,
            transport,
            tls,
            origin,
            config_dir: None,
        })
    }
}

/// The address `host` as [`parse_host`] reads it, a refusal naming the
/// address and who gave it.
fn checked_host(
    host: &str,
    tls: bool,
    origin: &Origin,
) -> Result<(String, Transport), EndpointError> {
    parse_host(host, tls).map_err(|why| EndpointError::BadHost {
        host: host.into(),
        origin: origin.to_string(),
        why: why.into(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsStr;

    use super::super::context::context_id;
    use super::super::endpoint::DaemonLocation;
    use super::super::ssh::SshTarget;
    use super::*;

    /// A docker config directory with contexts, and an environment.
    struct Setup {
        dir: tempfile::TempDir,
        env: HashMap<String, String>,
    }

    impl Setup {
        /// `HOME` is a fresh directory; nothing else is set.
        fn new() -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let env = HashMap::from([("HOME".into(), dir.path().display().to_string())]);
            Setup { dir, env }
        }

        fn config(&self) -> PathBuf {
            self.dir.path().join(".docker")
        }

        fn set(mut self, name: &str, value: &str) -> Setup {
            self.env.insert(name.into(), value.into());
            self
        }

        /// Writes `config.json`.
        fn config_json(self, json: &str) -> Setup {
            std::fs::create_dir_all(self.config()).unwrap();
            std::fs::write(self.config().join("config.json"), json).unwrap();
            self
        }

        /// Writes context `name`'s meta.json, as `docker context create` does.
        fn context(self, name: &str, host: &str) -> Setup {
            let meta = format!(
                r#"{{"Name":"{name}","Metadata":{{"Description":"x"}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
            );
            self.meta(name, &meta)
        }

        fn meta(self, name: &str, json: &str) -> Setup {
            let dir = self.config().join("contexts/meta").join(context_id(name));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("meta.json"), json).unwrap();
            self
        }

        /// Puts TLS files `files` into context `name`'s TLS directory.
        fn tls(self, name: &str, files: &[&str]) -> Setup {
            let dir = self.tls_dir(name);
            std::fs::create_dir_all(&dir).unwrap();
            for f in files {
                std::fs::write(dir.join(f), "PEM").unwrap();
            }
            self
        }

        fn tls_dir(&self, name: &str) -> PathBuf {
            self.config()
                .join("contexts/tls")
                .join(context_id(name))
                .join("docker")
        }

        fn resolve(&self, options: &DockerOptions) -> Result<Endpoint, EndpointError> {
            Endpoint::resolve_with(options, &|name| self.env.get(name).cloned())
        }

        fn host(&self, options: &DockerOptions) -> (String, Origin) {
            let e = self.resolve(options).unwrap();
            (e.host, e.origin)
        }
    }

    fn flags(context: Option<&str>, host: Option<&str>) -> DockerOptions {
        DockerOptions {
            context: context.map(String::from),
            host: host.map(String::from),
            ..DockerOptions::default()
        }
    }

    const NONE: DockerOptions = DockerOptions {
        config_dir: None,
        context: None,
        host: None,
        tls: false,
        tls_verify: false,
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
    };

    #[test]
    fn without_anything_the_local_socket() {
        let s = Setup::new();
        let e = s.resolve(&NONE).unwrap();
        assert_eq!(e.host, DEFAULT_SOCKET);
        assert_eq!(e.origin, Origin::Default);
        assert_eq!(e.location(), DaemonLocation::Local);
        // An empty DOCKER_HOST counts as unset, as in docker ≥ 23.
        let s = s.set("DOCKER_HOST", "");
        assert_eq!(s.host(&NONE).0, DEFAULT_SOCKET);
    }

    #[test]
    fn precedence_is_dockers() {
        let s = Setup::new()
            .context("cur", "ssh://root@current")
            .context("envctx", "ssh://root@envctx")
            .context("flag", "ssh://root@flag")
            .config_json(r#"{"auths":{},"currentContext":"cur"}"#);
        let file = s.config().join("config.json");
        assert_eq!(
            s.host(&NONE),
            (
                "ssh://root@current".into(),
                Origin::CurrentContext("cur".into(), file)
            )
        );
        let s = s.set("DOCKER_CONTEXT", "envctx");
        assert_eq!(
            s.host(&NONE),
            (
                "ssh://root@envctx".into(),
                Origin::DockerContext("envctx".into())
            )
        );
        let s = s.set("DOCKER_HOST", "tcp://envhost:2375");
        assert_eq!(
            s.host(&NONE),
            ("tcp://envhost:2375".into(), Origin::DockerHost)
        );
        assert_eq!(
            s.host(&flags(None, Some("unix:///run/x.sock"))),
            ("unix:///run/x.sock".into(), Origin::HostFlag)
        );
        assert_eq!(
            s.host(&flags(Some("flag"), None)),
            ("ssh://root@flag".into(), Origin::ContextFlag("flag".into()))
        );
        // The default context is DOCKER_HOST (or the socket), whoever names it.
        assert_eq!(
            s.host(&flags(Some("default"), None)),
            (
                "tcp://envhost:2375".into(),
                Origin::ContextFlag("default".into())
            )
        );
        assert!(matches!(
            s.resolve(&flags(Some("flag"), Some("unix:///x"))),
            Err(EndpointError::Conflict)
        ));
    }

    #[test]
    fn the_config_dir_is_the_flag_then_docker_config_then_home() {
        let s = Setup::new().context("home", "ssh://home");
        let other = tempfile::tempdir().unwrap();
        let meta = other
            .path()
            .join("contexts/meta")
            .join(context_id("elsewhere"));
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"name":"elsewhere","endpoints":{"docker":{"host":"ssh://elsewhere"}}}"#,
        )
        .unwrap();
        assert_eq!(s.host(&flags(Some("home"), None)).0, "ssh://home");
        let by_flag = DockerOptions {
            config_dir: Some(other.path().into()),
            ..flags(Some("elsewhere"), None)
        };
        assert_eq!(s.host(&by_flag).0, "ssh://elsewhere");
        let s = s.set("DOCKER_CONFIG", &other.path().display().to_string());
        assert_eq!(s.host(&flags(Some("elsewhere"), None)).0, "ssh://elsewhere");
        assert!(matches!(
            s.resolve(&flags(Some("home"), None)),
            Err(EndpointError::NoContext { .. })
        ));
    }

    #[test]
    fn a_missing_or_broken_context_says_where() {
        let s = Setup::new()
            .config_json(r#"{"currentContext":"gone"}"#)
            .meta(
                "broken",
                "{\n  \"Name\": \"broken\",\n  \"Endpoints\": [1]\n}",
            )
            .meta("nodocker", r#"{"Name":"nodocker","Endpoints":{}}"#);
        let err = s.resolve(&NONE).unwrap_err().to_string();
        assert!(
            err.starts_with("context gone (from the currentContext of ")
                && err.contains(&context_id("gone"))
                && err.contains("docker context ls"),
            "{err}"
        );
        let err = s.resolve(&flags(Some("broken"), None)).unwrap_err();
        let file = s
            .config()
            .join("contexts/meta")
            .join(context_id("broken"))
            .join("meta.json");
        assert!(
            err.to_string()
                .starts_with(&format!("{}:3:", file.display())),
            "{err}"
        );
        let err = s.resolve(&flags(Some("nodocker"), None)).unwrap_err();
        assert!(
            matches!(err, EndpointError::NoDockerEndpoint { .. }),
            "{err}"
        );
        let err = s.resolve(&flags(Some("../x"), None)).unwrap_err();
        assert!(matches!(err, EndpointError::ContextName { .. }), "{err}");
        std::fs::write(s.config().join("config.json"), vec![b' '; 2 << 20]).unwrap();
        let err = s.resolve(&NONE).unwrap_err();
        assert!(matches!(err, EndpointError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn a_contexts_tls_files_are_used_and_handed_to_compose() {
        let s = Setup::new()
            .context("secure", "tcp://daemon.example")
            .tls("secure", &TLS_FILES)
            .context("half", "tcp://half.example:2376")
            .tls("half", &["ca.pem"])
            .meta(
                "skip",
                r#"{"Name":"skip","Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":true}}}"#,
            );
        let e = s.resolve(&flags(Some("secure"), None)).unwrap();
        assert_eq!(e.host, "tcp://daemon.example:2376");
        assert_eq!(e.tls, Some(TlsDir(s.tls_dir("secure"))));
        assert_eq!(e.location(), DaemonLocation::Remote);
        let mut cmd = tokio::process::Command::new("true");
        e.point(&mut cmd);
        let envs: HashMap<&OsStr, Option<&OsStr>> = cmd.as_std().get_envs().collect();
        assert_eq!(
            envs[OsStr::new("DOCKER_HOST")],
            Some(OsStr::new("tcp://daemon.example:2376"))
        );
        assert_eq!(envs[OsStr::new("DOCKER_TLS_VERIFY")], Some(OsStr::new("1")));
        assert_eq!(
            envs[OsStr::new("DOCKER_CERT_PATH")],
            Some(s.tls_dir("secure").as_os_str())
        );
        assert_eq!(envs[OsStr::new("DOCKER_CONTEXT")], None);

        let err = s
            .resolve(&flags(Some("half"), None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no cert.pem, key.pem"), "{err}");
        let err = s
            .resolve(&flags(Some("skip"), None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SkipTLSVerify is not supported"), "{err}");
    }

    #[test]
    fn tls_from_the_environment_and_flags() {
        let certs = tempfile::tempdir().unwrap();
        for f in TLS_FILES {
            std::fs::write(certs.path().join(f), "PEM").unwrap();
        }
        let certs_path = certs.path().display().to_string();
        let s = Setup::new()
            .set("DOCKER_HOST", "tcp://h")
            .set("DOCKER_TLS_VERIFY", "1")
            .set("DOCKER_CERT_PATH", &certs_path);
        let e = s.resolve(&NONE).unwrap();
        assert_eq!(
            (e.host.as_str(), e.tls),
            ("tcp://h:2376", Some(TlsDir(certs.path().into())))
        );
        // An empty DOCKER_TLS_VERIFY is off, as for docker and docker-compose.
        let s = s.set("DOCKER_TLS_VERIFY", "");
        let e = s.resolve(&NONE).unwrap();
        assert_eq!((e.host.as_str(), e.tls), ("tcp://h:2375", None));
        // Files named by flags must be the DOCKER_CERT_PATH layout.
        let odd = DockerOptions {
            tls_verify: true,
            tls_ca: Some("/etc/my-ca.crt".into()),
            ..NONE
        };
        let err = s.resolve(&odd).unwrap_err().to_string();
        assert!(err.contains("/etc/my-ca.crt"), "{err}");
        let plain_tls = DockerOptions { tls: true, ..NONE };
        let err = s.resolve(&plain_tls).unwrap_err().to_string();
        assert!(err.contains("without verifying"), "{err}");
    }

    #[test]
    fn addresses_are_checked() {
        let s = Setup::new();
        for (host, transport) in [
            (
                "unix:///run/d2.sock",
                Transport::Unix("/run/d2.sock".into()),
            ),
            ("tcp://10.0.0.1", Transport::Tcp("10.0.0.1:2375".into())),
            ("tcp://[::1]:2377/", Transport::Tcp("[::1]:2377".into())),
            ("tcp://[::1]", Transport::Tcp("[::1]:2375".into())),
            (
                "ssh://deploy@web1:2222",
                Transport::Ssh(SshTarget::parse("deploy@web1:2222").unwrap()),
            ),
        ] {
            let e = s.resolve(&flags(None, Some(host))).unwrap();
            assert_eq!(e.transport, transport, "{host}");
        }
        for (host, why) in [
            ("/var/run/docker.sock", "not a daemon address"),
            ("unix://run/x", "absolute"),
            ("ssh://web1/run/d 2.sock", "socket path"),
            ("ssh://u:pw@web1", "password"),
            ("tcp://h:1/path", "no path"),
            ("tcp://[::1", "unclosed `[`"),
            ("ssh://[::1]x:2", "only `:PORT` may follow `]`"),
            ("fd://", "systemd"),
            ("http://h", "unknown scheme"),
        ] {
            let err = s.resolve(&flags(None, Some(host))).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{host} (-H): ")), "{err}");
            assert!(err.contains(why), "{host}: {err}");
        }
        // From a context, the error names the context.
        let s = s.context("v6", "ssh://[::1]x");
        let err = s.resolve(&flags(Some("v6"), None)).unwrap_err().to_string();
        assert_eq!(
            err,
            "ssh://[::1]x (context v6, from --context): only `:PORT` may follow `]` in the host"
        );
    }

    /// What `tcp://` addresses get the default port, and which are refused
    /// before any connection, naming the address and who gave it.
    #[test]
    fn a_tcp_address_without_a_port_gets_the_default_one() {
        let s = Setup::new();
        for (authority, kept) in [
            ("host", "host:2375"),
            ("host:22", "host:22"),
            ("[::1]:22", "[::1]:22"),
            ("[::1]", "[::1]:2375"),
            ("::1", "::1"),
        ] {
            let e = s
                .resolve(&flags(None, Some(&format!("tcp://{authority}"))))
                .unwrap();
            assert_eq!(e.transport, Transport::Tcp(kept.into()), "{authority}");
        }
        for (host, why) in [
            ("tcp://[::1", "unclosed `[` in the host"),
            ("tcp://[::1]x:2", "only `:PORT` may follow `]` in the host"),
            ("tcp://[::1]x/", "only `:PORT` may follow `]` in the host"),
            ("tcp://host:x", "the port must be a number from 0 to 65535"),
        ] {
            let s = Setup::new().set("DOCKER_HOST", host);
            let err = s.resolve(&NONE).unwrap_err().to_string();
            assert_eq!(err, format!("{host} (DOCKER_HOST): {why}"));
        }
    }
}
