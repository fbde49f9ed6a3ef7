//! `--output json`: one JSON line per event on stdout (schema:
//! `docs/events.schema.json`); notices go to stderr as text.
use std::io::Write;

use chrono::Utc;

use crate::cli::exit;
use crate::exec::{Event, Observer, time};

/// Version of the JSON event schema; bumped on any incompatible change.
const SCHEMA_VERSION: u32 = 1;

/// JSON lines on stdout, one per event, each with the schema version `v`,
/// its `time`, and for the summary the `exit_code` that follows.
#[derive(Debug, Default)]
pub struct Json;

impl Json {
    /// One event as its JSON line's value.
    fn value(event: &Event) -> serde_json::Value {
        let mut value = serde_json::to_value(event).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("v".into(), SCHEMA_VERSION.into());
            map.insert("time".into(), time::format(Utc::now()).into());
            if let Event::Summary { status, closed, .. } = event {
                let code = if *closed {
                    exit::DONE
                } else {
                    exit::of_status(*status)
                };
                map.insert("exit_code".into(), code.into());
            }
        }
        value
    }
}

impl Observer for Json {
    fn event(&mut self, event: &Event) {
        let mut out = crate::cli::output::stdout();
        let _ = writeln!(out, "{}", Json::value(event));
        let _ = out.flush();
    }

    fn notice(&mut self, text: &str) {
        errln!("nginx-rollout: {}", crate::cli::output::shown(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Status;

    #[test]
    fn a_summary_carries_the_exit_code_of_its_status_and_a_close_exits_0() {
        let summary_of = |status, closed| Event::Summary {
            revision: 3,
            status,
            servers: Vec::new(),
            reloads: 1,
            seconds: 0.5,
            reason: None,
            closed,
        };
        let summary = |status| summary_of(status, false);
        let v = Json::value(&summary(Status::Paused));
        assert_eq!(v["event"], "summary");
        assert_eq!(v["status"], "paused");
        assert_eq!(v["exit_code"], 3);
        assert_eq!(v["v"], 1);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(Json::value(&summary(Status::RolledBack))["exit_code"], 1);
        assert!(v.get("closed").is_none());
        let v = Json::value(&summary_of(Status::Cancelled, true));
        assert_eq!(
            (&v["status"], &v["exit_code"]),
            (&"cancelled".into(), &0.into())
        );
        assert_eq!(v["closed"], true);
    }
}
