//! Edited configs pass the real `nginx -t` (Debian's /usr/sbin/nginx).
use nginx_rollout::conf::{ConfigSet, Edit, EditOptions, HostFs, write_changes};
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/conf/nginx-t");

fn nginx_t(conf: &Path, prefix: &Path) -> Result<(), String> {
    let out = std::process::Command::new("/usr/sbin/nginx")
        .arg("-t")
        .arg("-q")
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(format!("{}/", prefix.display()))
        .arg("-e")
        .arg(prefix.join("error.log"))
        .output()
        .map_err(|e| format!("cannot run /usr/sbin/nginx: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn every_drain_passes_nginx_t() {
    let force = EditOptions { force: true };
    let mut checked = 0;
    for fixture in fixtures() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("nginx.conf");
        let original = std::fs::read(&fixture).unwrap();
        std::fs::write(&conf, &original).unwrap();
        nginx_t(&conf, tmp.path()).unwrap();
        let set = ConfigSet::load(&conf, &HostFs).unwrap();
        for u in set.upstreams() {
            for s in u.servers.iter().filter(|s| !s.is_down()) {
                let mut edited = set.clone();
                edited
                    .apply(&u.name, &s.address, Edit::MarkDown, force)
                    .unwrap();
                write_changes(&edited.changes_since(&set)).unwrap();
                nginx_t(&conf, tmp.path()).unwrap_or_else(|e| {
                    panic!("{} {} {}: {e}", fixture.display(), u.name, s.address)
                });
                let drained = edited.clone();
                edited
                    .apply(&u.name, &s.address, Edit::Restore, force)
                    .unwrap();
                write_changes(&edited.changes_since(&drained)).unwrap();
                assert_eq!(std::fs::read(&conf).unwrap(), original);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 13);
}

#[test]
fn other_edits_pass_nginx_t() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("nginx.conf");
    std::fs::copy(Path::new(FIXTURES).join("http.conf"), &conf).unwrap();
    let mut set = ConfigSet::load(&conf, &HostFs).unwrap();
    let start = set.clone();
    let opts = EditOptions::default();
    let edits = [
        (
            "apps",
            "",
            Edit::Add {
                address: "127.0.0.1:3009".into(),
                params: vec!["weight=4".into(), "max_fails=1".into()],
            },
        ),
        (
            "sockets",
            "",
            Edit::Add {
                address: "unix:/tmp/nginx-rollout-c.sock".into(),
                params: vec![],
            },
        ),
        (
            "hashed",
            "",
            Edit::Add {
                address: "127.0.0.9:80".into(),
                params: vec![],
            },
        ),
        ("apps", "127.0.0.1:3001", Edit::SetWeight(3)),
        ("apps", "::1", Edit::SetWeight(2)),
        (
            "random",
            "127.0.0.8",
            Edit::ReplaceAddress("[::1]:82".into()),
        ),
        ("sockets", "unix:/tmp/nginx-rollout-b.sock", Edit::Remove),
        ("sticky", "127.0.0.6", Edit::MarkDown),
    ];
    for (up, server, edit) in edits {
        let before = set.clone();
        assert!(
            set.apply(up, server, edit.clone(), opts).unwrap(),
            "{up} {edit:?}"
        );
        write_changes(&set.changes_since(&before)).unwrap();
        nginx_t(&conf, tmp.path()).unwrap_or_else(|e| panic!("{up} {edit:?}: {e}"));
    }
    assert_eq!(set.changes_since(&start).len(), 1);
    let text = String::from_utf8(std::fs::read(&conf).unwrap()).unwrap();
    assert!(text.contains("keepalive 16;"));
    assert!(text.contains(
        "\t\tserver unix:/tmp/nginx-rollout-a.sock;\n\t\tserver unix:/tmp/nginx-rollout-c.sock;\n\t}"
    ), "{text}");
    assert!(
        text.contains("server 127.0.0.4:80;\n    server 127.0.0.9:80; }"),
        "{text}"
    );
}
