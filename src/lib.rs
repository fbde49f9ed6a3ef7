//! nginx-rollout: zero-downtime rolling updates of Docker containers behind an nginx `upstream`.
pub mod cli;
pub mod conf;
pub mod diff;
pub mod docker;
pub mod render;
