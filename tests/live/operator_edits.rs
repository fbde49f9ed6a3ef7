//! An operator edits the config while a rollout runs: elsewhere in
//! nginx.conf, on the very line being drained, in an included file, or by
//! replacing the file (an editor's save). Each ends in a correct splice or a
//! clear error, never in the operator's bytes overwritten, and `resume`
//! continues from there. (An edit that meets a drain's `nginx -t` mid-write
//! is the executor's unit tests': the run stops, the edit kept, and says so.)
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use crate::support::stack::{Stack, app_bodies};
use crate::support::{assert_ok, docker, spawn_piped, text};

/// [`Stack::slow_deploy_cmd`] to v2.
fn slow_deploy(stack: &Stack) -> Child {
    spawn_piped(&mut stack.slow_deploy_cmd("v2"))
}

/// Waits (bounded) until `path` on the host holds `needle`.
fn wait_for(path: &std::path::Path, needle: &str) {
    let start = Instant::now();
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{needle:?} not in {} within 60 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until nginx's processes differ from `before`: the
/// drain's reload is done. An edit made before it could meet its `nginx -t`
/// reading a half-written file (an in-place write truncates first), which
/// ends the run with an error that says so instead of a splice.
fn wait_for_reload(stack: &Stack, before: &[String]) {
    let start = Instant::now();
    while stack.nginx_processes() == before {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nginx not reloaded within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Rewrites `path` in place (same inode, as `>` in a shell does).
fn edit_in_place(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

#[test]
fn edits_elsewhere_and_on_the_drained_line_survive_the_rollout() {
    let stack = Stack::up("opedit");
    let conf = stack.conf_path();
    let workers = stack.nginx_processes();
    let deploy = slow_deploy(&stack);
    wait_for(&conf, "server app1:3000 down;");
    wait_for_reload(&stack, &workers);
    edit_in_place(&conf, "keepalive_timeout 65;", "keepalive_timeout 7;");
    edit_in_place(
        &conf,
        "server app1:3000 down;",
        "server app1:3000 down weight=2; # the operator's",
    );
    let out = finish(deploy);
    assert_ok(&out);
    let after = String::from_utf8(stack.conf()).unwrap();
    assert!(after.contains("keepalive_timeout 7;"), "{after}");
    assert!(
        after.contains("server app1:3000 weight=2; # the operator's\n"),
        "{after}"
    );
    assert!(!after.contains(" down"), "{after}");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}

#[test]
fn an_edit_of_an_included_file_survives_the_rollout() {
    let stack = Stack::up_with("opinclude", |dir| {
        // The upstream moves to an included file in a bind-mounted directory.
        let conf = dir.join("proxy/nginx.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        let upstream =
            "    upstream apps {\n        server app1:3000;\n        server app2:3000;\n    }\n";
        std::fs::write(
            &conf,
            text.replace(upstream, "    include /etc/nginx/upstreams/*.conf;\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("proxy/upstreams")).unwrap();
        std::fs::write(
            dir.join("proxy/upstreams/apps.conf"),
            format!("# upstreams\n{upstream}"),
        )
        .unwrap();
        let compose = dir.join("docker-compose.yml");
        let text = std::fs::read_to_string(&compose).unwrap();
        let mount = "      - ./proxy/nginx.conf:/etc/nginx/nginx.conf\n";
        std::fs::write(
            &compose,
            text.replace(
                mount,
                &format!("{mount}      - ./proxy/upstreams:/etc/nginx/upstreams\n"),
            ),
        )
        .unwrap();
    });
    let included = stack.path().join("proxy/upstreams/apps.conf");
    let workers = stack.nginx_processes();
    let deploy = slow_deploy(&stack);
    wait_for(&included, "server app1:3000 down;");
    wait_for_reload(&stack, &workers);
    edit_in_place(
        &included,
        "# upstreams\n",
        "# upstreams, edited during the rollout\n",
    );
    let out = finish(deploy);
    assert_ok(&out);
    let after = std::fs::read_to_string(&included).unwrap();
    assert!(
        after.starts_with("# upstreams, edited during the rollout\n"),
        "{after}"
    );
    assert!(!after.contains(" down"), "{after}");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}

#[test]
fn a_config_replaced_by_rename_mid_rollout_is_a_clear_error_and_resume_continues() {
    let stack = Stack::up("oprename");
    let conf = stack.conf_path();
    let deploy = slow_deploy(&stack);
    wait_for(&conf, "server app1:3000 down;");
    // An editor's save: a new file renamed over the old one. The container
    // keeps reading the old inode; the host now has the operator's new file.
    let saved = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("keepalive_timeout 65;", "keepalive_timeout 9;");
    let tmp = conf.with_extension("swp");
    std::fs::write(&tmp, &saved).unwrap();
    std::fs::rename(&tmp, &conf).unwrap();
    let out = finish(deploy);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("inode") && stderr.contains("replaced"),
        "the error explains the renamed file: {stderr}"
    );
    let after = String::from_utf8(stack.conf()).unwrap();
    assert!(
        after.contains("keepalive_timeout 9;"),
        "the operator's bytes: {after}"
    );

    // Once nginx mounts the current file, resume finishes the rollout.
    docker(&["restart", "-t", "1", &stack.container("nginx")]);
    let out = stack.tool(&["resume", "--yes"]);
    assert_ok(&out);
    let after = String::from_utf8(stack.conf()).unwrap();
    assert!(after.contains("keepalive_timeout 9;"), "{after}");
    assert!(!after.contains(" down"), "{after}");
    assert_eq!(stack.bodies(8), app_bodies(2, "v2"));
}

#[test]
fn a_config_replaced_before_the_run_is_neither_written_nor_its_copy() {
    let stack = Stack::up("opreplaced");
    let conf = stack.conf_path();
    // An editor's save before the run: the container still has the old inode.
    let old = stack.conf();
    let saved = String::from_utf8(old.clone())
        .unwrap()
        .replace("keepalive_timeout 65;", "keepalive_timeout 9;");
    let tmp = conf.with_extension("swp");
    std::fs::write(&tmp, &saved).unwrap();
    std::fs::rename(&tmp, &conf).unwrap();

    // Seen through the container's root, and (without the /proc shortcuts,
    // as for a docker-group user) asked of the container.
    for no_procfs in ["", "1"] {
        let out = stack
            .tool_cmd(&["drain", "apps", "app2"])
            .env("NGINX_ROLLOUT_NO_PROCFS", no_procfs)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no longer what the container mounts") && stderr.contains("restart"),
            "NGINX_ROLLOUT_NO_PROCFS={no_procfs}: the error explains the replaced file: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        saved,
        "the operator's file"
    );
    let seen = docker(&[
        "exec",
        &stack.container("nginx"),
        "cat",
        "/etc/nginx/nginx.conf",
    ]);
    assert!(
        !seen.contains(" down"),
        "nothing written in the container: {seen}"
    );
    assert_eq!(stack.bodies(8), app_bodies(2, "v1"));

    // Once nginx mounts the current file, the drain goes through.
    docker(&["restart", "-t", "1", &stack.container("nginx")]);
    assert_ok(&stack.tool(&["drain", "apps", "app2"]));
    let after = std::fs::read_to_string(&conf).unwrap();
    assert!(
        after.contains("keepalive_timeout 9;") && after.contains("app2:3000 down"),
        "{after}"
    );
}
