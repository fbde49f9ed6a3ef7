//! How nginx finds its files: relative `include` paths are taken from the
//! prefix (the directory of the main configuration file), never from the
//! including file; and which main file reaches the file an operator names.
use super::error::{ConfError, Place};
use super::fs::{Fs, HostFs};
use super::set::{ConfigSet, LoadOptions};
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// What to do with an `include` whose file cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissingIncludes {
    /// It is an error (live commands: the real `nginx -t` decides what is valid).
    #[default]
    Fail,
    /// It is remembered ([`ConfigSet::unread_includes`]) and loading goes on
    /// (offline commands, e.g. on a copy of one site file).
    Skip,
}

/// An `include` whose files could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadInclude {
    /// The `include` directive.
    pub place: Place,
    /// The path (or glob pattern) it resolved to.
    pub path: PathBuf,
    /// Why it could not be read.
    pub reason: String,
    /// The upstream block the `include` stands in, if any.
    pub upstream: Option<String>,
}

impl fmt::Display for UnreadInclude {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: cannot read {}: {}",
            self.place.file.display(),
            self.place.line,
            self.place.column,
            self.path.display(),
            self.reason
        )
    }
}

impl UnreadInclude {
    /// What was not searched because of it, for a warning.
    pub fn consequence(&self) -> String {
        match &self.upstream {
            Some(u) => format!("servers of upstream \"{u}\" in it were not searched"),
            None => "upstreams in it were not searched".to_string(),
        }
    }
}

/// Whether an include argument is a glob pattern (nginx: `*`, `?` or `[`).
pub(crate) fn is_glob(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// The files `include arg` names: `arg` taken from `prefix` when relative,
/// and expanded when it is a glob (no match is no file, as in nginx).
pub(crate) fn targets(fs: &dyn Fs, prefix: &Path, arg: &str) -> io::Result<Vec<PathBuf>> {
    let target = prefix.join(arg);
    if is_glob(arg) {
        fs.glob(&target)
    } else {
        Ok(vec![target])
    }
}

/// How the main configuration file was chosen (said with `--verbose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainChoice {
    /// Named with `-c`.
    Given,
    /// `nginx.conf` of the `-p` prefix or of an ancestor directory, and it includes the file.
    Includes,
    /// No main file includes it: the file is read as the main file, its
    /// relative includes taken from `prefix`.
    Alone {
        /// Where its relative includes are taken from.
        prefix: PathBuf,
        /// Why this prefix.
        why: PrefixFrom,
    },
}

/// Why a file read alone takes its relative includes from where it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixFrom {
    /// The `-p` option.
    Option,
    /// The directory of the nearest ancestor `nginx.conf` (which does not include the file).
    NearestMain(PathBuf),
    /// The file's own directory (it is called `nginx.conf`, or there is no `nginx.conf` above it).
    OwnDirectory,
}

impl fmt::Display for PrefixFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixFrom::Option => f.write_str("-p"),
            PrefixFrom::NearestMain(main) => write!(f, "the directory of {}", main.display()),
            PrefixFrom::OwnDirectory => f.write_str("its own directory"),
        }
    }
}

/// What the operator named: the file to work on and, like nginx, `-p` and `-c`.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The file an offline command works on.
    pub file: &'a Path,
    /// nginx's `-p`: a relative `-c` is taken from here; without `-c`, its
    /// `nginx.conf` (or `conf/nginx.conf`) is the main file.
    pub prefix: Option<&'a Path>,
    /// nginx's `-c`: the main configuration file, which must reach `file`.
    pub conf: Option<&'a Path>,
}

/// The configuration an offline command works on.
#[derive(Debug, Clone)]
pub struct Located {
    /// Every file nginx would read, from the main file on; includes that
    /// cannot be read are skipped and listed.
    pub set: ConfigSet,
    /// How its main file was chosen.
    pub choice: MainChoice,
    /// Main files looked at and not used, with the reason (for `--verbose`).
    pub passed_over: Vec<String>,
}

impl Located {
    /// One line for `--verbose`: which main file, and why.
    pub fn describe(&self) -> String {
        let main = self.set.main_path().display();
        match &self.choice {
            MainChoice::Given => format!("main configuration {main} (-c)"),
            MainChoice::Includes => format!("main configuration {main}, which includes the file"),
            MainChoice::Alone { prefix, why } => format!(
                "no main configuration includes {main}: read alone, relative includes from {} ({why})",
                display_dir(prefix)
            ),
        }
    }
}

fn display_dir(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".to_string()
    } else {
        p.display().to_string()
    }
}

/// The file's device and inode: the same file under any name or symlink.
fn identity(p: &Path) -> io::Result<(u64, u64)> {
    let m = std::fs::metadata(p)?;
    Ok((m.dev(), m.ino()))
}

fn reaches(set: &ConfigSet, id: (u64, u64)) -> bool {
    set.files().any(|(p, _)| identity(p).is_ok_and(|i| i == id))
}

/// The directories above `file`'s, nearest first, spelled as relative paths
/// when `file` is (`sites-enabled`, `.`, `..`, `../..`, … up to the root).
fn ancestors(file: &Path) -> Vec<PathBuf> {
    let start = file.parent().unwrap_or(Path::new("")).to_path_buf();
    // One directory per component of the absolute path but the file's name.
    let depth = std::path::absolute(file)
        .map(|a| a.components().count().saturating_sub(1))
        .unwrap_or(1);
    let mut out = Vec::new();
    let mut dir = start;
    for _ in 0..depth {
        out.push(dir.clone());
        match dir.components().next_back() {
            Some(Component::Normal(_)) => {
                dir.pop();
            }
            Some(Component::RootDir | Component::Prefix(_)) => break,
            _ => dir.push(".."),
        }
    }
    out
}

/// Finds the main configuration that reaches `lookup.file` on this host and
/// loads it, skipping includes that cannot be read. See [`Lookup`] and
/// [`MainChoice`]; without `-c` or `-p`, the nearest ancestor directory's
/// `nginx.conf` that includes the file is the main file; when none does, the
/// file is read alone, its relative includes taken from the nearest
/// `nginx.conf`'s directory (from its own if it is called `nginx.conf`).
pub fn locate(lookup: &Lookup) -> Result<Located, ConfError> {
    let file = lookup.file;
    let id = identity(file)
        .map_err(|e| ConfError::new(format!("cannot read {}: {e}", file.display())))?;
    let skip = |main: &Path, prefix: Option<PathBuf>| {
        ConfigSet::load_with(
            main,
            &HostFs,
            &LoadOptions {
                prefix,
                missing: MissingIncludes::Skip,
            },
        )
    };
    if let Some(conf) = lookup.conf {
        let main = match lookup.prefix {
            Some(p) if conf.is_relative() => p.join(conf),
            _ => conf.to_path_buf(),
        };
        let set = skip(&main, None)?;
        if !reaches(&set, id) {
            return Err(ConfError::new(format!(
                "{} is not read by {}: it is neither that file nor reached through its includes ({} files read)",
                file.display(),
                main.display(),
                set.files().count()
            )));
        }
        return Ok(Located {
            set,
            choice: MainChoice::Given,
            passed_over: Vec::new(),
        });
    }
    let mut passed_over = Vec::new();
    let candidates: Vec<PathBuf> = match lookup.prefix {
        Some(p) => vec![p.join("nginx.conf"), p.join("conf/nginx.conf")],
        None => ancestors(file)
            .into_iter()
            .map(|d| d.join("nginx.conf"))
            .collect(),
    };
    let mut nearest = None;
    for main in candidates {
        let Ok(main_id) = identity(&main) else {
            continue;
        };
        if main_id == id {
            continue;
        }
        nearest.get_or_insert_with(|| main.clone());
        match skip(&main, None) {
            Ok(set) if reaches(&set, id) => {
                return Ok(Located {
                    set,
                    choice: MainChoice::Includes,
                    passed_over,
                });
            }
            Ok(_) => passed_over.push(format!(
                "{} does not include {}",
                main.display(),
                file.display()
            )),
            Err(e) => passed_over.push(format!("{} not used: {e}", main.display())),
        }
    }
    let own_dir = || file.parent().unwrap_or(Path::new("")).to_path_buf();
    let (prefix, why) = match (lookup.prefix, nearest) {
        (Some(p), _) => (p.to_path_buf(), PrefixFrom::Option),
        // A file named nginx.conf is a main file: its includes are its own.
        (None, _) if file.file_name().is_some_and(|n| n == "nginx.conf") => {
            (own_dir(), PrefixFrom::OwnDirectory)
        }
        (None, Some(main)) => (
            main.parent().unwrap_or(Path::new("")).to_path_buf(),
            PrefixFrom::NearestMain(main),
        ),
        (None, None) => (own_dir(), PrefixFrom::OwnDirectory),
    };
    let set = skip(file, Some(prefix.clone()))?;
    Ok(Located {
        set,
        choice: MainChoice::Alone { prefix, why },
        passed_over,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_climb_to_the_root() {
        let a = ancestors(Path::new("/etc/nginx/sites-enabled/app.conf"));
        assert_eq!(
            a,
            ["/etc/nginx/sites-enabled", "/etc/nginx", "/etc", "/"].map(PathBuf::from)
        );
        let r = ancestors(Path::new("sites-enabled/app.conf"));
        assert_eq!(r[..3], ["sites-enabled", "", ".."].map(PathBuf::from));
        assert!(r.len() >= 3);
    }
}
