//! nginx-rollout: zero-downtime rolling updates of Docker containers behind an nginx `upstream`.
//!
//! Layers, with one-way dependencies (see ARCHITECTURE.md): `cli` → `rollout`
//! → `exec` → `plan` → `conf`; `rollout` → the two wings `nginx` and
//! `backends` → the thin `docker` client. The public modules are what the
//! integration tests, benches and fuzzers reach; the rest is private.
mod cli;
mod diff;
mod duration;
mod exec;
mod plan;
mod retry;
mod rollout;

pub mod backends;
pub mod conf;
pub mod docker;
pub mod nginx;
pub mod render;

pub use cli::main;
