//! The `conf` and `render` commands, run as the real binary.
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nginx-rollout"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("NGINX_ROLLOUT_STATE_DIR", super::hostile_input::state_dir())
        .output()
        .unwrap()
}

fn fixture(p: &str) -> String {
    format!("{}/fixtures/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn print_is_byte_identical_and_check_reports_the_place() {
    for f in [
        "conf/bom.conf",
        "conf/nginx-t/crlf-no-final-newline.conf",
        "conf/seed-proxy.conf",
    ] {
        let out = run(&["conf", "print", &fixture(f)]);
        assert!(out.status.success());
        assert_eq!(out.stdout, std::fs::read(fixture(f)).unwrap(), "{f}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("nginx.conf");
    std::fs::write(
        &bad,
        "http {\n    upstream u {\n        server a:1\n    }\n}\n",
    )
    .unwrap();
    for cmd in ["check", "print"] {
        let out = run(&["conf", cmd, bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!(
                "nginx-rollout: unexpected \"}}\" in {}:4:5\n",
                bad.display()
            )),
            "{err}"
        );
        assert!(err.contains("4 |     }\n  |     ^"), "{err}");
    }
    let ok = run(&["conf", "check", &fixture("conf/nginx-t/http.conf")]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
}

#[test]
fn drain_dry_run_then_drain_and_undrain_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    let original = std::fs::read(fixture("conf/seed-proxy.conf")).unwrap();
    std::fs::write(&conf, &original).unwrap();
    let c = conf.to_str().unwrap();
    let inode = std::fs::metadata(&conf).unwrap().ino();

    let dry = run(&["conf", "drain", c, "apps", "app2", "--dry-run"]);
    assert!(dry.status.success());
    let diff = text(&dry.stdout);
    assert!(
        diff.contains("-        server app2:3000;\n+        server app2:3000 down;\n"),
        "{diff}"
    );
    assert!(!diff.contains('\x1b'));
    assert_eq!(std::fs::read(&conf).unwrap(), original);

    assert!(
        run(&["conf", "drain", c, "apps", "app2:3000"])
            .status
            .success()
    );
    let drained = text(&std::fs::read(&conf).unwrap());
    assert!(drained.contains("server app2:3000 down;"));
    let refused = run(&["conf", "drain", c, "apps", "app1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("last live server"));

    let json = run(&["conf", "upstreams", c, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["name"], "apps");
    assert_eq!(v[0]["servers"][1]["params"][0]["name"], "down");
    assert_eq!(v[0]["servers"][1]["line"], 18);
    let table = text(&run(&["conf", "upstreams", c]).stdout);
    assert!(
        table.contains("app2:3000") && table.contains("down"),
        "{table}"
    );

    assert!(
        run(&["conf", "undrain", c, "apps", "app2"])
            .status
            .success()
    );
    assert_eq!(std::fs::read(&conf).unwrap(), original);
    assert_eq!(std::fs::metadata(&conf).unwrap().ino(), inode);

    let unknown = run(&["conf", "drain", c, "nope", "app2"]);
    assert!(text(&unknown.stderr).contains("(available: apps)"));
}

#[test]
fn parse_emits_crossplane_payload() {
    let out = run(&[
        "conf",
        "parse",
        "--include-comments",
        &fixture("conf/seed-proxy.conf"),
        "--single",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok");
    let parsed = &v["config"][0]["parsed"];
    assert_eq!(parsed[0]["directive"], "user");
    assert_eq!(parsed[0]["args"][0], "nginx");
    let http = parsed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["directive"] == "http")
        .unwrap();
    let comment = http["block"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["directive"] == "#")
        .unwrap();
    assert_eq!(comment["comment"], " load balancing");
}

#[test]
fn render_writes_stdout_or_file() {
    let t = fixture("../templates/upstream.conf.tera");
    let out = run(&["render", &t, "--values", &fixture("render/values.toml")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        out.stdout,
        std::fs::read(fixture("render/expected.conf")).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.conf");
    let r = run(&[
        "render",
        &t,
        "--values",
        &fixture("render/values.json"),
        "-o",
        dest.to_str().unwrap(),
    ]);
    assert!(r.status.success());
    assert!(Path::new(&dest).exists());
}
