//! `conf parse`, `conf lex` and `conf build`: crossplane's JSON, so its users can switch.
//!
//! The payload is the one `crossplane parse` makes with its directive checks
//! off (`check_ctx=False, check_args=False`: nginx-rollout keeps no table of
//! nginx's directives). A file is first parsed by the engine, so a file nginx
//! rejects fails with nginx's message and place; a file nginx accepts is then
//! read with crossplane's own tokenizer ([`lex`]), whose few differences from
//! nginx's decide where crossplane puts things (see that module).
mod build;
mod lex;

use super::error::ConfError;
use super::fs::Fs;
use super::tree::Doc;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

pub use build::{BuildOptions, build};
pub use lex::{LexError, Token, lex};

/// Whether a file, or the whole payload, was read without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No error.
    Ok,
    /// At least one error.
    Failed,
}

impl Status {
    fn of<T>(errors: &[T]) -> Status {
        if errors.is_empty() {
            Status::Ok
        } else {
            Status::Failed
        }
    }
}

/// The whole payload: every file reached from the main one.
#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    /// `ok` or `failed`.
    pub status: Status,
    /// Every file's errors, with the file named.
    #[serde(default)]
    pub errors: Vec<PayloadError>,
    /// One entry per file, main file first; `includes` index into it.
    pub config: Vec<FileConfig>,
}

/// An error in crossplane's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayloadError {
    /// File (only in the top-level list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Message with its place.
    pub error: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
}

/// One file of the payload.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileConfig {
    /// Path as reached.
    pub file: String,
    /// `ok` or `failed`.
    pub status: Status,
    /// Errors of this file.
    #[serde(default)]
    pub errors: Vec<PayloadError>,
    /// Its top-level directives.
    pub parsed: Vec<Directive>,
}

/// One directive (or a `#` comment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Directive {
    /// Name, or `#` for a comment.
    pub directive: String,
    /// 1-based line.
    #[serde(default)]
    pub line: usize,
    /// Arguments without quotes; a Lua block's body is its last argument.
    #[serde(default)]
    pub args: Vec<String>,
    /// For `include`: indexes into `config` of the included files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Vec<usize>>,
    /// Comment text after `#`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Children of a block directive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<Vec<Directive>>,
}

/// What `conf parse` includes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Emit comments standing on their own as `#` directives (comments
    /// between a directive's arguments are always emitted, as crossplane does).
    pub include_comments: bool,
    /// Do not follow `include`.
    pub single_file: bool,
}

/// Python's `str.strip()` blanks, as crossplane strips `if` parentheses.
fn py_strip_start(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn py_strip_end(s: &str) -> &str {
    s.trim_end_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// crossplane's `_prepare_if_args`: the outer parentheses of `if (…)` removed.
fn prepare_if_args(args: &mut Vec<String>) {
    let (Some(first), Some(last)) = (args.first(), args.last()) else {
        return;
    };
    if !(first.starts_with('(') && last.ends_with(')')) {
        return;
    }
    let n = args.len();
    args[0] = py_strip_start(&args[0][1..]).to_string();
    let l = &args[n - 1];
    args[n - 1] = py_strip_end(&l[..l.len() - 1]).to_string();
    let start = usize::from(args[0].is_empty());
    let end = n - usize::from(args[n - 1].is_empty());
    *args = args
        .get(start..end)
        .map(<[String]>::to_vec)
        .unwrap_or_default();
}

/// A payload error for an `include` that could not be opened, worded as
/// Python words it (`[Errno 2] No such file or directory: 'x.conf'`).
fn open_error(path: &Path, e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(n) => format!(
            "[Errno {n}] {}: '{}'",
            text.trim_end_matches(&format!(" (os error {n})")),
            path.display()
        ),
        None => format!("{text}: '{}'", path.display()),
    }
}

struct Builder<'a> {
    fs: &'a dyn Fs,
    /// crossplane's `config_dir`: the main file's directory.
    prefix: PathBuf,
    opts: Options,
    files: Vec<PathBuf>,
    /// Index of each path in `files`: an include-heavy config stays linear.
    index: HashMap<PathBuf, usize>,
}

/// Reads one file's tokens into directives, as crossplane's `_parse` does.
struct FileParser<'b, 'a> {
    builder: &'b mut Builder<'a>,
    tokens: Vec<Token>,
    at: usize,
    errors: Vec<PayloadError>,
}

/// The token stream ended inside a directive.
struct Truncated;

impl FileParser<'_, '_> {
    fn next(&mut self) -> Result<&Token, Truncated> {
        let t = self.tokens.get(self.at).ok_or(Truncated)?;
        self.at += 1;
        Ok(t)
    }

    fn block(&mut self) -> Result<Vec<Directive>, Truncated> {
        let mut parsed = Vec::new();
        while let Ok(t) = self.next() {
            if t.text == "}" && !t.quoted {
                break;
            }
            let (directive, line) = (t.text.clone(), t.line);
            if directive.starts_with('#') && !t.quoted {
                if self.builder.opts.include_comments {
                    parsed.push(comment(line, &directive[1..]));
                }
                continue;
            }
            let mut args = Vec::new();
            let mut in_args = Vec::new();
            let mut t = self.next()?.clone();
            while t.quoted || !matches!(t.text.as_str(), "{" | ";" | "}") {
                match t.text.strip_prefix('#') {
                    Some(c) if !t.quoted => in_args.push(c.to_string()),
                    _ => args.push(t.text),
                }
                t = self.next()?.clone();
            }
            if directive == "if" {
                prepare_if_args(&mut args);
            }
            let includes = (directive == "include" && !self.builder.opts.single_file).then(|| {
                match args.first() {
                    Some(arg) => self.include(&arg.clone(), line),
                    None => Vec::new(),
                }
            });
            let block = (t.text == "{" && !t.quoted)
                .then(|| self.block())
                .transpose()?;
            parsed.push(Directive {
                directive,
                line,
                args,
                includes,
                comment: None,
                block,
            });
            parsed.extend(in_args.iter().map(|c| comment(line, c)));
        }
        Ok(parsed)
    }

    fn include(&mut self, arg: &str, line: usize) -> Vec<usize> {
        let b = &mut *self.builder;
        let pattern = b.prefix.join(arg);
        let targets = if arg.contains(['*', '?', '[']) {
            b.fs.glob(&pattern).unwrap_or_default()
        } else {
            match b.fs.read(&pattern) {
                Ok(_) => vec![pattern],
                Err(e) => {
                    self.errors.push(PayloadError {
                        file: None,
                        error: open_error(&pattern, &e),
                        line: Some(line),
                    });
                    Vec::new()
                }
            }
        };
        targets.into_iter().map(|t| b.index_of(t)).collect()
    }
}

fn comment(line: usize, text: &str) -> Directive {
    Directive {
        directive: "#".into(),
        line,
        args: Vec::new(),
        includes: None,
        comment: Some(text.to_string()),
        block: None,
    }
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
        let mut parsed = Vec::new();
        match self.fs.read(&path) {
            Err(e) => errors.push(PayloadError {
                file: None,
                error: open_error(&path, &e),
                line: None,
            }),
            Ok(bytes) => match Doc::parse_file(&path, bytes) {
                Err(e) => errors.push(placed(&e)),
                Ok(doc) => match lex(doc.bytes()) {
                    Err(e) => errors.push(PayloadError {
                        file: None,
                        error: format!("{} in {}:{}", e.message, path.display(), e.line),
                        line: Some(e.line),
                    }),
                    Ok(tokens) => {
                        let mut p = FileParser {
                            builder: self,
                            tokens,
                            at: 0,
                            errors: Vec::new(),
                        };
                        let block = p.block();
                        errors = p.errors;
                        match block {
                            Ok(b) => parsed = b,
                            Err(Truncated) => errors.push(PayloadError {
                                file: None,
                                error: format!("unexpected end of file in {}", path.display()),
                                line: None,
                            }),
                        }
                    }
                },
            },
        }
        FileConfig {
            file: path.display().to_string(),
            status: Status::of(&errors),
            errors,
            parsed,
        }
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

/// Builds the payload for `main`, following includes from the main file's
/// directory as crossplane (and nginx) do.
pub fn payload(main: &Path, fs: &dyn Fs, opts: Options) -> Payload {
    let mut b = Builder {
        fs,
        prefix: main.parent().map(Path::to_path_buf).unwrap_or_default(),
        opts,
        files: vec![main.to_path_buf()],
        index: HashMap::from([(main.to_path_buf(), 0)]),
    };
    let mut config = Vec::new();
    let mut i = 0;
    while i < b.files.len() {
        config.push(b.file(i));
        i += 1;
    }
    let errors: Vec<PayloadError> = config
        .iter()
        .flat_map(|c: &FileConfig| {
            c.errors.iter().map(|e| PayloadError {
                file: Some(c.file.clone()),
                ..e.clone()
            })
        })
        .collect();
    Payload {
        status: Status::of(&errors),
        errors,
        config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::MemFs;

    fn args(v: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        prepare_if_args(&mut a);
        a
    }

    #[test]
    fn if_parentheses_are_removed_as_crossplane_removes_them() {
        assert_eq!(args(&["($a", "!=", "", ")"]), ["$a", "!=", ""]);
        assert_eq!(args(&["( $a )"]), ["$a"]);
        assert_eq!(args(&["(", "-f", "$x", ")"]), ["-f", "$x"]);
        // Only when both ends have their parenthesis.
        assert_eq!(args(&["($slow"]), ["($slow"]);
        assert_eq!(args(&["$slow)"]), ["$slow)"]);
    }

    #[test]
    fn comments_between_arguments_follow_the_directive() {
        let fs = MemFs::one("n.conf", "a b # c\n d;\n# own line\n");
        let p = payload(Path::new("n.conf"), &fs, Options::default());
        let parsed = &p.config[0].parsed;
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].args, ["b", "d"]);
        assert_eq!(parsed[1].comment.as_deref(), Some(" c"));
        assert_eq!(parsed[1].line, 1);
        let all = payload(
            Path::new("n.conf"),
            &fs,
            Options {
                include_comments: true,
                single_file: true,
            },
        );
        assert_eq!(all.config[0].parsed.len(), 3);
    }

    #[test]
    fn a_missing_include_is_worded_as_python_words_it() {
        let fs = MemFs::one("d/n.conf", "include x.conf;\n");
        let p = payload(Path::new("d/n.conf"), &fs, Options::default());
        assert_eq!(p.status, Status::Failed);
        assert_eq!(p.errors[0].file.as_deref(), Some("d/n.conf"));
        assert_eq!(p.errors[0].line, Some(1));
        assert!(
            p.errors[0].error.ends_with(": 'd/x.conf'"),
            "{}",
            p.errors[0].error
        );
    }
}
