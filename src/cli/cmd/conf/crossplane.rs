//! `conf parse`, `conf lex`, `conf build`: crossplane's JSON verbs.
use crate::conf::{
    CrossplaneBuildOptions, CrossplaneOptions, CrossplanePayload, CrossplaneStatus, Doc, Fs,
    HostFs, crossplane_build, crossplane_lex, payload, read_regular,
};
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use std::io::{Read, Write};
use std::path::PathBuf;

/// Arguments of `conf parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Main configuration file (relative includes are taken from its directory).
    file: PathBuf,
    /// Include comments that stand on their own line as `#` directives.
    #[arg(long)]
    include_comments: bool,
    /// Do not follow `include` directives.
    #[arg(long)]
    single: bool,
    /// Pretty-print with this many spaces of indentation (at most 64).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=64))]
    indent: Option<u8>,
}

/// Arguments of `conf lex`.
#[derive(Debug, Args)]
pub struct LexArgs {
    /// Configuration file.
    file: PathBuf,
    /// Each token with its line: `["listen", 3]`.
    #[arg(short = 'n', long)]
    line_numbers: bool,
    /// Pretty-print with this many spaces of indentation (at most 64).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=64))]
    indent: Option<u8>,
}

/// Arguments of `conf build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The JSON payload (`-` for stdin).
    payload: PathBuf,
    /// Spaces per level (at most 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(0..=64))]
    indent: u8,
    /// Indent with tabs.
    #[arg(long, conflicts_with = "indent")]
    tabs: bool,
}

/// The most `conf build` reads from stdin.
const MAX_PAYLOAD: u64 = 256 << 20;

fn write_json(value: &impl Serialize, indent: Option<u8>) -> anyhow::Result<()> {
    let mut out = crate::cli::output::stdout();
    match indent {
        Some(n) => {
            let ind = " ".repeat(usize::from(n));
            let fmt = serde_json::ser::PrettyFormatter::with_indent(ind.as_bytes());
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            value.serialize(&mut ser)?;
        }
        None => serde_json::to_writer(&mut out, value)?,
    }
    writeln!(out)?;
    Ok(())
}

/// `conf parse`.
pub fn parse(a: ParseArgs) -> anyhow::Result<i32> {
    let opts = CrossplaneOptions {
        include_comments: a.include_comments,
        single_file: a.single,
    };
    let payload = payload(&a.file, &HostFs, opts);
    write_json(&payload, a.indent)?;
    Ok(match payload.status {
        CrossplaneStatus::Ok => 0,
        CrossplaneStatus::Failed => 1,
    })
}

/// `conf lex`.
pub fn lex(a: LexArgs) -> anyhow::Result<i32> {
    let bytes = HostFs
        .read(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let doc = Doc::parse_file(&a.file, bytes)?;
    let tokens = crossplane_lex(doc.bytes())
        .map_err(|e| anyhow::anyhow!("{} in {}:{}", e.message, a.file.display(), e.line))?;
    if a.line_numbers {
        let v: Vec<(&str, usize)> = tokens.iter().map(|t| (t.text.as_str(), t.line)).collect();
        write_json(&v, a.indent)?;
    } else {
        let v: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        write_json(&v, a.indent)?;
    }
    Ok(0)
}

/// `conf build`: one file's text; several files each after a `# FILE` line,
/// as `crossplane build --stdout` prints them.
pub fn build(a: BuildArgs) -> anyhow::Result<i32> {
    let name = a.payload.display().to_string();
    let bytes = if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(MAX_PAYLOAD + 1)
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        if buf.len() as u64 > MAX_PAYLOAD {
            bail!(
                "the payload on stdin is larger than {} MiB",
                MAX_PAYLOAD >> 20
            );
        }
        buf
    } else {
        read_regular(&a.payload).with_context(|| format!("cannot read {name}"))?
    };
    let payload: CrossplanePayload = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{e} in {name}:{}:{} (expected the JSON of `conf parse`)",
            e.line(),
            e.column()
        )
    })?;
    let opts = CrossplaneBuildOptions {
        indent: usize::from(a.indent),
        tabs: a.tabs,
    };
    let mut out = crate::cli::output::stdout();
    match payload.config.as_slice() {
        [one] => out.write_all(crossplane_build(&one.parsed, opts).as_bytes())?,
        all => {
            for c in all {
                write!(out, "# {}\n{}\n", c.file, crossplane_build(&c.parsed, opts))?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}
