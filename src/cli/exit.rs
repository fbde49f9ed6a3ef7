//! Exit codes, in the spirit of `kubectl rollout status`: the one place a
//! rollout's end becomes a number.
use crate::exec::Status;

/// Done (also: a dry run shown, or the operator declined).
pub const DONE: i32 = 0;
/// Failed (and rolled back, when the failure action says so).
pub const FAILED: i32 = 1;
/// Bad usage or a config error; nothing was changed.
pub const USAGE: i32 = 2;
/// Paused: `resume` or `rollback` it.
pub const PAUSED: i32 = 3;
/// Interrupted by SIGINT/SIGTERM: `resume` or `rollback` it (or, status
/// `cancelled`, stopped before anything ran: nothing to resume).
pub const INTERRUPTED: i32 = 4;
/// Another rollout holds the lock.
pub const LOCKED: i32 = 5;

/// The exit code of a run that ended with `status`.
pub fn of_status(status: Status) -> i32 {
    match status {
        Status::Done => DONE,
        Status::Paused => PAUSED,
        Status::Interrupted | Status::Cancelled => INTERRUPTED,
        Status::Failed | Status::RolledBack | Status::Rejected | Status::Running => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_end_has_its_code() {
        assert_eq!(of_status(Status::Done), 0);
        assert_eq!(of_status(Status::RolledBack), 1);
        assert_eq!(of_status(Status::Rejected), 1);
        assert_eq!(of_status(Status::Paused), 3);
        assert_eq!(of_status(Status::Interrupted), 4);
        assert_eq!(of_status(Status::Cancelled), 4);
    }
}
