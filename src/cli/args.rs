//! The arguments every command shares, as clap types, and their parsers.
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, ValueEnum};

use super::cmd::Command;
use crate::conf::Param;
use crate::docker::DockerOptions;
use crate::plan::{Canary, FailureAction, Gate, Order, Overrides, Share, Words};
use crate::rollout::{
    ComposeFlags, ComposeOptions, ComposeOptionsError, Mode, ProbeKind, SessionOptions,
};

const EXAMPLES: &str = "\
Examples (the seed's app1/app2 stack, run from the compose project's directory):
  nginx-rollout status
  nginx-rollout deploy apps --dry-run          # the plan and every nginx.conf diff
  nginx-rollout deploy apps                    # after editing MESSAGE in docker-compose.yml
  nginx-rollout deploy apps -i                 # step by step, asking before each step
  nginx-rollout deploy apps --yes --output json --env 'MESSAGE={{service}},v3'
  nginx-rollout deploy apps --failure-action rollback --monitor 10s
  nginx-rollout deploy apps --pre-deploy 'migrate up' --post-start \"sh -c 'echo ready > /tmp/ready'\"
  nginx-rollout rollback apps && nginx-rollout history apps
  nginx-rollout drain apps app2 && nginx-rollout undrain apps app2
  DOCKER_HOST=ssh://deploy@web1 nginx-rollout deploy apps --mode engine --env MESSAGE=v3
  docker nginxrollout --help                   # the same binary as a docker CLI plugin

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
    /// Which daemon.
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// docker's global flags given before the plugin's name (`docker -H … nginxrollout …`).
    #[arg(skip)]
    pub docker: DockerOptions,
}

impl Global {
    /// The daemon options: `--context`/`-H` given to this tool win over those
    /// docker passed to the plugin; docker's `--config` and TLS flags stay.
    pub fn docker_options(&self) -> DockerOptions {
        let mut options = self.docker.clone();
        if self.daemon.context.is_some() || self.daemon.host.is_some() {
            options.context = self.daemon.context.clone();
            options.host = self.daemon.host.clone();
        }
        options
    }
}

/// Which daemon; without these, as docker: `DOCKER_HOST`, `DOCKER_CONTEXT`,
/// the current context of `$DOCKER_CONFIG/config.json`, the local socket.
#[derive(Debug, Args, Clone, Default)]
#[command(
    next_help_heading = "Docker daemon (default: DOCKER_HOST, DOCKER_CONTEXT, docker's current context)"
)]
pub struct DaemonArgs {
    /// The docker context to use (as `docker --context`).
    // No `-c`: in `conf` that is nginx's main file, as in `nginx -c`.
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "host")]
    pub context: Option<String>,
    /// The daemon: unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT][/SOCKET] (as `docker -H`).
    #[arg(short = 'H', long, global = true, value_name = "URL")]
    pub host: Option<String>,
}

/// Where nginx and the journal are.
#[derive(Debug, Args, Clone)]
pub struct SessionArgs {
    /// The nginx container (name or id); default: compose service `nginx` here, else the only nginx.
    #[arg(long, env = "NGINX_ROLLOUT_NGINX")]
    pub nginx: Option<String>,
    /// The state directory (journal, lock, kept readings); default: /var/lib/nginx-rollout/CONFIG (root) or $XDG_STATE_HOME/nginx-rollout/CONFIG.
    #[arg(long, env = "NGINX_ROLLOUT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl SessionArgs {
    /// The session these arguments (and the daemon flags of `global`) name,
    /// run from the current directory.
    pub fn options(&self, global: &Global, probe: ProbeKind) -> anyhow::Result<SessionOptions> {
        use anyhow::Context;
        Ok(SessionOptions {
            docker: global.docker_options(),
            nginx: self.nginx.clone(),
            state_dir: self.state_dir.clone(),
            cwd: std::env::current_dir().context("cannot read the current directory")?,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            probe,
            read_compose: false,
        })
    }
}

/// The compose project, as `docker compose` takes it.
#[derive(Debug, Args, Clone)]
#[command(
    next_help_heading = "Compose project (as docker compose takes them; default: what the containers' labels recorded)"
)]
pub struct ComposeArgs {
    /// Compose file; repeatable, later files override earlier ones (or $COMPOSE_FILE).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name (or $COMPOSE_PROJECT_NAME; default: the project directory's name).
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Project directory (default: the first compose file's directory).
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Env file for compose's variables; repeatable (default: .env in the project directory).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a profile; repeatable (or $COMPOSE_PROFILES).
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
}

impl ComposeArgs {
    /// The project these arguments and compose's variables name, from `cwd`
    /// (`None`: nothing names one, the containers' labels decide).
    pub fn options(
        &self,
        cwd: &std::path::Path,
    ) -> Result<Option<ComposeOptions>, ComposeOptionsError> {
        let flags = ComposeFlags {
            files: self.files.clone(),
            project_name: self.project_name.clone(),
            project_directory: self.project_directory.clone(),
            env_files: self.env_files.clone(),
            profiles: self.profiles.clone(),
        };
        ComposeOptions::resolve(&flags, cwd, &|name| std::env::var(name).ok())
    }
}

/// The server line a live edit (`drain`, `undrain`, `weight`, `remove`) changes.
#[derive(Debug, Args)]
pub struct ServerLineArgs {
    /// The upstream.
    pub upstream: String,
    /// The server (address or unique host).
    pub server: String,
}

/// What `weight`, `add` and `remove` share: the wait for nginx's old
/// workers, a dry run, and where nginx and the journal are.
#[derive(Debug, Args)]
pub struct LineEditArgs {
    /// How long old workers may take.
    #[arg(long, value_parser = duration, default_value = "30s")]
    pub drain_timeout: Duration,
    /// Print the plan and the diff; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where nginx and the journal are.
    #[command(flatten)]
    pub session: SessionArgs,
}

/// How to run (or not) the plan.
#[derive(Debug, Args, Clone)]
pub struct ConfirmArgs {
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

/// Parses a duration (`500ms`, `10s`, `1m30s`), by the tool's rule
/// ([`crate::duration::parse`], which bounds it).
pub fn duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s)
}

/// Parses a server's weight, by the config engine's rule ([`Param::is_weight`]).
pub fn weight(s: &str) -> Result<u32, String> {
    s.parse()
        .ok()
        .filter(|&n| Param::is_weight(n))
        .ok_or_else(|| format!("{s:?}: a weight is a whole number from 1 to {}", i32::MAX))
}

/// Parses a parameter of a new `server` line, by the config engine's rule
/// ([`Param::check`]): `weight=2`, `max_fails=3`, `backup`, ….
pub fn server_param(s: &str) -> Result<String, String> {
    Param::check(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// Parses `KEY=VALUE`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))
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
    /// A new container failing within this long after healthy is a failure
    /// (the last batch's: the delay + 1s instead, if the delay is at least this).
    #[arg(long, value_parser = duration)]
    pub monitor: Option<Duration>,
    /// Ramp the first server's share of the traffic through these percentages
    /// (e.g. 1,10,50) before the others follow (stop-first, single-container servers).
    #[arg(long, value_delimiter = ',', value_parser = Share::parse, value_name = "PERCENT,…")]
    pub canary_weights: Vec<Share>,
    /// Pause (exit 3) at each canary share: `resume` goes on, `rollback` undoes.
    #[arg(long, requires = "canary_weights", conflicts_with = "canary_delay")]
    pub canary_pause: bool,
    /// Hold each canary share this long, watching its container (default: the monitor window).
    #[arg(long, value_parser = duration, requires = "canary_weights")]
    pub canary_delay: Option<Duration>,
}

impl From<&UpdateFlags> for Overrides {
    fn from(f: &UpdateFlags) -> Overrides {
        let gate = match (f.canary_pause, f.canary_delay) {
            (true, _) => Some(Gate::Pause),
            (false, Some(duration)) => Some(Gate::Delay { duration }),
            (false, None) => None,
        };
        Overrides {
            parallelism: f.parallelism,
            delay: f.delay,
            order: f.order,
            failure_action: f.failure_action,
            monitor: f.monitor,
            max_failure_ratio: f.max_failure_ratio,
            canary: (!f.canary_weights.is_empty()).then(|| Canary {
                shares: f.canary_weights.clone(),
                gate,
            }),
        }
    }
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

impl From<&RollbackFlags> for Overrides {
    fn from(f: &RollbackFlags) -> Overrides {
        Overrides {
            parallelism: f.rollback_parallelism,
            delay: f.rollback_delay,
            order: f.rollback_order,
            failure_action: f.rollback_failure_action,
            monitor: f.rollback_monitor,
            max_failure_ratio: f.rollback_max_failure_ratio,
            canary: None,
        }
    }
}

/// A value of a planner enum on the command line, with its help text.
fn word<T: Words>(value: T, help: &'static str) -> PossibleValue {
    PossibleValue::new(value.word()).help(help)
}

impl ValueEnum for Order {
    fn value_variants<'a>() -> &'a [Self] {
        Order::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Order::StopFirst => word(
                *self,
                "Drain and stop the old container, then start the new one",
            ),
            Order::StartFirst => word(
                *self,
                "Start the new container beside the old one, switch the upstream, then stop the old one",
            ),
        })
    }
}

impl ValueEnum for FailureAction {
    fn value_variants<'a>() -> &'a [Self] {
        FailureAction::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            FailureAction::Pause => word(*self, "Stop where we are, leaving a resumable state"),
            FailureAction::Continue => word(
                *self,
                "Leave the failed server drained and go on with the others",
            ),
            FailureAction::Rollback => word(
                *self,
                "Undo the whole rollout with the rollback settings (not allowed for a rollback)",
            ),
        })
    }
}

impl ValueEnum for Mode {
    fn value_variants<'a>() -> &'a [Self] {
        &[Mode::Auto, Mode::Compose, Mode::ComposeCli, Mode::Engine]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Mode::Auto => PossibleValue::new("auto").help(
                "Compose when the container belongs to a compose project and no image/env/label is given, else engine",
            ),
            Mode::Compose => PossibleValue::new("compose").help(
                "What compose creates for the service now, created through the Engine API \
                 (the compose CLI where that cannot be)",
            ),
            Mode::ComposeCli => PossibleValue::new("compose-cli").help(
                "Always the compose CLI: `up -d --no-deps --force-recreate SERVICE` (the seed's own step)",
            ),
            Mode::Engine => PossibleValue::new("engine")
                .help("Recreate through the Engine API, keeping the container's configuration"),
        })
    }
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

    #[test]
    fn a_duration_past_the_maximum_is_an_error_naming_its_flag() {
        for flag in ["--monitor", "--health-timeout", "--rollback-delay"] {
            let e = Cli::try_parse_from(["nginx-rollout", "deploy", "apps", flag, "300000y"])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(flag) && e.contains("\"300000y\" is longer than 100years"),
                "{e}"
            );
        }
    }

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(
            key_value("MESSAGE=a=b").unwrap(),
            ("MESSAGE".into(), "a=b".into())
        );
        assert!(key_value("MESSAGE").is_err());
    }
}
