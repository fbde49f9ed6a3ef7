//! The real-world corpus: every valid file round-trips byte for byte, the
//! invalid ones fail with a position, and every upstream server drains and
//! undrains back to the original bytes on the same inode.
use nginx_rollout::conf::{Doc, Place};
use std::path::{Path, PathBuf};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

const INVALID: [&str; 11] = [
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
const INVALID_BY_NGINX: [&str; 8] = [
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
const SYMLINK_STUB: &str = "certbot/certbot/src/certbot/_internal/tests/plugins/nginx/testdata/etc_nginx/ubuntu_nginx_1_4_6/default_vhost/nginx/sites-enabled/default";

fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
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

fn rel(p: &Path) -> String {
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
