//! Includes resolve the way nginx resolves them, on Debian's layout
//! (fixtures/conf/debian: sites-available + sites-enabled symlinks,
//! snippets, conf.d and modules-enabled globs, relative and absolute
//! includes), with the real `nginx -t -p … -c …` and `nginx -T` agreeing;
//! and a missing include is a warning offline, an error for the live path.
use nginx_rollout::conf::{
    ConfigSet, Edit, EditOptions, HostFs, LoadOptions, Lookup, MainChoice, MissingIncludes,
    PrefixFrom, locate,
};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/conf/debian");

/// A copy of the Debian tree (symlinks kept) with `@ROOT@` replaced by the copy's path.
fn debian() -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &Path, to: &Path, root: &str) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let (src, dst) = (e.path(), to.join(e.file_name()));
            let kind = e.file_type().unwrap();
            if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
            } else if kind.is_dir() {
                copy(&src, &dst, root);
            } else {
                let text = std::fs::read_to_string(&src).unwrap();
                std::fs::write(&dst, text.replace("@ROOT@", root)).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nginx");
    copy(Path::new(DEBIAN), &root, root.to_str().unwrap());
    (dir, root)
}

/// `/usr/sbin/nginx ARGS -p ROOT/ -c CONF -e …` run in ROOT.
fn nginx(root: &Path, conf: &Path, flag: &str) -> Output {
    Command::new("/usr/sbin/nginx")
        .arg(flag)
        .arg("-p")
        .arg(format!("{}/", root.display()))
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(root.join("error.log"))
        .current_dir(root)
        .output()
        .expect("run /usr/sbin/nginx")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The files `nginx -T` read, in its order.
fn nginx_files(root: &Path) -> Vec<PathBuf> {
    let out = nginx(root, &root.join("nginx.conf"), "-T");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("# configuration file "))
        .map(|l| PathBuf::from(l.trim_end_matches(':')))
        .collect()
}

/// The tool, run in `dir`.
fn tool_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nginx-rollout"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn a_site_file_is_read_through_the_main_config_that_includes_it_as_nginx_reads_it() {
    let (_d, root) = debian();
    let site = root.join("sites-enabled/app.conf");
    let read_by_nginx = nginx_files(&root);
    assert_eq!(read_by_nginx.len(), 10, "{read_by_nginx:?}");

    // Found from the site file alone, with nginx's -p and -c, and with -c relative to -p.
    let main = root.join("nginx.conf");
    let lookups = [
        Lookup {
            file: &site,
            prefix: None,
            conf: None,
        },
        Lookup {
            file: &site,
            prefix: Some(&root),
            conf: None,
        },
        Lookup {
            file: &site,
            prefix: None,
            conf: Some(&main),
        },
        Lookup {
            file: &site,
            prefix: Some(&root),
            conf: Some(Path::new("nginx.conf")),
        },
    ];
    for lookup in lookups {
        let located = locate(&lookup).unwrap();
        let ours: Vec<PathBuf> = located.set.files().map(|(p, _)| p.to_path_buf()).collect();
        assert_eq!(ours, read_by_nginx, "{lookup:?}");
        assert!(located.set.unread_includes().is_empty());
        assert!(
            matches!(located.choice, MainChoice::Given | MainChoice::Includes),
            "{lookup:?}: {:?}",
            located.choice
        );
        let names: Vec<String> = located
            .set
            .upstreams()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["php", "app"], "staging is not enabled");
    }

    // A site that is not enabled is read alone, its includes from the prefix.
    let staging = root.join("sites-available/staging.conf");
    let located = locate(&Lookup {
        file: &staging,
        prefix: None,
        conf: None,
    })
    .unwrap();
    assert_eq!(
        located.choice,
        MainChoice::Alone {
            prefix: root.clone(),
            why: PrefixFrom::NearestMain(main.clone())
        }
    );
    assert!(located.set.unread_includes().is_empty());
    assert!(
        located
            .set
            .files()
            .any(|(p, _)| p == root.join("fastcgi_params"))
    );
    let err = locate(&Lookup {
        file: &staging,
        prefix: None,
        conf: Some(&main),
    })
    .unwrap_err();
    assert!(err.to_string().contains("is not read by"), "{err}");
}

#[test]
fn the_issue_drain_works_on_the_site_file_and_nginx_t_agrees() {
    let (_d, root) = debian();
    let target = root.join("sites-available/app.conf");
    let inode = std::fs::metadata(&target).unwrap().ino();
    let original = std::fs::read(&target).unwrap();

    let out = tool_in(
        &root,
        &[
            "--verbose",
            "conf",
            "drain",
            "sites-enabled/app.conf",
            "app",
            "127.0.0.1:3002",
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("main configuration nginx.conf, which includes the file"),
        "{err}"
    );
    assert!(
        err.contains("drained 127.0.0.1:3002 in upstream app (sites-enabled/app.conf:4)"),
        "{err}"
    );
    assert!(!err.contains("warning"), "{err}");
    let drained = text(&std::fs::read(&target).unwrap());
    assert!(drained.contains("\tserver 127.0.0.1:3002 max_fails=3 down;\n"));
    assert_eq!(std::fs::metadata(&target).unwrap().ino(), inode);
    let t = nginx(&root, &root.join("nginx.conf"), "-t");
    assert!(t.status.success(), "{}", text(&t.stderr));

    // Every other edit, from the site file, with nginx -t after each.
    let edits: [&[&str]; 5] = [
        &[
            "set-weight",
            "sites-enabled/app.conf",
            "app",
            "127.0.0.1:3001",
            "5",
        ],
        &[
            "add-server",
            "sites-enabled/app.conf",
            "php",
            "127.0.0.1:9002",
            "max_fails=2",
        ],
        &[
            "replace-address",
            "sites-enabled/app.conf",
            "php",
            "127.0.0.1:9000",
            "unix:/run/php.sock",
        ],
        &[
            "remove-server",
            "sites-enabled/app.conf",
            "php",
            "127.0.0.1:9001",
        ],
        &["undrain", "sites-enabled/app.conf", "app", "127.0.0.1:3002"],
    ];
    for args in edits {
        let mut full = vec!["conf"];
        full.extend_from_slice(args);
        let out = tool_in(&root, &full);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let t = nginx(&root, &root.join("nginx.conf"), "-t");
        assert!(t.status.success(), "{args:?}: {}", text(&t.stderr));
    }
    assert_eq!(
        text(&std::fs::read(root.join("conf.d/php.conf")).unwrap()),
        "upstream php {\n\tserver unix:/run/php.sock;\n\tserver 127.0.0.1:9002 max_fails=2;\n}\n"
    );
    assert_eq!(
        text(&std::fs::read(&target).unwrap()),
        text(&original).replace("server 127.0.0.1:3001;", "server 127.0.0.1:3001 weight=5;")
    );
}

#[test]
fn a_missing_include_is_a_warning_offline_and_an_error_live() {
    let (_d, root) = debian();
    std::fs::remove_file(root.join("fastcgi_params")).unwrap();
    let main = root.join("nginx.conf");

    // nginx names the include it cannot open; the offline load warns at the same line.
    let t = nginx(&root, &main, "-t");
    assert!(!t.status.success());
    let at = format!("{}:2", root.join("fastcgi.conf").display());
    assert!(text(&t.stderr).contains(&at), "{}", text(&t.stderr));
    let opts = LoadOptions {
        prefix: None,
        missing: MissingIncludes::Skip,
    };
    let set = ConfigSet::load_with(&main, &HostFs, &opts).unwrap();
    let unread = set.unread_includes();
    assert_eq!(unread.len(), 1, "{unread:?}");
    assert_eq!(unread[0].place.file, root.join("fastcgi.conf"));
    assert_eq!((unread[0].place.line, unread[0].place.column), (2, 1));
    assert_eq!(unread[0].path, root.join("fastcgi_params"));

    // The live path trusts nginx -t: strict, the same place.
    let err = ConfigSet::load(&main, &HostFs).unwrap_err();
    assert_eq!(err.file(), Some(root.join("fastcgi.conf").as_path()));
    assert_eq!((err.line(), err.column()), (Some(2), Some(1)));
    assert!(err.message().starts_with("cannot read"), "{err}");

    // Offline commands work, saying what was not read and where.
    let out = tool_in(
        &root,
        &[
            "conf",
            "drain",
            "sites-enabled/app.conf",
            "app",
            "127.0.0.1:3001",
            "--dry-run",
        ],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "warning: fastcgi.conf:2:1: cannot read fastcgi_params: No such file or directory"
        ) && err.contains("upstreams in it were not searched"),
        "{err}"
    );
    assert!(text(&out.stdout).contains("+\tserver 127.0.0.1:3001 down;"));
    let check = tool_in(&root, &["conf", "check", "nginx.conf"]);
    assert!(check.status.success());
    assert!(text(&check.stderr).contains("(9 files, 2 upstreams; 1 include not read)"));
}

#[test]
fn a_lone_copy_of_a_site_file_is_edited_and_a_miss_names_the_unread_includes() {
    let (_d, root) = debian();
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("app.conf");
    std::fs::copy(root.join("sites-available/app.conf"), &copy).unwrap();
    std::fs::remove_dir_all(&root).unwrap();

    let out = tool_in(
        elsewhere.path(),
        &["conf", "drain", "app.conf", "app", "127.0.0.1:3002"],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The absolute include, the snippet and fastcgi_params: three warnings with their places.
    for at in ["app.conf:10:2", "app.conf:17:3", "app.conf:22:3"] {
        assert!(
            err.contains(&format!("warning: {at}: cannot read")),
            "{at}: {err}"
        );
    }
    assert!(text(&std::fs::read(&copy).unwrap()).contains("127.0.0.1:3002 max_fails=3 down;"));

    let miss = tool_in(
        elsewhere.path(),
        &["conf", "drain", "app.conf", "php", "127.0.0.1:9000"],
    );
    assert_eq!(miss.status.code(), Some(1));
    let err = text(&miss.stderr);
    assert!(
        err.contains("unknown upstream \"php\" in app.conf (available: app); not searched: 3 includes that could not be read: ")
            && err.contains("snippets/fastcgi-php.conf (app.conf:17:3)")
            && err.contains("fastcgi_params (app.conf:22:3)"),
        "{err}"
    );
}

#[test]
fn unread_includes_inside_an_upstream_are_named_when_a_server_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("nginx.conf");
    std::fs::write(
        &main,
        "http {\n    upstream u {\n        server a:1;\n        include more-servers.conf;\n    }\n    include other.conf;\n}\n",
    )
    .unwrap();
    let opts = LoadOptions {
        prefix: None,
        missing: MissingIncludes::Skip,
    };
    let mut set = ConfigSet::load_with(&main, &HostFs, &opts).unwrap();
    let unread = set.unread_includes();
    assert_eq!(unread.len(), 2);
    assert_eq!(unread[0].upstream.as_deref(), Some("u"));
    assert!(
        unread[0]
            .consequence()
            .contains("servers of upstream \"u\"")
    );
    assert_eq!(unread[1].upstream, None);
    let err = set
        .apply("u", "b", Edit::MarkDown, EditOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown server \"b\" in upstream \"u\" (available: a:1); not searched: 1 include that could not be read: ")
            && err.contains("more-servers.conf (")
            && !err.contains("other.conf"),
        "{err}"
    );
    // The last-live-server guard says the count may be short too.
    let err = set
        .apply("u", "a", Edit::MarkDown, EditOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("last live server") && err.contains("more-servers.conf"),
        "{err}"
    );
}

#[test]
fn many_includes_of_one_file_load_once_each_and_cycles_still_fail() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("nginx.conf");
    std::fs::write(dir.path().join("small.conf"), "gzip on;\n").unwrap();
    let mut text = String::from("http {\n    upstream u { server a:1; }\n");
    for _ in 0..20_000 {
        text.push_str("    include small.conf;\n");
    }
    text.push_str("    include missing.conf;\n}\n");
    std::fs::write(&main, text).unwrap();
    let opts = LoadOptions {
        prefix: None,
        missing: MissingIncludes::Skip,
    };
    let set = ConfigSet::load_with(&main, &HostFs, &opts).unwrap();
    assert_eq!(set.files().count(), 2);
    assert_eq!(set.unread_includes().len(), 1);
    assert_eq!(set.unread_includes()[0].place.line, 20_003);

    std::fs::write(dir.path().join("a.conf"), "include b.conf;\n").unwrap();
    std::fs::write(dir.path().join("b.conf"), "include a.conf;\n").unwrap();
    let err = ConfigSet::load_with(&dir.path().join("a.conf"), &HostFs, &opts).unwrap_err();
    assert!(err.message().starts_with("include cycle:"), "{err}");
}

#[test]
fn a_file_called_nginx_conf_is_a_main_file_even_under_another_one() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(dir.path().join("nginx.conf"), "events {}\n").unwrap();
    std::fs::write(dir.path().join("part.conf"), "wrong;\n").unwrap();
    std::fs::write(sub.join("part.conf"), "upstream u { server a:1; }\n").unwrap();
    let main = sub.join("nginx.conf");
    std::fs::write(&main, "http { include part.conf; }\n").unwrap();
    let located = locate(&Lookup {
        file: &main,
        prefix: None,
        conf: None,
    })
    .unwrap();
    assert_eq!(
        located.choice,
        MainChoice::Alone {
            prefix: sub.clone(),
            why: PrefixFrom::OwnDirectory
        }
    );
    assert_eq!(located.set.upstreams()[0].name, "u");
    // Another file there, which no nginx.conf includes, takes its includes
    // from the nearest nginx.conf's directory.
    let other = sub.join("other.conf");
    std::fs::write(&other, "include part.conf;\n").unwrap();
    let located = locate(&Lookup {
        file: &other,
        prefix: None,
        conf: None,
    })
    .unwrap();
    assert!(located.passed_over.len() >= 2, "{:?}", located.passed_over);
    assert!(located.passed_over[0].contains("does not include"));
    assert_eq!(
        located.set.files().nth(1).map(|(p, _)| p.to_path_buf()),
        Some(sub.join("part.conf"))
    );
}
