//! The operator's bytes are never lost: `kill -9` inside an in-place write
//! is undone by the next run, two edits at once both land, and a file
//! changed under an edit is read and spliced again, never overwritten.
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Stdio};

use super::hostile_input::{finish, tool};

const FIVE: &str = "http {\n    upstream u {\n        server s1:1;\n        server s2:1;\n        server s3:1;\n        server s4:1;\n        server s5:1;\n    }\n}\n";

/// `conf drain FILE u SERVER` paused at `stage` (test hook) once it gets there;
/// returns when the child says it is paused.
fn paused_drain(file: &Path, server: &str, stage: &str) -> Child {
    let mut child = tool(&["conf", "drain", file.to_str().unwrap(), "u", server])
        .env("NGINX_ROLLOUT_TEST_PAUSE", format!("{stage}:600000"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().expect("the writer reports its pause").unwrap();
    assert!(line.contains(&format!("test pause {stage}")), "{line}");
    child
}

#[test]
fn kill_9_between_truncate_and_write_is_undone_by_the_next_run() {
    for next in [
        &["conf", "check"][..],
        &["conf", "upstreams"],
        &["conf", "print"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, FIVE).unwrap();
        let inode = std::fs::metadata(&file).unwrap().ino();
        let mut child = paused_drain(&file, "s2", "truncated");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"",
            "torn: truncated, not written"
        );
        child.kill().unwrap();
        child.wait().unwrap();

        let mut args = next.to_vec();
        args.push(file.to_str().unwrap());
        let out = tool(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("previous bytes are restored"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), FIVE, "{next:?}");
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }
}

#[test]
fn two_drains_at_once_both_land() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, FIVE).unwrap();
    // The first drain stops in the middle of its write, holding the lock;
    // the second starts meanwhile and waits for the lock.
    let mut first = paused_drain(&file, "s1", "truncated");
    let second = tool(&["conf", "drain", file.to_str().unwrap(), "u", "s2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The first dies there: the second gets the lock, finds the torn file
    // restored, and applies its edit to the whole text.
    first.kill().unwrap();
    first.wait().unwrap();
    let out = finish(second);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        FIVE.replace("server s2:1;", "server s2:1 down;")
    );

    // Two at once, each slow inside its write: both edits are in the file.
    let slow = |server: &str| {
        tool(&["conf", "drain", file.to_str().unwrap(), "u", server])
            .env("NGINX_ROLLOUT_TEST_PAUSE", "truncated:500")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (slow("s3"), slow("s4"));
    let (a, b) = (finish(a), finish(b));
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    for s in ["s2", "s3", "s4"] {
        assert!(
            text.contains(&format!("server {s}:1 down;")),
            "{s} lost:\n{text}"
        );
    }
}

#[test]
fn a_file_edited_under_a_drain_is_read_and_spliced_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, FIVE).unwrap();
    let mut child = tool(&["conf", "drain", file.to_str().unwrap(), "u", "s2"])
        .env("NGINX_ROLLOUT_TEST_PAUSE", "before-check:1000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("test pause before-check"), "{first}");
    // The operator's edit lands while the drain holds the bytes it read.
    let edited = FIVE.replace("server s5:1;", "server s5:1 weight=3; # the operator's");
    std::fs::write(&file, &edited).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        edited.replace("server s2:1;", "server s2:1 down;"),
        "the operator's edit and the drain, both: {rest:?}"
    );
}

#[test]
fn a_read_during_another_runs_write_waits_for_it_and_undoes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, FIVE).unwrap();
    // The drain stops after truncating, for 1.5 s, alive: its write is
    // under way, not interrupted.
    let mut writer = tool(&["conf", "drain", file.to_str().unwrap(), "u", "s1"])
        .env("NGINX_ROLLOUT_TEST_PAUSE", "truncated:1500")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("test pause truncated"), "{first}");
    // A read meanwhile (any command) waits for the write and sees its result.
    let read = tool(&["conf", "print", file.to_str().unwrap()])
        .output()
        .unwrap();
    let drained = FIVE.replace("server s1:1;", "server s1:1 down;");
    assert!(read.status.success(), "{read:?}");
    assert_eq!(String::from_utf8_lossy(&read.stdout), drained);
    assert!(
        !String::from_utf8_lossy(&read.stderr).contains("restored"),
        "{read:?}"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(writer.wait().unwrap().success(), "{rest:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), drained);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no save is left: {leftovers:?}");
}
