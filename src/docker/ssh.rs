//! `ssh://` daemons, reached as the docker CLI reaches them: every HTTP
//! connection is one `ssh [-l USER] [-p PORT] -- HOST docker [--host
//! unix://PATH] system dial-stdio`, spoken to over its stdin and stdout. The
//! local `ssh` does the login (its config, keys and agent apply); the remote
//! `docker` CLI connects to its daemon.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::host::split_host_port;

/// How much of what `ssh` printed on stderr is kept for an error message.
const STDERR_KEPT: usize = 2048;

/// An `ssh://[USER@]HOST[:PORT][/PATH]` address, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    user: Option<String>,
    host: String,
    port: Option<u16>,
    /// The daemon's socket on the remote host (docker CLI ≥ 24 takes it too).
    socket: Option<String>,
}

impl SshTarget {
    /// Parses the part after `ssh://`; the error says what is wrong.
    pub fn parse(rest: &str) -> Result<SshTarget, &'static str> {
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, _)) if user.contains(':') => {
                return Err("a password in the address is not supported (use a key or an agent)");
            }
            Some((user, hostport)) => (Some(user.to_string()), hostport),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() || host.starts_with('-') {
            return Err("expected ssh://[USER@]HOST[:PORT][/SOCKET]");
        }
        let socket = match path {
            "" | "/" => None,
            p if p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c)) =>
            {
                Some(p.to_string())
            }
            _ => return Err("the socket path may hold only letters, digits and /._-"),
        };
        Ok(SshTarget {
            user,
            host: host.to_string(),
            port,
            socket,
        })
    }

    /// The `ssh` command line for one connection.
    fn command(&self) -> Command {
        let mut cmd = Command::new("ssh");
        // -T: no terminal; BatchMode: never a prompt that nobody can answer.
        cmd.args(["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]);
        if let Some(user) = &self.user {
            cmd.arg("-l").arg(user);
        }
        if let Some(port) = self.port {
            cmd.arg("-p").arg(port.to_string());
        }
        cmd.arg("--").arg(&self.host).arg("docker");
        if let Some(socket) = &self.socket {
            cmd.arg(format!("--host=unix://{socket}"));
        }
        cmd.args(["system", "dial-stdio"]);
        cmd
    }
}

/// What the last `ssh` printed on stderr (its end), for error messages.
#[derive(Debug, Clone, Default)]
pub struct SshStderr(Arc<Mutex<String>>);

impl SshStderr {
    /// The text, trimmed; empty when ssh said nothing.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    fn push(&self, bytes: &[u8]) {
        if let Ok(mut s) = self.0.lock() {
            s.push_str(&String::from_utf8_lossy(bytes));
            if s.len() > STDERR_KEPT {
                let cut = s.len() - STDERR_KEPT;
                let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                s.drain(..cut);
            }
        }
    }
}

/// A bollard client whose connections are `ssh … docker system dial-stdio`.
pub fn client(
    target: &SshTarget,
    timeout_secs: u64,
) -> (Result<Docker, bollard::errors::Error>, SshStderr) {
    let stderr = SshStderr::default();
    let dialer = Dialer {
        target: Arc::new(target.clone()),
        stderr: stderr.clone(),
    };
    let client = Arc::new(Client::builder(TokioExecutor::new()).build(dialer));
    let docker = Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = Arc::clone(&client);
            Box::pin(async move {
                client
                    .request(request)
                    .await
                    .map_err(bollard::errors::Error::from)
            }) as Pin<Box<dyn Future<Output = _> + Send>>
        },
        Some("http://docker"),
        timeout_secs,
        API_DEFAULT_VERSION,
    );
    (docker, stderr)
}

/// Opens connections: one `ssh` process each.
#[derive(Clone)]
struct Dialer {
    target: Arc<SshTarget>,
    stderr: SshStderr,
}

impl tower_service::Service<hyper::Uri> for Dialer {
    type Response = TokioIo<DialStdio>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let target = Arc::clone(&self.target);
        let log = self.stderr.clone();
        Box::pin(async move {
            let mut child = target
                .command()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("cannot run `ssh`: {e}")))?;
            let (Some(stdin), Some(stdout), Some(mut err)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(io::Error::other("ssh started without its pipes"));
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                while let Ok(n @ 1..) = err.read(&mut buf).await {
                    log.push(&buf[..n]);
                }
            });
            Ok(TokioIo::new(DialStdio {
                _child: child,
                stdin: Some(stdin),
                stdout,
            }))
        })
    }
}

/// One `ssh … dial-stdio` process as a byte stream: what is written goes to
/// its stdin, what it prints is read. Shutting down closes its stdin, which
/// the remote end sees as the end of the request (a half-close).
struct DialStdio {
    _child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
}

impl Connection for DialStdio {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for DialStdio {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl DialStdio {
    fn stdin(&mut self) -> io::Result<Pin<&mut ChildStdin>> {
        self.stdin
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }
}

impl AsyncWrite for DialStdio {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stdin()?.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stdin()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(stdin) = self.stdin.as_mut() {
            std::task::ready!(Pin::new(stdin).poll_shutdown(cx))?;
        }
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        socket: Option<&str>,
    ) -> SshTarget {
        SshTarget {
            user: user.map(String::from),
            host: host.into(),
            port,
            socket: socket.map(String::from),
        }
    }

    #[test]
    fn addresses_are_taken_apart_as_docker_does() {
        for (rest, expected) in [
            ("web1", target(None, "web1", None, None)),
            (
                "deploy@web1:2222",
                target(Some("deploy"), "web1", Some(2222), None),
            ),
            (
                "root@127.0.0.1:2222/",
                target(Some("root"), "127.0.0.1", Some(2222), None),
            ),
            ("[::1]:22", target(None, "::1", Some(22), None)),
            ("a@[fe80::1]", target(Some("a"), "fe80::1", None, None)),
            (
                "web1/run/d2.sock",
                target(None, "web1", None, Some("/run/d2.sock")),
            ),
        ] {
            assert_eq!(SshTarget::parse(rest), Ok(expected), "{rest}");
        }
        for bad in [
            "",
            "a:b@web1",
            "web1:x",
            "-oProxyCommand=x",
            "web1/a b",
            "[::1",
            "[::1]x:2",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad}");
        }
    }

    /// How `HOST[:PORT]` reads (`host.rs`'s `split_host_port`, shared
    /// with `tcp://`) in a whole `ssh://` address: a malformed `[ ]` refused.
    #[test]
    fn host_and_port_are_split_and_a_malformed_bracket_refused() {
        for (rest, expected) in [
            ("host", Ok(target(None, "host", None, None))),
            ("host:22", Ok(target(None, "host", Some(22), None))),
            ("[::1]:22", Ok(target(None, "::1", Some(22), None))),
            ("[::1]", Ok(target(None, "::1", None, None))),
            (
                "u@[::1]/run/d.sock",
                Ok(target(Some("u"), "::1", None, Some("/run/d.sock"))),
            ),
            ("[::1", Err("unclosed `[` in the host")),
            ("u@[::1/run/d.sock", Err("unclosed `[` in the host")),
            ("[::1]x", Err("only `:PORT` may follow `]` in the host")),
            ("[::1]x:2", Err("only `:PORT` may follow `]` in the host")),
            (
                "u@[::1]x:2/run/d.sock",
                Err("only `:PORT` may follow `]` in the host"),
            ),
            ("::1", Ok(target(None, ":", Some(1), None))),
        ] {
            assert_eq!(SshTarget::parse(rest), expected, "{rest}");
        }
    }

    #[test]
    fn the_command_is_the_docker_clis() {
        let cmd = target(Some("deploy"), "web1", Some(2222), Some("/run/d2.sock")).command();
        let args: Vec<_> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-T",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=30",
                "-l",
                "deploy",
                "-p",
                "2222",
                "--",
                "web1",
                "docker",
                "--host=unix:///run/d2.sock",
                "system",
                "dial-stdio"
            ]
        );
    }
}
