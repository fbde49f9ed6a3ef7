//! The one unified-diff renderer (similar), colored or plain.
use console::Style;
use similar::TextDiff;
use std::io::IsTerminal;

/// Unified diff of `before` → `after` (3 lines of context) with `a/label`
/// and `b/label` headers; empty when equal. Bytes that are not UTF-8 are
/// shown lossily. With `color`, removed lines are red, added green, hunk
/// headers cyan.
pub fn unified(label: &str, before: &[u8], after: &[u8], color: bool) -> String {
    if before == after {
        return String::new();
    }
    let old = String::from_utf8_lossy(before);
    let new = String::from_utf8_lossy(after);
    let diff = TextDiff::from_lines(old.as_ref(), new.as_ref());
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{label}"), &format!("b/{label}"))
        .to_string();
    if !color {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let style = if line.starts_with("+++") || line.starts_with("---") {
            Style::new().bold()
        } else if line.starts_with('+') {
            Style::new().green()
        } else if line.starts_with('-') {
            Style::new().red()
        } else if line.starts_with("@@") {
            Style::new().cyan()
        } else {
            out.push_str(line);
            continue;
        };
        let body = line.trim_end_matches('\n');
        out.push_str(&style.force_styling(true).apply_to(body).to_string());
        out.push_str(&line[body.len()..]);
    }
    out
}

/// Whether to color output on stdout: a terminal, and `NO_COLOR` unset.
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_colored() {
        let a = b"upstream u {\n  server a:1;\n}\n";
        let b = b"upstream u {\n  server a:1 down;\n}\n";
        let plain = unified("nginx.conf", a, b, false);
        assert_eq!(
            plain,
            "--- a/nginx.conf\n+++ b/nginx.conf\n@@ -1,3 +1,3 @@\n upstream u {\n-  server a:1;\n+  server a:1 down;\n }\n"
        );
        let colored = unified("nginx.conf", a, b, true);
        assert!(
            colored.contains("\x1b[32m+  server a:1 down;\x1b[0m\n"),
            "{colored:?}"
        );
        assert_eq!(unified("x", a, a, true), "");
        assert!(unified("x", b"a", b"b", false).contains("No newline at end of file"));
    }
}
