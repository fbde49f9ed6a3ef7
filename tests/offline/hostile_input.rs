//! Hostile and broken input to the offline commands: deep nesting, FIFOs,
//! huge files and lines, unwritable stderr, a closed stdout, escape
//! sequences, and the configs that used to get wrong answers. Every case
//! ends in an error naming a place (or a correct edit), never a crash or a hang.
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The tool with `args`, no stdin, its lock in a private state dir.
pub fn tool(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nginx-rollout"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env("NGINX_ROLLOUT_STATE_DIR", state_dir())
        .stdin(Stdio::null());
    cmd
}

/// One state directory for the offline tests' edits (they share its lock).
pub fn state_dir() -> PathBuf {
    std::env::temp_dir().join("nginx-rollout-offline-tests")
}

/// Waits for `child`; a run that takes over 5 minutes is a hang, killed and failed.
pub fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("the tool hung: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn run(args: &[&str]) -> Output {
    finish(
        tool(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 1 (an error), not a signal or a panic (101), with `needle` in stderr.
fn fails_with(out: &Output, needle: &str) {
    assert_eq!(
        (out.status.signal(), out.status.code()),
        (None, Some(1)),
        "{}",
        stderr(out)
    );
    assert!(stderr(out).contains(needle), "{}", stderr(out));
}

/// Exit 0 with a warning holding `needle`: an offline command reads what it
/// can and names each include it could not read (as `conf check` does).
fn warns_with(out: &Output, needle: &str) {
    assert_eq!(
        (out.status.signal(), out.status.code()),
        (None, Some(0)),
        "{}",
        stderr(out)
    );
    let err = stderr(out);
    assert!(
        err.lines()
            .any(|l| l.contains("warning:") && l.contains(needle)),
        "{err}"
    );
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn deep_nesting_is_an_error_with_its_place_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30_000;
    let deep = format!(
        "http {{ upstream u {{ server a:1; server b:1; }} }}\n{}{}",
        "b {".repeat(n),
        "}".repeat(n)
    );
    let f = write(dir.path(), "deep.conf", deep);
    let place = format!("{f}:2:");
    for args in [
        vec!["conf", "check", &f],
        vec!["conf", "upstreams", &f],
        vec!["conf", "drain", &f, "u", "a:1"],
        vec!["conf", "undrain", &f, "u", "a:1"],
        vec!["conf", "print", &f],
    ] {
        let out = run(&args);
        fails_with(&out, "nested deeper than 200 levels");
        assert!(stderr(&out).contains(&place), "{args:?}: {}", stderr(&out));
    }
    let parse = run(&["conf", "parse", &f]);
    assert_eq!(parse.status.code(), Some(1), "{}", stderr(&parse));
    let v: serde_json::Value = serde_json::from_slice(&parse.stdout).unwrap();
    assert!(
        v["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("nested deeper"),
        "{v}"
    );

    // A chain of includes is nesting too.
    let chain = tempfile::tempdir().unwrap();
    for i in 0..300 {
        write(
            chain.path(),
            &format!("{i}.conf"),
            format!("include {}.conf;\n", i + 1),
        );
    }
    write(chain.path(), "300.conf", "");
    let main = chain.path().join("0.conf");
    fails_with(
        &run(&["conf", "check", main.to_str().unwrap()]),
        "nested deeper than 200 levels",
    );
}

#[test]
fn fifos_and_huge_files_are_errors_not_hangs_or_floods() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.conf");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo = fifo.to_str().unwrap();
    fails_with(
        &run(&["conf", "check", fifo]),
        "not a regular file (a FIFO)",
    );
    // An include that cannot be read is skipped with a warning naming its place.
    let main = write(dir.path(), "main.conf", "events {}\ninclude fifo.conf;\n");
    let out = run(&["conf", "check", &main]);
    warns_with(&out, "not a regular file (a FIFO)");
    warns_with(&out, &format!("{main}:2:1"));

    let big = dir.path().join("big.conf");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let main = write(dir.path(), "main2.conf", "include big.conf;\n");
    warns_with(&run(&["conf", "check", &main]), "larger than 64 MiB");

    // A 9 MB line with an error: a window of it, not the whole line.
    let mut line = "xx ".repeat(3_000_000);
    line.replace_range(3_999_999..4_000_001, "} ");
    let long = write(dir.path(), "long.conf", format!("a {line};\n"));
    let out = run(&["conf", "check", &long]);
    fails_with(&out, &format!("unexpected \"}}\" in {long}:1:4000002"));
    assert!(
        out.stderr.len() < 2_000,
        "{} bytes of stderr",
        out.stderr.len()
    );
}

/// `/dev/full`, open to write: every write fails with ENOSPC.
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

#[test]
fn no_panic_on_absurd_arguments_or_unwritable_output() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/conf/seed-proxy.conf");
    for verb in ["parse", "lex", "build"] {
        let out = run(&["conf", verb, seed, "--indent", "18446744073709551615"]);
        assert_eq!(out.status.code(), Some(2), "usage error: {}", stderr(&out));
    }

    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.conf", "a {\n");
    for (args, code) in [
        (vec!["conf", "check", bad.as_str()], 1),
        (vec!["conf", "check", seed], 0),
        (vec!["conf", "drain", seed, "apps", "nope"], 1),
        (
            vec!["render", "/nonexistent", "--values", "/nonexistent.toml"],
            1,
        ),
    ] {
        let full = dev_full();
        let out = finish(
            tool(&args)
                .stdout(Stdio::null())
                .stderr(full)
                .spawn()
                .unwrap(),
        );
        assert_eq!(out.status.code(), Some(code), "{args:?} with 2>/dev/full");
    }

    // A stdout that cannot be written (a full disk behind `>`): an error
    // that says so, never a panic.
    for args in [
        vec!["conf", "print", seed],
        vec!["conf", "parse", seed],
        vec!["completions", "bash"],
        vec!["man"],
    ] {
        let full = dev_full();
        let out = finish(
            tool(&args)
                .stdout(full)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} >/dev/full: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("writing to stdout: No space left on device"),
            "{args:?}: {}",
            stderr(&out)
        );
    }

    // A reader that goes away: the tool ends quietly.
    let big = write(
        dir.path(),
        "big.conf",
        "events {}\n# padding\n".repeat(200_000),
    );
    for args in [
        vec!["conf", "print", big.as_str()],
        vec!["conf", "parse", big.as_str()],
    ] {
        let mut child = tool(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take());
        let out = finish(child);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn escape_sequences_from_a_config_reach_the_terminal_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "nginx.conf",
        "http { upstream \"u\x1b]0;pwned\x07\" { server \"a\x1b[2J:1\"; server b:1; } }\n",
    );
    let table = run(&["conf", "upstreams", &f]);
    assert!(table.status.success(), "{}", stderr(&table));
    let shown = String::from_utf8_lossy(&table.stdout);
    assert!(
        !shown.contains('\x1b') && !shown.contains('\x07'),
        "{shown:?}"
    );
    assert!(shown.contains("a\\u{1b}[2J:1"), "{shown}");

    let err = run(&["conf", "drain", &f, "u\x1b]0;pwned\x07", "\x1b[2J"]);
    assert_eq!(err.status.code(), Some(1));
    assert!(!err.stderr.contains(&0x1b), "{}", stderr(&err));

    let dry = run(&["conf", "drain", &f, "u\x1b]0;pwned\x07", "b:1", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        !dry.stdout.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
}

#[test]
fn undrain_removes_every_down_and_a_twin_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "nginx.conf",
        "http {\n    upstream u {\n        server g:1 down down;\n        server h:1;\n    }\n}\n",
    );
    let out = run(&["conf", "undrain", &f, "u", "g:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "http {\n    upstream u {\n        server g:1;\n        server h:1;\n    }\n}\n"
    );
    let up = run(&["conf", "upstreams", &f, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(v[0]["servers"][0]["params"], serde_json::json!([]));

    let twins = "http {\n    upstream u {\n        server a:1;\n        server b:1;\n        server a:1 weight=2;\n    }\n}\n";
    let f = write(dir.path(), "twins.conf", twins);
    for server in ["a:1", "a"] {
        let out = run(&["conf", "drain", &f, "u", server]);
        fails_with(&out, "is listed 2 times in upstream \"u\" (lines 3, 5");
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            twins,
            "nothing written"
        );
    }
}

#[test]
fn an_http_and_a_stream_upstream_of_one_name_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let text = "http {\n    upstream u { server a:1; server b:1; }\n}\nstream {\n    upstream u { server a:1; server b:1; }\n}\n";
    let f = write(dir.path(), "nginx.conf", text);
    let out = run(&["conf", "drain", &f, "u", "a:1"]);
    fails_with(&out, "say which, e.g. http:u or stream:u");
    assert!(
        stderr(&out).contains(&format!("stream:u ({f}:5)")),
        "{}",
        stderr(&out)
    );
    let out = run(&["conf", "drain", &f, "stream:u", "a:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        text.replacen("server a:1;", "server a:1 down;", 2)
            .replacen("server a:1 down;", "server a:1;", 1)
    );
}

#[test]
fn an_include_heavy_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "empty.conf", "");
    let main = write(
        dir.path(),
        "nginx.conf",
        "include empty.conf;\n".repeat(100_000),
    );
    let out = run(&["conf", "check", &main]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(2 files, 0 upstreams)"),
        "{}",
        stderr(&out)
    );
}
