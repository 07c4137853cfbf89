//! The sealed `requestState` of an `input_required` answer: what the
//! client's retry must repeat (action, request hash, nonce, tenant) and
//! until when, authenticated with HMAC-SHA256 under a key drawn at random
//! when the process starts.
//!
//! The server keeps nothing between the two requests: the state travels
//! with the client. It is not an authorization — the approval artifact is,
//! verified by the boundary as on `/execute` — so a process-local key is
//! enough: the seal only stops a client from swapping the nonce the
//! approver was shown (a server-minted one, for a handler without
//! effects) or the call it was asked about. A restart (or another process
//! behind the same address) answers a state sealed elsewhere `-32602`, and
//! the client starts the call again; the log's signing key is never used
//! for anything but the log.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac as _};
use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a sealed state stays valid: time for a person to approve.
pub const LIFETIME_SECS: i64 = 15 * 60;

/// What a retry must repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// The tool.
    #[serde(rename = "a")]
    pub action: String,
    /// Base64 request hash the approval must bind.
    #[serde(rename = "h")]
    pub request_hash: String,
    /// The nonce the approval must bind.
    #[serde(rename = "n")]
    pub nonce: String,
    /// The tenant the request hash was computed for.
    #[serde(rename = "t")]
    pub tenant: String,
    /// Unix seconds after which the state is refused.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Why a `requestState` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not one this process sealed (or altered).
    #[error("requestState was not issued by this server process, or was altered")]
    Forged,
    /// Sealed, but past its lifetime.
    #[error("requestState has expired; call the tool again without it")]
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256's block size: a key of exactly this length is used as is.
const KEY_BYTES: usize = 64;

fn key() -> &'static [u8; KEY_BYTES] {
    static KEY: OnceLock<[u8; KEY_BYTES]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; KEY_BYTES];
        OsRng.fill_bytes(&mut k);
        k
    })
}

fn tag(text: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new(key().into());
    mac.update(b"openexec/mcp/request-state/v1\n");
    mac.update(text);
    mac
}

/// `base64url(JSON of round) "." base64url(HMAC)`.
#[must_use]
pub fn seal(round: &Round) -> String {
    let text = serde_json::to_vec(round).unwrap_or_default();
    let mac = tag(&text).finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&text),
        URL_SAFE_NO_PAD.encode(mac)
    )
}

/// The round a sealed state names, if this process sealed it and it is
/// valid at `now` (Unix seconds).
pub fn open(state: &str, now: i64) -> Result<Round, StateError> {
    let (text, mac) = state.split_once('.').ok_or(StateError::Forged)?;
    let text = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| StateError::Forged)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| StateError::Forged)?;
    tag(&text)
        .verify_slice(&mac)
        .map_err(|_| StateError::Forged)?;
    let round: Round = serde_json::from_slice(&text).map_err(|_| StateError::Forged)?;
    if now > round.expires {
        return Err(StateError::Expired);
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn round() -> Round {
        Round {
            action: "echo".into(),
            request_hash: "h".into(),
            nonce: "n-1".into(),
            tenant: "acme".into(),
            expires: 1_000,
        }
    }

    #[test]
    fn a_sealed_round_opens_until_it_expires() {
        let sealed = seal(&round());
        assert_eq!(open(&sealed, 1_000), Ok(round()));
        assert_eq!(open(&sealed, 1_001), Err(StateError::Expired));
    }

    #[test]
    fn an_altered_state_is_refused() {
        let sealed = seal(&round());
        let (text, mac) = sealed.split_once('.').unwrap();
        let mut other = round();
        other.nonce = "n-2".into();
        let swapped = format!(
            "{}.{mac}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap())
        );
        assert_eq!(open(&swapped, 0), Err(StateError::Forged));
        assert_eq!(open(text, 0), Err(StateError::Forged));
        assert_eq!(open("", 0), Err(StateError::Forged));
    }
}
