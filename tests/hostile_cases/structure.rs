//! Rows about the body as a whole: a baseline, sizes around and far over
//! the 64 KiB limit (with and without a length), bodies that are not one
//! JSON object, and nesting around the depth limit of 32.

use super::{
    case, nested, ok, padded, req, Case,
    Fate::{Recorded, Refused},
    Framing, ECHO, LIMIT,
};

/// This part of the table, in order.
pub fn cases() -> Vec<Case> {
    let echo = ECHO;
    vec![
        // --- baseline
        ok("well-formed echo (baseline)", "t-base", r#"{"msg":"hi"}"#),
        // --- sizes
        case(
            "body one byte over the limit (65537, Content-Length)",
            {
                let mut b = padded("\"t-413\"", LIMIT);
                b.truncate(LIMIT - 2);
                b.extend_from_slice(b"\"}");
                b.push(b'}');
                assert_eq!(b.len(), LIMIT + 1);
                b
            },
            413,
            Some("body_too_large"),
            Refused,
        ),
        case(
            "body exactly at the limit (65536)",
            {
                let frame = req(echo, "\"t-at-limit\"", r#"{"x":""}"#).len();
                let b = padded("\"t-at-limit\"", LIMIT - frame);
                assert_eq!(b.len(), LIMIT);
                b
            },
            200,
            None,
            Recorded,
        ),
        case(
            "10 MB body (Content-Length)",
            padded("\"t-10mb\"", 10 << 20),
            413,
            Some("body_too_large"),
            Refused,
        ),
        Case {
            framing: Framing::Chunked,
            ..case(
                "10 MB body (chunked, no length announced)",
                padded("\"t-10mb-c\"", 10 << 20),
                413,
                Some("body_too_large"),
                Refused,
            )
        },
        Case {
            framing: Framing::Chunked,
            ..ok("small body, chunked", "t-chunked", r#"{"msg":"chunks"}"#)
        },
        case("empty body", "", 422, Some("invalid_json"), Refused),
        case(
            "whitespace-only body",
            "  \r\n\t ",
            422,
            Some("invalid_json"),
            Refused,
        ),
        // --- not an object
        case(
            "body is a JSON array",
            "[]",
            422,
            Some("invalid_body"),
            Refused,
        ),
        case(
            "body is a JSON number",
            "5",
            422,
            Some("invalid_body"),
            Refused,
        ),
        case(
            "body is a JSON string",
            "\"echo\"",
            422,
            Some("invalid_body"),
            Refused,
        ),
        case(
            "body is JSON null",
            "null",
            422,
            Some("invalid_body"),
            Refused,
        ),
        case(
            "body is two JSON objects",
            r#"{"action":"echo","nonce":"a"}{}"#,
            422,
            Some("invalid_json"),
            Refused,
        ),
        // --- nesting
        ok(
            "nesting exactly 32 levels (31 in payload)",
            "t-depth32",
            &nested("{\"a\":", "}", 30, "[1]"),
        ),
        case(
            "nested objects, 40 levels in payload",
            req(echo, "\"t\"", &nested("{\"a\":", "}", 40, "1")),
            422,
            Some("too_deep"),
            Refused,
        ),
        case(
            "nested arrays, 40 levels in payload",
            req(echo, "\"t\"", &nested("[", "]", 40, "1")),
            422,
            Some("too_deep"),
            Refused,
        ),
        case(
            "60 000 unclosed '[' (body within the limit)",
            format!(
                r#"{{"action":"echo","nonce":"t","payload":{}"#,
                "[".repeat(60_000)
            ),
            422,
            Some("too_deep"),
            Refused,
        ),
        case(
            "nested objects, 40 levels inside a payload string",
            req(
                echo,
                "\"t\"",
                &serde_json::to_string(&nested("{\"a\":", "}", 40, "1")).unwrap(),
            ),
            422,
            Some("too_deep"),
            Refused,
        ),
        case(
            "nested arrays, 40 levels inside a payload string",
            req(
                echo,
                "\"t\"",
                &serde_json::to_string(&format!("{{\"a\":{}}}", nested("[", "]", 40, "1")))
                    .unwrap(),
            ),
            422,
            Some("too_deep"),
            Refused,
        ),
        ok(
            "brackets inside strings do not count as nesting",
            "t-brackets",
            &format!(r#"{{"s":"{}"}}"#, "[{".repeat(500)),
        ),
    ]
}
