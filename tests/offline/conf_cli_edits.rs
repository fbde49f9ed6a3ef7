//! `conf set-weight`, `add-server`, `remove-server`, `replace-address`,
//! `lex` and `build`, run as the real binary.
use crate::support::tool;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const CONF: &str = "\
http {
\tupstream apps {
\t\tzone apps 64k;
\t\tserver app1:3000;
\t\tserver app2:3000 weight=2; # canary
\t}

    upstream solo {
        server only:80;
        server spare:80 backup;
    }

  upstream empty_ish {
    keepalive 4;
  }
}
";

fn conf() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, CONF).unwrap();
    let p = path.to_str().unwrap().to_string();
    (dir, p)
}

fn read(p: &str) -> String {
    text(&std::fs::read(p).unwrap())
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stderr)
}

fn failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    text(&out.stderr)
}

#[test]
fn set_weight_dry_run_then_in_place() {
    let (_d, c) = conf();
    let inode = std::fs::metadata(&c).unwrap().ino();
    let dry = tool(&["conf", "set-weight", &c, "apps", "app2", "5", "--dry-run"]);
    ok(&dry);
    assert!(
        text(&dry.stdout).contains(
            "-\t\tserver app2:3000 weight=2; # canary\n+\t\tserver app2:3000 weight=5; # canary\n"
        ),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(read(&c), CONF);
    let said = ok(&tool(&["conf", "set-weight", &c, "apps", "app1:3000", "3"]));
    assert!(
        said.contains("set weight=3 on app1:3000 in upstream apps"),
        "{said}"
    );
    assert!(read(&c).contains("\t\tserver app1:3000 weight=3;\n"));
    assert_eq!(std::fs::metadata(&c).unwrap().ino(), inode);
    let again = ok(&tool(&["conf", "set-weight", &c, "apps", "app1", "3"]));
    assert!(again.contains("already has weight=3"), "{again}");
    let zero = failed(&tool(&["conf", "set-weight", &c, "apps", "app1", "0"]));
    assert!(zero.contains("invalid weight 0"), "{zero}");
}

#[test]
fn add_server_takes_the_indentation_of_its_neighbours() {
    let (_d, c) = conf();
    ok(&tool(&[
        "conf",
        "add-server",
        &c,
        "apps",
        "app3:3000",
        "weight=2",
        "max_fails=3",
    ]));
    ok(&tool(&["conf", "add-server", &c, "solo", "[::1]:80"]));
    ok(&tool(&[
        "conf",
        "add-server",
        &c,
        "empty_ish",
        "unix:/run/a.sock",
    ]));
    let after = read(&c);
    assert!(
        after.contains("weight=2; # canary\n\t\tserver app3:3000 weight=2 max_fails=3;\n\t}"),
        "{after}"
    );
    assert!(
        after.contains("server spare:80 backup;\n        server [::1]:80;\n    }"),
        "{after}"
    );
    assert!(
        after.contains("    keepalive 4;\n    server unix:/run/a.sock;\n  }"),
        "{after}"
    );
    let again = ok(&tool(&["conf", "add-server", &c, "apps", "app3:3000"]));
    assert!(
        again.contains("upstream apps already has app3:3000"),
        "{again}"
    );
    let bad = failed(&tool(&[
        "conf",
        "add-server",
        &c,
        "apps",
        "app4:3000",
        "wieght=2",
    ]));
    assert!(
        bad.contains("invalid server parameter \"wieght=2\" (parameters: weight=N"),
        "{bad}"
    );
    let unknown = failed(&tool(&["conf", "add-server", &c, "nope", "a:1"]));
    assert!(
        unknown.contains("(available: apps, solo, empty_ish)"),
        "{unknown}"
    );
}

#[test]
fn remove_server_keeps_the_last_live_one_unless_forced() {
    let (_d, c) = conf();
    let dry = tool(&["conf", "remove-server", &c, "apps", "app2", "--dry-run"]);
    ok(&dry);
    assert!(
        text(&dry.stdout).contains("-\t\tserver app2:3000 weight=2; # canary\n"),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(read(&c), CONF);
    ok(&tool(&["conf", "remove-server", &c, "apps", "app2"]));
    assert!(read(&c).contains("\t\tserver app1:3000;\n\t}"));
    let guard = failed(&tool(&["conf", "remove-server", &c, "apps", "app1"]));
    assert!(guard.contains("last live server"), "{guard}");
    // solo: `only` is the last live server; with --force it goes, `spare` stays.
    let guard = failed(&tool(&["conf", "remove-server", &c, "solo", "only"]));
    assert!(guard.contains("use --force"), "{guard}");
    ok(&tool(&[
        "conf",
        "remove-server",
        &c,
        "solo",
        "only",
        "--force",
    ]));
    // nginx refuses an upstream without servers, --force or not.
    let last = failed(&tool(&[
        "conf",
        "remove-server",
        &c,
        "solo",
        "spare",
        "--force",
    ]));
    assert!(last.contains("only server of upstream \"solo\""), "{last}");
    let gone = ok(&tool(&["conf", "remove-server", &c, "apps", "app9"]));
    assert!(
        gone.contains(
            "no server \"app9\" in upstream apps (servers: app1:3000): nothing to remove"
        ),
        "{gone}"
    );
}

#[test]
fn replace_address_keeps_parameters_and_lists_what_exists() {
    let (_d, c) = conf();
    let said = ok(&tool(&[
        "conf",
        "replace-address",
        &c,
        "apps",
        "app2",
        "app2-b:3000",
    ]));
    assert!(
        said.contains("replaced app2 by app2-b:3000 in upstream apps") && said.contains(":5)"),
        "{said}"
    );
    assert!(read(&c).contains("\t\tserver app2-b:3000 weight=2; # canary\n"));
    let taken = failed(&tool(&[
        "conf",
        "replace-address",
        &c,
        "apps",
        "app1",
        "app2-b:3000",
    ]));
    assert!(
        taken.contains("already has a server \"app2-b:3000\""),
        "{taken}"
    );
    let unknown = failed(&tool(&[
        "conf",
        "replace-address",
        &c,
        "apps",
        "app7",
        "x:1",
    ]));
    assert!(
        unknown.contains(
            "unknown server \"app7\" in upstream \"apps\" (available: app1:3000, app2-b:3000)"
        ),
        "{unknown}"
    );
}

#[test]
fn lex_and_build_round_trip_through_json() {
    let (dir, c) = conf();
    let lex = tool(&["conf", "lex", &c, "-n"]);
    ok(&lex);
    let tokens: serde_json::Value = serde_json::from_slice(&lex.stdout).unwrap();
    assert_eq!(tokens[0], serde_json::json!(["http", 1]));
    assert_eq!(tokens[14], serde_json::json!(["weight=2", 5]));
    assert_eq!(tokens[16], serde_json::json!(["# canary", 5]));

    let parse = tool(&["conf", "parse", &c, "--include-comments"]);
    ok(&parse);
    let payload = Path::new(dir.path()).join("payload.json");
    std::fs::write(&payload, &parse.stdout).unwrap();
    let built = tool(&["conf", "build", payload.to_str().unwrap(), "--tabs"]);
    ok(&built);
    let want = "http {\n\tupstream apps {\n\t\tzone apps 64k;\n\t\tserver app1:3000;\n\t\tserver app2:3000 weight=2; # canary\n\t}\n\tupstream solo {\n";
    assert!(
        text(&built.stdout).starts_with(want),
        "{}",
        text(&built.stdout)
    );

    // From stdin, and a payload that is not one is an error with its place.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nginx-rollout"))
        .args(["conf", "build", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &parse.stdout).unwrap();
    drop(child.stdin.take());
    let piped = child.wait_with_output().unwrap();
    ok(&piped);
    assert!(text(&piped.stdout).contains("\n    upstream solo {\n        server only:80;\n"));
    std::fs::write(&payload, "{\"config\": 3}").unwrap();
    let bad = failed(&tool(&["conf", "build", payload.to_str().unwrap()]));
    assert!(
        bad.contains("payload.json:1:") && bad.contains("conf parse"),
        "{bad}"
    );
}
