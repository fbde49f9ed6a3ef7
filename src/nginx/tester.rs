//! `nginx -t` through one shell kept running in the nginx container for the
//! run. Each `docker exec` costs the daemon a runc process in the
//! container's namespaces, 40–70 ms under load, on the path of every reload
//! a rollout makes; through the shell a test costs what nginx takes to read
//! its config, about 5 ms. The shell runs as an exec would run nginx (the
//! container's user, environment and working directory) and runs nothing
//! but nginx's own test, with the options nginx was started with, given as
//! its arguments: each line it reads starts one test and names the line
//! its exit code follows. A container without `sh`, a shell that ends, or an
//! answer that says less than a verdict goes to one `docker exec` of the test
//! ([`test_config`]), which also waits out a restart of the container.
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, anyhow};
use bollard::Docker;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::NginxContainer;
use super::reload::{NginxTestError, rejected, test_config};
use crate::docker::AttachedExec;

/// The shell's program: `$@` is nginx and its global options.
const LOOP: &str =
    r#"while read -r mark; do "$@" -t -q </dev/null 2>&1; printf '\n%s %d\n' "$mark" "$?"; done"#;

/// Runs `nginx -t` in one nginx container, through a kept shell when it can.
pub struct ConfigTester {
    state: Mutex<State>,
}

enum State {
    /// None yet, or the last one ended: the next test starts one.
    Closed,
    /// Being started in the background ([`ConfigTester::start_ahead`]).
    Starting(JoinHandle<Result<Shell>>),
    /// Running, in the container whose main process it names.
    Open(Shell),
    /// The container cannot keep one (no `sh`, or one that never gave a
    /// verdict that stands): every test is a `docker exec` for the rest of
    /// the run.
    Unavailable,
}

/// The kept shell.
struct Shell {
    exec: AttachedExec,
    /// The container's main process when it started: a restart ends the shell.
    main_pid: Option<u32>,
    /// Whether it has given a verdict that stands ([`stands`]) once.
    proven: bool,
}

impl Shell {
    async fn start(docker: &Docker, nginx: &NginxContainer) -> Result<Shell> {
        let argv: Vec<&str> = ["sh", "-c", LOOP, "nginx-rollout-test"]
            .into_iter()
            .chain(nginx.command.words())
            .collect();
        let exec = AttachedExec::start(docker, &nginx.id, &argv).await?;
        Ok(Shell {
            exec,
            main_pid: nginx.main_pid,
            proven: false,
        })
    }

    /// One test: nginx's exit code and what it printed.
    async fn test(&mut self, docker: &Docker) -> Result<(i64, String)> {
        static ASKED: AtomicU64 = AtomicU64::new(0);
        let mark = format!(
            "nginx-rollout-test-{}-{}",
            std::process::id(),
            ASKED.fetch_add(1, Ordering::Relaxed)
        );
        let said = self
            .exec
            .ask(docker, &mark, |said| verdict(said, &mark).is_some())
            .await?;
        let (code, printed) =
            verdict(&said, &mark).ok_or_else(|| anyhow!("the shell's answer has no verdict"))?;
        Ok((code, String::from_utf8_lossy(printed).trim().to_string()))
    }
}

/// The exit code the shell printed after `mark` on the last line of `said`,
/// and what nginx printed before it (without the newline the shell added).
fn verdict<'a>(said: &'a [u8], mark: &str) -> Option<(i64, &'a [u8])> {
    let body = said.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|&b| b == b'\n')?;
    let code = body[start + 1..]
        .strip_prefix(mark.as_bytes())?
        .strip_prefix(b" ")?;
    let code = std::str::from_utf8(code).ok()?.parse().ok()?;
    Some((code, &body[..start]))
}

/// Whether a verdict through the shell stands on its own: a pass, or a
/// rejection nginx explained. Anything else (no word, a code of the shell
/// or of a signal) is what a test racing a stop of the container or a
/// missing binary gets, which [`test_config`] tells apart.
fn stands(code: i64, printed: &str) -> bool {
    code == 0 || ((1..126).contains(&code) && !printed.is_empty())
}

impl Default for ConfigTester {
    fn default() -> Self {
        ConfigTester {
            state: Mutex::new(State::Closed),
        }
    }
}

impl ConfigTester {
    /// Starts the shell in the background, so that the first test finds it
    /// running (a run that will change the config calls this as it starts).
    pub fn start_ahead(&self, docker: &Docker, nginx: &NginxContainer) {
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        if matches!(*state, State::Closed) {
            let (docker, nginx) = (docker.clone(), nginx.clone());
            *state = State::Starting(tokio::spawn(
                async move { Shell::start(&docker, &nginx).await },
            ));
        }
    }

    /// Runs `nginx -t` (with the options nginx was started with) in the
    /// container as it runs now (`nginx`).
    pub async fn test(
        &self,
        docker: &Docker,
        nginx: &NginxContainer,
    ) -> Result<(), NginxTestError> {
        let mut state = self.state.lock().await;
        let started = std::time::Instant::now();
        let Some(mut shell) = take_shell(&mut state, docker, nginx).await else {
            return test_config(docker, nginx).await;
        };
        match shell.test(docker).await {
            Ok((code, printed)) if stands(code, &printed) => {
                tracing::debug!(took = ?started.elapsed(), "nginx -t in {} (kept shell)", nginx.name);
                shell.proven = true;
                *state = State::Open(shell);
                match code {
                    0 => Ok(()),
                    _ => Err(rejected(nginx, code, printed)),
                }
            }
            // A shell that never gave a verdict that stands is not kept for
            // the rest of the run (no `sh`, or one that runs nginx otherwise).
            Ok((code, _)) => {
                tracing::debug!("nginx -t through the shell exited {code}: asked again by exec");
                *state = match shell.proven {
                    true => State::Open(shell),
                    false => State::Unavailable,
                };
                test_config(docker, nginx).await
            }
            Err(e) => {
                tracing::debug!("nginx -t through the shell: {e:#}; asked by exec");
                *state = match shell.proven {
                    true => State::Closed,
                    false => State::Unavailable,
                };
                test_config(docker, nginx).await
            }
        }
    }
}

/// The shell for `nginx` as it runs now, taken out of `state`: the one
/// started ahead or kept, else a new one; `None` when the container cannot
/// keep one or it did not start (this test goes by exec).
async fn take_shell(state: &mut State, docker: &Docker, nginx: &NginxContainer) -> Option<Shell> {
    let kept = match std::mem::replace(state, State::Closed) {
        State::Unavailable => {
            *state = State::Unavailable;
            return None;
        }
        State::Open(shell) => Some(shell),
        State::Starting(task) => match task.await.unwrap_or_else(|e| Err(e.into())) {
            Ok(shell) => Some(shell),
            Err(e) => {
                tracing::debug!("the shell for nginx -t did not start: {e:#}");
                return None;
            }
        },
        State::Closed => None,
    };
    // One started before a restart of the container ended with it.
    if let Some(shell) = kept.filter(|s| s.main_pid == nginx.main_pid) {
        return Some(shell);
    }
    Shell::start(docker, nginx)
        .await
        .map_err(|e| tracing::debug!("the shell for nginx -t did not start: {e:#}"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_is_the_marked_last_line() {
        let mark = "nginx-rollout-test-1-0";
        assert_eq!(
            verdict(b"\nnginx-rollout-test-1-0 0\n", mark),
            Some((0, &b""[..]))
        );
        let said = b"nginx: [emerg] unknown directive \"x\"\nnginx: test failed\nnginx-rollout-test-1-0 1\n";
        assert_eq!(
            verdict(said, mark),
            Some((
                1,
                &b"nginx: [emerg] unknown directive \"x\"\nnginx: test failed"[..]
            ))
        );
        // Not yet complete, another test's mark, or a line that only starts like one.
        assert_eq!(verdict(b"\nnginx-rollout-test-1-0 0", mark), None);
        assert_eq!(verdict(b"\nnginx-rollout-test-1-1 0\n", mark), None);
        assert_eq!(verdict(b"\nnginx-rollout-test-1-0 0x\n", mark), None);
        assert_eq!(verdict(b"nginx-rollout-test-1-0 0\n", mark), None);
        assert_eq!(verdict(b"\nnginx-rollout-test-1-0 0\nmore\n", mark), None);
    }

    #[test]
    fn only_a_pass_or_an_explained_rejection_stands() {
        assert!(stands(0, ""));
        assert!(stands(1, "nginx: [emerg] unknown directive"));
        assert!(!stands(1, ""));
        assert!(!stands(126, "sh: nginx: Permission denied"));
        assert!(!stands(127, "sh: nginx: not found"));
        assert!(!stands(137, "Killed"));
    }
}
