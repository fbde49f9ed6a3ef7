//! Update and rollback policies, with where each value came from.
//!
//! The values and their defaults are Docker Swarm's (`docker service update`,
//! compose `deploy.update_config` / `deploy.rollback_config`); flags win over
//! the compose file, which wins over the engine's defaults.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which container goes first when one server is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Drain and stop the old container, then start the new one.
    StopFirst,
    /// Start the new container beside the old one, switch the upstream, then stop the old one.
    StartFirst,
}

/// What happens when the failure ratio is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FailureAction {
    /// Stop where we are, leaving a resumable state.
    Pause,
    /// Leave the failed server drained and go on with the others.
    Continue,
    /// Undo the whole rollout with the rollback settings (not allowed for a rollback).
    Rollback,
}

/// Where a policy value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "from", content = "detail")]
pub enum Source {
    /// The engine's default.
    Default,
    /// The compose file's `deploy.update_config` / `deploy.rollback_config` of a service.
    Compose(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Compose(at) => write!(f, "compose {at}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One policy value and its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting<T> {
    /// The value in effect.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Setting<T> {
    fn default(value: T) -> Self {
        Setting {
            value,
            source: Source::Default,
        }
    }
}

/// The settings of one direction (update or rollback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Servers replaced at once; 0 means all.
    pub parallelism: Setting<u32>,
    /// Wait after a batch became healthy before the next one starts.
    #[serde(with = "setting_duration")]
    pub delay: Setting<Duration>,
    /// Stop-first or start-first.
    pub order: Setting<Order>,
    /// What a failure ratio above `max_failure_ratio` triggers.
    pub failure_action: Setting<FailureAction>,
    /// How long after becoming healthy a failure of the new container still counts.
    #[serde(with = "setting_duration")]
    pub monitor: Setting<Duration>,
    /// The failure action fires when failures / servers-to-update is **above** this.
    pub max_failure_ratio: Setting<f64>,
}

impl UpdateConfig {
    /// The engine's defaults: parallelism 1, delay 0s, stop-first, pause, monitor 5s, ratio 0.
    pub fn engine_defaults() -> Self {
        UpdateConfig {
            parallelism: Setting::default(1),
            delay: Setting::default(Duration::ZERO),
            order: Setting::default(Order::StopFirst),
            failure_action: Setting::default(FailureAction::Pause),
            monitor: Setting::default(Duration::from_secs(5)),
            max_failure_ratio: Setting::default(0.0),
        }
    }

    /// True when `failures` out of `total` servers exceed the allowed ratio (strictly).
    pub fn ratio_exceeded(&self, failures: usize, total: usize) -> bool {
        total > 0 && failures as f64 / total as f64 > self.max_failure_ratio.value
    }

    /// Every setting as (name, value, source), for plans and dry runs.
    pub fn describe(&self) -> Vec<(&'static str, String, &Source)> {
        vec![
            (
                "parallelism",
                self.parallelism.value.to_string(),
                &self.parallelism.source,
            ),
            (
                "delay",
                humantime::format_duration(self.delay.value).to_string(),
                &self.delay.source,
            ),
            ("order", enum_name(&self.order.value), &self.order.source),
            (
                "failure-action",
                enum_name(&self.failure_action.value),
                &self.failure_action.source,
            ),
            (
                "monitor",
                humantime::format_duration(self.monitor.value).to_string(),
                &self.monitor.source,
            ),
            (
                "max-failure-ratio",
                self.max_failure_ratio.value.to_string(),
                &self.max_failure_ratio.source,
            ),
        ]
    }
}

/// The kebab-case name serde gives a unit enum value.
fn enum_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Values given on the command line for one direction; `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--parallelism`.
    pub parallelism: Option<u32>,
    /// `--delay`.
    pub delay: Option<Duration>,
    /// `--order`.
    pub order: Option<Order>,
    /// `--failure-action`.
    pub failure_action: Option<FailureAction>,
    /// `--monitor`.
    pub monitor: Option<Duration>,
    /// `--max-failure-ratio`.
    pub max_failure_ratio: Option<f64>,
}

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    /// A compose value of the wrong type or form.
    #[error("{at}: {key}: {problem}")]
    Compose {
        /// Which file/service section.
        at: String,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A rollback's failure action cannot itself be `rollback`.
    #[error("{0}: a rollback is never rolled back; use pause or continue")]
    RollbackOfRollback(Source),
    /// A ratio outside 0..=1.
    #[error("{0}: max-failure-ratio must be between 0 and 1")]
    Ratio(Source),
}

/// Which direction a set of settings is for (flags are named after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `--parallelism`, `update_config`.
    Update,
    /// `--rollback-parallelism`, `rollback_config`.
    Rollback,
}

impl Direction {
    fn flag(self, name: &str) -> String {
        match self {
            Direction::Update => format!("--{name}"),
            Direction::Rollback => format!("--rollback-{name}"),
        }
    }
}

/// Resolves one direction's settings: defaults, then the compose section
/// (`at` names it in messages, e.g. `docker-compose.yml services.app1.deploy.update_config`),
/// then the flags.
pub fn resolve(
    direction: Direction,
    compose: Option<(&str, &serde_norway::Value)>,
    flags: &Overrides,
) -> Result<UpdateConfig, PolicyError> {
    let mut cfg = UpdateConfig::engine_defaults();
    if let Some((at, section)) = compose {
        apply_compose(&mut cfg, at, section)?;
    }
    with_flags(cfg, direction, flags)
}

/// Applies command-line values over `cfg` (e.g. over a journal's stored rollback settings).
pub fn with_flags(
    mut cfg: UpdateConfig,
    direction: Direction,
    flags: &Overrides,
) -> Result<UpdateConfig, PolicyError> {
    let flag = |name| Source::Flag(direction.flag(name));
    if let Some(v) = flags.parallelism {
        cfg.parallelism = Setting {
            value: v,
            source: flag("parallelism"),
        };
    }
    if let Some(v) = flags.delay {
        cfg.delay = Setting {
            value: v,
            source: flag("delay"),
        };
    }
    if let Some(v) = flags.order {
        cfg.order = Setting {
            value: v,
            source: flag("order"),
        };
    }
    if let Some(v) = flags.failure_action {
        cfg.failure_action = Setting {
            value: v,
            source: flag("failure-action"),
        };
    }
    if let Some(v) = flags.monitor {
        cfg.monitor = Setting {
            value: v,
            source: flag("monitor"),
        };
    }
    if let Some(v) = flags.max_failure_ratio {
        cfg.max_failure_ratio = Setting {
            value: v,
            source: flag("max-failure-ratio"),
        };
    }
    if !(0.0..=1.0).contains(&cfg.max_failure_ratio.value) {
        return Err(PolicyError::Ratio(cfg.max_failure_ratio.source));
    }
    if direction == Direction::Rollback && cfg.failure_action.value == FailureAction::Rollback {
        return Err(PolicyError::RollbackOfRollback(cfg.failure_action.source));
    }
    Ok(cfg)
}

fn apply_compose(
    cfg: &mut UpdateConfig,
    at: &str,
    section: &serde_norway::Value,
) -> Result<(), PolicyError> {
    use serde_norway::Value;
    let Value::Mapping(map) = section else {
        return Err(PolicyError::Compose {
            at: at.into(),
            key: "(section)".into(),
            problem: "expected a mapping".into(),
        });
    };
    let source = |key: &str| Source::Compose(format!("{at}.{key}"));
    let err = |key: &str, problem: &str| PolicyError::Compose {
        at: at.into(),
        key: key.into(),
        problem: problem.into(),
    };
    for (key, value) in map {
        let key = key.as_str().unwrap_or_default();
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(err(key, "expected a scalar")),
        };
        let duration = || {
            humantime::parse_duration(&text)
                .map_err(|e| err(key, &format!("{text:?} is not a duration ({e})")))
        };
        let choice = |allowed: &str| format!("{text:?} is not one of {allowed}");
        match key {
            "parallelism" => {
                let value = text
                    .parse()
                    .map_err(|_| err(key, "expected a whole number"))?;
                cfg.parallelism = Setting {
                    value,
                    source: source(key),
                };
            }
            "delay" => {
                cfg.delay = Setting {
                    value: duration()?,
                    source: source(key),
                }
            }
            "monitor" => {
                cfg.monitor = Setting {
                    value: duration()?,
                    source: source(key),
                }
            }
            "order" => {
                let value = match text.as_str() {
                    "stop-first" => Order::StopFirst,
                    "start-first" => Order::StartFirst,
                    _ => return Err(err(key, &choice("stop-first, start-first"))),
                };
                cfg.order = Setting {
                    value,
                    source: source(key),
                };
            }
            "failure_action" => {
                let value = match text.as_str() {
                    "pause" => FailureAction::Pause,
                    "continue" => FailureAction::Continue,
                    "rollback" => FailureAction::Rollback,
                    _ => return Err(err(key, &choice("pause, continue, rollback"))),
                };
                cfg.failure_action = Setting {
                    value,
                    source: source(key),
                };
            }
            "max_failure_ratio" => {
                let value = text.parse().map_err(|_| err(key, "expected a number"))?;
                cfg.max_failure_ratio = Setting {
                    value,
                    source: source(key),
                };
            }
            _ => {} // unknown keys are compose's business, not ours
        }
    }
    Ok(())
}

/// Serde for `Setting<Duration>` as a human-readable string ("1m 30s").
mod setting_duration {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Repr {
        value: String,
        source: Source,
    }

    pub fn serialize<S: Serializer>(s: &Setting<Duration>, ser: S) -> Result<S::Ok, S::Error> {
        Repr {
            value: humantime::format_duration(s.value).to_string(),
            source: s.source.clone(),
        }
        .serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Setting<Duration>, D::Error> {
        let r = Repr::deserialize(de)?;
        let value = humantime::parse_duration(&r.value).map_err(serde::de::Error::custom)?;
        Ok(Setting {
            value,
            source: r.source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> serde_norway::Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn defaults_are_the_engines() {
        let c = resolve(Direction::Update, None, &Overrides::default()).unwrap();
        assert_eq!(c.parallelism.value, 1);
        assert_eq!(c.delay.value, Duration::ZERO);
        assert_eq!(c.order.value, Order::StopFirst);
        assert_eq!(c.failure_action.value, FailureAction::Pause);
        assert_eq!(c.monitor.value, Duration::from_secs(5));
        assert_eq!(c.max_failure_ratio.value, 0.0);
        assert!(c.describe().iter().all(|(_, _, s)| **s == Source::Default));
    }

    #[test]
    fn compose_then_flags_win() {
        let section = yaml(
            "parallelism: 2\ndelay: 10s\norder: start-first\nfailure_action: rollback\nmonitor: 1m30s\n",
        );
        let flags = Overrides {
            delay: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let c = resolve(
            Direction::Update,
            Some(("app1 update_config", &section)),
            &flags,
        )
        .unwrap();
        assert_eq!(c.parallelism.value, 2);
        assert_eq!(
            c.parallelism.source,
            Source::Compose("app1 update_config.parallelism".into())
        );
        assert_eq!(c.delay.value, Duration::from_secs(1));
        assert_eq!(c.delay.source, Source::Flag("--delay".into()));
        assert_eq!(c.order.value, Order::StartFirst);
        assert_eq!(c.monitor.value, Duration::from_secs(90));
        assert_eq!(c.failure_action.value, FailureAction::Rollback);
    }

    #[test]
    fn bad_compose_values_name_the_key() {
        let e = resolve(
            Direction::Update,
            Some(("f.yml app", &yaml("order: sideways"))),
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yml app: order: \"sideways\" is not one of stop-first, start-first"
        );
        let e = resolve(
            Direction::Update,
            Some(("f.yml app", &yaml("delay: soon"))),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f.yml app: delay: \"soon\" is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn a_rollback_is_never_rolled_back() {
        let flags = Overrides {
            failure_action: Some(FailureAction::Rollback),
            ..Default::default()
        };
        let e = resolve(Direction::Rollback, None, &flags).unwrap_err();
        assert_eq!(
            e,
            PolicyError::RollbackOfRollback(Source::Flag("--rollback-failure-action".into()))
        );
    }

    #[test]
    fn failure_ratio_is_strict() {
        let mut c = UpdateConfig::engine_defaults();
        assert!(c.ratio_exceeded(1, 4), "ratio 0: the first failure fires");
        assert!(!c.ratio_exceeded(0, 4));
        c.max_failure_ratio.value = 0.25;
        assert!(!c.ratio_exceeded(1, 4), "1/4 is not above 0.25");
        assert!(c.ratio_exceeded(2, 4));
        c.max_failure_ratio.value = 0.2;
        assert!(c.ratio_exceeded(1, 4));
        c.max_failure_ratio.value = 0.3;
        assert!(!c.ratio_exceeded(1, 4));
    }

    #[test]
    fn settings_round_trip_through_json() {
        let c = resolve(
            Direction::Update,
            Some(("x", &yaml("delay: 1m30s"))),
            &Overrides::default(),
        )
        .unwrap();
        let back: UpdateConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
