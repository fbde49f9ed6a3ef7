//! `nginx-rollout deploy UPSTREAM` and `plan UPSTREAM` (= `deploy --dry-run`).
use std::time::Duration;

use clap::Args;

use crate::cli::args::{
    ComposeArgs, ConfirmArgs, Global, RollbackFlags, SessionArgs, UpdateFlags, duration, key_value,
};
use crate::cli::front;
use crate::plan::{HookCommand, Hooks, Timeouts};
use crate::rollout::{self, DeployRequest, Mode, ProbeKind, Session};

/// Arguments of `deploy` and `plan`.
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
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    pub env: Vec<(String, String)>,
    /// Set a label, KEY=VALUE; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// Map an upstream server to a container, SERVER=CONTAINER; repeatable.
    #[arg(long = "map", value_name = "SERVER=CONTAINER", value_parser = key_value)]
    pub maps: Vec<(String, String)>,
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
    /// Hooks (flags replace the compose file's post_start / pre_stop of their kind).
    #[command(flatten)]
    pub hooks: HookFlags,
    /// The compose project.
    #[command(flatten)]
    pub compose: ComposeArgs,
    /// Update policy.
    #[command(flatten)]
    pub update: UpdateFlags,
    /// Rollback policy.
    #[command(flatten)]
    pub rollback: RollbackFlags,
    /// Dry-run, interactive or scripted.
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    /// Where nginx and the journal are.
    #[command(flatten)]
    pub session: SessionArgs,
}

/// `--pre-deploy`, `--post-start`, `--pre-stop` and their timeouts.
#[derive(Debug, Args, Clone)]
#[command(
    next_help_heading = "Hooks (CMD is split into words like a shell; use sh -c '…' for pipes)"
)]
pub struct HookFlags {
    /// Run CMD once, before any server is touched, in a one-off container of the new
    /// spec (same env, networks, volumes); a failure stops the deploy with nothing changed.
    #[arg(long, value_name = "CMD", value_parser = pre_deploy)]
    pub pre_deploy: Option<HookCommand>,
    /// Run CMD in each new container right after it starts (before health is awaited); repeatable.
    #[arg(long, value_name = "CMD", value_parser = post_start)]
    pub post_start: Vec<HookCommand>,
    /// Run CMD in each old container once nginx no longer sends it requests, before it stops; repeatable.
    #[arg(long, value_name = "CMD", value_parser = pre_stop)]
    pub pre_stop: Vec<HookCommand>,
    /// How long one post-start or pre-stop command may run.
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub hook_timeout: Duration,
    /// How long the pre-deploy command may run.
    #[arg(long, value_parser = duration, default_value = "10m")]
    pub pre_deploy_timeout: Duration,
}

fn pre_deploy(s: &str) -> Result<HookCommand, String> {
    HookCommand::from_flag("--pre-deploy", s).map_err(|e| e.to_string())
}

fn post_start(s: &str) -> Result<HookCommand, String> {
    HookCommand::from_flag("--post-start", s).map_err(|e| e.to_string())
}

fn pre_stop(s: &str) -> Result<HookCommand, String> {
    HookCommand::from_flag("--pre-stop", s).map_err(|e| e.to_string())
}

/// Runs (or, with `dry_run`, only plans) the rolling update.
pub async fn exec(global: &Global, args: DeployArgs, dry_run: bool) -> anyhow::Result<i32> {
    // Before anything else: `-i` without a terminal must not leave a trace.
    let mut observer = front::observer(global, &args.confirm)?;
    let probe = match &args.health_path {
        Some(path) => ProbeKind::Http(path.clone()),
        None => ProbeKind::Tcp,
    };
    let mut options = args.session.options(global, probe)?;
    let compose = args.compose.options(&options.cwd)?;
    if let Some(compose) = &compose {
        // nginx is looked for in the project the operator names.
        options.cwd = compose.directory.clone();
    }
    let request = DeployRequest {
        upstream: args.upstream,
        servers: args.servers,
        image: args.image,
        env: args.env,
        labels: args.labels,
        maps: args.maps,
        mode: args.mode,
        force: args.force,
        compose,
        update: (&args.update).into(),
        rollback: (&args.rollback).into(),
        timeouts: Timeouts {
            drain: args.drain_timeout,
            health: args.health_timeout,
            hook: args.hooks.hook_timeout,
            pre_deploy: args.hooks.pre_deploy_timeout,
        },
        hooks: Hooks {
            post_start: args.hooks.post_start,
            pre_stop: args.hooks.pre_stop,
        },
        pre_deploy: args.hooks.pre_deploy,
        dry_run: dry_run || args.confirm.dry_run,
    };
    options.read_compose = request.reads_compose();
    let session = Session::open(options).await?;
    let ended = rollout::deploy(&session, &request, &mut *observer, front::signals()?).await?;
    Ok(front::finish(global, ended))
}
