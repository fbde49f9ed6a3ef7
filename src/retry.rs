//! Waiting a bounded time for something another process holds: the one
//! home of the poll-until-acquired loop both of our locks use (a config
//! file's `flock` in `conf`, the state directory's lock in `exec`).
use std::time::{Duration, Instant};

/// Calls `attempt` until it succeeds or fails for a reason other than
/// `busy`, or until `patience` has passed since the first call, sleeping
/// `every` between calls; returns the last call's result (a `busy` error
/// when patience ran out). With no patience, `attempt` is called once.
pub fn within<T, E>(
    patience: Duration,
    every: Duration,
    mut attempt: impl FnMut() -> Result<T, E>,
    busy: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let start = Instant::now();
    loop {
        match attempt() {
            Err(e) if busy(&e) && start.elapsed() < patience => std::thread::sleep(every),
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attempt that is busy `times` times, then succeeds; counts its calls.
    fn busy_then_free(
        times: usize,
        calls: &mut usize,
    ) -> impl FnMut() -> Result<(), &'static str> + '_ {
        move || {
            *calls += 1;
            if *calls <= times { Err("busy") } else { Ok(()) }
        }
    }

    #[test]
    fn tries_again_while_busy_until_it_succeeds() {
        let mut calls = 0;
        let hour = Duration::from_secs(3600);
        let got = within(hour, Duration::ZERO, busy_then_free(2, &mut calls), |e| {
            *e == "busy"
        });
        assert_eq!(got, Ok(()));
        assert_eq!(calls, 3);
    }

    #[test]
    fn without_patience_one_attempt_and_its_busy_error() {
        let mut calls = 0;
        let got = within(
            Duration::ZERO,
            Duration::ZERO,
            busy_then_free(1, &mut calls),
            |e| *e == "busy",
        );
        assert_eq!(got, Err("busy"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn another_error_ends_it_at_once() {
        let mut calls = 0;
        let hour = Duration::from_secs(3600);
        let got = within(hour, Duration::ZERO, busy_then_free(5, &mut calls), |_| {
            false
        });
        assert_eq!(got, Err("busy"), "not busy by this rule: returned as it is");
        assert_eq!(calls, 1);
    }
}
