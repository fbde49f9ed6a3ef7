//! The backend wing: the containers behind an upstream's `server` lines —
//! finding them, capturing their spec, recreating them (engine mode) or
//! letting compose do it (compose mode), and gating on their health. Built on
//! the thin [`crate::docker`] client; knows nothing of nginx's files or reloads.
mod compose;
mod health;
mod mapping;
mod recreate;
mod spec;
mod template;

pub use compose::{
    ComposeCli, ComposeKind, ComposeProject, compose_cli, compose_container, compose_recreate,
    policy_sections,
};
pub use health::{HealthError, HealthSource, HealthyAt, Probe, failed_within, wait_healthy};
pub use mapping::{BackendContainer, backend_by_name, resolve_backend};
pub use recreate::{
    Recreated, Stopped, create_and_start, next_slot, recreate_stop_first, rename, stop_and_remove,
};
pub use spec::{ContainerSpec, NetworkAttachment, capture_spec};
pub use template::{TemplateVars, render_value};
