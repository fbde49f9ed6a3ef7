//! Edits of one upstream `server` statement, planned as a single byte splice.
use super::error::{ConfError, Place};
use super::lexer::unescape;
use super::pin::{self, PinnedLine};
use super::tree::{Doc, LineIndex};
use super::upstream::{Address, Context, Param};
use std::ops::Range;
use std::path::Path;

/// A change to one server of an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Add the `down` parameter (drain).
    MarkDown,
    /// Remove the `down` parameter (undrain).
    Restore,
    /// Set `weight=N` (N ≥ 1).
    SetWeight(u32),
    /// Remove `weight=N`: the server goes back to nginx's default weight, 1.
    ClearWeight,
    /// [`Edit::SetWeight`] (`Some`) or [`Edit::ClearWeight`] (`None`),
    /// provided the line's weight reads `expect` (`None`: no `weight=`), or
    /// `weight` already: a weight a rollout left, changed by hand since, is
    /// an error naming the line, and is not written over.
    Reweight {
        /// What the line's weight reads as the rollout left it.
        expect: Option<u32>,
        /// The weight to write.
        weight: Option<u32>,
    },
    /// Insert a new `server ADDRESS PARAMS;` after the last server, same indentation.
    Add {
        /// The new server's address.
        address: String,
        /// Its parameters, as written.
        params: Vec<String>,
    },
    /// Delete the server statement.
    Remove,
    /// Change the server's address, keeping its parameters.
    ReplaceAddress(String),
    /// Replace the operator's line by these pinned lines (see `conf/pin.rs`).
    Pin(Vec<PinnedLine>),
    /// Put the operator's statement back, byte for byte, in place of the lines
    /// pinned from it (the server named is the operator's address).
    Unpin {
        /// The operator's statement as it was (`server web:8000;`).
        statement: String,
    },
    /// One more line pinned from the operator's line named.
    AddPinned(PinnedLine),
    /// Point the pinned line named at an address nginx need not resolve, `down`:
    /// its container is gone.
    Bury,
    /// Replace everything between the upstream's braces, which must read
    /// `expect` (or `with` already), by `with` (the server named is ignored):
    /// puts an upstream's lines back as they were, byte for byte.
    ReplaceBody {
        /// What the block holds now; anything else is an error naming the first line that differs.
        expect: String,
        /// What it is to hold.
        with: String,
    },
}

/// Options of an edit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EditOptions {
    /// Allow taking the last live server out of service (a full outage).
    pub force: bool,
}

/// Replace `range` of the file's bytes with `with`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// Bytes replaced.
    pub range: Range<usize>,
    /// Their replacement.
    pub with: Vec<u8>,
}

struct ServerStmt {
    stmt: u32,
    /// The address token (comments may come between it and `server`).
    addr: u32,
    address: String,
    /// Argument token indices after the address.
    params: Vec<u32>,
    down: bool,
    backup: bool,
}

fn servers(doc: &Doc, us: u32) -> Vec<ServerStmt> {
    doc.children(Some(us))
        .filter(|&s| !doc.is_comment(s) && doc.is_named(s, "server") && !doc.is_block(s))
        .filter_map(|s| {
            let mut args = doc.args(s);
            let addr = args.next()?;
            let params: Vec<u32> = args.collect();
            let val = |t: u32| unescape(doc.raw(t));
            let address = String::from_utf8_lossy(&val(addr)).into_owned();
            Some(ServerStmt {
                stmt: s,
                addr,
                down: params.iter().any(|&t| val(t) == b"down"),
                backup: params.iter().any(|&t| val(t) == b"backup"),
                address,
                params,
            })
        })
        .collect()
}

/// Checks that `s` can be written as one bare nginx token.
fn check_token(what: &str, s: &str) -> Result<(), ConfError> {
    let bad = |b: u8| b.is_ascii_whitespace() || b"{};#\"'\\".contains(&b);
    if s.is_empty() || s.bytes().any(bad) {
        return Err(ConfError::new(format!(
            "invalid {what} \"{s}\": must be one bare word"
        )));
    }
    Ok(())
}

/// The splice that makes `edit` on server `server` of upstream statement
/// `us`. `None` when the edit is already in effect.
pub fn splice_for(
    doc: &Doc,
    file: &Path,
    us: u32,
    server: &str,
    edit: &Edit,
    opts: EditOptions,
) -> Result<Option<Splice>, ConfError> {
    let src = doc.bytes();
    let all = servers(doc, us);
    let place_of = |s: u32| Place::at(file, src, doc.span(doc.stmt(s).first).start as usize);
    let upstream_name = doc.arg_values(us).into_iter().next().unwrap_or_default();
    // The one rule for naming a server lives in the typed view.
    let typed = super::upstream::read(doc, &LineIndex::new(src), file, us, Context::Http);
    let find = |name: &str| -> Result<&ServerStmt, ConfError> {
        let wanted = typed.server(name)?.stmt;
        Ok(all
            .iter()
            .find(|s| s.stmt == wanted)
            .expect("the typed view and the statements list the same servers"))
    };
    let guard = |s: &ServerStmt, action: &str| -> Result<(), ConfError> {
        let live = all.iter().filter(|x| !x.down && !x.backup).count();
        if !opts.force && !s.down && !s.backup && live == 1 {
            return Err(ConfError::at(
                format!(
                    "refusing to {action} \"{}\": it is the last live server of upstream \"{upstream_name}\" (a full outage; use --force)",
                    s.address
                ),
                place_of(s.stmt),
            ));
        }
        Ok(())
    };
    let end_of = |t: u32| doc.span(t).end as usize;
    let last_arg = |s: &ServerStmt| *s.params.last().unwrap_or(&s.addr);
    let insert = |at: usize, text: String| Splice {
        range: at..at,
        with: text.into_bytes(),
    };
    Ok(match edit {
        Edit::Pin(lines) => {
            let s = find(server)?;
            if pin::pinned_from(doc, us, s.stmt).is_some() {
                return Ok(None);
            }
            Some(pin::pin(doc, s.stmt, &s.address, lines))
        }
        Edit::Unpin { statement } => return pin::unpin(doc, us, server, statement),
        Edit::AddPinned(line) => pin::add(doc, us, server, line),
        Edit::Bury => {
            // Buried already (a step run again after a crash): its address is gone.
            let Ok(s) = find(server) else {
                return Ok(None);
            };
            if pin::pinned_from(doc, us, s.stmt).is_none() {
                return Err(ConfError::at(
                    format!("server \"{server}\" is no pinned line; only those are buried"),
                    place_of(s.stmt),
                ));
            }
            let port = Address::parse(&s.address).port;
            (!(s.down && Address::parse(&s.address).host == pin::NOWHERE))
                .then(|| pin::bury(doc, s.stmt, port))
        }
        Edit::MarkDown => {
            let s = find(server)?;
            if s.down {
                return Ok(None);
            }
            guard(s, "mark down")?;
            Some(insert(end_of(last_arg(s)), " down".into()))
        }
        Edit::Restore => {
            let s = find(server)?;
            // Every `down` goes: `server a down down;` is down until the last one is.
            let mut cut: Vec<Range<usize>> = Vec::new();
            for (i, &t) in s.params.iter().enumerate() {
                if unescape(doc.raw(t)) != b"down" {
                    continue;
                }
                let mut r = param_range(doc, s, i);
                if let Some(prev) = cut.last() {
                    r.start = r.start.max(prev.end);
                }
                cut.push(r);
            }
            let (Some(first), Some(last)) = (cut.first(), cut.last()) else {
                return Ok(None);
            };
            let range = first.start..last.end;
            let mut with = Vec::new();
            for pair in cut.windows(2) {
                with.extend_from_slice(&src[pair[0].end..pair[1].start]);
            }
            Some(Splice { range, with })
        }
        Edit::SetWeight(w) => {
            if !Param::is_weight(*w) {
                return Err(ConfError::new(format!(
                    "invalid weight {w}: must be at least 1 and at most {}",
                    i32::MAX
                )));
            }
            let s = find(server)?;
            let text = format!("weight={w}");
            match s
                .params
                .iter()
                .find(|&&t| doc.raw(t).starts_with(b"weight="))
            {
                Some(&t) if doc.raw(t) == text.as_bytes() => None,
                Some(&t) => Some(Splice {
                    range: doc.span(t).range(),
                    with: text.into_bytes(),
                }),
                None => Some(insert(end_of(s.addr), format!(" {text}"))),
            }
        }
        Edit::ClearWeight => {
            let s = find(server)?;
            s.params
                .iter()
                .position(|&t| doc.raw(t).starts_with(b"weight="))
                .map(|i| Splice {
                    range: param_range(doc, s, i),
                    with: Vec::new(),
                })
        }
        Edit::Reweight { expect, weight } => {
            let now = typed.server(server)?.weight();
            if now != *expect && now != *weight {
                let s = find(server)?;
                let fix = match expect {
                    Some(w) => format!("put weight={w} back"),
                    None => format!("remove its {}", weight_as_written(now)),
                };
                return Err(ConfError::at(
                    format!(
                        "server \"{}\" of upstream \"{upstream_name}\" reads {}, but the rollout \
                         left {} there: changed by hand since, it is not written over ({fix}, then \
                         run `nginx-rollout resume` or `nginx-rollout rollback`; set your own \
                         weight with `nginx-rollout weight` once the rollout is over)",
                        s.address,
                        weight_as_written(now),
                        weight_as_written(*expect)
                    ),
                    place_of(s.stmt),
                ));
            }
            let edit = match weight {
                Some(w) => Edit::SetWeight(*w),
                None => Edit::ClearWeight,
            };
            return splice_for(doc, file, us, server, &edit, opts);
        }
        Edit::ReplaceBody { expect, with } => {
            let body = body_range(doc, us);
            let now = &src[body.clone()];
            if now == with.as_bytes() {
                None
            } else if now == expect.as_bytes() {
                Some(Splice {
                    range: body,
                    with: with.clone().into_bytes(),
                })
            } else {
                let (line, reads, expected) = first_difference(now, expect.as_bytes());
                let at = body.start + line;
                return Err(ConfError::at(
                    format!(
                        "upstream \"{upstream_name}\" changed since: this line reads `{reads}`, expected `{expected}`"
                    ),
                    Place::at(file, src, at),
                ));
            }
        }
        Edit::Add { address, params } => {
            check_token("address", address)?;
            for p in params {
                check_token("parameter", p)?;
                Param::check(p)?;
            }
            if all.iter().any(|s| s.address == *address) {
                return Ok(None);
            }
            let mut text = format!("server {address}");
            for p in params {
                text.push(' ');
                text.push_str(p);
            }
            text.push(';');
            // After the last server; in an upstream without one, after its last directive.
            let anchor = all.last().map(|s| s.stmt).or_else(|| {
                doc.children(Some(us))
                    .filter(|&c| !doc.is_comment(c))
                    .last()
            });
            Some(add_after(doc, us, anchor, &text))
        }
        Edit::Remove => {
            let Ok(s) = find(server) else {
                return Ok(None);
            };
            guard(s, "remove")?;
            if all.len() == 1 {
                return Err(ConfError::at(
                    format!(
                        "refusing to remove \"{}\": it is the only server of upstream \"{upstream_name}\", and nginx rejects an upstream without servers (add another first)",
                        s.address
                    ),
                    place_of(s.stmt),
                ));
            }
            Some(Splice {
                range: removal_range(doc, s.stmt),
                with: Vec::new(),
            })
        }
        Edit::ReplaceAddress(new) => {
            check_token("address", new)?;
            if all.iter().any(|s| s.address == *new) && find(server).is_err() {
                return Ok(None);
            }
            let s = find(server)?;
            if s.address == *new {
                return Ok(None);
            }
            if all.iter().any(|x| x.address == *new) {
                return Err(ConfError::at(
                    format!("upstream \"{upstream_name}\" already has a server \"{new}\""),
                    place_of(s.stmt),
                ));
            }
            // The new address is written as the old one was: quoted the
            // same way, so that a line swapped and swapped back reads as it
            // did, byte for byte (`new` is one bare word: no escapes needed).
            let range = doc.span(s.addr).range();
            let with = match src[range.start] {
                q @ (b'"' | b'\'') => [&[q], new.as_bytes(), &[q]].concat(),
                _ => new.clone().into_bytes(),
            };
            Some(Splice { range, with })
        }
    })
}

/// A line's weight in words: `weight=3`, or `no weight=`.
fn weight_as_written(weight: Option<u32>) -> String {
    weight.map_or_else(|| "no weight=".to_string(), |w| format!("weight={w}"))
}

/// Bytes to delete to remove parameter `i` of server `s`, with the blanks
/// that set it apart (`server a weight=2 down;` → `server a weight=2;`).
fn param_range(doc: &Doc, s: &ServerStmt, i: usize) -> Range<usize> {
    let src = doc.bytes();
    let sp = doc.span(s.params[i]).range();
    let previous = match i {
        0 => s.addr,
        _ => s.params[i - 1],
    };
    // Only blanks (a line break too) since the argument before: they go with
    // the parameter, so `server a\n    down;` becomes `server a;` as `server a down;` does.
    let gap = doc.span(previous).end as usize..sp.start;
    if src[gap.clone()].iter().all(u8::is_ascii_whitespace) {
        return gap.start..sp.end;
    }
    let before = src[..sp.start]
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let line_start = sp.start - before == 0 || src[sp.start - before - 1] == b'\n';
    if line_start {
        let after = src[sp.end..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        sp.start..sp.end + after
    } else {
        sp.start - before..sp.end
    }
}

/// The bytes between the braces of upstream statement `us`.
fn body_range(doc: &Doc, us: u32) -> Range<usize> {
    let st = doc.stmt(us);
    doc.span(st.term).end as usize..doc.span(st.close).start as usize
}

/// The upstream block's contents, as [`Edit::ReplaceBody`] expects them.
pub(super) fn body(doc: &Doc, us: u32) -> String {
    String::from_utf8_lossy(&doc.bytes()[body_range(doc, us)]).into_owned()
}

/// Where `now` first differs from `expected`: the offset in `now` of that
/// line's first non-blank (before the difference), and the line as each
/// reads from there (trimmed, `<end>` past the last line).
fn first_difference(now: &[u8], expected: &[u8]) -> (usize, String, String) {
    let common = now.iter().zip(expected).take_while(|(a, b)| a == b).count();
    let line_start = now[..common]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let start = line_start
        + now[line_start..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count()
            .min(common - line_start);
    let line = |bytes: &[u8]| {
        let rest = bytes.get(start..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        match String::from_utf8_lossy(&rest[..end]).trim() {
            "" if rest.is_empty() => "<end>".to_string(),
            text => text.to_string(),
        }
    };
    (start, line(now), line(expected))
}

/// The splice that inserts statement `text` on its own line after statement
/// `last` (or first in upstream `us` when it has no server), indented alike.
pub(super) fn add_after(doc: &Doc, us: u32, last: Option<u32>, text: &str) -> Splice {
    let src = doc.bytes();
    let (anchor_start, after) = match last {
        Some(s) => (doc.stmt_range(s).start, doc.stmt_range(s).end),
        None => (
            doc.stmt_range(us).start,
            doc.span(doc.stmt(us).term).end as usize,
        ),
    };
    let line_start = src[..anchor_start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let mut indent: Vec<u8> = src[line_start..anchor_start]
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .copied()
        .collect();
    if last.is_none() {
        // One level deeper than the `upstream` line, in its kind of blank.
        let unit: &[u8] = if indent.contains(&b'\t') {
            b"\t"
        } else {
            b"    "
        };
        indent.extend_from_slice(unit);
    }
    // Stay after a trailing comment on the anchor's line.
    let mut at = after;
    while at < src.len() && (src[at] == b' ' || src[at] == b'\t') {
        at += 1;
    }
    if at < src.len() && src[at] == b'#' {
        while at < src.len() && src[at] != b'\n' {
            at += 1;
        }
    }
    let newline: &[u8] = if at >= src.len() || src[at] == b'\n' || src[at..].starts_with(b"\r\n") {
        // A comment's or blank's CR belongs before our line break.
        if at > after && src[at - 1] == b'\r' && src.get(at) == Some(&b'\n') {
            at -= 1;
        }
        if src[at..].starts_with(b"\r\n") {
            b"\r\n"
        } else {
            b"\n"
        }
    } else {
        at = after;
        b"\n"
    };
    let mut with = Vec::with_capacity(text.len() + indent.len() + 2);
    with.extend_from_slice(newline);
    with.extend_from_slice(&indent);
    with.extend_from_slice(text.as_bytes());
    Splice {
        range: at..at,
        with,
    }
}

/// Bytes to delete to remove statement `s`: its whole line(s) when it stands
/// alone on them (with its trailing comment), else just the statement and
/// the blanks before it.
fn removal_range(doc: &Doc, s: u32) -> Range<usize> {
    let src = doc.bytes();
    let r = doc.stmt_range(s);
    let blanks_before = src[..r.start]
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let start = r.start - blanks_before;
    let own_line = start == 0 || src[start - 1] == b'\n';
    let mut end = r.end;
    while end < src.len() && (src[end] == b' ' || src[end] == b'\t' || src[end] == b'\r') {
        end += 1;
    }
    // A trailing comment on the statement's own line goes with it.
    if own_line && end < src.len() && src[end] == b'#' {
        while end < src.len() && src[end] != b'\n' {
            end += 1;
        }
    }
    if own_line && (end == src.len() || src[end] == b'\n') {
        start..(end + 1).min(src.len())
    } else {
        start..r.end
    }
}
