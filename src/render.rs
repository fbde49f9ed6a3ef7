//! Rendering tera templates of upstream blocks or whole configs.
use anyhow::{Context as _, bail};
use std::path::Path;

/// Renders `template` with the values in `values` (TOML for `.toml`, JSON
/// for `.json`). Errors name the file and tera's reason.
pub fn render_file(template: &Path, values: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(values)
        .with_context(|| format!("cannot read values {}", values.display()))?;
    let ctx = match values.extension().and_then(|e| e.to_str()) {
        Some("toml") => {
            let v: toml::Value =
                toml::from_str(&text).with_context(|| format!("in {}", values.display()))?;
            tera::Context::from_serialize(v)
        }
        Some("json") => {
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("in {}", values.display()))?;
            tera::Context::from_serialize(v)
        }
        _ => bail!(
            "values file {} must end in .toml or .json",
            values.display()
        ),
    }
    .with_context(|| format!("values in {} must be a table", values.display()))?;
    let source = std::fs::read_to_string(template)
        .with_context(|| format!("cannot read template {}", template.display()))?;
    let name = template.display().to_string();
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_template(&name, &source)
        .map_err(chain)
        .with_context(|| format!("in template {name}"))?;
    tera.render(&name, &ctx)
        .map_err(chain)
        .with_context(|| format!("rendering {name} with {}", values.display()))
}

/// Flattens tera's error chain (its Display shows only the outer error).
fn chain(e: tera::Error) -> anyhow::Error {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    anyhow::anyhow!(msg)
}
