//! Rendering the shipped upstream template with TOML and JSON values.
use nginx_rollout::conf::{ConfigSet, HostFs};
use nginx_rollout::render::render_file;
use std::path::Path;

fn at(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn toml_values_render_the_expected_upstreams() {
    let out = render_file(
        &at("templates/upstream.conf.tera"),
        &at("fixtures/render/values.toml"),
    )
    .unwrap();
    let expected = std::fs::read_to_string(at("fixtures/render/expected.conf")).unwrap();
    assert_eq!(out, expected);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("u.conf");
    std::fs::write(&f, &out).unwrap();
    let ups = ConfigSet::load(&f, &HostFs).unwrap().upstreams();
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0].keepalive, Some(16));
    assert!(ups[1].servers[1].is_backup());
}

#[test]
fn json_values_and_errors() {
    let out = render_file(
        &at("templates/upstream.conf.tera"),
        &at("fixtures/render/values.json"),
    )
    .unwrap();
    assert_eq!(
        out,
        "upstream apps {\n    server app1:3000;\n    server app2:3000 down;\n}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("t.tera");
    std::fs::write(&bad, "{{ missing.x }}").unwrap();
    let e = render_file(&bad, &at("fixtures/render/values.json")).unwrap_err();
    assert!(format!("{e:#}").contains("t.tera"), "{e:#}");
    let e = render_file(&bad, &at("fixtures/render/expected.conf")).unwrap_err();
    assert!(e.to_string().contains(".toml or .json"), "{e}");
}
