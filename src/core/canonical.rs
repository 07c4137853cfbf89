//! RFC 8785 (JCS) canonical JSON, and the hashes taken over it.
//!
//! Canonicalization is delegated to `serde_json_canonicalizer`; this module
//! only fixes *what* is canonicalized and under which domain tag, so that a
//! hash of one kind of object can never be mistaken for a hash of another.

use serde::Serialize;
use serde_json::Value;

use super::hash::Hash;

/// Domain tag of the request hash (see docs/FORMATS.md, "Request hash").
pub const REQUEST_HASH_TAG: &[u8] = b"openexec/request/v1\n";
/// Domain tag of a salted content commitment.
pub const COMMITMENT_TAG: &[u8] = b"openexec/commitment/v1\n";

/// A value that cannot be put in canonical form (e.g. a non-finite float,
/// which RFC 8785 forbids).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value has no RFC 8785 canonical form: {0}")]
pub struct CanonicalError(String);

/// RFC 8785 canonical bytes of any serializable value.
pub fn to_canonical_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
}

/// RFC 8785 canonical text of any serializable value.
pub fn to_canonical_string<T: Serialize>(value: &T) -> Result<String, CanonicalError> {
    serde_json_canonicalizer::to_string(value).map_err(|e| CanonicalError(e.to_string()))
}

/// `value` read back from its RFC 8785 canonical bytes: the one value of
/// all those that share those bytes (and so a request hash). `1.0`, `1e0`
/// and `1` all become the integer `1`; `-0` becomes `0`. What a handler
/// receives, what is hashed and what is committed is this value, and
/// canonicalizing it again gives the same bytes.
pub fn canonical_value(value: &Value) -> Result<Value, CanonicalError> {
    canonical_value_of(&to_canonical_bytes(value)?)
}

/// The value canonical bytes (from [`to_canonical_bytes`]) read back to.
pub fn canonical_value_of(bytes: &[u8]) -> Result<Value, CanonicalError> {
    serde_json::from_slice(bytes).map_err(|e| CanonicalError(e.to_string()))
}

/// The fields a request hash binds: exactly what was asked, of whom, once.
#[derive(Debug, Serialize)]
struct RequestForHash<'a> {
    action: &'a str,
    nonce: &'a str,
    payload: &'a Value,
    tenant: &'a str,
}

/// `SHA-256("openexec/request/v1\n" ‖ JCS({action, nonce, payload, tenant}))`.
///
/// A v2 approval names a request through this hash, and the nonce
/// reservation stores it to tell a replay from a conflicting reuse.
pub fn request_hash(
    action: &str,
    payload: &Value,
    nonce: &str,
    tenant: &str,
) -> Result<Hash, CanonicalError> {
    let body = to_canonical_bytes(&RequestForHash {
        action,
        nonce,
        payload,
        tenant,
    })?;
    Ok(tagged_sha256(REQUEST_HASH_TAG, &[&body]))
}

/// A salted commitment to content that may later be deleted:
/// `SHA-256("openexec/commitment/v1\n" ‖ salt ‖ content)`.
///
/// The 32-byte random salt keeps low-entropy content (a yes/no, a small
/// number) from being recovered by guessing once the cleartext is gone.
#[must_use]
pub fn commitment(salt: &[u8; 32], content: &[u8]) -> Hash {
    tagged_sha256(COMMITMENT_TAG, &[salt, content])
}

fn tagged_sha256(tag: &[u8], parts: &[&[u8]]) -> Hash {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(tag);
    for part in parts {
        hasher.update(part);
    }
    Hash::from_bytes(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_form_sorts_keys_and_normalizes_numbers() {
        let v: Value = serde_json::from_str(r#"{"b": 1.0, "a": [1e2, "é", 0.1]}"#).unwrap();
        assert_eq!(
            to_canonical_string(&v).unwrap(),
            r#"{"a":[100,"é",0.1],"b":1}"#
        );
    }

    #[test]
    fn request_hash_is_independent_of_key_order_and_bound_to_every_field() {
        let p1: Value = serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap();
        let p2: Value = serde_json::from_str(r#"{"y":2,"x":1}"#).unwrap();
        let h = request_hash("echo", &p1, "n1", "t").unwrap();
        assert_eq!(h, request_hash("echo", &p2, "n1", "t").unwrap());
        assert_ne!(h, request_hash("echo2", &p1, "n1", "t").unwrap());
        assert_ne!(h, request_hash("echo", &json!({"x":1}), "n1", "t").unwrap());
        assert_ne!(h, request_hash("echo", &p1, "n2", "t").unwrap());
        assert_ne!(h, request_hash("echo", &p1, "n1", "u").unwrap());
    }

    #[test]
    fn commitment_depends_on_salt() {
        assert_ne!(commitment(&[0; 32], b"yes"), commitment(&[1; 32], b"yes"));
    }
}
