//! Update and rollback policies, with where each value came from.
//!
//! The values and their defaults are Docker Swarm's (`docker service update`,
//! compose `deploy.update_config` / `deploy.rollback_config`); flags win over
//! the compose file, which wins over the engine's defaults.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::canary::Canary;

/// Which container goes first when one server is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Drain and stop the old container, then start the new one.
    StopFirst,
    /// Start the new container beside the old one, switch the upstream, then stop the old one.
    StartFirst,
}

/// What happens when the failure ratio is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureAction {
    /// Stop where we are, leaving a resumable state.
    Pause,
    /// Leave the failed server drained and go on with the others.
    Continue,
    /// Undo the whole rollout with the rollback settings (not allowed for a rollback).
    Rollback,
}

/// The words of a unit enum: its values, each value's word (as Swarm, compose
/// and the command line spell it) and parsing back. One home for the names.
pub trait Words: Sized + Copy + 'static {
    /// Every value.
    const ALL: &'static [Self];
    /// This value's word.
    fn word(self) -> &'static str;
    /// The value spelled `word`, if any.
    fn from_word(word: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.word() == word)
    }
    /// Every word, comma-separated (for error messages).
    fn choices() -> String {
        Self::ALL
            .iter()
            .map(|v| v.word())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Words for Order {
    const ALL: &'static [Order] = &[Order::StopFirst, Order::StartFirst];
    fn word(self) -> &'static str {
        match self {
            Order::StopFirst => "stop-first",
            Order::StartFirst => "start-first",
        }
    }
}

impl Words for FailureAction {
    const ALL: &'static [FailureAction] = &[
        FailureAction::Pause,
        FailureAction::Continue,
        FailureAction::Rollback,
    ];
    fn word(self) -> &'static str {
        match self {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl fmt::Display for FailureAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
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
    /// How long after becoming healthy a failure of the new container still
    /// counts (the last batch's: the planner's `last_watch`).
    #[serde(with = "setting_duration")]
    pub monitor: Setting<Duration>,
    /// The failure action fires when failures / servers-to-update is **above** this.
    pub max_failure_ratio: Setting<f64>,
    /// The first server's weight ramp (`--canary-weights`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Setting<Canary>>,
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
            canary: None,
        }
    }

    /// True when `failures` out of `total` servers exceed the allowed ratio (strictly).
    pub fn ratio_exceeded(&self, failures: usize, total: usize) -> bool {
        total > 0 && failures as f64 / total as f64 > self.max_failure_ratio.value
    }

    /// Every setting as (name, value, source), for plans and dry runs.
    pub fn describe(&self) -> Vec<(&'static str, String, &Source)> {
        let mut rows = vec![
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
            ("order", self.order.value.to_string(), &self.order.source),
            (
                "failure-action",
                self.failure_action.value.to_string(),
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
        ];
        if let Some(canary) = &self.canary {
            rows.push(("canary", canary.value.to_string(), &canary.source));
        }
        rows
    }
}

/// Values given for one direction, by flags or by a compose file; `None` = not given.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// `--canary-weights` (with `--canary-pause` / `--canary-delay`).
    pub canary: Option<Canary>,
}

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    /// A compose value of the wrong type or form (found while reading the compose file).
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

/// A compose file's `deploy.update_config` or `deploy.rollback_config` of a
/// service, already read: `at` names the section in sources and messages
/// (e.g. `docker-compose.yml services.app1.deploy.update_config`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComposeSection {
    /// Where the section is.
    pub at: String,
    /// Its values.
    pub values: Overrides,
    /// The file that set each key (compose's spelling), when the files were
    /// merged key by key; a key not here is named by `at` alone.
    pub files: std::collections::BTreeMap<String, String>,
}

impl ComposeSection {
    /// Where `key` of this section was set: `FILE AT.KEY`, or `AT.KEY`.
    pub fn origin(&self, key: &str) -> String {
        match self.files.get(key) {
            Some(file) => format!("{file} {}.{key}", self.at),
            None => format!("{}.{key}", self.at),
        }
    }
}

/// Resolves one direction's settings: defaults, then the compose section,
/// then the flags.
pub fn resolve(
    direction: Direction,
    compose: Option<&ComposeSection>,
    flags: &Overrides,
) -> Result<UpdateConfig, PolicyError> {
    let mut cfg = UpdateConfig::engine_defaults();
    if let Some(section) = compose {
        layer(&mut cfg, &section.values, |key| {
            Source::Compose(section.origin(key))
        });
    }
    with_flags(cfg, direction, flags)
}

/// Applies command-line values over `cfg` (e.g. over a journal's stored rollback settings).
pub fn with_flags(
    mut cfg: UpdateConfig,
    direction: Direction,
    flags: &Overrides,
) -> Result<UpdateConfig, PolicyError> {
    layer(&mut cfg, flags, |key| {
        Source::Flag(direction.flag(&key.replace('_', "-")))
    });
    if !(0.0..=1.0).contains(&cfg.max_failure_ratio.value) {
        return Err(PolicyError::Ratio(cfg.max_failure_ratio.source));
    }
    if direction == Direction::Rollback && cfg.failure_action.value == FailureAction::Rollback {
        return Err(PolicyError::RollbackOfRollback(cfg.failure_action.source));
    }
    Ok(cfg)
}

/// Puts every value `values` gives over `cfg`; `source` names where a key
/// (compose's spelling: `failure_action`) came from.
fn layer(cfg: &mut UpdateConfig, values: &Overrides, source: impl Fn(&str) -> Source) {
    fn set<T: Copy>(setting: &mut Setting<T>, value: Option<T>, source: Source) {
        if let Some(value) = value {
            *setting = Setting { value, source };
        }
    }
    set(
        &mut cfg.parallelism,
        values.parallelism,
        source("parallelism"),
    );
    set(&mut cfg.delay, values.delay, source("delay"));
    set(&mut cfg.order, values.order, source("order"));
    set(
        &mut cfg.failure_action,
        values.failure_action,
        source("failure_action"),
    );
    set(&mut cfg.monitor, values.monitor, source("monitor"));
    set(
        &mut cfg.max_failure_ratio,
        values.max_failure_ratio,
        source("max_failure_ratio"),
    );
    if let Some(canary) = &values.canary {
        cfg.canary = Some(Setting {
            value: canary.clone(),
            source: source("canary_weights"),
        });
    }
}

/// Serde for `Setting<Duration>` as a human-readable string ("1m 30s"), read
/// by the tool's rule ([`crate::duration::parse`]: a journal edited past its
/// bound is refused).
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
        let value = crate::duration::parse(&r.value).map_err(serde::de::Error::custom)?;
        Ok(Setting {
            value,
            source: r.source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let section = ComposeSection {
            at: "app1 update_config".into(),
            values: Overrides {
                parallelism: Some(2),
                delay: Some(Duration::from_secs(10)),
                order: Some(Order::StartFirst),
                failure_action: Some(FailureAction::Rollback),
                monitor: Some(Duration::from_secs(90)),
                max_failure_ratio: None,
                canary: None,
            },
            files: [("order".to_string(), "v2.yml".to_string())].into(),
        };
        let flags = Overrides {
            delay: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let c = resolve(Direction::Update, Some(&section), &flags).unwrap();
        assert_eq!(c.parallelism.value, 2);
        assert_eq!(
            c.parallelism.source,
            Source::Compose("app1 update_config.parallelism".into())
        );
        assert_eq!(
            c.failure_action.source,
            Source::Compose("app1 update_config.failure_action".into())
        );
        assert_eq!(
            c.order.source,
            Source::Compose("v2.yml app1 update_config.order".into())
        );
        assert_eq!(c.delay.value, Duration::from_secs(1));
        assert_eq!(c.delay.source, Source::Flag("--delay".into()));
        assert_eq!(c.order.value, Order::StartFirst);
        assert_eq!(c.monitor.value, Duration::from_secs(90));
        assert_eq!(c.failure_action.value, FailureAction::Rollback);
        assert_eq!(c.max_failure_ratio.source, Source::Default);
    }

    #[test]
    fn flags_are_named_after_their_direction() {
        let flags = Overrides {
            max_failure_ratio: Some(0.5),
            ..Default::default()
        };
        let c = resolve(Direction::Rollback, None, &flags).unwrap();
        assert_eq!(
            c.max_failure_ratio.source,
            Source::Flag("--rollback-max-failure-ratio".into())
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
    fn words_name_and_parse_every_value() {
        for o in Order::ALL {
            assert_eq!(Order::from_word(o.word()), Some(*o));
        }
        assert_eq!(FailureAction::choices(), "pause, continue, rollback");
        assert_eq!(Order::from_word("sideways"), None);
    }

    #[test]
    fn settings_round_trip_through_json() {
        let section = ComposeSection {
            at: "x".into(),
            values: Overrides {
                delay: Some(Duration::from_secs(90)),
                ..Default::default()
            },
            files: Default::default(),
        };
        let c = resolve(Direction::Update, Some(&section), &Overrides::default()).unwrap();
        let back: UpdateConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
