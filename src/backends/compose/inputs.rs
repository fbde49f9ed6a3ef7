//! What a compose v1 reading is read from, and taking it now. [`Inputs`]:
//! everything compose's reading of a project depends on but its services'
//! environment values and images — the project's arguments, the daemon and
//! its version, compose and its interpreter, each file's SHA-256 with those values left
//! out, the env files, the variables compose takes from its environment,
//! the docker client's configuration file (its proxies). [`inputs_now`]
//! takes them from the files as they are, with those values as the files
//! set them (`written.rs`).
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cli::{ComposeCli, ComposeKind, compose_python, set_for_compose};
use super::variables::{Values, env_file_values, variables};
use super::written::{Written, masked};
use crate::backends::compose_options::python_normpath;
use crate::conf::{read_regular, read_regular_text};
use crate::docker::ComposeRef;

/// Everything compose's reading of a project depends on but the environment
/// values in its files and the images (asked each time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The project as compose is run for it, but its files.
    project: ProjectArgs,
    /// The daemon compose is pointed at.
    daemon: String,
    /// Its version as it answers ([`crate::docker::engine_version`]): a
    /// template is what the daemon made of compose's request, with what it fills in itself (an
    /// upgraded daemon may fill in otherwise).
    engine: String,
    /// `docker-compose`.
    compose: Program,
    /// Its interpreter, which runs `reading.py`.
    python: Program,
    /// Each compose file as named, with the SHA-256 of what is left of it
    /// once its services' environment values and images are left out.
    files: Vec<(PathBuf, String)>,
    /// The env files (`.env` by default), each as it counts.
    env_files: Vec<(PathBuf, EnvFile)>,
    /// The variables compose takes from the process environment and the env
    /// file that this does not follow: the ones the files name outside the
    /// values followed or pass through (an `environment` or `build.args`
    /// entry without a value), every `COMPOSE_*` and `DOCKER_*` (but
    /// [`NAMED_BY_ARGUMENTS`]), and `HOME`.
    vars: Values,
    /// The docker client's configuration file compose reads, whose proxies
    /// it puts in every container's environment: its SHA-256, `None` when
    /// there is none ([`docker_config_digest`]).
    docker_config: Option<String>,
}

/// A project as compose is run for it, but its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProjectArgs {
    /// `-p`.
    name: String,
    /// `--project-directory`.
    directory: Option<PathBuf>,
    /// Where compose runs, which relative files are named from.
    run_in: Option<PathBuf>,
    /// `--env-file`.
    env_files: Vec<PathBuf>,
    /// `--profile`.
    profiles: Vec<String>,
}

/// Compose's settings it reads only when its arguments do not say them:
/// nginx-rollout always gives it `-f` and `-p` (the files and project these
/// name are inputs of their own).
const NAMED_BY_ARGUMENTS: [&str; 3] = [
    "COMPOSE_FILE",
    "COMPOSE_PATH_SEPARATOR",
    "COMPOSE_PROJECT_NAME",
];

/// How an env file counts in a reading's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum EnvFile {
    /// In the plainest form (or the default `.env`, absent): its variables
    /// count, among the process environment's.
    Read,
    /// Byte for byte: its SHA-256, `None` when absent. What it sets is not
    /// known: no value followed may take a variable from it.
    Digest(Option<String>),
}

/// A program as found: its path, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Program {
    path: PathBuf,
    size: u64,
    mtime: u128,
}

impl Program {
    fn at(path: PathBuf) -> Result<Program> {
        let meta =
            std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(Program {
            path,
            size: meta.len(),
            mtime,
        })
    }
}

impl Inputs {
    /// Compose's interpreter, as found when these inputs were read.
    pub(super) fn python(&self) -> &Path {
        &self.python.path
    }

    /// The compose files `now` names otherwise than these, each `(old,
    /// new)`: in the same place of the list and the same directory, and the
    /// same but for environment values and images (a release written as a
    /// new override file in place of the last one). `None` when anything
    /// else differs. Compose reads nothing of a file's name but the files
    /// label it puts on containers: paths in the files are the project
    /// directory's, and files naming others (`extends`, `env_file`) are not
    /// followed at all.
    pub(super) fn files_replaced_in<'a>(&self, now: &'a Inputs) -> Option<Vec<(&Path, &'a Path)>> {
        let Inputs {
            project,
            daemon,
            engine,
            compose,
            python,
            files,
            env_files,
            vars,
            docker_config,
        } = self;
        let rest = (
            project,
            daemon,
            engine,
            compose,
            python,
            env_files,
            vars,
            docker_config,
        );
        let now_rest = (
            &now.project,
            &now.daemon,
            &now.engine,
            &now.compose,
            &now.python,
            &now.env_files,
            &now.vars,
            &now.docker_config,
        );
        if rest != now_rest || files.len() != now.files.len() {
            return None;
        }
        let mut replaced = Vec::new();
        for ((old, was), (new, is)) in files.iter().zip(&now.files) {
            if was != is || old.parent() != new.parent() {
                return None;
            }
            if old != new {
                replaced.push((old.as_path(), new.as_path()));
            }
        }
        Some(replaced)
    }

    /// The files label compose v1 puts on the containers it makes from
    /// these files, as nginx-rollout runs it (`-f FILE`): each
    /// `os.path.normpath(os.path.join('.', FILE))`, joined by commas. `None`
    /// for a name that is not UTF-8.
    pub(super) fn files_label(&self) -> Option<String> {
        let names = self.files.iter().map(|(file, _)| {
            let file = file.to_str()?;
            Some(match file.starts_with('/') {
                true => python_normpath(file),
                false => python_normpath(&format!("./{file}")),
            })
        });
        Some(names.collect::<Option<Vec<_>>>()?.join(","))
    }
}

/// The inputs of `r`'s project now, on a daemon of version `engine`
/// ([`crate::docker::engine_version`]), with its services' environment and images; `None`
/// when the project cannot be derived (compose v2, a file compose reads
/// besides these — `extends`, `env_file` — or a file this does not read as
/// compose v1 does).
pub(super) fn inputs_now(
    cli: ComposeCli<'_>,
    r: &ComposeRef,
    engine: &str,
) -> Result<Option<(Inputs, Written)>> {
    // The `docker compose` plugin (v2) is the CLI even where a v1 is installed too.
    if cli.kind != ComposeKind::Standalone {
        return Ok(None);
    }
    let Some((compose, python)) = compose_python() else {
        return Ok(None);
    };
    let Some(dir) = &r.working_dir else {
        return Ok(None);
    };
    if r.config_files.is_empty() {
        return Ok(None);
    }
    let (compose, python) = (Program::at(compose)?, Program::at(python)?);
    let mut files = Vec::new();
    let mut written = Written::default();
    // The variables named outside the values followed: unchanged, or compose reads.
    let mut names: BTreeSet<String> = BTreeSet::from(["HOME".to_string()]);
    for file in &r.config_files {
        let path = r.file_path(file);
        let text =
            read_regular_text(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let Some(masked) = masked(&text) else {
            return Ok(None);
        };
        names.extend(masked.names);
        files.push((file.clone(), masked.digest));
        let Some(shadowed) = written.shadowed_by(&masked.written) else {
            return Ok(None);
        };
        names.extend(shadowed);
        for (service, vars) in masked.written.env {
            written.env.entry(service).or_default().extend(vars);
        }
        written.images.extend(masked.written.images);
    }
    if names.iter().any(|n| seen_otherwise(n)) {
        return Ok(None);
    }
    let given: Vec<PathBuf> = r.env_files.iter().map(|f| r.file_path(f)).collect();
    let Some((env_files, dotenv)) = env_files(dir, &given) else {
        return Ok(None);
    };
    let process = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    // Not followed, only compared: an env file not read counts by its digest.
    let value = |name: &str| process(name).or_else(|| dotenv.as_ref()?.get(name).cloned());
    let settings = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .chain(dotenv.iter().flat_map(|d| d.keys().cloned()))
        .filter(|k| k.starts_with("COMPOSE_") || k.starts_with("DOCKER_"))
        .filter(|k| !NAMED_BY_ARGUMENTS.contains(&k.as_str()));
    names.extend(settings.collect::<Vec<_>>());
    let with_values = |n: String| {
        let v = value(&n);
        (n, v)
    };
    let vars: Values = names.into_iter().map(with_values).collect();
    let Some(values) = followed_values(written.strings(), process, dotenv.as_ref()) else {
        return Ok(None);
    };
    written.values = values;
    let home = std::env::home_dir();
    let config = cli.daemon.docker_config();
    let Some(docker_config) = docker_config_digest(config.as_deref(), home.as_deref()) else {
        return Ok(None);
    };
    let inputs = Inputs {
        project: ProjectArgs {
            name: r.project.clone(),
            directory: r.working_dir.clone(),
            run_in: r.compose_dir().map(Path::to_path_buf),
            env_files: r.env_files.clone(),
            profiles: r.profiles.clone(),
        },
        daemon: cli.daemon.to_string(),
        engine: engine.to_string(),
        compose,
        python,
        files,
        env_files,
        vars,
        docker_config,
    };
    Ok(Some((inputs, written)))
}

/// Whether compose sees another value of variable `name` than this process
/// has: it is set or removed for compose ([`set_for_compose`]).
fn seen_otherwise(name: &str) -> bool {
    set_for_compose().any(|s| s == name)
}

/// The variables the followed values `strings` interpolate, with their
/// values as compose v1 sees them: the process environment's (`env`), else
/// the env file's (`dotenv`; `None` when it is not read, [`EnvFile::Digest`]).
/// `None` when one has a value not known here: the process environment does
/// not set it and the env file, not read, may; or compose sees another
/// value ([`seen_otherwise`]).
fn followed_values<'a>(
    strings: impl Iterator<Item = &'a str>,
    env: impl Fn(&str) -> Option<String>,
    dotenv: Option<&BTreeMap<String, String>>,
) -> Option<Values> {
    strings
        .flat_map(variables)
        .map(|name| {
            if seen_otherwise(&name) {
                return None;
            }
            let value = match env(&name) {
                Some(value) => Some(value),
                None => dotenv?.get(&name).cloned(),
            };
            Some((name, value))
        })
        .collect()
}

/// The env files as they count in a reading's inputs, and the variables
/// read from the one compose v1 reads when it is in the plainest form
/// ([`env_file_values`]; `None`, not known, when it is not). Compose v1
/// reads one: `.env` in the project directory `dir` (absent: none) or the
/// `--env-file` given (`given`, as paths to read: [`ComposeRef::file_path`]).
/// `None` when one is there but cannot be read as a regular file within
/// the engine's bound (a FIFO is never opened to block): compose reads it.
#[allow(clippy::type_complexity)]
fn env_files(
    dir: &Path,
    given: &[PathBuf],
) -> Option<(Vec<(PathBuf, EnvFile)>, Option<BTreeMap<String, String>>)> {
    let paths: Vec<PathBuf> = match given.is_empty() {
        true => vec![dir.join(".env")],
        false => given.to_vec(),
    };
    let mut values = Some(BTreeMap::new());
    let mut out = Vec::new();
    for path in paths {
        let bytes = match read_regular(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => return None,
        };
        let read = match (&bytes, given.len()) {
            (None, 0) => Some(BTreeMap::new()),
            (Some(bytes), 0 | 1) => env_file_values(bytes),
            _ => None,
        };
        let counts = match read {
            Some(read) => {
                values = values.and(Some(read));
                EnvFile::Read
            }
            None => {
                values = None;
                EnvFile::Digest(bytes.map(|b| format!("{:x}", Sha256::digest(b))))
            }
        };
        out.push((path, counts));
    }
    Some((out, values))
}

/// The SHA-256 of the docker client's configuration file compose v1 reads
/// (`None` inside when there is none), found as docker-py finds it: the
/// first there of `$DOCKER_CONFIG/config.json` (`dir`, compose's
/// `DOCKER_CONFIG`; empty is unset), `~/.docker/config.json` and
/// `~/.dockercfg` (`home`, as Python expands `~`: `HOME`, else the user's).
/// `None` when the one found cannot be read as a regular file within the
/// engine's bound, or is named relatively (compose runs elsewhere): compose
/// reads.
fn docker_config_digest(dir: Option<&OsStr>, home: Option<&Path>) -> Option<Option<String>> {
    let home = match home {
        Some(home) if home.as_os_str().is_empty() => Path::new("/"),
        Some(home) => home,
        // Python leaves `~` as it is.
        None => Path::new("~"),
    };
    let from_env = dir
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join("config.json"));
    let paths = from_env
        .into_iter()
        .chain([home.join(".docker/config.json"), home.join(".dockercfg")]);
    for path in paths {
        if !path.is_absolute() {
            return None;
        }
        match read_regular(&path) {
            Ok(bytes) => return Some(Some(format!("{:x}", Sha256::digest(bytes)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(files: &[(&str, &str)]) -> Inputs {
        let program = |p: &str| Program {
            path: p.into(),
            size: 1,
            mtime: 2,
        };
        Inputs {
            project: ProjectArgs {
                name: "p".into(),
                directory: Some("/srv/p".into()),
                run_in: Some("/srv/p".into()),
                env_files: vec![],
                profiles: vec![],
            },
            daemon: "unix:///var/run/docker.sock".into(),
            engine: "20.10.24+dfsg1 (API 1.41)".into(),
            compose: program("/usr/bin/docker-compose"),
            python: program("/usr/bin/python3"),
            files: files
                .iter()
                .map(|(f, d)| (f.into(), d.to_string()))
                .collect(),
            env_files: vec![],
            vars: Values::new(),
            docker_config: None,
        }
    }

    #[test]
    fn follows_a_file_in_place_of_another_the_same_but_for_values() {
        let kept = inputs(&[("docker-compose.yml", "a"), ("releases/v2.yml", "b")]);
        let now = inputs(&[("docker-compose.yml", "a"), ("releases/v3.yml", "b")]);
        assert_eq!(
            kept.files_replaced_in(&now).unwrap(),
            [(Path::new("releases/v2.yml"), Path::new("releases/v3.yml"))]
        );
        assert_eq!(kept.files_replaced_in(&kept).unwrap(), []);
        assert_eq!(
            now.files_label().unwrap(),
            "docker-compose.yml,releases/v3.yml"
        );
        let label = inputs(&[("./a/../b.yml", "a"), ("/srv/p//c.yml", "b")]).files_label();
        assert_eq!(label.unwrap(), "b.yml,/srv/p/c.yml");
        // Not followed: other content, another directory, a file more, anything else.
        for other in [
            inputs(&[("docker-compose.yml", "a"), ("releases/v3.yml", "c")]),
            inputs(&[("docker-compose.yml", "a"), ("v3.yml", "b")]),
            inputs(&[
                ("docker-compose.yml", "a"),
                ("releases/v2.yml", "b"),
                ("x.yml", "d"),
            ]),
            Inputs {
                daemon: "tcp://other:2375".into(),
                ..now.clone()
            },
            Inputs {
                engine: "26.1.5 (API 1.45)".into(),
                ..now.clone()
            },
            Inputs {
                docker_config: Some("proxies".into()),
                ..now.clone()
            },
        ] {
            assert!(kept.files_replaced_in(&other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn an_env_file_counts_by_its_variables_only_in_the_plainest_form() {
        let dir = tempfile::tempdir().unwrap();
        let (files, values) = env_files(dir.path(), &[]).unwrap();
        assert_eq!(files, [(dir.path().join(".env"), EnvFile::Read)]);
        assert!(values.unwrap().is_empty());
        std::fs::write(dir.path().join(".env"), "TAG=v2\n").unwrap();
        let (files, values) = env_files(dir.path(), &[]).unwrap();
        assert_eq!(files[0].1, EnvFile::Read);
        assert_eq!(values.unwrap()["TAG"], "v2");
        std::fs::write(dir.path().join(".env"), "TAG='v2'\n").unwrap();
        let (files, values) = env_files(dir.path(), &[]).unwrap();
        assert!(matches!(&files[0].1, EnvFile::Digest(Some(_))));
        assert_eq!(values, None);
        // An env file given that is absent is compose's error, not an empty one.
        let (files, values) = env_files(dir.path(), &[dir.path().join("prod.env")]).unwrap();
        assert_eq!(files[0].1, EnvFile::Digest(None));
        assert_eq!(values, None);
        // One that is not a regular file is compose's to read; never a hang.
        let fifo = dir.path().join("fifo.env");
        crate::conf::make_fifo(&fifo);
        assert!(env_files(dir.path(), &[fifo]).is_none());
    }

    #[test]
    fn a_followed_variable_an_env_file_not_read_may_set_is_not_known() {
        let dir = tempfile::tempdir().unwrap();
        let strings = ["app:${TAG}", "${GREETING}"];
        let env = |name: &str| (name == "TAG").then(|| "v2".to_string());
        std::fs::write(dir.path().join(".env"), "GREETING=hi\n").unwrap();
        let (_, dotenv) = env_files(dir.path(), &[]).unwrap();
        let values = followed_values(strings.into_iter(), env, dotenv.as_ref()).unwrap();
        assert_eq!(values["TAG"].as_deref(), Some("v2"));
        assert_eq!(values["GREETING"].as_deref(), Some("hi"));
        // Compose gives `hi there`: not unset.
        std::fs::write(dir.path().join(".env"), "GREETING=\"hi there\"\n").unwrap();
        let (_, dotenv) = env_files(dir.path(), &[]).unwrap();
        assert_eq!(
            followed_values(strings.into_iter(), env, dotenv.as_ref()),
            None
        );
        // What the process environment sets is known: it wins over the file.
        let values = followed_values(["app:${TAG}"].into_iter(), env, dotenv.as_ref()).unwrap();
        assert_eq!(values["TAG"].as_deref(), Some("v2"));
        // With an env file read, a variable set nowhere is unset.
        let empty = BTreeMap::new();
        let values = followed_values(strings.into_iter(), env, Some(&empty)).unwrap();
        assert_eq!(values["GREETING"], None);
    }

    #[test]
    fn the_docker_client_config_compose_reads_is_found_as_docker_py_finds_it() {
        let (home, dir, other) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (h, d) = (home.path(), dir.path());
        let digest = |dir: Option<&Path>| docker_config_digest(dir.map(Path::as_os_str), Some(h));
        assert_eq!(digest(None), Some(None));
        std::fs::write(h.join(".dockercfg"), "{}").unwrap();
        let legacy = digest(None).unwrap();
        assert!(legacy.is_some());
        std::fs::create_dir(h.join(".docker")).unwrap();
        let proxies = r#"{"proxies":{"default":{"httpProxy":"http://proxy:3128"}}}"#;
        std::fs::write(h.join(".docker/config.json"), proxies).unwrap();
        let proxied = digest(None).unwrap();
        assert!(proxied.is_some() && proxied != legacy);
        // `DOCKER_CONFIG` without a config.json (or empty): the home's.
        assert_eq!(digest(Some(d)), Some(proxied.clone()));
        assert_eq!(digest(Some(Path::new(""))), Some(proxied));
        std::fs::write(d.join("config.json"), "{}").unwrap();
        assert_eq!(digest(Some(d)), Some(legacy.clone()));
        // No home: `~` is left as it is, and not reached when one is found first.
        std::fs::write(other.path().join("config.json"), "{}").unwrap();
        let no_home = |dir: &Path| docker_config_digest(Some(dir.as_os_str()), None);
        assert_eq!(no_home(other.path()), Some(legacy));
        assert_eq!(docker_config_digest(None, None), None);
        // One not a regular file, or named relatively: compose reads.
        std::fs::remove_file(d.join("config.json")).unwrap();
        crate::conf::make_fifo(&d.join("config.json"));
        assert_eq!(digest(Some(d)), None);
        assert_eq!(digest(Some(Path::new("relative"))), None);
    }

    #[test]
    fn a_followed_variable_set_or_removed_for_compose_is_not_known() {
        let env = |name: &str| Some(format!("{name} here"));
        let empty = BTreeMap::new();
        let values = |s: &str| followed_values([s].into_iter(), env, Some(&empty));
        for name in [
            "DOCKER_HOST",
            "DOCKER_CONFIG",
            "DOCKER_CONTEXT",
            "SETUPTOOLS_USE_DISTUTILS",
        ] {
            assert_eq!(values(format!("m:${{{name}}}").as_str()), None, "{name}");
        }
        assert_eq!(values("${DOCKER_API_VERSION}").unwrap().len(), 1);
        assert!(seen_otherwise("DOCKER_HOST") && !seen_otherwise("HOME"));
    }
}
