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
///
/// Only `vars` are reachable: tera's `get_env` is turned off, so a template
/// cannot copy the operator's environment into a container (and the
/// journal); a value from it is passed explicitly (`--env K="$V"`). A literal
/// `{{` is written `{{ "{{" }}`, or the value put in `{% raw %}…{% endraw %}`.
pub fn render_value(tpl: &str, vars: &TemplateVars) -> Result<String> {
    let fail = |e: &(dyn std::error::Error + 'static)| anyhow!("template `{tpl}`: {}", chain(e));
    crate::render::check_nesting(tpl).map_err(|e| anyhow!("template `{tpl}`: {e}"))?;
    let context = tera::Context::from_serialize(vars).map_err(|e| fail(&e))?;
    let mut tera = tera::Tera::default();
    tera.register_function("get_env", |_: &std::collections::HashMap<String, tera::Value>| {
        Err::<tera::Value, _>(tera::Error::msg(
            "get_env is turned off in --image/--env/--label values: pass the value itself (--env KEY=\"$VAR\")",
        ))
    });
    tera.add_raw_template("value", tpl).map_err(|e| fail(&e))?;
    tera.render("value", &context).map_err(|e| fail(&e))
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
    fn the_operators_environment_is_out_of_reach() {
        // SAFETY: tests of this module do not read the environment concurrently.
        unsafe { std::env::set_var("NGINX_ROLLOUT_TEST_SECRET", "hunter2") };
        let err = render_value("X={{ get_env(name='NGINX_ROLLOUT_TEST_SECRET') }}", &vars())
            .unwrap_err()
            .to_string();
        assert!(err.contains("get_env is turned off"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_literal_double_brace_has_an_escape() {
        assert_eq!(render_value("{{ \"{{\" }}x}}", &vars()).unwrap(), "{{x}}");
        assert_eq!(
            render_value("{% raw %}{{service}}{% endraw %}", &vars()).unwrap(),
            "{{service}}"
        );
    }

    #[test]
    fn a_deeply_nested_value_is_refused_not_a_stack_overflow() {
        let deep = format!(
            "{}x{}",
            "{% if 1 %}".repeat(20_000),
            "{% endif %}".repeat(20_000)
        );
        let err = render_value(&deep, &vars()).unwrap_err().to_string();
        assert!(
            err.contains("nested deeper"),
            "{} bytes of error",
            err.len()
        );
    }

    #[test]
    fn syntax_error_is_an_error() {
        assert!(render_value("{{ service", &vars()).is_err());
    }
}
