//! Where compose v1 and this crate could read a compose file's YAML
//! differently. Compose loads it with PyYAML, which types plain (unquoted)
//! scalars by YAML 1.1 (`0123` and `1:30` are integers, `yes` and `off`
//! booleans, `2024-01-01` a date); `serde_norway` reads YAML 1.2 (all
//! strings), and types `0o17` and `1e3` as numbers where PyYAML has
//! strings. Quoted scalars are strings in both. A file with a plain scalar
//! the two read differently is not followed without compose: its values, and
//! a change of its quoting, would be seen otherwise than compose sees them;
//! nor one PyYAML would refuse where libyaml does not, or type by a tag.
use std::mem::MaybeUninit;
use std::sync::LazyLock;

use regex::Regex;
use serde_norway::Value as Yaml;
use unsafe_libyaml_norway as unsafe_yaml;

/// Whether PyYAML reads `text` as `serde_norway` does: every plain scalar
/// the same string, boolean, null, or number, and nothing PyYAML refuses
/// that libyaml takes (a tab after a token, a `?` in a plain scalar inside
/// a flow collection) or types by a tag. `false` when libyaml cannot parse
/// `text`.
pub(super) fn read_alike(text: &str) -> bool {
    if text.contains('\t') {
        return false;
    }
    let Some(mut parser) = Parser::new(text) else {
        return false;
    };
    // Whether each collection open around the event is a flow one.
    let mut flow = Vec::new();
    loop {
        match parser.next() {
            None => return false,
            Some(Event::End) => return true,
            Some(Event::Start { tagged: true, .. } | Event::Scalar { tagged: true, .. }) => {
                return false;
            }
            Some(Event::Start { flow: f, .. }) => flow.push(f),
            Some(Event::EndCollection) => {
                flow.pop();
            }
            Some(Event::Scalar {
                text, plain: true, ..
            }) => {
                let in_flow = flow.last() == Some(&true);
                if (in_flow && text.contains('?')) || !plain_reads_alike(&text) {
                    return false;
                }
            }
            Some(Event::Scalar { .. } | Event::Other) => {}
        }
    }
}

/// How PyYAML's `SafeLoader` types a plain scalar (its implicit resolvers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Yaml11 {
    Str,
    Bool,
    Float,
    Int,
    Merge,
    Null,
    Timestamp,
    Value,
}

/// PyYAML's implicit resolvers (`yaml/resolver.py`), in the order it adds
/// them, with the first characters each is tried for.
static RESOLVERS: LazyLock<Vec<(Yaml11, Regex, &'static str)>> = LazyLock::new(|| {
    let digits = "0123456789";
    [
        (
            Yaml11::Bool,
            r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
            "yYnNtTfFoO",
        ),
        (
            Yaml11::Float,
            r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
            "-+0123456789.",
        ),
        (
            Yaml11::Int,
            r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
            "-+0123456789",
        ),
        (Yaml11::Merge, r"^(?:<<)$", "<"),
        (Yaml11::Null, r"^(?:~|null|Null|NULL|)$", "~nN"),
        (
            Yaml11::Timestamp,
            r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
            digits,
        ),
        (Yaml11::Value, r"^(?:=)$", "="),
    ]
    .into_iter()
    .map(|(kind, pattern, first)| (kind, Regex::new(pattern).expect("a valid pattern"), first))
    .collect()
});

/// PyYAML's type for plain scalar `s`: the first resolver tried for its
/// first character (the empty scalar is null) that matches it.
fn yaml11(s: &str) -> Yaml11 {
    let Some(first) = s.chars().next() else {
        return Yaml11::Null;
    };
    RESOLVERS
        .iter()
        .find(|(_, pattern, firsts)| firsts.contains(first) && pattern.is_match(s))
        .map_or(Yaml11::Str, |(kind, _, _)| *kind)
}

/// Whether plain scalar `s` reads the same in both: a string that is a
/// string in both, `true`/`false`, null, or a number written so plainly
/// (`8000`, `-1`, `1.5`) that both take the same value from it.
fn plain_reads_alike(s: &str) -> bool {
    static PLAIN_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[-+]?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,15})?$").expect("a valid pattern")
    });
    // Python keeps a float's sign of zero (`-0.0`), serde_json's equality does not.
    let negative_zero = s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.');
    let here = serde_norway::from_str::<Yaml>(s).ok();
    match (yaml11(s), here) {
        (Yaml11::Str, Some(Yaml::String(here))) => here == s,
        (Yaml11::Bool, Some(Yaml::Bool(_))) => true,
        (Yaml11::Null, Some(Yaml::Null)) => true,
        (Yaml11::Int | Yaml11::Float, Some(Yaml::Number(_))) => {
            PLAIN_NUMBER.is_match(s) && !negative_zero
        }
        _ => false,
    }
}

/// What [`read_alike`] needs of one libyaml event.
#[derive(Debug, PartialEq)]
enum Event {
    /// A scalar: its text, whether plain, whether it has a tag.
    Scalar {
        text: String,
        plain: bool,
        tagged: bool,
    },
    /// A mapping or a sequence begins: whether in flow style, whether tagged.
    Start { flow: bool, tagged: bool },
    /// A mapping or a sequence ends.
    EndCollection,
    /// The stream ends.
    End,
    /// Anything else (documents, aliases).
    Other,
}

/// A libyaml parser reading `'a`'s text, freed when dropped. Boxed: libyaml
/// keeps pointers into it.
struct Parser<'a> {
    sys: Box<MaybeUninit<unsafe_yaml::yaml_parser_t>>,
    _text: std::marker::PhantomData<&'a str>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Option<Parser<'a>> {
        let mut sys = Box::new(MaybeUninit::<unsafe_yaml::yaml_parser_t>::uninit());
        // SAFETY: libyaml initialises the parser in place (nothing to free
        // when that fails); `text` outlives it (`'a`), and the box is never
        // moved out of.
        unsafe {
            if unsafe_yaml::yaml_parser_initialize(sys.as_mut_ptr()).fail {
                return None;
            }
            unsafe_yaml::yaml_parser_set_encoding(
                sys.as_mut_ptr(),
                unsafe_yaml::YAML_UTF8_ENCODING,
            );
            unsafe_yaml::yaml_parser_set_input_string(
                sys.as_mut_ptr(),
                text.as_ptr(),
                text.len() as _,
            );
        }
        Some(Parser {
            sys,
            _text: std::marker::PhantomData,
        })
    }

    fn next(&mut self) -> Option<Event> {
        let mut event = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
        // SAFETY: the parser is initialised and not called again once it
        // failed or ended; an event libyaml filled in is read before it is
        // deleted, and deleted once.
        unsafe {
            if unsafe_yaml::yaml_parser_parse(self.sys.as_mut_ptr(), event.as_mut_ptr()).fail {
                return None;
            }
            let e = event.as_mut_ptr();
            let read = match (*e).type_ {
                unsafe_yaml::YAML_STREAM_END_EVENT => Some(Event::End),
                // Only after an error or the end, which end the reading first.
                unsafe_yaml::YAML_NO_EVENT => None,
                unsafe_yaml::YAML_SCALAR_EVENT => {
                    let scalar = (*e).data.scalar;
                    let bytes = std::slice::from_raw_parts(scalar.value, scalar.length as usize);
                    Some(Event::Scalar {
                        text: String::from_utf8_lossy(bytes).into_owned(),
                        plain: scalar.style == unsafe_yaml::YAML_PLAIN_SCALAR_STYLE,
                        tagged: !scalar.tag.is_null(),
                    })
                }
                unsafe_yaml::YAML_SEQUENCE_START_EVENT => {
                    let start = (*e).data.sequence_start;
                    Some(Event::Start {
                        flow: start.style == unsafe_yaml::YAML_FLOW_SEQUENCE_STYLE,
                        tagged: !start.tag.is_null(),
                    })
                }
                unsafe_yaml::YAML_MAPPING_START_EVENT => {
                    let start = (*e).data.mapping_start;
                    Some(Event::Start {
                        flow: start.style == unsafe_yaml::YAML_FLOW_MAPPING_STYLE,
                        tagged: !start.tag.is_null(),
                    })
                }
                unsafe_yaml::YAML_SEQUENCE_END_EVENT | unsafe_yaml::YAML_MAPPING_END_EVENT => {
                    Some(Event::EndCollection)
                }
                _ => Some(Event::Other),
            };
            unsafe_yaml::yaml_event_delete(e);
            read
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, deleted once.
        unsafe { unsafe_yaml::yaml_parser_delete(self.sys.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `text` but documents and aliases, to its end; `None`
    /// on an error.
    fn events(text: &str) -> Option<Vec<Event>> {
        let mut parser = Parser::new(text)?;
        let mut out = Vec::new();
        loop {
            match parser.next()? {
                Event::End => return Some(out),
                Event::Other => {}
                e => out.push(e),
            }
        }
    }

    #[test]
    fn events_tell_plain_scalars_flow_collections_and_tags() {
        let scalar = |text: &str, plain, tagged| Event::Scalar {
            text: text.into(),
            plain,
            tagged,
        };
        let start = |flow| Event::Start {
            flow,
            tagged: false,
        };
        assert_eq!(
            events("a: [x, \"y\"]\nb: !!str 0123\n").unwrap(),
            [
                start(false),
                scalar("a", true, false),
                start(true),
                scalar("x", true, false),
                scalar("y", false, false),
                Event::EndCollection,
                scalar("b", true, false),
                scalar("0123", true, true),
                Event::EndCollection,
            ]
        );
        assert_eq!(events("a: [unclosed"), None);
    }

    #[test]
    fn yaml_1_1_types_as_pyyaml_does() {
        for (s, kind) in [
            ("0123", Yaml11::Int),
            ("1:30", Yaml11::Int),
            ("1_000", Yaml11::Int),
            ("0x1F", Yaml11::Int),
            ("1.5", Yaml11::Float),
            ("1e3", Yaml11::Str),
            ("1.5e+3", Yaml11::Float),
            ("0o17", Yaml11::Str),
            ("yes", Yaml11::Bool),
            ("Off", Yaml11::Bool),
            ("y", Yaml11::Str),
            ("~", Yaml11::Null),
            ("", Yaml11::Null),
            ("2024-01-01", Yaml11::Timestamp),
            ("<<", Yaml11::Merge),
            ("=", Yaml11::Value),
            ("v1", Yaml11::Str),
            ("8080:80", Yaml11::Str),
            ("22:22", Yaml11::Int),
        ] {
            assert_eq!(yaml11(s), kind, "{s:?}");
        }
    }

    #[test]
    fn only_scalars_both_read_alike_pass() {
        for s in [
            "v1", "8000", "-1", "1.5", "true", "False", "null", "~", "8080:80", "a b",
        ] {
            assert!(plain_reads_alike(s), "{s:?}");
        }
        for s in [
            "0123",
            "1:30",
            "22:22",
            "1_000",
            "yes",
            "off",
            "1e3",
            "0o17",
            "0x1F",
            "2024-01-01",
            ".inf",
            "-0.0",
            "1000000000000000000000000000000000000000",
        ] {
            assert!(!plain_reads_alike(s), "{s:?}");
        }
    }

    #[test]
    fn a_file_reads_alike_unless_a_plain_scalar_differs() {
        let quoted = "services:\n  web:\n    environment:\n      PORT: \"0123\"\n    restart: \"no\"\nversion: \"3.8\"\n";
        assert!(read_alike(quoted));
        assert!(!read_alike(&quoted.replace("\"0123\"", "0123")));
        assert!(!read_alike("services:\n  web:\n    ports: [22:22]\n"));
        assert!(read_alike("services:\n  web:\n    ports: [\"22:22\"]\n"));
        // What PyYAML refuses or types by a tag, though libyaml takes it.
        assert!(!read_alike("a: x\t# note\n"));
        assert!(!read_alike("e: {URL: http://h/p?x=1}\n"));
        assert!(read_alike("e:\n  URL: http://h/p?x=1\n"));
        assert!(!read_alike("a: !!timestamp \"2024-01-01\"\n"));
    }
}
