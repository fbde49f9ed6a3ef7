//! `conf build`: a crossplane payload back to nginx text, as `crossplane build` writes it.
use super::Directive;
use super::lex::LUA_BLOCKS;

/// How built text is indented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Spaces per level (ignored with `tabs`).
    pub indent: usize,
    /// One tab per level.
    pub tabs: bool,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            indent: 4,
            tabs: false,
        }
    }
}

/// The text of one file's directives, as crossplane's `build` makes it
/// (without its header), ending in one newline.
pub fn build(parsed: &[Directive], opts: BuildOptions) -> String {
    let padding = if opts.tabs {
        "\t".to_string()
    } else {
        " ".repeat(opts.indent)
    };
    let mut out = String::new();
    block(&mut out, parsed, 0, 0, &padding);
    let trimmed = out.trim_end_matches(is_py_space).len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

fn block(out: &mut String, stmts: &[Directive], depth: usize, mut last_line: usize, pad: &str) {
    let margin = pad.repeat(depth);
    for stmt in stmts {
        let directive = enquote(&stmt.directive);
        let comment = stmt.comment.as_deref().unwrap_or_default();
        if directive == "#" && stmt.line == last_line {
            out.push_str(" #");
            out.push_str(comment);
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&margin);
        if directive == "#" {
            out.push('#');
            out.push_str(comment);
        } else if LUA_BLOCKS.contains(&directive.as_str()) {
            // crossplane's Lua builder: the body as it was, between braces.
            let body_at = usize::from(directive == "set_by_lua_block");
            out.push_str(&stmt.directive);
            if body_at == 1 {
                out.push(' ');
                out.push_str(stmt.args.first().map_or("", String::as_str));
            }
            out.push_str(" {");
            out.push_str(stmt.args.get(body_at).map_or("", String::as_str));
            out.push('}');
        } else {
            let args: Vec<String> = stmt.args.iter().map(|a| enquote(a)).collect();
            out.push_str(&directive);
            if directive == "if" {
                out.push_str(" (");
                out.push_str(&args.join(" "));
                out.push(')');
            } else if !args.is_empty() {
                out.push(' ');
                out.push_str(&args.join(" "));
            }
            match &stmt.block {
                None => out.push(';'),
                Some(children) => {
                    out.push_str(" {");
                    block(out, children, depth + 1, stmt.line, pad);
                    out.push('\n');
                    out.push_str(&margin);
                    out.push('}');
                }
            }
        }
        last_line = stmt.line;
    }
}

/// Python's `str.isspace()`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// crossplane's `_escape`: characters, with `\x` and `${` kept together.
fn escape(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev = String::new();
    let mut last = None;
    for c in s.chars() {
        last = Some(c);
        if prev == "\\" || (prev == "$" && c == '{') {
            prev.push(c);
            out.push(prev.clone());
            continue;
        }
        if prev == "$" {
            out.push(prev.clone());
        }
        if c != '\\' && c != '$' {
            out.push(c.to_string());
        }
        prev = c.to_string();
    }
    if let Some(c @ ('\\' | '$')) = last {
        out.push(c.to_string());
    }
    out
}

/// crossplane's `_needs_quotes`.
fn needs_quotes(s: &str) -> bool {
    let parts = escape(s);
    let Some(first) = parts.first() else {
        return true;
    };
    let blank = |p: &str| {
        let mut cs = p.chars();
        matches!((cs.next(), cs.next()), (Some(c), None) if is_py_space(c))
    };
    if blank(first) || matches!(first.as_str(), "{" | "}" | ";" | "\"" | "'" | "${") {
        return true;
    }
    let mut expanding = false;
    for p in &parts[1..] {
        let stray = if expanding { "${" } else { "}" };
        if blank(p) || matches!(p.as_str(), "{" | ";" | "\"" | "'") || p == stray {
            return true;
        } else if p == if expanding { "}" } else { "${" } {
            expanding = !expanding;
        }
    }
    let last = parts.last().map_or("", String::as_str);
    matches!(last, "\\" | "$") || expanding
}

/// crossplane's `_enquote`: as is, or Python's `repr` with `\\` made `\`.
fn enquote(s: &str) -> String {
    if !needs_quotes(s) {
        return s.to_string();
    }
    py_repr(s).replace("\\\\", "\\")
}

/// Python's `repr()` of a string.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if !py_printable(c) => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one character: not a control, format,
/// separator (but space) or private-use character. (Unassigned code points,
/// which Python also escapes, are printed as they are.)
fn py_printable(c: char) -> bool {
    let n = u32::from(c);
    !(c.is_control()
        || matches!(
            n,
            0xa0 | 0xad
                | 0x600..=0x605
                | 0x61c
                | 0x6dd
                | 0x70f
                | 0x890..=0x891
                | 0x8e2
                | 0x1680
                | 0x180e
                | 0x2000..=0x200f
                | 0x2028..=0x202f
                | 0x205f..=0x2064
                | 0x2066..=0x206f
                | 0x3000
                | 0xd800..=0xf8ff
                | 0xfeff
                | 0xfff9..=0xfffb
                | 0x110bd
                | 0x110cd
                | 0x13430..=0x1343f
                | 0x1bca0..=0x1bca3
                | 0x1d173..=0x1d17a
                | 0xe0001
                | 0xe0020..=0xe007f
                | 0xf0000..
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(directive: &str, line: usize, args: &[&str], block: Option<Vec<Directive>>) -> Directive {
        Directive {
            directive: directive.into(),
            line,
            args: args.iter().map(|a| a.to_string()).collect(),
            includes: None,
            comment: None,
            block,
        }
    }

    #[test]
    fn quotes_only_what_needs_quotes() {
        assert_eq!(enquote("a"), "a");
        assert_eq!(enquote(""), "''");
        assert_eq!(enquote("a b"), "'a b'");
        assert_eq!(enquote("it's"), "\"it's\"");
        assert_eq!(enquote("${a}b"), "'${a}b'");
        assert_eq!(enquote("a${b}"), "a${b}");
        assert_eq!(enquote("a\\\"b"), "a\\\"b");
        assert_eq!(enquote("a\\"), "'a\\'");
        assert_eq!(enquote("\u{a0}x"), "'\\xa0x'");
        assert_eq!(enquote("a$"), "'a$'");
        assert_eq!(enquote("x\ny"), "'x\\ny'");
        assert_eq!(enquote("é"), "é");
    }

    #[test]
    fn builds_blocks_comments_if_and_lua() {
        let mut c = d("#", 1, &[], None);
        c.comment = Some(" same line".into());
        let mut own = d("#", 3, &[], None);
        own.comment = Some(" own line".into());
        let parsed = vec![
            d(
                "http",
                1,
                &[],
                Some(vec![
                    c,
                    d(
                        "if",
                        2,
                        &["$a", "=", ""],
                        Some(vec![d("return", 2, &["404"], None)]),
                    ),
                    own,
                    d("content_by_lua_block", 4, &[" ngx.say(1) "], None),
                ]),
            ),
            d("events", 6, &[], Some(vec![])),
        ];
        assert_eq!(
            build(&parsed, BuildOptions::default()),
            "http { # same line\n    if ($a = '') {\n        return 404;\n    }\n    # own line\n    content_by_lua_block { ngx.say(1) }\n}\nevents {\n}\n"
        );
        let tabs = BuildOptions {
            indent: 4,
            tabs: true,
        };
        assert!(build(&parsed, tabs).contains("\n\tif ($a = '') {\n\t\treturn 404;\n\t}"));
    }
}
