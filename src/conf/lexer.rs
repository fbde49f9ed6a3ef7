//! Token scanners following nginx's `ngx_conf_read_token`, written as nom parsers
//! over bytes. Each returns the token's raw bytes (quotes and escapes included).
use nom::bytes::complete::{tag, take_till, take_while};
use nom::combinator::recognize;
use nom::error::{Error, ErrorKind};
use nom::sequence::pair;
use nom::{IResult, Parser};

/// Longest token nginx accepts (its configuration buffer is 4096 bytes and
/// must also hold the byte that ends the token).
pub const MAX_TOKEN: usize = 4095;

/// nginx's only separators: space, tab, CR, LF.
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A run of separators (possibly empty).
pub fn space(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while(is_space).parse(i)
}

/// `#` up to (not including) the next LF.
pub fn comment(i: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize(pair(tag(&b"#"[..]), take_till(|b| b == b'\n'))).parse(i)
}

/// A bare token: ends at a separator, `;`, or `{` (except right after `$`,
/// as in `${var}`); `\` escapes the next byte. `}`, `#` and quotes inside it
/// are ordinary bytes. Never fails on non-empty input.
pub fn word(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let mut k = 0;
    loop {
        // Fast path over ordinary bytes.
        while k < i.len() && !WORD_SPECIAL[i[k] as usize] {
            k += 1;
        }
        match i.get(k) {
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{') => break,
            Some(b'\\') => k += 2,
            // `$` then any run of `{` stays in the token (`${var}`).
            _ => {
                k += 1;
                while i.get(k) == Some(&b'{') {
                    k += 1;
                }
            }
        }
    }
    let k = k.min(i.len());
    if k == 0 {
        return Err(nom::Err::Error(Error::new(i, ErrorKind::TakeWhile1)));
    }
    Ok((&i[k..], &i[..k]))
}

/// Bytes that end or change the scanning of a bare token.
static WORD_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let special = b" \t\r\n;{\\$";
    let mut j = 0;
    while j < special.len() {
        t[special[j] as usize] = true;
        j += 1;
    }
    t
};

/// A `"…"` or `'…'` token (may span lines, `\` escapes the next byte).
/// Fails with `ErrorKind::Eof` when the closing quote is missing.
pub fn quoted(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let q = match i.first() {
        Some(&q @ (b'"' | b'\'')) => q,
        _ => return Err(nom::Err::Error(Error::new(i, ErrorKind::Char))),
    };
    let mut k = 1;
    while k < i.len() {
        match i[k] {
            b'\\' => k += 2,
            b if b == q => return Ok((&i[k + 1..], &i[..k + 1])),
            _ => k += 1,
        }
    }
    Err(nom::Err::Error(Error::new(&i[i.len()..], ErrorKind::Eof)))
}

/// The value nginx sees for a raw token: quotes removed and `\"`, `\'`,
/// `\\`, `\t`, `\r`, `\n` unescaped (other escapes kept as written).
pub fn unescape(raw: &[u8]) -> Vec<u8> {
    let inner = match raw.first() {
        Some(b'"' | b'\'') if raw.len() >= 2 => &raw[1..raw.len() - 1],
        _ => raw,
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut k = 0;
    while k < inner.len() {
        if inner[k] == b'\\' && k + 1 < inner.len() {
            match inner[k + 1] {
                b'"' | b'\'' | b'\\' => {
                    out.push(inner[k + 1]);
                    k += 2;
                    continue;
                }
                b't' | b'r' | b'n' => {
                    out.push(match inner[k + 1] {
                        b't' => b'\t',
                        b'r' => b'\r',
                        _ => b'\n',
                    });
                    k += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(inner[k]);
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> &str {
        std::str::from_utf8(word(s.as_bytes()).unwrap().1).unwrap()
    }

    #[test]
    fn bare_tokens_end_only_at_space_semicolon_or_brace() {
        assert_eq!(w("a}b c"), "a}b");
        assert_eq!(w("a#b;"), "a#b");
        assert_eq!(w("a\"b\" c"), "a\"b\"");
        assert_eq!(w("${var}x;"), "${var}x");
        assert_eq!(w("a{b"), "a");
        assert_eq!(w("a\\ b c"), "a\\ b");
        assert_eq!(w("\\$"), "\\$");
        assert_eq!(w("a\\"), "a\\");
        assert_eq!(w("$${{x} y"), "$${{x}");
        assert_eq!(w("\\${ y"), "\\$");
    }

    #[test]
    fn quoted_tokens_span_lines_and_escape() {
        let (rest, t) = quoted(b"\"a\\\"\nb\";").unwrap();
        assert_eq!((t, rest), (&b"\"a\\\"\nb\""[..], &b";"[..]));
        assert!(quoted(b"'open").is_err());
        assert_eq!(unescape(b"'a\\'b\\x\\n'"), b"a'b\\x\n");
    }

    #[test]
    fn comments_stop_before_lf() {
        assert_eq!(comment(b"# x\r\ny").unwrap(), (&b"\ny"[..], &b"# x\r"[..]));
    }
}
