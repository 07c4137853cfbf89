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

use ed25519_dalek::Signature;

use super::checkpoint::{CheckpointError, SignedCheckpoint};
use super::signing::{LogVerifier, NoteSigner, NoteVerifier, SignatureType};

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

/// The tlog-cosignature/v1 signature type (0x04): witness keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CosignatureV1 {}

impl SignatureType for CosignatureV1 {
    const ALG: u8 = ALG_COSIGNATURE_V1;
}

/// A witness's private key.
pub type WitnessSigner = NoteSigner<CosignatureV1>;

/// A witness's public key: verifies its cosignatures.
pub type WitnessVerifier = NoteVerifier<CosignatureV1>;

impl WitnessSigner {
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
        self.signer.name()
    }

    fn key_id(&self) -> u32 {
        self.signer.key_id()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let signature = self.signer.sign_bytes(&signed_message(self.timestamp, msg));
        let mut out = Vec::with_capacity(SIGNATURE_LEN);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&signature.to_bytes());
        Ok(out)
    }
}

impl signed_note::Verifier for WitnessVerifier {
    fn name(&self) -> &str {
        WitnessVerifier::name(self)
    }

    fn key_id(&self) -> u32 {
        WitnessVerifier::key_id(self)
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        split_signature(sig).is_some_and(|(timestamp, signature)| {
            self.verify_bytes(&signed_message(timestamp, msg), &signature)
        })
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

/// Why cosignatures on a note were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignedNoteError {
    /// The note is not a well-formed signed note.
    #[error("malformed signed note")]
    Malformed,
    /// A signature from a known key (log or witness) does not verify.
    #[error("a signature from a known key does not verify")]
    BadSignature,
    /// The log's own signature is missing.
    #[error("the note is not signed by the log key")]
    NoLogSignature,
}

/// The witness cosignatures on `note` that verify against `witnesses`
/// (the note must be a checkpoint the log's key signed: see
/// [`cosignatures_on`] for one already opened). Signatures from other keys
/// are ignored; a bad signature from a known key refuses the whole note,
/// as signed-note verification requires.
pub fn verified_cosignatures(
    note: &[u8],
    log: &LogVerifier,
    witnesses: &[WitnessVerifier],
) -> Result<Vec<signed_note::Signature>, CosignedNoteError> {
    let checkpoint = SignedCheckpoint::open(note, log).map_err(|e| match e {
        CheckpointError::BadSignature => CosignedNoteError::BadSignature,
        CheckpointError::Unsigned | CheckpointError::WrongOrigin { .. } => {
            CosignedNoteError::NoLogSignature
        }
        CheckpointError::MalformedNote
        | CheckpointError::MalformedBody
        | CheckpointError::Key(_) => CosignedNoteError::Malformed,
    })?;
    cosignatures_on(&checkpoint, witnesses)
}

/// The witness cosignatures on a checkpoint whose log signature has
/// already been verified (so it is not verified again): those that verify
/// against `witnesses`, ignoring other keys; a bad signature from one of
/// `witnesses` refuses the whole note.
pub fn cosignatures_on(
    checkpoint: &SignedCheckpoint,
    witnesses: &[WitnessVerifier],
) -> Result<Vec<signed_note::Signature>, CosignedNoteError> {
    let parsed = signed_note::Note::from_bytes(checkpoint.note_text().as_bytes())
        .map_err(|_| CosignedNoteError::Malformed)?;
    let keys: Vec<Box<dyn signed_note::Verifier>> = witnesses
        .iter()
        .map(|w| Box::new(w.clone()) as Box<dyn signed_note::Verifier>)
        .collect();
    let known: Vec<&dyn signed_note::Verifier> = witnesses
        .iter()
        .map(|w| w as &dyn signed_note::Verifier)
        .collect();
    if !super::checkpoint::every_known_line_verifies(checkpoint.note_text().as_bytes(), &known) {
        return Err(CosignedNoteError::BadSignature);
    }
    match parsed.verify(&signed_note::VerifierList::new(keys)) {
        Ok((verified, _unknown)) => Ok(verified),
        // No line from any of `witnesses`: no cosignature, not an error.
        Err(signed_note::NoteError::UnverifiedNote) => Ok(Vec::new()),
        Err(_) => Err(CosignedNoteError::BadSignature),
    }
}

/// The checkpoint's note with `cosignatures` appended: the body, the log's
/// signature lines, then one line per witness key (name, key id) in key
/// order, a later cosignature from the same key replacing an earlier one.
/// `checkpoint` must be the log's note (with its own signatures, and
/// possibly earlier cosignatures that were verified before being stored).
pub fn with_cosignatures(
    checkpoint_note: &str,
    cosignatures: &[signed_note::Signature],
) -> Result<String, CosignedNoteError> {
    let parsed = signed_note::Note::from_bytes(checkpoint_note.as_bytes())
        .map_err(|_| CosignedNoteError::Malformed)?;
    let text = std::str::from_utf8(parsed.text()).map_err(|_| CosignedNoteError::Malformed)?;
    let signatures = checkpoint_note
        .get(text.len() + 1..)
        .ok_or(CosignedNoteError::Malformed)?;
    let mut log_lines = String::new();
    let mut witness_lines = std::collections::BTreeMap::new();
    for line in signatures.split_inclusive('\n') {
        let sig = signed_note::Signature::from_bytes(line.trim_end_matches('\n').as_bytes())
            .map_err(|_| CosignedNoteError::Malformed)?;
        if cosignature_timestamp(sig.signature()).is_some() {
            witness_lines.insert((sig.name().to_owned(), sig.id()), line.to_owned());
        } else {
            log_lines.push_str(line);
        }
    }
    for sig in cosignatures {
        let line = String::from_utf8(sig.to_bytes()).map_err(|_| CosignedNoteError::Malformed)?;
        witness_lines.insert((sig.name().to_owned(), sig.id()), line);
    }
    let mut note = format!("{text}\n{log_lines}");
    note.extend(witness_lines.into_values());
    Ok(note)
}

/// Number of cosignature lines (timestamped, 72-byte signatures) in a note.
#[must_use]
pub fn count_cosignatures(note: &str) -> usize {
    let Some(start) = note.rfind("\n\n") else {
        return 0;
    };
    note[start + 2..]
        .lines()
        .filter_map(|line| signed_note::Signature::from_bytes(line.as_bytes()).ok())
        .filter(|sig| cosignature_timestamp(sig.signature()).is_some())
        .count()
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
    use crate::core::signing::KeyError;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
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
    fn cosignatures_merge_by_key_and_only_verified_ones_count() {
        let log = crate::core::signing::LogSigner::from_seed("example.com/log", [1; 32]).unwrap();
        let cp = crate::core::checkpoint::SignedCheckpoint::sign(
            &log,
            3,
            crate::core::hash::Hash::sha256(b"r"),
        )
        .unwrap();
        let (w1, w2) = (
            witness(),
            WitnessSigner::from_seed("w2.example", [2; 32]).unwrap(),
        );
        let keys = [w1.verifier(), w2.verifier()];
        let note = |extra: &str| format!("{}{extra}", cp.note_text());
        let first = note(&w2.cosign(cp.body().as_bytes(), 10).unwrap());
        let sigs = verified_cosignatures(first.as_bytes(), &log.verifier(), &keys).unwrap();
        assert_eq!(sigs.len(), 1);
        let stored = with_cosignatures(cp.note_text(), &sigs).unwrap();
        assert_eq!(count_cosignatures(&stored), 1);
        // A later cosignature from w2 replaces its first; w1 adds one.
        let second = note(&format!(
            "{}{}",
            w2.cosign(cp.body().as_bytes(), 20).unwrap(),
            w1.cosign(cp.body().as_bytes(), 20).unwrap()
        ));
        let sigs = verified_cosignatures(second.as_bytes(), &log.verifier(), &keys).unwrap();
        let merged = with_cosignatures(&stored, &sigs).unwrap();
        assert_eq!(count_cosignatures(&merged), 2);
        assert!(merged.starts_with(cp.note_text()), "log signature first");
        assert_eq!(
            verified_cosignatures(merged.as_bytes(), &log.verifier(), &keys)
                .unwrap()
                .len(),
            2
        );
        // An unknown witness is ignored; a note without the log signature is refused.
        assert!(
            verified_cosignatures(first.as_bytes(), &log.verifier(), &[])
                .unwrap()
                .is_empty()
        );
        let other = crate::core::signing::LogSigner::from_seed("example.com/log", [7; 32]).unwrap();
        assert_eq!(
            verified_cosignatures(first.as_bytes(), &other.verifier(), &keys),
            Err(CosignedNoteError::NoLogSignature)
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
