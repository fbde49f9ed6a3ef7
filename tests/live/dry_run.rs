//! `deploy --dry-run` and `plan` show everything and change nothing: same
//! nginx.conf bytes and mtime, same containers, same nginx processes, no state dir.
use crate::support::stack::Stack;
use crate::support::{assert_ok, docker};

/// Everything a mutating call would change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    conf: Vec<u8>,
    mtime: std::time::SystemTime,
    containers: String,
    nginx_pids: String,
    entries: Vec<String>,
}

fn snapshot(stack: &Stack) -> Snapshot {
    let project = format!("label=com.docker.compose.project={}", stack.project);
    let mut entries: Vec<String> = std::fs::read_dir(stack.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    Snapshot {
        conf: stack.conf(),
        mtime: std::fs::metadata(stack.conf_path())
            .unwrap()
            .modified()
            .unwrap(),
        containers: docker(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &project,
            "--format",
            "{{.ID}} {{.Names}}",
        ]),
        nginx_pids: docker(&["top", &stack.container("nginx"), "-o", "pid,args"]),
        entries,
    }
}

#[test]
fn dry_run_and_plan_print_every_step_and_diff_and_change_nothing() {
    let stack = Stack::up("dryrun");
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    let before = snapshot(&stack);
    assert!(
        before.nginx_pids.contains("nginx: master process"),
        "{}",
        before.nginx_pids
    );
    assert!(
        before.nginx_pids.contains("nginx: worker process"),
        "{}",
        before.nginx_pids
    );
    for args in [
        &["deploy", "apps", "--dry-run"][..],
        &["plan", "apps"],
        &["deploy", "apps", "--dry-run", "--output", "json"],
    ] {
        let out = stack.tool(args);
        assert_ok(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        if args.contains(&"json") {
            let events = crate::support::json_lines(&out);
            assert_eq!(events.len(), 1, "{text}");
            assert_eq!(events[0]["event"], "plan");
            assert_eq!(events[0]["plan"]["steps"].as_array().unwrap().len(), 13);
        } else {
            for n in 1..=13 {
                assert!(
                    text.contains(&format!("[{n:>2}/13]")),
                    "step {n} missing from {args:?}:\n{text}"
                );
            }
            for needle in [
                "recreate      recreate",
                "_app1_1",
                "_app2_1",
                "wait until",
                "-        server app1:3000;",
                "+        server app1:3000 down;",
                "+        server app2:3000;",
                "parallelism",
                "default",
            ] {
                assert!(
                    text.contains(needle),
                    "{needle:?} missing from {args:?}:\n{text}"
                );
            }
            assert!(
                !text.contains('\u{1b}'),
                "no colors with NO_COLOR and no TTY"
            );
        }
        assert_eq!(snapshot(&stack), before, "{args:?} changed something");
    }
    assert!(!stack.path().join(".nginx-rollout").exists());
    assert!(!stack.path().join("proxy/.nginx-rollout").exists());
    assert!(!stack.path().join("state").exists(), "no state directory");
}
