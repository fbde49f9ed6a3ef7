//! The nginx container's master and worker processes.
//!
//! Read from `/proc` when the daemon runs on this host and the container's
//! main process is the nginx master (a few file reads, no daemon round trip),
//! else through the top API (the daemon runs `ps`: about 20 ms a call).
use std::path::Path;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::query_parameters::TopOptions;

use super::NginxContainer;
use super::procfs::{container_process, local_proc};

/// nginx processes of a container, by host pid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workers {
    /// Workers serving with the current configuration.
    pub active: Vec<u32>,
    /// Old workers finishing their requests (`worker process is shutting down`).
    pub shutting_down: Vec<u32>,
    /// The master process.
    pub master: u32,
}

/// Lists the container's nginx master and workers.
pub async fn worker_pids(docker: &Docker, nginx: &NginxContainer) -> Result<Workers> {
    if let Some(workers) = nginx
        .main_pid
        .zip(local_proc(nginx.daemon))
        .and_then(|(pid, proc)| from_proc(proc, pid, &nginx.id))
    {
        return Ok(workers);
    }
    let top = docker
        .top_processes(
            &nginx.id,
            Some(TopOptions {
                ps_args: "-eo pid,ppid,args".into(),
            }),
        )
        .await
        .with_context(|| format!("listing processes of container {}", nginx.name))?;
    let titles = top.titles.unwrap_or_default();
    parse_top(&titles, &top.processes.unwrap_or_default())
        .with_context(|| format!("reading processes of container {}", nginx.name))
}

/// The master `pid` and its children from `proc` (a procfs root), if `pid`
/// is an nginx master in container `id`. `None` when anything is missing:
/// the caller asks the daemon instead.
fn from_proc(proc: &Path, pid: u32, id: &str) -> Option<Workers> {
    let process = container_process(proc, pid, id)?;
    let dir = process.dir();
    if !title(dir)?.starts_with(MASTER) {
        return None;
    }
    let children =
        std::fs::read_to_string(dir.join("task").join(pid.to_string()).join("children")).ok()?;
    let mut workers = Workers {
        master: pid,
        ..Workers::default()
    };
    for child in children.split_whitespace() {
        let Ok(child) = child.parse::<u32>() else {
            continue;
        };
        // A child that exited between the two reads has no title: it is gone.
        if let Some(title) = title(&proc.join(child.to_string())) {
            workers.classify(child, &title);
        }
    }
    workers.sort();
    Some(workers)
}

/// A process's title (nginx rewrites its argv): `/proc/PID/cmdline`, NULs as spaces.
fn title(dir: &Path) -> Option<String> {
    let raw = std::fs::read(dir.join("cmdline")).ok()?;
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some(text.trim().to_string())
}

const MASTER: &str = "nginx: master process";
const SHUTTING_DOWN: &str = "nginx: worker process is shutting down";
const WORKER: &str = "nginx: worker process";

impl Workers {
    /// Files process `pid` with title `cmd` as a worker (active or shutting down).
    fn classify(&mut self, pid: u32, cmd: &str) {
        if cmd.starts_with(SHUTTING_DOWN) {
            self.shutting_down.push(pid);
        } else if cmd.starts_with(WORKER) {
            self.active.push(pid);
        }
    }

    fn sort(&mut self) {
        self.active.sort_unstable();
        self.shutting_down.sort_unstable();
    }
}

/// Sorts `ps -eo pid,ppid,args` rows into master, active and shutting-down
/// workers. The master is the master-titled process whose parent is not one:
/// a worker the master has just forked still bears the master's title until
/// it sets its own, and must not be taken for a new master. Workers are the
/// master's children.
fn parse_top(titles: &[String], rows: &[Vec<String>]) -> Result<Workers> {
    let col = |name: &str| titles.iter().position(|t| t == name);
    let (Some(pid_col), Some(ppid_col), Some(cmd_col)) = (
        col("PID"),
        col("PPID"),
        col("COMMAND").or_else(|| col("CMD")),
    ) else {
        bail!("unexpected process list columns {titles:?}");
    };
    let number = |row: &[String], at: usize| row.get(at)?.trim().parse::<u32>().ok();
    let processes: Vec<(u32, u32, &str)> = rows
        .iter()
        .filter_map(|row| {
            Some((
                number(row, pid_col)?,
                number(row, ppid_col)?,
                row.get(cmd_col)?.trim(),
            ))
        })
        .collect();
    let titled_master = |pid: u32| {
        processes
            .iter()
            .any(|&(p, _, cmd)| p == pid && cmd.starts_with(MASTER))
    };
    let masters: Vec<u32> = processes
        .iter()
        .filter(|&&(_, ppid, cmd)| cmd.starts_with(MASTER) && !titled_master(ppid))
        .map(|&(pid, _, _)| pid)
        .collect();
    let master = match masters[..] {
        [master] => master,
        [] => bail!("nginx is not running (no nginx master process)"),
        _ => bail!(
            "several nginx master processes run (pids {masters:?}): which one to reload is unclear"
        ),
    };
    let mut workers = Workers {
        master,
        ..Workers::default()
    };
    for &(pid, ppid, cmd) in &processes {
        if ppid == master {
            workers.classify(pid, cmd);
        }
    }
    workers.sort();
    Ok(workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles() -> Vec<String> {
        ["PID", "PPID", "COMMAND"].map(String::from).to_vec()
    }

    fn row(pid: &str, ppid: &str, cmd: &str) -> Vec<String> {
        vec![pid.into(), ppid.into(), cmd.into()]
    }

    #[test]
    fn sorts_master_and_workers() {
        let rows = vec![
            row("90", "80", "sh -c nginx -g 'daemon off;'"),
            row("100", "90", "nginx: master process nginx -g daemon off;"),
            row("230", "100", "nginx: worker process"),
            row("120", "100", "nginx: worker process is shutting down"),
            row("231", "100", "nginx: worker process"),
            row("140", "90", "sh -c sleep 5"),
            row("150", "100", "nginx: cache manager process"),
        ];
        let w = parse_top(&titles(), &rows).unwrap();
        assert_eq!(
            w,
            Workers {
                active: vec![230, 231],
                shutting_down: vec![120],
                master: 100
            }
        );
    }

    /// In a reload the master forks the new workers; until one sets its
    /// title it is listed under the master's.
    #[test]
    fn a_worker_just_forked_with_the_masters_title_is_not_the_master() {
        let rows = vec![
            row("100", "1", "nginx: master process nginx -g daemon off;"),
            row("230", "100", "nginx: worker process"),
            row("231", "100", "nginx: worker process"),
            row("240", "100", "nginx: master process nginx -g daemon off;"),
        ];
        let w = parse_top(&titles(), &rows).unwrap();
        assert_eq!(
            w,
            Workers {
                active: vec![230, 231],
                shutting_down: vec![],
                master: 100
            }
        );
    }

    #[test]
    fn missing_or_ambiguous_master_or_columns_is_an_error() {
        let err = parse_top(&titles(), &[row("1", "0", "sleep 1")]).unwrap_err();
        assert!(err.to_string().contains("no nginx master"), "{err}");
        let two = [
            row("10", "1", "nginx: master process nginx"),
            row("20", "1", "nginx: master process nginx -c /b.conf"),
        ];
        let err = parse_top(&titles(), &two).unwrap_err();
        assert!(err.to_string().contains("[10, 20]"), "{err}");
        assert!(parse_top(&["UID".to_string()], &[]).is_err());
        let no_ppid = ["PID", "COMMAND"].map(String::from);
        assert!(parse_top(&no_ppid, &[]).is_err());
    }

    /// Writes a fake procfs entry.
    fn process(proc: &Path, pid: u32, cmdline: &str, cgroup: &str, children: &[u32]) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(dir.join("task").join(pid.to_string())).unwrap();
        std::fs::write(dir.join("cmdline"), cmdline.replace(' ', "\0") + "\0").unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        let kids: Vec<String> = children.iter().map(u32::to_string).collect();
        std::fs::write(
            dir.join("task").join(pid.to_string()).join("children"),
            kids.join(" ") + " ",
        )
        .unwrap();
    }

    #[test]
    fn reads_the_master_and_its_children_from_proc() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path();
        let cg = "0::/docker/abc123\n";
        process(
            proc,
            10,
            "nginx: master process nginx -g daemon off;",
            cg,
            &[12, 11, 13, 14],
        );
        process(proc, 11, "nginx: worker process", cg, &[]);
        process(proc, 12, "nginx: worker process is shutting down", cg, &[]);
        process(proc, 13, "nginx: cache manager process", cg, &[]);
        // 14 exited between the reads: no entry.
        assert_eq!(
            from_proc(proc, 10, "abc123"),
            Some(Workers {
                active: vec![11],
                shutting_down: vec![12],
                master: 10
            })
        );
        // Another container's process, or not a master: ask the daemon.
        assert_eq!(from_proc(proc, 10, "def456"), None);
        assert_eq!(from_proc(proc, 11, "abc123"), None);
        assert_eq!(from_proc(proc, 99, "abc123"), None);
    }
}
