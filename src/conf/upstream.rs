//! The typed view of `upstream` blocks: servers, their addresses and parameters.
use super::error::{ConfError, Place};
use super::tree::{Doc, LineIndex};
use serde::Serialize;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// The nginx context an upstream lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Context {
    /// `http { upstream … }`
    Http,
    /// `stream { upstream … }`
    Stream,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Context::Http => "http",
            Context::Stream => "stream",
        })
    }
}

/// An `upstream` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Upstream {
    /// Its name.
    pub name: String,
    /// `http` or `stream`.
    pub context: Context,
    /// File that holds it.
    pub file: PathBuf,
    /// 1-based line of the `upstream` directive.
    pub line: usize,
    /// Where the `upstream` directive is, for errors about it.
    #[serde(skip)]
    pub place: Place,
    /// Its `server` directives, in order.
    pub servers: Vec<Server>,
    /// `zone name [size];`
    pub zone: Option<Zone>,
    /// `keepalive N;`
    pub keepalive: Option<u32>,
    /// The load-balancing directive, when not round-robin.
    pub balancing: Option<Balancing>,
    /// Everything between its braces, as written (for [`super::Edit::ReplaceBody`]).
    #[serde(skip)]
    pub body: String,
}

impl Upstream {
    /// Servers that are neither `down` nor `backup`.
    pub fn live_servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(|s| s.is_live())
    }

    /// Whether the server written as `address` is marked `down`.
    pub fn is_down(&self, address: &str) -> bool {
        self.servers
            .iter()
            .any(|s| s.address == address && s.is_down())
    }

    /// Whether `name`, as the commands take it (`apps`, `http:apps`), may
    /// designate this upstream.
    pub fn is_named(&self, name: &str) -> bool {
        super::may_name_the_same_upstream(name, &format!("{}:{}", self.context, self.name))
    }

    /// The line that stands for the server written as `address`: its own, or
    /// the line pinned to nowhere from it (its container gone).
    pub fn line_for(&self, address: &str) -> Option<&Server> {
        self.servers
            .iter()
            .find(|s| s.address == address || s.pinned_from.as_deref() == Some(address))
    }

    /// The server `name` designates: the one whose address is written so, else
    /// the only one with that host. Anything else is an error that lists the
    /// servers there are. The one rule for naming a server, everywhere.
    ///
    /// An address written on more than one `server` line is refused: nginx
    /// sends each of them traffic, so draining one would leave its twin
    /// serving while the tool said the server was drained.
    pub fn server(&self, name: &str) -> Result<&Server, ConfError> {
        let same: Vec<&Server> = self.servers.iter().filter(|s| s.address == name).collect();
        match same.as_slice() {
            [one] => return Ok(one),
            [first, ..] => {
                let lines: Vec<String> = same.iter().map(|s| s.line.to_string()).collect();
                return Err(ConfError::at(
                    format!(
                        "server \"{name}\" is listed {} times in upstream \"{}\" (lines {} of {}): nginx sends \
                         traffic to each, so one `down` would leave the others serving; remove the duplicates \
                         (or give them different addresses) first",
                        same.len(),
                        self.name,
                        lines.join(", "),
                        first.file.display()
                    ),
                    self.place.clone(),
                ));
            }
            [] => {}
        }
        let by_host: Vec<&Server> = self.servers.iter().filter(|s| s.host == name).collect();
        if let [one] = by_host.as_slice() {
            return Ok(one);
        }
        if let Some(first) = by_host.first()
            && by_host.iter().all(|s| s.address == first.address)
        {
            return self.server(&first.address);
        }
        let list: Vec<&str> = self.servers.iter().map(|s| s.address.as_str()).collect();
        Err(ConfError::at(
            format!(
                "{} server \"{name}\" in upstream \"{}\" (available: {})",
                if by_host.is_empty() {
                    "unknown"
                } else {
                    "ambiguous"
                },
                self.name,
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(", ")
                }
            ),
            self.place.clone(),
        ))
    }
}

/// Whether a server takes regular traffic, as one word (`up`, `down`,
/// `backup`): the single home of that word for `status` and `conf upstreams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerMode {
    /// Neither `down` nor `backup`.
    Up,
    /// Marked `down`.
    Down,
    /// Marked `backup` (and not `down`).
    Backup,
}

impl fmt::Display for ServerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerMode::Up => "up",
            ServerMode::Down => "down",
            ServerMode::Backup => "backup",
        })
    }
}

/// `zone name [size];`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Zone {
    /// Shared memory zone name.
    pub name: String,
    /// Size as written (`64k`), if given.
    pub size: Option<String>,
}

/// Load-balancing method of an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Balancing {
    /// `ip_hash;`
    IpHash,
    /// `hash key [consistent];`
    Hash {
        /// The key expression.
        key: String,
        /// Ketama consistent hashing.
        consistent: bool,
    },
    /// `least_conn;`
    LeastConn,
    /// `random [two [method]];`
    Random {
        /// Arguments as written.
        args: Vec<String>,
    },
}

/// How a server address is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// A host name, with or without `:port`.
    Name,
    /// An IPv4 address, with or without `:port`.
    Ipv4,
    /// `[IPv6]` with or without `:port`.
    Ipv6,
    /// `unix:/path`.
    Unix,
}

/// A `server` parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "name", content = "value")]
pub enum Param {
    /// `weight=N`
    Weight(u32),
    /// `max_fails=N`
    MaxFails(u32),
    /// `fail_timeout=T`
    FailTimeout(String),
    /// `max_conns=N`
    MaxConns(u32),
    /// `backup`
    Backup,
    /// `down`
    Down,
    /// `drain`
    Drain,
    /// `resolve`
    Resolve,
    /// `service=NAME`
    Service(String),
    /// `slow_start=T`
    SlowStart(String),
    /// `route=STRING`
    Route(String),
    /// Anything else, as written.
    Other(String),
}

impl Param {
    /// Classifies one parameter as written.
    pub fn parse(s: &str) -> Param {
        let (k, v) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        };
        let num = |v: &str| v.parse::<u32>().ok();
        match (k, v) {
            ("weight", Some(v)) if num(v).is_some() => Param::Weight(num(v).unwrap_or(1)),
            ("max_fails", Some(v)) if num(v).is_some() => Param::MaxFails(num(v).unwrap_or(1)),
            ("max_conns", Some(v)) if num(v).is_some() => Param::MaxConns(num(v).unwrap_or(0)),
            ("fail_timeout", Some(v)) => Param::FailTimeout(v.into()),
            ("service", Some(v)) => Param::Service(v.into()),
            ("slow_start", Some(v)) => Param::SlowStart(v.into()),
            ("route", Some(v)) => Param::Route(v.into()),
            ("backup", None) => Param::Backup,
            ("down", None) => Param::Down,
            ("drain", None) => Param::Drain,
            ("resolve", None) => Param::Resolve,
            _ => Param::Other(s.into()),
        }
    }
}

/// Whether `v` is an nginx time (`10s`, `1m30s`, `500ms`, a bare number of seconds).
fn is_time(v: &str) -> bool {
    if v.is_empty() {
        return false;
    }
    let mut rest = v;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "M", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return rest.is_empty(),
        }
    }
    true
}

impl Param {
    /// Whether nginx takes `weight=n`: 1 up to its largest `int`.
    pub fn is_weight(n: u32) -> bool {
        (1..=i32::MAX as u32).contains(&n)
    }

    /// A parameter to write on a new `server` line: one nginx knows, with a
    /// value it accepts; anything else is an error listing the parameters.
    pub fn check(written: &str) -> Result<Param, ConfError> {
        let p = Param::parse(written);
        let ok = match &p {
            Param::Weight(n) => Param::is_weight(*n),
            Param::FailTimeout(t) | Param::SlowStart(t) => is_time(t),
            Param::Service(v) | Param::Route(v) => !v.is_empty(),
            Param::Other(_) => false,
            _ => true,
        };
        if ok {
            return Ok(p);
        }
        Err(ConfError::new(format!(
            "invalid server parameter \"{written}\" (parameters: weight=N (N >= 1), max_fails=N, fail_timeout=TIME, max_conns=N, backup, down, resolve, service=NAME, slow_start=TIME, route=STRING, drain)"
        )))
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Weight(n) => write!(f, "weight={n}"),
            Param::MaxFails(n) => write!(f, "max_fails={n}"),
            Param::MaxConns(n) => write!(f, "max_conns={n}"),
            Param::FailTimeout(v) => write!(f, "fail_timeout={v}"),
            Param::Service(v) => write!(f, "service={v}"),
            Param::SlowStart(v) => write!(f, "slow_start={v}"),
            Param::Route(v) => write!(f, "route={v}"),
            Param::Backup => f.write_str("backup"),
            Param::Down => f.write_str("down"),
            Param::Drain => f.write_str("drain"),
            Param::Resolve => f.write_str("resolve"),
            Param::Other(s) => f.write_str(s),
        }
    }
}

/// A `server` directive of an upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Server {
    /// The address exactly as written (`app2:3000`).
    pub address: String,
    /// Host part: name, IPv4, IPv6 without brackets, or the socket path.
    pub host: String,
    /// Port, when written.
    pub port: Option<u16>,
    /// How the address is written.
    pub kind: AddressKind,
    /// Parameters in order.
    pub params: Vec<Param>,
    /// File that holds it.
    pub file: PathBuf,
    /// 1-based line of the `server` directive.
    pub line: usize,
    /// 1-based column (bytes) of the `server` directive.
    pub column: usize,
    /// The statement as written, from `server` to `;` (to put a pinned line back).
    #[serde(skip)]
    pub statement: String,
    /// For a line pinned by a rollout, the operator's line it stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_from: Option<String>,
    /// Its statement in the parsed file.
    #[serde(skip)]
    pub(crate) stmt: u32,
}

impl Server {
    /// Marked `down`.
    pub fn is_down(&self) -> bool {
        self.params.contains(&Param::Down)
    }

    /// Marked `backup`.
    pub fn is_backup(&self) -> bool {
        self.params.contains(&Param::Backup)
    }

    /// Takes regular traffic: neither `down` nor `backup`.
    pub fn is_live(&self) -> bool {
        !self.is_down() && !self.is_backup()
    }

    /// Its `weight=` as written (none: nginx's default, 1).
    pub fn weight(&self) -> Option<u32> {
        self.params.iter().find_map(|p| match p {
            Param::Weight(w) => Some(*w),
            _ => None,
        })
    }

    /// `up`, `down` or `backup`.
    pub fn mode(&self) -> ServerMode {
        if self.is_down() {
            ServerMode::Down
        } else if self.is_backup() {
            ServerMode::Backup
        } else {
            ServerMode::Up
        }
    }

    /// Where the line is written, as `file:line`: the one spelling of it in
    /// tables and messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// A server address split the way nginx reads it: `host[:port]`,
/// `[IPv6][:port]` or `unix:/path`. The one home for host/port splitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Host part: name, IPv4, IPv6 without brackets, or the socket path.
    pub host: String,
    /// Port, when written.
    pub port: Option<u16>,
    /// How the address is written.
    pub kind: AddressKind,
}

impl Address {
    /// Splits an address as written.
    pub fn parse(written: &str) -> Address {
        if let Some(path) = written.strip_prefix("unix:") {
            return Address {
                host: path.to_string(),
                port: None,
                kind: AddressKind::Unix,
            };
        }
        if let Some(rest) = written.strip_prefix('[')
            && let Some((host, after)) = rest.split_once(']')
            && host.parse::<Ipv6Addr>().is_ok()
        {
            return Address {
                host: host.to_string(),
                port: after.strip_prefix(':').and_then(|p| p.parse().ok()),
                kind: AddressKind::Ipv6,
            };
        }
        let (host, port) = match written.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h, p.parse().ok())
            }
            _ => (written, None),
        };
        let kind = if host.parse::<Ipv4Addr>().is_ok() {
            AddressKind::Ipv4
        } else {
            AddressKind::Name
        };
        Address {
            host: host.to_string(),
            port,
            kind,
        }
    }

    /// The address `written` with another host and the same port
    /// (`app1:3000` + `app1-b` → `app1-b:3000`; without a port, just the host).
    pub fn with_host(written: &str, host: &str) -> String {
        match Address::parse(written).port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }
}

/// Reads the typed view of upstream statement `us` of `doc`.
pub(crate) fn read(
    doc: &Doc,
    lines: &LineIndex,
    file: &Path,
    us: u32,
    context: Context,
) -> Upstream {
    let pos = |s: u32| doc.span(doc.stmt(s).first).start;
    let mut up = Upstream {
        name: doc.arg_values(us).into_iter().next().unwrap_or_default(),
        context,
        file: file.to_path_buf(),
        line: lines.line(pos(us)),
        place: lines.place(file, doc.bytes(), pos(us)),
        servers: Vec::new(),
        zone: None,
        keepalive: None,
        balancing: None,
        body: super::edit::body(doc, us),
    };
    for s in doc.children(Some(us)).filter(|&s| !doc.is_comment(s)) {
        let args = doc.arg_values(s);
        match doc.name(s).as_slice() {
            b"server" if !args.is_empty() && !doc.is_block(s) => {
                let Address { host, port, kind } = Address::parse(&args[0]);
                up.servers.push(Server {
                    address: args[0].clone(),
                    host,
                    port,
                    kind,
                    params: args[1..].iter().map(|a| Param::parse(a)).collect(),
                    file: file.to_path_buf(),
                    line: lines.line(pos(s)),
                    column: lines.column(pos(s)),
                    statement: String::from_utf8_lossy(&doc.bytes()[doc.stmt_range(s)])
                        .into_owned(),
                    pinned_from: super::pin::pinned_from(doc, us, s),
                    stmt: s,
                });
            }
            b"zone" if !args.is_empty() => {
                up.zone = Some(Zone {
                    name: args[0].clone(),
                    size: args.get(1).cloned(),
                })
            }
            b"keepalive" => up.keepalive = args.first().and_then(|a| a.parse().ok()),
            b"ip_hash" => up.balancing = Some(Balancing::IpHash),
            b"least_conn" => up.balancing = Some(Balancing::LeastConn),
            b"random" => up.balancing = Some(Balancing::Random { args }),
            b"hash" if !args.is_empty() => {
                up.balancing = Some(Balancing::Hash {
                    key: args[0].clone(),
                    consistent: args.get(1).is_some_and(|a| a == "consistent"),
                })
            }
            _ => {}
        }
    }
    up
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_kinds() {
        let parts = |a: &str| {
            let a = Address::parse(a);
            (a.host, a.port, a.kind)
        };
        assert_eq!(
            parts("app2:3000"),
            ("app2".into(), Some(3000), AddressKind::Name)
        );
        assert_eq!(
            parts("10.0.0.1"),
            ("10.0.0.1".into(), None, AddressKind::Ipv4)
        );
        assert_eq!(
            parts("[::1]:8080"),
            ("::1".into(), Some(8080), AddressKind::Ipv6)
        );
        assert_eq!(
            parts("unix:/tmp/a.sock"),
            ("/tmp/a.sock".into(), None, AddressKind::Unix)
        );
    }

    #[test]
    fn another_host_keeps_the_port() {
        assert_eq!(Address::with_host("app1:3000", "app1-b"), "app1-b:3000");
        assert_eq!(Address::with_host("app1", "app1-b"), "app1-b");
        assert_eq!(Address::with_host("[::1]:80", "web"), "web:80");
    }

    #[test]
    fn params_round_trip_as_written() {
        for p in [
            "weight=5",
            "max_fails=3",
            "fail_timeout=10s",
            "backup",
            "down",
            "max_conns=9",
            "resolve",
            "service=http",
            "slow_start=30s",
            "route=a",
            "drain",
            "weight=x",
            "foo",
        ] {
            assert_eq!(Param::parse(p).to_string(), p);
        }
        assert_eq!(Param::parse("weight=x"), Param::Other("weight=x".into()));
    }

    #[test]
    fn new_parameters_are_checked_like_nginx() {
        for ok in [
            "weight=3",
            "max_fails=0",
            "fail_timeout=1m30s",
            "backup",
            "slow_start=500ms",
        ] {
            assert_eq!(Param::check(ok).unwrap().to_string(), ok);
        }
        for bad in [
            "weight=0",
            "weight=x",
            "wieght=2",
            "fail_timeout=10x",
            "fail_timeout=",
        ] {
            let e = Param::check(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("\"{bad}\"")) && e.contains("max_fails=N"),
                "{e}"
            );
        }
    }
}
