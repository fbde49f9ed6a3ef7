//! A compose service's own lifecycle hooks (`post_start`, `pre_stop`;
//! compose v2.30+) as `config` prints them, typed into the plan's hook
//! commands.
use anyhow::{Result, anyhow, bail};

use crate::plan::{HookCommand, Source, split_command};

/// Types one hook list of a service; `at` is its key path (`services.app1.post_start`).
pub(super) fn parse_hooks(
    at: &str,
    list: Option<&serde_norway::Value>,
) -> Result<Vec<HookCommand>> {
    use serde_norway::Value;
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let Value::Sequence(items) = list else {
        bail!("{at}: expected a list of hooks");
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let at = format!("{at}[{n}]");
        let Value::Mapping(hook) = item else {
            bail!("{at}: expected a mapping with a command");
        };
        let text = |key: &str| -> Result<Option<String>> {
            hook.get(key)
                .map(|v| scalar(v).ok_or_else(|| anyhow!("{at}.{key}: expected a string")))
                .transpose()
        };
        let argv = match hook.get("command") {
            Some(Value::String(s)) => split_command(s).map_err(|e| anyhow!("{at}.command: {e}"))?,
            Some(Value::Sequence(words)) => words
                .iter()
                .map(|w| {
                    scalar(w).ok_or_else(|| anyhow!("{at}.command: expected a list of strings"))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => bail!("{at}.command: expected a string or a list of strings"),
            None => bail!("{at}: no command"),
        };
        if argv.is_empty() {
            bail!("{at}.command: an empty command");
        }
        let privileged = match hook.get("privileged") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => bail!("{at}.privileged: expected true or false"),
        };
        // `KEY` without a value (compose resolves it from its own
        // environment when it prints `config`) is left unset.
        let environment = match hook.get("environment") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(list)) => list
                .iter()
                .map(|e| {
                    scalar(e).ok_or_else(|| anyhow!("{at}.environment: expected KEY=VALUE strings"))
                })
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|e| e.contains('='))
                .collect(),
            Some(Value::Mapping(map)) => {
                let mut env = Vec::new();
                for (k, v) in map {
                    let key = scalar(k)
                        .ok_or_else(|| anyhow!("{at}.environment: expected string keys"))?;
                    match v {
                        Value::Null => {}
                        v => env.push(format!(
                            "{key}={}",
                            scalar(v).ok_or_else(|| anyhow!(
                                "{at}.environment.{key}: expected a string, number or boolean"
                            ))?
                        )),
                    }
                }
                env
            }
            Some(_) => bail!("{at}.environment: expected a list or a mapping"),
        };
        out.push(HookCommand {
            argv,
            user: text("user")?,
            privileged,
            working_dir: text("working_dir")?,
            environment,
            source: Source::Compose(at),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::project::ComposeProject;
    use super::*;

    /// What `docker compose config` (v2.30+) prints for services with hooks;
    /// compose v1 rejects such files, so this is the only way to test them here.
    const V2_CONFIG: &str = r#"
name: shop
services:
  app1:
    image: nginx-rollout-fixture/app:v2
    post_start:
      - command:
          - sh
          - -c
          - echo started > /tmp/started
        user: root
        privileged: true
        working_dir: /srv
        environment:
          - STAGE=post
          - BARE
      - command: /bin/warm --all 'two words'
    pre_stop:
      - command: /bin/drain --grace 5
        environment:
          QUEUE: jobs
          RETRIES: 3
          UNSET: null
  app2:
    image: nginx-rollout-fixture/app:v2
networks:
  default:
    name: shop_default
"#;

    fn v2_project() -> ComposeProject {
        ComposeProject::from_config("shop", V2_CONFIG, "app1 h1\napp2 h2\n").unwrap()
    }

    #[test]
    fn reads_post_start_and_pre_stop_of_a_v2_config() {
        let hooks = v2_project().hooks("app1").unwrap();
        let [first, second] = hooks.post_start.as_slice() else {
            panic!("two post_start hooks: {hooks:?}")
        };
        assert_eq!(first.argv, ["sh", "-c", "echo started > /tmp/started"]);
        assert_eq!(first.user.as_deref(), Some("root"));
        assert!(first.privileged);
        assert_eq!(first.working_dir.as_deref(), Some("/srv"));
        assert_eq!(first.environment, ["STAGE=post"], "a bare KEY stays unset");
        assert_eq!(
            first.source,
            Source::Compose("services.app1.post_start[0]".into())
        );
        assert_eq!(
            second.argv,
            ["/bin/warm", "--all", "two words"],
            "a string command is split into words as compose does"
        );
        assert!(!second.privileged && second.user.is_none());
        let [stop] = hooks.pre_stop.as_slice() else {
            panic!("one pre_stop hook: {hooks:?}")
        };
        assert_eq!(stop.argv, ["/bin/drain", "--grace", "5"]);
        let mut env = stop.environment.clone();
        env.sort();
        assert_eq!(env, ["QUEUE=jobs", "RETRIES=3"]);
        assert_eq!(
            stop.source,
            Source::Compose("services.app1.pre_stop[0]".into())
        );
        assert!(v2_project().hooks("app2").unwrap().is_empty());
        assert!(v2_project().hooks("app3").is_err());
    }

    #[test]
    fn hooks_of_the_wrong_form_name_the_service_and_key() {
        let bad = |hook: &str| {
            let doc = format!("services:\n  web:\n    image: x\n    post_start:\n{hook}");
            let project = ComposeProject::from_config("p", &doc, "").unwrap();
            format!("{:#}", project.hooks("web").unwrap_err())
        };
        assert_eq!(
            bad("      - user: root\n"),
            "compose project p: services.web.post_start[0]: no command"
        );
        assert_eq!(
            bad("      - command: {a: b}\n"),
            "compose project p: services.web.post_start[0].command: expected a string or a list of strings"
        );
        assert_eq!(
            bad("      - command: \"echo 'open\"\n"),
            "compose project p: services.web.post_start[0].command: \"echo 'open\": unbalanced quotes or a trailing backslash (split as a POSIX shell splits words)"
        );
        assert_eq!(
            bad("      - command: [true]\n        privileged: sometimes\n"),
            "compose project p: services.web.post_start[0].privileged: expected true or false"
        );
        assert_eq!(
            bad("      - command: [true]\n        environment: 3\n"),
            "compose project p: services.web.post_start[0].environment: expected a list or a mapping"
        );
        assert_eq!(
            bad("      command: [true]\n"),
            "compose project p: services.web.post_start: expected a list of hooks"
        );
    }

    #[test]
    fn compose_hooks_become_steps_of_the_plan() {
        use crate::conf::{ConfigSet, MemFs};
        use crate::plan::{
            Action, Order, RollingUpdate, Target, Timeouts, UpdateConfig, rolling_update,
        };
        let text = "http {\n    upstream apps {\n        server app1:3000;\n        server app2:3000;\n    }\n}\n";
        let path = std::path::Path::new("/etc/nginx/nginx.conf");
        let config =
            ConfigSet::load_single(path, &MemFs::one("/etc/nginx/nginx.conf", text)).unwrap();
        let project = v2_project();
        let targets: Vec<Target> = ["app1", "app2"]
            .iter()
            .map(|s| Target {
                server: format!("{s}:3000"),
                container: format!("shop_{s}_1"),
                replacement: Some(format!("shop_{s}_1-b")),
                swapped: false,
                drained_by_us: false,
                dead: false,
                pinned: None,
                via: None,
                hooks: project.hooks(s).unwrap(),
            })
            .collect();
        for order in [Order::StopFirst, Order::StartFirst] {
            let mut policy = UpdateConfig::engine_defaults();
            policy.order.value = order;
            let plan = rolling_update(RollingUpdate {
                config: &config,
                upstream: "apps",
                targets: &targets,
                sets: &[],
                pre_deploy: None,
                policy: &policy,
                timeouts: Timeouts::DEFAULT,
                ramp: None,
            })
            .unwrap();
            let hooks: Vec<(&str, &str, usize)> = plan
                .steps
                .iter()
                .filter_map(|s| match &s.action {
                    Action::PostStart { runs, .. } | Action::PreStop { runs, .. } => Some(
                        runs.iter()
                            .map(|r| {
                                (
                                    s.action.kind(),
                                    r.server.container.as_str(),
                                    r.commands.len(),
                                )
                            })
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                })
                .flatten()
                .collect();
            // Stop-first: pre-stop in the drained container, then recreate, then
            // post-start in its successor; start-first: post-start in the
            // replacement, then (after the swap) pre-stop in the old one.
            let expected = match order {
                Order::StopFirst => [
                    ("pre-stop", "shop_app1_1", 1),
                    ("post-start", "shop_app1_1", 2),
                ],
                Order::StartFirst => [
                    ("post-start", "shop_app1_1-b", 2),
                    ("pre-stop", "shop_app1_1", 1),
                ],
            };
            assert_eq!(hooks, expected, "{order}: only app1 has hooks");
        }
    }
}
