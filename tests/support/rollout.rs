//! A rollout run under load: the tool against a [`Stack`] while requests
//! keep coming and slow ones are in flight, with what every such run must
//! show — done, within the load, no request lost.
use std::process::Output;
use std::time::Duration;

use super::stack::Stack;
use super::{assert_ok, summary};

/// Seconds of load around one rollout: longer than the rollout.
pub const LOAD_SECONDS: u32 = 40;

/// Runs the tool with `args` (a rollout with `--output json`) under
/// `profile` load of `/` (scripts/load.sh, 16 at once, [`LOAD_SECONDS`]) with
/// a 2 s request started every 300 ms, and checks the rollout succeeded with
/// status `done` before the load ended, no request failed, more than 100
/// were answered and every slow one completed. Returns the tool's output.
pub fn under_load(stack: &Stack, args: &[&str], profile: &str) -> Output {
    let load = stack.load("/", LOAD_SECONDS, 16, profile);
    let slow = stack.trickle("/slow?ms=2000", Duration::from_millis(300));
    std::thread::sleep(Duration::from_secs(1));
    let out = stack.tool(args);
    let slow = slow.finish();
    let load = load.stop();
    assert_ok(&out);
    let summary = summary(&out);
    assert_eq!(summary["status"], "done", "{summary}");
    let seconds = summary["seconds"].as_f64().unwrap();
    assert!(
        seconds + 1.0 < f64::from(LOAD_SECONDS),
        "the rollout ({seconds} s) outlasted the load: raise LOAD_SECONDS"
    );
    assert_eq!(load.failed, 0, "{profile}: {load:?}");
    assert!(load.total > 100, "{profile}: {load:?}");
    let bad: Vec<_> = slow.iter().filter(|(status, _)| *status != 200).collect();
    assert!(
        bad.is_empty(),
        "slow requests that did not complete: {bad:?}"
    );
    out
}
