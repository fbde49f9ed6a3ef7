//! The tests that need no Docker daemon: the config engine (corpus,
//! edits, properties, `nginx -t` agreement, templates) and the command
//! line's own surface.
#[path = "../support/mod.rs"]
mod support;

mod architecture;
mod cli_surface;
mod cli_weights;
mod conf_cli;
mod conf_cli_edits;
mod conf_corpus;
mod conf_crossplane;
mod conf_edit;
mod conf_include;
mod conf_nginx_t;
mod conf_props;
mod conf_render;
mod conf_weights;
mod docker_plugin;
mod hostile_input;
mod torn_writes;
