//! The live line edits and the canary flags on the command line, without
//! Docker: what clap refuses (exit 2, nothing touched) and what help shows.
use crate::support::{assert_ok, text, tool};

#[test]
fn the_live_line_edits_are_listed_with_their_arguments() {
    let help = tool(&["--help"]);
    assert_ok(&help);
    let help = text(&help);
    for command in ["weight", "add", "remove"] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} not listed:\n{help}"
        );
    }
    let weight = tool(&["weight", "--help"]);
    assert_ok(&weight);
    assert!(
        text(&weight).contains("<UPSTREAM> <SERVER> <WEIGHT>"),
        "{}",
        text(&weight)
    );
    let add = tool(&["add", "--help"]);
    assert_ok(&add);
    for shown in ["<UPSTREAM> <ADDRESS> [PARAMS]...", "--dry-run"] {
        assert!(text(&add).contains(shown), "{shown}: {}", text(&add));
    }
    let remove = tool(&["remove", "--help"]);
    assert!(text(&remove).contains("--force"), "{}", text(&remove));
    let deploy = tool(&["deploy", "--help"]);
    for flag in ["--canary-weights", "--canary-pause", "--canary-delay"] {
        assert!(text(&deploy).contains(flag), "{flag}: {}", text(&deploy));
    }
}

/// What nginx would reject is refused by the config engine's own rule, before
/// anything runs (no Docker here).
#[test]
fn weights_and_parameters_nginx_would_reject_are_usage_errors() {
    for args in [
        &["weight", "apps", "app2", "0"][..],
        &["weight", "apps", "app2", "2.5"],
        &["weight", "apps", "app2", "heavy"],
        &["weight", "apps", "app2", "2147483648"],
        &["add", "apps", "app3:3000", "weight=0"],
        &["add", "apps", "app3:3000", "max_fails=2", "wieght=2"],
        &["add", "apps", "app3:3000", "fail_timeout=soon"],
    ] {
        let out = tool(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("invalid value"),
            "{args:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn canary_flags_are_checked_before_anything_runs() {
    for (args, says) in [
        (&["deploy", "apps", "--canary-weights", "0"][..], "1 to 99"),
        (&["deploy", "apps", "--canary-weights", "10,100"], "1 to 99"),
        (
            &["deploy", "apps", "--canary-weights", "10,half"],
            "percentage",
        ),
        (
            &[
                "deploy",
                "apps",
                "--canary-weights",
                "10",
                "--canary-pause",
                "--canary-delay",
                "5s",
            ],
            "cannot be used with",
        ),
        (&["deploy", "apps", "--canary-pause"], "--canary-weights"),
        (
            &["deploy", "apps", "--canary-delay", "5s"],
            "--canary-weights",
        ),
    ] {
        let out = tool(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(says),
            "{args:?} should say {says:?}: {}",
            text(&out)
        );
    }
}
