//! Compose v1's variables, for following a change without compose: the
//! names a file interpolates, the `.env` file where it is written in the
//! plainest form (read exactly as python-dotenv reads it), and compose v1's
//! interpolation of one string (`$NAME`, `${NAME}`, `${NAME:-default}`,
//! `${NAME-default}`, `$$`). Whatever is not in these forms is `None`: a
//! kept reading does not follow it, and compose reads the files again.
use std::collections::{BTreeMap, BTreeSet};

/// Variables as compose v1 sees them: the env file's, under the process
/// environment's (`None`: unset).
pub(super) type Values = BTreeMap<String, Option<String>>;

/// The names of the variables `text` interpolates (`$NAME`, `${NAME…}`; `$$` is a `$`).
pub(super) fn variables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
            continue;
        }
        let braced = rest.strip_prefix('{');
        let from = braced.unwrap_or(rest);
        let end = from
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(from.len());
        if end > 0 {
            out.insert(from[..end].to_string());
        }
        rest = from;
    }
    out
}

/// An env file's variables, when every line is empty, a comment starting
/// at its first column, or `NAME=VALUE` with a name of ASCII letters, digits
/// and `_` and a value of ASCII letters, digits and `_.,:/@+%=~-` (later
/// lines winning): forms python-dotenv takes literally, as compose v1 reads
/// them. `None` for anything else (quotes, spaces, `export`, `$`, a byte
/// order mark, `\r`, not UTF-8), which compose must read itself.
pub(super) fn env_file_values(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut out = BTreeMap::new();
    for line in text.split('\n') {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=')?;
        let mut chars = name.chars();
        let first = chars.next()?;
        let name_ok = (first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        let value_ok = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.,:/@+%=~-".contains(c));
        if !(name_ok && value_ok) {
            return None;
        }
        out.insert(name.to_string(), value.to_string());
    }
    Some(out)
}

/// `text` as compose v1 interpolates it with `values` (its
/// `TemplateWithDefaults`: an unset variable is empty; `${V:-d}` is `d` when
/// V is unset or empty, `${V-d}` when unset; `$$` is `$`). `None` for what
/// compose would reject or this does not follow: `${V?err}`/`${V:?err}`, a
/// `$` before anything else, a name next to a non-ASCII character (compose
/// matches names case-insensitively, which reaches beyond ASCII), a default
/// with a `$`, or a variable `values` does not have.
pub(super) fn interpolate(text: &str, values: &Values) -> Option<String> {
    let value = |name: &str| values.get(name).map(|v| v.as_deref());
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let braced = rest.strip_prefix('{');
        let from = braced.unwrap_or(rest);
        let (name, after) = name_at(from)?;
        let set = value(name)?;
        let Some(inside) = braced.map(|_| after) else {
            out.push_str(set.unwrap_or(""));
            rest = after;
            continue;
        };
        let close = inside.find('}')?;
        let (form, tail) = (&inside[..close], &inside[close + 1..]);
        let chosen = if form.is_empty() {
            set.unwrap_or("")
        } else if let Some(default) = form.strip_prefix(":-") {
            set.filter(|v| !v.is_empty()).unwrap_or(default)
        } else if let Some(default) = form.strip_prefix('-') {
            set.unwrap_or(default)
        } else {
            return None;
        };
        if form.contains('$') {
            return None;
        }
        out.push_str(chosen);
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

/// Whether `text` is in a form [`interpolate`] follows, whatever the
/// values of the variables it names.
pub(super) fn follows(text: &str) -> bool {
    let unset: Values = variables(text).into_iter().map(|n| (n, None)).collect();
    interpolate(text, &unset).is_some()
}

/// The variable name at the start of `text` (an ASCII letter or `_`, then
/// letters, digits, `_`) and what follows it; `None` when there is none or
/// a non-ASCII character touches it.
fn name_at(text: &str) -> Option<(&str, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (name, after) = text.split_at(end);
    let first = name.chars().next()?;
    let touches = |c: Option<char>| c.is_some_and(|c| !c.is_ascii());
    if first.is_ascii_digit() || touches(text.chars().next()) || touches(after.chars().next()) {
        return None;
    }
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, Option<&str>)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn the_variables_a_file_interpolates() {
        let found = variables("a: ${A:-x}\nb: $B_2 $$NOT ${C} $ 3 $${D}\n");
        assert_eq!(found, ["A", "B_2", "C"].map(String::from).into());
    }

    #[test]
    fn interpolates_as_compose_v1() {
        // Each expectation is what compose 1.29's own TemplateWithDefaults
        // gave for it (`Interpolator(TemplateWithDefaults, Environment(...))`)
        // with SET=v, EMPTY='' and UNSET absent.
        let vals = values(&[("SET", Some("v")), ("EMPTY", Some("")), ("UNSET", None)]);
        for (text, want) in [
            ("plain", "plain"),
            ("a$SET-b", "av-b"),
            ("${SET}x", "vx"),
            ("x$UNSET.y", "x.y"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${UNSET:-}", ""),
            ("${SET:-d}", "v"),
            ("${SET:-a b}c}", "vc}"),
            ("${UNSET:-a b}c}", "a bc}"),
            ("$$SET $${SET}", "$SET ${SET}"),
            ("img:${SET:-latest}", "img:v"),
            ("${UNSET:-x:y=z}", "x:y=z"),
        ] {
            assert_eq!(interpolate(text, &vals).as_deref(), Some(want), "{text}");
        }
        for refused in [
            "${SET?err}",
            "${SET:?}",
            "$",
            "x$ y",
            "$1",
            "${1}",
            "${SET",
            "${SET:d}",
            "${UNSET:-$SET}",
            "$SETé",
            "${é}",
            "$OTHER",
        ] {
            assert_eq!(interpolate(refused, &vals), None, "{refused}");
            assert!(refused == "$OTHER" || !follows(refused), "{refused}");
        }
        assert!(follows("${OTHER:-x}$OTHER$$1") && follows("plain"));
    }

    #[test]
    fn reads_only_the_plainest_env_files() {
        let got = env_file_values(b"# tag\nTAG=v2\n\nMSG=a,b:c/d@e+f%g=h~i-j.k\nTAG=v3").unwrap();
        assert_eq!(got["TAG"], "v3");
        assert_eq!(got["MSG"], "a,b:c/d@e+f%g=h~i-j.k");
        assert_eq!(env_file_values(b"").unwrap().len(), 0);
        assert_eq!(env_file_values(b"EMPTY=\n").unwrap()["EMPTY"], "");
        for other in [
            &b"A='x'"[..],
            b"A=\"x\"",
            b"A=x y",
            b"A=x #c",
            b"export A=x",
            b" A=x",
            b"A =x",
            b"A",
            b"A=$B",
            b"A=${B}",
            b"A=x\r\n",
            b"\xef\xbb\xbfA=x",
            b"A=\xff",
            b"1A=x",
            b"  # indented comment",
        ] {
            assert_eq!(
                env_file_values(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
