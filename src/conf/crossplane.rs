//! `conf parse`: the JSON payload of `crossplane parse`, so its users can switch.
use super::error::ConfError;
use super::fs::Fs;
use super::tree::{Doc, LineIndex, TokKind};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The whole payload: every file reached from the main one.
#[derive(Debug, Serialize)]
pub struct Payload {
    /// `ok` or `failed`.
    pub status: &'static str,
    /// Every file's errors, with the file named.
    pub errors: Vec<PayloadError>,
    /// One entry per file, main file first; `includes` index into it.
    pub config: Vec<FileConfig>,
}

/// An error in crossplane's shape.
#[derive(Debug, Clone, Serialize)]
pub struct PayloadError {
    /// File (only in the top-level list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Message with its place.
    pub error: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
}

/// One file of the payload.
#[derive(Debug, Serialize)]
pub struct FileConfig {
    /// Path as reached.
    pub file: String,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// Errors of this file.
    pub errors: Vec<PayloadError>,
    /// Its top-level directives.
    pub parsed: Vec<Directive>,
}

/// One directive (or, with comments on, a `#` comment).
#[derive(Debug, Serialize)]
pub struct Directive {
    /// Name, or `#` for a comment.
    pub directive: String,
    /// 1-based line.
    pub line: usize,
    /// Arguments without quotes; a Lua block's body is its last argument.
    pub args: Vec<String>,
    /// For `include`: indexes into `config` of the included files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub includes: Option<Vec<usize>>,
    /// Comment text after `#`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Children of a block directive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<Vec<Directive>>,
}

/// What `conf parse` includes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Emit comments as `#` directives.
    pub include_comments: bool,
    /// Do not follow `include`.
    pub single_file: bool,
}

/// An argument as crossplane reports it: quotes removed and the quote
/// character unescaped inside them; bare tokens as written.
fn arg_text(raw: &[u8]) -> String {
    let s = match raw.first() {
        Some(&q @ (b'"' | b'\'')) if raw.len() >= 2 => {
            let inner = &raw[1..raw.len() - 1];
            let mut out = Vec::with_capacity(inner.len());
            let mut k = 0;
            while k < inner.len() {
                if inner[k] == b'\\' && inner.get(k + 1) == Some(&q) {
                    k += 1;
                }
                out.push(inner[k]);
                k += 1;
            }
            out
        }
        _ => raw.to_vec(),
    };
    String::from_utf8_lossy(&s).into_owned()
}

/// crossplane reports `if (…)` arguments without the outer parentheses.
fn strip_parens(args: &mut Vec<String>) {
    if let Some(first) = args.first_mut()
        && let Some(rest) = first.strip_prefix('(')
    {
        *first = rest.to_string();
    }
    if let Some(last) = args.last_mut()
        && let Some(rest) = last.strip_suffix(')')
    {
        *last = rest.to_string();
    }
    args.retain(|a| !a.is_empty());
}

struct Builder<'a> {
    fs: &'a dyn Fs,
    prefix: PathBuf,
    opts: Options,
    files: Vec<PathBuf>,
    /// Index of each path in `files`: an include-heavy config stays linear.
    index: HashMap<PathBuf, usize>,
    config: Vec<FileConfig>,
}

impl Builder<'_> {
    fn index_of(&mut self, path: PathBuf) -> usize {
        let next = self.files.len();
        let i = *self.index.entry(path.clone()).or_insert(next);
        if i == next {
            self.files.push(path);
        }
        i
    }

    fn file(&mut self, i: usize) -> FileConfig {
        let path = self.files[i].clone();
        let mut errors = Vec::new();
        let parsed = match self.fs.read(&path) {
            Err(e) => {
                errors.push(PayloadError {
                    file: None,
                    error: format!("cannot read {}: {e}", path.display()),
                    line: None,
                });
                Vec::new()
            }
            Ok(bytes) => match Doc::parse_file(&path, bytes) {
                Err(e) => {
                    errors.push(placed(&e));
                    Vec::new()
                }
                Ok(doc) => {
                    let lines = LineIndex::new(doc.bytes());
                    self.block(&doc, &lines, None, &mut errors)
                }
            },
        };
        FileConfig {
            file: path.display().to_string(),
            status: if errors.is_empty() { "ok" } else { "failed" },
            errors,
            parsed,
        }
    }

    fn block(
        &mut self,
        doc: &Doc,
        lines: &LineIndex,
        parent: Option<u32>,
        errors: &mut Vec<PayloadError>,
    ) -> Vec<Directive> {
        let mut out = Vec::new();
        let comment = |t: u32| Directive {
            directive: "#".into(),
            line: lines.line(doc.span(t).start),
            args: Vec::new(),
            includes: None,
            comment: Some(String::from_utf8_lossy(&doc.raw(t)[1..]).into_owned()),
            block: None,
        };
        for s in doc.children(parent) {
            let st = doc.stmt(s);
            if doc.is_comment(s) {
                if self.opts.include_comments {
                    out.push(comment(st.first));
                }
                continue;
            }
            let name = arg_text(doc.raw(st.first));
            let mut args: Vec<String> = doc.args(s).map(|t| arg_text(doc.raw(t))).collect();
            if doc.kind(st.term) == TokKind::Lua {
                let body = doc.raw(st.term);
                args.push(String::from_utf8_lossy(&body[1..body.len() - 1]).into_owned());
            }
            if name == "if" {
                strip_parens(&mut args);
            }
            let line = lines.line(doc.span(st.first).start);
            let includes = (name == "include" && !self.opts.single_file && args.len() == 1)
                .then(|| self.include(&args[0], line, errors));
            let block = doc
                .is_block(s)
                .then(|| self.block(doc, lines, Some(s), errors));
            out.push(Directive {
                directive: name,
                line,
                args,
                includes,
                comment: None,
                block,
            });
            if self.opts.include_comments {
                out.extend(doc.inner_comments(s).map(comment));
            }
        }
        out
    }

    fn include(&mut self, arg: &str, line: usize, errors: &mut Vec<PayloadError>) -> Vec<usize> {
        let target = self.prefix.join(arg);
        let targets = if arg.contains(['*', '?', '[']) {
            self.fs.glob(&target).unwrap_or_default()
        } else if self.fs.read(&target).is_ok() {
            vec![target]
        } else {
            errors.push(PayloadError {
                file: None,
                error: format!("cannot read {}: no such file", target.display()),
                line: Some(line),
            });
            Vec::new()
        };
        targets.into_iter().map(|t| self.index_of(t)).collect()
    }
}

fn placed(e: &ConfError) -> PayloadError {
    let error = match e.place() {
        Some(p) => format!("{} in {}:{}", e.message(), p.file.display(), p.line),
        None => e.message().to_string(),
    };
    PayloadError {
        file: None,
        error,
        line: e.line(),
    }
}

/// Builds the payload for `main`, following includes like [`super::ConfigSet::load`].
pub fn payload(main: &Path, fs: &dyn Fs, opts: Options) -> Payload {
    let mut b = Builder {
        fs,
        prefix: main.parent().map(Path::to_path_buf).unwrap_or_default(),
        opts,
        files: vec![main.to_path_buf()],
        index: HashMap::from([(main.to_path_buf(), 0)]),
        config: Vec::new(),
    };
    let mut i = 0;
    while i < b.files.len() {
        let f = b.file(i);
        b.config.push(f);
        i += 1;
    }
    let errors: Vec<PayloadError> = b
        .config
        .iter()
        .flat_map(|c| {
            c.errors.iter().map(|e| PayloadError {
                file: Some(c.file.clone()),
                ..e.clone()
            })
        })
        .collect();
    Payload {
        status: if errors.is_empty() { "ok" } else { "failed" },
        errors,
        config: b.config,
    }
}
