//! Who is calling: principals and their bearer tokens.
//!
//! A principal has a public id, a role, a tenant and optionally an
//! allow-list of actions narrower than the service's. It authenticates
//! with a bearer token `oex1_<id>_<secret>` (see [`token`]): the secret is
//! 32 random bytes shown once at creation and stored only as its SHA-256,
//! compared in constant time.
//!
//! - [`token`] — the token format, the stored records and the pure
//!   verification of a presented token against them (`now` is an
//!   argument; no clock, no I/O).
//! - [`store`] — the records' file in the data directory
//!   (`principals.json`, mode 0600, written atomically), reloaded by a
//!   running service when it changes, so that `openexec token revoke`
//!   takes effect within about a second.
//! - [`Authenticator`] — the one call a route makes: the `Authorization`
//!   header in, the principal (or anonymous, or an error) out.
//!
//! Every [`AuthError`] displays the same public message: a caller learns
//! that its credentials were refused, never why. [`AuthError::code`]
//! names the reason for logs and metrics.
//!
//! A principal may also authenticate with a TLS client certificate that
//! the service verified against its client CA (`serve --tls-client-ca`):
//! its record names the certificate by the SHA-256 of its DER
//! ([`CertFingerprint`]), and [`Authenticator::authenticate_cert`] maps a
//! verified certificate to the principal.
//!
//! With no principals configured (no file), authentication is off and
//! every request is anonymous.

pub mod store;
pub mod token;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use store::{StoreError, TokenStore, FILE_NAME};
pub use token::{CertFingerprint, NewToken, SecretHash, TokenRecord, TokenSet};

/// What a principal may do; the routes decide what each role allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Proposes actions for its tenant.
    Agent,
    /// Reads the ledger's content for audit.
    Auditor,
    /// Administers the service (redaction, rotation, token management).
    Admin,
}

impl Role {
    /// The role's name as written in files and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent" => Ok(Self::Agent),
            "auditor" => Ok(Self::Auditor),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role {other:?} (agent, auditor or admin)")),
        }
    }
}

/// A principal's public id: 8 random bytes, written as 16 lowercase hex
/// characters. It appears in tokens, in logs and in ledger entries; it is
/// not a secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrincipalId([u8; PrincipalId::LEN]);

impl PrincipalId {
    /// Length of the id in bytes.
    pub const LEN: usize = 8;
    /// Length of the id's text (lowercase hex).
    pub const TEXT_LEN: usize = 2 * Self::LEN;

    /// A fresh random id from the OS random source.
    #[must_use]
    pub fn random() -> Self {
        use rand_core::RngCore as _;
        let mut bytes = [0u8; Self::LEN];
        rand_core::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses exactly 16 lowercase hex characters; `None` otherwise.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == Self::TEXT_LEN
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return None;
        }
        let mut bytes = [0u8; Self::LEN];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrincipalId({self})")
    }
}

impl FromStr for PrincipalId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("not a principal id (16 lowercase hex): {s:?}"))
    }
}

impl Serialize for PrincipalId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PrincipalId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("not a principal id"))
    }
}

/// An authenticated caller. It holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Public id (in tokens, logs and ledger entries).
    pub id: PrincipalId,
    /// What it may do.
    pub role: Role,
    /// The tenant it acts for.
    pub tenant: String,
    /// Actions it may run, narrower than the service's allow-list; `None`:
    /// every action the service allows.
    pub actions: Option<Vec<String>>,
    /// Free text for the operator (who or what holds the token).
    pub label: Option<String>,
}

impl Principal {
    /// Whether the principal's own allow-list admits `action` (the
    /// service's allow-list applies as well).
    #[must_use]
    pub fn allows_action(&self, action: &str) -> bool {
        self.actions
            .as_ref()
            .is_none_or(|list| list.iter().any(|a| a == action))
    }
}

/// Why a presented credential was refused. Every variant displays the same
/// public message; answer all of them with one `401` and log
/// [`AuthError::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Not `Bearer <token>`, or the token is not `oex1_<id>_<secret>`.
    #[error("{}", AuthError::PUBLIC_MESSAGE)]
    Malformed,
    /// No principal has the token's id.
    #[error("{}", AuthError::PUBLIC_MESSAGE)]
    UnknownId,
    /// The id exists; the secret does not match.
    #[error("{}", AuthError::PUBLIC_MESSAGE)]
    WrongSecret,
    /// The token was revoked.
    #[error("{}", AuthError::PUBLIC_MESSAGE)]
    Revoked,
    /// The token expired.
    #[error("{}", AuthError::PUBLIC_MESSAGE)]
    Expired,
}

impl AuthError {
    /// The one message a caller sees, whatever the reason.
    pub const PUBLIC_MESSAGE: &'static str = "invalid credentials";

    /// The reason, for logs and metrics (never for the caller).
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownId => "unknown_id",
            Self::WrongSecret => "wrong_secret",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// Authenticates requests against a [`TokenStore`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct Authenticator {
    store: Arc<TokenStore>,
}

impl Authenticator {
    /// An authenticator over `store`.
    #[must_use]
    pub fn new(store: Arc<TokenStore>) -> Self {
        Self { store }
    }

    /// The store it reads.
    #[must_use]
    pub fn store(&self) -> &Arc<TokenStore> {
        &self.store
    }

    /// Whether any principal is configured (revoked and expired ones
    /// count: revoking the last token does not turn authentication off).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        !self.store.current().is_empty()
    }

    /// The principal an `Authorization` header names. No header:
    /// `Ok(None)` (anonymous). `Bearer <token>` (scheme case-insensitive):
    /// the principal, or why the token was refused. Any other header:
    /// [`AuthError::Malformed`]. Never panics.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(header) = authorization else {
            return Ok(None);
        };
        let token = bearer_token(header).ok_or(AuthError::Malformed)?;
        self.store.current().verify(token, now).map(Some)
    }
}

impl Authenticator {
    /// The principal bound to a client certificate that the TLS layer
    /// verified, or why not (no principal is bound to it:
    /// [`AuthError::UnknownId`]; revoked; expired).
    pub fn authenticate_cert(
        &self,
        cert: &CertFingerprint,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        self.store.current().verify_cert(cert, now)
    }
}

/// The token of an `Authorization: Bearer <token>` header value: the
/// scheme case-insensitive, one or more spaces after it, surrounding
/// whitespace ignored; `None` for anything else.
#[must_use]
pub fn bearer_token(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests;
