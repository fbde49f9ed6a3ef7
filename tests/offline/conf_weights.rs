//! The edits the live line commands and the canary ramp stand on: a weight
//! written and taken away byte for byte, and an upstream's contents put back.
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
