//! The command line's surface against a live stack: --quiet / --verbose /
//! NO_COLOR, the error format, and the summary table.
use crate::support::assert_ok;
use crate::support::stack::Stack;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn quiet_verbose_errors_and_the_summary_in_compose_mode() {
    let stack = Stack::up("clifront");
    // An error: one line saying what and where, then a hint; nothing else.
    let out = stack.tool(&["deploy", "nope", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("nginx-rollout: unknown upstream \"nope\" in /etc/nginx/nginx.conf"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("  hint: `nginx-rollout status`"),
        "{err}"
    );

    // A new image for app1 only: compose mode redeploys app1, skips app2, and the
    // summary shows old → new image.
    stack.edit_compose(
        "image: nginx-rollout-fixture/app:v1\n    environment:\n      - 'MESSAGE=app1",
        "image: nginx-rollout-fixture/app:v2\n    environment:\n      - 'MESSAGE=app1",
    );
    let out = stack.tool(&["deploy", "apps", "--yes", "--verbose", "--monitor", "0s"]);
    assert_ok(&out);
    let err = text(&out.stderr);
    assert!(text(&out.stdout).is_empty(), "human output goes to stderr");
    assert!(!err.contains('\u{1b}'), "NO_COLOR: no escapes:\n{err}");
    assert!(
        err.contains("skipping app2:3000: compose service app2 is unchanged"),
        "{err}"
    );
    assert!(
        err.contains("workers ["),
        "--verbose shows worker pids:\n{err}"
    );
    assert!(
        err.contains("done in"),
        "--verbose shows step timings:\n{err}"
    );
    let row = err
        .lines()
        .find(|l| l.contains("app1:3000") && l.contains("updated"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        row.contains("nginx-rollout-fixture/app:v1 → nginx-rollout-fixture/app:v2"),
        "{row}"
    );
    assert!(row.contains('s'), "time to healthy: {row}");

    // --quiet: only the summary.
    stack.edit_compose("app2,v1", "app2,v2");
    let out = stack.tool(&["deploy", "apps", "--yes", "--quiet", "--monitor", "0s"]);
    assert_ok(&out);
    let err = text(&out.stderr);
    assert!(!err.contains("[ 1/"), "--quiet shows no steps:\n{err}");
    assert!(!err.contains("is healthy"), "{err}");
    assert!(
        err.contains("app2:3000") && err.contains("updated"),
        "{err}"
    );
    assert!(err.contains("revision 2: done"), "{err}");
}
