//! Configuration errors that point at a place, in nginx's style.
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
    /// The text of the offending line (lossy UTF-8, without its line ending).
    pub text: String,
}

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
        let column = 1 + src[line_start..offset]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        let text = String::from_utf8_lossy(&src[line_start..line_end])
            .trim_end_matches('\r')
            .to_string();
        Place {
            file: file.to_path_buf(),
            line,
            column,
            text,
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
        f.write_str(&self.message)?;
        if let Some(p) = &self.place {
            write!(f, " in {}:{}:{}", p.file.display(), p.line, p.column)?;
            let gutter = p.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_pad: String = p
                .text
                .chars()
                .take(p.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{gutter} | {}\n{pad} | {caret_pad}^", p.text)?;
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
}
