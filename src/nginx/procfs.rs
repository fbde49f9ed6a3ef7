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

/// `PROC/PID` (e.g. `/proc/1234`) if that process belongs to container `id`:
/// its cgroup names the container, so a pid from another pid namespace (the
/// daemon on another host, or this tool in a container) is never mistaken
/// for it. `None` means "ask the daemon".
pub fn container_process(proc: &Path, pid: u32, id: &str) -> Option<PathBuf> {
    let dir = proc.join(pid.to_string());
    belongs(&dir, id).then_some(dir)
}

/// Whether process directory `dir` (`PROC/PID`) is a live process of container `id`.
pub fn belongs(dir: &Path, id: &str) -> bool {
    !id.is_empty()
        && std::fs::read_to_string(dir.join("cgroup")).is_ok_and(|cgroup| cgroup.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_of_that_container() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("7")).unwrap();
        std::fs::write(tmp.path().join("7/cgroup"), "0::/docker/abc123\n").unwrap();
        assert_eq!(
            container_process(tmp.path(), 7, "abc123"),
            Some(tmp.path().join("7"))
        );
        assert_eq!(container_process(tmp.path(), 7, "def"), None);
        assert_eq!(container_process(tmp.path(), 7, ""), None);
        assert_eq!(container_process(tmp.path(), 8, "abc123"), None);
    }

    #[test]
    fn never_for_a_remote_daemon() {
        assert_eq!(local_proc(DaemonLocation::Remote), None);
    }
}
