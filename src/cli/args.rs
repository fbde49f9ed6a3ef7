//! The command line, as clap types.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plan::{FailureAction, Order};
use crate::rollout::Mode;

const EXAMPLES: &str = "\
Examples (the seed's app1/app2 stack, run from the compose project's directory):
  nginx-rollout status
  nginx-rollout deploy apps --dry-run          # the plan and every nginx.conf diff
  nginx-rollout deploy apps                    # after editing MESSAGE in docker-compose.yml
  nginx-rollout deploy apps -i                 # step by step, asking before each step
  nginx-rollout deploy apps --yes --output json --env 'MESSAGE={{service}},v3'
  nginx-rollout deploy apps --failure-action rollback --monitor 10s
  nginx-rollout rollback apps && nginx-rollout history apps
  nginx-rollout drain apps app2 && nginx-rollout undrain apps app2

Exit codes: 0 done, 1 failed (rolled back if so configured), 2 usage or config error,
3 paused, 4 interrupted, 5 another rollout holds the lock.";

/// Zero-downtime rolling updates of Docker containers behind an nginx upstream.
///
/// Drains one server of an nginx upstream (`down`), reloads nginx, redeploys that
/// server's container, waits until it is healthy, puts it back, and goes on to the
/// next, with Swarm-style update policies, rollback and a crash-safe journal.
#[derive(Debug, Parser)]
#[command(name = "nginx-rollout", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable progress on stderr.
    Human,
    /// JSON lines on stdout (schema: docs/events.schema.json).
    Json,
}

/// Options for every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: Output,
    /// Only errors and the final summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More detail: worker pids, every wait.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// Where nginx and the journal are.
#[derive(Debug, Args, Clone)]
pub struct Target {
    /// The nginx container (name or id); default: compose service `nginx` here, else the only nginx.
    #[arg(long, env = "NGINX_ROLLOUT_NGINX")]
    pub nginx: Option<String>,
    /// The journal directory; default: `.nginx-rollout/` next to nginx.conf on the host.
    #[arg(long, env = "NGINX_ROLLOUT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// How to run (not) the plan.
#[derive(Debug, Args, Clone)]
pub struct Confirm {
    /// Print the plan and every config diff; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Ask before each step (needs a terminal).
    #[arg(short, long, conflicts_with = "dry_run")]
    pub interactive: bool,
    /// Never ask (implied when stdin is not a terminal).
    #[arg(short, long)]
    pub yes: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 500ms, 10s, 1m30s)"))
}

/// `deploy` and `plan`.
#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    /// The upstream whose servers are updated.
    pub upstream: String,
    /// Only these servers (address as written, or unique host), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// New image (a tera template over {{server}}, {{service}}, {{container}}, {{index}}).
    #[arg(long)]
    pub image: Option<String>,
    /// Set an environment variable, KEY=VALUE (VALUE is a template); repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Set a label, KEY=VALUE; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Map an upstream server to a container, SERVER=CONTAINER; repeatable.
    #[arg(long = "map", value_name = "SERVER=CONTAINER")]
    pub maps: Vec<String>,
    /// How containers are redeployed.
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: Mode,
    /// Compose mode: redeploy services whose compose config did not change too.
    #[arg(long)]
    pub force: bool,
    /// How long old nginx workers may take to finish their requests.
    #[arg(long, value_parser = duration, default_value = "30s")]
    pub drain_timeout: Duration,
    /// How long a new container may take to become healthy.
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub health_timeout: Duration,
    /// Without a Docker healthcheck: probe this HTTP path from the nginx container (default: TCP connect).
    #[arg(long)]
    pub health_path: Option<String>,
    /// Update policy.
    #[command(flatten)]
    pub update: UpdateFlags,
    /// Rollback policy.
    #[command(flatten)]
    pub rollback: RollbackFlags,
    /// Dry-run, interactive or scripted.
    #[command(flatten)]
    pub confirm: Confirm,
    /// Where nginx and the journal are.
    #[command(flatten)]
    pub target: Target,
}

/// `--parallelism` … (as `docker service update --update-*`).
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Update policy (flags win over deploy.update_config)")]
pub struct UpdateFlags {
    /// Servers replaced at once (0 = all; stop-first never drains the last live one).
    #[arg(long)]
    pub parallelism: Option<u32>,
    /// Wait between batches.
    #[arg(long, value_parser = duration)]
    pub delay: Option<Duration>,
    /// stop-first or start-first.
    #[arg(long, value_enum)]
    pub order: Option<Order>,
    /// What to do when failures exceed the ratio.
    #[arg(long, value_enum)]
    pub failure_action: Option<FailureAction>,
    /// Failures / servers above which the failure action fires.
    #[arg(long)]
    pub max_failure_ratio: Option<f64>,
    /// A new container failing within this long after healthy is a failure.
    #[arg(long, value_parser = duration)]
    pub monitor: Option<Duration>,
}

/// `--rollback-*`.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Rollback policy (flags win over deploy.rollback_config)")]
pub struct RollbackFlags {
    /// Servers rolled back at once.
    #[arg(long)]
    pub rollback_parallelism: Option<u32>,
    /// Wait between rollback batches.
    #[arg(long, value_parser = duration)]
    pub rollback_delay: Option<Duration>,
    /// Rollback order.
    #[arg(long, value_enum)]
    pub rollback_order: Option<Order>,
    /// pause or continue.
    #[arg(long, value_enum)]
    pub rollback_failure_action: Option<FailureAction>,
    /// Failure ratio for the rollback.
    #[arg(long)]
    pub rollback_max_failure_ratio: Option<f64>,
    /// Monitor window for the rollback.
    #[arg(long, value_parser = duration)]
    pub rollback_monitor: Option<Duration>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and edit nginx configuration files losslessly (offline, no Docker).
    #[command(subcommand)]
    Conf(super::conf::ConfCommand),
    /// Render a tera template (upstream blocks or a whole config).
    Render(super::render::RenderArgs),
    /// Table of upstreams, servers, their state and containers, and any unfinished rollout.
    Status {
        /// Only this upstream.
        upstream: Option<String>,
        /// Where nginx and the journal are.
        #[command(flatten)]
        target: Target,
    },
    /// Take one server out of an upstream, live: edit, nginx -t, reload, wait for old workers.
    Drain {
        /// The upstream.
        upstream: String,
        /// The server (address or unique host).
        server: String,
        /// Even the last live server (a full outage).
        #[arg(long)]
        force: bool,
        /// How long old workers may take.
        #[arg(long, value_parser = duration, default_value = "30s")]
        drain_timeout: Duration,
        /// Where nginx and the journal are.
        #[command(flatten)]
        target: Target,
    },
    /// Put a drained server back, live.
    Undrain {
        /// The upstream.
        upstream: String,
        /// The server (address or unique host).
        server: String,
        /// Where nginx and the journal are.
        #[command(flatten)]
        target: Target,
    },
    /// Rolling update of an upstream's containers.
    Deploy(Box<DeployArgs>),
    /// The same as `deploy --dry-run`.
    Plan(Box<DeployArgs>),
    /// Continue a paused or interrupted rollout.
    Resume {
        /// Only a rollout of this upstream.
        upstream: Option<String>,
        /// Dry-run, interactive or scripted.
        #[command(flatten)]
        confirm: Confirm,
        /// Where nginx and the journal are.
        #[command(flatten)]
        target: Target,
    },
    /// Undo the unfinished or the last rollout, a rollback too (or go back to revision N).
    Rollback {
        /// Only rollouts of this upstream.
        upstream: Option<String>,
        /// Redeploy what revision N deployed.
        #[arg(long)]
        to: Option<u32>,
        /// Override the rollback settings the rollout was started with.
        #[command(flatten)]
        policy: RollbackFlags,
        /// Dry-run, interactive or scripted.
        #[command(flatten)]
        confirm: Confirm,
        /// Where nginx and the journal are.
        #[command(flatten)]
        target: Target,
    },
    /// Revisions, newest last (ten are kept).
    History {
        /// Only this upstream.
        upstream: Option<String>,
        /// Where nginx and the journal are.
        #[command(flatten)]
        target: Target,
    },
    /// Shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff) on stdout.
    Man,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::plan::Timeouts;

    #[test]
    fn timeout_flags_default_to_the_plans_defaults() {
        let cli = Cli::try_parse_from(["nginx-rollout", "deploy", "apps"]).unwrap();
        let Command::Deploy(args) = cli.command else {
            panic!("not a deploy")
        };
        assert_eq!(args.drain_timeout, Timeouts::DEFAULT.drain);
        assert_eq!(args.health_timeout, Timeouts::DEFAULT.health);
    }
}
