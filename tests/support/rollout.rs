//! A rollout run under load: the tool against a [`Stack`] while requests
//! keep coming and slow ones are in flight, with what every such run must
//! show — done, within the load, no request lost.
use std::process::{Command, Output};
use std::time::Duration;

use super::stack::Stack;
use super::{assert_ok, summary};

/// Seconds of load around one rollout: longer than the rollout.
pub const LOAD_SECONDS: u32 = 40;

/// What a run [`under_load`] gives back.
pub struct UnderLoad {
    /// The tool's output.
    pub out: Output,
    /// (status, body) of every slow request: all 200, answered by whichever
    /// server took each.
    pub slow: Vec<(u16, String)>,
}

/// Runs the tool with `args` (a rollout with `--output json`) under
/// `profile` load of `/` (scripts/load.sh, 16 at once, at most
/// [`LOAD_SECONDS`], stopped when the tool is done) with a 2 s request
/// started every 150 ms, so that some are in flight on each server when it
/// is drained and the old nginx workers must wait for them (round robin
/// sends each to either server: the ten or more started before the first
/// drain all miss the first server once in a thousand runs; at 300 ms, one
/// in thirty). Checks the
/// rollout succeeded with status `done` before the load ended, no request
/// failed, more than 100 were answered and every slow one completed.
pub fn under_load(stack: &Stack, args: &[&str], profile: &str) -> UnderLoad {
    under_load_cmd(stack, stack.tool_cmd(args), profile)
}

/// [`under_load`], the tool run as `cmd` (from another directory, say).
pub fn under_load_cmd(stack: &Stack, mut cmd: Command, profile: &str) -> UnderLoad {
    let load = stack.load("/", LOAD_SECONDS, 16, profile);
    let slow = stack.trickle("/slow?ms=2000", Duration::from_millis(150));
    std::thread::sleep(Duration::from_secs(1));
    let out = cmd.output().expect("nginx-rollout runs");
    let slow = slow.finish();
    let load = load.stop();
    assert_ok(&out);
    let summary = summary(&out);
    assert_eq!(summary["status"], "done", "{summary}");
    let seconds = summary["seconds"].as_f64().unwrap();
    assert!(
        seconds + 1.0 < f64::from(LOAD_SECONDS),
        "the rollout ({seconds} s) outlasted the load: the test proves nothing, raise LOAD_SECONDS"
    );
    assert_eq!(load.failed, 0, "{profile}: {load:?}");
    assert!(load.total > 100, "{profile}: {load:?}");
    let bad: Vec<_> = slow.iter().filter(|(status, _)| *status != 200).collect();
    assert!(
        bad.is_empty(),
        "slow requests that did not complete with 200: {bad:?}"
    );
    UnderLoad { out, slow }
}
