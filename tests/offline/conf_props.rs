//! Property tests on generated configs: lossless printing, and drain/undrain
//! that restores every byte and touches one statement.
use nginx_rollout::conf::{ConfigSet, Doc, Edit, EditOptions, Fs};
use proptest::prelude::*;
use std::io;
use std::path::{Path, PathBuf};

struct MemFs(Vec<u8>);

impl Fs for MemFs {
    fn read(&self, _: &Path) -> io::Result<Vec<u8>> {
        Ok(self.0.clone())
    }
    fn glob(&self, _: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}

fn ws() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![" ", "\t", "\n", "\r\n", "   "]),
        1..3,
    )
    .prop_map(|v| v.concat())
}

fn comment() -> impl Strategy<Value = String> {
    "#[ -~]{0,12}".prop_map(|c| format!("{c}\n"))
}

/// A bare word: may hold `}`, `#`, quotes and `$` after its first byte.
fn word() -> impl Strategy<Value = String> {
    "[a-z_/.:$][a-z0-9_/.:}#\"'=]{0,8}"
}

fn quoted() -> impl Strategy<Value = String> {
    prop_oneof![
        "\"[a-z {};#'\n]{0,8}\"",
        "'[a-z {};#\"\n]{0,8}'",
        "\"[a-z]{0,3}\\\\\"[a-z]{0,3}\"",
    ]
}

fn arg() -> impl Strategy<Value = String> {
    prop_oneof![4 => word(), 2 => quoted(), 1 => comment()]
}

fn simple_stmt() -> impl Strategy<Value = String> {
    (
        "[a-z_]{1,10}",
        prop::collection::vec((ws(), arg()), 0..4),
        ws(),
        any::<bool>(),
    )
        .prop_map(|(name, args, end_ws, tight)| {
            let mut s = name;
            for (w, a) in args {
                s.push_str(&w);
                s.push_str(&a);
            }
            if !tight || s.ends_with('\n') {
                s.push_str(&end_ws);
            }
            s.push(';');
            s
        })
}

fn server() -> impl Strategy<Value = String> {
    let addr = prop_oneof![
        "app[0-9]{1,2}:[1-9][0-9]{1,3}",
        "10\\.0\\.[0-9]\\.[0-9]{1,2}(:80)?",
        "\\[::[1-9]\\]:8[0-9]",
        "unix:/run/s[0-9]\\.sock",
    ];
    let param = prop_oneof![
        Just("weight=2".to_string()),
        Just("max_fails=3".to_string()),
        Just("fail_timeout=5s".to_string()),
        Just("backup".to_string()),
        Just("down".to_string()),
        Just("max_conns=9".to_string()),
        Just("slow_start=1s".to_string()),
        comment(),
    ];
    (addr, prop::collection::vec((ws(), param), 0..4), ws()).prop_map(|(a, ps, w)| {
        let mut s = format!("server {a}");
        for (w, p) in ps {
            s.push_str(&w);
            s.push_str(&p);
        }
        if s.ends_with('\n') {
            s.push_str(&w);
        }
        s.push(';');
        s
    })
}

fn upstream() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,6}",
        prop::collection::vec(
            (
                ws(),
                prop_oneof![4 => server(), 1 => comment(), 1 => Just("keepalive 4;".to_string())],
            ),
            1..5,
        ),
        ws(),
    )
        .prop_map(|(name, items, w)| {
            let mut s = format!("upstream {name} {{");
            for (w, i) in items {
                s.push_str(&w);
                s.push_str(&i);
            }
            s.push_str(&w);
            s.push('}');
            s
        })
}

fn config() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![4 => simple_stmt(), 1 => comment(), 2 => upstream()];
    let stmt = leaf.prop_recursive(3, 24, 5, |inner| {
        (
            "[a-z_]{1,8}",
            prop::collection::vec(word(), 0..2),
            prop::collection::vec((ws(), inner), 0..5),
            ws(),
        )
            .prop_map(|(name, args, body, w)| {
                let mut s = name;
                for a in args {
                    s.push(' ');
                    s.push_str(&a);
                }
                s.push_str(" {");
                for (w, b) in body {
                    s.push_str(&w);
                    s.push_str(&b);
                }
                s.push_str(&w);
                s.push('}');
                s
            })
    });
    (
        prop::option::of(Just("\u{feff}")),
        prop::collection::vec((ws(), stmt), 0..6),
        prop::option::of(ws()),
    )
        .prop_map(|(bom, stmts, tail)| {
            let mut s = bom.unwrap_or_default().to_string();
            for (w, st) in stmts {
                s.push_str(&w);
                s.push_str(&st);
            }
            s.push_str(&tail.unwrap_or_default());
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn generated_configs_print_back_byte_for_byte(text in config()) {
        let doc = Doc::parse(text.clone().into_bytes());
        prop_assert!(doc.is_ok(), "{:?}: {:?}", text, doc.err());
        let doc = doc.unwrap();
        prop_assert_eq!(doc.bytes(), text.as_bytes());
    }

    #[test]
    fn drain_then_undrain_restores_every_byte(text in config()) {
        let fs = MemFs(text.clone().into_bytes());
        let set = ConfigSet::load_single(Path::new("gen.conf"), &fs).unwrap();
        let force = EditOptions { force: true };
        for u in set.upstreams() {
            if set.upstreams().iter().filter(|x| x.name == u.name).count() > 1 {
                continue;
            }
            for s in &u.servers {
                if s.is_down() || u.servers.iter().filter(|x| x.address == s.address).count() > 1 {
                    continue;
                }
                let mut e = set.clone();
                prop_assert!(e.apply(&u.name, &s.address, Edit::MarkDown, force).unwrap());
                prop_assert!(e.upstream(&u.name).unwrap().servers.iter().any(|x| x.address == s.address && x.is_down()));
                prop_assert!(!e.apply(&u.name, &s.address, Edit::MarkDown, force).unwrap());
                let changes = e.changes_since(&set);
                prop_assert_eq!(changes.len(), 1);
                prop_assert_eq!(changes[0].after.len(), changes[0].before.len() + 5);
                prop_assert!(e.apply(&u.name, &s.address, Edit::Restore, force).unwrap());
                prop_assert!(e.changes_since(&set).is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_print_back(bytes in prop::collection::vec(prop::sample::select(b" \t\r\n;{}#\"'\\$ax_:0\xff".to_vec()), 0..200)) {
        if let Ok(doc) = Doc::parse(bytes.clone()) {
            prop_assert_eq!(doc.bytes(), &bytes[..]);
        }
    }
}
