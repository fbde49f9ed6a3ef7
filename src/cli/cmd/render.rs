//! `nginx-rollout render TEMPLATE --values FILE [-o OUT]`.
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The tera template.
    template: PathBuf,
    /// Values: a `.toml` or `.json` file.
    #[arg(long)]
    values: PathBuf,
    /// Write here (in place, same inode, when it exists) instead of stdout.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    out: Option<PathBuf>,
}

/// Renders; exit code 0.
pub fn exec(args: RenderArgs) -> anyhow::Result<i32> {
    let text = crate::render::render_file(&args.template, &args.values)?;
    match &args.out {
        Some(out) if out.exists() => crate::conf::write_in_place(out, text.as_bytes())
            .with_context(|| format!("cannot write {}", out.display()))?,
        Some(out) => {
            std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?
        }
        None => crate::cli::output::stdout().write_all(text.as_bytes())?,
    }
    Ok(0)
}
