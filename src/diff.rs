//! The one unified-diff renderer (similar), colored or plain.
use crate::conf::visible;
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
    // Diff only the window that differs (plus context): a one-line drain in
    // a 10 MB file must not diff every line.
    let (skip, lines_skipped, old_end, new_end) = window(before, after, CONTEXT);
    let old = String::from_utf8_lossy(&before[skip..old_end]);
    let new = String::from_utf8_lossy(&after[skip..new_end]);
    let diff = TextDiff::from_lines(old.as_ref(), new.as_ref());
    let text = diff
        .unified_diff()
        .context_radius(CONTEXT)
        .header(
            &format!("a/{}", label.trim_start_matches('/')),
            &format!("b/{}", label.trim_start_matches('/')),
        )
        .to_string();
    colorize(&shift_hunks(&text, lines_skipped), color)
}

/// Colors a plain unified diff (removed red, added green, hunk headers cyan)
/// when `color` is set. Plans store plain diffs and show them through here,
/// which also makes control bytes of the config visible ([`visible`]).
pub fn colorize(text: &str, color: bool) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        // The line ending (`\n` or `\r\n`) is kept; everything before it made visible.
        let text = line.trim_end_matches(['\n', '\r']);
        let line = format!("{}{}", visible(text), &line[text.len()..]);
        if !color {
            out.push_str(&line);
            continue;
        }
        let style = if line.starts_with("+++") || line.starts_with("---") {
            Style::new().bold()
        } else if line.starts_with('+') {
            Style::new().green()
        } else if line.starts_with('-') {
            Style::new().red()
        } else if line.starts_with("@@") {
            Style::new().cyan()
        } else {
            out.push_str(&line);
            continue;
        };
        let body = line.trim_end_matches('\n');
        out.push_str(&style.force_styling(true).apply_to(body).to_string());
        out.push_str(&line[body.len()..]);
    }
    out
}

const CONTEXT: usize = 3;

/// The byte window to diff: it starts `context` lines before the first
/// differing line and ends `context` lines after the last one (in each
/// version). Returns (start, lines before start, end in before, end in after).
fn window(before: &[u8], after: &[u8], context: usize) -> (usize, usize, usize, usize) {
    let prefix = before.iter().zip(after).take_while(|(a, b)| a == b).count();
    let max_suffix = before.len().min(after.len()) - prefix;
    let suffix = before
        .iter()
        .rev()
        .zip(after.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    // Start of the line holding the first difference, then `context` more.
    let mut start = before[..prefix]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    for _ in 0..context {
        if start == 0 {
            break;
        }
        start = before[..start - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
    }
    let lines_before = before[..start].iter().filter(|&&b| b == b'\n').count();
    // End of the line holding the last difference, then `context` more.
    let extend = |buf: &[u8], from: usize| {
        let mut end = from;
        for _ in 0..=context {
            match buf[end..].iter().position(|&b| b == b'\n') {
                Some(p) => end += p + 1,
                None => return buf.len(),
            }
        }
        end
    };
    let old_end = extend(before, before.len() - suffix);
    let new_end = extend(after, after.len() - suffix);
    (start, lines_before, old_end, new_end)
}

/// Adds `by` to the line numbers of every `@@ -a,b +c,d @@` header.
fn shift_hunks(text: &str, by: usize) -> String {
    if by == 0 {
        return text.to_string();
    }
    let shift = |range: &str| -> String {
        let (start, rest) = range
            .split_once(',')
            .map_or((range, None), |(s, r)| (s, Some(r)));
        let n: usize = start.parse().unwrap_or(0);
        let n = if n == 0 { n } else { n + by };
        match rest {
            Some(r) => format!("{n},{r}"),
            None => n.to_string(),
        }
    };
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("@@ -")
            && let Some((old, rest)) = rest.split_once(" +")
            && let Some((new, tail)) = rest.split_once(" @@")
        {
            out.push_str(&format!("@@ -{} +{} @@{tail}", shift(old), shift(new)));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Whether to color output on stdout: a terminal, and no `NO_COLOR`.
pub fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && !no_color()
}

/// `NO_COLOR` is set to something (no-color.org: an empty value does not count).
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
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

    #[test]
    fn large_files_diff_only_the_changed_window_with_true_line_numbers() {
        let before: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let after = before.replace("line 50\n", "line 50 down\n");
        let d = unified("f", before.as_bytes(), after.as_bytes(), false);
        assert_eq!(
            d,
            "--- a/f\n+++ b/f\n@@ -47,7 +47,7 @@\n line 47\n line 48\n line 49\n-line 50\n+line 50 down\n line 51\n line 52\n line 53\n"
        );
        let d = unified(
            "f",
            before.as_bytes(),
            format!("{before}x").as_bytes(),
            false,
        );
        assert!(d.contains("@@ -98,3 +98,4 @@"), "{d}");
    }
}
