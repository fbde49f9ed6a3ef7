//! Finding the nginx container and what it runs: config path, mounts, networks.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::ListContainersOptionsBuilder;
use futures_util::future::join_all;

use super::cmdline::{NginxCommand, conf_path, nginx_command};
use super::procfs::{ProcessHere, container_process, local_proc};
use crate::docker::{self, ComposeRef, DaemonLocation, exec_in, is_not_found};

/// Compose service name looked for in the current project.
const NGINX_SERVICE: &str = "nginx";

/// A running container whose main process is nginx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxContainer {
    /// Full container id.
    pub id: String,
    /// Container name without the leading `/`.
    pub name: String,
    /// Its compose project and service, when compose made it.
    pub compose: Option<ComposeRef>,
    /// Main configuration file, as a path inside the container.
    pub conf_path: PathBuf,
    /// Its mounts (bind mounts and volumes).
    pub mounts: Vec<Mount>,
    /// Names of the networks it is attached to.
    pub networks: Vec<String>,
    /// How nginx was started (binary and global options to repeat for `-t`/`-s`).
    pub command: NginxCommand,
    /// Host pid of the container's main process when it was found (the nginx
    /// master, unless nginx runs under a wrapper); see [`NginxContainer::is_current`].
    pub main_pid: Option<u32>,
    /// `/proc/PID` of `main_pid` when this host's `/proc` showed it as the
    /// container's then: its going away tells that the container restarted.
    local_process: Option<ProcessHere>,
    /// Whether the daemon runs on this host: only then are its pids and
    /// mount sources this host's, and `/proc` or the files read directly.
    pub daemon: DaemonLocation,
}

/// One mount of a container, from `docker inspect`'s `Mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, …
    pub kind: String,
    /// Where the bytes live on the daemon's host (empty for tmpfs).
    pub source: PathBuf,
    /// Where the container sees them.
    pub destination: PathBuf,
    /// Mounted read-write.
    pub writable: bool,
}

/// Finds the nginx container: the one named `name` (name or id) if given;
/// else the compose service `nginx` of the compose project run from `cwd`
/// (or, failing that, that project's one container whose process is nginx);
/// else the one running container whose main process is nginx.
/// Several candidates, or none, is an error that says what was looked at.
/// `daemon` says whether `docker` runs on this host.
pub async fn find_nginx(
    docker: &Docker,
    daemon: DaemonLocation,
    name: Option<&str>,
    cwd: &Path,
) -> Result<NginxContainer> {
    if let Some(name) = name {
        let info = match docker.inspect_container(name, None).await {
            Err(e) if is_not_found(&e) => bail!("--nginx {name}: no such container"),
            other => other.with_context(|| format!("inspecting container {name}"))?,
        };
        return describe(docker, daemon, info, true).await;
    }
    let running = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .filters(&HashMap::from([("status", vec!["running"])]))
                .build(),
        ))
        .await
        .context("listing running containers")?;
    let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_path_buf());
    let project: Vec<&ContainerSummary> = running
        .iter()
        .filter(|c| compose_of(c).is_some_and(|r| project_in(&r, &cwd)))
        .collect();
    let (pool, place) = if project.is_empty() {
        (running.iter().collect(), "running containers".to_string())
    } else {
        let services: Vec<&ContainerSummary> = project
            .iter()
            .copied()
            .filter(|c| compose_of(c).is_some_and(|r| r.service == NGINX_SERVICE))
            .collect();
        if !services.is_empty() {
            let place = format!(
                "compose service `{NGINX_SERVICE}` of the project in {}",
                cwd.display()
            );
            let id = single(&services, &place)?;
            let info = docker
                .inspect_container(id, None)
                .await
                .with_context(|| format!("inspecting the {place}"))?;
            return describe(docker, daemon, info, true).await;
        }
        (project, format!("compose project in {}", cwd.display()))
    };
    let maybe_nginx: Vec<&str> = pool
        .iter()
        .filter(|c| {
            c.command
                .as_deref()
                .is_some_and(|cmd| cmd.contains("nginx"))
        })
        .filter_map(|c| c.id.as_deref())
        .collect();
    // Containers may vanish between listing and inspecting; they are no candidates.
    let mut inspected = Vec::new();
    for result in join_all(
        maybe_nginx
            .iter()
            .map(|id| docker.inspect_container(id, None)),
    )
    .await
    {
        match result {
            Err(e) if is_not_found(&e) => {}
            other => inspected.push(other.context("inspecting candidate containers")?),
        }
    }
    let mut found: Vec<ContainerInspectResponse> = inspected
        .into_iter()
        .filter(|i| nginx_command(i.path.as_deref().unwrap_or(""), args_of(i)).is_some())
        .collect();
    match found.len() {
        0 => bail!(
            "no nginx container found among {place} (looked for a compose service \
             `{NGINX_SERVICE}` of a project in {} and for containers whose main process is \
             nginx); name it with --nginx NAME",
            cwd.display()
        ),
        1 => describe(docker, daemon, found.remove(0), false).await,
        _ => bail!(
            "several nginx containers among {place}: {}; pick one with --nginx NAME",
            found.iter().map(label).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn compose_of(c: &ContainerSummary) -> Option<ComposeRef> {
    ComposeRef::from_labels(c.labels.as_ref()?)
}

/// True when the compose project was run from `cwd` (working dir, or a
/// compose file directly in `cwd`).
fn project_in(r: &ComposeRef, cwd: &Path) -> bool {
    let same = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()) == cwd;
    r.working_dir.as_deref().is_some_and(same)
        || r.config_files
            .iter()
            .any(|f| r.file_path(f).parent().is_some_and(same))
}

fn single<'a>(candidates: &[&'a ContainerSummary], place: &str) -> Result<&'a str> {
    match candidates {
        [one] => one
            .id
            .as_deref()
            .ok_or_else(|| anyhow!("container without id in {place}")),
        many => bail!(
            "several containers for the {place}: {}; pick one with --nginx NAME",
            many.iter()
                .map(|c| format!(
                    "{} ({})",
                    docker::listed_name(c),
                    docker::short_id(c.id.as_deref().unwrap_or("?"))
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `/proc/PID` of process `pid` of container `id`, when the daemon is local
/// and this host's `/proc` shows it.
fn process_here(daemon: DaemonLocation, pid: Option<u32>, id: &str) -> Option<ProcessHere> {
    container_process(local_proc(daemon)?, pid?, id)
}

/// The configure arguments (what `nginx -V` prints after "configure
/// arguments:") compiled into the binary of process `process` (`/proc/PID`):
/// saves a `docker exec`. `None` when the binary does not record a `--conf-path`.
fn configure_arguments(process: &Path) -> Option<String> {
    configure_string(&binary_head(&process.join("exe"))?)
}

/// How much of a container's nginx binary is searched for its configure
/// arguments. They are in `.rodata`, which linkers place next to the code,
/// before the data and any debug info: within the first few MiB of any
/// nginx (Debian's whole binary is about 1.3 MB). Where they are not found
/// within it, `nginx -V` is run instead.
const BINARY_SEARCHED: u64 = 16 << 20;

/// The first [`BINARY_SEARCHED`] bytes of the binary at `exe`.
fn binary_head(exe: &Path) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    std::fs::File::open(exe)
        .ok()?
        .take(BINARY_SEARCHED)
        .read_to_end(&mut head)
        .ok()?;
    Some(head)
}

/// The NUL-terminated string holding `--conf-path=` in a binary.
fn configure_string(binary: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"--conf-path=";
    let at = binary.windows(KEY.len()).position(|w| w == KEY)?;
    let start = binary[..at]
        .iter()
        .rposition(|b| *b == 0)
        .map_or(0, |i| i + 1);
    let end = at + binary[at..].iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&binary[start..end]).into_owned())
}

fn label(i: &ContainerInspectResponse) -> String {
    format!(
        "{} ({})",
        docker::name_of(i, "?"),
        docker::short_id(i.id.as_deref().unwrap_or("?"))
    )
}

fn args_of(i: &ContainerInspectResponse) -> &[String] {
    i.args.as_deref().unwrap_or(&[])
}

/// Host pid of an inspected container's main process, if it runs.
fn main_pid_of(info: &ContainerInspectResponse) -> Option<u32> {
    info.state
        .as_ref()
        .and_then(|s| s.pid)
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)
}

impl NginxContainer {
    /// Whether `main_pid` is still the container's main process, as far as
    /// this host can tell: not when there was none (the container was not
    /// running when inspected), nor once the process this host's `/proc`
    /// showed is gone (the container restarted). A remote daemon's pids are
    /// not checked.
    pub fn is_current(&self) -> bool {
        self.main_pid.is_some()
            && self
                .local_process
                .as_ref()
                .is_none_or(|p| p.is_alive_in(&self.id))
    }

    /// This container as it runs now: a restart (by anyone) gives it another
    /// main process, through which files and processes are read.
    pub async fn restarted(&self, docker: &Docker) -> Result<NginxContainer> {
        let info = docker
            .inspect_container(&self.id, None)
            .await
            .with_context(|| format!("inspecting nginx container {}", self.name))?;
        let main_pid = main_pid_of(&info);
        Ok(NginxContainer {
            main_pid,
            local_process: process_here(self.daemon, main_pid, &self.id),
            ..self.clone()
        })
    }
}

/// Builds the [`NginxContainer`] for an inspected container; `chosen` means
/// the user (or compose) designated it, so a main process other than nginx
/// falls back to `nginx` on the container's PATH instead of being an error.
async fn describe(
    docker: &Docker,
    daemon: DaemonLocation,
    info: ContainerInspectResponse,
    chosen: bool,
) -> Result<NginxContainer> {
    let name = docker::name_of(&info, "").to_string();
    let id = info
        .id
        .clone()
        .ok_or_else(|| anyhow!("container {name} has no id"))?;
    if !info.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
        bail!("nginx container {name} is not running");
    }
    let command = match nginx_command(info.path.as_deref().unwrap_or(""), args_of(&info)) {
        Some(cmd) => cmd,
        None if chosen => NginxCommand {
            binary: "nginx".into(),
            global_args: Vec::new(),
            conf: None,
            prefix: None,
        },
        None => bail!("container {name} does not run nginx as its main process"),
    };
    let main_pid = main_pid_of(&info);
    let local_process = process_here(daemon, main_pid, &id);
    let compiled_in = local_process
        .as_ref()
        .and_then(|p| configure_arguments(p.dir()));
    let conf_path = match (&command.conf, compiled_in) {
        (Some(c), _) if Path::new(c).is_absolute() => PathBuf::from(c),
        (_, Some(configure)) => conf_path(&command, &configure),
        _ => {
            let out = exec_in(docker, &name, &[command.binary.as_str(), "-V"]).await?;
            if !out.success() {
                bail!(
                    "`{} -V` failed in container {name} (exit {}): {}",
                    command.binary,
                    out.exit_code,
                    out.stderr.trim()
                );
            }
            conf_path(&command, &format!("{}{}", out.stdout, out.stderr))
        }
    };
    let mounts = info
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| Mount {
            kind: m.typ.unwrap_or_default(),
            source: PathBuf::from(m.source.unwrap_or_default()),
            destination: PathBuf::from(m.destination.unwrap_or_default()),
            writable: m.rw.unwrap_or(false),
        })
        .collect();
    let mut networks: Vec<String> = info
        .network_settings
        .and_then(|n| n.networks)
        .map(|n| n.into_keys().collect())
        .unwrap_or_default();
    networks.sort();
    let compose = info
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(ComposeRef::from_labels);
    Ok(NginxContainer {
        id,
        name,
        compose,
        conf_path,
        mounts,
        networks,
        command,
        main_pid,
        local_process,
        daemon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An nginx container `abc123` whose main process is `pid`, seen at `local_process`.
    fn container(pid: Option<u32>, local_process: Option<ProcessHere>) -> NginxContainer {
        NginxContainer {
            id: "abc123".into(),
            name: "proxy".into(),
            compose: None,
            conf_path: PathBuf::from("/etc/nginx/nginx.conf"),
            mounts: Vec::new(),
            networks: Vec::new(),
            command: nginx_command("nginx", &[]).unwrap(),
            main_pid: pid,
            local_process,
            daemon: DaemonLocation::Local,
        }
    }

    #[test]
    fn a_main_process_gone_from_proc_is_no_longer_current() {
        let tmp = tempfile::tempdir().unwrap();
        let process = super::super::procfs::fake_process(tmp.path(), 7, "abc123");
        let found = container_process(tmp.path(), 7, "abc123");
        let nginx = container(Some(7), found);
        assert!(nginx.is_current());
        // The container restarted: its old main process is gone.
        std::fs::remove_file(process.join("cgroup")).unwrap();
        assert!(!nginx.is_current());
        // Inspected while it was not running: no main process to go by.
        assert!(!container(None, None).is_current());
        // A pid this host's `/proc` never showed (a remote daemon's) is kept.
        assert!(container(Some(7), None).is_current());
    }

    #[test]
    fn finds_the_configure_string_in_a_binary() {
        let binary = b"\x7fELF\0\0nginx version: %s\0 --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf --with-debug\0tail\0";
        let configure = configure_string(binary).unwrap();
        assert_eq!(
            configure,
            " --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf --with-debug"
        );
        let cmd = nginx_command("nginx", &[]).unwrap();
        assert_eq!(
            conf_path(&cmd, &configure),
            PathBuf::from("/etc/nginx/nginx.conf")
        );
        assert_eq!(configure_string(b"\0busybox sh\0"), None);
    }

    #[test]
    fn only_the_head_of_a_binary_is_searched() {
        use std::io::{Seek, SeekFrom, Write};
        let tmp = tempfile::tempdir().unwrap();
        let head_of = |start: &[u8], past_the_bound: &[u8]| {
            let exe = tmp.path().join("nginx");
            let mut f = std::fs::File::create(&exe).unwrap();
            f.write_all(start).unwrap();
            f.seek(SeekFrom::Start(BINARY_SEARCHED)).unwrap();
            f.write_all(past_the_bound).unwrap();
            binary_head(&exe).unwrap()
        };
        let beyond = b"\0 --conf-path=/beyond.conf\0";
        let head = head_of(b"\0 --conf-path=/etc/nginx/nginx.conf\0", beyond);
        assert_eq!(head.len() as u64, BINARY_SEARCHED);
        assert_eq!(
            configure_string(&head).as_deref(),
            Some(" --conf-path=/etc/nginx/nginx.conf")
        );
        assert_eq!(configure_string(&head_of(b"\x7fELF", beyond)), None);
    }
}
