//! Single line edits (weight, add, remove, drain, undrain) and their reverts.
use super::*;
use crate::plan::{LineEdit, revert_lines, single_edit};

const WAIT: Duration = Duration::from_secs(7);

#[test]
fn weight_add_and_remove_are_an_edit_a_reload_and_the_old_workers_wait() {
    let cfg = config(&["app1:3000", "app2:3000 max_fails=3"]);
    let weight = single_edit(&cfg, "apps", "app2", LineEdit::Weight(5), false, WAIT).unwrap();
    assert_eq!(kinds(&weight), ["edit", "reload", "wait-drained"]);
    assert!(matches!(weight.steps[2].action, Action::WaitDrained { timeout } if timeout == WAIT));
    assert!(weight.line_only());
    let diff = weight.steps[0].diff.as_deref().unwrap();
    assert!(
        diff.contains(
            "-        server app2:3000 max_fails=3;\n+        server app2:3000 weight=5 max_fails=3;\n"
        ),
        "{diff}"
    );
    let add = single_edit(
        &cfg,
        "apps",
        "app3:3000",
        LineEdit::Add(vec!["weight=2".into(), "backup".into()]),
        false,
        WAIT,
    )
    .unwrap();
    let diff = add.steps[0].diff.as_deref().unwrap();
    assert!(
        diff.contains(
            "         server app2:3000 max_fails=3;\n+        server app3:3000 weight=2 backup;\n     }"
        ),
        "indented like the line before it: {diff}"
    );
    let remove = single_edit(&cfg, "apps", "app1", LineEdit::Remove, false, WAIT).unwrap();
    assert_eq!(
        remove.steps[0].action,
        Action::Edit {
            upstream: "apps".into(),
            changes: vec![ServerChange::Remove {
                server: "app1:3000".into()
            }],
            force: false
        }
    );
    let undrain = single_edit(&cfg, "apps", "app1", LineEdit::Undrain, false, WAIT).unwrap();
    assert_eq!(
        kinds(&undrain),
        ["edit", "reload"],
        "putting one back takes nothing away"
    );
}

#[test]
fn bad_edits_are_refused_before_anything_runs() {
    let cfg = config(&["app1:3000", "app2:3000 down"]);
    let last = single_edit(&cfg, "apps", "app1", LineEdit::Remove, false, WAIT).unwrap_err();
    assert!(last.to_string().contains("last live server"), "{last}");
    assert!(single_edit(&cfg, "apps", "app1", LineEdit::Remove, true, WAIT).is_ok());
    let zero = single_edit(&cfg, "apps", "app1", LineEdit::Weight(0), false, WAIT).unwrap_err();
    assert!(zero.to_string().contains("invalid weight 0"), "{zero}");
    let unknown = single_edit(&cfg, "apps", "app9", LineEdit::Weight(2), false, WAIT).unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("available: app1:3000, app2:3000"),
        "{unknown}"
    );
    let bad = single_edit(
        &cfg,
        "apps",
        "app3:3000;",
        LineEdit::Add(Vec::new()),
        false,
        WAIT,
    )
    .unwrap_err();
    assert!(bad.to_string().contains("must be one bare word"), "{bad}");
}

#[test]
fn a_revert_puts_the_lines_back_only_over_what_the_edit_left() {
    let before = config(&["app1:3000", "app2:3000"]);
    let removed = config(&["app1:3000"]);
    let (b, a) = (
        before.upstream("apps").unwrap().body,
        removed.upstream("apps").unwrap().body,
    );
    let p = revert_lines(&removed, "apps", &a, &b, WAIT).unwrap();
    assert_eq!(kinds(&p), ["edit", "reload", "wait-drained"]);
    let live = replay(&removed, &p);
    assert!(live[0].changes_since(&before).is_empty(), "byte for byte");

    let edited_since = config(&["app1:3000 weight=4"]);
    let err = revert_lines(&edited_since, "apps", &a, &b, WAIT).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("changed since")
            && text.contains("server app1:3000 weight=4;")
            && text.contains(":3:9"),
        "names the line that differs and where: {text}"
    );
}
