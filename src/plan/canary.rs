//! The canary's weight ramp (`deploy --canary-weights 1,10,50`): the first
//! server a stop-first rollout replaces serves a growing share of the
//! upstream's traffic, held at each share, before the others follow.
//!
//! nginx weights are relative integers ≥ 1, and most lines carry none (weight
//! 1), so a canary's line alone cannot take less than an equal share. A share
//! of p % is therefore written as weights on every live line: the canary's
//! line gets p·S (S: the other live lines' weights, as written, summed), each
//! other live line its weight × (100 − p), all divided by their greatest
//! common divisor. When the ramp is over, every line's weight goes back to
//! what was written before it, byte for byte. Each weight change expects its
//! line to read what the rollout left there: a weight the operator changed
//! since (say while the ramp was paused) is an error, never written over.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::builder::{Builder, apply_changes};
use super::planner::PlanError;
use super::step::{Action, Expected, ServerChange, ServerRef};
use crate::conf::{ConfigSet, Param, Upstream};

/// A canary's share of the upstream's traffic, in percent (1–99).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Share(u8);

impl Share {
    /// The share `percent` %, if it is one nginx weights can express (1–99).
    pub fn new(percent: u8) -> Result<Share, String> {
        if (1..=99).contains(&percent) {
            Ok(Share(percent))
        } else {
            Err(format!(
                "a canary's share is 1 to 99 percent of the traffic, not {percent}"
            ))
        }
    }

    /// Parses `10` or `10%`.
    pub fn parse(text: &str) -> Result<Share, String> {
        let digits = text.trim().trim_end_matches('%');
        let percent: u8 = digits
            .parse()
            .map_err(|_| format!("{text:?}: a percentage from 1 to 99 (e.g. 10 or 10%)"))?;
        Share::new(percent)
    }

    /// The percentage.
    pub fn percent(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Share {
    type Error = String;
    fn try_from(percent: u8) -> Result<Share, String> {
        Share::new(percent)
    }
}

impl From<Share> for u8 {
    fn from(share: Share) -> u8 {
        share.0
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// What happens once the canary takes a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "then", rename_all = "kebab-case")]
pub enum Gate {
    /// The rollout pauses (exit 3) for a human: `resume` goes on, `rollback` undoes it.
    Pause,
    /// Hold the share this long, watching the canary's container.
    Delay {
        /// How long.
        #[serde(with = "super::step::humantime_serde_compat")]
        duration: Duration,
    },
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gate::Pause => f.write_str("pause for the operator"),
            Gate::Delay { duration } => {
                write!(f, "hold {}", humantime::format_duration(*duration))
            }
        }
    }
}

/// The ramp a deploy asks for (`--canary-weights`, `--canary-pause`, `--canary-delay`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// The shares, in order.
    pub shares: Vec<Share>,
    /// Between shares and after the last; none: hold each for the monitor window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
}

impl fmt::Display for Canary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shares: Vec<String> = self.shares.iter().map(Share::to_string).collect();
        write!(f, "{}; ", shares.join(", "))?;
        match &self.gate {
            Some(gate) => write!(f, "{gate} at each"),
            None => f.write_str("hold each for the monitor window"),
        }
    }
}

/// One server line's weight as written (`None`: no `weight=`, nginx's 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineWeight {
    /// The line's address.
    pub server: String,
    /// Its weight parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A plan's ramp: which server is the canary and what the weights were
/// before, so a plan that continues or undoes this one writes them back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ramp {
    /// The canary's address.
    pub server: String,
    /// Every line's weight before the ramp.
    pub weights: Vec<LineWeight>,
}

/// The ramp of a plan a new one continues or undoes, with the weight each
/// line reads as that plan's runs left it ([`super::Plan::weights_left`]):
/// what the new plan's first edit expects before it writes them back.
#[derive(Debug, Clone, Copy)]
pub struct RampLeft<'a> {
    /// The ramp.
    pub ramp: &'a Ramp,
    /// Each line's weight as the runs left it.
    pub weights: &'a [LineWeight],
}

impl Ramp {
    /// The ramp of `server`, with every line's weight as `up` has it now.
    pub(super) fn of(server: &str, up: &Upstream) -> Ramp {
        Ramp {
            server: server.to_string(),
            weights: line_weights(up),
        }
    }

    /// The weight written on `server` before the ramp, if it had a line then.
    fn before(&self, server: &str) -> Option<Option<u32>> {
        self.weights
            .iter()
            .find(|w| w.server == server)
            .map(|w| w.weight)
    }

    /// The changes that put back every weight `up` no longer has as written
    /// before the ramp (a resumed or rolled-back plan starts with them), each
    /// expecting its line to read what `left` says the rollout left there
    /// (a line `left` does not name is not checked). A line the rollout
    /// left as it was before the ramp has nothing of the ramp's to put
    /// back: a weight it reads now is someone else's, and stays.
    pub fn restore(&self, up: &Upstream, left: &[LineWeight]) -> Vec<ServerChange> {
        up.servers
            .iter()
            .filter_map(|s| {
                let before = self.before(&s.address)?;
                let expect = expected_weight(left, &s.address);
                if expect.is_some_and(|e| e.weight == before) {
                    return None;
                }
                (s.weight() != before).then(|| ServerChange::Weight {
                    server: s.address.clone(),
                    weight: before,
                    expect,
                })
            })
            .collect()
    }

    /// The weight of every live line when the canary takes `share` (its
    /// line first). An error when no other line is live, or when a weight
    /// would be past what nginx takes.
    fn weights_at(&self, up: &Upstream, share: Share) -> Result<Vec<(String, u32)>, PlanError> {
        let weight = |address: &str| u64::from(self.before(address).flatten().unwrap_or(1));
        let others: Vec<(String, u64)> = up
            .live_servers()
            .filter(|s| s.address != self.server)
            .map(|s| (s.address.clone(), weight(&s.address)))
            .collect();
        // Each weight is at most i32::MAX and there are far fewer than 2^32
        // lines, so neither the sum nor a product by 99 overflows a u64.
        let sum: u64 = others.iter().map(|(_, w)| w).sum();
        if sum == 0 {
            return Err(PlanError::CanaryAlone(self.server.clone()));
        }
        let p = u64::from(share.percent());
        let mut all = vec![(self.server.clone(), p * sum)];
        all.extend(others.into_iter().map(|(s, w)| (s, w * (100 - p))));
        let divisor = all.iter().fold(0, |g, (_, w)| gcd(g, *w));
        all.into_iter()
            .map(|(s, w)| match u32::try_from(w / divisor) {
                Ok(w) if Param::is_weight(w) => Ok((s, w)),
                _ => Err(PlanError::CanaryWeightsTooLarge {
                    server: self.server.clone(),
                    share,
                }),
            })
            .collect()
    }
}

/// Every line of `up` with its weight as written.
fn line_weights(up: &Upstream) -> Vec<LineWeight> {
    up.servers
        .iter()
        .map(|s| LineWeight {
            server: s.address.clone(),
            weight: s.weight(),
        })
        .collect()
}

/// What line `line` reads by `reads`, as a weight change expects it (none
/// when `reads` does not name it).
pub fn expected_weight(reads: &[LineWeight], line: &str) -> Option<Expected> {
    reads
        .iter()
        .find(|r| r.server == line)
        .map(|r| Expected { weight: r.weight })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Builder<'_> {
    /// The ramp of `canary` (healthy, still drained): for each share one edit
    /// (the first also carries `first`: the canary's restore and whatever
    /// else is pending), reload, the old workers' wait, then the hold.
    /// Returns the changes that put every weight back, for the next edit.
    /// Each weight change expects its line to read what the plan left there
    /// before it (the share before, or the weight as written).
    pub(super) fn ramp(
        &mut self,
        ramp: &Ramp,
        canary: &Canary,
        server: ServerRef,
        monitor: Duration,
        first: Vec<ServerChange>,
    ) -> Result<Vec<ServerChange>, PlanError> {
        let gate = canary.gate.unwrap_or(Gate::Delay { duration: monitor });
        // The lines that serve once the canary is back.
        let mut serving: ConfigSet = self.config.clone();
        apply_changes(&mut serving, self.upstream, &first)?;
        let up = serving.upstream(self.upstream)?;
        // Each line's weight as the plan leaves it so far.
        let mut reads = line_weights(&up);
        let mut first = Some(first);
        let mut touched: Vec<String> = Vec::new();
        for &share in &canary.shares {
            let weights = ramp.weights_at(&up, share)?;
            let mut changes = first.take().unwrap_or_default();
            for (line, weight) in weights {
                if !touched.contains(&line) {
                    touched.push(line.clone());
                }
                let expect = expected_weight(&reads, &line);
                if let Some(r) = reads.iter_mut().find(|r| r.server == line) {
                    r.weight = Some(weight);
                }
                changes.push(ServerChange::Weight {
                    server: line,
                    weight: Some(weight),
                    expect,
                });
            }
            self.edit(changes, true)?;
            self.push(
                Action::Canary {
                    server: server.clone(),
                    share,
                    gate,
                },
                None,
            );
        }
        Ok(touched
            .into_iter()
            .map(|line| ServerChange::Weight {
                weight: ramp.before(&line).flatten(),
                expect: expected_weight(&reads, &line),
                server: line,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_parse_with_or_without_a_percent_sign_and_stay_in_range() {
        assert_eq!(Share::parse("10").unwrap().percent(), 10);
        assert_eq!(Share::parse("1%").unwrap().to_string(), "1%");
        for bad in ["0", "100", "-1", "ten", "", "10.5"] {
            assert!(Share::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<Share>("100").is_err());
        assert_eq!(serde_json::to_string(&Share(50)).unwrap(), "50");
    }

    #[test]
    fn the_greatest_common_divisor_reduces_weights() {
        assert_eq!(gcd(0, 6), 6);
        assert_eq!(gcd(50, 50), 50);
        assert_eq!(gcd(99, 3), 3);
    }
}
