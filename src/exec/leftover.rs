//! What a rollout may remove as its own where it makes a container (a
//! start-first replacement's name, a stop-first recreate's temporary
//! names): the proof its journal holds ([`Leftover`]), what a stopped
//! rollout's records prove, and how a resumed run carries it.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::journal::{Rollout, ServerRecord, ServerState, StepStatus, time};
use super::replace::made_ahead_from;
use crate::conf::Upstream;
use crate::plan::Action;

/// What makes a container found where a rollout makes one for a server (a
/// start-first replacement's name, a stop-first recreate's temporary
/// names) the rollout's own to remove: an id its journal recorded (a new
/// container it made, the old one it retires), or Docker's creation time
/// inside the time a create ran that recorded no id (a run stopped inside
/// it). Nothing else is, whatever its name: an operator's container is
/// never removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftover {
    /// Ids of containers the journal recorded for the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The creates for the server that recorded no id, each on its own: a
    /// container made between two of them is not theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub creates: Vec<CreateWindow>,
}

/// When a create that recorded no container id ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWindow {
    /// When it began.
    #[serde(with = "time")]
    pub since: DateTime<Utc>,
    /// When it ended (it failed); none while it may still have been creating
    /// (a run killed inside it).
    #[serde(
        default,
        with = "time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<DateTime<Utc>>,
}

impl CreateWindow {
    /// How long after a create ended Docker may still report a container it
    /// made (the journal keeps milliseconds; Docker, nanoseconds).
    const SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

    /// Whether Docker's creation time `created` falls while it ran.
    fn made(&self, created: DateTime<Utc>) -> bool {
        created >= self.since
            && self
                .until
                .is_none_or(|until| created <= until + Self::SLACK)
    }
}

impl Leftover {
    /// Whether container `id`, which Docker created at `created`, is the rollout's own.
    pub fn claims(&self, id: &str, created: DateTime<Utc>) -> bool {
        self.ids.iter().any(|i| i == id) || self.creates.iter().any(|c| c.made(created))
    }

    /// Whether it claims nothing.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.creates.is_empty()
    }

    /// Its ids alone: what it claims where a container is made under a name
    /// other than the one its creates began under (a creation time proves
    /// nothing there).
    pub fn ids_only(self) -> Leftover {
        Leftover {
            creates: Vec::new(),
            ..self
        }
    }

    /// What either claims.
    fn and(mut self, other: Leftover) -> Leftover {
        for id in other.ids {
            if !self.ids.contains(&id) {
                self.ids.push(id);
            }
        }
        for create in other.creates {
            if !self.creates.contains(&create) {
                self.creates.push(create);
            }
        }
        self
    }
}

impl<S> Rollout<S> {
    /// What a run of `server` may remove as this rollout's own once the
    /// rollout stopped: its record's ([`ServerRecord::ours`]) and, when a
    /// step that creates the server's new container began and did not end
    /// done (killed inside it, or a failed create that may have left a
    /// half-made one), any container created since that step (a stop-first
    /// recreate's: since the drain's reload before it, which creates the
    /// replacement ahead) began.
    pub fn leftover_of(&self, server: &str) -> Leftover {
        let Some(rec) = self.server(server) else {
            return Leftover::default();
        };
        rec.ours().and(Leftover {
            ids: Vec::new(),
            creates: self.create_begun(server).into_iter().collect(),
        })
    }

    /// The single servers whose start-first replacement a run made and never
    /// swapped in (no line of `up` names it, so nginx sends it nothing):
    /// neither pending, done nor failed (a failed one's replacement is
    /// removed as it fails, or taken out on its line). Each with its
    /// replacement's name and what proves a container of that name the one
    /// this rollout made: the id its record holds, else the window of its
    /// create (never what an undone rollout left, nor the container it
    /// retires).
    pub fn never_swapped_in(&self, up: &Upstream) -> Vec<(&ServerRecord<S>, String, Leftover)> {
        (self.servers.iter())
            .filter(|r| {
                !matches!(
                    r.state,
                    ServerState::Pending | ServerState::Done | ServerState::Failed
                )
            })
            .filter_map(|r| {
                let line = r.swapped_line()?;
                let name = r.replacement.clone()?;
                if up.line_for(&line).is_some() {
                    return None;
                }
                let made = match &r.new_container {
                    Some(id) => Leftover {
                        ids: vec![id.clone()],
                        creates: Vec::new(),
                    },
                    None => Leftover {
                        ids: Vec::new(),
                        creates: self.create_begun(&r.server).into_iter().collect(),
                    },
                };
                Some((r, name, made))
            })
            .collect()
    }

    /// When the step that creates `server`'s new container began (a
    /// recreate's: the steps that make its replacement ahead first,
    /// [`made_ahead_from`]), if that step did not end done, and when it
    /// ended, if it did (failed, or never began after its group ended).
    fn create_begun(&self, server: &str) -> Option<CreateWindow> {
        let steps = &self.plan.steps;
        let at = steps.iter().position(|s| match &s.action {
            Action::StartNew { servers } | Action::Recreate { servers } => {
                servers.iter().any(|r| r.server == server)
            }
            _ => false,
        })?;
        let create = self.steps.get(at)?;
        if create.status == StepStatus::Done {
            return None;
        }
        let first = match steps[at].action {
            Action::Recreate { .. } => made_ahead_from(steps, at),
            _ => at,
        };
        let group = self.steps.get(first..=at)?;
        let since = group.iter().find_map(|r| r.started_at)?;
        // Never begun (a recreate whose drain made its replacement
        // ahead): its group ended when the last step of it that began did.
        let until = match create.status {
            StepStatus::Pending => (group.iter().rev())
                .find(|r| r.started_at.is_some())
                .and_then(|r| r.finished_at),
            _ => create.finished_at,
        };
        Some(CreateWindow { since, until })
    }

    /// Before a stopped rollout runs again (its steps' records about to be
    /// replaced): each record keeps what its runs may have left where its
    /// new container is made ([`Self::leftover_of`]).
    pub fn carry_leftovers(&mut self) {
        let left: Vec<Leftover> = (self.servers.iter())
            .map(|r| self.leftover_of(&r.server))
            .collect();
        for (rec, left) in self.servers.iter_mut().zip(left) {
            rec.leftover = left;
        }
    }
}

impl<S> ServerRecord<S> {
    /// Whether removing its replacement, never swapped in, leaves the server
    /// as the rollout found it: not when its line was pinned to nowhere (a
    /// dead container's), which a rollback must still put back.
    pub fn untouched_without_replacement(&self) -> bool {
        self.pinned.is_none()
    }

    /// Records that its replacement, never swapped in, is gone: pending
    /// again when that leaves it untouched
    /// ([`Self::untouched_without_replacement`]), else still to replace.
    pub fn replacement_discarded(&mut self) {
        self.new_container = None;
        self.healthy_at = None;
        self.state = match self.untouched_without_replacement() {
            true => ServerState::Pending,
            false => ServerState::Replacing,
        };
    }

    /// What is this server's own to remove where its new container is made
    /// (see [`Leftover`]): what stopped runs left ([`Self::leftover`]), the
    /// new container it recorded and the container it retires.
    pub fn ours(&self) -> Leftover {
        let ids = self.new_container.iter().chain(&self.container_id);
        self.leftover.clone().and(Leftover {
            ids: ids.cloned().collect(),
            ..Leftover::default()
        })
    }
}
