//! Rows about single fields: absurd lengths (the nonce, the action, a
//! payload key, the number of keys), missing fields and fields of the
//! wrong JSON type, syntax that is not JSON (comments, a trailing comma,
//! single quotes, a truncated body), and a payload with as many distinct
//! keys as fit in a body at the limit.

use super::{
    case, ok, req, Case,
    Fate::{Recorded, Refused},
    ECHO, LIMIT,
};

/// This part of the table, in order.
pub fn cases() -> Vec<Case> {
    let echo = ECHO;
    let mut t = vec![
        // --- absurd lengths
        case(
            "nonce of 129 characters",
            req(echo, &format!("\"{}\"", "n".repeat(129)), "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        ok(
            "nonce of 128 characters (the maximum)",
            &"n".repeat(128),
            "{}",
        ),
        case(
            "nonce of 60 000 characters (within the body limit)",
            req(echo, &format!("\"{}\"", "n".repeat(60_000)), "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        case(
            "nonce of 100 000 characters (over the body limit)",
            req(echo, &format!("\"{}\"", "n".repeat(100_000)), "{}"),
            413,
            Some("body_too_large"),
            Refused,
        ),
        case(
            "action of 65 characters",
            req(&format!("\"{}\"", "a".repeat(65)), "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "action of 64 characters (well-formed, not registered)",
            req(&format!("\"{}\"", "a".repeat(64)), "\"t-a64\"", "{}"),
            400,
            Some("unknown_action"),
            Recorded,
        ),
        case(
            "action of 60 000 characters",
            req(&format!("\"{}\"", "a".repeat(60_000)), "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "empty action",
            req("\"\"", "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        ok(
            "payload key of 60 000 characters",
            "t-longkey",
            &format!(r#"{{"{}":1}}"#, "k".repeat(60_000)),
        ),
        case(
            "50 000-key payload (over the body limit)",
            {
                let keys: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":0")).collect();
                req(echo, "\"t-50k\"", &format!("{{{}}}", keys.join(",")))
            },
            413,
            Some("body_too_large"),
            Refused,
        ),
        // --- field shapes
        case(
            "missing action",
            r#"{"nonce":"t"}"#,
            422,
            Some("missing_field"),
            Refused,
        ),
        case(
            "null nonce",
            r#"{"action":"echo","nonce":null}"#,
            422,
            Some("missing_field"),
            Refused,
        ),
        case(
            "array as the action",
            r#"{"action":["echo"],"nonce":"t"}"#,
            422,
            Some("invalid_field"),
            Refused,
        ),
        case(
            "payload an array",
            req(echo, "\"t\"", "[1]"),
            422,
            Some("invalid_payload"),
            Refused,
        ),
        case(
            "payload a string holding an array",
            req(echo, "\"t\"", r#""[1]""#),
            422,
            Some("invalid_payload"),
            Refused,
        ),
        case(
            "payload a string holding invalid JSON",
            req(echo, "\"t\"", r#""{nope""#),
            422,
            Some("invalid_payload"),
            Refused,
        ),
        case(
            "approval_artifact a string",
            r#"{"action":"echo","nonce":"t","approval_artifact":"x"}"#,
            422,
            Some("invalid_approval"),
            Refused,
        ),
        case(
            "JSON with comments",
            "{\"action\":\"echo\", /* hi */ \"nonce\":\"t\"}",
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "trailing comma",
            r#"{"action":"echo","nonce":"t",}"#,
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "single-quoted strings",
            "{'action':'echo','nonce':'t'}",
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "truncated body",
            r#"{"action":"echo","nonce":"t""#,
            422,
            Some("invalid_json"),
            Refused,
        ),
    ];
    let (body, keys) = many_keys("t-manykeys", LIMIT);
    assert!(keys > 9_000, "{keys} keys");
    t.push(case(
        format!("{keys}-key payload (as many distinct keys as fit in 65536 bytes)"),
        body,
        200,
        None,
        Recorded,
    ));
    t
}

/// A payload object with as many distinct keys as fit in a request of
/// `max_total` bytes (shortest keys first: 1 byte each, then 2, ...).
fn many_keys(nonce: &str, max_total: usize) -> (Vec<u8>, usize) {
    let alphabet: Vec<char> = (0x21u8..0x7f)
        .filter(|b| !matches!(b, b'"' | b'\\'))
        .map(char::from)
        .collect();
    let frame = req(r#""echo""#, &format!("\"{nonce}\""), "{}").len();
    let mut payload = String::from("{");
    let mut n = 0usize;
    'fill: for len in 1.. {
        let mut digits = vec![0usize; len];
        loop {
            let key: String = digits.iter().map(|&d| alphabet[d]).collect();
            let entry = format!("\"{key}\":0,");
            if frame + payload.len() + entry.len() - 1 > max_total {
                break 'fill;
            }
            payload.push_str(&entry);
            n += 1;
            // Next key of this length, like an odometer.
            let mut i = len;
            loop {
                if i == 0 {
                    continue 'fill;
                }
                i -= 1;
                digits[i] += 1;
                if digits[i] < alphabet.len() {
                    break;
                }
                digits[i] = 0;
            }
        }
    }
    payload.pop();
    payload.push('}');
    let body = req(r#""echo""#, &format!("\"{nonce}\""), &payload);
    assert!(body.len() <= max_total);
    (body, n)
}
