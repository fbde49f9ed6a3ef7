//! Brace matching for `*_by_lua_block { … }` bodies, which are raw Lua.
//!
//! Braces inside Lua strings, `--` comments and long brackets (`[[ ]]`,
//! `[==[ ]==]`) do not count.

/// Given `src` starting at the opening `{`, returns the length up to and
/// including the matching `}`, or `None` at end of input.
pub fn block_len(src: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut k = 0;
    while k < src.len() {
        match src[k] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k + 1);
                }
            }
            q @ (b'"' | b'\'') => {
                k += 1;
                while k < src.len() && src[k] != q {
                    k += if src[k] == b'\\' { 2 } else { 1 };
                }
            }
            b'-' if src.get(k + 1) == Some(&b'-') => {
                k += 2;
                if let Some(len) = long_bracket(&src[k..]) {
                    k += len;
                    continue;
                }
                while k < src.len() && src[k] != b'\n' {
                    k += 1;
                }
            }
            b'[' => {
                if let Some(len) = long_bracket(&src[k..]) {
                    k += len;
                    continue;
                }
            }
            _ => {}
        }
        k += 1;
    }
    None
}

/// If `src` opens a long bracket `[=*[`, the length through its closing
/// `]=*]` (or to end of input when unclosed).
fn long_bracket(src: &[u8]) -> Option<usize> {
    if src.first() != Some(&b'[') {
        return None;
    }
    let level = src[1..].iter().take_while(|&&b| b == b'=').count();
    if src.get(1 + level) != Some(&b'[') {
        return None;
    }
    let body = 2 + level;
    let mut k = body;
    while k < src.len() {
        if src[k] == b']'
            && src[k + 1..].iter().take(level).all(|&b| b == b'=')
            && src.len() > k + 1 + level
            && src[k + 1 + level] == b']'
        {
            return Some(k + 2 + level);
        }
        k += 1;
    }
    Some(src.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_braces_in_strings_comments_and_long_brackets() {
        let src = b"{ local s = \"}\" .. '{' -- }\n local t = [==[ } ]] ]==] --[[ { ]] }tail";
        assert_eq!(block_len(src), Some(src.len() - 4));
        assert_eq!(block_len(b"{ { }"), None);
        assert_eq!(block_len(b"{ a[1] = b[ [=[x]=] ] }"), Some(23));
    }
}
