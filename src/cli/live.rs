//! The commands that act on the live Docker engine.
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use tokio::sync::watch;

use super::args::{Command, Confirm, DeployArgs, Global, Output, RollbackFlags, Target};
use super::output::{Human, Interactive, Json, Style, render_plan};
use crate::docker::backend::resolve_backend;
use crate::exec::event::{Event, Observer};
use crate::exec::journal::{ServerRecord, ServerState, StateDir, Status};
use crate::exec::{Backend, Lock};
use crate::plan::policy::{Direction, Overrides, with_flags};
use crate::plan::{Action, Plan, ServerChange, Step, Target as PlanTarget, Timeouts, UpdateConfig};
use crate::rollout::{DeployOptions, Live, ProbeKind, Runner, exit, new_rollout, prepare};

/// Runs a live command.
pub async fn run(global: &Global, command: Command) -> Result<i32> {
    match command {
        Command::Status { upstream, target } => status(global, upstream.as_deref(), &target).await,
        Command::Drain {
            upstream,
            server,
            force,
            drain_timeout,
            target,
        } => {
            let change = ServerChange::Drain { server };
            single_edit(global, &upstream, change, force, drain_timeout, &target).await
        }
        Command::Undrain {
            upstream,
            server,
            target,
        } => {
            let change = ServerChange::Restore { server };
            single_edit(
                global,
                &upstream,
                change,
                false,
                std::time::Duration::from_secs(30),
                &target,
            )
            .await
        }
        Command::Deploy(args) => deploy(global, *args, false).await,
        Command::Plan(args) => deploy(global, *args, true).await,
        Command::Resume {
            upstream,
            confirm,
            target,
        } => resume(global, upstream.as_deref(), &confirm, &target).await,
        Command::Rollback {
            upstream,
            to,
            policy,
            confirm,
            target,
        } => {
            let flags = rollback_overrides(&policy);
            rollback(global, upstream.as_deref(), to, &flags, &confirm, &target).await
        }
        Command::History { upstream, target } => {
            history(global, upstream.as_deref(), &target).await
        }
        Command::Completions { .. } | Command::Man | Command::Conf(_) | Command::Render(_) => {
            unreachable!("handled before")
        }
    }
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

async fn connect(target: &Target) -> Result<Live> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Live::connect(target.nginx.as_deref(), &cwd).await
}

/// SIGINT/SIGTERM flip the returned flag; the executor stops at a safe point.
fn signals() -> Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(false);
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("nginx-rollout: interrupted; finishing the current step safely");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// The front end for this invocation.
fn observer(global: &Global, confirm: &Confirm) -> Result<Box<dyn Observer>> {
    let style = Style::detect(global.quiet, global.verbose);
    Ok(match (global.output, confirm.interactive) {
        (_, true) => Box::new(Interactive::new(style)?),
        (Output::Json, false) => Box::new(Json),
        (Output::Human, false) => Box::new(Human::new(style)),
    })
}

/// Shows a plan without running it: human text or one JSON `plan` event.
fn show_plan(global: &Global, plan: &Plan, kind: &str, revision: u32) {
    match global.output {
        Output::Json => Json.event(&Event::Plan {
            revision,
            kind: kind.into(),
            plan: Box::new(plan.clone()),
        }),
        Output::Human => print!(
            "{}",
            render_plan(
                plan,
                Style::detect(false, false).color && std::io::stdout().is_terminal()
            )
        ),
    }
}

/// On a terminal without `--yes`, shows the plan and asks once.
fn confirm_start(global: &Global, confirm: &Confirm, plan: &Plan) -> Result<bool> {
    if confirm.yes
        || confirm.interactive
        || !std::io::stdin().is_terminal()
        || !std::io::stderr().is_terminal()
    {
        return Ok(true);
    }
    eprint!(
        "{}",
        render_plan(plan, Style::detect(global.quiet, global.verbose).color)
    );
    Ok(dialoguer::Confirm::new()
        .with_prompt("run this plan?")
        .default(false)
        .interact()?)
}

fn lock(state: &StateDir) -> Result<Lock> {
    let lock = Lock::acquire(&state.root().join("lock"), &command_line())?;
    if let Some(dead) = &lock.taken_over_from {
        eprintln!(
            "nginx-rollout: took over the lock of pid {} ({}, since {}), which died holding it; `status` shows what it left",
            dead.pid, dead.command, dead.since
        );
    }
    Ok(lock)
}

/// Connects, opens the state directory and takes its lock: the start of every
/// command that changes something.
async fn open_locked(target: &Target) -> Result<(Live, StateDir, Lock)> {
    let live = connect(target).await?;
    let state = live.state_dir(target.state_dir.as_deref()).await?;
    let lock = lock(&state)?;
    Ok((live, state, lock))
}

fn refuse_if_unfinished(state: &StateDir, upstream: &str) -> Result<()> {
    if let Some(r) = state.unfinished(Some(upstream))? {
        bail!(
            "revision {} ({} of upstream {}) is {:?}: run `nginx-rollout resume` or `nginx-rollout rollback` first",
            r.revision,
            r.kind,
            r.upstream,
            r.status
        );
    }
    Ok(())
}

fn rollback_overrides(r: &RollbackFlags) -> Overrides {
    Overrides {
        parallelism: r.rollback_parallelism,
        delay: r.rollback_delay,
        order: r.rollback_order,
        failure_action: r.rollback_failure_action,
        monitor: r.rollback_monitor,
        max_failure_ratio: r.rollback_max_failure_ratio,
    }
}

async fn deploy(global: &Global, args: DeployArgs, dry_run: bool) -> Result<i32> {
    // Before anything else: `-i` without a terminal must not leave a trace.
    let mut observer = observer(global, &args.confirm)?;
    let mut live = connect(&args.target).await?;
    if let Some(path) = &args.health_path {
        live.probe = ProbeKind::Http(path.clone());
    }
    let u = &args.update;
    let r = &args.rollback;
    let opts = DeployOptions {
        upstream: args.upstream.clone(),
        servers: args.servers.clone(),
        image: args.image.clone(),
        env: args.env.clone(),
        labels: args.labels.clone(),
        maps: args.maps.clone(),
        mode: args.mode,
        force: args.force,
        update: Overrides {
            parallelism: u.parallelism,
            delay: u.delay,
            order: u.order,
            failure_action: u.failure_action,
            monitor: u.monitor,
            max_failure_ratio: u.max_failure_ratio,
        },
        rollback: rollback_overrides(r),
        timeouts: Timeouts {
            drain: args.drain_timeout,
            health: args.health_timeout,
        },
    };
    if dry_run || args.confirm.dry_run {
        // Read-only: no lock, no journal, no state directory.
        let prepared = prepare(&live, &opts).await?;
        for (server, why) in &prepared.skipped {
            eprintln!("skipping {server}: {why}");
        }
        show_plan(global, &prepared.plan, "deploy", 0);
        return Ok(exit::DONE);
    }
    let state = live.state_dir(args.target.state_dir.as_deref()).await?;
    let _lock = lock(&state)?;
    refuse_if_unfinished(&state, &args.upstream)?;
    let prepared = prepare(&live, &opts).await?;
    for (server, why) in &prepared.skipped {
        eprintln!("skipping {server}: {why}");
    }
    if !confirm_start(global, &args.confirm, &prepared.plan)? {
        eprintln!("nothing done");
        return Ok(exit::DONE);
    }
    let rollout = new_rollout(
        state.next_revision()?,
        "deploy",
        None,
        &command_line(),
        &live.nginx.name,
        prepared.plan,
        prepared.rollback_policy,
        prepared.servers,
    );
    let mut runner = Runner {
        live: &live,
        state: &state,
        observer: &mut observer,
        cancel: signals()?,
        interactive: args.confirm.interactive,
    };
    runner.start(rollout).await
}

async fn resume(
    global: &Global,
    upstream: Option<&str>,
    confirm: &Confirm,
    target: &Target,
) -> Result<i32> {
    let mut observer = observer(global, confirm)?;
    let (live, state, _lock) = open_locked(target).await?;
    let Some(mut rollout) = state.unfinished(upstream)? else {
        bail!(
            "no paused or interrupted rollout to resume in {}",
            state.root().display()
        );
    };
    let config = live.load_config().await?;
    let up = config.upstream(&rollout.upstream)?;
    let mut targets = Vec::new();
    for rec in rollout
        .servers
        .iter_mut()
        .filter(|r| r.state != ServerState::Done)
    {
        let drained_by_us = up.is_down(&rec.server) && rec.drained_by_us();
        rec.state = if drained_by_us {
            ServerState::Drained
        } else {
            ServerState::Pending
        };
        rec.error = None;
        targets.push(PlanTarget {
            server: rec.server.clone(),
            container: rec.container.clone(),
            replacement: rec.replacement.clone(),
            drained_by_us,
            dead: !live.is_running(&rec.container).await?,
        });
    }
    let plan = crate::plan::plan(
        &config,
        &rollout.upstream,
        &targets,
        &rollout.plan.policy,
        rollout.plan.timeouts,
    )?;
    if confirm.dry_run {
        show_plan(global, &plan, "resume", rollout.revision);
        return Ok(exit::DONE);
    }
    if !confirm_start(global, confirm, &plan)? {
        return Ok(exit::DONE);
    }
    rollout.steps = new_rollout(
        0,
        "",
        None,
        "",
        "",
        plan.clone(),
        rollout.rollback_policy.clone(),
        Vec::new(),
    )
    .steps;
    rollout.plan = plan;
    let mut runner = Runner {
        live: &live,
        state: &state,
        observer: &mut observer,
        cancel: signals()?,
        interactive: confirm.interactive,
    };
    runner.run(rollout).await
}

async fn rollback(
    global: &Global,
    upstream: Option<&str>,
    to: Option<u32>,
    flags: &Overrides,
    confirm: &Confirm,
    target: &Target,
) -> Result<i32> {
    let mut observer = observer(global, confirm)?;
    let (live, state, _lock) = open_locked(target).await?;
    let history = state.history()?;
    // Without --to: the unfinished rollout, else the last finished deploy or
    // rollback, so a second `rollback` undoes the first (as `docker service
    // rollback` swaps a service's spec and previous spec).
    let of = match state.unfinished(upstream)? {
        Some(r) => r,
        None => history
            .iter()
            .rev()
            .find(|r| {
                upstream.is_none_or(|u| r.upstream == u)
                    && matches!(r.kind.as_str(), "deploy" | "rollback")
                    && r.status == Status::Done
            })
            .cloned()
            .context("no finished deploy or rollback to roll back")?,
    };
    let to_rollout = match to {
        Some(n) => Some(
            history
                .iter()
                .find(|r| r.revision == n)
                .cloned()
                .with_context(|| format!("no revision {n} (see `history`)"))?,
        ),
        None => None,
    };
    let mut runner = Runner {
        live: &live,
        state: &state,
        observer: &mut observer,
        cancel: signals()?,
        interactive: confirm.interactive,
    };
    let policy = with_flags(of.rollback_policy.clone(), Direction::Rollback, flags)?;
    let undo = runner
        .rollback_of(&of, to_rollout.as_ref(), &policy)
        .await?;
    if confirm.dry_run {
        show_plan(global, &undo.plan, "rollback", undo.revision);
        return Ok(exit::DONE);
    }
    if !confirm_start(global, confirm, &undo.plan)? {
        return Ok(exit::DONE);
    }
    let code = runner.start(undo).await?;
    if code == exit::DONE {
        let mut of = of;
        of.status = Status::RolledBack;
        state.save(&of)?;
    }
    Ok(code)
}

/// `drain` / `undrain`: a two- or three-step plan (edit, reload, wait for old workers), journaled.
async fn single_edit(
    global: &Global,
    upstream: &str,
    change: ServerChange,
    force: bool,
    drain_timeout: std::time::Duration,
    target: &Target,
) -> Result<i32> {
    let (live, state, _lock) = open_locked(target).await?;
    let config = live.load_config().await?;
    let up = config.upstream(upstream)?;
    let (name, drain) = match &change {
        ServerChange::Drain { server } => (server, true),
        ServerChange::Restore { server } | ServerChange::Replace { server, .. } => (server, false),
    };
    let address =
        crate::rollout::prepare::select_servers(&up, std::slice::from_ref(name))?.remove(0);
    let change = if drain {
        ServerChange::Drain {
            server: address.clone(),
        }
    } else {
        ServerChange::Restore {
            server: address.clone(),
        }
    };
    let mut after = config.clone();
    crate::plan::planner::apply_changes_with(
        &mut after,
        upstream,
        std::slice::from_ref(&change),
        force,
    )?;
    let diff: String = after
        .changes_since(&config)
        .iter()
        .map(|c| crate::diff::unified(&c.path.display().to_string(), &c.before, &c.after, false))
        .collect();
    let mut steps = vec![
        Step {
            index: 1,
            action: Action::Edit {
                upstream: upstream.into(),
                changes: vec![change],
                force,
            },
            diff: Some(diff),
        },
        Step {
            index: 2,
            action: Action::Reload,
            diff: None,
        },
    ];
    if drain {
        steps.push(Step {
            index: 3,
            action: Action::WaitDrained {
                timeout: drain_timeout,
            },
            diff: None,
        });
    }
    let policy = UpdateConfig::engine_defaults();
    let plan = Plan {
        upstream: upstream.into(),
        targets: Vec::new(),
        policy: policy.clone(),
        timeouts: Timeouts {
            drain: drain_timeout,
            ..Timeouts::DEFAULT
        },
        steps,
    };
    let record = ServerRecord {
        server: address,
        container: String::new(),
        old_spec: serde_json::Value::Null,
        new_spec: serde_json::Value::Null,
        state: ServerState::Pending,
        new_container: None,
        healthy_at: None,
        error: None,
        replacement: None,
    };
    let kind = if drain { "drain" } else { "undrain" };
    let mut rollout = new_rollout(
        state.next_revision()?,
        kind,
        None,
        &command_line(),
        &live.nginx.name,
        plan,
        policy,
        vec![record],
    );
    rollout.plan.policy.monitor.value = std::time::Duration::ZERO;
    let confirm = Confirm {
        dry_run: false,
        interactive: false,
        yes: true,
    };
    let mut observer = observer(global, &confirm)?;
    let mut runner = Runner {
        live: &live,
        state: &state,
        observer: &mut observer,
        cancel: signals()?,
        interactive: false,
    };
    runner.start(rollout).await
}

async fn status(global: &Global, upstream: Option<&str>, target: &Target) -> Result<i32> {
    let live = connect(target).await?;
    let config = live.load_config().await?;
    let root = live.state_root(target.state_dir.as_deref()).await?;
    let unfinished = if root.exists() {
        StateDir::open(&root)?.unfinished(upstream)?
    } else {
        None
    };
    let mut rows = Vec::new();
    for up in config
        .upstreams()
        .into_iter()
        .filter(|u| upstream.is_none_or(|n| u.name == n))
    {
        for s in &up.servers {
            let state = if s.is_down() {
                "down"
            } else if s.is_backup() {
                "backup"
            } else {
                "up"
            };
            let (container, image, health, started) =
                match resolve_backend(&live.docker, &live.nginx.networks, &s.host).await {
                    Ok(b) => {
                        let info = live.docker.inspect_container(&b.id, None).await.ok();
                        let st = info
                            .as_ref()
                            .and_then(|i| i.state.clone())
                            .unwrap_or_default();
                        let health = st
                            .health
                            .and_then(|h| h.status)
                            .map(|h| h.to_string())
                            .unwrap_or_else(|| {
                                if st.running == Some(true) {
                                    "running".into()
                                } else {
                                    "stopped".into()
                                }
                            });
                        (b.name, b.image, health, st.started_at.unwrap_or_default())
                    }
                    Err(_) => ("-".into(), "-".into(), "-".into(), "-".into()),
                };
            let rollout = unfinished.as_ref().and_then(|r| {
                r.servers
                    .iter()
                    .find(|rec| {
                        rec.server == s.address
                            && rec.state != ServerState::Pending
                            && rec.state != ServerState::Done
                    })
                    .map(|rec| {
                        format!(
                            "rev {} {:?}: {}",
                            r.revision,
                            r.status,
                            serde_json::to_value(rec.state)
                                .ok()
                                .and_then(|v| v.as_str().map(String::from))
                                .unwrap_or_default()
                        )
                    })
            });
            rows.push(serde_json::json!({
                "upstream": up.name, "server": s.address, "state": state, "container": container,
                "image": image, "health": health, "started": started, "file": format!("{}:{}", s.file.display(), s.line),
                "rollout": rollout,
            }));
        }
    }
    if global.output == Output::Json {
        println!(
            "{}",
            serde_json::json!({ "servers": rows, "unfinished": unfinished })
        );
        return Ok(exit::DONE);
    }
    const COLUMNS: [&str; 8] = [
        "upstream",
        "server",
        "state",
        "container",
        "image",
        "health",
        "started",
        "rollout",
    ];
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header(COLUMNS);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    for r in &rows {
        table.add_row(COLUMNS.map(|k| text(&r[k])));
    }
    println!("{table}");
    if let Some(r) = &unfinished {
        println!(
            "revision {} ({} of upstream {}) is {:?}{}: `nginx-rollout resume` continues it, `nginx-rollout rollback` undoes it",
            r.revision,
            r.kind,
            r.upstream,
            r.status,
            r.reason
                .as_ref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        );
    }
    Ok(exit::DONE)
}

async fn history(global: &Global, upstream: Option<&str>, target: &Target) -> Result<i32> {
    let live = connect(target).await?;
    let root = live.state_root(target.state_dir.as_deref()).await?;
    let history = if root.exists() {
        StateDir::open(Path::new(&root))?.history()?
    } else {
        Vec::new()
    };
    let rows: Vec<_> = history
        .iter()
        .filter(|r| upstream.is_none_or(|u| r.upstream == u))
        .collect();
    if global.output == Output::Json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"revision": r.revision, "kind": r.kind, "status": r.status, "started_at": r.started_at, "upstream": r.upstream, "command": r.command, "undoes": r.undoes}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(exit::DONE);
    }
    let mut table = Table::new();
    table.load_style(UTF8_BORDERS_ONLY).set_header(vec![
        "rev", "kind", "status", "started", "upstream", "command",
    ]);
    for r in rows {
        let status = serde_json::to_value(r.status)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = match r.undoes {
            Some(n) => format!("{} of {n}", r.kind),
            None => r.kind.clone(),
        };
        table.add_row(vec![
            r.revision.to_string(),
            kind,
            status,
            r.started_at.clone(),
            r.upstream.clone(),
            r.command.clone(),
        ]);
    }
    println!("{table}");
    Ok(exit::DONE)
}
