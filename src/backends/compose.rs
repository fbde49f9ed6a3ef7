//! Compose mode: let the compose CLI recreate a service in its project's
//! directory, exactly as the operator would (`up -d --no-deps --force-recreate`).
use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::query_parameters::ListContainersOptions;
use tokio::process::Command;

use crate::docker::{ComposeRef, Endpoint};
use crate::plan::{ComposeSection, Overrides, PolicyError, Words};

/// How long one compose command may run.
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(600);

/// Which compose CLI is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposeKind {
    /// The `docker compose` plugin (v2).
    Plugin,
    /// The standalone `docker-compose` (v1 or v2).
    Standalone,
}

/// The installed compose CLI, pointed at the daemon this run talks to.
#[derive(Debug, Clone, Copy)]
pub struct ComposeCli<'a> {
    /// Which one.
    pub kind: ComposeKind,
    /// The daemon it must reach (whatever context or `DOCKER_HOST` it would pick itself).
    pub daemon: &'a Endpoint,
}

impl ComposeCli<'_> {
    /// The command line prefix, for messages.
    pub fn display(self) -> &'static str {
        match self.kind {
            ComposeKind::Plugin => "docker compose",
            ComposeKind::Standalone => "docker-compose",
        }
    }

    fn command(self) -> Command {
        let mut c = match self.kind {
            ComposeKind::Plugin => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
            ComposeKind::Standalone => Command::new("docker-compose"),
        };
        self.daemon.point(&mut c);
        c
    }
}

/// The installed compose CLI: the `docker compose` plugin if it answers,
/// else `docker-compose` if it is on `PATH` (not run: the Python one takes
/// most of a second to start), else `None`.
pub fn compose_cli() -> Option<ComposeKind> {
    let plugin = std::process::Command::new("docker")
        .args(["compose", "version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if plugin {
        Some(ComposeKind::Plugin)
    } else if on_path("docker-compose") {
        Some(ComposeKind::Standalone)
    } else {
        None
    }
}

/// Whether an executable file `program` is in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Runs compose for `r`'s project (same `-p`, same `-f` files, in its working
/// directory) with `args`; returns stdout, or an error carrying stderr.
async fn run(cli: ComposeCli<'_>, r: &ComposeRef, args: &[&str]) -> Result<String> {
    let dir = r.working_dir.as_ref().ok_or_else(|| {
        anyhow!(
            "compose service {}/{}: its container has no working_dir label",
            r.project,
            r.service
        )
    })?;
    let mut cmd = cli.command();
    cmd.current_dir(dir).arg("-p").arg(&r.project);
    for f in &r.config_files {
        cmd.arg("-f").arg(f);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let line = format!(
        "`{} -p {} {}` in {}",
        cli.display(),
        r.project,
        args.join(" "),
        dir.display()
    );
    let output = tokio::time::timeout(COMPOSE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow!("{line}: no answer after {COMPOSE_TIMEOUT:?}"))?
        .with_context(|| format!("{line}: cannot run"))?;
    if !output.status.success() {
        bail!(
            "{line} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Recreates the service with compose: `up -d --no-deps --force-recreate SERVICE`.
pub async fn compose_recreate(cli: ComposeCli<'_>, r: &ComposeRef) -> Result<()> {
    run(
        cli,
        r,
        &["up", "-d", "--no-deps", "--force-recreate", &r.service],
    )
    .await
    .map(drop)
}

/// What compose makes of a project's files now: every service's merged
/// configuration (`config`) and config hash (`config --hash=*`), asked once
/// for all its services, both at the same time.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    project: String,
    services: serde_norway::Value,
    hashes: HashMap<String, String>,
}

impl ComposeProject {
    /// Runs compose for `r`'s project (its files, its directory).
    pub async fn load(cli: ComposeCli<'_>, r: &ComposeRef) -> Result<ComposeProject> {
        let (config, hashes) = tokio::try_join!(
            run(cli, r, &["config"]),
            run(cli, r, &["config", "--hash=*"])
        )?;
        let doc: serde_norway::Value = serde_norway::from_str(&config).with_context(|| {
            format!(
                "compose project {}: `config` printed invalid YAML",
                r.project
            )
        })?;
        Ok(ComposeProject {
            project: r.project.clone(),
            services: doc.get("services").cloned().unwrap_or_default(),
            hashes: parse_hashes(&hashes),
        })
    }

    /// A service's merged configuration, e.g. to read its `image`.
    pub fn service(&self, service: &str) -> Result<&serde_norway::Value> {
        self.services.get(service).ok_or_else(|| {
            anyhow!(
                "compose project {}: no service {service} in its configuration",
                self.project
            )
        })
    }

    /// True when `r`'s compose configuration changed since its container was
    /// created (its `config-hash` label differs from what compose computes now).
    pub fn needs_update(&self, r: &ComposeRef) -> Result<bool> {
        let Some(current) = &r.config_hash else {
            return Ok(true);
        };
        let now = self.hashes.get(&r.service).ok_or_else(|| {
            anyhow!(
                "compose service {}/{}: `config --hash=*` printed no hash for it",
                r.project,
                r.service
            )
        })?;
        Ok(now != current)
    }
}

/// Reads `SERVICE HASH` lines.
fn parse_hashes(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

/// The id of the service's container (found by compose labels), e.g. after
/// [`compose_recreate`]. Several containers (a scaled service) is an error.
pub async fn compose_container(docker: &Docker, r: &ComposeRef) -> Result<String> {
    let labels = vec![
        format!("com.docker.compose.project={}", r.project),
        format!("com.docker.compose.service={}", r.service),
        "com.docker.compose.oneoff=False".to_string(),
    ];
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), labels)])),
        ..Default::default()
    };
    let found = docker
        .list_containers(Some(options))
        .await
        .with_context(|| {
            format!(
                "compose service {}/{}: list containers",
                r.project, r.service
            )
        })?;
    match found.as_slice() {
        [one] => Ok(one.id.clone().unwrap_or_default()),
        [] => bail!("compose service {}/{}: no container", r.project, r.service),
        many => bail!(
            "compose service {}/{}: {} containers ({}); scaled services are not supported",
            r.project,
            r.service,
            many.len(),
            many.iter()
                .map(crate::docker::listed_name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The service's `deploy` section, read straight from the project's compose
/// files (later files override earlier ones key by key, as compose merges them)
/// without starting the compose CLI. `None` when no file has one.
pub fn deploy_section(r: &ComposeRef) -> Result<Option<serde_norway::Value>> {
    use serde_norway::Value;
    let mut merged: Option<serde_norway::Mapping> = None;
    for file in &r.config_files {
        let path = match &r.working_dir {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.clone(),
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "compose project {}: cannot read {}",
                r.project,
                path.display()
            )
        })?;
        let doc: Value = serde_norway::from_str(&text)
            .with_context(|| format!("{}: not a compose file", path.display()))?;
        let Some(Value::Mapping(deploy)) = doc
            .get("services")
            .and_then(|s| s.get(r.service.as_str()))
            .and_then(|s| s.get("deploy"))
        else {
            continue;
        };
        let into = merged.get_or_insert_with(Default::default);
        for (key, value) in deploy {
            match (into.get_mut(key), value) {
                (Some(Value::Mapping(old)), Value::Mapping(new)) => {
                    old.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                _ => {
                    into.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Ok(merged.map(Value::Mapping))
}

/// The service's `deploy.update_config` and `deploy.rollback_config`, read
/// from its compose files and typed (values of the wrong form are errors that
/// name the file, the service and the key). `None` for a section no file has.
pub fn policy_sections(r: &ComposeRef) -> Result<(Option<ComposeSection>, Option<ComposeSection>)> {
    let Some(deploy) = deploy_section(r)? else {
        return Ok((None, None));
    };
    let file = r
        .config_files
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let section = |key: &str| -> Result<Option<ComposeSection>> {
        deploy
            .get(key)
            .map(|value| {
                let at = format!("{file} services.{}.deploy.{key}", r.service);
                parse_section(&at, value).map_err(anyhow::Error::from)
            })
            .transpose()
    };
    Ok((section("update_config")?, section("rollback_config")?))
}

/// Types one `update_config` / `rollback_config` mapping; unknown keys are
/// compose's business and ignored.
fn parse_section(at: &str, section: &serde_norway::Value) -> Result<ComposeSection, PolicyError> {
    use serde_norway::Value;
    let err = |key: &str, problem: String| PolicyError::Compose {
        at: at.into(),
        key: key.into(),
        problem,
    };
    let Value::Mapping(map) = section else {
        return Err(err("(section)", "expected a mapping".into()));
    };
    let mut values = Overrides::default();
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(err(key, "expected a scalar".into())),
        };
        let duration = || {
            humantime::parse_duration(&text)
                .map_err(|e| err(key, format!("{text:?} is not a duration ({e})")))
        };
        fn word<T: Words>(text: &str) -> Result<T, String> {
            T::from_word(text).ok_or_else(|| format!("{text:?} is not one of {}", T::choices()))
        }
        match key {
            "parallelism" => {
                values.parallelism = Some(
                    text.parse()
                        .map_err(|_| err(key, "expected a whole number".into()))?,
                )
            }
            "delay" => values.delay = Some(duration()?),
            "monitor" => values.monitor = Some(duration()?),
            "order" => values.order = Some(word(&text).map_err(|e| err(key, e))?),
            "failure_action" => values.failure_action = Some(word(&text).map_err(|e| err(key, e))?),
            "max_failure_ratio" => {
                values.max_failure_ratio = Some(
                    text.parse()
                        .map_err(|_| err(key, "expected a number".into()))?,
                )
            }
            _ => {}
        }
    }
    Ok(ComposeSection {
        at: at.to_string(),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FailureAction, Order};

    fn yaml(s: &str) -> serde_norway::Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn reads_every_key_of_a_section() {
        let section = parse_section(
            "app1 update_config",
            &yaml("parallelism: 2\ndelay: 10s\norder: start-first\nfailure_action: rollback\nmonitor: 1m30s\nmax_failure_ratio: 0.5\nx-other: 1\n"),
        )
        .unwrap();
        let v = &section.values;
        assert_eq!(v.parallelism, Some(2));
        assert_eq!(v.delay, Some(Duration::from_secs(10)));
        assert_eq!(v.order, Some(Order::StartFirst));
        assert_eq!(v.failure_action, Some(FailureAction::Rollback));
        assert_eq!(v.monitor, Some(Duration::from_secs(90)));
        assert_eq!(v.max_failure_ratio, Some(0.5));
        assert_eq!(section.at, "app1 update_config");
    }

    #[test]
    fn bad_compose_values_name_the_key() {
        let e = parse_section("f.yml app", &yaml("order: sideways")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yml app: order: \"sideways\" is not one of stop-first, start-first"
        );
        let e = parse_section("f.yml app", &yaml("delay: soon")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f.yml app: delay: \"soon\" is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn parses_hash_lines_of_v1_and_v2() {
        let hashes = parse_hashes("app10 x\napp1 1a2b3c\nbroken\n\n");
        assert_eq!(hashes.get("app1").map(String::as_str), Some("1a2b3c"));
        assert_eq!(hashes.get("app10").map(String::as_str), Some("x"));
        assert_eq!(hashes.len(), 2);
    }

    #[test]
    fn later_files_override_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yml"),
            "services:\n  app1:\n    deploy:\n      update_config:\n        parallelism: 2\n        delay: 10s\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "services:\n  app1:\n    deploy:\n      update_config:\n        delay: 1s\n      rollback_config:\n        parallelism: 3\n",
        )
        .unwrap();
        let r = ComposeRef {
            project: "p".into(),
            service: "app1".into(),
            working_dir: Some(dir.path().to_path_buf()),
            config_files: vec!["a.yml".into(), "b.yml".into()],
            config_hash: None,
        };
        let deploy = deploy_section(&r).unwrap().unwrap();
        let update = &deploy["update_config"];
        assert_eq!(update["parallelism"].as_u64(), Some(2));
        assert_eq!(update["delay"].as_str(), Some("1s"));
        assert_eq!(deploy["rollback_config"]["parallelism"].as_u64(), Some(3));
        let none = ComposeRef {
            service: "app2".into(),
            ..r
        };
        assert!(deploy_section(&none).unwrap().is_none());
    }
}
