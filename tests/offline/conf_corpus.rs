//! The real-world corpus: every valid file round-trips byte for byte, the
//! invalid ones fail with a position, and every upstream server drains and
//! undrains back to the original bytes on the same inode.
use nginx_rollout::conf::{ConfigSet, Doc, Edit, EditOptions, HostFs, Place, write_changes};
use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The corpus ships with the project (its README says where each folder came from).
pub const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/corpus");

pub const INVALID: [&str; 11] = [
    "certbot/certbot/src/certbot/_internal/tests/plugins/nginx/testdata/etc_nginx/broken.conf",
    "certbot/certbot/src/certbot/_internal/tests/plugins/nginx/testdata/etc_nginx/ubuntu_nginx_1_4_6/default_vhost/nginx/naxsi-ui.conf.1.4.1",
    "crossplane/tests/configs/includes-globbed/servers/locations/not-included.conf",
    "crossplane/tests/configs/includes-regular/conf.d/bar.conf",
    "crossplane/tests/configs/includes-regular/conf.d/foo.conf",
    "nginx-go-crossplane/testdata/configs/includes-globbed/servers/locations/not-included.conf",
    "nginx-go-crossplane/testdata/configs/includes-regular/conf.d/bar.conf",
    "nginx-go-crossplane/testdata/configs/includes-regular/conf.d/foo.conf",
    "nginx-go-crossplane/testdata/configs/braces/extra-brace.conf",
    "nginx-go-crossplane/testdata/configs/braces/missing-brace.conf",
    "nginx-go-crossplane/testdata/configs/premature-eof/nginx.conf",
];

/// Files the README does not list but that nginx's tokenizer rejects too
/// (`nginx -t` says the same, checked by `extra_invalid_files_fail_like_nginx`):
/// a quote followed by a non-separator, and a `}` after a directive missing its `;`.
pub const INVALID_BY_NGINX: [&str; 8] = [
    "crossplane/tests/configs/missing-semicolon/broken-above.conf",
    "crossplane/tests/configs/missing-semicolon/broken-below.conf",
    "crossplane/tests/configs/quote-behavior/nginx.conf",
    "nginx-go-crossplane/testdata/configs/missing-semicolon-above/nginx.conf",
    "nginx-go-crossplane/testdata/configs/missing-semicolon-below/nginx.conf",
    "nginx-go-crossplane/testdata/configs/missing-semicolon/broken-above.conf",
    "nginx-go-crossplane/testdata/configs/missing-semicolon/broken-below.conf",
    "nginx-go-crossplane/testdata/configs/quote-behavior/nginx.conf",
];

/// The corpus's one symlink, stored by git as a file holding its target.
pub const SYMLINK_STUB: &str = "certbot/certbot/src/certbot/_internal/tests/plugins/nginx/testdata/etc_nginx/ubuntu_nginx_1_4_6/default_vhost/nginx/sites-enabled/default";

pub fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() && p.file_name().unwrap() != "LICENSES" {
                walk(&p, out);
            } else if meta.is_file()
                && p.file_name().unwrap() != "README.md"
                && !p.ends_with(SYMLINK_STUB)
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(CORPUS), &mut out);
    out.sort();
    out
}

pub fn rel(p: &Path) -> String {
    p.strip_prefix(CORPUS)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn valid_files_round_trip_and_invalid_ones_fail_with_a_place() {
    let files = corpus_files();
    assert!(files.len() >= 393, "corpus missing: {}", files.len());
    let mut failed = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        match Doc::parse(bytes.clone()) {
            Ok(doc) => {
                assert_eq!(doc.bytes(), &bytes[..], "{}", rel(f));
            }
            Err(e) => {
                let place = Place::at(f, &bytes, e.offset);
                assert!(place.line >= 1 && place.column >= 1);
                failed.push(rel(f));
            }
        }
    }
    let mut expected: Vec<String> = INVALID
        .iter()
        .chain(&INVALID_BY_NGINX)
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    failed.sort();
    assert_eq!(failed, expected);
}

#[test]
fn extra_invalid_files_fail_like_nginx() {
    let tmp = tempfile::tempdir().unwrap();
    for f in INVALID_BY_NGINX {
        let path = Path::new(CORPUS).join(f).canonicalize().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let e = Doc::parse(bytes.clone()).unwrap_err();
        let place = Place::at(&path, &bytes, e.offset);
        let out = std::process::Command::new("/usr/sbin/nginx")
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(tmp.path())
            .arg("-e")
            .arg(tmp.path().join("error.log"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("[emerg] {} in {}:{}", e.message, path.display(), place.line);
        assert!(
            stderr.contains(&want),
            "{f}: nginx said {stderr}, we said {want}"
        );
    }
}

/// Byte ranges of every `server` statement inside an `upstream` block.
fn server_ranges(doc: &Doc) -> Vec<Range<usize>> {
    fn walk(doc: &Doc, parent: Option<u32>, in_upstream: bool, out: &mut Vec<Range<usize>>) {
        for s in doc.children(parent) {
            if doc.is_comment(s) {
                continue;
            }
            if in_upstream && doc.is_named(s, "server") && !doc.is_block(s) {
                out.push(doc.stmt_range(s));
            }
            if doc.is_block(s) {
                walk(doc, Some(s), doc.is_named(s, "upstream"), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(doc, None, false, &mut out);
    out
}

/// The differing byte range of `before` (common prefix and suffix removed).
fn changed_range(before: &[u8], after: &[u8]) -> Range<usize> {
    let p = before.iter().zip(after).take_while(|(a, b)| a == b).count();
    let max_s = before.len().min(after.len()) - p;
    let s = before
        .iter()
        .rev()
        .zip(after.iter().rev())
        .take(max_s)
        .take_while(|(a, b)| a == b)
        .count();
    p..before.len() - s
}

#[test]
fn every_upstream_server_drains_and_undrains_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let force = EditOptions { force: true };
    let (mut drained, mut already_down) = (0, 0);
    for f in corpus_files() {
        let original = std::fs::read(&f).unwrap();
        let Ok(doc) = Doc::parse(original.clone()) else {
            continue;
        };
        let ranges = server_ranges(&doc);
        if ranges.is_empty() {
            continue;
        }
        let path = tmp.path().join("nginx.conf");
        std::fs::write(&path, &original).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        let set = ConfigSet::load_single(&path, &HostFs).unwrap();
        let ups = set.upstreams();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for u in &ups {
            *names.entry(u.name.as_str()).or_default() += 1;
        }
        for u in ups.iter().filter(|u| names[u.name.as_str()] == 1) {
            for srv in &u.servers {
                if u.servers
                    .iter()
                    .filter(|s| s.address == srv.address)
                    .count()
                    > 1
                {
                    continue;
                }
                let ctx = format!("{} {} {}", rel(&f), u.name, srv.address);
                let mut edited = set.clone();
                if srv.is_down() {
                    assert!(
                        !edited
                            .apply(&u.name, &srv.address, Edit::MarkDown, force)
                            .unwrap(),
                        "{ctx}"
                    );
                    already_down += 1;
                    continue;
                }
                assert!(
                    edited
                        .apply(&u.name, &srv.address, Edit::MarkDown, force)
                        .unwrap(),
                    "{ctx}"
                );
                let changes = edited.changes_since(&set);
                assert_eq!(changes.len(), 1, "{ctx}");
                let changed = changed_range(&changes[0].before, &changes[0].after);
                assert_eq!(
                    ranges
                        .iter()
                        .filter(|r| r.start <= changed.start && changed.end <= r.end)
                        .count(),
                    1,
                    "{ctx}: the drain must touch exactly one server statement"
                );
                write_changes(&changes).unwrap();
                assert_eq!(std::fs::read(&path).unwrap(), changes[0].after, "{ctx}");
                let reloaded = ConfigSet::load_single(&path, &HostFs).unwrap();
                assert!(
                    reloaded
                        .upstream(&u.name)
                        .unwrap()
                        .servers
                        .iter()
                        .any(|s| s.address == srv.address && s.is_down()),
                    "{ctx}"
                );

                let drained_set = edited.clone();
                assert!(
                    edited
                        .apply(&u.name, &srv.address, Edit::Restore, force)
                        .unwrap(),
                    "{ctx}"
                );
                let back = edited.changes_since(&drained_set);
                write_changes(&back).unwrap();
                assert_eq!(std::fs::read(&path).unwrap(), original, "{ctx}");
                assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode, "{ctx}");
                drained += 1;
            }
        }
    }
    assert!(drained >= 90, "only {drained} servers drained");
    println!("drained and restored {drained} servers; {already_down} were already down");
}
