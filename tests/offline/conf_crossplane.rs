//! `conf parse`, `conf lex` and `conf build` give what crossplane 0.5.8
//! gives on the corpus: the expected JSON and text in fixtures/crossplane
//! were made by crossplane itself (`scripts/crossplane-expected.py`), so
//! this test needs no crossplane.
use crate::conf_corpus::{CORPUS, INVALID, INVALID_BY_NGINX, corpus_files, rel};
use nginx_rollout::conf::{
    CrossplaneBuildOptions, CrossplaneOptions, CrossplanePayload, Doc, Fs, crossplane_build,
    crossplane_lex, payload,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

const EXPECTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/crossplane");

/// The corpus seen from inside its directory, as the expected payloads were
/// made, so that file names in payloads are relative to it; nothing outside
/// it exists (an absolute include such as `/etc/nginx/proxy_params` is missing).
struct Corpus;

impl Fs for Corpus {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if path.is_absolute() {
            return Err(io::Error::from_raw_os_error(2));
        }
        std::fs::read(Path::new(CORPUS).join(path))
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        if pattern.is_absolute() {
            return Ok(Vec::new());
        }
        let abs = Path::new(CORPUS).join(pattern);
        let found = nginx_rollout::conf::HostFs.glob(&abs)?;
        Ok(found
            .into_iter()
            .map(|p| p.strip_prefix(CORPUS).unwrap().to_path_buf())
            .collect())
    }
}

/// One expected JSON lines file: corpus file → its value under `key`.
fn expected(name: &str, key: &str) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(Path::new(EXPECTED).join(name)).unwrap();
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let file = v["file"].as_str().unwrap().to_string();
            (file, v[key].take())
        })
        .collect()
}

/// The corpus files nginx accepts.
fn valid() -> Vec<String> {
    let rejected: BTreeSet<&str> = INVALID.iter().chain(&INVALID_BY_NGINX).copied().collect();
    let mut files: Vec<String> = corpus_files()
        .iter()
        .map(|p| rel(p))
        .filter(|p| !rejected.contains(p.as_str()))
        .collect();
    files.sort();
    files
}

/// crossplane reports a file cut off in the middle of a directive with an
/// empty message and no line; nginx-rollout says what nginx says. Such an
/// error of ours is checked to name the file, then compared as crossplane's.
fn align_errors(ours: &mut Value, theirs: &Value, file: &str) {
    let lists = |v: &Value| -> Vec<Vec<Value>> {
        let mut out = vec![v["errors"].as_array().cloned().unwrap_or_default()];
        for c in v["config"].as_array().into_iter().flatten() {
            out.push(c["errors"].as_array().cloned().unwrap_or_default());
        }
        out
    };
    let theirs = lists(theirs);
    let fix = |errors: &mut Value, expected: &[Value], of: &str| {
        for (e, x) in errors.as_array_mut().into_iter().flatten().zip(expected) {
            if x["error"] == "" && x["line"].is_null() {
                let msg = e["error"].as_str().unwrap_or_default().to_string();
                let named = e["file"].as_str().unwrap_or(of).to_string();
                assert!(
                    msg.contains(&named) && !e["line"].is_null(),
                    "{file}: {msg} should name {named} and a line"
                );
                e["error"] = Value::from("");
                e["line"] = Value::Null;
            }
        }
    };
    fix(&mut ours["errors"], &theirs[0], file);
    if let Some(configs) = ours["config"].as_array_mut() {
        for (c, x) in configs.iter_mut().zip(&theirs[1..]) {
            let of = c["file"].as_str().unwrap_or(file).to_string();
            fix(&mut c["errors"], x, &of);
        }
    }
}

#[test]
fn parse_matches_crossplane_on_every_valid_corpus_file() {
    let files = valid();
    assert_eq!(files.len(), 374, "valid corpus files");
    let single = expected("parse.jsonl", "payload");
    let listed: BTreeSet<&String> = single.keys().collect();
    let missing: Vec<&String> = files.iter().filter(|f| !listed.contains(f)).collect();
    assert!(
        missing.is_empty() && listed.len() == files.len(),
        "parse.jsonl must list every valid corpus file (regenerate it with scripts/crossplane-expected.py); missing: {missing:?}"
    );
    let comments = expected("parse-comments.jsonl", "payload");
    let includes = expected("parse-includes.jsonl", "payload");
    let both = expected("parse-includes-comments.jsonl", "payload");
    let mut compared = 0;
    for f in &files {
        let with_comments = comments.get(f).unwrap_or(&single[f]);
        let modes = [
            (false, true, &single[f]),
            (true, true, with_comments),
            (false, false, includes.get(f).unwrap_or(&single[f])),
            (true, false, both.get(f).unwrap_or(with_comments)),
        ];
        for (include_comments, single_file, want) in modes {
            let opts = CrossplaneOptions {
                include_comments,
                single_file,
            };
            let mut ours = serde_json::to_value(payload(Path::new(f), &Corpus, opts)).unwrap();
            align_errors(&mut ours, want, f);
            assert!(
                ours == *want,
                "{f} ({opts:?}) differs from crossplane:\nours: {}\ncrossplane: {}",
                serde_json::to_string(&ours).unwrap(),
                serde_json::to_string(want).unwrap()
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 4 * 374);
}

/// A few files whose `crossplane lex -n` tokens and `crossplane build` text are kept.
fn samples() -> Vec<(String, Value, String)> {
    let dir = Path::new(EXPECTED).join("samples");
    let mut out: Vec<(String, Value, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .map(|p| {
            let lex: Value =
                serde_json::from_slice(&std::fs::read(p.with_extension("lex.json")).unwrap())
                    .unwrap();
            let built = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), lex, built)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 10, "samples: {}", out.len());
    out
}

#[test]
fn lex_and_build_match_crossplane_on_the_samples() {
    for (name, lex, built) in samples() {
        let file = lex["file"].as_str().unwrap();
        let bytes = std::fs::read(Path::new(CORPUS).join(file)).unwrap();
        let tokens: Vec<Value> = crossplane_lex(&bytes)
            .unwrap()
            .into_iter()
            .map(|t| serde_json::json!([t.text, t.line]))
            .collect();
        assert_eq!(Value::from(tokens), lex["tokens"], "{name}: lex");

        let opts = CrossplaneOptions {
            include_comments: true,
            single_file: true,
        };
        let p = payload(Path::new(file), &Corpus, opts);
        let text = crossplane_build(&p.config[0].parsed, CrossplaneBuildOptions::default());
        assert_eq!(text, built, "{name}: build");
    }
}

#[test]
fn built_text_of_every_valid_file_is_valid_nginx() {
    let opts = CrossplaneOptions {
        include_comments: false,
        single_file: true,
    };
    for f in valid() {
        let p = payload(Path::new(&f), &Corpus, opts);
        let text = crossplane_build(&p.config[0].parsed, CrossplaneBuildOptions::default());
        Doc::parse(text.clone().into_bytes())
            .unwrap_or_else(|e| panic!("{f}: built text rejected: {}\n{text}", e.message));
        // Through JSON and back: the payload is what `conf build` reads.
        let json = serde_json::to_string(&p).unwrap();
        let read: CrossplanePayload = serde_json::from_str(&json).unwrap();
        assert_eq!(read.config[0].parsed, p.config[0].parsed, "{f}");
    }
}
