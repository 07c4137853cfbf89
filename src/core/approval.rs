//! Approval artifacts: signed statements, made elsewhere, that one request
//! may run. OpenExec decides nothing itself; it only checks that an
//! approval names exactly this request and is authentic, fresh and unused.
//!
//! Two kinds are accepted:
//!
//! - **ClawShield v1** (the original format): six strings; Ed25519 over the
//!   plain concatenation `approval_id ‖ tenant_id ‖ action_hash ‖ issued_at
//!   ‖ expires_at`; `action_hash` over Python-style JSON of action and
//!   payload. It does not bind the nonce, and its signed message is
//!   ambiguous between `approval_id` and `tenant_id`, so v1 is accepted only
//!   when the request is pinned to a tenant, configured or from the
//!   caller's credential (which pins the split) — see SECURITY.md.
//! - **OpenExec v2**: canonical JSON (RFC 8785), a domain-separated
//!   signature, the request hash (action, payload, nonce, tenant), a key id,
//!   zoned timestamps, a maximum lifetime and a small clock-skew allowance.
//!
//! Single use is enforced by the caller (the nonce reservation consumes
//! [`ApprovalSummary::consume_key`] of the verified summary atomically);
//! this module is pure.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::to_canonical_bytes;
use super::entry::{ApprovalKind, ApprovalSummary};
use super::hash::Hash;
use super::pyjson::{dumps_sorted, Separators};
use super::signing::verify_strict;
use times::{check_times, parse_v1_time};

pub use times::APPROVAL_YEARS;

mod times;

/// Format tag of a v2 approval.
pub const V2_FORMAT: &str = "openexec-approval/v2";
/// Domain tag of the v2 signed message.
pub const V2_SIGNATURE_CONTEXT: &[u8] = b"openexec/approval/v2\n";

/// Why an approval was refused. `Display` gives the client-facing detail
/// (the original service's exact texts where it had one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// clawshield mode, no artifact.
    #[error("ClawShield mode requires an approval artifact")]
    Missing,
    /// The artifact is not of either shape.
    #[error("Malformed approval artifact: {0}")]
    Malformed(String),
    /// The approval names another request.
    #[error("Action hash mismatch: approval does not match this request")]
    HashMismatch,
    /// `expires_at` is empty.
    #[error("Missing expires_at in approval artifact")]
    MissingExpiry,
    /// A timestamp does not parse.
    #[error("Invalid expires_at timestamp")]
    BadExpiry,
    /// `issued_at` does not parse.
    #[error("Invalid issued_at timestamp")]
    BadIssuedAt,
    /// Past `expires_at` (plus skew).
    #[error("Approval artifact expired")]
    Expired,
    /// `issued_at` is in the future beyond the allowed skew.
    #[error("Approval artifact is not yet valid")]
    NotYetValid,
    /// `expires_at - issued_at` exceeds the maximum lifetime.
    #[error("Approval artifact lifetime exceeds the maximum of {0} seconds")]
    LifetimeTooLong(i64),
    /// A time (the field named) is outside [`APPROVAL_YEARS`] in UTC, or
    /// the clock-skew allowance moves it outside the times chrono holds.
    #[error("Approval artifact {0} is outside the supported time range (years 0000 to 9999, UTC)")]
    TimeOutOfRange(&'static str),
    /// No trusted key verifies the signature.
    #[error("Invalid signature: approval artifact is not authentic")]
    BadSignature,
    /// The artifact's tenant is not the one the request is pinned to.
    #[error("Tenant mismatch: expected {expected}, got {got}")]
    TenantMismatch {
        /// The request's tenant (configured, or the caller's).
        expected: String,
        /// Artifact tenant.
        got: String,
    },
    /// v1 for a request pinned to no tenant (its signed message is
    /// ambiguous).
    #[error("ClawShield v1 artifacts are accepted only when the tenant is pinned: CLAWSHIELD_TENANT_ID is configured, or the caller authenticates")]
    V1NeedsTenant,
    /// Already consumed by another request.
    #[error("Approval artifact has already been used")]
    Reused,
}

impl ApprovalError {
    /// Machine code for the `code` field and the ledger's reason.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Missing => "approval_missing",
            Self::Malformed(_) => "approval_malformed",
            Self::HashMismatch => "approval_hash_mismatch",
            Self::MissingExpiry => "approval_expiry_missing",
            Self::BadExpiry => "approval_expiry_invalid",
            Self::BadIssuedAt => "approval_issued_at_invalid",
            Self::Expired => "approval_expired",
            Self::NotYetValid => "approval_not_yet_valid",
            Self::LifetimeTooLong(_) => "approval_lifetime_too_long",
            Self::TimeOutOfRange(_) => "approval_time_out_of_range",
            Self::BadSignature => "approval_signature_invalid",
            Self::TenantMismatch { .. } => "tenant_mismatch",
            Self::V1NeedsTenant => "approval_v1_needs_tenant",
            Self::Reused => "approval_reused",
        }
    }
}

/// A trusted approver public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverKey {
    key: VerifyingKey,
    key_id: String,
}

impl ApproverKey {
    /// Wraps a public key; its id is the hex of the first 8 bytes of
    /// SHA-256 of the 32 raw key bytes.
    #[must_use]
    pub fn new(key: VerifyingKey) -> Self {
        let key_id = hex::encode(&Hash::sha256(key.as_bytes()).as_bytes()[..8]);
        Self { key, key_id }
    }

    /// The key id.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Parses every `PUBLIC KEY` PEM block in `text` (several keys may be
    /// trusted at once, for rotation). Each must be Ed25519 SPKI.
    pub fn parse_pem_list(text: &str) -> Result<Vec<Self>, String> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        let blocks: Vec<&str> = text.match_indices(BEGIN).map(|(i, _)| &text[i..]).collect();
        if blocks.is_empty() {
            return Err("no PEM `PUBLIC KEY` block found".into());
        }
        blocks
            .into_iter()
            .map(|block| {
                let end = block
                    .find("-----END PUBLIC KEY-----")
                    .ok_or("unterminated PEM block")?;
                let pem = &block[..end + "-----END PUBLIC KEY-----".len()];
                VerifyingKey::from_public_key_pem(pem)
                    .map(Self::new)
                    .map_err(|e| format!("not an Ed25519 public key: {e}"))
            })
            .collect()
    }
}

/// What approvals must satisfy.
#[derive(Debug, Clone)]
pub struct ApprovalPolicy {
    /// Trusted approver keys.
    pub keys: Vec<ApproverKey>,
    /// The configured tenant (`CLAWSHIELD_TENANT_ID`), if any: the tenant
    /// of requests without a principal. [`verify`] reads the tenant the
    /// request is pinned to ([`RequestRef::tenant`]), not this one.
    pub tenant: Option<String>,
    /// Longest allowed `expires_at - issued_at`.
    pub max_lifetime: Duration,
    /// Allowed clock difference with the approver.
    pub skew: Duration,
}

/// ClawShield v1 artifact: six strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Artifact {
    /// Approval id.
    pub approval_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Hex SHA-256 of the Python-style JSON of action and payload.
    pub action_hash: String,
    /// Naive or zoned ISO-8601 time.
    pub issued_at: String,
    /// Naive or zoned ISO-8601 time.
    pub expires_at: String,
    /// Base64 Ed25519 signature.
    pub signature: String,
}

/// Longest value, in bytes, of the artifact fields an entry can record:
/// the tenant (in clawshield mode without a configured tenant, even when
/// the artifact does not verify), and the id and expiry of one that does.
/// Bounding them bounds the size of every entry
/// ([`crate::core::entry::Entry`]).
pub const MAX_ARTIFACT_FIELD_BYTES: usize = 128;

/// Refuses an artifact whose field is longer than
/// [`MAX_ARTIFACT_FIELD_BYTES`].
fn check_field_lengths(fields: &[(&str, &str)]) -> Result<(), ApprovalError> {
    match fields
        .iter()
        .find(|(_, value)| value.len() > MAX_ARTIFACT_FIELD_BYTES)
    {
        Some((name, _)) => Err(ApprovalError::Malformed(format!(
            "{name} is longer than {MAX_ARTIFACT_FIELD_BYTES} bytes"
        ))),
        None => Ok(()),
    }
}

/// OpenExec v2 artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V2Artifact {
    /// Always [`V2_FORMAT`].
    pub format: String,
    /// Approval id, 1–128 bytes.
    pub approval_id: String,
    /// Tenant the request runs for.
    pub tenant: String,
    /// Request hash (base64) of action, payload, nonce and tenant.
    pub request_hash: String,
    /// Approver key id (see [`ApproverKey::new`]).
    pub key_id: String,
    /// RFC 3339 with zone.
    pub issued_at: String,
    /// RFC 3339 with zone.
    pub expires_at: String,
    /// Base64 Ed25519 signature over the v2 message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
}

/// Either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// ClawShield v1.
    V1(V1Artifact),
    /// OpenExec v2.
    V2(V2Artifact),
}

impl Artifact {
    /// Reads an artifact object: v2 if it has a `format` field, else v1.
    pub fn from_value(value: &Value) -> Result<Self, ApprovalError> {
        let Value::Object(map) = value else {
            return Err(ApprovalError::Malformed(
                "approval_artifact must be an object".into(),
            ));
        };
        if map.contains_key("format") {
            let a: V2Artifact = serde_json::from_value(value.clone())
                .map_err(|e| ApprovalError::Malformed(e.to_string()))?;
            if a.format != V2_FORMAT {
                return Err(ApprovalError::Malformed(format!(
                    "unknown approval format {:?}",
                    a.format
                )));
            }
            if a.approval_id.is_empty() || a.approval_id.len() > 128 {
                return Err(ApprovalError::Malformed(
                    "approval_id must be 1-128 bytes".into(),
                ));
            }
            check_field_lengths(&[
                ("tenant", &a.tenant),
                ("key_id", &a.key_id),
                ("issued_at", &a.issued_at),
                ("expires_at", &a.expires_at),
            ])?;
            Ok(Self::V2(a))
        } else {
            let a: V1Artifact = serde_json::from_value(value.clone())
                .map_err(|e| ApprovalError::Malformed(e.to_string()))?;
            check_field_lengths(&[
                ("approval_id", &a.approval_id),
                ("tenant_id", &a.tenant_id),
                ("issued_at", &a.issued_at),
                ("expires_at", &a.expires_at),
            ])?;
            Ok(Self::V1(a))
        }
    }

    /// The tenant the artifact claims.
    #[must_use]
    pub fn tenant(&self) -> &str {
        match self {
            Self::V1(a) => &a.tenant_id,
            Self::V2(a) => &a.tenant,
        }
    }
}

/// A verified approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedApproval {
    /// What the ledger entry records; its
    /// [`consume_key`](ApprovalSummary::consume_key) for the attempt's
    /// tenant is the key its single use is recorded under.
    pub summary: ApprovalSummary,
}

/// The request an approval must name.
#[derive(Debug, Clone, Copy)]
pub struct RequestRef<'a> {
    /// Action.
    pub action: &'a str,
    /// Payload as parsed from the request (`null` is treated as `{}`, as
    /// the original did): the input of the v1 `action_hash`, which Python
    /// computed over the payload as `json.loads` read it. The value a
    /// handler runs with is a function of it, so one v1 hash approves one
    /// handler input.
    pub payload: &'a Value,
    /// Request hash over action, payload, nonce and the effective tenant.
    pub request_hash: &'a Hash,
    /// The tenant the request is pinned to: configured, or from the
    /// caller's credential. An approval naming another tenant is refused
    /// ([`ApprovalError::TenantMismatch`]); a v1 approval needs one
    /// ([`ApprovalError::V1NeedsTenant`]).
    pub tenant: Option<&'a str>,
}

/// Verifies an artifact for a request at time `now`. Does not check single
/// use (the reservation does).
pub fn verify(
    artifact: &Artifact,
    request: RequestRef<'_>,
    policy: &ApprovalPolicy,
    now: DateTime<Utc>,
) -> Result<VerifiedApproval, ApprovalError> {
    match artifact {
        Artifact::V1(a) => verify_v1(a, request, policy, now),
        Artifact::V2(a) => verify_v2(a, request, policy, now),
    }
}

/// The v1 `action_hash` of a request: hex SHA-256 of
/// `json.dumps({"action": a, "payload": p or {}}, sort_keys=True, separators=(",", ":"))`.
#[must_use]
pub fn v1_action_hash(action: &str, payload: &Value) -> String {
    let payload = if payload.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        payload.clone()
    };
    let obj = serde_json::json!({ "action": action, "payload": payload });
    hex::encode(Hash::sha256(dumps_sorted(&obj, Separators::Compact).as_bytes()).as_bytes())
}

fn verify_v1(
    a: &V1Artifact,
    request: RequestRef<'_>,
    policy: &ApprovalPolicy,
    now: DateTime<Utc>,
) -> Result<VerifiedApproval, ApprovalError> {
    // The original's order: hash, expiry, key, signature, tenant.
    if a.action_hash != v1_action_hash(request.action, request.payload) {
        return Err(ApprovalError::HashMismatch);
    }
    if a.expires_at.is_empty() {
        return Err(ApprovalError::MissingExpiry);
    }
    let expires = parse_v1_time(&a.expires_at).ok_or(ApprovalError::BadExpiry)?;
    let issued = parse_v1_time(&a.issued_at).ok_or(ApprovalError::BadIssuedAt)?;
    check_times(issued, expires, policy, now)?;
    let message = format!(
        "{}{}{}{}{}",
        a.approval_id, a.tenant_id, a.action_hash, a.issued_at, a.expires_at
    );
    let key = find_signer(&policy.keys, message.as_bytes(), &a.signature)
        .ok_or(ApprovalError::BadSignature)?;
    let Some(expected) = request.tenant else {
        return Err(ApprovalError::V1NeedsTenant);
    };
    if expected != a.tenant_id {
        return Err(ApprovalError::TenantMismatch {
            expected: expected.to_owned(),
            got: a.tenant_id.clone(),
        });
    }
    Ok(VerifiedApproval {
        summary: ApprovalSummary {
            kind: ApprovalKind::ClawshieldV1,
            id: Some(a.approval_id.clone()),
            key_id: Some(key.key_id.clone()),
            expires_at: Some(a.expires_at.clone()),
        },
    })
}

fn verify_v2(
    a: &V2Artifact,
    request: RequestRef<'_>,
    policy: &ApprovalPolicy,
    now: DateTime<Utc>,
) -> Result<VerifiedApproval, ApprovalError> {
    if let Some(expected) = request.tenant {
        if expected != a.tenant {
            return Err(ApprovalError::TenantMismatch {
                expected: expected.to_owned(),
                got: a.tenant.clone(),
            });
        }
    }
    if Hash::from_base64(&a.request_hash).ok() != Some(*request.request_hash) {
        return Err(ApprovalError::HashMismatch);
    }
    let expires = DateTime::parse_from_rfc3339(&a.expires_at)
        .map_err(|_| ApprovalError::BadExpiry)?
        .with_timezone(&Utc);
    let issued = DateTime::parse_from_rfc3339(&a.issued_at)
        .map_err(|_| ApprovalError::BadIssuedAt)?
        .with_timezone(&Utc);
    check_times(issued, expires, policy, now)?;
    let key = policy
        .keys
        .iter()
        .find(|k| k.key_id == a.key_id)
        .ok_or(ApprovalError::BadSignature)?;
    let message = v2_message(a).map_err(|e| ApprovalError::Malformed(e.to_string()))?;
    let signature = decode_signature(&a.signature).ok_or(ApprovalError::BadSignature)?;
    if !verify_strict(&key.key, &message, &signature) {
        return Err(ApprovalError::BadSignature);
    }
    Ok(VerifiedApproval {
        summary: ApprovalSummary {
            kind: ApprovalKind::OpenexecV2,
            id: Some(a.approval_id.clone()),
            key_id: Some(a.key_id.clone()),
            expires_at: Some(a.expires_at.clone()),
        },
    })
}

/// `V2_SIGNATURE_CONTEXT ‖ JCS(artifact without "signature")`.
pub fn v2_message(a: &V2Artifact) -> Result<Vec<u8>, super::canonical::CanonicalError> {
    let mut unsigned = a.clone();
    unsigned.signature = String::new();
    let mut msg = V2_SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(&to_canonical_bytes(&unsigned)?);
    Ok(msg)
}

/// Strict standard base64 of exactly 64 bytes.
fn decode_signature(text: &str) -> Option<Signature> {
    let bytes = STANDARD.decode(text).ok()?;
    Signature::from_slice(&bytes).ok()
}

fn find_signer<'a>(
    keys: &'a [ApproverKey],
    message: &[u8],
    signature: &str,
) -> Option<&'a ApproverKey> {
    let signature = decode_signature(signature)?;
    keys.iter()
        .find(|k| verify_strict(&k.key, message, &signature))
}

/// `issued_at + ttl`, or the last time chrono holds when that is beyond it
/// (an artifact [`verify`] then refuses as out of range; `openexec
/// approve` refuses such a lifetime before minting).
fn expiry(issued_at: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    issued_at
        .checked_add_signed(ttl)
        .unwrap_or(if ttl < Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// Mints a v1 artifact (for operators who are their own approver, and tests).
#[must_use]
pub fn mint_v1(
    key: &SigningKey,
    approval_id: &str,
    tenant: &str,
    action: &str,
    payload: &Value,
    issued_at: DateTime<Utc>,
    ttl: Duration,
) -> V1Artifact {
    // Naive ISO times, as ClawShield minted them.
    let fmt = |t: DateTime<Utc>| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let mut a = V1Artifact {
        approval_id: approval_id.to_owned(),
        tenant_id: tenant.to_owned(),
        action_hash: v1_action_hash(action, payload),
        issued_at: fmt(issued_at),
        expires_at: fmt(expiry(issued_at, ttl)),
        signature: String::new(),
    };
    let message = format!(
        "{}{}{}{}{}",
        a.approval_id, a.tenant_id, a.action_hash, a.issued_at, a.expires_at
    );
    a.signature = STANDARD.encode(key.sign(message.as_bytes()).to_bytes());
    a
}

/// Mints a v2 artifact for a request hash.
pub fn mint_v2(
    key: &SigningKey,
    approval_id: &str,
    tenant: &str,
    request_hash: &Hash,
    issued_at: DateTime<Utc>,
    ttl: Duration,
) -> Result<V2Artifact, super::canonical::CanonicalError> {
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut a = V2Artifact {
        format: V2_FORMAT.to_owned(),
        approval_id: approval_id.to_owned(),
        tenant: tenant.to_owned(),
        request_hash: request_hash.to_base64(),
        key_id: ApproverKey::new(key.verifying_key()).key_id,
        issued_at: fmt(issued_at),
        expires_at: fmt(expiry(issued_at, ttl)),
        signature: String::new(),
    };
    a.signature = STANDARD.encode(key.sign(&v2_message(&a)?).to_bytes());
    Ok(a)
}

#[cfg(test)]
mod time_tests;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::canonical::request_hash;
    use super::*;

    fn policy(key: &SigningKey, tenant: Option<&str>) -> ApprovalPolicy {
        ApprovalPolicy {
            keys: vec![ApproverKey::new(key.verifying_key())],
            tenant: tenant.map(str::to_owned),
            max_lifetime: Duration::hours(1),
            skew: Duration::seconds(30),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn v1_hash_matches_python() {
        // hashlib.sha256(json.dumps({"action":"echo","payload":{"msg":"hi"}},
        //   sort_keys=True, separators=(",",":")).encode()).hexdigest()
        assert_eq!(
            v1_action_hash("echo", &json!({"msg": "hi"})),
            hex::encode(Hash::sha256(br#"{"action":"echo","payload":{"msg":"hi"}}"#).as_bytes())
        );
        assert_eq!(
            v1_action_hash("echo", &Value::Null),
            v1_action_hash("echo", &json!({}))
        );
    }

    /// An `echo` request of tenant `tenant-001` with nonce `n`, and its
    /// request hash.
    struct EchoRequest {
        payload: Value,
        hash: Hash,
    }

    impl EchoRequest {
        fn new(payload: Value) -> Self {
            let hash = request_hash("echo", &payload, "n", "tenant-001").unwrap();
            Self { payload, hash }
        }

        /// A v1 approval `ap-1` of it, issued now for 300 s.
        fn v1(&self, key: &SigningKey) -> Artifact {
            Artifact::V1(mint_v1(
                key,
                "ap-1",
                "tenant-001",
                "echo",
                &self.payload,
                now(),
                Duration::seconds(300),
            ))
        }

        fn as_ref(&self) -> RequestRef<'_> {
            RequestRef {
                action: "echo",
                payload: &self.payload,
                request_hash: &self.hash,
                tenant: Some("tenant-001"),
            }
        }
    }

    /// The consume keys of verified approvals (`v1 ‖ tenant ‖ id`, `v2 ‖
    /// key id ‖ id`, newline-separated) are part of the store format: a
    /// store finds the approvals it holds under them, so they are fixed.
    #[test]
    fn verified_approvals_consume_the_keys_of_the_store_format() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let echo = EchoRequest::new(json!({"msg": "once"}));
        let (rh, req) = (&echo.hash, echo.as_ref());
        let policy = policy(&key, Some("tenant-001"));
        let v1 = verify(&echo.v1(&key), req, &policy, now()).unwrap();
        assert_eq!(
            v1.summary.consume_key("tenant-001").as_deref(),
            Some("v1\ntenant-001\nap-1")
        );
        let v2 = mint_v2(
            &key,
            "ap-2",
            "tenant-001",
            rh,
            now(),
            Duration::seconds(300),
        )
        .unwrap();
        let key_id = v2.key_id.clone();
        let v2 = verify(&Artifact::V2(v2), req, &policy, now()).unwrap();
        assert_eq!(
            v2.summary.consume_key("tenant-001"),
            Some(format!("v2\n{key_id}\nap-2"))
        );
        assert_eq!(ApprovalSummary::none().consume_key("tenant-001"), None);
    }

    #[test]
    fn v1_round_trip_and_failures() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let echo = EchoRequest::new(json!({"msg": "constitutional"}));
        let (rh, req) = (&echo.hash, echo.as_ref());
        let a = echo.v1(&key);
        let ok = verify(&a, req, &policy(&key, Some("tenant-001")), now()).unwrap();
        assert_eq!(ok.summary.kind, ApprovalKind::ClawshieldV1);
        // The request's pinned tenant decides, not the policy's.
        let elsewhere = RequestRef {
            tenant: Some("wrong"),
            ..req
        };
        assert_eq!(
            verify(&a, elsewhere, &policy(&key, Some("tenant-001")), now())
                .unwrap_err()
                .code(),
            "tenant_mismatch"
        );
        let unpinned = RequestRef {
            tenant: None,
            ..req
        };
        assert_eq!(
            verify(&a, unpinned, &policy(&key, Some("tenant-001")), now()).unwrap_err(),
            ApprovalError::V1NeedsTenant
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            verify(&a, req, &policy(&other, Some("tenant-001")), now()).unwrap_err(),
            ApprovalError::BadSignature
        );
        let later = now() + Duration::seconds(400);
        assert_eq!(
            verify(&a, req, &policy(&key, Some("tenant-001")), later).unwrap_err(),
            ApprovalError::Expired
        );
        let p2 = json!({"msg": "other"});
        let req2 = RequestRef {
            action: "echo",
            payload: &p2,
            request_hash: rh,
            tenant: Some("tenant-001"),
        };
        assert_eq!(
            verify(&a, req2, &policy(&key, Some("tenant-001")), now()).unwrap_err(),
            ApprovalError::HashMismatch
        );
    }

    #[test]
    fn v1_base64_is_strict_and_zoned_times_parse() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let payload = json!({});
        let rh = Hash::sha256(b"x");
        let req = RequestRef {
            action: "echo",
            payload: &payload,
            request_hash: &rh,
            tenant: Some("t"),
        };
        let Artifact::V1(mut a) = Artifact::V1(mint_v1(
            &key,
            "ap",
            "t",
            "echo",
            &payload,
            now(),
            Duration::seconds(300),
        )) else {
            unreachable!()
        };
        let pol = policy(&key, Some("t"));
        let mut sneaky = a.clone();
        sneaky.signature.insert_str(4, "!!");
        assert_eq!(
            verify(&Artifact::V1(sneaky), req, &pol, now()).unwrap_err(),
            ApprovalError::BadSignature
        );
        // A zoned expires_at is accepted by the parser (signature then fails
        // because the text changed, not with a 500).
        a.expires_at = "2026-11-21T12:05:00+00:00".into();
        assert_eq!(
            verify(&Artifact::V1(a), req, &pol, now()).unwrap_err(),
            ApprovalError::BadSignature
        );
    }

    #[test]
    fn v2_binds_the_whole_request() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let payload = json!({"amount": 10});
        let rh = request_hash("pay", &payload, "n-1", "acme").unwrap();
        let a = Artifact::V2(
            mint_v2(&key, "ap-9", "acme", &rh, now(), Duration::seconds(120)).unwrap(),
        );
        let pol = policy(&key, Some("acme"));
        let req = RequestRef {
            action: "pay",
            payload: &payload,
            request_hash: &rh,
            tenant: Some("acme"),
        };
        assert_eq!(
            verify(&a, req, &pol, now()).unwrap().summary.kind,
            ApprovalKind::OpenexecV2
        );
        let other_nonce = request_hash("pay", &payload, "n-2", "acme").unwrap();
        let req2 = RequestRef {
            action: "pay",
            payload: &payload,
            request_hash: &other_nonce,
            tenant: Some("acme"),
        };
        assert_eq!(
            verify(&a, req2, &pol, now()).unwrap_err(),
            ApprovalError::HashMismatch
        );
        // Pinned to another tenant (another caller's credential): refused
        // before anything else; pinned to none, the hash binds the tenant.
        let other_tenant = RequestRef {
            tenant: Some("globex"),
            ..req
        };
        assert!(matches!(
            verify(&a, other_tenant, &pol, now()).unwrap_err(),
            ApprovalError::TenantMismatch { .. }
        ));
        let unpinned = RequestRef {
            tenant: None,
            ..req
        };
        assert!(verify(&a, unpinned, &pol, now()).is_ok());
        let long =
            Artifact::V2(mint_v2(&key, "ap-9", "acme", &rh, now(), Duration::hours(2)).unwrap());
        assert!(matches!(
            verify(&long, req, &pol, now()).unwrap_err(),
            ApprovalError::LifetimeTooLong(_)
        ));
        let backwards =
            Artifact::V2(mint_v2(&key, "ap-9", "acme", &rh, now(), Duration::seconds(-1)).unwrap());
        assert_eq!(
            verify(&backwards, req, &pol, now() - Duration::seconds(10)).unwrap_err(),
            ApprovalError::BadExpiry
        );
        let future = Artifact::V2(
            mint_v2(
                &key,
                "ap-9",
                "acme",
                &rh,
                now() + Duration::minutes(5),
                Duration::seconds(60),
            )
            .unwrap(),
        );
        assert_eq!(
            verify(&future, req, &pol, now()).unwrap_err(),
            ApprovalError::NotYetValid
        );
        // Tampering with any signed field breaks the signature.
        let Artifact::V2(mut t) = a.clone() else {
            unreachable!()
        };
        t.approval_id = "ap-10".into();
        assert_eq!(
            verify(&Artifact::V2(t), req, &pol, now()).unwrap_err(),
            ApprovalError::BadSignature
        );
    }
}
