//! Durations: the one bound on every duration the tool accepts (flags,
//! compose's `update_config`/`rollback_config`, the journal), and adding one
//! to a time without the panic `+` has on overflow.
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

/// The longest duration accepted: 100 years. Swarm and compose set no
/// bound, but nothing real waits longer (a value meant as "forever", such
/// as `10000h`, still fits), and a time of this era plus it stays far
/// inside what an `Instant` and chrono's `DateTime` (to year 262143) hold.
pub const MAX: Duration = Duration::from_secs(100 * 31_557_600);

/// `s` as humantime reads it (`500ms`, `10s`, `1m30s`), at most [`MAX`];
/// the error quotes `s`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}; e.g. 500ms, 10s, 1m30s)"))?;
    if d > MAX {
        return Err(format!(
            "{s:?} is longer than {}, the longest duration accepted",
            humantime::format_duration(MAX)
        ));
    }
    Ok(d)
}

/// `start + d` (the clock tokio's waits use), `d` capped at [`MAX`]. That
/// always fits (an `Instant` counts seconds since boot in an `i64`); were it
/// not to, `start`: the wait times out rather than panic.
pub fn deadline(start: Instant, d: Duration) -> Instant {
    start.checked_add(d.min(MAX)).unwrap_or(start)
}

/// `t + d`, or the last time chrono holds when that is past it.
pub fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_past_the_maximum_are_refused() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("100y"), Ok(MAX));
        assert_eq!(
            parse("300000y").unwrap_err(),
            "\"300000y\" is longer than 100years, the longest duration accepted"
        );
        assert!(
            parse("soon")
                .unwrap_err()
                .starts_with("\"soon\" is not a duration (")
        );
    }

    #[test]
    fn additions_saturate() {
        let now = Instant::from_std(std::time::Instant::now());
        assert_eq!(
            deadline(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(deadline(now, Duration::MAX), now + MAX);
        let t = Utc::now();
        assert_eq!(after(t, Duration::from_secs(5)), t + TimeDelta::seconds(5));
        assert_eq!(after(t, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            after(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
