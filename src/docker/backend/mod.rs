//! The backend side of a rollout: the containers behind an upstream's
//! `server` lines — finding them, capturing their spec, recreating them
//! (engine mode) or letting compose do it (compose mode), and gating on
//! their health.
pub mod compose;
pub mod health;
pub mod mapping;
pub mod recreate;
pub mod spec;
pub mod template;

pub use compose::{
    ComposeCli, ComposeProject, compose_cli, compose_container, compose_recreate, deploy_section,
};
pub use health::{HealthError, HealthSource, HealthyAt, Probe, monitor, wait_healthy};
pub use mapping::{Backend, backend_by_name, resolve_backend};
pub use recreate::{
    Recreated, Stopped, create_and_start, recreate_stop_first, rename, slot_name, stop_and_remove,
};
pub use spec::{ContainerSpec, NetworkAttachment, capture_spec};
pub use template::{TemplateVars, render_value};
