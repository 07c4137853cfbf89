//! Parsing of a `POST /execute` body, within limits.
//!
//! This is the boundary's first stage. A body refused here never reaches
//! the ledger (there is no well-formed action or nonce to record); every
//! body that passes is recorded, whatever happens to it next.
//!
//! One rule binds approvals to what runs: the body (and a payload string)
//! must be I-JSON, every number one that an IEEE double writes back
//! exactly ([`super::ijson`]), and the payload handed on is the value read
//! back from its RFC 8785 canonical bytes
//! ([`super::canonical::canonical_value`]). So the value that is hashed,
//! committed, approved and handed to the handler is one value, and two
//! payloads with one request hash are one handler input.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::canonical::canonical_value;
use super::ijson::{check_numbers, InexactNumber};

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
    /// The payload object (`{}` when absent or null, as the original did)
    /// in canonical form: read back from its RFC 8785 bytes. The request
    /// hash, the commitments and the handler all take this value.
    pub payload: Value,
    /// The payload object as parsed from the body: what a ClawShield v1
    /// `action_hash` covers (Python's `json.loads` keeps `1.0` a float).
    /// [`Self::payload`] is a function of it.
    pub payload_as_sent: Value,
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
    let value = parse_json_strict(body).map_err(|e| e.into_refusal("Body"))?;
    check_numbers(body).map_err(|e| inexact(&e, "Body"))?;
    let Value::Object(mut map) = value else {
        return Err(refuse(422, "invalid_body", "Body must be a JSON object"));
    };
    let action = ActionName::parse(&take_string(&mut map, "action")?)?;
    let nonce = Nonce::parse(&take_string(&mut map, "nonce")?)?;
    let payload_as_sent = parse_payload(map.remove("payload"), limits)?;
    let payload = canonical_value(&payload_as_sent)
        .map_err(|e| refuse(422, "invalid_payload", e.to_string()))?;
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
        payload_as_sent,
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
            let parsed = parse_json_strict(text.as_bytes());
            if parsed.is_ok() {
                check_numbers(text.as_bytes()).map_err(|e| inexact(&e, "payload string"))?;
            }
            match parsed {
                Ok(v @ Value::Object(_)) => Ok(v),
                Ok(Value::Null) => Ok(Value::Object(Map::new())),
                Err(e @ StrictJsonError::DuplicateKey(_)) => Err(e.into_refusal("payload string")),
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

/// The refusal of a number in `what` ("Body", "payload string") that is
/// not I-JSON.
fn inexact(e: &InexactNumber, what: &str) -> RequestError {
    refuse(422, "inexact_number", format!("{what}: {e}"))
}

/// Why [`parse_json_strict`] refused a text.
#[derive(Debug, thiserror::Error)]
pub enum StrictJsonError {
    /// The same key (after unescaping) twice in one object; the key's
    /// first 64 characters.
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    /// Anything `serde_json` refuses (syntax, invalid UTF-8, lone
    /// surrogates, numbers out of range, trailing data, ...).
    #[error(transparent)]
    Json(serde_json::Error),
}

impl StrictJsonError {
    /// The refusal of `what` ("Body", "payload string") for this reason.
    fn into_refusal(self, what: &str) -> RequestError {
        match self {
            Self::DuplicateKey(key) => refuse(
                422,
                "duplicate_key",
                format!("{what} has a duplicate key: {key:?} appears twice in one object"),
            ),
            Self::Json(e) => refuse(
                422,
                "invalid_json",
                format!("{what} is not valid JSON: {e}"),
            ),
        }
    }
}

/// Longest prefix of a duplicate key quoted back in an error.
const MAX_QUOTED_KEY_CHARS: usize = 64;

/// Parses JSON into a [`Value`] like `serde_json::from_slice`, but refuses
/// a key that appears twice in one object (anywhere in the document), where
/// `serde_json` silently keeps the last one. Two parsers that disagree on
/// which duplicate wins (a proxy or approver reading the first `nonce`, this
/// service the last) would otherwise see two different requests in one body.
/// Keys are compared after unescaping, so `"a"` and `"\u0061"` are the same.
pub fn parse_json_strict(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictSeed {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match (parsed, duplicate.into_inner()) {
        (_, Some(key)) => Err(StrictJsonError::DuplicateKey(key)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(StrictJsonError::Json(e)),
    }
}

/// Deserializes one JSON value; notes the first duplicate key it meets in
/// `duplicate` (and then fails, to stop parsing).
#[derive(Clone, Copy)]
struct StrictSeed<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        // serde_json's own recursion limit (128) bounds this recursion.
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // As serde_json does; JSON text has no non-finite numbers anyway.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let quoted: String = key.chars().take(MAX_QUOTED_KEY_CHARS).collect();
                *self.duplicate.borrow_mut() = Some(quoted);
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
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
    let mut depth = 0usize;
    let mut strings = super::ijson::JsonStrings::default();
    for &b in bytes {
        if strings.holds(b) {
            continue;
        }
        match b {
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

    #[test]
    fn refuses_duplicate_keys_anywhere() {
        for body in [
            r#"{"action":"sha256","nonce":"n","action":"echo"}"#,
            r#"{"action":"echo","nonce":"n1","nonce":"n2"}"#,
            r#"{"action":"echo","nonce":"n","payload":{},"payload":{"a":1}}"#,
            r#"{"action":"echo","nonce":"n","payload":{"a":1,"b":2,"a":1}}"#,
            r#"{"action":"echo","nonce":"n","payload":{"x":[1,{"y":{"k":1,"k":2}}]}}"#,
            r#"{"action":"echo","nonce":"n","payload":{"a":1,"\u0061":2}}"#,
            r#"{"action":"echo","nonce":"n","payload":"{\"a\":1,\"a\":2}"}"#,
            r#"{"action":"echo","nonce":"n","approval_artifact":{"approval_id":"a","approval_id":"b"}}"#,
            // Still refused when the rest of the body is broken.
            r#"{"a":1,"a":2,"#,
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!((e.status, e.code), (422, "duplicate_key"), "{body}: {e}");
        }
        // The same key in sibling objects, or once per array element, is fine.
        let r = parse(r#"{"action":"echo","nonce":"n","payload":{"a":{"k":1},"b":{"k":1},"c":[{"k":1},{"k":2}]}}"#)
            .unwrap();
        assert_eq!(r.payload["c"][1]["k"], json!(2));
    }

    #[test]
    fn a_duplicate_key_is_quoted_briefly() {
        let key = "\u{202e}".repeat(1000);
        let body = format!(r#"{{"{key}":1,"{key}":2}}"#);
        let e = parse(&body).unwrap_err();
        assert_eq!(e.code, "duplicate_key");
        assert!(e.detail.len() < 64 * 8 + 100, "{}", e.detail.len());
        assert!(
            e.detail.contains("\\u{202e}"),
            "bidi control escaped: {}",
            e.detail
        );
    }

    #[test]
    fn strict_parsing_agrees_with_serde_json_on_everything_else() {
        for text in [
            "{}",
            "[]",
            "null",
            "true",
            "0",
            "-0.0",
            "1.5e308",
            "5e-324",
            "1e-400",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.1",
            r#""\ud83d\ude00 \u0000 \u202e""#,
            r#"{"b":[1,2.5,"x",null,true,{"c":{}}],"a":{"":0}}"#,
            " \n{\"a\" : [ ] }\t",
        ] {
            let strict = parse_json_strict(text.as_bytes()).unwrap();
            let plain: Value = serde_json::from_str(text).unwrap();
            assert_eq!(strict, plain, "{text}");
            assert_eq!(strict.to_string(), plain.to_string(), "{text}");
        }
        for text in [
            "",
            "{",
            "{}{}",
            "{} x",
            r#"{"a":NaN}"#,
            r#"{"a":Infinity}"#,
            r#"{"a":1e400}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"\ud800":1}"#,
            "\u{feff}{}",
            "{'a':1}",
            "[1,]",
        ] {
            assert!(
                matches!(
                    parse_json_strict(text.as_bytes()),
                    Err(StrictJsonError::Json(_))
                ),
                "{text:?}"
            );
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text:?}");
        }
        for bytes in [
            &b"\"\xff\""[..],
            b"\"\xc0\xaf\"",
            b"\"\xed\xa0\x80\"",
            b"\"a\0b\"",
        ] {
            assert!(matches!(
                parse_json_strict(bytes),
                Err(StrictJsonError::Json(_))
            ));
        }
    }

    #[test]
    fn lone_surrogates_bad_utf8_and_out_of_range_numbers_are_invalid_json() {
        for body in [
            &br#"{"action":"echo","nonce":"n","payload":{"m":"\ud800"}}"#[..],
            br#"{"action":"\udfff","nonce":"n"}"#,
            b"{\"action\":\"echo\",\"nonce\":\"n\",\"payload\":{\"m\":\"\xc0\x80\"}}",
            br#"{"action":"echo","nonce":"n","payload":{"n":1e400}}"#,
            br#"{"action":"echo","nonce":"n","payload":{"n":NaN}}"#,
            b"\xef\xbb\xbf{\"action\":\"echo\",\"nonce\":\"n\"}",
        ] {
            let e = parse_execute(body, &Limits::default()).unwrap_err();
            assert_eq!(e.code, "invalid_json", "{}", String::from_utf8_lossy(body));
        }
    }

    proptest::proptest! {
        #[test]
        fn strict_parsing_equals_serde_json_without_duplicates(value in arb_json()) {
            let text = value.to_string();
            let strict = parse_json_strict(text.as_bytes()).unwrap();
            proptest::prop_assert_eq!(strict, serde_json::from_str::<Value>(&text).unwrap());
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
