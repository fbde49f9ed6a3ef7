//! Seed 003 end to end: a stack brought up from `docker-compose.yml` +
//! `prod.yml` is upgraded by naming the override files as compose takes them
//! (`-f … -f v2.yml`, or `COMPOSE_FILE`), with the policy read from the merged
//! files, under load; compose then sees its own containers made from the four
//! files, and `rollback` returns to exactly the two files and their values.
use std::collections::BTreeSet;

use crate::support::rollout::{under_load, under_load_cmd};
use crate::support::stack::{Seed, Stack};
use crate::support::{assert_ok, inspect, json_lines, text};

const UPGRADE: [&str; 4] = [
    "docker-compose.yml",
    "prod.yml",
    "prod-healthcheck.yml",
    "v2.yml",
];

fn answers(version: &str) -> BTreeSet<String> {
    BTreeSet::from([format!("Hi there, I love ! {version}")])
}

fn minus_f<'a>(files: &[&'a str]) -> Vec<&'a str> {
    files.iter().flat_map(|f| ["-f", *f]).collect()
}

/// The api replicas' compose labels and healthcheck, checked against `files`
/// (named in the stack's directory): each container records the hash
/// compose computes from them now and the files as `recorded` (named as
/// compose was given them), and `up -d` with them changes nothing.
fn compose_owns(stack: &Stack, files: &[&str], recorded: &[String], healthcheck: bool) {
    let hash = stack.compose_files(minus_f(files), &["config", "--hash=api"]);
    assert_ok(&hash);
    let hash = String::from_utf8_lossy(&hash.stdout)
        .split_whitespace()
        .nth(1)
        .expect("a hash")
        .to_string();
    let api = stack.containers_of("api");
    assert_eq!(api.len(), 3, "{api:?}");
    for name in &api {
        let labels = &stack.inspect(name)["Config"]["Labels"];
        assert_eq!(
            labels["com.docker.compose.project.config_files"],
            recorded.join(","),
            "{name}"
        );
        assert_eq!(
            labels["com.docker.compose.config-hash"],
            hash.as_str(),
            "{name}"
        );
        let check = inspect(name, "{{json .Config.Healthcheck}}");
        assert_eq!(check != "null", healthcheck, "{name}: healthcheck {check}");
    }
    let up = stack.compose_files(minus_f(files), &["up", "-d"]);
    let said = String::from_utf8_lossy(&up.stderr).into_owned();
    assert!(up.status.success(), "{said}");
    assert!(
        !said.contains("Recreating") && !said.contains("Creating") && !said.contains("Stopping"),
        "compose changed something:\n{said}"
    );
}

/// Without `-f`, the containers' labels say which files made them, and the
/// plan finds them unchanged.
fn unchanged_by_their_labels(stack: &Stack) {
    let out = stack.tool(&["deploy", "apps", "--dry-run"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("unchanged"), "{}", text(&out));
}

#[test]
fn override_files_upgrade_and_rollback_returns_to_the_previous_files() {
    let stack = Stack::seed(Seed::S003, "s3", |_| {});
    assert_eq!(stack.bodies(6), answers("v1"));
    let first = ["docker-compose.yml", "prod.yml"].map(String::from);
    compose_owns(&stack, &["docker-compose.yml", "prod.yml"], &first, false);
    let conf = (stack.conf(), stack.conf_inode());

    // The directory's own name is not the stack's project: said, with the fix.
    let out = stack.tool(&[&["deploy", "apps", "--dry-run"][..], &minus_f(&UPGRADE)].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("belongs to compose project {}", stack.project))
            && said.contains(&format!("give -p {}", stack.project)),
        "{said}"
    );
    // A file that is not there is named.
    let out = stack.tool(&["deploy", "apps", "--dry-run", "-f", "v3.yml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("v3.yml (from -f) does not exist"),
        "{}",
        text(&out)
    );

    // The plan, with the files named as compose's variables name them: the
    // policy is the merged one, each value with the file that set it.
    let dry = stack
        .tool_cmd(&["deploy", "apps", "--dry-run"])
        .env("COMPOSE_FILE", UPGRADE.join(":"))
        .env("COMPOSE_PROJECT_NAME", &stack.project)
        .output()
        .unwrap();
    assert_ok(&dry);
    let plan = String::from_utf8_lossy(&dry.stdout);
    for origin in [
        "v2.yml services.api.deploy.update_config.order",
        "v2.yml services.api.deploy.update_config.delay",
        "prod.yml services.api.deploy.update_config.parallelism",
        "prod.yml services.api.deploy.update_config.failure_action",
    ] {
        assert!(plan.contains(origin), "{origin} not in the plan:\n{plan}");
    }
    // Without the files, the labels decide: nothing changed for them.
    unchanged_by_their_labels(&stack);

    // The upgrade, as the seed types it (plus our project name): from the
    // directory above the project's, each file as `./numbers/v2.yml`.
    let above = stack.path().parent().unwrap();
    let dir = stack.path().file_name().unwrap().to_str().unwrap();
    let named: Vec<String> = UPGRADE.iter().map(|f| format!("./{dir}/{f}")).collect();
    let mut args = vec!["deploy", "apps", "--yes", "--output", "json", "-p"];
    args.push(&stack.project);
    for f in &named {
        args.extend(["-f", f.as_str()]);
    }
    let mut cmd = stack.tool_cmd(&args);
    cmd.current_dir(above);
    let out = under_load_cmd(&stack, cmd, "get-keepalive").out;
    let events = json_lines(&out);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "plan" && e.to_string().contains("start-first")),
        "the plan used v2.yml's order"
    );
    assert_eq!(stack.bodies(9), answers("v2"));
    // Compose's own labels for these files named so (`normpath`ed), as the
    // seed's own `docker-compose -f ./numbers/…` run would record them.
    let recorded: Vec<String> = UPGRADE.iter().map(|f| format!("{dir}/{f}")).collect();
    compose_owns(&stack, &UPGRADE, &recorded, true);
    // And from those labels alone the files are found again: nothing to do.
    unchanged_by_their_labels(&stack);
    assert_eq!(
        (stack.conf(), stack.conf_inode()),
        conf,
        "default.conf kept"
    );

    // Rollback: the previous revision's containers, files and values exactly.
    under_load(
        &stack,
        &["rollback", "apps", "--yes", "--output", "json"],
        "post-close",
    );
    assert_eq!(stack.bodies(9), answers("v1"));
    compose_owns(&stack, &["docker-compose.yml", "prod.yml"], &first, false);
    assert_eq!(
        (stack.conf(), stack.conf_inode()),
        conf,
        "default.conf kept"
    );
}
