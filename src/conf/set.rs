//! A main configuration file and every file it includes.
use super::edit::{self, Edit, EditOptions};
use super::error::{ConfError, Place};
use super::fs::Fs;
use super::include::{self, MissingIncludes, UnreadInclude};
use super::tree::{Doc, LineIndex, MAX_DEPTH};
use super::upstream::{self, Context, Upstream};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// One loaded file.
#[derive(Debug, Clone)]
struct File {
    path: PathBuf,
    doc: Doc,
    /// Context of the first `include` that pulled the file in.
    context: Option<Context>,
}

/// The main file and every included file, in the order nginx reads them.
#[derive(Debug, Clone)]
pub struct ConfigSet {
    files: Vec<File>,
    unread: Vec<UnreadInclude>,
}

/// A file whose bytes differ between two versions of a [`ConfigSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// Bytes before.
    pub before: Vec<u8>,
    /// Bytes after.
    pub after: Vec<u8>,
}

/// How [`ConfigSet::load_with`] reads includes.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Where relative include paths are taken from; by default the main
    /// file's directory, as nginx does (its conf prefix).
    pub prefix: Option<PathBuf>,
    /// What an include that cannot be read is.
    pub missing: MissingIncludes,
}

struct Loader<'a> {
    fs: &'a dyn Fs,
    prefix: PathBuf,
    missing: MissingIncludes,
    files: Vec<File>,
    loaded: HashSet<PathBuf>,
    stack: Vec<PathBuf>,
    unread: Vec<UnreadInclude>,
    unread_paths: HashSet<PathBuf>,
    /// The upstream block being walked, if any.
    upstream: Option<String>,
    /// Blocks and includes the walk is inside, all files together: bounded
    /// by [`MAX_DEPTH`] so that a chain of includes cannot overflow the stack.
    depth: usize,
}

impl Loader<'_> {
    fn load(&mut self, path: &Path, context: Option<Context>) -> Result<(), ConfError> {
        let bytes = self
            .fs
            .read(path)
            .map_err(|e| ConfError::new(format!("cannot read {}: {e}", path.display())))?;
        self.add(path, bytes, context)
    }

    fn add(
        &mut self,
        path: &Path,
        bytes: Vec<u8>,
        context: Option<Context>,
    ) -> Result<(), ConfError> {
        let doc = Doc::parse_file(path, bytes)?;
        self.loaded.insert(path.to_path_buf());
        self.stack.push(path.to_path_buf());
        let idx = self.files.len();
        self.files.push(File {
            path: path.to_path_buf(),
            doc,
            context,
        });
        let mut lines = None;
        self.walk(idx, None, context, &mut lines)?;
        self.stack.pop();
        Ok(())
    }

    /// One level deeper, at statement `s` of file `idx`; an error past [`MAX_DEPTH`].
    fn enter(
        &mut self,
        idx: usize,
        s: u32,
        lines: &mut Option<LineIndex>,
    ) -> Result<(), ConfError> {
        self.depth += 1;
        if self.depth <= MAX_DEPTH {
            return Ok(());
        }
        let f = &self.files[idx];
        let at = f.doc.span(f.doc.stmt(s).first).start;
        let place = lines
            .get_or_insert_with(|| LineIndex::new(f.doc.bytes()))
            .place(&f.path, f.doc.bytes(), at);
        Err(ConfError::at(
            format!(
                "blocks and includes nested deeper than {MAX_DEPTH} levels (nginx-rollout's limit)"
            ),
            place,
        ))
    }

    /// An include that cannot be read: an error, or remembered and skipped.
    fn unreadable(&mut self, place: Place, path: PathBuf, reason: String) -> Result<(), ConfError> {
        match self.missing {
            MissingIncludes::Fail => Err(ConfError::at(
                format!("cannot read {}: {reason}", path.display()),
                place,
            )),
            // Each missing file is reported once, at its first include.
            MissingIncludes::Skip if !self.unread_paths.insert(path.clone()) => Ok(()),
            MissingIncludes::Skip => {
                self.unread.push(UnreadInclude {
                    place,
                    path,
                    reason,
                    upstream: self.upstream.clone(),
                });
                Ok(())
            }
        }
    }

    fn walk(
        &mut self,
        idx: usize,
        parent: Option<u32>,
        ctx: Option<Context>,
        lines: &mut Option<LineIndex>,
    ) -> Result<(), ConfError> {
        let stmts: Vec<u32> = self.files[idx].doc.children(parent).collect();
        for s in stmts {
            let doc = &self.files[idx].doc;
            if doc.is_comment(s) {
                continue;
            }
            let name = doc.name(s);
            if doc.is_block(s) {
                let inner = match name.as_slice() {
                    b"http" => Some(Context::Http),
                    b"stream" => Some(Context::Stream),
                    _ => ctx,
                };
                let outer = self.upstream.clone();
                if name == b"upstream" {
                    self.upstream = doc.arg_values(s).into_iter().next();
                }
                self.enter(idx, s, lines)?;
                self.walk(idx, Some(s), inner, lines)?;
                self.depth -= 1;
                self.upstream = outer;
            } else if name == b"include" {
                let file = &self.files[idx];
                let (doc, path) = (&file.doc, &file.path);
                let offset = doc.span(doc.stmt(s).first).start;
                // Places are made only when needed, from one line index per file.
                let here = lines
                    .get_or_insert_with(|| LineIndex::new(doc.bytes()))
                    .place(path, doc.bytes(), offset);
                let args = doc.arg_values(s);
                let [arg] = args.as_slice() else {
                    return Err(ConfError::at(
                        "invalid number of arguments in \"include\" directive",
                        here,
                    ));
                };
                let targets = match include::targets(self.fs, &self.prefix, arg) {
                    Ok(t) => t,
                    Err(e) => {
                        let pattern = self.prefix.join(arg);
                        self.unreadable(here, pattern, format!("cannot expand: {e}"))?;
                        continue;
                    }
                };
                for t in targets {
                    if let Some(at) = self.stack.iter().position(|p| *p == t) {
                        let chain: Vec<String> = self.stack[at..]
                            .iter()
                            .chain(std::iter::once(&t))
                            .map(|p| p.display().to_string())
                            .collect();
                        return Err(ConfError::at(
                            format!("include cycle: {}", chain.join(" -> ")),
                            here,
                        ));
                    }
                    if self.loaded.contains(&t) {
                        continue;
                    }
                    match self.fs.read(&t) {
                        Ok(bytes) => {
                            self.enter(idx, s, lines)?;
                            self.add(&t, bytes, ctx)?;
                            self.depth -= 1;
                        }
                        Err(e) => self.unreadable(here.clone(), t, e.to_string())?,
                    }
                }
            }
        }
        Ok(())
    }
}

impl ConfigSet {
    /// Loads `main` and, recursively, every file it includes. Relative
    /// include paths are taken from the main file's directory (nginx's conf
    /// prefix with `-c`). An include cycle, or one that cannot be read, is an error.
    pub fn load(main: &Path, fs: &dyn Fs) -> Result<ConfigSet, ConfError> {
        ConfigSet::load_with(main, fs, &LoadOptions::default())
    }

    /// [`ConfigSet::load`] with another prefix, or skipping includes that
    /// cannot be read (listed by [`ConfigSet::unread_includes`]).
    pub fn load_with(main: &Path, fs: &dyn Fs, opts: &LoadOptions) -> Result<ConfigSet, ConfError> {
        let mut loader = Loader {
            fs,
            prefix: opts
                .prefix
                .clone()
                .unwrap_or_else(|| main.parent().map(Path::to_path_buf).unwrap_or_default()),
            missing: opts.missing,
            files: Vec::new(),
            loaded: HashSet::new(),
            stack: Vec::new(),
            unread: Vec::new(),
            unread_paths: HashSet::new(),
            upstream: None,
            depth: 0,
        };
        loader.load(main, None)?;
        Ok(ConfigSet {
            files: loader.files,
            unread: loader.unread,
        })
    }

    /// Includes that could not be read (only when loaded with [`MissingIncludes::Skip`]).
    pub fn unread_includes(&self) -> &[UnreadInclude] {
        &self.unread
    }

    /// `error`, with the unread includes that could hold what was not found
    /// (those inside upstream `upstream`, or all of them) named after it.
    fn unread_note(&self, error: ConfError, upstream: Option<&str>) -> ConfError {
        let unread: Vec<String> = self
            .unread
            .iter()
            .filter(|u| upstream.is_none() || u.upstream.as_deref() == upstream)
            .map(|u| {
                format!(
                    "{} ({}:{}:{})",
                    u.path.display(),
                    u.place.file.display(),
                    u.place.line,
                    u.place.column
                )
            })
            .collect();
        if unread.is_empty() {
            return error;
        }
        let message = format!(
            "{}; not searched: {} include{} that could not be read: {}",
            error.message(),
            unread.len(),
            if unread.len() == 1 { "" } else { "s" },
            unread.join(", ")
        );
        match error.place() {
            Some(p) => ConfError::at(message, p.clone()),
            None => ConfError::new(message),
        }
    }

    /// Loads `main` alone, without following its includes.
    pub fn load_single(main: &Path, fs: &dyn Fs) -> Result<ConfigSet, ConfError> {
        let bytes = fs
            .read(main)
            .map_err(|e| ConfError::new(format!("cannot read {}: {e}", main.display())))?;
        Ok(ConfigSet {
            files: vec![File {
                path: main.to_path_buf(),
                doc: Doc::parse_file(main, bytes)?,
                context: None,
            }],
            unread: Vec::new(),
        })
    }

    /// The main file.
    pub fn main_path(&self) -> &Path {
        &self.files[0].path
    }

    /// Every file with its current bytes, main file first.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.files.iter().map(|f| (f.path.as_path(), f.doc.bytes()))
    }

    /// The parsed document of each file, main file first.
    pub fn docs(&self) -> impl Iterator<Item = (&Path, &Doc)> {
        self.files.iter().map(|f| (f.path.as_path(), &f.doc))
    }

    /// Every `upstream` block (http and stream), with file and statement index.
    fn upstream_stmts(&self) -> Vec<(usize, u32, Context)> {
        fn walk(
            doc: &Doc,
            parent: Option<u32>,
            ctx: Option<Context>,
            fi: usize,
            out: &mut Vec<(usize, u32, Context)>,
        ) {
            for s in doc.children(parent) {
                if !doc.is_block(s) {
                    continue;
                }
                if doc.is_named(s, "upstream") {
                    out.push((fi, s, ctx.unwrap_or(Context::Http)));
                    continue;
                }
                let inner = if doc.is_named(s, "http") {
                    Some(Context::Http)
                } else if doc.is_named(s, "stream") {
                    Some(Context::Stream)
                } else {
                    ctx
                };
                walk(doc, Some(s), inner, fi, out);
            }
        }
        let mut out = Vec::new();
        for (fi, f) in self.files.iter().enumerate() {
            walk(&f.doc, None, f.context, fi, &mut out);
        }
        out
    }

    /// The typed view of every upstream, in file order.
    pub fn upstreams(&self) -> Vec<Upstream> {
        let mut lines: Vec<Option<LineIndex>> = self.files.iter().map(|_| None).collect();
        self.upstream_stmts()
            .into_iter()
            .map(|(fi, s, ctx)| {
                let f = &self.files[fi];
                let li = lines[fi].get_or_insert_with(|| LineIndex::new(f.doc.bytes()));
                upstream::read(&f.doc, li, &f.path, s, ctx)
            })
            .collect()
    }

    /// The upstream `name` designates: the one so named, or, when an `http`
    /// and a `stream` upstream share the name, the one `http:NAME` or
    /// `stream:NAME` says. Anything else is an error listing what exists.
    fn find(&self, name: &str) -> Result<(usize, u32, Context), ConfError> {
        let all = self.upstream_stmts();
        let name_of = |fi: usize, s: u32| self.files[fi].doc.arg_values(s).into_iter().next();
        let named = |n: &str, ctx: Option<Context>| -> Vec<(usize, u32, Context)> {
            all.iter()
                .filter(|&&(fi, s, c)| {
                    ctx.is_none_or(|ctx| ctx == c) && name_of(fi, s).is_some_and(|x| x == n)
                })
                .copied()
                .collect()
        };
        let mut found = named(name, None);
        if found.is_empty()
            && let Some((prefix, rest)) = name.split_once(':')
        {
            let ctx = match prefix {
                "http" => Some(Context::Http),
                "stream" => Some(Context::Stream),
                _ => None,
            };
            if ctx.is_some() {
                found = named(rest, ctx);
            }
        }
        match found.as_slice() {
            [one] => Ok(*one),
            [] => {
                let names: Vec<String> = all
                    .iter()
                    .filter_map(|&(fi, s, _)| name_of(fi, s))
                    .collect();
                Err(self.unread_note(
                    ConfError::new(format!(
                        "unknown upstream \"{name}\" in {} (available: {})",
                        self.main_path().display(),
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    )),
                    None,
                ))
            }
            many => {
                let places: Vec<String> = many
                    .iter()
                    .map(|&(fi, s, c)| {
                        let f = &self.files[fi];
                        let at = f.doc.span(f.doc.stmt(s).first).start;
                        let line = LineIndex::new(f.doc.bytes()).line(at);
                        format!("{c}:{name} ({}:{line})", f.path.display())
                    })
                    .collect();
                Err(ConfError::new(format!(
                    "upstream \"{name}\" is defined {} times: {}; say which, e.g. {}",
                    many.len(),
                    places.join(", "),
                    places
                        .iter()
                        .map(|p| p.split(' ').next().unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )))
            }
        }
    }

    /// The upstream called `name` (`http:NAME` / `stream:NAME` when an http
    /// and a stream upstream share it); an unknown name is an error listing
    /// the available ones.
    pub fn upstream(&self, name: &str) -> Result<Upstream, ConfError> {
        let (fi, s, ctx) = self.find(name)?;
        let f = &self.files[fi];
        Ok(upstream::read(
            &f.doc,
            &LineIndex::new(f.doc.bytes()),
            &f.path,
            s,
            ctx,
        ))
    }

    /// Applies `edit` to server `server` (address as written, or unique host)
    /// of upstream `upstream`, in the file that holds it. Only that server
    /// statement's bytes change (for [`Edit::Add`], `server` is ignored and a
    /// new statement is inserted after the last server; for
    /// [`Edit::ReplaceBody`], it is ignored too). Returns whether
    /// anything changed: editing twice is the same as editing once.
    pub fn apply(
        &mut self,
        upstream: &str,
        server: &str,
        edit: Edit,
        opts: EditOptions,
    ) -> Result<bool, ConfError> {
        let (fi, us, _) = self.find(upstream)?;
        let f = &self.files[fi];
        let Some(splice) = edit::splice_for(&f.doc, &f.path, us, server, &edit, opts)
            .map_err(|e| self.unread_note(e, Some(upstream)))?
        else {
            return Ok(false);
        };
        let mut bytes = f.doc.bytes().to_vec();
        bytes.splice(splice.range, splice.with);
        let doc = Doc::parse_file(&f.path, bytes)?;
        self.files[fi].doc = doc;
        Ok(true)
    }

    /// Files whose bytes differ from those in `before`.
    pub fn changes_since(&self, before: &ConfigSet) -> Vec<FileChange> {
        self.files
            .iter()
            .filter_map(|f| {
                let old = before.files.iter().find(|b| b.path == f.path)?;
                (old.doc.bytes() != f.doc.bytes()).then(|| FileChange {
                    path: f.path.clone(),
                    before: old.doc.bytes().to_vec(),
                    after: f.doc.bytes().to_vec(),
                })
            })
            .collect()
    }
}

/// Whether two names of an upstream as [`ConfigSet`] takes them (`NAME`,
/// `http:NAME`, `stream:NAME`) may designate the same one: the same name,
/// and not two different contexts (`apps` may be `http:apps`).
pub fn may_name_the_same_upstream(a: &str, b: &str) -> bool {
    fn split(name: &str) -> (Option<&str>, &str) {
        match name.split_once(':') {
            Some((ctx @ ("http" | "stream"), rest)) => (Some(ctx), rest),
            _ => (None, name),
        }
    }
    let ((ca, na), (cb, nb)) = (split(a), split(b));
    na == nb && (ca.is_none() || cb.is_none() || ca == cb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_named_with_or_without_its_context_is_the_same() {
        assert!(may_name_the_same_upstream("apps", "http:apps"));
        assert!(may_name_the_same_upstream("stream:apps", "apps"));
        assert!(may_name_the_same_upstream("http:apps", "http:apps"));
        assert!(!may_name_the_same_upstream("http:apps", "stream:apps"));
        assert!(!may_name_the_same_upstream("apps", "http:web"));
    }
}
