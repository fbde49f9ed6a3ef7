//! Plans as a `plan` event prints them validate against
//! docs/events.schema.json, for every kind of step and of line change the
//! planner makes (the live tests check the events of the runs they make).
use std::collections::BTreeSet;

use super::*;
use crate::plan::policy::{Setting, Source};
use crate::plan::{Canary, Gate, HookCommand, Hooks, LineEdit, PreDeploy, Share};
use crate::plan::{revert_lines, single_edit};

/// docs/events.schema.json's definition of a plan, as a validator.
fn plan_schema() -> jsonschema::Validator {
    let events: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/events.schema.json")).unwrap();
    let schema = serde_json::json!({ "$defs": events["$defs"], "$ref": "#/$defs/plan" });
    jsonschema::draft202012::new(&schema).unwrap()
}

fn hooks() -> Hooks {
    Hooks {
        post_start: vec![HookCommand::from_flag("--post-start", "warm-up").unwrap()],
        pre_stop: vec![HookCommand::from_flag("--pre-stop", "drain-queue").unwrap()],
    }
}

/// Plans that between them hold every kind of step and of line change.
fn plans() -> Vec<Plan> {
    let cfg = config(&["app1:3000", "app2:3000"]);
    let job = PreDeploy {
        command: HookCommand::from_flag("--pre-deploy", "migrate").unwrap(),
        server: "app1:3000".into(),
        container: "app1-c-nr-pre-deploy".into(),
        image: "app:v2".into(),
    };
    let hooked = Target {
        hooks: hooks(),
        ..target("app1:3000")
    };
    let gone = Target {
        pinned: Some("server app2:3000;".into()),
        ..dead("app2:3000")
    };
    let stop_first = rolling_update(RollingUpdate {
        targets: &[hooked, gone],
        pre_deploy: Some(&job),
        ..update(
            &cfg,
            "apps",
            // Over a year: humantime writes `1year 1month 4days …`.
            &policy(|p| p.monitor.value = Duration::from_secs(400 * 86_400 + 5)),
        )
    })
    .unwrap();
    let start_first = two_servers(
        &[
            replaced_by("app1:3000", "app1-new"),
            replaced_by("app2:3000", "app2-new"),
        ],
        &policy(|p| {
            p.order.value = Order::StartFirst;
            p.delay.value = Duration::from_secs(1);
        }),
    )
    .1;
    let canary = two_servers(
        &[target("app1:3000"), target("app2:3000")],
        &policy(|p| {
            p.canary = Some(Setting {
                value: Canary {
                    shares: vec![Share::new(10).unwrap()],
                    gate: Some(Gate::Pause),
                },
                source: Source::Flag("--canary-weights".into()),
            })
        }),
    )
    .1;
    // A dead replica replaced, a live one recreated, one added.
    let set = ReplicaSet {
        statement: "server web:8000;".into(),
        hooks: hooks(),
        ..replica_set(
            &[("p_web_1", true), ("p_web_2", false)],
            &["p_web_3", "p_web_2", "p_web_4"],
        )
    };
    let replicas = plan_set(
        &load(CONF_D, "upstream backend {\n    server web:8000;\n}\n"),
        set,
        &policy(|p| {
            p.order.value = Order::StartFirst;
            p.delay.value = Duration::from_secs(1);
        }),
    )
    .unwrap();
    let wait = Duration::from_secs(7);
    let edit = |server, edit| single_edit(&cfg, "apps", server, edit, false, wait).unwrap();
    let removed = config(&["app1:3000"]);
    let (before, after) = (
        cfg.upstream("apps").unwrap().body,
        removed.upstream("apps").unwrap().body,
    );
    let revert = revert_lines(&removed, "apps", &after, &before, wait).unwrap();
    vec![
        stop_first,
        start_first,
        canary,
        replicas,
        edit("app2", LineEdit::Weight(5)),
        edit("app3:3000", LineEdit::Add(vec!["backup".into()])),
        edit("app1", LineEdit::Remove),
        revert,
    ]
}

#[test]
fn plans_of_every_kind_of_step_and_change_validate_against_the_events_schema() {
    let schema = plan_schema();
    let (mut actions, mut ops) = (BTreeSet::new(), BTreeSet::new());
    for plan in plans() {
        let json = serde_json::to_value(&plan).unwrap();
        let errors: Vec<String> = schema
            .iter_errors(&json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}\n{json:#}", errors.join("\n"));
        for step in &plan.steps {
            actions.insert(step.action.kind());
            if let Action::Edit { changes, .. } = &step.action {
                for c in changes {
                    ops.insert(serde_json::to_value(c).unwrap()["op"].to_string());
                }
            }
        }
    }
    let all_actions = [
        "edit",
        "reload",
        "wait-drained",
        "recreate",
        "start-new",
        "stop-old",
        "wait-healthy",
        "monitor",
        "delay",
        "canary",
        "pre-deploy",
        "post-start",
        "pre-stop",
    ];
    assert_eq!(actions, BTreeSet::from(all_actions));
    let all_ops = [
        "drain",
        "restore",
        "replace",
        "pin",
        "unpin",
        "add",
        "bury",
        "weight",
        "add-server",
        "remove",
        "revert",
    ];
    assert_eq!(ops, all_ops.map(|o| format!("\"{o}\"")).into());
}
