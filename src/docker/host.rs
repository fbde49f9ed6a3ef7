//! A daemon's address as the docker CLI reads it (`unix://`, `tcp://`,
//! `ssh://`): the [`Transport`] it names, and the one `HOST[:PORT]` rule that
//! `tcp://` and `ssh://` share. Which address is used is `choose.rs`'s choice.
use super::ssh::SshTarget;

/// How the daemon is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Transport {
    /// A unix socket (its path).
    Unix(String),
    /// HTTP over TCP, with TLS when the endpoint has TLS files (`host:port`).
    Tcp(String),
    /// `docker system dial-stdio` over ssh.
    Ssh(SshTarget),
}

/// Checks a daemon address the way docker's `ParseHost` does: `unix://PATH`,
/// `tcp://HOST[:PORT]` (port 2375, or 2376 with TLS) or
/// `ssh://[USER@]HOST[:PORT][/SOCKET]`.
/// Returns the address as written for child CLIs and the transport, or
/// what is wrong with it.
pub(super) fn parse_host(host: &str, tls: bool) -> Result<(String, Transport), &'static str> {
    let (scheme, rest) = host
        .split_once("://")
        .ok_or("not a daemon address: unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]")?;
    match scheme {
        "unix" if rest.starts_with('/') => Ok((host.into(), Transport::Unix(rest.into()))),
        "unix" => Err("the socket path must be absolute"),
        "tcp" => {
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            if authority.is_empty() || authority.contains('/') {
                return Err("expected tcp://HOST[:PORT], with no path");
            }
            let (_, port) = split_host_port(authority)?;
            let authority = if port.is_some() {
                authority.to_string()
            } else {
                format!("{authority}:{}", if tls { 2376 } else { 2375 })
            };
            Ok((format!("tcp://{authority}"), Transport::Tcp(authority)))
        }
        "ssh" => {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let target = SshTarget::parse(rest)?;
            Ok((format!("ssh://{rest}"), Transport::Ssh(target)))
        }
        "fd" => Err("fd:// is systemd socket activation, for dockerd itself"),
        "npipe" => Err("named pipes exist on Windows only"),
        _ => Err("unknown scheme: unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]"),
    }
}

/// Splits a daemon address's `HOST[:PORT]` as docker does (Go's
/// `url.Parse`): a host in `[ ]` (an IPv6 address) must be closed and may be
/// followed only by `:PORT`; otherwise the last `:` starts the port. Returns
/// the host without its brackets (ssh's `HOST` argument must not have them)
/// and the port, which must be a number (docker's `ParseTCPAddr` refuses
/// `HOST:x` and `HOST:` too). The one rule for `tcp://` (which keeps the
/// address whole for the HTTP client and asks only whether it has a port)
/// and `ssh://` (`SshTarget::parse`).
pub(super) fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("unclosed `[` in the host")?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or("only `:PORT` may follow `]` in the host")?,
                ),
            };
            (host, port)
        }
        None => match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        },
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| "the port must be a number from 0 to 65535")
        })
        .transpose()?;
    Ok((host, port))
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The one `HOST[:PORT]` rule of `tcp://` and `ssh://` addresses.
    #[test]
    fn host_and_port_are_split_as_docker_splits_them() {
        for (hostport, expected) in [
            ("host", Ok(("host", None))),
            ("host:22", Ok(("host", Some(22)))),
            ("[::1]:22", Ok(("::1", Some(22)))),
            ("[::1]", Ok(("::1", None))),
            ("[::1", Err("unclosed `[` in the host")),
            ("[::1]x", Err("only `:PORT` may follow `]` in the host")),
            ("[::1]x:2", Err("only `:PORT` may follow `]` in the host")),
            // Unbracketed, the last `:` starts the port, as in Go's url.Parse.
            ("::1", Ok((":", Some(1)))),
            // The port is a number, as docker's ParseTCPAddr wants it.
            ("host:x", Err("the port must be a number from 0 to 65535")),
            ("host:", Err("the port must be a number from 0 to 65535")),
            (
                "host:65536",
                Err("the port must be a number from 0 to 65535"),
            ),
            ("[::1]:x", Err("the port must be a number from 0 to 65535")),
        ] {
            assert_eq!(split_host_port(hostport), expected, "{hostport}");
        }
    }
}
