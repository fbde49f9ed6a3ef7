//! An in-memory copy of container directories, built from archive-API tars
//! (when the daemon is not local: a local one is read through `/proc/PID/root`).
//!
//! Pure: paths are the container's, symlinks are followed the way the
//! container's kernel would (absolute targets from the container's root).
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Most symlinks followed while resolving one path (Linux's limit).
pub(super) const MAX_LINKS: usize = 40;

/// Owner and permissions of a file, kept to write it back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file and its bytes.
    File(Vec<u8>, Meta),
    /// A directory.
    Dir,
    /// A symbolic link and its target as written.
    Symlink(PathBuf),
}

/// Container paths to their contents.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
}

impl Tree {
    /// Adds the entries of a tar the archive API returned for `requested`
    /// (entry names are relative to `requested`'s parent directory).
    pub fn add_tar(&mut self, requested: &Path, tar_bytes: &[u8]) -> io::Result<()> {
        let base = requested.parent().unwrap_or(Path::new("/"));
        let mut archive = tar::Archive::new(tar_bytes);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = normalize(&base.join(entry.path()?));
            let header = entry.header();
            let node = match header.entry_type() {
                tar::EntryType::Directory => Node::Dir,
                tar::EntryType::Symlink => match entry.link_name()? {
                    Some(target) => Node::Symlink(target.into_owned()),
                    None => continue,
                },
                t if t.is_file() => {
                    let meta = Meta {
                        mode: header.mode().map_or(0o644, |m| m & 0o7777),
                        uid: header.uid().unwrap_or(0),
                        gid: header.gid().unwrap_or(0),
                    };
                    // The size is the container's word: reserve no more than a file may hold.
                    let reserve = header.size()?.min(crate::conf::MAX_FILE_BYTES);
                    let mut bytes = Vec::with_capacity(reserve as usize);
                    entry.read_to_end(&mut bytes)?;
                    Node::File(bytes, meta)
                }
                _ => continue,
            };
            self.nodes.insert(path, node);
        }
        Ok(())
    }

    /// Records a file's new contents (after writing it into the container).
    pub fn set_file(&mut self, path: &Path, bytes: Vec<u8>, meta: Meta) {
        self.nodes.insert(normalize(path), Node::File(bytes, meta));
    }

    /// Follows symlinks (in any component) as far as the tree knows them.
    /// `Err` names the link chain that loops.
    pub fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        let mut current = normalize(path);
        'restart: for _ in 0..MAX_LINKS {
            let mut prefix = PathBuf::from("/");
            let components: Vec<Component> = current.components().collect();
            for (i, c) in components.iter().enumerate() {
                prefix.push(c);
                if let Some(Node::Symlink(target)) = self.nodes.get(&prefix) {
                    let parent = prefix.parent().unwrap_or(Path::new("/"));
                    let mut next = parent.join(target);
                    for rest in &components[i + 1..] {
                        next.push(rest);
                    }
                    current = normalize(&next);
                    continue 'restart;
                }
            }
            return Ok(current);
        }
        Err(io::Error::other(format!(
            "{}: too many levels of symbolic links",
            path.display()
        )))
    }

    /// The node at exactly `path` (no symlink followed).
    pub fn node(&self, path: &Path) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The names directly in directory `dir` (no symlink followed).
    pub fn children(&self, dir: &Path) -> Vec<std::ffi::OsString> {
        self.nodes
            .range(dir.to_path_buf()..)
            .skip_while(|(p, _)| p.as_path() == dir)
            .take_while(|(p, _)| p.starts_with(dir))
            .filter(|(p, _)| p.parent() == Some(dir))
            .filter_map(|(p, _)| p.file_name().map(|n| n.to_os_string()))
            .collect()
    }

    /// The node at `path` after following symlinks.
    pub fn get(&self, path: &Path) -> io::Result<Option<(PathBuf, &Node)>> {
        let resolved = self.resolve(path)?;
        Ok(self.nodes.get(&resolved).map(|n| (resolved.clone(), n)))
    }

    /// Symlink targets (resolved) that the tree does not hold: what to fetch next.
    pub fn missing_targets(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::Symlink(_)))
            .filter_map(|(p, _)| self.resolve(p).ok())
            .filter(|r| !self.nodes.contains_key(r))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Makes `path` absolute and removes `.` and `..` lexically.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            match link {
                Some(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    b.append_link(&mut h, path, target).unwrap();
                }
                None if path.ends_with('/') => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
                None => {
                    h.set_size(data.len() as u64);
                    h.set_mode(0o640);
                    h.set_uid(101);
                    h.set_gid(0);
                    b.append_data(&mut h, path, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_archive_and_follows_links() {
        let tar = tar_of(&[
            ("nginx/", None, b""),
            ("nginx/nginx.conf", None, b"events {}\n"),
            ("nginx/sites-available/", None, b""),
            ("nginx/sites-available/default", None, b"server {}\n"),
            ("nginx/sites-enabled/", None, b""),
            (
                "nginx/sites-enabled/default",
                Some("../sites-available/default"),
                b"",
            ),
            ("nginx/modules-enabled/", None, b""),
            (
                "nginx/modules-enabled/50-mod.conf",
                Some("/usr/share/nginx/mod.conf"),
                b"",
            ),
            ("nginx/loop", Some("loop"), b""),
        ]);
        let mut tree = Tree::default();
        tree.add_tar(Path::new("/etc/nginx"), &tar).unwrap();

        let (real, node) = tree
            .get(Path::new("/etc/nginx/sites-enabled/default"))
            .unwrap()
            .unwrap();
        assert_eq!(real, Path::new("/etc/nginx/sites-available/default"));
        assert_eq!(
            node,
            &Node::File(
                b"server {}\n".to_vec(),
                Meta {
                    mode: 0o640,
                    uid: 101,
                    gid: 0
                }
            )
        );
        assert_eq!(
            tree.missing_targets(),
            vec![PathBuf::from("/usr/share/nginx/mod.conf")]
        );
        assert!(tree.resolve(Path::new("/etc/nginx/loop")).is_err());
        assert_eq!(
            tree.children(Path::new("/etc/nginx/sites-enabled")),
            vec![std::ffi::OsString::from("default")]
        );

        tree.add_tar(
            Path::new("/usr/share/nginx/mod.conf"),
            &tar_of(&[("mod.conf", None, b"load_module x;\n")]),
        )
        .unwrap();
        assert!(tree.missing_targets().is_empty());
        assert!(matches!(
            tree.get(Path::new("/etc/nginx/modules-enabled/50-mod.conf")),
            Ok(Some((_, Node::File(..))))
        ));
    }

    #[test]
    fn a_header_claiming_a_huge_file_reserves_no_more_than_a_file_may_hold() {
        // 1 TiB claimed, 10 bytes given: reserving the claim would abort.
        let mut h = tar::Header::new_gnu();
        h.set_size(1 << 40);
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut h, "nginx.conf", &b"events {}\n"[..])
            .unwrap();
        let tar = b.into_inner().unwrap();
        let mut tree = Tree::default();
        assert!(tree.add_tar(Path::new("/etc/nginx.conf"), &tar).is_err());
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }
}
