//! `nginx-rollout conf …`: check, print, parse, upstreams, drain, undrain.
use crate::conf::{
    ConfigSet, CrossplaneOptions, Doc, Edit, EditOptions, HostFs, payload, write_changes,
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
        /// Pretty-print with this many spaces of indentation.
        #[arg(long)]
        indent: Option<usize>,
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
}

/// Runs a `conf` subcommand; returns the exit code.
pub fn exec(cmd: ConfCommand) -> anyhow::Result<i32> {
    match cmd {
        ConfCommand::Check { file } => {
            let set = ConfigSet::load(&file, &HostFs)?;
            eprintln!(
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
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
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
                    let ind = " ".repeat(n);
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
                    table.add_row([
                        u.name.clone(),
                        s.address.clone(),
                        s.mode().to_string(),
                        params.join(" "),
                        format!("{}:{}", s.file.display(), s.line),
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
    let before = ConfigSet::load(&a.file, &HostFs)?;
    let mut after = before.clone();
    let changed = after.apply(&a.upstream, &a.server, edit, EditOptions { force: a.force })?;
    let changes = after.changes_since(&before);
    if a.dry_run {
        let color = diff::color_stdout();
        let mut out = std::io::stdout().lock();
        for c in &changes {
            write!(
                out,
                "{}",
                diff::unified(&label(&c.path), &c.before, &c.after, color)
            )?;
        }
        return Ok(0);
    }
    write_changes(&changes)?;
    let up = after.upstream(&a.upstream)?;
    let s = up.server(&a.server).map_or_else(
        |_| String::new(),
        |s| format!(" ({}:{})", s.file.display(), s.line),
    );
    if changed {
        eprintln!(
            "nginx-rollout: {done} {} in upstream {}{s}",
            a.server, a.upstream
        );
    } else {
        eprintln!(
            "nginx-rollout: {} in upstream {} already {done}{s}",
            a.server, a.upstream
        );
    }
    Ok(0)
}

fn label(p: &Path) -> String {
    p.display().to_string()
}
