//! Upstream edits: byte-exact, idempotent, guarded, written to the file that
//! holds the upstream.
use nginx_rollout::conf::{
    AddressKind, Balancing, ConfigSet, Context, Edit, EditOptions, HostFs, Param,
};
use std::path::{Path, PathBuf};

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/conf/seed-proxy.conf");

fn set_from(text: &[u8]) -> (tempfile::TempDir, PathBuf, ConfigSet) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, text).unwrap();
    let set = ConfigSet::load(&path, &HostFs).unwrap();
    (dir, path, set)
}

fn main_bytes(set: &ConfigSet) -> String {
    String::from_utf8_lossy(set.files().next().unwrap().1).into_owned()
}

const NO_FORCE: EditOptions = EditOptions { force: false };

#[test]
fn seed_drain_and_undrain_touch_one_line() {
    let original = std::fs::read_to_string(SEED).unwrap();
    let mut set = ConfigSet::load_single(Path::new(SEED), &HostFs).unwrap();
    let before = set.clone();
    assert!(set.apply("apps", "app2", Edit::MarkDown, NO_FORCE).unwrap());
    assert_eq!(
        main_bytes(&set),
        original.replace("server app2:3000;", "server app2:3000 down;")
    );
    assert!(
        !set.apply("apps", "app2:3000", Edit::MarkDown, NO_FORCE)
            .unwrap()
    );
    let changes = set.changes_since(&before);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, Path::new(SEED));
    let up = set.upstream("apps").unwrap();
    assert!(up.servers[1].is_down() && up.servers[0].is_live());
    // The guard: app1 is now the last live server.
    let err = set
        .apply("apps", "app1", Edit::MarkDown, NO_FORCE)
        .unwrap_err();
    assert!(err.to_string().contains("last live server"), "{err}");
    assert_eq!(err.line(), Some(up.servers[0].line));
    assert!(
        set.apply("apps", "app1", Edit::MarkDown, EditOptions { force: true })
            .unwrap()
    );
    assert!(set.apply("apps", "app1", Edit::Restore, NO_FORCE).unwrap());
    assert!(set.apply("apps", "app2", Edit::Restore, NO_FORCE).unwrap());
    assert!(!set.apply("apps", "app2", Edit::Restore, NO_FORCE).unwrap());
    assert_eq!(main_bytes(&set), original);
    assert!(set.changes_since(&before).is_empty());
}

#[test]
fn multi_line_parameters_with_comments() {
    let text = "upstream u {\n    server a:1;\n    server b:2 # primary\n        weight=3 # heavy\n        max_fails=2\n        ;\n}\n";
    let (_d, _p, mut set) = set_from(text.as_bytes());
    set.apply("u", "b", Edit::MarkDown, NO_FORCE).unwrap();
    assert_eq!(
        main_bytes(&set),
        text.replace("max_fails=2", "max_fails=2 down")
    );
    set.apply("u", "b", Edit::SetWeight(7), NO_FORCE).unwrap();
    assert!(main_bytes(&set).contains("weight=7 # heavy"));
    set.apply("u", "b", Edit::Restore, NO_FORCE).unwrap();
    set.apply("u", "b", Edit::SetWeight(3), NO_FORCE).unwrap();
    assert_eq!(main_bytes(&set), text);
}

/// Found by `cargo fuzz` (drain_undrain): a comment between `server` and its
/// address was taken for the address, so `down` went into the comment and
/// `replace-address` replaced the comment.
#[test]
fn a_comment_between_server_and_its_address_is_not_the_address() {
    let text = "upstream u {\n    server a:1;\n    server # old: b:1\n        b:2;\n}\n";
    let (_d, _p, mut set) = set_from(text.as_bytes());
    assert!(set.apply("u", "b:2", Edit::MarkDown, NO_FORCE).unwrap());
    assert_eq!(main_bytes(&set), text.replace("b:2;", "b:2 down;"));
    assert!(set.upstream("u").unwrap().servers[1].is_down());
    assert!(set.apply("u", "b:2", Edit::Restore, NO_FORCE).unwrap());
    assert_eq!(main_bytes(&set), text);
    set.apply("u", "b:2", Edit::SetWeight(4), NO_FORCE).unwrap();
    assert_eq!(main_bytes(&set), text.replace("b:2;", "b:2 weight=4;"));
    set.apply("u", "b:2", Edit::ReplaceAddress("c:3".into()), NO_FORCE)
        .unwrap();
    assert_eq!(main_bytes(&set), text.replace("b:2;", "c:3 weight=4;"));
}

#[test]
fn a_quoted_address_is_replaced_quoted_and_a_swap_back_restores_its_bytes() {
    // A start-first swap points the line at the replacement and a swap-back
    // points it at the old container again: the file must read as before.
    let text =
        "upstream u {\n    server \"app1:3000\" max_fails=2; # one\n    server 'app2:3000';\n}\n";
    let (_d, _p, mut set) = set_from(text.as_bytes());
    let replace = |set: &mut ConfigSet, from: &str, to: &str| {
        set.apply("u", from, Edit::ReplaceAddress(to.into()), NO_FORCE)
            .unwrap()
    };
    assert!(replace(&mut set, "app1:3000", "app1-b:3000"));
    assert!(replace(&mut set, "app2:3000", "app2-b:3000"));
    assert_eq!(
        main_bytes(&set),
        text.replace("\"app1:3000\"", "\"app1-b:3000\"")
            .replace("'app2:3000'", "'app2-b:3000'")
    );
    assert_eq!(set.upstream("u").unwrap().servers[0].address, "app1-b:3000");
    assert!(replace(&mut set, "app1-b:3000", "app1:3000"));
    assert!(replace(&mut set, "app2-b:3000", "app2:3000"));
    assert_eq!(main_bytes(&set), text);
}

#[test]
fn a_down_on_its_own_line_is_removed_with_its_line_break() {
    let text = "upstream u {\n    server a:1;\n    server b:2\n        down;\n    server c:3\n        down max_fails=2;\n    server d:4 # why\n        down;\n}\n";
    let (_d, _p, mut set) = set_from(text.as_bytes());
    for server in ["b", "c", "d"] {
        set.apply("u", server, Edit::Restore, NO_FORCE).unwrap();
    }
    assert_eq!(
        main_bytes(&set),
        "upstream u {\n    server a:1;\n    server b:2;\n    server c:3 max_fails=2;\n    server d:4 # why\n        ;\n}\n",
        "after a comment the line break must stay, or `;` would be commented out"
    );
}

#[test]
fn add_remove_replace_keep_indentation_and_line_endings() {
    let text = "http {\r\n\tupstream u {\r\n\t\tzone u 64k;\r\n\t\tleast_conn;\r\n\t\tserver 10.0.0.1:80 weight=2; # one\r\n\t\tkeepalive 8;\r\n\t}\r\n}";
    let (_d, _p, mut set) = set_from(text.as_bytes());
    let add = Edit::Add {
        address: "[::1]:81".into(),
        params: vec!["max_fails=1".into()],
    };
    assert!(set.apply("u", "", add.clone(), NO_FORCE).unwrap());
    assert!(!set.apply("u", "", add, NO_FORCE).unwrap());
    let with_new = text.replace("# one\r\n", "# one\r\n\t\tserver [::1]:81 max_fails=1;\r\n");
    assert_eq!(main_bytes(&set), with_new);

    let up = set.upstream("u").unwrap();
    assert_eq!(up.context, Context::Http);
    assert_eq!(up.keepalive, Some(8));
    assert_eq!(up.balancing, Some(Balancing::LeastConn));
    assert_eq!(up.zone.as_ref().unwrap().size.as_deref(), Some("64k"));
    assert_eq!(up.servers[1].kind, AddressKind::Ipv6);
    assert_eq!(up.servers[1].params, [Param::MaxFails(1)]);
    assert_eq!((up.servers[1].line, up.servers[1].column), (6, 3));

    assert!(
        set.apply(
            "u",
            "::1",
            Edit::ReplaceAddress("unix:/run/a.sock".into()),
            NO_FORCE
        )
        .unwrap()
    );
    assert!(
        !set.apply(
            "u",
            "::1",
            Edit::ReplaceAddress("unix:/run/a.sock".into()),
            NO_FORCE
        )
        .unwrap()
    );
    assert!(main_bytes(&set).contains("\t\tserver unix:/run/a.sock max_fails=1;\r\n"));
    assert!(
        set.apply("u", "unix:/run/a.sock", Edit::Remove, NO_FORCE)
            .unwrap()
    );
    assert!(
        !set.apply("u", "unix:/run/a.sock", Edit::Remove, NO_FORCE)
            .unwrap()
    );
    assert_eq!(main_bytes(&set), text);
    let err = set
        .apply("u", "10.0.0.1", Edit::Remove, NO_FORCE)
        .unwrap_err();
    assert!(err.to_string().contains("last live server"));
    assert!(
        set.apply("u", "10.0.0.1", Edit::SetWeight(0), NO_FORCE)
            .is_err()
    );
    assert!(
        set.apply(
            "u",
            "",
            Edit::Add {
                address: "a;b".into(),
                params: vec![]
            },
            NO_FORCE
        )
        .is_err()
    );
}

#[test]
fn unknown_names_list_what_exists() {
    let (_d, _p, mut set) = set_from(b"stream { upstream db { server a:1; server a:2; } }\nhttp { upstream web { server w:80; } }\n");
    let e = set
        .apply("nope", "a", Edit::MarkDown, NO_FORCE)
        .unwrap_err();
    assert!(e.to_string().contains("(available: db, web)"), "{e}");
    let e = set.apply("db", "x", Edit::MarkDown, NO_FORCE).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown server \"x\" in upstream \"db\" (available: a:1, a:2)"),
        "{e}"
    );
    assert_eq!((e.line(), e.column()), (Some(1), Some(10)));
    let e = set.apply("db", "a", Edit::MarkDown, NO_FORCE).unwrap_err();
    assert!(e.to_string().starts_with("ambiguous server"), "{e}");
    let ups = set.upstreams();
    assert_eq!(ups[0].context, Context::Stream);
    assert_eq!(ups[1].context, Context::Http);
}

#[test]
fn includes_are_followed_and_edited_in_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("nginx.conf");
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(&main, "events {}\nstream { include conf.d/*.conf; }\n").unwrap();
    let inc = dir.path().join("conf.d/db.conf");
    std::fs::write(&inc, "upstream db { server a:1; server b:1; }\n").unwrap();
    let mut set = ConfigSet::load(&main, &HostFs).unwrap();
    assert_eq!(set.files().count(), 2);
    let before = set.clone();
    set.apply("db", "b", Edit::MarkDown, NO_FORCE).unwrap();
    let up = set.upstream("db").unwrap();
    assert_eq!(
        (up.file.as_path(), up.context),
        (inc.as_path(), Context::Stream)
    );
    let changes = set.changes_since(&before);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, inc);
    assert_eq!(
        changes[0].after,
        b"upstream db { server a:1; server b:1 down; }\n"
    );

    std::fs::write(dir.path().join("conf.d/loop.conf"), "include nginx.conf;\n").unwrap();
    let e = ConfigSet::load(&main, &HostFs).unwrap_err();
    assert!(e.to_string().starts_with("include cycle: "), "{e}");
    assert_eq!(
        e.file(),
        Some(dir.path().join("conf.d/loop.conf").as_path())
    );

    std::fs::write(&main, "include missing.conf;\n").unwrap();
    let e = ConfigSet::load(&main, &HostFs).unwrap_err();
    assert!(e.to_string().starts_with("cannot read "), "{e}");
    assert_eq!(e.line(), Some(1));
}

#[test]
fn odd_encodings_round_trip() {
    let mut text =
        b"\xEF\xBB\xBFupstream u {\r\n  server caf\xE9:80;\r\n  server b:80;\r\n}".to_vec();
    let (_d, _p, mut set) = set_from(&text);
    assert_eq!(set.files().next().unwrap().1, &text[..]);
    set.apply("u", "b", Edit::MarkDown, NO_FORCE).unwrap();
    set.apply("u", "b", Edit::Restore, NO_FORCE).unwrap();
    assert_eq!(set.files().next().unwrap().1, &text[..]);
    text.truncate(5);
    assert!(ConfigSet::load_single(Path::new("/nonexistent/x.conf"), &HostFs).is_err());
}
