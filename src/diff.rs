//! The one unified-diff renderer (similar), plain or colored.
use similar::TextDiff;

/// A unified diff of `before` → `after`, labelled with `label` (a file path).
/// Bytes need not be UTF-8. Empty when they are equal.
pub fn unified(label: &str, before: &[u8], after: &[u8], color: bool) -> String {
    if before == after {
        return String::new();
    }
    // Config files need not be UTF-8; the diff is for reading, the files keep their bytes.
    let (before, after) = (
        String::from_utf8_lossy(before),
        String::from_utf8_lossy(after),
    );
    let diff = TextDiff::from_lines(before.as_ref(), after.as_ref());
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("a/{}", label.trim_start_matches('/')),
            &format!("b/{}", label.trim_start_matches('/')),
        )
        .to_string();
    colorize(&text, color)
}

/// Colors a plain unified diff (added green, removed red, hunk headers cyan); identity when `color` is false.
pub fn colorize(diff: &str, color: bool) -> String {
    if !color {
        return diff.to_string();
    }
    diff.split_inclusive('\n')
        .map(|line| {
            let style = console::Style::new().force_styling(true);
            let style = if line.starts_with("+++") || line.starts_with("---") {
                style.bold()
            } else if line.starts_with('+') {
                style.green()
            } else if line.starts_with('-') {
                style.red()
            } else if line.starts_with("@@") {
                style.cyan()
            } else {
                return line.to_string();
            };
            let (body, nl) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
            format!("{}{nl}", style.apply_to(body))
        })
        .collect()
}
