//! Parsing of a `POST /execute` body, within limits.
//!
//! This is the boundary's first stage. A body refused here never reaches
//! the ledger (there is no well-formed action or nonce to record); every
//! body that passes is recorded, whatever happens to it next.

use serde_json::{Map, Value};

/// Limits on an execute request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body in bytes.
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_depth: 32,
        }
    }
}

/// An action name.
// INVARIANT: matches `[A-Za-z0-9_.-]{1,64}` (see `is_action_name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActionName(String);

/// A client nonce.
// INVARIANT: 1–128 bytes of printable ASCII without space (see `is_nonce`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nonce(String);

macro_rules! validated_string {
    ($name:ident, $check:ident, $code:literal, $detail:literal) => {
        impl $name {
            /// Parses, refusing anything outside the documented form.
            pub fn parse(text: &str) -> Result<Self, RequestError> {
                if $check(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(refuse(422, $code, $detail))
                }
            }

            /// The text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_string!(
    ActionName,
    is_action_name,
    "invalid_action",
    "action must be 1-64 characters of A-Z a-z 0-9 _ . -"
);
validated_string!(
    Nonce,
    is_nonce,
    "invalid_nonce",
    "nonce must be 1-128 printable ASCII characters without spaces"
);

/// A parsed, well-formed execute request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteRequest {
    /// Action name.
    pub action: ActionName,
    /// The payload object (`{}` when absent or null, as the original did).
    pub payload: Value,
    /// Nonce, scoped per tenant.
    pub nonce: Nonce,
    /// The approval artifact object, if any.
    pub approval_artifact: Option<Value>,
}

/// Why a body was refused; `detail` is for people, `code` for programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct RequestError {
    /// Human-readable reason.
    pub detail: String,
    /// Machine code.
    pub code: &'static str,
    /// HTTP status to answer with.
    pub status: u16,
}

fn refuse(status: u16, code: &'static str, detail: impl Into<String>) -> RequestError {
    RequestError {
        detail: detail.into(),
        code,
        status,
    }
}

/// Parses and validates a body.
pub fn parse_execute(body: &[u8], limits: &Limits) -> Result<ExecuteRequest, RequestError> {
    if body.len() > limits.max_body_bytes {
        return Err(refuse(
            413,
            "body_too_large",
            format!("Request body exceeds {} bytes", limits.max_body_bytes),
        ));
    }
    check_depth(body, limits.max_depth)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(422, "invalid_json", format!("Body is not valid JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(refuse(422, "invalid_body", "Body must be a JSON object"));
    };
    let action = ActionName::parse(&take_string(&mut map, "action")?)?;
    let nonce = Nonce::parse(&take_string(&mut map, "nonce")?)?;
    let payload = parse_payload(map.remove("payload"), limits)?;
    let approval_artifact = match map.remove("approval_artifact") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => {
            return Err(refuse(
                422,
                "invalid_approval",
                "approval_artifact must be an object or null",
            ))
        }
    };
    Ok(ExecuteRequest {
        action,
        payload,
        nonce,
        approval_artifact,
    })
}

fn take_string(map: &mut Map<String, Value>, field: &'static str) -> Result<String, RequestError> {
    match map.remove(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(refuse(
            422,
            "missing_field",
            format!("Field required: {field}"),
        )),
        Some(_) => Err(refuse(
            422,
            "invalid_field",
            format!("Field {field} must be a string"),
        )),
    }
}

/// An object, null/absent (→ `{}`), or a string holding a JSON object —
/// the `function.arguments` string of OpenAI-style function calling.
fn parse_payload(value: Option<Value>, limits: &Limits) -> Result<Value, RequestError> {
    match value {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(Value::String(text)) => {
            check_depth(text.as_bytes(), limits.max_depth)?;
            match serde_json::from_str::<Value>(&text) {
                Ok(v @ Value::Object(_)) => Ok(v),
                Ok(Value::Null) => Ok(Value::Object(Map::new())),
                _ => Err(refuse(
                    422,
                    "invalid_payload",
                    "payload string must hold a JSON object",
                )),
            }
        }
        Some(_) => Err(refuse(
            422,
            "invalid_payload",
            "payload must be an object, null, or a JSON object string",
        )),
    }
}

/// `[A-Za-z0-9_.-]{1,64}`.
#[must_use]
pub fn is_action_name(action: &str) -> bool {
    (1..=64).contains(&action.len())
        && action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// 1–128 bytes of printable ASCII without space (`0x21..=0x7e`).
#[must_use]
pub fn is_nonce(nonce: &str) -> bool {
    (1..=128).contains(&nonce.len()) && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Refuses JSON nested deeper than `max` before parsing it (the parser's
/// own limit is 128 and its error would be less clear).
fn check_depth(bytes: &[u8], max: usize) -> Result<(), RequestError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(refuse(
                        422,
                        "too_deep",
                        format!("JSON nesting exceeds {max} levels"),
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: &str) -> Result<ExecuteRequest, RequestError> {
        parse_execute(body.as_bytes(), &Limits::default())
    }

    #[test]
    fn accepts_the_original_shape_and_openai_arguments() {
        let r = parse(r#"{"action":"echo","payload":{"msg":"hello"},"nonce":"n1"}"#).unwrap();
        assert_eq!(r.payload, json!({"msg": "hello"}));
        let r =
            parse(r#"{"action":"echo","payload":"{\"msg\": \"hello\"}","nonce":"n1"}"#).unwrap();
        assert_eq!(r.payload, json!({"msg": "hello"}));
        let r = parse(r#"{"action":"echo","nonce":"n1","payload":null}"#).unwrap();
        assert_eq!(r.payload, json!({}));
    }

    #[test]
    fn refuses_bad_shapes_with_codes() {
        assert_eq!(
            parse(r#"{"action":"echo"}"#).unwrap_err().code,
            "missing_field"
        );
        assert_eq!(
            parse(r#"{"action":"ec ho","nonce":"n"}"#).unwrap_err().code,
            "invalid_action"
        );
        assert_eq!(
            parse(r#"{"action":"echo","nonce":""}"#).unwrap_err().code,
            "invalid_nonce"
        );
        assert_eq!(
            parse(r#"{"action":"echo","nonce":"a\u0000b"}"#)
                .unwrap_err()
                .code,
            "invalid_nonce"
        );
        assert_eq!(
            parse(&format!(
                r#"{{"action":"echo","nonce":"{}"}}"#,
                "n".repeat(129)
            ))
            .unwrap_err()
            .code,
            "invalid_nonce"
        );
        assert_eq!(
            parse(r#"{"action":"echo","nonce":"n","payload":"[1]"}"#)
                .unwrap_err()
                .code,
            "invalid_payload"
        );
        assert_eq!(
            parse(r#"{"action":"echo","nonce":"n","payload":5}"#)
                .unwrap_err()
                .code,
            "invalid_payload"
        );
        assert_eq!(parse("not json").unwrap_err().code, "invalid_json");
        let deep = format!(
            r#"{{"action":"echo","nonce":"n","payload":{}1{}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        assert_eq!(parse(&deep).unwrap_err().code, "too_deep");
        // Brackets inside strings do not count.
        let flat = format!(
            r#"{{"action":"echo","nonce":"n","payload":{{"s":"{}"}}}}"#,
            "[".repeat(40)
        );
        assert!(parse(&flat).is_ok());
    }
}
