//! `pause` then `resume`, `pause` then `rollback`, against the real Docker engine.
//!
//! The pause comes from a failure whose cause an operator can remove: the new
//! tag points at a wrong image (a bad push; a missing image is refused before
//! anything is drained, see `deploy_failures`). The first server's new
//! container never turns healthy, the rollout pauses with it drained; once
//! the tag is fixed, `resume` recreates it from the journal's spec and finishes.

use std::process::Command;

use crate::support::stack::{Stack, app_bodies};
use crate::support::{assert_ok, text};

/// An image tag of our own, removed (the tag only) on drop.
struct Tag(String);

impl Tag {
    /// A tag on the nginx image, which does not serve the app's port.
    fn broken(what: &str) -> Tag {
        let tag = Tag(format!(
            "nginx-rollout-fixture/app:nrt-{what}-{}",
            std::process::id()
        ));
        tag.point_at("nginx-rollout-fixture/nginx:1");
        tag
    }

    /// Moves the tag to the app's v2 image.
    fn fix(&self) {
        self.point_at("nginx-rollout-fixture/app:v2");
    }

    fn point_at(&self, image: &str) {
        let ok = Command::new("docker")
            .args(["tag", image, &self.0])
            .status()
            .unwrap()
            .success();
        assert!(ok, "docker tag {image} {}", self.0);
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.0]).output();
    }
}

/// Deploys the broken image `tag` with v2 messages; expects a pause at app1.
fn paused_deploy(name: &str, tag: &Tag) -> (Stack, Vec<u8>) {
    let stack = Stack::up(name);
    let before = stack.conf();
    let out = stack.tool(&[
        "deploy",
        "apps",
        "--yes",
        "--mode",
        "engine",
        "--image",
        &tag.0,
        "--env",
        "MESSAGE={{service}},v2",
        "--monitor",
        "0s",
        "--health-timeout",
        "8s",
    ]);
    assert_eq!(out.status.code(), Some(3), "paused: {}", text(&out));
    let status = stack.tool(&["status", "--output", "json"]);
    assert_ok(&status);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["unfinished"]["status"], "paused", "{status}");
    let conf = String::from_utf8(stack.conf()).unwrap();
    assert!(
        conf.contains("server app1:3000 down;"),
        "app1 stays drained while paused:\n{conf}"
    );
    assert_eq!(
        stack.bodies(6),
        ["Hi there, I love ! app2,v1".to_string()]
            .into_iter()
            .collect()
    );
    (stack, before)
}

#[test]
fn pause_then_resume_finishes_every_server() {
    let tag = Tag::broken("resume");
    let (stack, before) = paused_deploy("pauseres", &tag);
    tag.fix();
    let out = stack.tool(&["resume", "--yes"]);
    assert_ok(&out);
    assert_eq!(stack.conf(), before, "no stray down after resume");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
    let status = stack.tool(&["status", "--output", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["unfinished"].is_null(), "{status}");
}

#[test]
fn pause_then_rollback_restores_every_server_and_the_config() {
    let tag = Tag::broken("rollback");
    let (stack, before) = paused_deploy("pauserb", &tag);
    let out = stack.tool(&["rollback", "--yes"]);
    assert_ok(&out);
    assert_eq!(
        stack.conf(),
        before,
        "nginx.conf byte-identical after the rollback"
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));
    let history = stack.tool(&["history", "--output", "json"]);
    assert_ok(&history);
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let rows: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].clone(), r["status"].clone()))
        .collect();
    assert_eq!(
        rows,
        [("deploy", "rolled-back"), ("rollback", "done")].map(|(k, s)| (k.into(), s.into())),
        "{history}"
    );
}
