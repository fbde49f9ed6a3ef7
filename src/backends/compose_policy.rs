//! A compose service's update and rollback policy (`deploy.update_config`,
//! `deploy.rollback_config`), read from its compose files merged as compose
//! merges them, each key named with the file that set it.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde_norway::{Mapping, Value};

use super::compose::{ComposeCli, run};
use crate::docker::ComposeRef;
use crate::plan::{ComposeSection, Overrides, PolicyError, Words};

/// The two sections, in the order of the pair [`policy_sections`] returns.
const SECTIONS: [&str; 2] = ["update_config", "rollback_config"];

/// One section merged over the files: its keys, and the file that set each.
#[derive(Debug, Default)]
struct Merged {
    values: Mapping,
    files: BTreeMap<String, String>,
}

/// The service's `deploy.update_config` and `deploy.rollback_config`, typed
/// (values of the wrong form are errors that name the file, the service and
/// the key); `None` for a section no file has. The files are read directly,
/// later ones overriding earlier ones key by key, as compose merges them; a
/// value that needs compose's `${VAR}` interpolation is read from compose's
/// own `config` instead (with `cli`).
pub async fn policy_sections(
    cli: Option<ComposeCli<'_>>,
    r: &ComposeRef,
) -> Result<(Option<ComposeSection>, Option<ComposeSection>)> {
    let merged = merge_files(r)?;
    let interpolated = merged.iter().flatten().any(|m| {
        m.values
            .values()
            .any(|v| v.as_str().is_some_and(|s| s.contains('$')))
    });
    let merged = if interpolated {
        let cli = cli.ok_or_else(|| {
            anyhow!(
                "compose service {}/{}: its deploy section uses ${{…}} variables, which only the \
                 compose CLI can fill in, and none is installed",
                r.project,
                r.service
            )
        })?;
        from_compose_config(cli, r).await?
    } else {
        merged
    };
    let [update, rollback] = merged;
    let typed = |section: &str, m: Option<Merged>| -> Result<Option<ComposeSection>> {
        m.map(|m| {
            let at = format!("services.{}.deploy.{section}", r.service);
            parse_section(at, m).map_err(anyhow::Error::from)
        })
        .transpose()
    };
    Ok((typed(SECTIONS[0], update)?, typed(SECTIONS[1], rollback)?))
}

/// The sections merged over `r`'s files, read without the compose CLI.
fn merge_files(r: &ComposeRef) -> Result<[Option<Merged>; 2]> {
    let mut out: [Option<Merged>; 2] = Default::default();
    for file in &r.config_files {
        let path = r.file_path(file);
        let text = crate::conf::read_regular_text(&path).with_context(|| {
            format!(
                "compose project {}: cannot read {}",
                r.project,
                path.display()
            )
        })?;
        let doc: Value = serde_norway::from_str(&text)
            .with_context(|| format!("{}: not a compose file", path.display()))?;
        let name = shown(&path, r.compose_dir());
        let deploy = doc
            .get("services")
            .and_then(|s| s.get(r.service.as_str()))
            .and_then(|s| s.get("deploy"));
        for (slot, section) in out.iter_mut().zip(SECTIONS) {
            let Some(value) = deploy.and_then(|d| d.get(section)) else {
                continue;
            };
            let merged = slot.get_or_insert_with(Merged::default);
            let Value::Mapping(map) = value else {
                return Err(PolicyError::Compose {
                    at: format!("{name} services.{}.deploy.{section}", r.service),
                    key: "(section)".into(),
                    problem: "expected a mapping".into(),
                }
                .into());
            };
            for (key, value) in map {
                merged.values.insert(key.clone(), value.clone());
                if let Some(key) = key.as_str() {
                    merged.files.insert(key.to_string(), name.clone());
                }
            }
        }
    }
    Ok(out)
}

/// The sections as compose's `config` prints them (merged and interpolated).
async fn from_compose_config(cli: ComposeCli<'_>, r: &ComposeRef) -> Result<[Option<Merged>; 2]> {
    let text = run(cli, r, &["config"]).await?;
    let doc: Value = serde_norway::from_str(&text).with_context(|| {
        format!(
            "compose project {}: `config` printed invalid YAML",
            r.project
        )
    })?;
    let deploy = doc
        .get("services")
        .and_then(|s| s.get(r.service.as_str()))
        .and_then(|s| s.get("deploy"));
    Ok(SECTIONS.map(|section| {
        deploy.and_then(|d| d.get(section)).map(|value| Merged {
            values: value.as_mapping().cloned().unwrap_or_default(),
            files: value
                .as_mapping()
                .into_iter()
                .flat_map(|m| m.keys())
                .filter_map(|k| Some((k.as_str()?.to_string(), "`compose config`".to_string())))
                .collect(),
        })
    }))
}

/// A file as messages show it: relative to the project directory when inside it.
fn shown(path: &Path, dir: Option<&Path>) -> String {
    dir.and_then(|d| path.strip_prefix(d).ok())
        .map_or_else(|| path.to_path_buf(), PathBuf::from)
        .display()
        .to_string()
}

/// Types one `update_config` / `rollback_config` section; unknown keys are
/// compose's business and ignored.
fn parse_section(at: String, section: Merged) -> Result<ComposeSection, PolicyError> {
    let err = |key: &str, problem: String| PolicyError::Compose {
        at: match section.files.get(key) {
            Some(file) => format!("{file} {at}"),
            None => at.clone(),
        },
        key: key.into(),
        problem,
    };
    let mut values = Overrides::default();
    for (key, value) in &section.values {
        let key = key.as_str().unwrap_or_default();
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(err(key, "expected a scalar".into())),
        };
        let duration = || crate::duration::parse(&text).map_err(|e| err(key, e));
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
        at,
        values,
        files: section.files,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::{FailureAction, Order};

    fn section(text: &str, file: &str) -> Merged {
        let values: Mapping = serde_norway::from_str(text).unwrap();
        let files = values
            .keys()
            .map(|k| (k.as_str().unwrap().to_string(), file.to_string()))
            .collect();
        Merged { values, files }
    }

    fn compose_ref(dir: &Path, files: &[&str]) -> ComposeRef {
        ComposeRef {
            project: "p".into(),
            service: "app1".into(),
            working_dir: Some(dir.to_path_buf()),
            config_files: files.iter().map(PathBuf::from).collect(),
            config_hash: None,
            env_files: vec![],
            profiles: vec![],
            named_from: None,
        }
    }

    #[test]
    fn reads_every_key_of_a_section() {
        let section = parse_section(
            "services.app1.deploy.update_config".into(),
            section("parallelism: 2\ndelay: 10s\norder: start-first\nfailure_action: rollback\nmonitor: 1m30s\nmax_failure_ratio: 0.5\nx-other: 1\n", "a.yml"),
        )
        .unwrap();
        let v = &section.values;
        assert_eq!(v.parallelism, Some(2));
        assert_eq!(v.delay, Some(Duration::from_secs(10)));
        assert_eq!(v.order, Some(Order::StartFirst));
        assert_eq!(v.failure_action, Some(FailureAction::Rollback));
        assert_eq!(v.monitor, Some(Duration::from_secs(90)));
        assert_eq!(v.max_failure_ratio, Some(0.5));
        assert_eq!(
            section.origin("order"),
            "a.yml services.app1.deploy.update_config.order"
        );
    }

    #[test]
    fn bad_compose_values_name_the_file_and_key() {
        let e = parse_section("app".into(), section("order: sideways", "f.yml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yml app: order: \"sideways\" is not one of stop-first, start-first"
        );
        let e = parse_section("app".into(), section("delay: soon", "f.yml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f.yml app: delay: \"soon\" is not a duration"),
            "{e}"
        );
        let e = parse_section(
            "services.app1.deploy.update_config".into(),
            section("monitor: 300000y", "f.yml"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yml services.app1.deploy.update_config: monitor: \"300000y\" is longer than \
             100years, the longest duration accepted"
        );
    }

    #[tokio::test]
    async fn later_files_override_key_by_key_and_say_which_file() {
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
        let r = compose_ref(dir.path(), &["a.yml", "b.yml"]);
        let (update, rollback) = policy_sections(None, &r).await.unwrap();
        let update = update.unwrap();
        assert_eq!(update.values.parallelism, Some(2));
        assert_eq!(update.values.delay, Some(Duration::from_secs(1)));
        assert_eq!(
            update.origin("parallelism"),
            "a.yml services.app1.deploy.update_config.parallelism"
        );
        assert_eq!(
            update.origin("delay"),
            "b.yml services.app1.deploy.update_config.delay"
        );
        assert_eq!(rollback.unwrap().values.parallelism, Some(3));
        let none = ComposeRef {
            service: "app2".into(),
            ..r
        };
        assert_eq!(policy_sections(None, &none).await.unwrap(), (None, None));
    }

    #[tokio::test]
    async fn variables_need_compose_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yml"),
            "services:\n  app1:\n    deploy:\n      update_config:\n        delay: ${DELAY:-1s}\n",
        )
        .unwrap();
        let e = policy_sections(None, &compose_ref(dir.path(), &["a.yml"]))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("only the compose CLI"), "{e}");
    }

    #[tokio::test]
    async fn a_section_that_is_not_a_mapping_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yml"),
            "services:\n  app1:\n    deploy:\n      update_config: fast\n",
        )
        .unwrap();
        let e = policy_sections(None, &compose_ref(dir.path(), &["a.yml"]))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.yml services.app1.deploy.update_config: (section): expected a mapping"
        );
    }
}
