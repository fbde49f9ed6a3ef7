//! crossplane's tokenizer (`crossplane lex`, crossplane 0.5.8 with its Lua
//! extension), so that `conf lex` and `conf parse` give crossplane's JSON.
//!
//! It is not nginx's tokenizer (that one is `conf::lexer` and the tree): the
//! engine checks a file first, and only a file nginx accepts is tokenized
//! here. Where the two disagree on such a file, crossplane's answer is the
//! one reproduced:
//! * after `${…}` the next character is kept in the token, a blank too, so
//!   `/a/${uri} /b` is one token;
//! * `}` ends a bare token (`a}b` is three tokens);
//! * every Unicode blank separates tokens, not only space, tab, CR and LF;
//! * the file is read as UTF-8 with U+FFFD for bad bytes and universal
//!   newlines (CRLF and a lone CR are LF), a BOM is part of the first token;
//! * a comment or token cut off by the end of the file is dropped;
//! * Lua bodies are read only after the thirteen `*_by_lua_block` names
//!   crossplane knows, followed by a blank, and braces in Lua long strings count.

/// One token: its text (quotes removed), its 1-based line, and whether it was quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The text; a quoted token without its quotes, `\"` inside `"…"` unescaped.
    pub text: String,
    /// 1-based line of its first character.
    pub line: usize,
    /// Whether it was a quoted string (or a Lua body).
    pub quoted: bool,
}

/// A token crossplane's lexer cannot make (unbalanced braces, a Lua block without `{`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// crossplane's message.
    pub message: String,
    /// 1-based line.
    pub line: usize,
}

/// The directives whose `{ … }` crossplane reads as one raw Lua token.
pub(super) const LUA_BLOCKS: [&str; 13] = [
    "access_by_lua_block",
    "balancer_by_lua_block",
    "body_filter_by_lua_block",
    "content_by_lua_block",
    "header_filter_by_lua_block",
    "init_by_lua_block",
    "init_worker_by_lua_block",
    "log_by_lua_block",
    "rewrite_by_lua_block",
    "set_by_lua_block",
    "ssl_certificate_by_lua_block",
    "ssl_session_fetch_by_lua_block",
    "ssl_session_store_by_lua_block",
];

/// One step of crossplane's character stream: a character, or `\` and the
/// character it escapes, with the line it is on.
#[derive(Debug, Clone, Copy)]
struct Unit {
    first: char,
    escaped: Option<char>,
    line: usize,
}

impl Unit {
    /// Python's `str.isspace()` of the unit.
    fn is_space(self) -> bool {
        self.escaped.is_none() && is_space(self.first)
    }
    fn is(self, c: char) -> bool {
        self.escaped.is_none() && self.first == c
    }
    fn ends_with_newline(self) -> bool {
        self.escaped.unwrap_or(self.first) == '\n'
    }
    fn push_to(self, s: &mut String) {
        s.push(self.first);
        if let Some(c) = self.escaped {
            s.push(c);
        }
    }
}

/// Python's `str.isspace()` for one character.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The units of `src`, read as crossplane reads a file.
fn units(src: &[u8]) -> Vec<Unit> {
    let text = String::from_utf8_lossy(src);
    let mut chars = text.chars().peekable();
    let mut out = Vec::with_capacity(text.len());
    let mut line = 1;
    // Universal newlines: CRLF and CR are LF.
    let next = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        let c = chars.next()?;
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            return Some('\n');
        }
        Some(c)
    };
    while let Some(c) = next(&mut chars) {
        let escaped = if c == '\\' { next(&mut chars) } else { None };
        let unit = Unit {
            first: c,
            escaped,
            line,
        };
        if unit.ends_with_newline() {
            line += 1;
        }
        out.push(Unit { line, ..unit });
    }
    out
}

/// The end of input inside a token: crossplane's generator stops there.
struct End;

struct Lexer {
    units: Vec<Unit>,
    at: usize,
    tokens: Vec<Token>,
}

impl Lexer {
    fn next(&mut self) -> Result<Unit, End> {
        let u = self.units.get(self.at).copied().ok_or(End)?;
        self.at += 1;
        Ok(u)
    }

    fn emit(&mut self, text: String, line: usize, quoted: bool) {
        self.tokens.push(Token { text, line, quoted });
    }

    /// Emits a finished word (`quoted` or not) and, when it opens a Lua
    /// block in directive position, lexes the block; says whether the next
    /// word is a directive.
    fn word(
        &mut self,
        text: String,
        line: usize,
        quoted: bool,
        next_is_directive: &mut bool,
    ) -> Result<Result<(), LexError>, End> {
        let lua = *next_is_directive && LUA_BLOCKS.contains(&text.as_str());
        self.emit(text.clone(), line, quoted);
        *next_is_directive = lua;
        if lua {
            return self.lua(&text);
        }
        Ok(Ok(()))
    }

    /// `_lex_file_object`.
    fn run(&mut self) -> Result<Result<(), LexError>, End> {
        let mut token = String::new();
        let mut token_line = 0;
        let mut next_is_directive = true;
        while let Ok(mut u) = self.next() {
            if u.is_space() {
                if !token.is_empty() {
                    let t = std::mem::take(&mut token);
                    if let Err(e) = self.word(t, token_line, false, &mut next_is_directive)? {
                        return Ok(Err(e));
                    }
                }
                while u.is_space() {
                    u = self.next()?;
                }
            }
            if token.is_empty() && u.is('#') {
                let line = u.line;
                while !u.ends_with_newline() {
                    u.push_to(&mut token);
                    u = self.next()?;
                }
                let t = std::mem::take(&mut token);
                self.emit(t, line, false);
                continue;
            }
            if token.is_empty() {
                token_line = u.line;
            }
            if token.ends_with('$') && u.is('{') {
                next_is_directive = false;
                while !token.ends_with('}') && !u.is_space() {
                    u.push_to(&mut token);
                    u = self.next()?;
                }
            }
            if u.is('"') || u.is('\'') {
                if !token.is_empty() {
                    u.push_to(&mut token);
                    continue;
                }
                let quote = u.first;
                u = self.next()?;
                while !u.is(quote) {
                    if u.first == '\\' && u.escaped == Some(quote) {
                        token.push(quote);
                    } else {
                        u.push_to(&mut token);
                    }
                    u = self.next()?;
                }
                let t = std::mem::take(&mut token);
                if let Err(e) = self.word(t, token_line, true, &mut next_is_directive)? {
                    return Ok(Err(e));
                }
                continue;
            }
            if u.is('{') || u.is('}') || u.is(';') {
                if !token.is_empty() {
                    let t = std::mem::take(&mut token);
                    self.emit(t, token_line, false);
                }
                self.emit(u.first.to_string(), u.line, false);
                next_is_directive = true;
                continue;
            }
            u.push_to(&mut token);
        }
        Ok(Ok(()))
    }

    /// `LuaBlockPlugin.lex`: the raw body of a Lua block as one quoted token, then `;`.
    fn lua(&mut self, directive: &str) -> Result<Result<(), LexError>, End> {
        if directive == "set_by_lua_block" {
            let mut arg = String::new();
            while let Ok(mut u) = self.next() {
                if u.is_space() {
                    if !arg.is_empty() {
                        let line = u.line;
                        self.emit(arg, line, false);
                        break;
                    }
                    while u.is_space() {
                        u = self.next()?;
                    }
                }
                u.push_to(&mut arg);
            }
        }
        let mut u = self.next()?;
        while u.is_space() {
            u = self.next()?;
        }
        if !u.is('{') {
            return Ok(Err(LexError {
                message: "expected { to start Lua block".into(),
                line: u.line,
            }));
        }
        let mut depth = 1usize;
        let mut token = String::new();
        loop {
            let mut u = self.next()?;
            if u.is('-') {
                let after = self.next()?;
                if after.is('-') {
                    token.push('-');
                    u = after;
                    while !u.is('\n') {
                        u.push_to(&mut token);
                        u = self.next()?;
                    }
                } else {
                    self.at -= 1;
                }
            } else if u.is('{') {
                depth += 1;
            } else if u.is('}') {
                depth -= 1;
            } else if u.is('"') || u.is('\'') {
                let quote = u.first;
                token.push(quote);
                u = self.next()?;
                while !u.is(quote) {
                    u.push_to(&mut token);
                    u = self.next()?;
                }
            }
            if depth == 0 {
                self.emit(token, u.line, true);
                self.emit(";".into(), u.line, false);
                return Ok(Ok(()));
            }
            u.push_to(&mut token);
        }
    }
}

/// Tokenizes `src` as `crossplane lex` does, braces checked as it checks them.
pub fn lex(src: &[u8]) -> Result<Vec<Token>, LexError> {
    let mut lexer = Lexer {
        units: units(src),
        at: 0,
        tokens: Vec::new(),
    };
    if let Ok(Err(e)) = lexer.run() {
        return Err(e);
    }
    let mut depth = 0usize;
    let mut line = 0;
    for t in &lexer.tokens {
        line = t.line;
        match (t.text.as_str(), t.quoted) {
            ("{", false) => depth += 1,
            ("}", false) if depth == 0 => {
                return Err(LexError {
                    message: "unexpected \"}\"".into(),
                    line,
                });
            }
            ("}", false) => depth -= 1,
            _ => {}
        }
    }
    if depth > 0 {
        return Err(LexError {
            message: "unexpected end of file, expecting \"}\"".into(),
            line,
        });
    }
    Ok(lexer.tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<(String, usize, bool)> {
        lex(src.as_bytes())
            .unwrap()
            .into_iter()
            .map(|t| (t.text, t.line, t.quoted))
            .collect()
    }

    fn words(src: &str) -> Vec<String> {
        texts(src).into_iter().map(|t| t.0).collect()
    }

    #[test]
    fn tokens_lines_and_quotes() {
        assert_eq!(
            texts("{a 'b\\'c' \"d\\e\";\n# x\r\n}"),
            [
                ("{".into(), 1, false),
                ("a".into(), 1, false),
                ("b'c".into(), 1, true),
                ("d\\e".into(), 1, true),
                (";".into(), 1, false),
                ("# x".into(), 2, false),
                ("}".into(), 3, false),
            ]
        );
    }

    #[test]
    fn reproduces_crossplanes_quirks() {
        // After `${…}` the blank is kept and the token goes on.
        assert_eq!(words("a /x/${u} /y ;"), ["a", "/x/${u} /y", ";"]);
        assert_eq!(words("a ${u ;"), ["a", "${u ", ";"]);
        // `}` ends a bare token; a comment cut by the end of the file is lost.
        assert_eq!(
            words("{ { a b}c; }"),
            ["{", "{", "a", "b", "}", "c", ";", "}"]
        );
        assert_eq!(words("a;\n# end"), ["a", ";"]);
        // A no-break space separates.
        assert_eq!(words("a\u{a0}b;"), ["a", "b", ";"]);
    }

    #[test]
    fn lua_bodies_are_one_quoted_token() {
        let t = texts("content_by_lua_block {\n  ngx.say(\"}\") -- }\n}\nx;");
        assert_eq!(t[1], ("\n  ngx.say(\"}\") -- }\n".into(), 3, true));
        assert_eq!(t[2], (";".into(), 3, false));
        assert_eq!(
            words("set_by_lua_block $v { return 1 }"),
            ["set_by_lua_block", "$v", " return 1 ", ";"]
        );
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        assert_eq!(lex(b"a {").unwrap_err().line, 1);
        assert_eq!(lex(b"}").unwrap_err().message, "unexpected \"}\"");
    }
}
