//! The lossless syntax tree of one file: the file's bytes, a flat arena of
//! token starts into them, and a flat pre-order arena of statements.
//!
//! Nothing is copied out of the buffer; printing is writing the buffer. A
//! token's end is not stored: it is found again by scanning the token from
//! its start (the lexer decides it from the first byte), which halves the
//! token arena, the largest allocation after the bytes themselves.
use super::error::{ConfError, Place};
use super::lexer::{self, MAX_TOKEN};

/// Deepest nesting of blocks accepted. nginx has no limit, but no real
/// configuration comes near it (`http { server { location { if { … } } } }`
/// is four), and every walk over the tree may then recurse safely.
pub const MAX_DEPTH: usize = 200;
use super::lua;
use std::ops::Range;
use std::path::Path;

/// A token's byte range in the file. Its kind follows from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The range, for slicing.
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokKind {
    /// A bare token.
    Word,
    /// A `"…"` or `'…'` token.
    Quoted,
    /// `# …` up to the line end.
    Comment,
    /// `;`
    Semi,
    /// `{` opening a block.
    Open,
    /// `}` closing a block.
    Close,
    /// A whole raw `{ … }` Lua body of a `*_by_lua_block` directive.
    Lua,
}

/// One statement: a directive (`name args ;`, `name args { … }`, a Lua
/// block), or a comment standing where a directive could start.
#[derive(Debug, Clone, Copy)]
pub struct Stmt {
    /// Token index of the name (or of the comment).
    pub first: u32,
    /// Token index of the terminator: `;`, `{`, the Lua body, or the comment.
    pub term: u32,
    /// Token index of the closing `}` of a block, else `term`.
    pub close: u32,
    /// Statement index just past this statement's descendants.
    pub end: u32,
}

/// A syntax error: byte offset and nginx-style message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset in the file.
    pub offset: usize,
    /// Message, as nginx words it.
    pub message: String,
}

/// The parsed form of one file.
#[derive(Debug, Clone)]
pub struct Doc {
    src: Vec<u8>,
    /// Byte offset of each token's first byte.
    starts: Vec<u32>,
    /// Indices (ascending) of the tokens that are whole Lua bodies: they
    /// start with `{` like an opening brace.
    lua: Vec<u32>,
    stmts: Vec<Stmt>,
}

/// The token arenas [`scan`] builds.
struct Scanned {
    starts: Vec<u32>,
    lua: Vec<u32>,
    stmts: Vec<Stmt>,
}

const OPEN_PENDING: u32 = u32::MAX;

fn unexpected(offset: usize, byte: u8) -> SyntaxError {
    SyntaxError {
        offset,
        message: format!("unexpected \"{}\"", char::from(byte).escape_default()),
    }
}

impl Doc {
    /// Parses a file's bytes the way nginx's tokenizer and `ngx_conf_parse` do.
    pub fn parse(src: Vec<u8>) -> Result<Doc, SyntaxError> {
        let t = scan(&src)?;
        Ok(Doc::new(src, t))
    }

    /// Parses the bytes of file `path`; a syntax error names its place.
    pub fn parse_file(path: &Path, src: Vec<u8>) -> Result<Doc, ConfError> {
        match scan(&src) {
            Ok(t) => Ok(Doc::new(src, t)),
            Err(e) => Err(ConfError::at(e.message, Place::at(path, &src, e.offset))),
        }
    }

    fn new(src: Vec<u8>, t: Scanned) -> Doc {
        Doc {
            src,
            starts: t.starts,
            lua: t.lua,
            stmts: t.stmts,
        }
    }
}

/// Tokenizes `src` and builds its statement arena.
fn scan(src: &[u8]) -> Result<Scanned, SyntaxError> {
    if src.len() >= u32::MAX as usize {
        return Err(SyntaxError {
            offset: 0,
            message: "file larger than 4 GiB".into(),
        });
    }
    // About one token per 9 bytes in real and generated configs.
    let mut toks: Vec<u32> = Vec::with_capacity(src.len() / 8 + 16);
    let mut lua_toks: Vec<u32> = Vec::new();
    let mut stmts: Vec<Stmt> = Vec::with_capacity(src.len() / 40 + 16);
    let mut open: Vec<u32> = Vec::new();
    let mut first: Option<u32> = None;
    let mut after_quote = false;
    let n = src.len();
    // A UTF-8 byte order mark is kept as bytes but is not part of a token.
    let mut pos = if src.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    loop {
        let skipped = token_of(lexer::space(&src[pos..]));
        if after_quote && skipped == 0 && pos < n && !matches!(src[pos], b';' | b'{' | b')') {
            return Err(unexpected(pos, src[pos]));
        }
        after_quote = false;
        pos += skipped;
        if pos >= n {
            break;
        }
        let idx = toks.len() as u32;
        let rest = &src[pos..];
        let len = match rest[0] {
            b';' => {
                let Some(f) = first.take() else {
                    return Err(unexpected(pos, b';'));
                };
                stmts.push(Stmt {
                    first: f,
                    term: idx,
                    close: idx,
                    end: stmts.len() as u32 + 1,
                });
                1
            }
            b'{' => {
                let Some(f) = first.take() else {
                    return Err(unexpected(pos, b'{'));
                };
                let start = toks[f as usize] as usize;
                let name = &src[start..start + token_len(&src[start..], false)];
                let lua = match name.first() {
                    Some(b'"' | b'\'') => lexer::unescape(name).ends_with(b"_by_lua_block"),
                    _ => name.ends_with(b"_by_lua_block"),
                };
                if lua {
                    lua_toks.push(idx);
                    let len = lua::block_len(rest).ok_or_else(|| SyntaxError {
                        offset: n,
                        message: "unexpected end of file, expecting \"}\"".into(),
                    })?;
                    stmts.push(Stmt {
                        first: f,
                        term: idx,
                        close: idx,
                        end: stmts.len() as u32 + 1,
                    });
                    len
                } else {
                    if open.len() >= MAX_DEPTH {
                        return Err(SyntaxError {
                            offset: pos,
                            message: format!(
                                "blocks nested deeper than {MAX_DEPTH} levels (nginx-rollout's limit)"
                            ),
                        });
                    }
                    open.push(stmts.len() as u32);
                    stmts.push(Stmt {
                        first: f,
                        term: idx,
                        close: OPEN_PENDING,
                        end: OPEN_PENDING,
                    });
                    1
                }
            }
            b'}' => {
                if first.is_some() {
                    return Err(unexpected(pos, b'}'));
                }
                let Some(o) = open.pop() else {
                    return Err(unexpected(pos, b'}'));
                };
                let end = stmts.len() as u32;
                let s = &mut stmts[o as usize];
                s.close = idx;
                s.end = end;
                1
            }
            b'#' => {
                let len = token_of(lexer::comment(rest));
                if first.is_none() {
                    stmts.push(Stmt {
                        first: idx,
                        term: idx,
                        close: idx,
                        end: stmts.len() as u32 + 1,
                    });
                }
                len
            }
            b'"' | b'\'' => {
                let Ok((_, quoted)) = lexer::quoted(rest) else {
                    return Err(SyntaxError {
                        offset: n,
                        message: "unexpected end of file, expecting \";\" or \"}\"".into(),
                    });
                };
                after_quote = true;
                first.get_or_insert(idx);
                quoted.len()
            }
            _ => {
                let len = token_of(lexer::word(rest));
                first.get_or_insert(idx);
                len
            }
        };
        if len > MAX_TOKEN && !matches!(src[pos], b'{' | b'#') {
            let shown = String::from_utf8_lossy(&src[pos..pos + 32]);
            return Err(SyntaxError {
                offset: pos,
                message: format!("too long parameter \"{shown}...\" started"),
            });
        }
        toks.push(pos as u32);
        pos += len;
    }
    if first.is_some() {
        return Err(SyntaxError {
            offset: n,
            message: "unexpected end of file, expecting \";\" or \"}\"".into(),
        });
    }
    if !open.is_empty() {
        return Err(SyntaxError {
            offset: n,
            message: "unexpected end of file, expecting \"}\"".into(),
        });
    }
    Ok(Scanned {
        starts: toks,
        lua: lua_toks,
        stmts,
    })
}

/// The length of what an infallible scanner of [`lexer`] took.
#[inline]
fn token_of(scanned: nom::IResult<&[u8], &[u8]>) -> usize {
    scanned.map_or(0, |(_, token)| token.len())
}

/// Length of the token that starts `rest` (a Lua body if `lua`), by the
/// same lexer calls [`scan`] made; `rest` is a token [`scan`] accepted.
fn token_len(rest: &[u8], lua: bool) -> usize {
    match rest.first() {
        Some(b';' | b'}') => 1,
        Some(b'{') if lua => lua::block_len(rest).unwrap_or(rest.len()),
        Some(b'{') => 1,
        Some(b'#') => token_of(lexer::comment(rest)),
        Some(b'"' | b'\'') => lexer::quoted(rest).map_or(rest.len(), |(_, t)| t.len()),
        _ => token_of(lexer::word(rest)),
    }
}

impl Doc {
    /// The file's bytes: printing the document is writing these.
    pub fn bytes(&self) -> &[u8] {
        &self.src
    }

    /// Gives the buffer back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.src
    }

    /// Number of tokens.
    pub fn token_count(&self) -> usize {
        self.starts.len()
    }

    /// Whether token `t` (which starts with `{`) is a Lua body.
    fn is_lua(&self, t: u32) -> bool {
        self.lua.binary_search(&t).is_ok()
    }

    /// Span of token `t`.
    pub fn span(&self, t: u32) -> Span {
        let start = self.starts[t as usize];
        let rest = &self.src[start as usize..];
        let lua = rest.first() == Some(&b'{') && self.is_lua(t);
        Span {
            start,
            end: start + token_len(rest, lua) as u32,
        }
    }

    /// Raw bytes of token `t`.
    pub fn raw(&self, t: u32) -> &[u8] {
        &self.src[self.span(t).range()]
    }

    /// Kind of token `t`.
    pub fn kind(&self, t: u32) -> TokKind {
        match self.src[self.starts[t as usize] as usize] {
            b';' => TokKind::Semi,
            b'{' if self.is_lua(t) => TokKind::Lua,
            b'{' => TokKind::Open,
            b'}' => TokKind::Close,
            b'#' => TokKind::Comment,
            b'"' | b'\'' => TokKind::Quoted,
            _ => TokKind::Word,
        }
    }

    /// Statement `s`.
    pub fn stmt(&self, s: u32) -> Stmt {
        self.stmts[s as usize]
    }

    /// Top-level statements (`None`) or the children of block statement `parent`.
    pub fn children(&self, parent: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        let (mut i, end) = match parent {
            None => (0, self.stmts.len() as u32),
            Some(p) => (p + 1, self.stmts[p as usize].end),
        };
        std::iter::from_fn(move || {
            if i >= end {
                return None;
            }
            let cur = i;
            i = self.stmts[cur as usize].end;
            Some(cur)
        })
    }

    /// Whether statement `s` is a comment.
    pub fn is_comment(&self, s: u32) -> bool {
        self.kind(self.stmts[s as usize].first) == TokKind::Comment
    }

    /// Whether statement `s` has a `{ … }` block of directives.
    pub fn is_block(&self, s: u32) -> bool {
        self.kind(self.stmts[s as usize].term) == TokKind::Open
    }

    /// The name's value of statement `s` (unquoted).
    pub fn name(&self, s: u32) -> Vec<u8> {
        lexer::unescape(self.raw(self.stmts[s as usize].first))
    }

    /// Whether the name of statement `s` is exactly `name` as written.
    pub fn is_named(&self, s: u32, name: &str) -> bool {
        self.raw(self.stmts[s as usize].first) == name.as_bytes()
    }

    /// Token indices of the arguments of statement `s` (comments between them skipped).
    pub fn args(&self, s: u32) -> impl Iterator<Item = u32> + '_ {
        let st = self.stmts[s as usize];
        (st.first + 1..st.term).filter(move |&t| self.kind(t) != TokKind::Comment)
    }

    /// Comment tokens inside statement `s`, between its name and terminator.
    pub fn inner_comments(&self, s: u32) -> impl Iterator<Item = u32> + '_ {
        let st = self.stmts[s as usize];
        (st.first + 1..st.term).filter(move |&t| self.kind(t) == TokKind::Comment)
    }

    /// Unquoted, unescaped argument values of statement `s`, lossy UTF-8.
    pub fn arg_values(&self, s: u32) -> Vec<String> {
        self.args(s)
            .map(|t| String::from_utf8_lossy(&lexer::unescape(self.raw(t))).into_owned())
            .collect()
    }

    /// Byte range of statement `s`, from its name through its terminator or closing `}`.
    pub fn stmt_range(&self, s: u32) -> Range<usize> {
        let st = self.stmts[s as usize];
        self.starts[st.first as usize] as usize..self.span(st.close).end as usize
    }
}

/// Maps byte offsets to 1-based lines.
pub struct LineIndex(Vec<u32>);

impl LineIndex {
    /// Indexes the line starts of `src`.
    pub fn new(src: &[u8]) -> LineIndex {
        LineIndex(
            src.iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'\n')
                .map(|(i, _)| i as u32)
                .collect(),
        )
    }

    /// 1-based line of `offset`.
    pub fn line(&self, offset: u32) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }

    /// The [`Place`] of `offset` in `src` (the bytes this index was made of),
    /// found without scanning the file.
    pub fn place(&self, file: &Path, src: &[u8], offset: u32) -> Place {
        let l = self.0.partition_point(|&nl| nl < offset);
        let start = if l == 0 {
            0
        } else {
            self.0[l - 1] as usize + 1
        };
        let end = self.0.get(l).map_or(src.len(), |&nl| nl as usize);
        Place::at(file, &src[start..end], offset as usize - start).on_line(l + 1)
    }

    /// 1-based column (bytes) of `offset`.
    pub fn column(&self, offset: u32) -> usize {
        let l = self.0.partition_point(|&nl| nl < offset);
        let start = if l == 0 { 0 } else { self.0[l - 1] + 1 };
        (offset - start) as usize + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> (usize, String) {
        let e = Doc::parse(src.as_bytes().to_vec()).unwrap_err();
        (e.offset, e.message)
    }

    #[test]
    fn builds_nested_statements() {
        let d = Doc::parse(b"# top\nhttp { upstream u { server a:1 down; } }\n".to_vec()).unwrap();
        let top: Vec<u32> = d.children(None).collect();
        assert_eq!(top.len(), 2);
        assert!(d.is_comment(top[0]));
        let http = top[1];
        assert!(d.is_block(http));
        let up = d.children(Some(http)).next().unwrap();
        assert_eq!(d.arg_values(up), ["u"]);
        let srv = d.children(Some(up)).next().unwrap();
        assert_eq!(d.arg_values(srv), ["a:1", "down"]);
        assert_eq!(&d.bytes()[d.stmt_range(srv)], b"server a:1 down;");
    }

    #[test]
    fn follows_nginx_token_rules() {
        let d = Doc::parse(b"a \"x\")b; c a}b a#b ${v}; d 'q'{ }".to_vec()).unwrap();
        let s: Vec<u32> = d.children(None).collect();
        assert_eq!(d.arg_values(s[0]), ["x", ")b"]);
        assert_eq!(d.arg_values(s[1]), ["a}b", "a#b", "${v}"]);
        assert!(d.is_block(s[2]));
        assert_eq!(err("a \"x\"b;"), (5, "unexpected \"b\"".into()));
        assert_eq!(err("a;\n}"), (3, "unexpected \"}\"".into()));
        assert_eq!(err(";"), (0, "unexpected \";\"".into()));
        assert_eq!(
            err("a {"),
            (3, "unexpected end of file, expecting \"}\"".into())
        );
        assert_eq!(
            err("a b"),
            (3, "unexpected end of file, expecting \";\" or \"}\"".into())
        );
        assert_eq!(err("a { b }"), (6, "unexpected \"}\"".into()));
        let long = format!("a {};", "x".repeat(5000));
        assert_eq!(err(&long).0, 2);
    }

    #[test]
    fn nesting_is_bounded_and_the_error_points_at_the_brace_too_deep() {
        let ok = format!("{}{}", "b {".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(Doc::parse(ok.into_bytes()).is_ok());
        let deep = format!("{}{}", "b {".repeat(100_000), "}".repeat(100_000));
        let (offset, message) = err(&deep);
        assert_eq!(offset, MAX_DEPTH * 3 + 2, "{message}");
        assert!(message.contains("nested deeper than"), "{message}");
    }

    #[test]
    fn lua_blocks_are_one_raw_token() {
        let d = Doc::parse(b"content_by_lua_block { ngx.say(\"}\") }\nx;".to_vec()).unwrap();
        let s: Vec<u32> = d.children(None).collect();
        assert_eq!(s.len(), 2);
        assert_eq!(d.kind(d.stmt(s[0]).term), TokKind::Lua);
    }

    #[test]
    fn line_index() {
        let li = LineIndex::new(b"a\nbc\n");
        assert_eq!((li.line(0), li.line(3), li.column(3)), (1, 2, 2));
    }
}
