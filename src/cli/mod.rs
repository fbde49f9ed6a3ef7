//! Command-line front end: argument parsing and the three ways to run a plan
//! (dry-run, interactive, scripted). Everything else lives in the library.
mod args;
mod conf;
mod live;
pub mod output;
mod render;

use std::io::IsTerminal;

use clap::{CommandFactory, Parser};

pub use args::{Cli, Command};

use crate::exec::LockHeld;
use crate::rollout::exit;

/// Parses the command line, runs it and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nginx-rollout: cannot start the async runtime: {e}");
            return exit::FAILED;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
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

/// Prints an error as one line (what and where), its causes, then a hint; returns the exit code.
fn report(e: &anyhow::Error) -> i32 {
    let (code, hint) = if e.downcast_ref::<LockHeld>().is_some() {
        (
            exit::LOCKED,
            "wait for it to finish, or check that process; a dead holder's lock is taken over automatically",
        )
    } else if e.downcast_ref::<output::NoTerminal>().is_some() {
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
    } else if e
        .chain()
        .any(|c| c.downcast_ref::<crate::plan::PlanError>().is_some())
        || e.chain().any(|c| {
            c.downcast_ref::<crate::plan::policy::PolicyError>()
                .is_some()
        })
    {
        (exit::USAGE, "see `nginx-rollout deploy --help`")
    } else {
        (
            exit::FAILED,
            "run with --verbose for details; `nginx-rollout status` shows where things are",
        )
    };
    eprintln!("nginx-rollout: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    eprintln!("  hint: {hint}");
    code
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "nginx-rollout",
                &mut std::io::stdout(),
            );
            Ok(exit::DONE)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(exit::DONE)
        }
        Command::Conf(c) => Ok(offline(conf::run(c))),
        Command::Render(r) => Ok(offline(render::run(r))),
        command => live::run(&cli.global, command).await,
    }
}

/// The exit code of an offline command (`conf`, `render`): they keep nginx's own
/// error format (the message, the line and a caret) and exit 1, as `nginx -t` does.
fn offline(result: anyhow::Result<i32>) -> i32 {
    result.unwrap_or_else(|e| {
        eprintln!("nginx-rollout: {e:#}");
        exit::FAILED
    })
}
