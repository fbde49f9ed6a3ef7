//! JSON exactly as Python prints it with `json.dumps(value, sort_keys=True,
//! separators=(',', ':'))` — what compose v1 hashes of a service — so that
//! a hash computed here is compose's.
use serde_json::Value as Json;

/// `value` as Python's `json.dumps(value, sort_keys=True, separators=(',',
/// ':'))` prints it: keys by code point, non-ASCII as `\uXXXX`. Fractions
/// are printed as Rust prints them, which is Python's shortest form but at
/// the edges of the exponent (`1e16` against Python's `1e+16`): a reading
/// is kept only when its printing here is Python's, byte for byte.
pub(super) fn python_json(value: &Json) -> String {
    let mut out = String::new();
    write_python(value, &mut out);
    out
}

fn write_python(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => write_python_str(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_python(item, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_python_str(key, out);
                out.push(':');
                write_python(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// A string as Python's `json` prints it with `ensure_ascii`: printable
/// ASCII as is but `"` and `\`, the rest escaped.
fn write_python_str(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_prints_as_python_does() {
        // Printed by Python 3.11: json.dumps(v, sort_keys=True, separators=(',', ':')).
        let v: Json = serde_json::from_str(
            r#"{"b":[1,-2,null,true,false],"a":{"z":"x\"\\\n\t\u0001\u007f","é":"日本🎉"},"B":""}"#,
        )
        .unwrap();
        assert_eq!(
            python_json(&v),
            r#"{"B":"","a":{"z":"x\"\\\n\t\u0001\u007f","\u00e9":"\u65e5\u672c\ud83c\udf89"},"b":[1,-2,null,true,false]}"#
        );
        // Fractions in Python's shortest form.
        let v = serde_json::json!({"cpus": 0.5, "f": 1.0, "g": 0.0001});
        assert_eq!(python_json(&v), r#"{"cpus":0.5,"f":1.0,"g":0.0001}"#);
    }
}
