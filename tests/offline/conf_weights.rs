//! The edits the live line commands and the canary ramp stand on: a weight
//! written and taken away byte for byte, a ramp's weight written only over
//! the one it expects, and an upstream's contents put back.
use nginx_rollout::conf::{ConfigSet, Edit, EditOptions, MemFs};
use std::path::Path;

const MAIN: &str = "/etc/nginx/nginx.conf";
const NO_FORCE: EditOptions = EditOptions { force: false };

fn set(text: &str) -> ConfigSet {
    ConfigSet::load(Path::new(MAIN), &MemFs::one(MAIN, text)).unwrap()
}

fn text(set: &ConfigSet) -> String {
    String::from_utf8(set.files().next().unwrap().1.to_vec()).unwrap()
}

#[test]
fn a_weight_written_then_cleared_leaves_the_line_as_it_was() {
    for line in [
        "server a:80;",
        "server a:80 max_fails=3;",
        "server a:80 max_fails=3 down;",
        "server a:80\n            backup;",
        "server a:80 # why\n  max_fails=2;",
    ] {
        let original =
            format!("http {{\r\n upstream u {{\r\n  {line}\r\n  server b:80;\r\n }}\r\n}}\r\n");
        let mut s = set(&original);
        assert!(s.apply("u", "a", Edit::SetWeight(9), NO_FORCE).unwrap());
        assert!(
            text(&s).contains("server a:80 weight=9"),
            "{line}: {}",
            text(&s)
        );
        assert!(s.apply("u", "a", Edit::SetWeight(2), NO_FORCE).unwrap());
        assert!(s.apply("u", "a", Edit::ClearWeight, NO_FORCE).unwrap());
        assert!(
            !s.apply("u", "a", Edit::ClearWeight, NO_FORCE).unwrap(),
            "twice is once"
        );
        assert_eq!(text(&s), original, "{line}");
    }
    let mut s = set("upstream u { server a weight=4 max_fails=1; server b weight=2; }");
    s.apply("u", "a", Edit::ClearWeight, NO_FORCE).unwrap();
    s.apply("u", "b", Edit::ClearWeight, NO_FORCE).unwrap();
    assert_eq!(text(&s), "upstream u { server a max_fails=1; server b; }");
}

#[test]
fn the_contents_come_back_only_over_what_was_expected() {
    let original = "http {\n    upstream u {\n        zone u 64k;\n        server a:80; # first\n        server b:80 weight=2;\n    }\n}\n";
    let mut s = set(original);
    let before = s.upstream("u").unwrap().body;
    assert_eq!(
        before,
        "\n        zone u 64k;\n        server a:80; # first\n        server b:80 weight=2;\n    "
    );
    s.apply("u", "a:80", Edit::Remove, NO_FORCE).unwrap();
    s.apply("u", "b", Edit::ClearWeight, NO_FORCE).unwrap();
    let after = s.upstream("u").unwrap().body;
    let mut undone = s.clone();
    let back = Edit::ReplaceBody {
        expect: after.clone(),
        with: before.clone(),
    };
    assert!(undone.apply("u", "", back.clone(), NO_FORCE).unwrap());
    assert_eq!(text(&undone), original, "byte for byte, the comment too");
    assert!(
        !undone.apply("u", "", back, NO_FORCE).unwrap(),
        "twice is once"
    );

    // Someone edited a line since: refused, naming it.
    s.apply("u", "b", Edit::SetWeight(7), NO_FORCE).unwrap();
    let e = s
        .apply(
            "u",
            "",
            Edit::ReplaceBody {
                expect: after,
                with: before,
            },
            NO_FORCE,
        )
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "upstream \"u\" changed since: this line reads `server b:80 weight=7;`, expected `server b:80;` in /etc/nginx/nginx.conf:4:9"
        ),
        "{e}"
    );
}

#[test]
fn a_ramp_s_weight_is_written_only_over_the_weight_it_expects() {
    let original =
        "http {\n    upstream u {\n        server a:80 weight=9;\n        server b:80;\n    }\n}\n";
    let mut s = set(original);
    let back = |expect, weight| Edit::Reweight { expect, weight };
    assert!(s.apply("u", "a", back(Some(9), None), NO_FORCE).unwrap());
    assert!(
        !s.apply("u", "a", back(Some(9), None), NO_FORCE).unwrap(),
        "written already: twice is once"
    );
    assert!(s.apply("u", "b", back(None, Some(3)), NO_FORCE).unwrap());
    assert_eq!(
        text(&s),
        "http {\n    upstream u {\n        server a:80;\n        server b:80 weight=3;\n    }\n}\n"
    );

    // Changed by hand since: refused, naming the line, and nothing written.
    let mut s = set(original);
    let e = s
        .apply("u", "a", back(Some(1), None), NO_FORCE)
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "server \"a:80\" of upstream \"u\" reads weight=9, but the rollout left weight=1 there: \
             changed by hand since, it is not written over (put weight=1 back, then run \
             `nginx-rollout resume` or `nginx-rollout rollback`; set your own weight with \
             `nginx-rollout weight` once the rollout is over) in /etc/nginx/nginx.conf:3:9"
        ),
        "{e}"
    );
    let e = s
        .apply("u", "b", back(Some(2), Some(5)), NO_FORCE)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("reads no weight=, but the rollout left weight=2 there"),
        "{e}"
    );
    let e = s
        .apply("u", "a", back(None, Some(4)), NO_FORCE)
        .unwrap_err();
    assert!(e.to_string().contains("(remove its weight=9, then"), "{e}");
    assert_eq!(text(&s), original);
}
