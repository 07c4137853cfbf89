//! Log key rotation: the two entries that link a retired log to its
//! successor, and the check of that link.
//!
//! A retired log's last entry is a `log_end` entry whose payload names the
//! successor (origin and verifier key); its *final checkpoint* is the
//! checkpoint of the tree ending with that entry. The successor's entry 0
//! is a `log_start` entry whose payload names the predecessor (origin,
//! verifier key) and its final checkpoint (size, root, and the hash of the
//! checkpoint's body). Both payloads are committed under the all-zero salt,
//! so anyone holding the two verifier keys and the final checkpoint
//! recomputes the exact commitments (and request hashes) the entries must
//! carry: no new entry field, and the entries are ordinary `executed`
//! entries to every other reader. Actions `openexec/log_end` and
//! `openexec/log_start` hold a `/`, which no request's action may hold, so
//! no attempt can write either.

use serde::{Deserialize, Serialize};

use super::canonical::{
    canonical_value_of, commitment, request_hash, to_canonical_bytes, CanonicalError,
};
use super::checkpoint::SignedCheckpoint;
use super::entry::{ApprovalSummary, Entry, EntryDraft, Outcome};
use super::hash::Hash;
use super::receipt::{verify_receipt, Receipt, ReceiptError};
use super::signing::LogVerifier;

/// The action of a retired log's last entry.
pub const LOG_END_ACTION: &str = "openexec/log_end";
/// The action of a successor log's entry 0.
pub const LOG_START_ACTION: &str = "openexec/log_start";
/// The file a [`RotationRecord`] is written to in the retired log's data
/// directory (a log is retired once).
pub const ROTATION_OUT_FILE: &str = "rotation-out.json";
/// The file a [`RotationRecord`] is written to in the successor's data
/// directory (a successor starts once; it may be retired later, and its
/// `rotation-out.json` is then the next record).
pub const ROTATION_IN_FILE: &str = "rotation-in.json";
/// The format tag of a [`RotationRecord`].
pub const ROTATION_FORMAT: &str = "openexec-rotation/v1";
/// The salt of the link payloads' commitments: public, so that the
/// commitment opens from the payload alone.
pub const LINK_SALT: [u8; 32] = [0; 32];

/// The log a retired log hands over to: the `log_end` payload's member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Successor {
    /// The successor's origin (its key name).
    pub origin: String,
    /// The successor's verifier key.
    pub vkey: String,
}

/// The log a successor continues: the `log_start` payload's member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predecessor {
    /// SHA-256 of the body (origin, size, root lines) of the
    /// predecessor's final checkpoint.
    pub checkpoint: Hash,
    /// The predecessor's origin.
    pub origin: String,
    /// The root of the predecessor's final checkpoint.
    pub root: Hash,
    /// The size of the predecessor's final checkpoint (its `log_end`
    /// entry is entry `size − 1`).
    pub size: u64,
    /// The predecessor's verifier key.
    pub vkey: String,
}

impl Successor {
    /// The successor a verifier key names.
    #[must_use]
    pub fn of(log: &LogVerifier) -> Self {
        Self {
            origin: log.name().to_owned(),
            vkey: log.vkey(),
        }
    }
}

impl Predecessor {
    /// The predecessor whose key is `log` and whose final checkpoint is
    /// `last`.
    #[must_use]
    pub fn of(log: &LogVerifier, last: &SignedCheckpoint) -> Self {
        Self {
            checkpoint: Hash::sha256(last.body().as_bytes()),
            origin: log.name().to_owned(),
            root: last.root(),
            size: last.size(),
            vkey: log.vkey(),
        }
    }
}

#[derive(Serialize)]
struct LogEndPayload<'a> {
    successor: &'a Successor,
}

#[derive(Serialize)]
struct LogStartPayload<'a> {
    predecessor: &'a Predecessor,
}

/// Why a link could not be drafted or does not hold.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// A payload could not be canonicalized.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// The predecessor's `log_end` receipt does not verify under its key.
    #[error("predecessor's log_end receipt: {0}")]
    PredecessorReceipt(ReceiptError),
    /// The successor's `log_start` receipt does not verify under its key.
    #[error("successor's log_start receipt: {0}")]
    SuccessorReceipt(ReceiptError),
    /// The predecessor's receipt is not of its `log_end` entry.
    #[error("the predecessor's receipt is not of a log_end entry")]
    NotLogEnd,
    /// The `log_end` entry is not the last of its checkpoint's tree.
    #[error(
        "the log_end entry {index} is not the last entry of the final checkpoint (size {size})"
    )]
    NotFinal {
        /// The entry's index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The `log_end` entry does not name the successor's key.
    #[error("the log_end entry does not name the successor {0}")]
    WrongSuccessor(String),
    /// The successor's receipt is not of its entry 0, a `log_start` entry.
    #[error("the successor's receipt is not of its entry 0, a log_start entry")]
    NotLogStart,
    /// The `log_start` entry does not commit to this predecessor and its
    /// final checkpoint.
    #[error("the log_start entry does not commit to the final checkpoint of {0}")]
    WrongPredecessor(String),
    /// The record's `successor` or `predecessor` member is not the one
    /// the keys and the final checkpoint give.
    #[error("the record's {0} member is not the one the keys and the final checkpoint give")]
    RecordMismatch(&'static str),
}

/// What a link entry's draft needs besides its payload.
fn link_draft<T: Serialize>(
    action: &str,
    reason: &str,
    payload: &T,
    exec_id: String,
) -> Result<EntryDraft, RotationError> {
    let bytes = to_canonical_bytes(payload)?;
    let value = canonical_value_of(&bytes)?;
    // The nonce is the exec_id: a link entry never completes a nonce, and
    // its own is unique.
    let nonce = exec_id.clone();
    Ok(EntryDraft {
        request_hash: request_hash(action, &value, &nonce, "")?,
        payload_commitment: commitment(&LINK_SALT, &bytes),
        exec_id,
        tenant: String::new(),
        action: action.to_owned(),
        nonce,
        result_commitment: None,
        approval: ApprovalSummary::none(),
        outcome: Outcome::Executed,
        reason: reason.to_owned(),
        replay_of: None,
        effects: None,
        registry: None,
        principal: None,
    })
}

/// The draft of a retired log's `log_end` entry naming `successor`.
pub fn log_end_draft(successor: &Successor, exec_id: String) -> Result<EntryDraft, RotationError> {
    link_draft(
        LOG_END_ACTION,
        "log_end",
        &LogEndPayload { successor },
        exec_id,
    )
}

/// The draft of a successor's `log_start` entry naming `predecessor`.
pub fn log_start_draft(
    predecessor: &Predecessor,
    exec_id: String,
) -> Result<EntryDraft, RotationError> {
    link_draft(
        LOG_START_ACTION,
        "log_start",
        &LogStartPayload { predecessor },
        exec_id,
    )
}

/// The payload commitment of the `log_start` entry naming `predecessor`
/// (the same for every exec_id): the link a successor's predecessor index
/// holds.
pub fn log_start_commitment(predecessor: &Predecessor) -> Result<Hash, RotationError> {
    Ok(log_start_draft(predecessor, String::new())?.payload_commitment)
}

/// Whether `entry` is a link entry of `action` carrying exactly `expected`
/// (the draft [`log_end_draft`] or [`log_start_draft`] gives for the
/// payload the verifier expects, with the entry's own exec_id).
fn carries(entry: &Entry, expected: &EntryDraft) -> bool {
    entry.action == expected.action
        && entry.outcome == Outcome::Executed
        && entry.reason == expected.reason
        && entry.tenant.is_empty()
        && entry.nonce == expected.nonce
        && entry.request_hash == expected.request_hash
        && entry.payload_commitment == expected.payload_commitment
}

/// Whether `entry` is a `log_end` entry (of any successor).
#[must_use]
pub fn is_log_end(entry: &Entry) -> bool {
    entry.action == LOG_END_ACTION && entry.outcome == Outcome::Executed
}

/// Whether `entry` stands where a log writes it, as far as the link
/// entries go: a `log_start` entry only at index 0, a `log_end` entry
/// executed, and no other `openexec/` action (no request's action holds a
/// `/`). An auditor also checks that nothing follows an executed `log_end`
/// entry: a retired log takes no entry.
pub fn check_link_place(entry: &Entry) -> Result<(), String> {
    if !entry.action.starts_with("openexec/") {
        return Ok(());
    }
    let executed = entry.outcome == Outcome::Executed;
    match entry.action.as_str() {
        LOG_START_ACTION if entry.index == 0 && executed => Ok(()),
        LOG_START_ACTION => Err("a log_start entry stands only at index 0, executed".into()),
        LOG_END_ACTION if executed => Ok(()),
        other => Err(format!(
            "action {other:?}: no request writes an openexec/ action, and the log writes no such entry"
        )),
    }
}

/// The problem of an entry at `index` after the executed `log_end` entry
/// at `end`.
#[must_use]
pub fn after_log_end(end: u64) -> String {
    format!("follows the executed log_end entry {end}: a retired log takes no entry")
}

/// The receipts that show one rotation, written by `openexec rotate` into
/// both data directories: the predecessor's `log_end` entry in its final
/// checkpoint and the successor's `log_start` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationRecord {
    /// Always [`ROTATION_FORMAT`].
    pub format: String,
    /// The successor the `log_end` entry names (for a holder of the
    /// predecessor's key only: the key to follow the chain with).
    pub successor: Successor,
    /// The predecessor the `log_start` entry names.
    pub predecessor: Predecessor,
    /// The receipt of the `log_end` entry; its checkpoint is the
    /// predecessor's final checkpoint.
    pub log_end: Receipt,
    /// The receipt of the successor's entry 0.
    pub log_start: Receipt,
}

/// What [`verify_chain`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOk {
    /// The predecessor's final checkpoint.
    pub final_checkpoint: SignedCheckpoint,
    /// The successor's checkpoint the `log_start` receipt leads to.
    pub successor_checkpoint: SignedCheckpoint,
}

/// Checks the link from the log of `old` to the log of `new`:
///
/// 1. `log_end` verifies under `old` (section 13 of FORMATS.md);
/// 2. its entry is the last of its checkpoint's tree (the final
///    checkpoint) and is a `log_end` entry naming exactly `new`'s origin
///    and verifier key;
/// 3. `log_start` verifies under `new`, is entry 0, and is a `log_start`
///    entry naming exactly `old`'s origin and key and the final
///    checkpoint's size, root and body hash.
///
/// The record's `successor` and `predecessor` members are not trusted:
/// the expected payloads are recomputed from the keys and the final
/// checkpoint, and the members must equal them (a reader of the record
/// alone is not misled).
pub fn verify_chain(
    record: &RotationRecord,
    old: &LogVerifier,
    new: &LogVerifier,
) -> Result<ChainOk, RotationError> {
    let end =
        verify_receipt(&record.log_end, old, None).map_err(RotationError::PredecessorReceipt)?;
    if !is_log_end(&end.entry) {
        return Err(RotationError::NotLogEnd);
    }
    if end.entry.index.checked_add(1) != Some(end.checkpoint.size()) {
        return Err(RotationError::NotFinal {
            index: end.entry.index,
            size: end.checkpoint.size(),
        });
    }
    let expected_end = log_end_draft(&Successor::of(new), end.entry.exec_id.clone())?;
    if !carries(&end.entry, &expected_end) {
        return Err(RotationError::WrongSuccessor(new.name().to_owned()));
    }
    let start =
        verify_receipt(&record.log_start, new, None).map_err(RotationError::SuccessorReceipt)?;
    if start.entry.index != 0 || start.entry.action != LOG_START_ACTION {
        return Err(RotationError::NotLogStart);
    }
    let predecessor = Predecessor::of(old, &end.checkpoint);
    let expected_start = log_start_draft(&predecessor, start.entry.exec_id.clone())?;
    if !carries(&start.entry, &expected_start) {
        return Err(RotationError::WrongPredecessor(old.name().to_owned()));
    }
    if record.successor != Successor::of(new) {
        return Err(RotationError::RecordMismatch("successor"));
    }
    if record.predecessor != predecessor {
        return Err(RotationError::RecordMismatch("predecessor"));
    }
    Ok(ChainOk {
        final_checkpoint: end.checkpoint,
        successor_checkpoint: start.checkpoint,
    })
}

#[cfg(test)]
mod tests;
