//! The compose files, project, env files and profiles an operator names
//! (`-f`, `-p`, `--project-directory`, `--env-file`, `--profile` and compose's
//! own `COMPOSE_*` variables, from the environment or the project's `.env`),
//! resolved the way compose resolves them; and applied to the containers of
//! that project in place of what their labels recorded.
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::docker::ComposeRef;

/// Compose's default file names, in the order compose v2 looks for them.
const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// Compose options that name no usable project, or another project than the
/// containers'; nothing was changed.
#[derive(Debug, Error)]
pub enum ComposeOptionsError {
    /// A named compose file is not there.
    #[error("compose file {} (from {origin}) does not exist", file.display())]
    MissingFile {
        /// The file, absolute.
        file: PathBuf,
        /// Where it was named.
        origin: Origin,
    },
    /// `COMPOSE_FILE` is set but names nothing.
    #[error("{0} names no compose file")]
    NoFiles(Origin),
    /// No `-f` and none of compose's default files.
    #[error("no compose file in {} (looked for {looked}); give -f FILE", dir.display())]
    NoDefault {
        /// The project directory.
        dir: PathBuf,
        /// The names looked for.
        looked: String,
    },
    /// The project name came out empty.
    #[error("compose project name from {0} is empty; give -p NAME")]
    EmptyName(Origin),
    /// An env file cannot be read.
    #[error("env file {}: {problem}", path.display())]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// A container of another project than the one named.
    #[error(
        "container {container} belongs to compose project {theirs}, but the compose options name \
         project {ours} (from {origin}); give -p {theirs} or run where that project lives"
    )]
    OtherProject {
        /// The container.
        container: String,
        /// Its project.
        theirs: String,
        /// The project named.
        ours: String,
        /// Where that name came from.
        origin: Origin,
    },
}

type Result<T, E = ComposeOptionsError> = std::result::Result<T, E>;

/// What the operator typed, before resolution (paths as given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeFlags {
    /// `-f/--file`, in order (later files override earlier ones).
    pub files: Vec<PathBuf>,
    /// `-p/--project-name`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `--env-file`, in order.
    pub env_files: Vec<PathBuf>,
    /// `--profile`, in order.
    pub profiles: Vec<String>,
}

impl ComposeFlags {
    fn is_empty(&self) -> bool {
        *self == ComposeFlags::default()
    }
}

/// Where a resolved value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (its spelling).
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// A variable of the project's env file (the file).
    EnvFile(&'static str, PathBuf),
    /// Compose's default (what it was derived from).
    Default(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "{flag}"),
            Origin::Env(var) => write!(f, "${var}"),
            Origin::EnvFile(var, file) => write!(f, "{var} in {}", file.display()),
            Origin::Default(from) => write!(f, "compose's default ({from})"),
        }
    }
}

/// A compose project as the operator names it: the files compose reads (as
/// named, in override order), its directory, project name, env files and
/// profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeOptions {
    /// The project name.
    pub project: String,
    /// Where the project name came from.
    pub project_origin: Origin,
    /// The project directory (relative paths in the files resolve against it).
    pub directory: PathBuf,
    /// The files as named, in override order: relative ones from
    /// `named_from`, where compose runs, so that it records them in its
    /// files label as the operator's own run would.
    pub files: Vec<PathBuf>,
    /// The operator's directory, which relative `files` are named from.
    pub named_from: PathBuf,
    /// Where the file list came from.
    pub files_origin: Origin,
    /// Env files as named (relative ones from `named_from`, as the files).
    pub env_files: Vec<PathBuf>,
    /// Active profiles.
    pub profiles: Vec<String>,
}

impl ComposeOptions {
    /// Resolves the operator's flags and compose variables (read with `var`,
    /// e.g. from the process environment) in `cwd`, as compose does:
    /// - files: `-f`, else `COMPOSE_FILE` (split on `COMPOSE_PATH_SEPARATOR`,
    ///   default `:`), else the first of compose's default names in the project
    ///   directory with its `.override` file;
    /// - project directory: `--project-directory`, else the first file's directory;
    /// - project name: `-p`, else `COMPOSE_PROJECT_NAME`, else the project
    ///   directory's name made lowercase, keeping `a-z 0-9 _ -`;
    /// - profiles: `--profile`, else `COMPOSE_PROFILES` (comma-separated).
    ///
    /// `COMPOSE_*` variables not in the environment are read from the env file
    /// (`--env-file`'s last, else `.env` in `--project-directory` or `cwd`).
    /// `None` when nothing names a project (no flag, no `COMPOSE_FILE`): the
    /// containers' own labels say which files made them.
    pub fn resolve(
        flags: &ComposeFlags,
        cwd: &Path,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<ComposeOptions>> {
        let absolute = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                cwd.join(p)
            }
        };
        // As named, like the files: compose v1 reads an env file from where
        // it runs and records it as it was given it.
        let env_files = flags.env_files.clone();
        let given_directory = flags.project_directory.as_deref().map(absolute);
        let dotenv = match env_files.last() {
            Some(file) => Some(absolute(file)),
            None => {
                let file = given_directory.as_deref().unwrap_or(cwd).join(".env");
                file.is_file().then_some(file)
            }
        };
        let dotenv_vars = match &dotenv {
            Some(file) => read_env_file(file)?,
            None => Vec::new(),
        };
        let lookup = |name: &'static str| -> Option<(String, Origin)> {
            if let Some(v) = var(name).filter(|v| !v.is_empty()) {
                return Some((v, Origin::Env(name)));
            }
            let file = dotenv.as_ref()?;
            dotenv_vars
                .iter()
                .rfind(|(k, _)| k == name)
                .filter(|(_, v)| !v.is_empty())
                .map(|(_, v)| (v.clone(), Origin::EnvFile(name, file.clone())))
        };
        let compose_file = if flags.files.is_empty() {
            lookup("COMPOSE_FILE")
        } else {
            None
        };
        if flags.is_empty() && compose_file.is_none() {
            return Ok(None);
        }
        let (files, files_origin) = if !flags.files.is_empty() {
            (flags.files.clone(), Origin::Flag("-f"))
        } else if let Some((list, origin)) = compose_file {
            let separator = lookup("COMPOSE_PATH_SEPARATOR").map_or(":".to_string(), |(s, _)| s);
            let files: Vec<PathBuf> = list
                .split(separator.as_str())
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect();
            if files.is_empty() {
                return Err(ComposeOptionsError::NoFiles(origin));
            }
            (files, origin)
        } else {
            // Compose v1 names the default files it finds in its own
            // directory by their names alone.
            let dir = given_directory.as_deref().unwrap_or(cwd);
            let (names, origin) = default_files(dir)?;
            let files = match &given_directory {
                Some(dir) => names.iter().map(|n| dir.join(n)).collect(),
                None => names,
            };
            (files, origin)
        };
        for file in &files {
            let path = absolute(file);
            if !path.is_file() {
                return Err(ComposeOptionsError::MissingFile {
                    file: path,
                    origin: files_origin,
                });
            }
        }
        let directory = match given_directory {
            Some(dir) => dir,
            None => absolute(&files[0])
                .parent()
                .map_or_else(|| cwd.to_path_buf(), Path::to_path_buf),
        };
        // As compose's `os.path.abspath` gives it (its label, and where
        // `.env` is): `./numbers/x.yml` is in `numbers`, not `./numbers`.
        let directory = match directory.to_str() {
            Some(dir) => PathBuf::from(python_normpath(dir)),
            None => directory,
        };
        let (project, project_origin) = match &flags.project_name {
            Some(name) => (name.clone(), Origin::Flag("-p")),
            None => match lookup("COMPOSE_PROJECT_NAME") {
                Some(found) => found,
                None => {
                    let base = directory
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (
                        normalize_project_name(&base),
                        Origin::Default(format!("the name of {}", directory.display())),
                    )
                }
            },
        };
        if project.is_empty() {
            return Err(ComposeOptionsError::EmptyName(project_origin));
        }
        let profiles = if flags.profiles.is_empty() {
            lookup("COMPOSE_PROFILES")
                .map(|(list, _)| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            flags.profiles.clone()
        };
        Ok(Some(ComposeOptions {
            project,
            project_origin,
            directory,
            files,
            named_from: cwd.to_path_buf(),
            files_origin,
            env_files,
            profiles,
        }))
    }

    /// Points `r` (a container of this project, by its labels) at these files,
    /// directory, env files and profiles; a container of another project is an
    /// error naming both.
    pub fn apply(&self, container: &str, r: &mut ComposeRef) -> Result<()> {
        if r.project != self.project {
            return Err(ComposeOptionsError::OtherProject {
                container: container.to_string(),
                theirs: r.project.clone(),
                ours: self.project.clone(),
                origin: self.project_origin.clone(),
            });
        }
        r.working_dir = Some(self.directory.clone());
        r.config_files = self.files.clone();
        r.named_from = Some(self.named_from.clone());
        r.env_files = self.env_files.clone();
        r.profiles = self.profiles.clone();
        Ok(())
    }
}

/// The names of compose's default file in `dir` and of its `.override` file
/// when there is one.
fn default_files(dir: &Path) -> Result<(Vec<PathBuf>, Origin)> {
    let Some(name) = DEFAULT_FILES.iter().find(|n| dir.join(n).is_file()) else {
        return Err(ComposeOptionsError::NoDefault {
            dir: dir.to_path_buf(),
            looked: DEFAULT_FILES.join(", "),
        });
    };
    let mut files = vec![PathBuf::from(name)];
    let stem = name.rsplit_once('.').map_or(*name, |(stem, _)| stem);
    files.extend(
        ["yaml", "yml"]
            .iter()
            .map(|ext| PathBuf::from(format!("{stem}.override.{ext}")))
            .find(|p| dir.join(p).is_file()),
    );
    Ok((
        files,
        Origin::Default(format!("{name} in {}", dir.display())),
    ))
}

/// Compose's project name rule: lowercase, keeping only `a-z`, `0-9`, `_` and `-`.
fn normalize_project_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect()
}

/// The `KEY=VALUE` lines of an env file (comments, blank lines and `export `
/// skipped; one level of matching quotes removed). At most 1 MiB is read.
fn read_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    use std::io::Read;
    const LIMIT: u64 = 1 << 20;
    let mut text = String::new();
    let problem = |problem: String| ComposeOptionsError::EnvFile {
        path: path.to_path_buf(),
        problem,
    };
    crate::conf::open_regular(path)
        .and_then(|f| f.take(LIMIT + 1).read_to_string(&mut text))
        .map_err(|e| problem(e.to_string()))?;
    if text.len() as u64 > LIMIT {
        return Err(problem("larger than 1 MiB".into()));
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| v.strip_prefix(*q)?.strip_suffix(*q))
                .unwrap_or(v);
            Some((k.trim().to_string(), unquoted.to_string()))
        })
        .collect())
}

/// Python's `posixpath.normpath`: `.` and empty components dropped, `..`
/// taking the one before it where there is one, one or two leading slashes
/// kept (three or more are one).
pub(crate) fn python_normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let slashes = match (
        path.starts_with('/'),
        path.starts_with("//"),
        path.starts_with("///"),
    ) {
        (false, ..) => 0,
        (true, true, false) => 2,
        _ => 1,
    };
    let mut kept: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if (slashes > 0 || !kept.is_empty()) && kept.last() != Some(&"..") => {
                kept.pop();
            }
            part => kept.push(part),
        }
    }
    let path = format!("{}{}", "/".repeat(slashes), kept.join("/"));
    match path.is_empty() {
        true => ".".into(),
        false => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("My Proj.")
            .tempdir()
            .unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn resolve(
        flags: &ComposeFlags,
        cwd: &Path,
        env: &[(&str, &str)],
    ) -> Result<Option<ComposeOptions>> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ComposeOptions::resolve(flags, cwd, &|k| env.get(k).cloned())
    }

    fn files(paths: &[&str]) -> ComposeFlags {
        ComposeFlags {
            files: paths.iter().map(PathBuf::from).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn normalises_paths_as_python_does() {
        // Each as `os.path.normpath` gives it (Python 3.11).
        for (path, python) in [
            ("", "."),
            ("./v2.yml", "v2.yml"),
            ("a//b/./c", "a/b/c"),
            ("./../x.yml", "../x.yml"),
            ("a/../../b", "../b"),
            ("/a/../../b", "/b"),
            ("//a/b", "//a/b"),
            ("///a/b", "/a/b"),
            ("a/b/", "a/b"),
            ("rel/../..", ".."),
            ("/..", "/"),
        ] {
            assert_eq!(python_normpath(path), python, "{path:?}");
        }
    }
    #[test]
    fn an_env_file_that_is_not_a_regular_file_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("prod.env");
        crate::conf::make_fifo(&fifo);
        for path in [fifo.as_path(), dir.path()] {
            let e = read_env_file(path).unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn nothing_named_means_the_labels_decide() {
        let dir = dir_with(&[("docker-compose.yml", "")]);
        assert_eq!(
            resolve(&ComposeFlags::default(), dir.path(), &[]).unwrap(),
            None
        );
    }

    #[test]
    fn files_in_override_order_from_the_first_files_directory() {
        let dir = dir_with(&[
            ("numbers/docker-compose.yml", ""),
            ("numbers/prod.yml", ""),
            ("numbers/v2.yml", ""),
        ]);
        let flags = files(&[
            "numbers/docker-compose.yml",
            "numbers/prod.yml",
            "numbers/v2.yml",
        ]);
        let o = resolve(&flags, dir.path(), &[]).unwrap().unwrap();
        assert_eq!(o.directory, dir.path().join("numbers"));
        // As named, from where they were named: compose run there records
        // them so, as the operator's own run would.
        assert_eq!(o.files, flags.files);
        assert_eq!(o.named_from, dir.path());
        // Named as the seed names them: the same directory, as compose writes it.
        let seed = files(&["./numbers/docker-compose.yml", "./numbers/prod.yml"]);
        let o = resolve(&seed, dir.path(), &[]).unwrap().unwrap();
        assert_eq!(o.directory.to_str(), dir.path().join("numbers").to_str());
        assert_eq!(o.project, "numbers");
        assert_eq!(o.files_origin, Origin::Flag("-f"));
    }

    #[test]
    fn compose_file_variable_with_its_separator_and_project_name() {
        let dir = dir_with(&[("a.yml", ""), ("b.yml", "")]);
        let o = resolve(
            &ComposeFlags::default(),
            dir.path(),
            &[
                ("COMPOSE_FILE", "a.yml;b.yml"),
                ("COMPOSE_PATH_SEPARATOR", ";"),
                ("COMPOSE_PROJECT_NAME", "shop"),
                ("COMPOSE_PROFILES", "web, debug"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.files, [Path::new("a.yml"), Path::new("b.yml")]);
        assert_eq!(o.project, "shop");
        assert_eq!(o.project_origin, Origin::Env("COMPOSE_PROJECT_NAME"));
        assert_eq!(o.profiles, vec!["web", "debug"]);
    }

    #[test]
    fn dot_env_supplies_what_the_environment_does_not() {
        let dir = dir_with(&[
            ("a.yml", ""),
            ("b.yml", ""),
            (
                ".env",
                "# comment\nCOMPOSE_FILE=a.yml:b.yml\nexport COMPOSE_PROJECT_NAME='from-dotenv'\n",
            ),
        ]);
        let o = resolve(&ComposeFlags::default(), dir.path(), &[])
            .unwrap()
            .unwrap();
        assert_eq!(o.files.len(), 2);
        assert_eq!(o.project, "from-dotenv");
        // The environment wins over .env.
        let o = resolve(
            &ComposeFlags::default(),
            dir.path(),
            &[("COMPOSE_PROJECT_NAME", "env")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.project, "env");
        // -p wins over both; -f over COMPOSE_FILE.
        let flags = ComposeFlags {
            project_name: Some("flag".into()),
            ..files(&["a.yml"])
        };
        let o = resolve(&flags, dir.path(), &[("COMPOSE_PROJECT_NAME", "env")])
            .unwrap()
            .unwrap();
        assert_eq!((o.project.as_str(), o.files.len()), ("flag", 1));
    }

    #[test]
    fn default_file_and_its_override_in_the_project_directory() {
        let dir = dir_with(&[
            ("sub/docker-compose.yml", ""),
            ("sub/docker-compose.override.yml", ""),
        ]);
        let flags = ComposeFlags {
            project_directory: Some("sub".into()),
            ..Default::default()
        };
        let o = resolve(&flags, dir.path(), &[]).unwrap().unwrap();
        let sub = dir.path().join("sub");
        assert_eq!(
            o.files,
            vec![
                sub.join("docker-compose.yml"),
                sub.join("docker-compose.override.yml")
            ]
        );
        assert_eq!(o.directory, sub);
        assert_eq!(o.project, "sub");
        // Found where compose runs: by their names, as compose v1 names them.
        let flags = ComposeFlags {
            project_name: Some("p".into()),
            ..Default::default()
        };
        let o = resolve(&flags, &sub, &[]).unwrap().unwrap();
        assert_eq!(
            o.files,
            [
                Path::new("docker-compose.yml"),
                Path::new("docker-compose.override.yml")
            ]
        );
        assert_eq!(o.directory, sub);
    }

    #[test]
    fn project_names_are_normalized_like_compose() {
        assert_eq!(normalize_project_name("My Proj.x1_-Z"), "myprojx1_-z");
        let dir = dir_with(&[("docker-compose.yml", "")]);
        let flags = ComposeFlags {
            profiles: vec!["p".into()],
            ..Default::default()
        };
        let o = resolve(&flags, dir.path(), &[]).unwrap().unwrap();
        assert!(o.project.starts_with("myproj"), "{}", o.project);
    }

    #[test]
    fn missing_files_are_named() {
        let dir = dir_with(&[("a.yml", "")]);
        let e = resolve(&files(&["a.yml", "v2.yml"]), dir.path(), &[]).unwrap_err();
        assert!(
            e.to_string().contains("v2.yml (from -f) does not exist"),
            "{e}"
        );
        let e = resolve(
            &ComposeFlags {
                profiles: vec!["x".into()],
                project_directory: Some("nowhere".into()),
                ..Default::default()
            },
            dir.path(),
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("no compose file in"), "{e}");
    }

    #[test]
    fn applies_only_to_its_own_project() {
        let dir = dir_with(&[("a.yml", ""), ("prod.env", "X=1\n")]);
        let flags = ComposeFlags {
            project_name: Some("shop".into()),
            env_files: vec!["prod.env".into()],
            ..files(&["a.yml"])
        };
        let o = resolve(&flags, dir.path(), &[]).unwrap().unwrap();
        let mut r = ComposeRef {
            project: "shop".into(),
            service: "api".into(),
            working_dir: Some("/elsewhere".into()),
            config_files: vec!["docker-compose.yml".into()],
            config_hash: Some("h".into()),
            env_files: Vec::new(),
            profiles: Vec::new(),
            named_from: None,
        };
        o.apply("shop_api_1", &mut r).unwrap();
        assert_eq!(r.config_files, [Path::new("a.yml")]);
        assert_eq!(r.file_path(&r.config_files[0]), dir.path().join("a.yml"));
        assert_eq!(r.working_dir.as_deref(), Some(dir.path()));
        assert_eq!(r.env_files, [Path::new("prod.env")]);
        assert_eq!(r.file_path(&r.env_files[0]), dir.path().join("prod.env"));
        assert_eq!(r.config_hash.as_deref(), Some("h"));
        let mut other = ComposeRef {
            project: "blog".into(),
            ..r
        };
        let e = o.apply("blog_api_1", &mut other).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("container blog_api_1 belongs to compose project blog"),
            "{e}"
        );
    }
}
