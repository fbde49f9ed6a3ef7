//! Token scanners following nginx's `ngx_conf_read_token`, as nom parsers:
//! each takes the input from where a token (or a run of separators) starts
//! and returns the rest and the token's raw bytes, quotes and escapes
//! included.
//!
//! They run over every byte of a file, so the common runs (indentation, bare
//! words) are scanned eight bytes at a time ([`Word8`]) and the rare ones
//! (comments, quoted strings) with `memchr`.
use nom::IResult;
use nom::error::{Error, ErrorKind};

/// The first `n` bytes of `i` as the token, in nom's (rest, token) order.
#[inline]
fn take(i: &[u8], n: usize) -> IResult<&[u8], &[u8]> {
    let (token, rest) = i.split_at(n);
    Ok((rest, token))
}

/// The run of separators at the start of `i` (possibly empty).
#[inline]
pub fn space(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take(i, space_len(i))
}

/// The comment at the start of `i`: `#` up to, not including, the next LF.
#[inline]
pub fn comment(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take(i, memchr::memchr(b'\n', i).unwrap_or(i.len()))
}

/// The bare token at the start of `i` (see [`word_len`]).
#[inline]
pub fn word(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take(i, word_len(i))
}

/// The `"…"` or `'…'` token at the start of `i` (see [`quoted_len`]); an
/// error when the closing quote is missing or `i` does not start with a quote.
#[inline]
pub fn quoted(i: &[u8]) -> IResult<&[u8], &[u8]> {
    match quoted_len(i) {
        Some(n) => take(i, n),
        None => Err(nom::Err::Error(Error::new(i, ErrorKind::Char))),
    }
}

/// Longest token nginx accepts (its configuration buffer is 4096 bytes and
/// must also hold the byte that ends the token).
pub const MAX_TOKEN: usize = 4095;

/// nginx's only separators: space, tab, CR, LF.
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Eight input bytes as one little-endian word, for finding a byte among
/// them with a few integer operations (the first match is the lowest set bit).
#[derive(Clone, Copy)]
struct Word8(u64);

impl Word8 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// The eight bytes at `i[k..]`, if there are eight.
    fn at(i: &[u8], k: usize) -> Option<Word8> {
        let bytes = i.get(k..k + 8)?;
        Some(Word8(u64::from_le_bytes(bytes.try_into().ok()?)))
    }

    /// High bit set in the bytes below `n` (`n` ≤ 128). Only the lowest set
    /// bit is exact: a borrow may mark bytes after the first match.
    fn below(self, n: u8) -> u64 {
        self.0.wrapping_sub(Self::ONES * u64::from(n)) & !self.0 & Self::HIGHS
    }

    /// High bit set in the bytes equal to `b` (lowest set bit exact, as in [`Word8::below`]).
    fn equal(self, b: u8) -> u64 {
        Word8(self.0 ^ (Self::ONES * u64::from(b))).below(1)
    }

    /// Index of the first byte that differs from `b`, if any does.
    fn first_not(self, b: u8) -> Option<usize> {
        let diff = self.0 ^ (Self::ONES * u64::from(b));
        (diff != 0).then(|| diff.trailing_zeros() as usize / 8)
    }
}

/// Index of the first byte flagged in `mask` (from [`Word8`]).
fn first(mask: u64) -> usize {
    mask.trailing_zeros() as usize / 8
}

/// Length of the run of separators at the start of `i` (possibly 0).
fn space_len(i: &[u8]) -> usize {
    let mut k = 0;
    loop {
        // Indentation: spaces, eight at a time.
        while let Some(w) = Word8::at(i, k) {
            match w.first_not(b' ') {
                Some(j) => {
                    k += j;
                    break;
                }
                None => k += 8,
            }
        }
        match i.get(k) {
            Some(&b) if is_space(b) => k += 1,
            _ => return k,
        }
    }
}

/// Length of the bare token at the start of `i`: it ends at a separator,
/// `;`, or `{` (except right after `$`, as in `${var}`); `\` escapes the next
/// byte. `}`, `#` and quotes inside it are ordinary bytes. At least 1 when
/// `i` starts with any other byte than those that end a token.
fn word_len(i: &[u8]) -> usize {
    let mut k = 0;
    loop {
        // Fast path over ordinary bytes, eight at a time: stop at anything
        // that may be special (every byte below `!` is a candidate).
        while let Some(w) = Word8::at(i, k) {
            let m = w.below(b'!') | w.equal(b';') | w.equal(b'{') | w.equal(b'\\') | w.equal(b'$');
            if m != 0 {
                k += first(m);
                break;
            }
            k += 8;
        }
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
    k.min(i.len())
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

/// Length of the `"…"` or `'…'` token at the start of `i` (it may span
/// lines; `\` escapes the next byte), or `None` when the closing quote is
/// missing or `i` does not start with a quote.
fn quoted_len(i: &[u8]) -> Option<usize> {
    let q = match i.first() {
        Some(&q @ (b'"' | b'\'')) => q,
        _ => return None,
    };
    let mut k = 1;
    loop {
        k += memchr::memchr2(q, b'\\', i.get(k..)?)?;
        if i[k] == q {
            return Some(k + 1);
        }
        k += 2;
    }
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

    #[test]
    fn parsers_return_the_rest_and_the_token() {
        assert_eq!(word(b"app1:3000;").unwrap(), (&b";"[..], &b"app1:3000"[..]));
        assert_eq!(space(b"  x").unwrap(), (&b"x"[..], &b"  "[..]));
        assert_eq!(comment(b"# c\nx").unwrap(), (&b"\nx"[..], &b"# c"[..]));
        assert_eq!(quoted(b"'a b' c").unwrap(), (&b" c"[..], &b"'a b'"[..]));
        assert!(quoted(b"'open").is_err());
    }

    fn w(s: &str) -> &str {
        &s[..word_len(s.as_bytes())]
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
    fn long_tokens_are_scanned_past_eight_bytes() {
        assert_eq!(w("abcdefghijklmnop\tq"), "abcdefghijklmnop");
        assert_eq!(w("abcdefgh\x01ijklmnop;"), "abcdefgh\x01ijklmnop");
        assert_eq!(w("héllo_wörld_ünïcode x"), "héllo_wörld_ünïcode");
        assert_eq!(w("abcdefgh${var}ijklmnop{"), "abcdefgh${var}ijklmnop");
        assert_eq!(w("abcdefghijk\\ lmnopqrst u"), "abcdefghijk\\ lmnopqrst");
        assert_eq!(w("abcdefghijklmnopq"), "abcdefghijklmnopq");
    }

    #[test]
    fn separator_runs() {
        assert_eq!(space_len(b"x"), 0);
        assert_eq!(space_len(b"  \n\t\r           x  "), 16);
        assert_eq!(space_len(b"                "), 16);
        assert_eq!(space_len(b"         \x0b"), 9);
    }

    #[test]
    fn quoted_tokens_span_lines_and_escape() {
        assert_eq!(quoted_len(b"\"a\\\"\nb\";"), Some(7));
        assert_eq!(quoted_len(b"'a\\'\"b';"), Some(7));
        assert_eq!(quoted_len(b"'open"), None);
        assert_eq!(quoted_len(b"'open\\'"), None);
        assert_eq!(quoted_len(b"'ends in escape\\"), None);
        assert_eq!(quoted_len(b"x"), None);
        assert_eq!(unescape(b"'a\\'b\\x\\n'"), b"a'b\\x\n");
    }

    #[test]
    fn comments_stop_before_lf() {
        assert_eq!(comment(b"# x\r\ny").unwrap().1.len(), 4);
        assert_eq!(comment(b"# x").unwrap().1.len(), 3);
    }
}
