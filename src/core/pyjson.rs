//! Python `json.dumps` output, byte for byte, for the two legacy formats
//! the original service hashed:
//!
//! - the ClawShield v1 `action_hash`: `json.dumps(obj, sort_keys=True,
//!   separators=(",", ":"))`, and
//! - the original receipt hash: `json.dumps(result, sort_keys=True)` with
//!   the default separators `", "` and `": "`.
//!
//! Both use Python's defaults otherwise: `ensure_ascii=True` (every
//! non-ASCII character as `\uXXXX`, astral characters as surrogate pairs)
//! and `float.__repr__` for floats (`1.0`, `1e-07`, `1e+16`). This is *not*
//! RFC 8785; it exists only so that v1 artifacts and v1 receipts still
//! verify. Integers beyond 64 bits cannot be represented here (serde_json
//! reads them as floats), so such payloads hash differently from Python's.

use std::fmt::Write as _;

use serde_json::Value;

/// Separator style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separators {
    /// `(",", ":")`
    Compact,
    /// Python's default `(", ", ": ")`
    Default,
}

/// `json.dumps(value, sort_keys=True, separators=…)`.
#[must_use]
pub fn dumps_sorted(value: &Value, separators: Separators) -> String {
    let mut out = String::new();
    write_value(&mut out, value, separators);
    out
}

fn write_value(out: &mut String, value: &Value, sep: Separators) {
    let (item, key) = match sep {
        Separators::Compact => (",", ":"),
        Separators::Default => (", ", ": "),
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item);
                }
                write_value(out, v, sep);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Python sorts str keys by code point; Rust orders String by
            // UTF-8 bytes, which is the same order.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item);
                }
                write_string(out, k);
                out.push_str(key);
                if let Some(v) = map.get(*k) {
                    write_value(out, v, sep);
                }
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            // Printable ASCII stays; Python escapes DEL (0x7f) like any
            // other control character.
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        out.push_str(&python_float_repr(f));
    }
}

/// `repr(float)` of CPython: the shortest round-trip digits, positional
/// when the decimal exponent is in `[-4, 16)`, else scientific with a
/// signed, at-least-two-digit exponent.
#[must_use]
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde±x".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!(
                "0.{}{}",
                "0".repeat(usize::try_from(-point).unwrap_or(0)),
                digits
            )
        } else {
            let point = usize::try_from(point).unwrap_or(0);
            if digits.len() <= point {
                format!("{}{}.0", digits, "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn floats_match_cpython_repr() {
        // Values and outputs from CPython 3.11 `repr`.
        for (f, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-7, "1e-07"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.456, "123.456"),
            (-2.5, "-2.5"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(python_float_repr(f), s, "{f}");
        }
    }

    #[test]
    fn compact_sorted_ascii() {
        let v = json!({"payload": {"msg": "hi", "é": "😀"}, "action": "echo"});
        assert_eq!(
            dumps_sorted(&v, Separators::Compact),
            r#"{"action":"echo","payload":{"msg":"hi","\u00e9":"\ud83d\ude00"}}"#
        );
    }

    #[test]
    fn default_separators_for_the_legacy_receipt() {
        let v = json!({"echo": {"msg": "hello"}, "n": [1, 2.0]});
        assert_eq!(
            dumps_sorted(&v, Separators::Default),
            r#"{"echo": {"msg": "hello"}, "n": [1, 2.0]}"#
        );
    }

    #[test]
    fn control_characters() {
        // python3 -c 'import json; print(json.dumps("a\x00b\x1f\n\x7f"))'
        let v = json!("a\u{0}b\u{1f}\n\u{7f}");
        assert_eq!(
            dumps_sorted(&v, Separators::Compact),
            r#""a\u0000b\u001f\n\u007f""#
        );
    }
}
