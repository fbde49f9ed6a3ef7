//! Shortcuts through `/proc` when the daemon runs on this host: reading a
//! container's processes directly saves a daemon round trip (`top`, `exec`).
use std::path::{Path, PathBuf};

use crate::docker::DaemonLocation;

/// Set (to anything but empty) to never take these shortcuts.
pub const DISABLE_VAR: &str = "NGINX_ROLLOUT_NO_PROCFS";

/// This host's `/proc`, when the shortcuts may be taken for a daemon at
/// `daemon`: only a local daemon's pids are this host's, and [`DISABLE_VAR`]
/// turns them off for that one too.
pub fn local_proc(daemon: DaemonLocation) -> Option<&'static Path> {
    let disabled = std::env::var_os(DISABLE_VAR).is_some_and(|v| !v.is_empty());
    (daemon == DaemonLocation::Local && !disabled).then_some(Path::new("/proc"))
}

/// A process of a container as this host's `/proc` shows it: its directory
/// (`PROC/PID`), and when it started, so that another process given the same
/// pid later is never taken for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessHere {
    dir: PathBuf,
    /// Its start time (`stat` field 22), where `/proc` gives one.
    started: Option<u64>,
}

impl ProcessHere {
    /// Its `/proc` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process at `dir`, whatever it belongs to (for tests of its users).
    #[cfg(test)]
    pub fn at(dir: &Path) -> ProcessHere {
        ProcessHere {
            dir: dir.to_path_buf(),
            started: start_time(dir),
        }
    }

    /// Whether it still runs, as a process of container `id`.
    pub fn is_alive_in(&self, id: &str) -> bool {
        belongs(&self.dir, id) && start_time(&self.dir) == self.started
    }
}

/// Process `pid` in `proc` (e.g. `/proc/1234`) if it belongs to container
/// `id`: its cgroup names the container, so a pid from another pid namespace
/// (the daemon on another host, or this tool in a container) is never
/// mistaken for it. `None` means "ask the daemon".
pub fn container_process(proc: &Path, pid: u32, id: &str) -> Option<ProcessHere> {
    let dir = proc.join(pid.to_string());
    let started = start_time(&dir);
    belongs(&dir, id).then_some(ProcessHere { dir, started })
}

/// Whether process directory `dir` (`PROC/PID`) is a live process of container `id`.
fn belongs(dir: &Path, id: &str) -> bool {
    !id.is_empty()
        && std::fs::read_to_string(dir.join("cgroup")).is_ok_and(|cgroup| cgroup.contains(id))
}

/// The start time of the process at `dir` (field 22 of its `stat`, after the
/// name in parentheses, which may hold anything).
fn start_time(dir: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let fields = &stat[stat.rfind(')')? + 1..];
    fields.split_whitespace().nth(19)?.parse().ok()
}

/// Makes process `pid` of container `id` in a fake procfs `proc` (its
/// cgroup names the container), for tests; its directory.
#[cfg(test)]
pub fn fake_process(proc: &Path, pid: u32, id: &str) -> PathBuf {
    let dir = proc.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cgroup"), format!("0::/docker/{id}\n")).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_of_that_container() {
        let tmp = tempfile::tempdir().unwrap();
        fake_process(tmp.path(), 7, "abc123");
        assert_eq!(
            container_process(tmp.path(), 7, "abc123").map(|p| p.dir().to_path_buf()),
            Some(tmp.path().join("7"))
        );
        assert_eq!(container_process(tmp.path(), 7, "def"), None);
        assert_eq!(container_process(tmp.path(), 7, ""), None);
        assert_eq!(container_process(tmp.path(), 8, "abc123"), None);
    }

    #[test]
    fn another_process_given_the_same_pid_is_not_the_one_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fake_process(tmp.path(), 7, "abc123");
        let stat = |start: u64| {
            format!("7 (nginx: (a) b) S 1 7 7 0 -1 4 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n")
        };
        std::fs::write(dir.join("stat"), stat(4242)).unwrap();
        let found = container_process(tmp.path(), 7, "abc123").unwrap();
        assert!(found.is_alive_in("abc123"));
        // The container restarted and a process of its new run got pid 7.
        std::fs::write(dir.join("stat"), stat(9000)).unwrap();
        assert!(!found.is_alive_in("abc123"));
    }

    #[test]
    fn never_for_a_remote_daemon() {
        assert_eq!(local_proc(DaemonLocation::Remote), None);
    }
}
