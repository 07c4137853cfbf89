//! The HTTP conventions of idempotent APIs on `POST /execute` (the IETF
//! httpapi `Idempotency-Key` draft; Stripe): the `Idempotency-Key` header
//! is the nonce of a body without one; a `409 nonce_in_flight` says when
//! to retry (`Retry-After`); a replay says so in a header
//! (`Idempotent-Replayed: true`).

use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{HttpRequest, HttpResponseBuilder};
use serde_json::Value;

use super::ApiError;
use crate::exec::Response;

/// The header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Seconds a client is told to wait before retrying a nonce in flight: a
/// handler usually finishes within one.
const IN_FLIGHT_RETRY_SECS: u64 = 1;

fn mismatch(detail: &str) -> ApiError {
    ApiError::new(422, "idempotency_key_mismatch", detail)
}

/// The body with the request's `Idempotency-Key` as its nonce when it has
/// none. A key equal to the body's nonce changes nothing; a different one
/// is refused `422 idempotency_key_mismatch` (not recorded, like every
/// body refused before parsing). A body that is not a JSON object is left
/// for the boundary to refuse.
pub fn with_key(req: &HttpRequest, body: BytesMut) -> Result<BytesMut, ApiError> {
    let mut keys = req.headers().get_all(IDEMPOTENCY_KEY);
    let Some(key) = keys.next() else {
        return Ok(body);
    };
    if keys.next().is_some() {
        return Err(mismatch("Idempotency-Key is sent more than once"));
    }
    let key = key.to_str().map_err(|_| {
        ApiError::new(
            422,
            "invalid_nonce",
            "Idempotency-Key must be printable ASCII",
        )
    })?;
    // A structured-field string (the draft's form) or a bare token (Stripe's).
    let key = key
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(key);
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
        return Ok(body);
    };
    match map.get("nonce") {
        None => Ok(splice_nonce(&body, key)),
        Some(Value::String(nonce)) if nonce == key => Ok(body),
        Some(Value::String(_)) => Err(mismatch(
            "Idempotency-Key differs from the body's nonce; send one of them, or the same value in both",
        )),
        Some(Value::Null) => Err(mismatch(
            "The body's nonce is null; with Idempotency-Key, leave nonce out of the body",
        )),
        Some(_) => Ok(body),
    }
}

/// `{"nonce":"<key>", …rest}`: the key added as the object's first
/// member, the rest of the body byte for byte (so that the boundary's
/// strict reading sees what the client sent).
fn splice_nonce(body: &[u8], key: &str) -> BytesMut {
    let open = body.iter().position(|b| *b == b'{').unwrap_or(0);
    let rest = &body[open + 1..];
    let empty = rest
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    let member = format!(
        "\"nonce\":{}{}",
        Value::from(key),
        if empty { "" } else { "," }
    );
    let mut out = BytesMut::with_capacity(body.len() + member.len());
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(rest);
    out
}

/// The headers of an `/execute` answer: `Retry-After` (a rate limit, or a
/// nonce in flight) and `Idempotent-Replayed` on a replay.
pub fn headers(answer: &mut HttpResponseBuilder, response: &Response) {
    let in_flight = response.status == 409
        && response.body.get("code").and_then(Value::as_str) == Some("nonce_in_flight");
    let retry_after = response
        .retry_after
        .or(in_flight.then_some(IN_FLIGHT_RETRY_SECS));
    if let Some(secs) = retry_after {
        answer.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    if response.body.get("replayed") == Some(&Value::Bool(true)) {
        answer.insert_header(("Idempotent-Replayed", "true"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::splice_nonce;

    #[test]
    fn a_nonce_in_flight_says_when_to_retry_and_a_replay_says_so() {
        use crate::exec::Response;
        use serde_json::json;
        let answer = |status: u16, body: serde_json::Value| {
            let mut b = actix_web::HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status).unwrap(),
            );
            super::headers(
                &mut b,
                &Response {
                    status,
                    body,
                    retry_after: None,
                },
            );
            b.finish()
        };
        let in_flight = answer(
            409,
            json!({"code": "nonce_in_flight", "outcome": "rejected"}),
        );
        assert_eq!(in_flight.headers().get("retry-after").unwrap(), "1");
        assert!(in_flight.headers().get("idempotent-replayed").is_none());
        let replay = answer(200, json!({"outcome": "replayed", "replayed": true}));
        assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
        assert!(replay.headers().get("retry-after").is_none());
        let executed = answer(200, json!({"outcome": "executed", "replayed": false}));
        assert!(executed.headers().get("idempotent-replayed").is_none());
    }

    #[test]
    fn the_key_becomes_the_first_member() {
        let cases = [
            (r#"{"action":"echo"}"#, r#"{"nonce":"k-1","action":"echo"}"#),
            ("{ }", r#"{"nonce":"k-1" }"#),
            (" {\n\"a\":1}", " {\"nonce\":\"k-1\",\n\"a\":1}"),
        ];
        for (body, want) in cases {
            let out = splice_nonce(body.as_bytes(), "k-1");
            assert_eq!(std::str::from_utf8(&out).unwrap(), want);
        }
        let quoted = splice_nonce(b"{}", "a\"b");
        assert_eq!(std::str::from_utf8(&quoted).unwrap(), r#"{"nonce":"a\"b"}"#);
    }
}
