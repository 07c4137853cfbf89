//! Witness keys and C2SP tlog-cosignature/v1 (Ed25519, signature type 0x04).
//!
//! A cosignature states: "as of time `t`, this is the largest tree of this
//! origin that I, the witness, have verified to be consistent with
//! everything I saw before". It is a signed-note signature line whose
//! signature bytes are `timestamp (u64, big-endian) ‖ Ed25519 signature`,
//! the Ed25519 signature covering
//!
//! ```text
//! cosignature/v1
//! time <t>
//! <checkpoint note text: origin, size, root, extension lines>
//! ```
//!
//! The key id is `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4]`, so a
//! witness key can never be mistaken for a log key (0x01) with the same
//! name and key bytes. [`WitnessVerifier`] plugs into `signed_note`'s
//! verification so that cosignatures are checked by the same code that
//! checks log signatures; [`WitnessSigner::cosign`] produces the signature
//! line. The caller supplies the time: this module never reads the clock.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::signing::{
    check_name, key_id_for, parse_private_key, parse_vkey, private_key_text, vkey_text, KeyError,
};

/// Signed-note signature type of a timestamped Ed25519 cosignature.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Largest timestamp a cosignature may carry (C2SP: at most 2^63 − 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Bytes of a cosignature after the key id: timestamp and Ed25519 signature.
const SIGNATURE_LEN: usize = 8 + 64;

/// Why a cosignature could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// The note text is not a signed-note text.
    #[error("malformed checkpoint note")]
    MalformedNote,
    /// The timestamp is beyond 2^63 − 1.
    #[error("timestamp {0} is out of range")]
    Timestamp(u64),
}

/// A witness's private key.
pub struct WitnessSigner {
    name: String,
    key: SigningKey,
    key_id: u32,
}

/// A witness's public key: verifies its cosignatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessVerifier {
    name: String,
    key: VerifyingKey,
    key_id: u32,
}

impl WitnessSigner {
    /// A witness key from a 32-byte seed (the caller supplies randomness).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id_for(name, ALG_COSIGNATURE_V1, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex id>+<base64(0x04 ‖ seed)>`.
    pub fn from_private_key_text(text: &str) -> Result<Self, KeyError> {
        let (name, key) = parse_private_key(text, ALG_COSIGNATURE_V1)?;
        Self::from_seed(&name, key.to_bytes())
    }

    /// The private key text (keep it secret; file mode 0600).
    #[must_use]
    pub fn private_key_text(&self) -> String {
        private_key_text(&self.name, self.key_id, ALG_COSIGNATURE_V1, &self.key)
    }

    /// The matching verifier.
    #[must_use]
    pub fn verifier(&self) -> WitnessVerifier {
        WitnessVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    /// The witness name (its key name).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Cosigns the checkpoint whose note text (origin, size, root and any
    /// extension lines, without the blank line and signatures) is
    /// `note_text`, at `timestamp` (POSIX seconds). Returns the signature
    /// line `— <name> <base64(key id ‖ timestamp ‖ signature)>\n`.
    pub fn cosign(&self, note_text: &[u8], timestamp: u64) -> Result<String, CosignatureError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::Timestamp(timestamp));
        }
        let mut note =
            signed_note::Note::new(note_text, &[]).map_err(|_| CosignatureError::MalformedNote)?;
        let stamped = Timestamped {
            signer: self,
            timestamp,
        };
        note.add_sigs(&[&stamped])
            .map_err(|_| CosignatureError::MalformedNote)?;
        let signed = note.to_bytes();
        // `to_bytes` is text, blank line, then our single signature line.
        let line = signed
            .get(note_text.len() + 1..)
            .ok_or(CosignatureError::MalformedNote)?;
        String::from_utf8(line.to_vec()).map_err(|_| CosignatureError::MalformedNote)
    }
}

/// A witness signer bound to one timestamp, so that `signed_note` can add
/// the cosignature line like any other signature.
struct Timestamped<'a> {
    signer: &'a WitnessSigner,
    timestamp: u64,
}

impl signed_note::Signer for Timestamped<'_> {
    fn name(&self) -> &str {
        &self.signer.name
    }

    fn key_id(&self) -> u32 {
        self.signer.key_id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let signature = self.signer.key.sign(&signed_message(self.timestamp, msg));
        let mut out = Vec::with_capacity(SIGNATURE_LEN);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&signature.to_bytes());
        Ok(out)
    }
}

impl WitnessVerifier {
    /// Parses a witness verifier key `<name>+<hex id>+<base64(0x04 ‖ key)>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, KeyError> {
        let (name, key, key_id) = parse_vkey(vkey, ALG_COSIGNATURE_V1)?;
        Ok(Self { name, key, key_id })
    }

    /// The verifier key text.
    #[must_use]
    pub fn vkey(&self) -> String {
        vkey_text(&self.name, ALG_COSIGNATURE_V1, &self.key)
    }

    /// The witness name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note key id.
    #[must_use]
    pub const fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The raw public key (two vkeys wrapping the same key are duplicates).
    #[must_use]
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

impl signed_note::Verifier for WitnessVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.key_id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((timestamp, signature)) = split_signature(sig) else {
            return false;
        };
        self.key
            .verify_strict(&signed_message(timestamp, msg), &signature)
            .is_ok()
    }
}

/// The timestamp of a cosignature's signature bytes (after the key id), if
/// they have the right shape.
#[must_use]
pub fn cosignature_timestamp(sig: &[u8]) -> Option<u64> {
    split_signature(sig).map(|(timestamp, _)| timestamp)
}

fn split_signature(sig: &[u8]) -> Option<(u64, Signature)> {
    if sig.len() != SIGNATURE_LEN {
        return None;
    }
    let (time, signature) = sig.split_at(8);
    let timestamp = u64::from_be_bytes(time.try_into().ok()?);
    if timestamp > MAX_TIMESTAMP {
        return None;
    }
    Some((timestamp, Signature::from_slice(signature).ok()?))
}

/// `cosignature/v1\ntime <t>\n` followed by the checkpoint note text.
#[must_use]
pub fn signed_message(timestamp: u64, note_text: &[u8]) -> Vec<u8> {
    let header = format!("cosignature/v1\ntime {timestamp}\n");
    let mut msg = Vec::with_capacity(header.len() + note_text.len());
    msg.extend_from_slice(header.as_bytes());
    msg.extend_from_slice(note_text);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use signed_note::Verifier as _;

    const TEXT: &[u8] = b"example.com/log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn witness() -> WitnessSigner {
        WitnessSigner::from_seed("witness.example/w1", [9; 32]).unwrap()
    }

    fn sig_bytes(line: &str) -> Vec<u8> {
        let b64 = line.trim_end().rsplit(' ').next().unwrap();
        STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn cosign_then_verify() {
        let w = witness();
        let line = w.cosign(TEXT, 1_679_315_147).unwrap();
        assert!(line.starts_with("— witness.example/w1 "));
        assert!(
            line.ends_with("==\n"),
            "76 bytes encode to 104 chars ending in =="
        );
        let raw = sig_bytes(&line);
        assert_eq!(raw.len(), 76);
        assert_eq!(
            u32::from_be_bytes(raw[..4].try_into().unwrap()),
            w.verifier().key_id()
        );
        assert_eq!(cosignature_timestamp(&raw[4..]), Some(1_679_315_147));
        assert!(w.verifier().verify(TEXT, &raw[4..]));
        // Another checkpoint, another time, or another key: refused.
        assert!(!w.verifier().verify(
            b"example.com/log\n4\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
            &raw[4..]
        ));
        let mut later = raw[4..].to_vec();
        later[7] ^= 1;
        assert!(!w.verifier().verify(TEXT, &later));
        let other = WitnessSigner::from_seed("witness.example/w1", [8; 32]).unwrap();
        assert!(!other.verifier().verify(TEXT, &raw[4..]));
    }

    #[test]
    fn signed_message_matches_the_spec_layout() {
        assert_eq!(
            signed_message(1_679_315_147, TEXT),
            b"cosignature/v1\ntime 1679315147\nexample.com/log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn timestamps_beyond_2_pow_63_are_refused() {
        let w = witness();
        assert_eq!(
            w.cosign(TEXT, MAX_TIMESTAMP + 1),
            Err(CosignatureError::Timestamp(MAX_TIMESTAMP + 1))
        );
        let mut sig = vec![0x80; 8];
        sig.extend_from_slice(&[0; 64]);
        assert_eq!(cosignature_timestamp(&sig), None);
        assert!(!w.verifier().verify(TEXT, &sig));
    }

    #[test]
    fn key_texts_round_trip_and_are_not_log_keys() {
        let w = witness();
        let again = WitnessSigner::from_private_key_text(&w.private_key_text()).unwrap();
        assert_eq!(again.verifier(), w.verifier());
        let vkey = w.verifier().vkey();
        assert_eq!(WitnessVerifier::from_vkey(&vkey).unwrap(), w.verifier());
        // The same key as a log (0x01) key is a different key, refused here.
        let log =
            crate::core::signing::LogSigner::from_seed("witness.example/w1", [9; 32]).unwrap();
        assert_eq!(
            WitnessVerifier::from_vkey(&log.verifier().vkey()),
            Err(KeyError::Algorithm)
        );
        assert_eq!(
            crate::core::signing::LogVerifier::from_vkey(&vkey),
            Err(KeyError::Algorithm)
        );
        assert_ne!(log.verifier().key_id(), w.verifier().key_id());
    }
}
