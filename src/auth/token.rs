//! Bearer tokens: the format, the stored records and the pure
//! verification of a presented token.
//!
//! A token is `oex1_<id>_<secret>`: the version prefix, the principal's
//! 16-hex-character public id, and 32 random bytes in base64url without
//! padding (43 characters) — 65 ASCII characters in all. The secret is
//! shown once, when the token is minted; a record keeps only its SHA-256.
//! (The secret has 256 bits of entropy, so a fast unsalted hash is enough:
//! there is nothing to brute-force, unlike a password.)
//!
//! Verification compares the presented secret's hash with the stored one
//! in constant time ([`SecretHash::matches`], `subtle`), then checks
//! revocation and expiry against the `now` it is given. It never panics on
//! any input.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::{AuthError, Principal, PrincipalId, Role};

/// The version prefix every token starts with.
pub const PREFIX: &str = "oex1_";
/// Length of the secret in bytes.
pub const SECRET_LEN: usize = 32;
/// Length of the secret's text (base64url, no padding).
const SECRET_TEXT_LEN: usize = 43;
/// Length of a whole token's text.
pub const TOKEN_LEN: usize = PREFIX.len() + PrincipalId::TEXT_LEN + 1 + SECRET_TEXT_LEN;
/// Version of the records file's format.
pub const FORMAT_VERSION: u32 = 1;

/// SHA-256 of a token's secret: what a record keeps instead of the secret.
/// Its `Debug` shows no bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// The hash of `secret`.
    #[must_use]
    pub fn of(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// Whether two hashes are equal, in time independent of where they
    /// differ.
    #[must_use]
    pub fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

impl Serialize for SecretHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes)
            .map_err(|_| serde::de::Error::custom("secret_sha256: not 64 hex characters"))?;
        Ok(Self(bytes))
    }
}

/// A freshly minted token's text. It exists only between minting and
/// printing; its `Debug` shows no secret.
pub struct Token(String);

impl Token {
    /// The token's text, to show once to whoever creates it.
    #[must_use]
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// What a new token is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// Its principal's role.
    pub role: Role,
    /// Its principal's tenant (not empty).
    pub tenant: String,
    /// Its principal's allow-list of actions (`None`: the service's).
    pub actions: Option<Vec<String>>,
    /// Free text for the operator.
    pub label: Option<String>,
    /// When it stops being accepted (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// One principal and its token as stored: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// The principal's public id (also in the token).
    pub id: PrincipalId,
    /// Its role.
    pub role: Role,
    /// Its tenant.
    pub tenant: String,
    /// Its allow-list of actions (`None`: the service's).
    pub actions: Option<Vec<String>>,
    /// Free text for the operator.
    pub label: Option<String>,
    /// When the token was minted.
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted: from this instant on (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked (`None`: it is not).
    pub revoked_at: Option<DateTime<Utc>>,
    /// SHA-256 of the secret.
    pub secret_sha256: SecretHash,
    /// SHA-256 of the DER of a TLS client certificate that authenticates
    /// the principal too (`openexec token bind-cert`); `None`: none does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<CertFingerprint>,
}

/// SHA-256 of a certificate's DER, written as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; 32]);

impl CertFingerprint {
    /// The fingerprint of the certificate whose DER is `der`.
    #[must_use]
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl Serialize for CertFingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CertFingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        let lowercase = !text.bytes().any(|b| b.is_ascii_uppercase());
        hex::decode_to_slice(&text, &mut bytes)
            .ok()
            .filter(|()| lowercase)
            .map(|()| Self(bytes))
            .ok_or_else(|| serde::de::Error::custom("not a SHA-256 (64 lowercase hex)"))
    }
}

impl TokenRecord {
    /// Mints a token for `new` with a fresh random id and secret. The
    /// caller makes sure the id is not taken ([`TokenSet::mint`] does).
    #[must_use]
    pub fn mint(new: NewToken, now: DateTime<Utc>) -> (Token, Self) {
        use rand_core::RngCore as _;
        let id = PrincipalId::random();
        let mut secret = [0u8; SECRET_LEN];
        rand_core::OsRng.fill_bytes(&mut secret);
        let token = Token(format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret)));
        let record = Self {
            id,
            role: new.role,
            tenant: new.tenant,
            actions: new.actions,
            label: new.label,
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            secret_sha256: SecretHash::of(&secret),
            cert_sha256: None,
        };
        (token, record)
    }

    /// The principal the record describes.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal {
            id: self.id,
            role: self.role,
            tenant: self.tenant.clone(),
            actions: self.actions.clone(),
            label: self.label.clone(),
        }
    }

    /// Whether the token is expired at `now` (expiry instant included).
    #[must_use]
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Checks a presented secret's hash, then revocation, then expiry.
    fn check(&self, presented: &SecretHash, now: DateTime<Utc>) -> Result<(), AuthError> {
        if !self.secret_sha256.matches(presented) {
            return Err(AuthError::WrongSecret);
        }
        self.check_standing(now)
    }

    /// Checks revocation, then expiry.
    fn check_standing(&self, now: DateTime<Utc>) -> Result<(), AuthError> {
        if self.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if self.is_expired(now) {
            return Err(AuthError::Expired);
        }
        Ok(())
    }
}

/// Splits a token into its id and secret; `None` if it is not exactly
/// `oex1_<16 lowercase hex>_<43 base64url characters of 32 bytes>`.
/// Never panics.
#[must_use]
pub fn parse(token: &str) -> Option<(PrincipalId, [u8; SECRET_LEN])> {
    if token.len() != TOKEN_LEN || !token.starts_with(PREFIX) {
        return None;
    }
    let id_end = PREFIX.len() + PrincipalId::TEXT_LEN;
    let id = PrincipalId::parse(token.get(PREFIX.len()..id_end)?)?;
    if token.as_bytes().get(id_end) != Some(&b'_') {
        return None;
    }
    let secret = URL_SAFE_NO_PAD.decode(token.get(id_end + 1..)?).ok()?;
    Some((id, secret.try_into().ok()?))
}

/// The records file's content.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    principals: Vec<TokenRecord>,
}

/// Every principal with its token, by id: what the records file holds.
#[derive(Clone, Debug, Default)]
pub struct TokenSet {
    /// In creation order (the file's order).
    records: Vec<TokenRecord>,
    /// Index into `records`, by id.
    by_id: HashMap<PrincipalId, usize>,
}

impl TokenSet {
    /// Parses the records file; refuses an unknown version or field, a
    /// duplicate id and an empty tenant.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let file: FileFormat = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if file.version != FORMAT_VERSION {
            return Err(format!(
                "version {} (this build reads {FORMAT_VERSION})",
                file.version
            ));
        }
        let mut set = Self::default();
        for record in file.principals {
            if record.tenant.is_empty() {
                return Err(format!("principal {}: empty tenant", record.id));
            }
            set.insert(record)?;
        }
        Ok(set)
    }

    /// The records file's text (pretty JSON, trailing newline).
    pub fn to_json(&self) -> Result<Vec<u8>, String> {
        let file = FileFormat {
            version: FORMAT_VERSION,
            principals: self.records.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Number of principals, revoked and expired ones included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no principals (authentication off).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records in creation order.
    pub fn records(&self) -> impl Iterator<Item = &TokenRecord> {
        self.records.iter()
    }

    /// The record of `id`.
    #[must_use]
    pub fn get(&self, id: PrincipalId) -> Option<&TokenRecord> {
        self.by_id.get(&id).and_then(|&i| self.records.get(i))
    }

    /// Mints a token for `new` under an id not yet taken and adds its
    /// record.
    pub fn mint(
        &mut self,
        new: NewToken,
        now: DateTime<Utc>,
    ) -> Result<(Token, TokenRecord), String> {
        if new.tenant.is_empty() {
            return Err("the tenant is empty".to_owned());
        }
        loop {
            let (token, record) = TokenRecord::mint(new.clone(), now);
            if self.by_id.contains_key(&record.id) {
                continue;
            }
            self.insert(record.clone())?;
            return Ok((token, record));
        }
    }

    /// Revokes `id` at `now`; a record already revoked keeps its first
    /// revocation time. Returns the record, `None` for an unknown id.
    pub fn revoke(&mut self, id: PrincipalId, now: DateTime<Utc>) -> Option<&TokenRecord> {
        let i = *self.by_id.get(&id)?;
        let record = self.records.get_mut(i)?;
        record.revoked_at.get_or_insert(now);
        Some(record)
    }

    /// The principal `token` authenticates at `now`, or why not: malformed,
    /// unknown id, wrong secret, revoked, expired (checked in that order;
    /// revocation and expiry are told only to a holder of the secret).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, AuthError> {
        let (id, secret) = parse(token).ok_or(AuthError::Malformed)?;
        let presented = SecretHash::of(&secret);
        let record = self.get(id).ok_or(AuthError::UnknownId)?;
        record.check(&presented, now)?;
        Ok(record.principal())
    }

    /// The principal a verified client certificate of fingerprint `cert`
    /// authenticates at `now`, or why not: no principal is bound to it,
    /// revoked, expired.
    pub fn verify_cert(
        &self,
        cert: &CertFingerprint,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        let record = self
            .records
            .iter()
            .find(|r| r.cert_sha256.as_ref() == Some(cert))
            .ok_or(AuthError::UnknownId)?;
        record.check_standing(now)?;
        Ok(record.principal())
    }

    /// Binds the client certificate of fingerprint `cert` to `id`
    /// (replacing the one bound before). Returns the record; an error for
    /// an unknown id or a certificate bound to another principal.
    pub fn bind_cert(
        &mut self,
        id: PrincipalId,
        cert: CertFingerprint,
    ) -> Result<&TokenRecord, String> {
        if let Some(other) = self
            .records
            .iter()
            .find(|r| r.id != id && r.cert_sha256 == Some(cert))
        {
            return Err(format!(
                "the certificate is bound to principal {}",
                other.id
            ));
        }
        let i = *self
            .by_id
            .get(&id)
            .ok_or_else(|| format!("no principal {id}"))?;
        let record = self
            .records
            .get_mut(i)
            .ok_or_else(|| format!("no principal {id}"))?;
        record.cert_sha256 = Some(cert);
        Ok(record)
    }

    fn insert(&mut self, record: TokenRecord) -> Result<(), String> {
        if self.by_id.contains_key(&record.id) {
            return Err(format!("duplicate principal id {}", record.id));
        }
        if let Some(cert) = record.cert_sha256 {
            if self.records.iter().any(|r| r.cert_sha256 == Some(cert)) {
                return Err(format!(
                    "principal {}: its certificate is bound to another principal",
                    record.id
                ));
            }
        }
        self.by_id.insert(record.id, self.records.len());
        self.records.push(record);
        Ok(())
    }
}
