//! `conf drain`, `undrain`, `set-weight`, `add-server`, `remove-server`,
//! `replace-address`: one server line edited in place, or its diff shown.
use super::Target;
use crate::conf::{ConfigSet, Edit, EditOptions, visible};
use crate::diff;
use crate::rollout::{FileEditRequest, edit_file};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `drain`, `undrain` and `remove-server`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The file and its main configuration.
    #[command(flatten)]
    target: Target,
    /// Upstream name.
    upstream: String,
    /// Server address as written (`app2:3000`) or its unique host (`app2`).
    server: String,
    /// Print the diff and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the config's lock is (shared with live commands); default: see `deploy --help`.
    #[arg(long, env = "NGINX_ROLLOUT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Allow taking out the last live server (a full outage).
    #[arg(long)]
    force: bool,
}

/// Arguments of `set-weight`.
#[derive(Debug, Args)]
pub struct SetWeightArgs {
    /// The file and its main configuration.
    #[command(flatten)]
    target: Target,
    /// Upstream name.
    upstream: String,
    /// Server address as written (`app2:3000`) or its unique host (`app2`).
    server: String,
    /// The new weight (1 or more).
    weight: u32,
    /// Print the diff and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the config's lock is (shared with live commands); default: see `deploy --help`.
    #[arg(long, env = "NGINX_ROLLOUT_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

/// Arguments of `add-server`.
#[derive(Debug, Args)]
pub struct AddServerArgs {
    /// The file and its main configuration.
    #[command(flatten)]
    target: Target,
    /// Upstream name.
    upstream: String,
    /// The new server's address (`app3:3000`, `10.0.0.3`, `[::1]:80`, `unix:/run/app.sock`).
    address: String,
    /// Its parameters (`weight=2 max_fails=3 backup` …).
    params: Vec<String>,
    /// Print the diff and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the config's lock is (shared with live commands); default: see `deploy --help`.
    #[arg(long, env = "NGINX_ROLLOUT_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

/// Arguments of `replace-address`.
#[derive(Debug, Args)]
pub struct ReplaceAddressArgs {
    /// The file and its main configuration.
    #[command(flatten)]
    target: Target,
    /// Upstream name.
    upstream: String,
    /// Server address as written (`app2:3000`) or its unique host (`app2`).
    server: String,
    /// Its new address; the parameters stay.
    address: String,
    /// Print the diff and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the config's lock is (shared with live commands); default: see `deploy --help`.
    #[arg(long, env = "NGINX_ROLLOUT_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

/// The edits that take a server already there and no value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `down` added.
    Drain,
    /// `down` removed.
    Undrain,
    /// The line removed.
    Remove,
}

/// One edit as asked on the command line.
struct Asked<'a> {
    target: &'a Target,
    upstream: &'a str,
    server: &'a str,
    edit: Edit,
    dry_run: bool,
    force: bool,
    state_dir: &'a Option<PathBuf>,
}

/// `drain`, `undrain`, `remove-server`.
pub fn server(a: EditArgs, verbose: bool, kind: Kind) -> anyhow::Result<i32> {
    let edit = match kind {
        Kind::Drain => Edit::MarkDown,
        Kind::Undrain => Edit::Restore,
        Kind::Remove => Edit::Remove,
    };
    run(
        Asked {
            target: &a.target,
            upstream: &a.upstream,
            server: &a.server,
            edit,
            dry_run: a.dry_run,
            force: a.force,
            state_dir: &a.state_dir,
        },
        verbose,
    )
}

/// `set-weight`.
pub fn set_weight(a: SetWeightArgs, verbose: bool) -> anyhow::Result<i32> {
    run(
        Asked {
            target: &a.target,
            upstream: &a.upstream,
            server: &a.server,
            edit: Edit::SetWeight(a.weight),
            dry_run: a.dry_run,
            force: false,
            state_dir: &a.state_dir,
        },
        verbose,
    )
}

/// `add-server`.
pub fn add_server(a: AddServerArgs, verbose: bool) -> anyhow::Result<i32> {
    run(
        Asked {
            target: &a.target,
            upstream: &a.upstream,
            server: &a.address,
            edit: Edit::Add {
                address: a.address.clone(),
                params: a.params.clone(),
            },
            dry_run: a.dry_run,
            force: false,
            state_dir: &a.state_dir,
        },
        verbose,
    )
}

/// `replace-address`.
pub fn replace_address(a: ReplaceAddressArgs, verbose: bool) -> anyhow::Result<i32> {
    run(
        Asked {
            target: &a.target,
            upstream: &a.upstream,
            server: &a.server,
            edit: Edit::ReplaceAddress(a.address.clone()),
            dry_run: a.dry_run,
            force: false,
            state_dir: &a.state_dir,
        },
        verbose,
    )
}

/// What an edit did, in words: `drained app2`, or why nothing changed
/// (`set`: the configuration as written).
fn said(a: &Asked, changed: bool, set: &ConfigSet) -> String {
    let (s, u) = (visible(a.server), visible(a.upstream));
    match (&a.edit, changed) {
        (Edit::MarkDown, true) => format!("drained {s} in upstream {u}"),
        (Edit::MarkDown, false) => format!("{s} in upstream {u} already drained"),
        (Edit::Restore, true) => format!("restored {s} in upstream {u}"),
        (Edit::Restore, false) => format!("{s} in upstream {u} already restored"),
        (Edit::SetWeight(w), true) => format!("set weight={w} on {s} in upstream {u}"),
        (Edit::SetWeight(w), false) => format!("{s} in upstream {u} already has weight={w}"),
        (Edit::Add { .. }, true) => format!("added {s} to upstream {u}"),
        (Edit::Add { .. }, false) => format!("upstream {u} already has {s}"),
        (Edit::Remove, true) => format!("removed {s} from upstream {u}"),
        (Edit::Remove, false) => {
            let servers: Vec<String> = set
                .upstream(a.upstream)
                .map(|up| up.servers.into_iter().map(|s| s.address).collect())
                .unwrap_or_default();
            format!(
                "no server \"{s}\" in upstream {u} (servers: {}): nothing to remove",
                visible(&servers.join(", "))
            )
        }
        (Edit::ReplaceAddress(new), true) => {
            format!("replaced {s} by {} in upstream {u}", visible(new))
        }
        (Edit::ReplaceAddress(new), false) => {
            format!("upstream {u} already has {}", visible(new))
        }
        // The rollout's own edits (pinned lines, a ramp's weights cleared, an
        // upstream put back) have no command here.
        (
            Edit::Pin(_)
            | Edit::Unpin { .. }
            | Edit::AddPinned(_)
            | Edit::Bury
            | Edit::ClearWeight
            | Edit::Reweight { .. }
            | Edit::ReplaceBody { .. },
            changed,
        ) => {
            if changed {
                format!("edited {s} in upstream {u}")
            } else {
                format!("{s} in upstream {u} unchanged")
            }
        }
    }
}

/// The server's name after the edit, to say where its line is.
fn named_after<'a>(a: &'a Asked) -> &'a str {
    match &a.edit {
        Edit::ReplaceAddress(new) => new,
        _ => a.server,
    }
}

fn run(a: Asked, verbose: bool) -> anyhow::Result<i32> {
    let before = a.target.locate(verbose)?.set;
    if a.dry_run {
        let mut after = before.clone();
        after.apply(
            a.upstream,
            a.server,
            a.edit.clone(),
            EditOptions { force: a.force },
        )?;
        let color = diff::color_stdout();
        let mut out = crate::cli::output::stdout();
        for c in &after.changes_since(&before) {
            let label = c.path.display().to_string();
            write!(out, "{}", diff::unified(&label, &c.before, &c.after, color))?;
        }
        return Ok(0);
    }
    let edited = edit_file(&FileEditRequest {
        file: a.target.file.clone(),
        prefix: a.target.prefix.clone(),
        conf: a.target.conf.clone(),
        upstream: a.upstream.to_string(),
        server: a.server.to_string(),
        edit: a.edit.clone(),
        force: a.force,
        state_dir: a.state_dir.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })?;
    for notice in &edited.notices {
        errln!("nginx-rollout: {notice}");
    }
    let at = edited.set.upstream(a.upstream).map_or_else(
        |_| String::new(),
        |up| {
            up.server(named_after(&a)).map_or_else(
                |_| String::new(),
                |s| visible(&format!(" ({})", s.location())).into_owned(),
            )
        },
    );
    errln!(
        "nginx-rollout: {}{at}",
        said(&a, edited.changed, &edited.set)
    );
    Ok(0)
}
