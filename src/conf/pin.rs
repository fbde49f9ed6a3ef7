//! Pinned server lines: for the length of a rollout, one operator line whose
//! host names several containers (`server web:8000;`, a compose service with
//! replicas) becomes one line per container, so each can be drained on its
//! own. A line whose container is gone is *buried*: pointed at an address
//! nginx need not resolve and marked `down`, because nginx resolves every
//! name when it loads its config and Docker's DNS knows only running
//! containers. Each pinned line ends with a marker comment naming the
//! operator's line; pinned lines are never deleted one by one (an operator's
//! comment after the line may ride on one), and the operator's statement comes
//! back byte for byte in their place at the end.
//!
//! ```text
//! server web:8000 max_fails=3;
//! ```
//! pinned to two replicas, one drained:
//! ```text
//! server p_web_1:8000 max_fails=3 down; # nginx-rollout pin: web:8000
//! server p_web_2:8000 max_fails=3; # nginx-rollout pin: web:8000
//! ```
use super::edit::{Splice, add_after};
use super::error::ConfError;
use super::lexer::unescape;
use super::tree::Doc;

/// What starts the comment that marks a pinned line; the operator's address follows.
pub const MARK: &str = "# nginx-rollout pin: ";

/// The address a down line is pinned to when its container has no address
/// (it is gone): TEST-NET-1 (RFC 5737), which no backend has. nginx never
/// connects to a `down` server, but must be able to parse its address.
pub const NOWHERE: &str = "192.0.2.1";

/// One line a pinned server becomes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinnedLine {
    /// Its address (`p_web_1:8000`, or [`NOWHERE`] with the port).
    pub address: String,
    /// Written `down`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
}

/// The operator's address a server statement is pinned from, read from the
/// marker comment right after it on its line.
pub(crate) fn pinned_from(doc: &Doc, parent: u32, stmt: u32) -> Option<String> {
    let comment = doc
        .children(Some(parent))
        .skip_while(|&s| s != stmt)
        .nth(1)
        .filter(|&c| doc.is_comment(c))?;
    let src = doc.bytes();
    let between = &src[doc.stmt_range(stmt).end..doc.stmt_range(comment).start];
    if between.contains(&b'\n') {
        return None;
    }
    let text = doc.raw(doc.stmt(comment).first);
    let rest = text.strip_prefix(MARK.as_bytes())?;
    let original = rest.split(|b| b.is_ascii_whitespace()).next()?;
    Some(String::from_utf8_lossy(original).into_owned())
}

/// The parameters of statement `s` after its address, as written, without `down`.
fn params(doc: &Doc, s: u32) -> Vec<String> {
    doc.args(s)
        .skip(1)
        .filter(|&t| unescape(doc.raw(t)) != b"down")
        .map(|t| String::from_utf8_lossy(doc.raw(t)).into_owned())
        .collect()
}

fn line(address: &str, params: &[String], down: bool, original: &str) -> String {
    let mut text = format!("server {address}");
    for p in params {
        text.push(' ');
        text.push_str(p);
    }
    if down {
        text.push_str(" down");
    }
    format!("{text}; {MARK}{original}")
}

/// The indentation of the line statement `s` starts on.
fn indent_of(doc: &Doc, s: u32) -> Vec<u8> {
    let src = doc.bytes();
    let start = doc.stmt_range(s).start;
    let line_start = src[..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    src[line_start..start]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .copied()
        .collect()
}

/// Statement `s` (the operator's line, written `original`) as `lines`.
pub(crate) fn pin(doc: &Doc, s: u32, original: &str, lines: &[PinnedLine]) -> Splice {
    let params = params(doc, s);
    let indent = String::from_utf8_lossy(&indent_of(doc, s)).into_owned();
    let newline = if doc.bytes().windows(2).any(|w| w == b"\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let text = lines
        .iter()
        .map(|l| line(&l.address, &params, l.down, original))
        .collect::<Vec<_>>()
        .join(&format!("{newline}{indent}"));
    Splice {
        range: doc.stmt_range(s),
        with: text.into_bytes(),
    }
}

/// The lines pinned from `original` in upstream statement `us`, in order.
pub(crate) fn group(doc: &Doc, us: u32, original: &str) -> Vec<u32> {
    doc.children(Some(us))
        .filter(|&s| !doc.is_comment(s) && doc.is_named(s, "server"))
        .filter(|&s| pinned_from(doc, us, s).as_deref() == Some(original))
        .collect()
}

/// The pinned lines of `original` back to the operator's statement `statement`.
/// They must still stand together; an operator's edit between them is an error.
pub(crate) fn unpin(
    doc: &Doc,
    us: u32,
    original: &str,
    statement: &str,
) -> Result<Option<Splice>, ConfError> {
    let lines = group(doc, us, original);
    let (Some(&first), Some(&last)) = (lines.first(), lines.last()) else {
        return Ok(None);
    };
    let children: Vec<u32> = doc.children(Some(us)).collect();
    let at = |s: u32| children.iter().position(|&c| c == s).unwrap_or_default();
    // Between the first and the last pinned line: only pinned lines and their markers.
    let foreign = children[at(first)..=at(last)]
        .iter()
        .filter(|&&c| {
            let ours = lines.contains(&c)
                || lines.iter().any(|&l| {
                    doc.is_comment(c) && at(c) == at(l) + 1 && pinned_from(doc, us, l).is_some()
                });
            !ours
        })
        .count();
    if foreign > 0 {
        return Err(ConfError::new(format!(
            "the lines pinned from \"{original}\" no longer stand together (something was \
             written between them): put `{statement}` back by hand in their place"
        )));
    }
    // An operator's comment after the original statement rode on one of the
    // markers (the last line when pinned): it follows the statement again.
    let mark_end = |l: u32| {
        let marker = children[at(l) + 1];
        doc.stmt_range(marker).start + MARK.len() + original.len()
    };
    // A comment runs to the line break; a CR before it belongs to the line break.
    let comment_end = |l: u32| {
        let end = doc.stmt_range(children[at(l) + 1]).end;
        if doc.bytes()[..end].ends_with(b"\r") {
            end - 1
        } else {
            end
        }
    };
    let mut with = statement.as_bytes().to_vec();
    for &l in &lines {
        with.extend_from_slice(&doc.bytes()[mark_end(l)..comment_end(l)]);
    }
    Ok(Some(Splice {
        range: doc.stmt_range(first).start..comment_end(last),
        with,
    }))
}

/// A new line pinned from `original`, after its last pinned line, with the
/// same parameters (and `down` if asked).
pub(crate) fn add(doc: &Doc, us: u32, original: &str, new: &PinnedLine) -> Option<Splice> {
    let lines = group(doc, us, original);
    let last = *lines.last()?;
    let already = lines.iter().any(|&s| {
        doc.args(s)
            .next()
            .is_some_and(|t| unescape(doc.raw(t)) == new.address.as_bytes())
    });
    if already {
        return None;
    }
    let text = line(&new.address, &params(doc, last), new.down, original);
    Some(add_after(doc, us, Some(last), &text))
}

/// Pinned line `s` buried: its address pointed at [`NOWHERE`] (same port) and
/// marked `down`, so nginx never needs to resolve a container that is gone.
pub(crate) fn bury(doc: &Doc, s: u32, port: Option<u16>) -> Splice {
    let address = match port {
        Some(port) => format!("{NOWHERE}:{port}"),
        None => NOWHERE.to_string(),
    };
    let mut args = doc.args(s);
    let first = args.next().unwrap_or(doc.stmt(s).first + 1);
    let params: Vec<u32> = args.collect();
    let down = params.iter().any(|&t| unescape(doc.raw(t)) == b"down");
    let mut text = address;
    let end = match params.last() {
        Some(&last) => {
            text.push_str(&String::from_utf8_lossy(
                &doc.bytes()[doc.span(first).end as usize..doc.span(last).end as usize],
            ));
            doc.span(last).end as usize
        }
        None => doc.span(first).end as usize,
    };
    if !down {
        text.push_str(" down");
    }
    Splice {
        range: doc.span(first).start as usize..end,
        with: text.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::conf::{ConfigSet, Edit, EditOptions, MemFs};

    const MAIN: &str = "/etc/nginx/conf.d/default.conf";

    fn set(text: &str) -> ConfigSet {
        ConfigSet::load(Path::new(MAIN), &MemFs::one(MAIN, text)).unwrap()
    }

    fn text(set: &ConfigSet) -> String {
        String::from_utf8(set.files().next().unwrap().1.to_vec()).unwrap()
    }

    fn apply(set: &mut ConfigSet, server: &str, edit: Edit) {
        set.apply("backend", server, edit, EditOptions::default())
            .unwrap();
    }

    fn lines(addresses: &[&str]) -> Vec<PinnedLine> {
        addresses
            .iter()
            .map(|a| PinnedLine {
                address: a.to_string(),
                down: false,
            })
            .collect()
    }

    #[test]
    fn a_line_pinned_drained_grown_buried_and_unpinned_comes_back_byte_for_byte() {
        let before = "upstream backend {\r\n    server web:8000 max_fails=3; # the app\r\n    server other:80;\r\n}\r\n";
        let mut s = set(before);
        apply(
            &mut s,
            "web",
            Edit::Pin(lines(&["p_web_1:8000", "p_web_2:8000"])),
        );
        assert_eq!(
            text(&s),
            "upstream backend {\r\n    server p_web_1:8000 max_fails=3; # nginx-rollout pin: web:8000\r\n    server p_web_2:8000 max_fails=3; # nginx-rollout pin: web:8000 # the app\r\n    server other:80;\r\n}\r\n"
        );
        let up = s.upstream("backend").unwrap();
        let pinned: Vec<_> = up
            .servers
            .iter()
            .map(|s| s.pinned_from.as_deref())
            .collect();
        assert_eq!(pinned, [Some("web:8000"), Some("web:8000"), None]);

        let new = PinnedLine {
            address: "p_web_3:8000".into(),
            down: false,
        };
        apply(&mut s, "web:8000", Edit::AddPinned(new.clone()));
        apply(&mut s, "web:8000", Edit::AddPinned(new));
        apply(&mut s, "p_web_1:8000", Edit::MarkDown);
        apply(&mut s, "p_web_1:8000", Edit::Bury);
        apply(&mut s, "p_web_1:8000", Edit::Bury);
        assert!(
            text(&s).contains(
                "    server 192.0.2.1:8000 max_fails=3 down; # nginx-rollout pin: web:8000\r\n"
            ),
            "{}",
            text(&s)
        );
        assert_eq!(
            text(&s).matches("p_web_3:8000").count(),
            1,
            "adding twice adds once"
        );
        assert!(s.upstream("backend").unwrap().server("web:8000").is_err());

        let statement = Edit::Unpin {
            statement: "server web:8000 max_fails=3;".into(),
        };
        apply(&mut s, "web:8000", statement.clone());
        assert_eq!(text(&s), before);
        apply(&mut s, "web:8000", statement);
        assert_eq!(text(&s), before, "unpinning twice is unpinning once");
    }

    #[test]
    fn a_gone_server_pinned_down_to_nowhere_passes_for_a_parsed_address() {
        let before = "upstream backend {\n    server app1:3000;\n    server app2:3000;\n}\n";
        let mut s = set(before);
        let nowhere = PinnedLine {
            address: format!("{NOWHERE}:3000"),
            down: true,
        };
        apply(&mut s, "app1", Edit::Pin(vec![nowhere]));
        let up = s.upstream("backend").unwrap();
        assert_eq!(up.servers[0].address, "192.0.2.1:3000");
        assert!(up.servers[0].is_down());
        apply(
            &mut s,
            "app1:3000",
            Edit::Unpin {
                statement: "server app1:3000;".into(),
            },
        );
        assert_eq!(text(&s), before);
    }

    #[test]
    fn unpinning_refuses_when_an_edit_split_the_pinned_lines() {
        let mut s = set("upstream backend {\n    server web:8000;\n}\n");
        apply(&mut s, "web", Edit::Pin(lines(&["a:8000", "b:8000"])));
        let split = text(&s).replace(
            "# nginx-rollout pin: web:8000\n    server b",
            "# nginx-rollout pin: web:8000\n    server x:1;\n    server b",
        );
        let mut s = set(&split);
        let err = s
            .apply(
                "backend",
                "web:8000",
                Edit::Unpin {
                    statement: "server web:8000;".into(),
                },
                EditOptions::default(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("no longer stand together"),
            "{err}"
        );
    }
}
