//! `conf check`, `conf print`, `conf upstreams`.
use super::plural;
use crate::conf::{Doc, Fs, HostFs, Located, visible};
use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// `conf check`: the configuration was loaded; say what was read.
pub fn check(located: &Located, file: &Path) -> anyhow::Result<i32> {
    let set = &located.set;
    let (files, ups, unread) = (
        set.files().count(),
        set.upstreams().len(),
        set.unread_includes().len(),
    );
    let skipped = match unread {
        0 => String::new(),
        n => format!("; {n} include{} not read", plural(n)),
    };
    errln!(
        "nginx-rollout: configuration file {} syntax is ok ({files} file{}, {ups} upstream{}{skipped})",
        file.display(),
        plural(files),
        plural(ups),
    );
    Ok(0)
}

/// `conf print`: the file's bytes, through the parser.
pub fn print(file: &Path) -> anyhow::Result<i32> {
    let bytes = HostFs
        .read(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let doc = Doc::parse_file(file, bytes)?;
    let mut out = crate::cli::output::stdout();
    out.write_all(doc.bytes())?;
    out.flush()?;
    Ok(0)
}

/// `conf upstreams`: a table, or JSON.
pub fn upstreams(located: &Located, json: bool) -> anyhow::Result<i32> {
    let ups = located.set.upstreams();
    let mut out = crate::cli::output::stdout();
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
                visible(&u.name).into_owned(),
                visible(&s.address).into_owned(),
                s.mode().to_string(),
                visible(&params.join(" ")).into_owned(),
                visible(&s.location()).into_owned(),
            ]);
        }
    }
    writeln!(out, "{table}")?;
    Ok(0)
}
