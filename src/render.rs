//! Rendering tera templates of upstream blocks or whole configs.
use anyhow::{Context as _, bail};
use std::path::Path;

use crate::conf::read_regular_text;

/// Renders `template` with the values in `values` (TOML for `.toml`, JSON
/// for `.json`). Errors name the file and tera's reason.
pub fn render_file(template: &Path, values: &Path) -> anyhow::Result<String> {
    let text = read_regular_text(values)
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
    let source = read_regular_text(template)
        .with_context(|| format!("cannot read template {}", template.display()))?;
    let name = template.display().to_string();
    check_nesting(&source).with_context(|| format!("in template {name}"))?;
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_template(&name, &source)
        .map_err(chain)
        .with_context(|| format!("in template {name}"))?;
    tera.render(&name, &ctx)
        .map_err(chain)
        .with_context(|| format!("rendering {name} with {}", values.display()))
}

/// Deepest nesting of tags (`{% if %}` in `{% for %}` …) and of brackets
/// within one tag that a template may have: tera's parser recurses, and a
/// template nested thousands deep would overflow the stack.
pub const MAX_TEMPLATE_DEPTH: usize = 64;

/// Refuses a template nested deeper than [`MAX_TEMPLATE_DEPTH`], naming the
/// line, before tera parses it.
pub fn check_nesting(source: &str) -> anyhow::Result<()> {
    let too_deep = |at: usize, what: &str| {
        let line = 1 + source[..at].matches('\n').count();
        bail!(
            "line {line}: {what} nested deeper than {MAX_TEMPLATE_DEPTH} levels (nginx-rollout's limit)"
        )
    };
    let mut depth = 0usize;
    let mut rest = 0;
    while let Some(open) = source[rest..].find(['{']).map(|i| rest + i) {
        let kind = source[open + 1..].chars().next();
        let close = match kind {
            Some('%') => "%}",
            Some('{') => "}}",
            Some('#') => "#}",
            _ => {
                rest = open + 1;
                continue;
            }
        };
        let body_start = open + 2;
        let end = source[body_start..]
            .find(close)
            .map_or(source.len(), |i| body_start + i);
        let body = &source[body_start..end];
        rest = (end + 2).min(source.len());
        if kind == Some('#') {
            continue;
        }
        let mut brackets = 0usize;
        for (i, c) in body.char_indices() {
            match c {
                '(' | '[' | '{' => {
                    brackets += 1;
                    if brackets > MAX_TEMPLATE_DEPTH {
                        return too_deep(body_start + i, "brackets");
                    }
                }
                ')' | ']' | '}' => brackets = brackets.saturating_sub(1),
                _ => {}
            }
        }
        if kind == Some('%') {
            let word = body.trim_start_matches(['-', ' ', '\t', '\n', '\r']);
            let word = word
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("");
            if matches!(word, "if" | "for" | "block" | "macro" | "filter" | "raw") {
                depth += 1;
                if depth > MAX_TEMPLATE_DEPTH {
                    return too_deep(open, "tags");
                }
            } else if word.starts_with("end") {
                depth = depth.saturating_sub(1);
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_templates_are_refused_before_tera_parses_them() {
        let deep = format!(
            "{}x{}",
            "{% if a %}".repeat(20_000),
            "{% endif %}".repeat(20_000)
        );
        let e = check_nesting(&deep).unwrap_err().to_string();
        assert!(e.contains("tags nested deeper than 64"), "{e}");
        let brackets = format!("{{{{ {}1{} }}}}", "(".repeat(20_000), ")".repeat(20_000));
        let e = check_nesting(&brackets).unwrap_err().to_string();
        assert!(e.contains("brackets nested deeper"), "{e}");
        let fine = format!("{}x{}", "{% if a %}".repeat(64), "{% endif %}".repeat(64));
        check_nesting(&fine).unwrap();
        check_nesting("{% for s in servers %}{% if s.down %}{{ s.name }}{% endif %}{% endfor %}")
            .unwrap();
    }
}
