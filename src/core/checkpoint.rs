//! C2SP tlog-checkpoint bodies, signed as C2SP signed notes.
//!
//! A checkpoint looks like this (origin, size, base64 root, blank line,
//! signature lines; see docs/FORMATS.md for the bytes):
//!
//! ```text
//! openexec.local/log
//! 3
//! 0Ftr7FFyxTyT0eiyMxBZtWkVoNbMlgVXI/qf1PLoR4o=
//!
//! — openexec.local/log Az3grlgt…
//! ```
//!
//! [`SignedCheckpoint::open`] is the parse-and-fully-verify entry point:
//! it accepts a note only if the log's own key signed it and the body is a
//! well-formed checkpoint for the log's origin. Signatures from unknown keys
//! (witness cosignatures) are kept but not trusted here.

use super::hash::Hash;
use super::signing::LogSigner;
pub use super::signing::LogVerifier;

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not a well-formed signed note.
    #[error("malformed signed note")]
    MalformedNote,
    /// The note body is not a C2SP checkpoint.
    #[error("malformed checkpoint body")]
    MalformedBody,
    /// The log's signature is missing.
    #[error("checkpoint is not signed by the log key")]
    Unsigned,
    /// The log's signature is present but wrong.
    #[error("checkpoint signature is invalid")]
    BadSignature,
    /// Signed by the log key, but for another origin.
    #[error("checkpoint origin {found:?} is not the log origin {expected:?}")]
    WrongOrigin {
        /// Origin of the log key.
        expected: String,
        /// Origin in the checkpoint.
        found: String,
    },
    /// A malformed verifier key was given.
    #[error("verifier key: {0}")]
    Key(#[from] super::signing::KeyError),
}

/// A checkpoint whose log signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    origin: String,
    size: u64,
    root: Hash,
    /// The full signed note, exactly as received or produced.
    note: String,
}

impl LogVerifier {
    /// Convenience alias of [`LogVerifier::from_vkey`] for checkpoint callers.
    pub fn parse(vkey: &str) -> Result<Self, CheckpointError> {
        Ok(Self::from_vkey(vkey)?)
    }
}

impl SignedCheckpoint {
    /// Builds and signs the checkpoint of the tree of `size` leaves.
    pub fn sign(signer: &LogSigner, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        let body = tlog_tiles::Checkpoint::new(signer.name(), size, root.into(), "")
            .map_err(|_| CheckpointError::MalformedBody)?;
        let mut note = signed_note::Note::new(&body.to_bytes(), &[])
            .map_err(|_| CheckpointError::MalformedNote)?;
        note.add_sigs(&[signer])
            .map_err(|_| CheckpointError::MalformedNote)?;
        let text =
            String::from_utf8(note.to_bytes()).map_err(|_| CheckpointError::MalformedNote)?;
        Ok(Self {
            origin: signer.name().to_owned(),
            size,
            root,
            note: text,
        })
    }

    /// Parses a signed note and verifies the log's signature and origin.
    pub fn open(note_text: &[u8], verifier: &LogVerifier) -> Result<Self, CheckpointError> {
        let note =
            signed_note::Note::from_bytes(note_text).map_err(|_| CheckpointError::MalformedNote)?;
        let known = signed_note::VerifierList::new(vec![Box::new(verifier.clone())]);
        match note.verify(&known) {
            Ok(_) => {}
            Err(signed_note::NoteError::UnverifiedNote) => return Err(CheckpointError::Unsigned),
            Err(_) => return Err(CheckpointError::BadSignature),
        }
        if !every_known_line_verifies(note_text, &[verifier]) {
            return Err(CheckpointError::BadSignature);
        }
        let body = tlog_tiles::Checkpoint::from_bytes(note.text())
            .map_err(|_| CheckpointError::MalformedBody)?;
        if body.origin() != verifier.name() {
            return Err(CheckpointError::WrongOrigin {
                expected: verifier.name().to_owned(),
                found: body.origin().to_owned(),
            });
        }
        let text =
            String::from_utf8(note_text.to_vec()).map_err(|_| CheckpointError::MalformedNote)?;
        Ok(Self {
            origin: body.origin().to_owned(),
            size: body.size(),
            root: (*body.hash()).into(),
            note: text,
        })
    }

    /// The origin line.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Tree size.
    #[must_use]
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// Root hash.
    #[must_use]
    pub const fn root(&self) -> Hash {
        self.root
    }

    /// The signed note text.
    #[must_use]
    pub fn note_text(&self) -> &str {
        &self.note
    }

    /// The note's text without signatures (origin, size, root, each line
    /// ending in a newline): what the log's signature and every
    /// cosignature cover.
    #[must_use]
    pub fn body(&self) -> &str {
        // A checkpoint body has no blank line, so the first one ends it.
        self.note
            .find("\n\n")
            .map_or(self.note.as_str(), |end| &self.note[..=end])
    }
}

/// Whether every signature line of `note_text` from one of `known` (same
/// key name and id) verifies — repeated lines of a key included. The C2SP
/// signed-note spec requires a verifier to check each line of a known key;
/// `signed_note::Note::verify` checks the first line of each key only and
/// skips the rest. A note that does not parse is `false`.
pub(crate) fn every_known_line_verifies(
    note_text: &[u8],
    known: &[&dyn signed_note::Verifier],
) -> bool {
    let Some((text, lines)) = std::str::from_utf8(note_text)
        .ok()
        .and_then(|t| t.rsplit_once("\n\n"))
    else {
        return false;
    };
    let body = format!("{text}\n");
    lines.lines().all(|line| {
        let Ok(sig) = signed_note::Signature::from_bytes(line.as_bytes()) else {
            return false;
        };
        known
            .iter()
            .filter(|k| k.name() == sig.name() && k.key_id() == sig.id())
            .all(|k| k.verify(body.as_bytes(), sig.signature()))
    })
}

#[cfg(test)]
mod tests {
    use super::super::hash::empty_tree_hash;
    use super::*;

    fn signer() -> LogSigner {
        LogSigner::from_seed("example.com/log", [3; 32]).unwrap()
    }

    #[test]
    fn sign_then_open() {
        let s = signer();
        let cp = SignedCheckpoint::sign(&s, 0, empty_tree_hash()).unwrap();
        assert!(cp.note_text().starts_with("example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— example.com/log "));
        let opened = SignedCheckpoint::open(cp.note_text().as_bytes(), &s.verifier()).unwrap();
        assert_eq!(opened, cp);
        assert_eq!(
            cp.body(),
            "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
    }

    #[test]
    fn every_line_of_the_log_key_is_checked() {
        let s = signer();
        let cp = SignedCheckpoint::sign(&s, 5, Hash::sha256(b"r")).unwrap();
        let text = cp.note_text();
        let line = text.lines().last().unwrap();
        // The same valid line twice is still valid.
        let twice = format!("{text}{line}\n");
        assert!(SignedCheckpoint::open(twice.as_bytes(), &s.verifier()).is_ok());
        // A second line of the log's key that does not verify refuses the
        // note, though the first one verifies.
        let (prefix, sig) = line.rsplit_once(' ').unwrap();
        let mut bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let bad = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes);
        let garbage = format!("{text}{prefix} {bad}\n");
        assert_eq!(
            SignedCheckpoint::open(garbage.as_bytes(), &s.verifier()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn tampering_is_caught() {
        let s = signer();
        let cp = SignedCheckpoint::sign(&s, 5, Hash::sha256(b"r")).unwrap();
        let text = cp.note_text().replacen("\n5\n", "\n6\n", 1);
        assert_eq!(
            SignedCheckpoint::open(text.as_bytes(), &s.verifier()),
            Err(CheckpointError::BadSignature)
        );
        let other = LogSigner::from_seed("example.com/log", [4; 32]).unwrap();
        assert_eq!(
            SignedCheckpoint::open(cp.note_text().as_bytes(), &other.verifier()),
            Err(CheckpointError::Unsigned)
        );
        assert_eq!(
            SignedCheckpoint::open(b"garbage", &s.verifier()),
            Err(CheckpointError::MalformedNote)
        );
    }
}
