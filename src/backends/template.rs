//! Engine-mode values (`--image`, `--env`, `--label`) are tera templates
//! over the server being deployed.
use anyhow::{Result, anyhow};
use serde::Serialize;

/// What a value template may refer to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateVars {
    /// The upstream `server` address, e.g. `app1:3000`.
    pub server: String,
    /// The compose service name, or the container name when not from compose.
    pub service: String,
    /// The container name being replaced.
    pub container: String,
    /// Position of the server in the upstream, from 0.
    pub index: usize,
}

/// Renders `tpl` with `vars`, e.g. `MESSAGE={{service}},v2` → `MESSAGE=app1,v2`.
pub fn render_value(tpl: &str, vars: &TemplateVars) -> Result<String> {
    let context = tera::Context::from_serialize(vars)
        .map_err(|e| anyhow!("template `{tpl}`: {}", chain(&e)))?;
    tera::Tera::one_off(tpl, &context, false)
        .map_err(|e| anyhow!("template `{tpl}`: {}", chain(&e)))
}

/// Tera puts the useful part of an error in its sources.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars {
        TemplateVars {
            server: "app1:3000".into(),
            service: "app1".into(),
            container: "seed_app1_1".into(),
            index: 0,
        }
    }

    #[test]
    fn renders_every_variable() {
        let out = render_value(
            "MESSAGE={{service}},v2 {{server}} {{container}} #{{index}}",
            &vars(),
        )
        .unwrap();
        assert_eq!(out, "MESSAGE=app1,v2 app1:3000 seed_app1_1 #0");
    }

    #[test]
    fn plain_values_pass_through_unescaped() {
        assert_eq!(render_value("a<b>&c", &vars()).unwrap(), "a<b>&c");
    }

    #[test]
    fn unknown_variable_is_an_error_naming_the_template() {
        let err = render_value("X={{nope}}", &vars()).unwrap_err().to_string();
        assert!(err.contains("X={{nope}}"), "{err}");
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn syntax_error_is_an_error() {
        assert!(render_value("{{ service", &vars()).is_err());
    }
}
