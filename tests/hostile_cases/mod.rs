//! The table of hostile `POST /execute` requests that `tests/hostile_http.rs`
//! sends to the real server: each row has a body (any bytes at all), a
//! content type and framing, and the status, code and fate it must get.
//! The rows are grouped by kind of input, one module each, and run in the
//! order [`cases`] gives.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod content_types;
mod encodings;
mod fields;
mod structure;
mod values;

pub use crate::common::wire::Framing;
use crate::common::wire::JSON;

/// Default body limit.
pub const LIMIT: usize = 65_536;
/// The action `echo`, as a JSON string.
pub const ECHO: &str = r#""echo""#;

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// A ledger entry is appended and the response carries its receipt.
    Recorded,
    /// Answered `{detail, code}` with nothing appended.
    Refused,
}
use Fate::Recorded;

/// One row of the table.
pub struct Case {
    pub name: String,
    pub content_type: Option<&'static str>,
    pub framing: Framing,
    pub body: Vec<u8>,
    pub status: u16,
    /// The response `code`; `None` for a success (which has none).
    pub code: Option<&'static str>,
    pub fate: Fate,
}

/// A row whose body is sent as JSON, framed by `Content-Length`.
pub fn case(
    name: impl Into<String>,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: Option<&'static str>,
    fate: Fate,
) -> Case {
    Case {
        name: name.into(),
        content_type: JSON,
        framing: Framing::Length,
        body: body.into(),
        status,
        code,
        fate,
    }
}

/// `{"action": ACTION, "nonce": NONCE, "payload": PAYLOAD}` from raw JSON
/// fragments, so that any bytes at all can be put in each slot.
pub fn req(action: &str, nonce: &str, payload: &str) -> Vec<u8> {
    format!(r#"{{"action":{action},"nonce":{nonce},"payload":{payload}}}"#).into_bytes()
}

/// An `echo` with `nonce` (a JSON fragment) and the payload
/// `{"x": "y…y"}`, `len` bytes of `y`.
pub fn padded(nonce: &str, len: usize) -> Vec<u8> {
    req(ECHO, nonce, &format!("{{\"x\":\"{}\"}}", "y".repeat(len)))
}

/// `inner` wrapped in `depth` levels of `open` ... `close`.
pub fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// A well-formed `echo` of `payload` with `nonce`: recorded, answered 200.
pub fn ok(name: &str, nonce: &str, payload: &str) -> Case {
    case(
        name,
        req(ECHO, &format!("\"{nonce}\""), payload),
        200,
        None,
        Recorded,
    )
}

/// The whole table, in order.
pub fn cases() -> Vec<Case> {
    [
        structure::cases(),
        encodings::cases(),
        values::cases(),
        fields::cases(),
        content_types::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
