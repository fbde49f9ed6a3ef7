//! The same binary as a docker CLI plugin, installed as
//! `~/.docker/cli-plugins/docker-nginxrollout` and run as `docker nginxrollout …`.
//!
//! docker asks a plugin `docker-cli-plugin-metadata` (for `docker --help`, and
//! again before every run), then runs it with its own argv: `[path, <docker's
//! global flags>, nginxrollout, <the plugin's arguments>]`. docker does not pass
//! the daemon it chose, only those flags, so they are parsed here and the
//! daemon is chosen from them as docker would.
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::Parser;
use clap::builder::BoolishValueParser;

use crate::docker::DockerOptions;

/// docker's prefix of plugin file names.
const FILE_PREFIX: &str = "docker-";
/// The subcommand docker runs to learn about a plugin.
const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";

/// How this process was started.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// docker asks for the plugin's metadata.
    Metadata,
    /// Run by docker as plugin `name`.
    Plugin {
        /// docker's global flags that came before the name.
        docker: DockerOptions,
        /// The plugin's name (its file name without `docker-`).
        name: String,
        /// The plugin's own arguments, for clap (the first is the binary name to show).
        args: Vec<OsString>,
    },
    /// Run directly: `argv` for clap as it is.
    Standalone(Vec<OsString>),
}

/// The metadata docker reads from `docker-cli-plugin-metadata` (JSON keys
/// are Go's field names). Printed without touching anything else: docker
/// runs it for every `docker --help` and before every plugin run.
pub fn metadata() -> String {
    serde_json::json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "nginx-rollout",
        "Version": env!("CARGO_PKG_VERSION"),
        "ShortDescription": env!("CARGO_PKG_DESCRIPTION"),
    })
    .to_string()
}

/// What `argv` asks for. The plugin's name comes from the file name
/// (`docker-NAME`); a plugin file run directly (its first argument after
/// docker's flags is not its name) runs standalone.
pub fn invocation(argv: Vec<OsString>) -> Invocation {
    if argv.get(1).map(OsString::as_os_str) == Some(OsStr::new(METADATA_COMMAND)) {
        return Invocation::Metadata;
    }
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(OsStr::to_str)
        .and_then(|f| f.strip_prefix(FILE_PREFIX))
        .map(str::to_string);
    match name.and_then(|name| as_plugin(&argv, name)) {
        Some(plugin) => plugin,
        None => Invocation::Standalone(argv),
    }
}

/// docker's global flags (`cli/flags/common.go` and `--config`), parsed as
/// docker's pflag parses them, up to the first argument that is no flag.
#[derive(Debug, Parser)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct DockerGlobals {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(short = 'c', long)]
    context: Option<String>,
    #[arg(short = 'D', long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    debug: Option<bool>,
    #[arg(short = 'H', long)]
    host: Option<String>,
    #[arg(short = 'l', long)]
    log_level: Option<String>,
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    tls: Option<bool>,
    #[arg(long)]
    tlscacert: Option<PathBuf>,
    #[arg(long)]
    tlscert: Option<PathBuf>,
    #[arg(long)]
    tlskey: Option<PathBuf>,
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    tlsverify: Option<bool>,
    /// The plugin's name and everything after it.
    #[arg(trailing_var_arg = true)]
    rest: Vec<OsString>,
}

/// `argv` as docker runs plugin `name`, or `None` when it is not that.
fn as_plugin(argv: &[OsString], name: String) -> Option<Invocation> {
    let globals = DockerGlobals::try_parse_from(argv.iter().skip(1)).ok()?;
    let bin = OsString::from(format!("docker {name}"));
    let args = match globals.rest.as_slice() {
        // `docker help NAME`
        [help, of, ..] if help == "help" && *of == *name => vec![bin, "--help".into()],
        [first, rest @ ..] if *first == *name => {
            std::iter::once(bin).chain(rest.iter().cloned()).collect()
        }
        _ => return None,
    };
    let docker = DockerOptions {
        config_dir: globals.config,
        context: globals.context,
        host: globals.host,
        tls: globals.tls.unwrap_or(false),
        tls_verify: globals.tlsverify.unwrap_or(false),
        tls_ca: globals.tlscacert,
        tls_cert: globals.tlscert,
        tls_key: globals.tlskey,
    };
    Some(Invocation::Plugin { docker, name, args })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/root/.docker/cli-plugins/docker-nginxrollout";

    fn run(args: &[&str]) -> Invocation {
        invocation(args.iter().map(OsString::from).collect())
    }

    fn plugin(docker: DockerOptions, args: &[&str]) -> Invocation {
        Invocation::Plugin {
            docker,
            name: "nginxrollout".into(),
            args: args.iter().map(OsString::from).collect(),
        }
    }

    #[test]
    fn metadata_is_asked_with_one_argument() {
        assert_eq!(run(&[PATH, METADATA_COMMAND]), Invocation::Metadata);
        assert_eq!(
            run(&["/usr/local/bin/nginx-rollout", METADATA_COMMAND]),
            Invocation::Metadata
        );
        let json: serde_json::Value = serde_json::from_str(&metadata()).unwrap();
        assert_eq!(json["SchemaVersion"], "0.1.0");
        assert_eq!(json["Vendor"], "nginx-rollout");
    }

    #[test]
    fn the_plugin_name_and_dockers_flags_are_taken_off() {
        assert_eq!(
            run(&[PATH, "nginxrollout", "deploy", "apps", "-i"]),
            plugin(
                DockerOptions::default(),
                &["docker nginxrollout", "deploy", "apps", "-i"]
            )
        );
        let docker = DockerOptions {
            config_dir: Some("/etc/dk".into()),
            context: Some("prod".into()),
            ..DockerOptions::default()
        };
        for argv in [
            &[
                PATH,
                "--config",
                "/etc/dk",
                "--context",
                "prod",
                "-D",
                "nginxrollout",
                "status",
            ][..],
            &[
                PATH,
                "--config=/etc/dk",
                "-cprod",
                "--debug",
                "nginxrollout",
                "status",
            ],
            &[
                PATH,
                "-D",
                "--config",
                "/etc/dk",
                "-c=prod",
                "-l",
                "debug",
                "nginxrollout",
                "status",
            ],
        ] {
            assert_eq!(
                run(argv),
                plugin(docker.clone(), &["docker nginxrollout", "status"]),
                "{argv:?}"
            );
        }
        let tls = DockerOptions {
            host: Some("tcp://h:2376".into()),
            tls_verify: true,
            tls_ca: Some("/c/ca.pem".into()),
            ..DockerOptions::default()
        };
        assert_eq!(
            run(&[
                PATH,
                "-H",
                "tcp://h:2376",
                "--tlsverify",
                "--tlscacert",
                "/c/ca.pem",
                "nginxrollout",
                "--tls",
                "x"
            ]),
            plugin(tls, &["docker nginxrollout", "--tls", "x"])
        );
    }

    #[test]
    fn help_of_the_plugin_is_its_help() {
        assert_eq!(
            run(&[PATH, "help", "nginxrollout"]),
            plugin(DockerOptions::default(), &["docker nginxrollout", "--help"])
        );
    }

    #[test]
    fn anything_else_runs_standalone() {
        for argv in [
            &["/usr/local/bin/nginx-rollout", "deploy", "apps"][..],
            &[PATH, "deploy", "apps"],
            &[PATH, "--output", "json", "status"],
            &[PATH],
            &["nginx-rollout", "nginxrollout"],
        ] {
            assert_eq!(
                run(argv),
                Invocation::Standalone(argv.iter().map(OsString::from).collect()),
                "{argv:?}"
            );
        }
    }
}
