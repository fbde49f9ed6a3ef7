//! Compose mode: let the compose CLI recreate a service in its project's
//! directory, exactly as the operator would (`up -d --no-deps --force-recreate`),
//! or (the fast path) create its containers through the API from templates
//! compose made. `cli.rs` runs compose, `project.rs` reads what a project's
//! files ask for (`hooks.rs`: its services' lifecycle hooks), `templates.rs`
//! makes the templates, `reading_script.rs` runs compose v1's own code to read
//! a project, `reading.rs` keeps what compose v1 read (`inputs.rs`:
//! what it was read from; `written.rs`: the environment values and images it
//! follows, as the files set them) so that a change of those values or images
//! alone — as written or through variables (`variables.rs`) — needs no
//! compose run (`new_image.rs`: a template for another image;
//! `python_json.rs`: JSON as compose hashes it; `yaml_typing.rs`: where
//! compose's YAML 1.1 and this crate's YAML 1.2 could read a file apart).
mod cli;
mod hooks;
mod inputs;
mod new_image;
mod project;
mod python_json;
mod reading;
mod reading_script;
mod templates;
mod variables;
mod written;
mod yaml_typing;

pub(super) use cli::run;
pub use cli::{ComposeCli, ComposeCliProbe, ComposeKind, compose_container, compose_recreate};
pub use project::{ComposeProject, Loaded, ProjectQuery};
pub use reading::{Reading, reading_name, superseded_reading};
pub use reading_script::ReadingAhead;
pub use templates::{compose_named, compose_templates};
