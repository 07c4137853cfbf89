//! Rows about the content type: anything but JSON is refused with 415
//! before the body is read (even a 10 MB one); no content type, an
//! upper-case one with a charset, and a `+json` suffix are taken as JSON.

use super::{
    case, padded, req, Case,
    Fate::{Recorded, Refused},
    ECHO,
};

/// This part of the table, in order.
pub fn cases() -> Vec<Case> {
    let echo = ECHO;
    let typed = |name: &str, ct: Option<&'static str>, nonce: &str, status, code, fate| Case {
        content_type: ct,
        ..case(
            name,
            req(echo, &format!("\"{nonce}\""), "{}"),
            status,
            code,
            fate,
        )
    };
    vec![
        typed(
            "Content-Type text/plain",
            Some("text/plain"),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case(
                "Content-Type form (urlencoded body)",
                "action=echo&nonce=t",
                415,
                Some("unsupported_media_type"),
                Refused,
            )
        },
        typed(
            "Content-Type multipart/form-data",
            Some("multipart/form-data; boundary=x"),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        typed(
            "Content-Type application/jsonx",
            Some("application/jsonx"),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        typed(
            "Content-Type empty",
            Some(""),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        typed(
            "Content-Type with a non-ASCII byte",
            Some("application/json\u{e9}"),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        typed(
            "Content-Type missing: accepted as JSON (docs/API.md)",
            None,
            "t-noct",
            200,
            None,
            Recorded,
        ),
        typed(
            "Content-Type APPLICATION/JSON; charset=utf-8",
            Some("APPLICATION/JSON; charset=utf-8"),
            "t-ct-upper",
            200,
            None,
            Recorded,
        ),
        typed(
            "Content-Type application/merge-patch+json",
            Some("application/merge-patch+json"),
            "t-ct-plus",
            200,
            None,
            Recorded,
        ),
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain and 10 MB: 415 before reading",
                padded("\"t\"", 10 << 20),
                415,
                Some("unsupported_media_type"),
                Refused,
            )
        },
    ]
}
