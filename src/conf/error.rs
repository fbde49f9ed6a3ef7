//! Configuration errors that point at a place, in nginx's style.
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where an error happened: file, 1-based line and column, and the line's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// File as nginx-rollout was told about it (or resolved from an `include`).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The text of the offending line (lossy UTF-8, without its line ending),
    /// or, for a line longer than [`LINE_WINDOW`] characters, the window of it
    /// around the column, `…` marking what was cut.
    pub text: String,
    /// 1-based column of the place within `text`.
    pub text_column: usize,
}

/// Most characters of a line an error shows (a window around the column).
pub const LINE_WINDOW: usize = 120;

impl Place {
    /// Computes line, column and line text of byte `offset` in `src`.
    pub fn at(file: &Path, src: &[u8], offset: usize) -> Place {
        let offset = offset.min(src.len());
        let line_start = src[..offset]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let line = 1 + src[..line_start].iter().filter(|&&b| b == b'\n').count();
        let line_end = src[offset..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(src.len(), |p| offset + p);
        let column = 1 + chars_in(&src[line_start..offset]);
        // At most a window of bytes around the offset is decoded: a line may be megabytes.
        let reach = LINE_WINDOW * 4;
        let mut from = offset.saturating_sub(reach).max(line_start);
        while from > line_start && (src[from] & 0xC0) == 0x80 {
            from -= 1;
        }
        let to = (offset + reach).min(line_end);
        let before: Vec<char> = String::from_utf8_lossy(&src[from..offset])
            .chars()
            .collect();
        let after = String::from_utf8_lossy(&src[offset..to]);
        let after = after.trim_end_matches('\r');
        let half = LINE_WINDOW / 2;
        let (mut text, mut text_column) = (String::new(), 1);
        let cut_before = from > line_start || before.len() > half;
        if cut_before {
            text.push('…');
            text_column += 1;
        }
        let kept = &before[before.len().saturating_sub(half)..];
        text.extend(kept);
        text_column += kept.len();
        let mut rest = after.chars();
        text.extend(rest.by_ref().take(LINE_WINDOW - kept.len()));
        if rest.next().is_some() || to < line_end {
            text.push('…');
        }
        Place {
            file: file.to_path_buf(),
            line,
            column,
            text,
            text_column,
        }
    }
}

impl Place {
    /// The same place, said to be on `line` (for a place computed within one line's bytes).
    pub(crate) fn on_line(mut self, line: usize) -> Place {
        self.line = line;
        self
    }
}

/// Characters in `bytes` as UTF-8 (continuation bytes not counted).
fn chars_in(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

/// `text` with every control character (but tab) and every bidirectional
/// override written as an escape (`\u{1b}`), so that bytes from a config
/// file reach a terminal as text and never as a command to it. The one
/// rule for showing config text on a terminal.
pub fn visible(text: &str) -> Cow<'_, str> {
    let hostile = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hostile) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hostile(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An error of the configuration engine. Displays like nginx:
/// `unexpected "}" in proxy/nginx.conf:12:5`, then the line and a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    message: String,
    place: Option<Place>,
}

impl ConfError {
    /// An error at a place in a file.
    pub fn at(message: impl Into<String>, place: Place) -> ConfError {
        ConfError {
            message: message.into(),
            place: Some(place),
        }
    }

    /// An error without a position (for example an unreadable file).
    pub fn new(message: impl Into<String>) -> ConfError {
        ConfError {
            message: message.into(),
            place: None,
        }
    }

    /// The message without its place.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The place, when the error has one.
    pub fn place(&self) -> Option<&Place> {
        self.place.as_ref()
    }

    /// File of the error, when it has a place.
    pub fn file(&self) -> Option<&Path> {
        self.place.as_ref().map(|p| p.file.as_path())
    }

    /// 1-based line, when the error has a place.
    pub fn line(&self) -> Option<usize> {
        self.place.as_ref().map(|p| p.line)
    }

    /// 1-based column, when the error has a place.
    pub fn column(&self) -> Option<usize> {
        self.place.as_ref().map(|p| p.column)
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&visible(&self.message))?;
        if let Some(p) = &self.place {
            let file = p.file.display().to_string();
            write!(f, " in {}:{}:{}", visible(&file), p.line, p.column)?;
            let gutter = p.line.to_string();
            let pad = " ".repeat(gutter.len());
            let split = p
                .text
                .char_indices()
                .nth(p.text_column.saturating_sub(1))
                .map_or(p.text.len(), |(i, _)| i);
            let (head, tail) = p.text.split_at(split);
            let head = visible(head);
            let caret_pad: String = head
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{pad} |\n{gutter} | {head}{}\n{pad} | {caret_pad}^",
                visible(tail)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_counts_lines_and_characters() {
        let src = "a;\r\nüb }\n".as_bytes();
        let p = Place::at(
            Path::new("x.conf"),
            src,
            src.iter().position(|&b| b == b'}').unwrap(),
        );
        assert_eq!((p.line, p.column, p.text.as_str()), (2, 4, "üb }"));
        let e = ConfError::at("unexpected \"}\"", p);
        assert_eq!(
            e.to_string(),
            "unexpected \"}\" in x.conf:2:4\n  |\n2 | üb }\n  |    ^"
        );
    }

    /// The character of the shown line the caret points at.
    fn under_caret(shown: &str) -> char {
        let lines: Vec<&str> = shown.lines().collect();
        let caret = lines[3].chars().position(|c| c == '^').unwrap();
        lines[2].chars().nth(caret).unwrap()
    }

    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_column() {
        let mut src = "x".repeat(9_000_000).into_bytes();
        src[4_000_000] = b'}';
        let p = Place::at(Path::new("x.conf"), &src, 4_000_000);
        assert_eq!((p.line, p.column), (1, 4_000_001));
        assert!(
            p.text.chars().count() <= LINE_WINDOW + 2,
            "{}",
            p.text.len()
        );
        assert!(p.text.starts_with('…') && p.text.ends_with('…'));
        let shown = ConfError::at("unexpected \"}\"", p).to_string();
        assert!(shown.len() < 1000, "{} bytes of error", shown.len());
        assert_eq!(under_caret(&shown), '}', "{shown}");
    }

    #[test]
    fn control_bytes_from_a_config_are_shown_escaped() {
        let src = b"server \x1b]0;owned\x07 \x1b[2J;}";
        let p = Place::at(Path::new("x\x1b.conf"), src, src.len() - 1);
        let shown = ConfError::at("unknown server \"\x1b[2J\"", p).to_string();
        assert!(
            !shown.contains('\x1b') && !shown.contains('\x07'),
            "{shown:?}"
        );
        assert!(shown.contains("\\u{1b}[2J"), "{shown}");
        assert_eq!(under_caret(&shown), '}', "{shown}");
        assert_eq!(visible("a\tb"), "a\tb");
        assert_eq!(visible("\u{202E}x"), "\\u{202e}x");
    }
}
