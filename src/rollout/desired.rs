//! What a server is redeployed to, as the rollout journal keeps it:
//! [`Desired`], a container spec created through the Engine API or a compose
//! service, with its hooks (older releases' journals load too), and
//! [`Fresh`], which tells a spec made in this run from one read back.
use serde::{Deserialize, Serialize};

use crate::backends::ContainerSpec;
use crate::docker::ComposeRef;
use crate::plan::Hooks;

/// What is deployed for one server — the container and the post-start /
/// pre-stop hooks of its definition: kept in the journal, so `resume` and
/// `rollback` work from the journal alone (a rollback runs the hooks of the
/// definition it goes back to, as far as the journal knows them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Desired {
    /// Recreate through the Engine API from this spec.
    Engine {
        /// The container to create.
        spec: Box<ContainerSpec>,
        /// Its hooks.
        #[serde(default, skip_serializing_if = "Hooks::is_empty")]
        hooks: Hooks,
        /// Made in this run, not read back from a journal.
        #[serde(skip)]
        fresh: Fresh,
    },
    /// `up -d --no-deps --force-recreate SERVICE` with the project's compose file.
    Compose {
        /// The service.
        compose: Box<ComposeRef>,
        /// The image the compose file gives the service (for the summary).
        image: String,
        /// Its hooks (the flags': compose runs the compose file's own).
        #[serde(default, skip_serializing_if = "Hooks::is_empty")]
        hooks: Hooks,
    },
}

/// Whether a spec was made in this run — from compose's reading of the
/// operator's files, or from the running container and the flags — rather
/// than read back from a journal: only a spec read back is checked for
/// privileges its predecessor lacks (a journal may have been altered; a
/// compose file that adds a bind mount or a capability is the operator's).
/// Never kept, so a spec read back is never fresh; not part of what a spec
/// is (equal whatever its origin).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fresh(bool);

impl PartialEq for Fresh {
    fn eq(&self, _: &Fresh) -> bool {
        true
    }
}

impl Desired {
    /// The spec to create through the API when it was read back from a
    /// journal: the only kind checked for privileges (see [`Fresh`]).
    pub(super) fn read_back(&self) -> Option<&ContainerSpec> {
        match self {
            Desired::Engine {
                spec,
                fresh: Fresh(false),
                ..
            } => Some(spec),
            _ => None,
        }
    }

    /// Made in this run from `spec`, created through the API, with `hooks`.
    pub fn engine(spec: ContainerSpec, hooks: Hooks) -> Desired {
        Desired::Engine {
            spec: Box::new(spec),
            hooks,
            fresh: Fresh(true),
        }
    }

    /// The image this deploys (as far as known before it runs).
    pub fn image(&self) -> &str {
        match self {
            Desired::Engine { spec, .. } => &spec.image,
            Desired::Compose { image, .. } => image,
        }
    }

    /// The hooks of its definition.
    pub fn hooks(&self) -> &Hooks {
        match self {
            Desired::Engine { hooks, .. } | Desired::Compose { hooks, .. } => hooks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Rollout, RolloutKind, ServerState, Status};

    /// Journals written by the release before the typed journal (commit
    /// e22ca4d: kinds, specs and times as strings, nanosecond `healthy_at`).
    const OLD: [(&str, &[u8]); 5] = [
        (
            "engine deploy",
            include_bytes!("../../fixtures/journal/rev0001.json"),
        ),
        (
            "compose deploy",
            include_bytes!("../../fixtures/journal/rev0002.json"),
        ),
        (
            "rollback",
            include_bytes!("../../fixtures/journal/rev0003.json"),
        ),
        (
            "start-first deploy",
            include_bytes!("../../fixtures/journal/rev0004.json"),
        ),
        (
            "drain",
            include_bytes!("../../fixtures/journal/rev0005.json"),
        ),
    ];

    fn load(bytes: &[u8]) -> Rollout<Desired> {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn journals_of_the_previous_version_load_typed() {
        for (what, bytes) in OLD {
            let r = load(bytes);
            let again: Rollout<Desired> =
                serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(
                again, r,
                "{what}: a loaded journal saves and loads unchanged"
            );
        }
        let engine = load(OLD[0].1);
        assert_eq!(
            (engine.kind, engine.status),
            (RolloutKind::Deploy, Status::Done)
        );
        let app1 = &engine.servers[0];
        let Some(Desired::Engine { spec, .. }) = &app1.new_spec else {
            panic!("an engine spec: {:?}", app1.new_spec)
        };
        assert_eq!(spec.env("MESSAGE"), Some("app1,v2"));
        assert!(app1.healthy_at.is_some() && app1.state == ServerState::Done);
        assert!(engine.steps.iter().all(|s| s.finished_at >= s.started_at));

        let compose = load(OLD[1].1);
        assert_eq!(compose.status, Status::RolledBack);
        assert!(matches!(
            &compose.servers[0].new_spec,
            Some(Desired::Compose { compose, .. }) if compose.service == "app1"
        ));
        let rollback = load(OLD[2].1);
        assert_eq!(
            (rollback.kind, rollback.undoes),
            (RolloutKind::Rollback, Some(2))
        );
        let start_first = load(OLD[3].1);
        assert!(start_first.servers.iter().all(|s| s.replacement.is_some()));
        let drain = load(OLD[4].1);
        assert_eq!(drain.kind, RolloutKind::Drain);
        assert_eq!(
            (&drain.servers[0].old_spec, &drain.servers[0].new_spec),
            (&None, &None)
        );
    }

    #[test]
    fn a_spec_read_back_from_the_journal_is_never_fresh() {
        let read = |bytes: &[u8]| load(bytes).servers[0].new_spec.clone().unwrap();
        let Desired::Engine { spec, hooks, .. } = read(OLD[0].1) else {
            panic!("an engine spec")
        };
        let made = Desired::engine(*spec, hooks);
        let back: Desired = serde_json::from_str(&serde_json::to_string(&made).unwrap()).unwrap();
        assert_eq!(back, made, "equal whatever their origin");
        assert!(matches!(
            made,
            Desired::Engine {
                fresh: Fresh(true),
                ..
            }
        ));
        assert!(matches!(
            back,
            Desired::Engine {
                fresh: Fresh(false),
                ..
            }
        ));
    }
}
