//! `deploy -i` through a real pseudo-terminal: the prompt before each step
//! drives a real deploy, with the arrows and Enter or with one key per
//! answer; quitting leaves a resumable journal, which `rollback -i` asks
//! before closing when nothing changed; without a terminal `-i` refuses and
//! points to `--yes`.

use crate::support::stack::Stack;
use rexpect::process::WaitStatus;
use rexpect::session::{PtySession, spawn_command};

const PROMPT: &str = "run this step?";
/// The keys, as the prompt shows them.
const KEYS: &str = "[y]es [s]kip [a]ll [q]uit [r]ollback";
const DOWN: &str = "\x1b[B";

fn spawn(stack: &Stack, args: &[&str]) -> PtySession {
    let mut cmd = std::process::Command::new(crate::support::tool_path());
    cmd.args(args)
        .current_dir(stack.path())
        .env("NGINX_ROLLOUT_STATE_DIR", stack.path().join("state"))
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("NGINX_PORT", stack.port.to_string());
    spawn_command(cmd, Some(90_000)).expect("spawn in a pty")
}

fn exit_code(p: &PtySession) -> i32 {
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("not exited: {other:?}"),
    }
}

#[test]
fn answering_yes_then_all_runs_the_deploy_to_the_end() {
    let stack = Stack::up("itall");
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    let mut p = spawn(&stack, &["deploy", "apps", "-i", "--monitor", "0s"]);
    // Step 1 shows its diff before the question; Enter takes the default (yes).
    p.exp_string("[ 1/12] edit").unwrap();
    p.exp_string("+        server app1:3000 down;").unwrap();
    reply(&mut p, PROMPT, "\r");
    // Step 2: "all" (third item) runs the rest without asking.
    p.exp_string("[ 2/12] reload").unwrap();
    reply(&mut p, PROMPT, &format!("{DOWN}{DOWN}\r"));
    p.exp_string("[ 3/12] wait-drained").unwrap();
    let rest = p.exp_string("nginx reloads").unwrap();
    assert!(!rest.contains(PROMPT), "asked again after all:\n{rest}");
    assert!(rest.contains(": done in"), "{rest}");
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 0);
    assert_eq!(
        stack.bodies(8),
        ["Hi there, I love ! app1,v2", "Hi there, I love ! app2,v2"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn quitting_at_a_prompt_leaves_a_resumable_rollout() {
    let stack = Stack::up("itquit");
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    let mut p = spawn(&stack, &["deploy", "apps", "-i", "--monitor", "0s"]);
    reply(&mut p, PROMPT, "\r"); // step 1: drain app1
    p.exp_string("[ 2/12] reload").unwrap();
    reply(&mut p, PROMPT, &format!("{DOWN}{DOWN}{DOWN}\r")); // quit
    p.exp_string("paused").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 3);

    let status = stack.tool(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("Paused"), "{text}");
    let out = stack.tool(&["resume", "--yes"]);
    crate::support::assert_ok(&out);
    assert_eq!(
        stack.bodies(8),
        ["Hi there, I love ! app1,v2", "Hi there, I love ! app2,v2"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn rollback_asks_before_closing_a_rollout_that_changed_no_server() {
    let stack = Stack::up("itclose");
    stack.edit_compose("app1,v1", "app1,v2");
    let mut p = spawn(&stack, &["deploy", "apps", "-i", "--monitor", "0s"]);
    reply(&mut p, PROMPT, "\r"); // step 1: drain app1
    p.exp_string("[ 2/").unwrap();
    reply(&mut p, PROMPT, "q"); // quitting puts app1 back: nothing changed
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 3);

    // The close is a plan with no step: -i asks about it once.
    let mut p = spawn(&stack, &["rollback", "-i"]);
    p.exp_string("changed no server").unwrap();
    p.exp_string("no step to run").unwrap();
    reply(&mut p, "run this plan?", "n");
    p.exp_string("nothing done").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 0);
    let status = stack.tool(&["status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("Paused"));

    let mut p = spawn(&stack, &["rollback", "-i"]);
    reply(&mut p, "run this plan?", "y");
    p.exp_string("closed").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 0);
    let status = stack.tool(&["status", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["unfinished"].is_null(), "{status}");
    assert!(stack.bodies(8).contains("Hi there, I love ! app1,v1"));
}

/// Waits for `shown` on screen, then types `keys`.
fn reply(p: &mut PtySession, shown: &str, keys: &str) {
    p.exp_string(shown).unwrap();
    p.send(keys).unwrap();
    p.flush().unwrap();
}

/// Answers the prompt now on screen with `key` alone (no Enter) and waits
/// for the answer to be shown.
fn answer(p: &mut PtySession, key: &str, shown: &str) {
    p.exp_string(KEYS).unwrap();
    reply(p, "rollback", key); // the last line of the menu
    p.exp_string(&format!("{PROMPT} {shown}")).unwrap();
}

#[test]
fn one_key_answers_yes_skip_quit_then_rollback_and_all() {
    let stack = Stack::up("itkeys");
    let before = String::from_utf8(stack.conf()).unwrap();
    stack.edit_compose("app1,v1", "app1,v2");
    stack.edit_compose("app2,v1", "app2,v2");
    let mut p = spawn(&stack, &["deploy", "apps", "-i", "-v", "--monitor", "0s"]);
    p.exp_string("[ 1/12] edit").unwrap();
    answer(&mut p, "y", "yes, run this step");
    p.exp_string("[ 2/12] reload").unwrap();
    answer(&mut p, "s", "skip this step");
    p.exp_string("skipped in").unwrap();
    p.exp_string("[ 3/12] wait-drained").unwrap();
    answer(&mut p, "q", "quit (resumable once a step ran)");
    p.exp_string("paused").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 3);
    let status = stack.tool(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("Paused"), "{text}");

    // Quitting put app1 back, so the resumed rollout asks from step 1 again;
    // this time app1 is drained live, then `r` rolls back, and the rollback
    // asks too: `a` runs all of it.
    let mut p = spawn(&stack, &["resume", "-i"]);
    p.exp_string("[ 1/12] edit").unwrap();
    answer(&mut p, "Y", "yes, run this step");
    p.exp_string("[ 2/12] reload").unwrap();
    answer(&mut p, "y", "yes, run this step");
    p.exp_string("[ 3/12] wait-drained").unwrap();
    answer(&mut p, "r", "rollback");
    answer(&mut p, "a", "all: run the rest without asking");
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), 1, "rolled back is exit 1");
    assert_eq!(String::from_utf8(stack.conf()).unwrap(), before);
    assert_eq!(
        stack.bodies(8),
        ["Hi there, I love ! app1,v1", "Hi there, I love ! app2,v1"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn interactive_without_a_terminal_says_to_use_yes_and_does_nothing() {
    let stack = Stack::up("itnotty");
    stack.edit_compose("app1,v1", "app1,v2");
    let out = stack.tool(&["deploy", "apps", "-i"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(
        !stack.path().join("state/revisions").exists(),
        "no journal was started"
    );
    assert_eq!(stack.bodies(4).len(), 2);
    assert!(stack.bodies(8).contains("Hi there, I love ! app1,v1"));
}
