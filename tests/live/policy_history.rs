//! History, `rollback --to N`, and the policy read from compose's `deploy.update_config`.

use crate::support::stack::{Stack, app_bodies};
use crate::support::{assert_ok, json_lines, text};

fn history(stack: &Stack) -> Vec<serde_json::Value> {
    let out = stack.tool(&["history", "apps", "--output", "json"]);
    assert_ok(&out);
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

#[test]
fn history_keeps_ten_revisions_with_their_commands() {
    let stack = Stack::up("history");
    let before = stack.conf();
    for _ in 0..6 {
        assert_ok(&stack.tool(&["drain", "apps", "app2"]));
        assert_ok(&stack.tool(&["undrain", "apps", "app2"]));
    }
    assert_eq!(
        stack.conf(),
        before,
        "six drain/undrain pairs leave the file as it was"
    );
    let revisions = history(&stack);
    let numbers: Vec<u64> = revisions
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (3..=12).collect::<Vec<_>>(),
        "the newest ten of twelve"
    );
    assert_eq!(revisions.last().unwrap()["kind"], "undrain");
    assert!(
        revisions.last().unwrap()["command"]
            .as_str()
            .unwrap()
            .contains("undrain apps app2")
    );
    assert!(revisions.iter().all(|r| r["status"] == "done"));
}

#[test]
fn rollback_to_a_revision_redeploys_what_it_deployed() {
    let stack = Stack::up("rollbackto");
    let deploy = |version: &str| {
        let env = format!("MESSAGE={{{{service}}}},{version}");
        let out = stack.tool(&["deploy", "apps", "--yes", "--env", &env, "--monitor", "0s"]);
        assert_ok(&out);
    };
    deploy("v2");
    deploy("v3");
    assert_eq!(stack.bodies(8), app_bodies(2, "v3"));
    let out = stack.tool(&[
        "rollback",
        "apps",
        "--to",
        "1",
        "--yes",
        "--rollback-monitor",
        "0s",
    ]);
    assert_ok(&out);
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"), "{}", text(&out));
    let kinds: Vec<(String, String)> = history(&stack)
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds.last().unwrap(),
        &("rollback".to_string(), "done".to_string()),
        "{kinds:?}"
    );
    let out = stack.tool(&["rollback", "apps", "--to", "99", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unknown revision: {}",
        text(&out)
    );
    assert!(text(&out).contains("no revision 99"), "{}", text(&out));

    // A plain rollback undoes the last rollback, and the next one undoes that:
    // a toggle, as `docker service rollback` is.
    for version in ["v3", "v2"] {
        let out = stack.tool(&["rollback", "apps", "--yes", "--rollback-monitor", "0s"]);
        assert_ok(&out);
        assert_eq!(stack.bodies(8), app_bodies(2, version), "{}", text(&out));
    }
}

#[test]
fn compose_update_config_is_in_effect_and_flags_win() {
    let stack = Stack::up_with("composepolicy", |dir| {
        let path = dir.join("docker-compose.yml");
        let compose = std::fs::read_to_string(&path).unwrap().replacen(
            "    stop_grace_period: 10s\n",
            "    stop_grace_period: 10s\n    deploy:\n      update_config:\n        parallelism: 2\n        delay: 3s\n        failure_action: rollback\n        monitor: 2s\n",
            1,
        );
        std::fs::write(&path, compose).unwrap();
    });
    let out = stack.tool(&[
        "plan", "apps", "--force", "--delay", "1s", "--output", "json",
    ]);
    assert_ok(&out);
    let events = json_lines(&out);
    let policy = &events[0]["plan"]["policy"];
    assert_eq!(policy["failure_action"]["value"], "rollback", "{policy}");
    assert_eq!(policy["failure_action"]["source"]["from"], "compose");
    assert!(
        policy["failure_action"]["source"]["detail"]
            .as_str()
            .unwrap()
            .contains("services.app1.deploy.update_config")
    );
    assert_eq!(policy["monitor"]["value"], "2s");
    assert_eq!(policy["delay"]["value"], "1s", "the flag wins");
    assert_eq!(policy["delay"]["source"]["from"], "flag");
    // parallelism 2 on 2 live servers is capped at 1 (never zero live servers).
    assert_eq!(policy["parallelism"]["value"], 2);
    let human = stack.tool(&["plan", "apps", "--force"]);
    assert_ok(&human);
    assert!(
        text(&human).contains("services.app1.deploy.update_config.failure_action"),
        "{}",
        text(&human)
    );
}
