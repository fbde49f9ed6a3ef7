//! The backend wing: the containers behind an upstream's `server` lines —
//! finding them, capturing their spec, recreating them (engine mode) or
//! letting compose do it (compose mode), and gating on their health. Built on
//! the thin [`crate::docker`] client; knows nothing of nginx's files or reloads.
mod capture;
mod compose;
mod compose_options;
mod compose_policy;
mod data_volumes;
mod escalation;
mod health;
mod hook;
mod image;
mod mapping;
mod recreate;
mod spec;
mod template;

pub use capture::{capture_for_recreate, capture_spec};
pub use compose::{
    ComposeCli, ComposeCliProbe, ComposeKind, ComposeProject, Loaded, ProjectQuery, Reading,
    ReadingAhead, compose_container, compose_named, compose_recreate, compose_templates,
    reading_name, superseded_reading,
};
pub use compose_options::{ComposeFlags, ComposeOptions, ComposeOptionsError};
pub use compose_policy::policy_sections;
pub use data_volumes::DataVolumes;
pub use escalation::Escalation;
pub use health::{
    ContainerHealth, HealthError, HealthSource, HealthyAt, Probe, failed_within, wait_healthy,
};
pub use hook::{exec_hook, leftover_running, remove_leftover, run_one_off};
pub use image::{ImageFound, ensure_image};
pub use mapping::{
    BackendContainer, OnNetworks, Resolved, answers, backend_by_name, resolve_backend,
    resolve_backends,
};
pub use recreate::{
    NotOurs, Recreated, Stopped, create_and_start, create_replacement,
    discard_leftover_replacement, discard_parked, discard_replacement, in_the_way, next_slot,
    recreate_stop_first, rename, stop_and_keep, stop_and_remove, temporary_names,
};
pub use spec::{ContainerSpec, NetworkAttachment};
pub use template::{TemplateVars, render_value};
