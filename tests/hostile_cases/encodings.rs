//! Rows about text: invalid and overlong UTF-8, a BOM, UTF-16, and odd
//! Unicode (bidi overrides, NUL, zero-width joiners, lone surrogates) in
//! the action, the nonce and the payload.

use super::{case, ok, req, Case, Fate::Refused, ECHO};

/// This part of the table, in order.
pub fn cases() -> Vec<Case> {
    let echo = ECHO;
    vec![
        // --- invalid UTF-8 and odd encodings
        case(
            "invalid UTF-8 (0xff) in a payload string",
            [
                &b"{\"action\":\"echo\",\"nonce\":\"t\",\"payload\":{\"m\":\""[..],
                b"\xff\xfe",
                b"\"}}",
            ]
            .concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "invalid UTF-8 (0xff) in the action",
            [&b"{\"action\":\"ec\xffho\",\"nonce\":\"t\"}"[..]].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "overlong UTF-8 '/' (C0 AF) in the nonce",
            [&b"{\"action\":\"echo\",\"nonce\":\"a\xc0\xafb\"}"[..]].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "overlong UTF-8 NUL (C0 80) in the payload",
            [&b"{\"action\":\"echo\",\"nonce\":\"t\",\"payload\":{\"m\":\"\xc0\x80\"}}"[..]]
                .concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "CESU-8 surrogate bytes (ED A0 80) in the payload",
            [&b"{\"action\":\"echo\",\"nonce\":\"t\",\"payload\":{\"m\":\"\xed\xa0\x80\"}}"[..]]
                .concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "UTF-8 BOM before the body (refused: RFC 8259 §8.1 lets us)",
            [&b"\xef\xbb\xbf"[..], &req(echo, "\"t-bom\"", "{}")].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "UTF-16LE body",
            "{\"action\":\"echo\",\"nonce\":\"t\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        // --- odd Unicode in action, nonce and payload
        case(
            "U+202E (RTL override) in the action",
            req("\"ec\u{202e}ho\"", "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "U+202E escaped in the action",
            req(r#""ec\u202eho""#, "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "U+202E in the nonce",
            req(echo, "\"n\u{202e}1\"", "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        ok(
            "U+202E in the payload (kept, hashed, echoed)",
            "t-rtl",
            "{\"m\":\"abc\u{202e}def\"}",
        ),
        case(
            "escaped NUL in the action",
            req(r#""echo\u0000""#, "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "escaped NUL in the nonce",
            req(echo, r#""n\u0000""#, "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        ok(
            "escaped NUL in a payload key and value",
            "t-nul",
            r#"{"k\u0000":"v\u0000"}"#,
        ),
        case(
            "raw NUL byte inside a string",
            [&b"{\"action\":\"echo\",\"nonce\":\"t\",\"payload\":{\"m\":\"a\0b\"}}"[..]].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "raw NUL byte after the body",
            [&req(echo, "\"t\"", "{}")[..], b"\0"].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "zero-width joiner in the action",
            req("\"ec\u{200d}ho\"", "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "zero-width joiner in the nonce",
            req(echo, "\"n\u{200d}1\"", "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        ok(
            "zero-width joiner in the payload",
            "t-zwj",
            "{\"m\":\"\u{1f468}\u{200d}\u{1f469}\"}",
        ),
        case(
            "lone high surrogate escape \\ud800 in the payload",
            req(echo, "\"t\"", r#"{"m":"\ud800"}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "lone low surrogate escape \\udc00 in the payload",
            req(echo, "\"t\"", r#"{"m":"\udc00x"}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "lone surrogate escape in the action",
            req(r#""\ud800""#, "\"t\"", "{}"),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "lone surrogate escape in the nonce",
            req(echo, r#""\ud800""#, "{}"),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "lone surrogate escape in a key",
            req(echo, "\"t\"", r#"{"\udfff":1}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        ok(
            "valid surrogate pair escape in the payload",
            "t-pair",
            r#"{"m":"\ud83d\ude00"}"#,
        ),
        case(
            "non-ASCII letter in the action (e with acute)",
            req("\"\u{e9}cho\"", "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "space in the nonce",
            req(echo, "\"a b\"", "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
    ]
}
