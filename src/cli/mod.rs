//! The command line: parse arguments, pick the front end, run one command,
//! map its outcome to an exit code. Everything else lives in the library.
#[macro_use]
mod output;

mod args;
mod cmd;
mod exit;
mod front;
mod plugin;

use std::io::IsTerminal;

use clap::{CommandFactory, FromArgMatches, Parser};

use args::Cli;
use plugin::Invocation;

/// Parses the command line (standalone, or as the docker CLI plugin), runs it
/// and returns the process exit code.
pub fn main() -> i32 {
    let cli = match plugin::invocation(std::env::args_os().collect()) {
        Invocation::Metadata => {
            println!("{}", plugin::metadata());
            return exit::DONE;
        }
        Invocation::Standalone(argv) => Cli::parse_from(argv),
        Invocation::Plugin { docker, name, args } => {
            let matches = Cli::command()
                .bin_name(format!("docker {name}"))
                .get_matches_from(args);
            let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
            cli.global.docker = docker;
            cli
        }
    };
    init_tracing(cli.global.verbose);
    cmd::run(&cli.global, cli.command)
}

/// Runs a command that talks to the Docker daemon on a fresh runtime; an
/// error is reported with a hint and becomes the exit code.
fn live(command: impl Future<Output = anyhow::Result<i32>>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("nginx-rollout: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    runtime.block_on(command).unwrap_or_else(|e| report(&e))
}

/// Whether the system refused access somewhere in `e`'s chain.
fn permission_denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

fn init_tracing(verbose: bool) {
    let default = if verbose {
        "nginx_rollout=debug"
    } else {
        "nginx_rollout=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NGINX_ROLLOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !crate::diff::no_color())
        .try_init();
}

/// The exit code of an offline command (`conf`, `render`, …): errors keep
/// nginx's own format (the message, the line and a caret) and exit 1, as
/// `nginx -t` does.
fn offline(result: anyhow::Result<i32>) -> i32 {
    result.unwrap_or_else(|e| {
        if output::broken_pipe(&e) {
            return exit::DONE;
        }
        errln!("nginx-rollout: {}", output::shown(&format!("{e:#}")));
        exit::FAILED
    })
}

/// Prints an error of a live command as one line (what and where), its
/// causes, then a hint; returns the exit code.
fn report(e: &anyhow::Error) -> i32 {
    if output::broken_pipe(e) {
        return exit::DONE;
    }
    let is = |f: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool| e.chain().any(f);
    let (code, hint) = if is(&|c| c.is::<crate::exec::LockHeld>()) {
        (
            exit::LOCKED,
            "wait for it to finish, or check that process; a dead holder's lock is taken over automatically",
        )
    } else if is(&|c| c.is::<front::NoTerminal>()) {
        (
            exit::USAGE,
            "run it in a terminal, or without -i (scripts: --yes, --output json)",
        )
    } else if let Some(conf) = e
        .chain()
        .find_map(|c| c.downcast_ref::<crate::conf::ConfError>())
    {
        (
            exit::USAGE,
            if conf.place().is_some() {
                "fix the file at the position shown; nothing was changed"
            } else {
                "`nginx-rollout status` lists the upstreams and servers; nothing was changed"
            },
        )
    } else if is(&|c| c.is::<crate::docker::EndpointError>()) {
        (
            exit::USAGE,
            "the daemon is chosen as docker chooses it: --context, -H, DOCKER_HOST, \
             DOCKER_CONTEXT, then currentContext of $DOCKER_CONFIG/config.json; nothing was changed",
        )
    } else if is(&|c| c.is::<crate::rollout::ComposeOptionsError>()) {
        (
            exit::USAGE,
            "compose's -f/-p/--project-directory/--env-file/--profile and COMPOSE_* name the project; nothing was changed",
        )
    } else if is(&|c| c.is::<crate::rollout::NotOurs>()) {
        (
            exit::USAGE,
            "a container this tool cannot prove it made is never removed",
        )
    } else if is(&|c| c.is::<crate::plan::PlanError>() || c.is::<crate::plan::PolicyError>()) {
        (exit::USAGE, "see `nginx-rollout deploy --help`")
    } else if crate::rollout::daemon_unreachable(e) && permission_denied(e) {
        (
            exit::FAILED,
            "this user may not open the Docker daemon's socket: run as root, or as a member \
             of the group that owns it (docker)",
        )
    } else if crate::rollout::daemon_unreachable(e) {
        (
            exit::FAILED,
            "the Docker daemon did not answer (stopped or restarting?); once it is back, \
             `nginx-rollout status` shows whether a rollout was left unfinished, to `resume` \
             or `rollback`",
        )
    } else {
        (
            exit::FAILED,
            "run with --verbose for details; `nginx-rollout status` shows where things are",
        )
    };
    errln!("nginx-rollout: {}", output::shown(&e.to_string()));
    for cause in e.chain().skip(1) {
        errln!("  caused by: {}", output::shown(&cause.to_string()));
    }
    errln!("  hint: {hint}");
    code
}
