//! `nginx-rollout conf …`: check, print, parse, upstreams, drain, undrain.
use crate::conf::{
    ConfigSet, CrossplaneOptions, Doc, Edit, EditOptions, Fs, HostFs, payload, visible,
};
use crate::diff;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The `conf` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfCommand {
    /// Parse FILE and everything it includes; exit 1 with the place of the first error.
    Check {
        /// Main configuration file.
        file: PathBuf,
    },
    /// Write the parsed FILE back to stdout, byte for byte.
    Print {
        /// Configuration file.
        file: PathBuf,
    },
    /// Print FILE as JSON in crossplane's `parse` format.
    Parse {
        /// Main configuration file.
        file: PathBuf,
        /// Include comments as `#` directives.
        #[arg(long)]
        include_comments: bool,
        /// Do not follow `include` directives.
        #[arg(long)]
        single: bool,
        /// Pretty-print with this many spaces of indentation (at most 64).
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=64))]
        indent: Option<u8>,
    },
    /// List every upstream, its servers, their parameters and state.
    Upstreams {
        /// Main configuration file.
        file: PathBuf,
        /// Output JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark SERVER of UPSTREAM `down`, in place.
    Drain(EditArgs),
    /// Remove the `down` mark of SERVER of UPSTREAM, in place.
    Undrain(EditArgs),
}

/// Arguments of `drain` and `undrain`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Main configuration file.
    file: PathBuf,
    /// Upstream name.
    upstream: String,
    /// Server address as written (`app2:3000`) or its unique host (`app2`).
    server: String,
    /// Print the diff and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Allow draining the last live server (a full outage).
    #[arg(long)]
    force: bool,
    /// Where the config's lock is (shared with live commands); default: see `deploy --help`.
    #[arg(long, env = "NGINX_ROLLOUT_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

/// Runs a `conf` subcommand; returns the exit code.
pub fn exec(cmd: ConfCommand) -> anyhow::Result<i32> {
    match cmd {
        ConfCommand::Check { file } => {
            let set = ConfigSet::load(&file, &HostFs)?;
            errln!(
                "nginx-rollout: configuration file {} syntax is ok ({} file{}, {} upstream{})",
                file.display(),
                set.files().count(),
                plural(set.files().count()),
                set.upstreams().len(),
                plural(set.upstreams().len()),
            );
            Ok(0)
        }
        ConfCommand::Print { file } => {
            let bytes = HostFs
                .read(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc = Doc::parse_file(&file, bytes)?;
            let mut out = std::io::stdout().lock();
            out.write_all(doc.bytes())?;
            out.flush()?;
            Ok(0)
        }
        ConfCommand::Parse {
            file,
            include_comments,
            single,
            indent,
        } => {
            let opts = CrossplaneOptions {
                include_comments,
                single_file: single,
            };
            let payload = payload(&file, &HostFs, opts);
            let mut out = std::io::stdout().lock();
            match indent {
                Some(n) => {
                    let ind = " ".repeat(usize::from(n));
                    let fmt = serde_json::ser::PrettyFormatter::with_indent(ind.as_bytes());
                    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
                    serde::Serialize::serialize(&payload, &mut ser)?;
                }
                None => serde_json::to_writer(&mut out, &payload)?,
            }
            writeln!(out)?;
            Ok(if payload.status == "ok" { 0 } else { 1 })
        }
        ConfCommand::Upstreams { file, json } => {
            let set = ConfigSet::load(&file, &HostFs)?;
            let ups = set.upstreams();
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &ups)?;
                writeln!(out)?;
                return Ok(0);
            }
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::NOTHING);
            table.set_header(["UPSTREAM", "SERVER", "STATE", "PARAMETERS", "WHERE"]);
            for u in &ups {
                for s in &u.servers {
                    let params: Vec<String> = s.params.iter().map(|p| p.to_string()).collect();
                    let place = format!("{}:{}", s.file.display(), s.line);
                    table.add_row([
                        visible(&u.name).into_owned(),
                        visible(&s.address).into_owned(),
                        s.mode().to_string(),
                        visible(&params.join(" ")).into_owned(),
                        visible(&place).into_owned(),
                    ]);
                }
            }
            writeln!(out, "{table}")?;
            Ok(0)
        }
        ConfCommand::Drain(a) => edit(a, Edit::MarkDown, "drained"),
        ConfCommand::Undrain(a) => edit(a, Edit::Restore, "restored"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn edit(a: EditArgs, edit: Edit, done: &str) -> anyhow::Result<i32> {
    if a.dry_run {
        let before = ConfigSet::load(&a.file, &HostFs)?;
        let mut after = before.clone();
        after.apply(&a.upstream, &a.server, edit, EditOptions { force: a.force })?;
        let color = diff::color_stdout();
        let mut out = std::io::stdout().lock();
        for c in &after.changes_since(&before) {
            write!(
                out,
                "{}",
                diff::unified(&label(&c.path), &c.before, &c.after, color)
            )?;
        }
        return Ok(0);
    }
    let edited = crate::rollout::edit_file(&crate::rollout::FileEditRequest {
        file: a.file.clone(),
        upstream: a.upstream.clone(),
        server: a.server.clone(),
        edit,
        force: a.force,
        state_dir: a.state_dir.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })?;
    for notice in &edited.notices {
        errln!("nginx-rollout: {notice}");
    }
    let s = edited.place.map_or_else(String::new, |p| format!(" ({p})"));
    let (server, upstream) = (visible(&a.server), visible(&a.upstream));
    if edited.changed {
        errln!("nginx-rollout: {done} {server} in upstream {upstream}{s}");
    } else {
        errln!("nginx-rollout: {server} in upstream {upstream} already {done}{s}");
    }
    Ok(0)
}

fn label(p: &Path) -> String {
    p.display().to_string()
}
