//! Where a config's state directory (journal and lock) is by default: in a
//! directory of the user running the tool that no container can write —
//! `/var/lib/nginx-rollout/<config id>` for root, else
//! `$XDG_STATE_HOME/nginx-rollout/<config id>` (`~/.local/state/…`) — where
//! `<config id>` is the host path of the main nginx.conf, `/` written `%2F`.
//! Offline `conf` edits and live commands find the same directory, so they
//! take the same lock. `--state-dir` / `NGINX_ROLLOUT_STATE_DIR` choose another.
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::nginx::Mount;

/// The state directory chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateRoot {
    /// The directory.
    pub path: PathBuf,
    /// Set when it is the `.nginx-rollout/` an earlier version kept next to
    /// nginx.conf: the directory it should move to.
    pub move_to: Option<PathBuf>,
}

/// The directory holding every config's state directory, for this user.
fn base() -> Result<PathBuf> {
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/nginx-rollout"));
    }
    let state_home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
    match state_home {
        Some(dir) => Ok(dir.join("nginx-rollout")),
        None => bail!("no HOME to keep the journal in; give --state-dir"),
    }
}

/// The name of a config's state directory: its path, readable and unique.
fn config_id(config: &Path) -> String {
    config
        .to_string_lossy()
        .replace('%', "%25")
        .replace('/', "%2F")
}

/// The state directory of the config whose main file is `host_config` on
/// this host (`None`: the config is only inside container `nginx`).
/// `explicit` (`--state-dir`) wins; an earlier version's `.nginx-rollout/`
/// next to the config is kept until it is moved.
pub(crate) fn locate(
    explicit: Option<&Path>,
    host_config: Option<&Path>,
    nginx: &str,
) -> Result<StateRoot> {
    if let Some(dir) = explicit {
        return Ok(StateRoot {
            path: dir.to_path_buf(),
            move_to: None,
        });
    }
    let host_config = host_config.map(|p| std::fs::canonicalize(p).unwrap_or(p.to_path_buf()));
    let id = match &host_config {
        Some(p) => config_id(p),
        None => format!("container%3A{}", config_id(Path::new(nginx))),
    };
    let path = base()?.join(id);
    if let Some(legacy) = host_config
        .as_deref()
        .and_then(Path::parent)
        .map(|d| d.join(".nginx-rollout"))
        .filter(|d| d.symlink_metadata().is_ok() && !path.exists())
    {
        refuse_if_others_may_rename(&legacy, &path)?;
        return Ok(StateRoot {
            path: legacy,
            move_to: Some(path),
        });
    }
    Ok(StateRoot {
        path,
        move_to: None,
    })
}

/// The shell command that moves an earlier version's state directory
/// `legacy` to `to`.
pub(crate) fn move_command(legacy: &Path, to: &Path) -> String {
    format!(
        "mkdir -p -m 700 {} && mv {} {}",
        to.parent()
            .map_or(String::new(), |p| p.display().to_string()),
        legacy.display(),
        to.display()
    )
}

/// Refuses an earlier version's state directory `legacy` that another user
/// may rename, or one of whose directories above it: they could put their
/// own journal in its place between our checks and our reads. A directory
/// lets others rename what is in it when they own it or may write it (in a
/// sticky one, such as /tmp, only what they own).
fn refuse_if_others_may_rename(legacy: &Path, move_to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let ours = |uid: u32| uid == 0 || uid == rustix::process::geteuid().as_raw();
    let mut child = std::fs::symlink_metadata(legacy)?;
    let mut others_may = false;
    for dir in legacy
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
    {
        let meta = std::fs::metadata(dir)?;
        let writable = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        others_may |= !ours(meta.uid()) || (writable && (!sticky || !ours(child.uid())));
        child = meta;
    }
    if others_may {
        bail!(
            "{}: another user may rename it or a directory above it, and swap the journal; \
             move it: `{}`",
            legacy.display(),
            move_command(legacy, move_to)
        );
    }
    Ok(())
}

/// Refuses a state directory inside a mount that container `container`
/// can write: the container could read the journal's secrets, plant
/// symlinks or rewrite what `resume` recreates.
pub(crate) fn refuse_if_container_writable(
    root: &Path,
    container: &str,
    mounts: &[Mount],
) -> Result<()> {
    let root = std::fs::canonicalize(root).unwrap_or(root.to_path_buf());
    for m in mounts
        .iter()
        .filter(|m| m.writable && !m.source.as_os_str().is_empty())
    {
        let source = std::fs::canonicalize(&m.source).unwrap_or(m.source.clone());
        if root.starts_with(&source) && source != Path::new("/") {
            bail!(
                "the state directory {} is inside {}, which container {container} mounts read-write at {}: \
                 the container could read and rewrite the journal. Move it (see --state-dir in \
                 `nginx-rollout --help`; the default is outside any mount)",
                root.display(),
                source.display(),
                m.destination.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_private_to_the_user_and_one_per_config() {
        let a = locate(None, Some(Path::new("/srv/a/nginx.conf")), "n").unwrap();
        let b = locate(None, Some(Path::new("/srv/b/nginx.conf")), "n").unwrap();
        assert_ne!(a.path, b.path);
        assert!(
            a.path.ends_with("%2Fsrv%2Fa%2Fnginx.conf"),
            "{}",
            a.path.display()
        );
        assert!(!a.path.starts_with("/srv"));
        let explicit = locate(
            Some(Path::new("/x")),
            Some(Path::new("/srv/a/nginx.conf")),
            "n",
        );
        assert_eq!(explicit.unwrap().path, PathBuf::from("/x"));
    }

    #[test]
    fn an_earlier_versions_directory_is_kept_and_told_to_move() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("nginx.conf");
        std::fs::write(&conf, "events {}\n").unwrap();
        std::fs::create_dir(tmp.path().join(".nginx-rollout")).unwrap();
        let found = locate(None, Some(&conf), "n").unwrap();
        assert_eq!(
            found.path,
            tmp.path().canonicalize().unwrap().join(".nginx-rollout")
        );
        assert!(found.move_to.is_some());
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o777);
        std::fs::set_permissions(tmp.path(), open).unwrap();
        let err = locate(None, Some(&conf), "n").unwrap_err();
        assert!(err.to_string().contains("another user may rename"), "{err}");
    }

    #[test]
    fn a_state_directory_in_a_writable_mount_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mount = |writable| Mount {
            kind: "bind".into(),
            source: tmp.path().to_path_buf(),
            destination: PathBuf::from("/etc/nginx"),
            writable,
        };
        let inside = tmp.path().join(".nginx-rollout");
        let err = refuse_if_container_writable(&inside, "proxy", &[mount(true)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("container proxy mounts read-write"),
            "{err}"
        );
        refuse_if_container_writable(&inside, "proxy", &[mount(false)]).unwrap();
    }
}
