//! The command line's surface without Docker: --help examples, completions,
//! the man page.
use std::process::Command;

use crate::support::{assert_ok, tool};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_shows_the_seed_examples_and_exit_codes() {
    let out = tool(&["--help"]);
    assert_ok(&out);
    let help = text(&out.stdout);
    for needle in [
        "nginx-rollout deploy apps --dry-run",
        "nginx-rollout deploy apps -i",
        "Exit codes: 0 done",
    ] {
        assert!(help.contains(needle), "{needle:?} not in --help:\n{help}");
    }
    let out = tool(&["deploy", "--help"]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains("--failure-action"));
}

#[test]
fn completions_and_man_page_are_generated() {
    let out = tool(&["completions", "bash"]);
    assert_ok(&out);
    let bash = text(&out.stdout);
    assert!(bash.contains("--dry-run") && bash.contains("rollback"));
    // bash accepts it and registers the completion, which offers the subcommands.
    let script = format!(
        "{bash}\ncomplete -p nginx-rollout\nCOMP_WORDS=(nginx-rollout dep); COMP_CWORD=1; \
         _nginx__rollout nginx-rollout dep nginx-rollout; echo \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_ok(&out);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("-F _nginx__rollout nginx-rollout"),
        "{shown}"
    );
    assert!(shown.lines().any(|l| l.trim() == "deploy"), "{shown}");
    let out = tool(&["completions", "zsh"]);
    assert_ok(&out);
    assert!(text(&out.stdout).starts_with("#compdef nginx-rollout"));
    let out = tool(&["man"]);
    assert_ok(&out);
    let man = text(&out.stdout);
    assert!(
        man.starts_with(".ie") || man.starts_with(".TH"),
        "{}",
        &man[..man.len().min(200)]
    );
    assert!(man.contains(".TH nginx-rollout") && man.contains("deploy"));
    let out = tool(&["completions", "nosuchshell"]);
    assert_eq!(out.status.code(), Some(2));
}
