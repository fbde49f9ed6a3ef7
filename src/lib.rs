//! nginx-rollout: zero-downtime rolling updates of Docker containers behind an nginx `upstream`.
//!
//! Modules, with one-way dependencies (see ARCHITECTURE.md):
//! `cli` → `rollout` → `exec` → `plan` → `conf`; `rollout` → `docker` → `conf`;
//! `diff` and `render` are leaves used by the layers above them.
pub mod cli;
pub mod conf;
pub mod diff;
pub mod docker;
pub mod exec;
pub mod plan;
pub mod render;
pub mod rollout;
