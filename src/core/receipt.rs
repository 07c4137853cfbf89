//! Receipts: everything a stranger needs to check, offline, that an entry
//! is in the log.
//!
//! A receipt carries the entry's canonical text, the log's signature over
//! it, the leaf index, an inclusion proof and the signed checkpoint the
//! proof leads to, plus (optionally) the salts that open the entry's content
//! commitments. [`verify_receipt`] checks all of it against the log's
//! verifier key and, given a later checkpoint the verifier already trusts
//! and a consistency proof to it, that the receipt's checkpoint is a prefix
//! of that later one. It never panics; it names the first check that failed.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::canonical::commitment;
use super::checkpoint::{CheckpointError, SignedCheckpoint};
use super::entry::{Entry, EntryError};
use super::hash::{leaf_hash, Hash};
use super::proof::{verify_consistency, verify_inclusion, LeafIndex, ProofError, TreeSize};
use super::signing::{signature_from_base64, LogVerifier};

/// The receipt format tag.
pub const RECEIPT_FORMAT: &str = "openexec-receipt/v1";

/// An inclusion proof: the audit path of the entry in the tree of
/// `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// Size of the tree the path leads to (the checkpoint's size).
    pub tree_size: u64,
    /// RFC 6962 audit path, leaf-side first.
    pub hashes: Vec<Hash>,
}

/// The salts that open an entry's content commitments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Salts {
    /// Salt of `payload_commitment`, base64 of 32 bytes.
    pub payload: String,
    /// Salt of `result_commitment`, when the entry has one.
    pub result: Option<String>,
}

/// A receipt as served in every response and by `GET /receipts/{exec_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// The entry's canonical bytes, as a string.
    pub entry: String,
    /// Ed25519 signature of the log key over the entry message, base64.
    pub entry_signature: String,
    /// Position of the entry in the log.
    pub leaf_index: u64,
    /// Path from the entry to the checkpoint's root.
    pub inclusion_proof: InclusionProof,
    /// The signed checkpoint (C2SP signed note), with any cosignatures.
    pub checkpoint: String,
    /// Salts opening the content commitments; absent once content is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salts: Option<Salts>,
}

/// A later checkpoint the verifier already trusts, and the proof that the
/// receipt's checkpoint is a prefix of it.
#[derive(Debug, Clone)]
pub struct TrustedCheckpoint<'a> {
    /// The later signed checkpoint.
    pub checkpoint: &'a [u8],
    /// Consistency proof from the receipt's tree size to the later size.
    pub consistency_proof: &'a [Hash],
}

/// The first check a receipt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not a receipt of a known format.
    #[error("receipt format is not {RECEIPT_FORMAT}")]
    Format,
    /// The entry text is not a valid canonical entry.
    #[error("entry: {0}")]
    Entry(#[from] EntryError),
    /// The entry names another log.
    #[error("entry origin {found:?} is not the log origin {expected:?}")]
    Origin {
        /// The log's origin.
        expected: String,
        /// The entry's origin.
        found: String,
    },
    /// `leaf_index` and the entry's own index disagree.
    #[error("leaf index {leaf_index} does not match the entry index {entry_index}")]
    IndexMismatch {
        /// Receipt's leaf index.
        leaf_index: u64,
        /// Entry's index.
        entry_index: u64,
    },
    /// The log's signature over the entry does not verify.
    #[error("entry signature is invalid")]
    EntrySignature,
    /// The receipt's checkpoint does not verify.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// The proof is for a different tree size than the checkpoint.
    #[error("inclusion proof is for tree size {proof} but the checkpoint has size {checkpoint}")]
    TreeSizeMismatch {
        /// Size in the proof.
        proof: u64,
        /// Size in the checkpoint.
        checkpoint: u64,
    },
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("inclusion proof: {0}")]
    Inclusion(ProofError),
    /// The trusted later checkpoint does not verify.
    #[error("trusted checkpoint: {0}")]
    TrustedCheckpoint(CheckpointError),
    /// The receipt's checkpoint is not a prefix of the trusted one.
    #[error("consistency with the trusted checkpoint: {0}")]
    Consistency(ProofError),
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The decoded entry.
    pub entry: Entry,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// The checkpoint it is included in.
    pub checkpoint: SignedCheckpoint,
}

/// Verifies a receipt offline. Checks, in order: format, entry encoding,
/// origin, index, entry signature, checkpoint signature, proof size,
/// inclusion, and (if `trusted` is given) consistency with a later
/// checkpoint.
pub fn verify_receipt(
    receipt: &Receipt,
    log: &LogVerifier,
    trusted: Option<&TrustedCheckpoint<'_>>,
) -> Result<VerifiedReceipt, ReceiptError> {
    ReceiptVerifier::new(log, trusted).verify(receipt)
}

/// Verifies many receipts of one log with the checks of [`verify_receipt`],
/// opening each distinct checkpoint (and the trusted one) once: receipts
/// of one batch, or refreshed to one cosigned checkpoint, share their
/// checkpoint, and its signature is half the cost of a receipt.
pub struct ReceiptVerifier<'a> {
    log: &'a LogVerifier,
    trusted: Option<&'a TrustedCheckpoint<'a>>,
    opened_trusted: Option<Result<SignedCheckpoint, ReceiptError>>,
    checkpoints: HashMap<String, Result<SignedCheckpoint, ReceiptError>>,
}

/// Distinct checkpoints remembered by a [`ReceiptVerifier`]; past it the
/// memo is cleared (bounded memory on any input).
const MAX_REMEMBERED_CHECKPOINTS: usize = 4096;

impl<'a> ReceiptVerifier<'a> {
    /// A verifier for receipts of `log`, with an optional trusted later checkpoint.
    #[must_use]
    pub fn new(log: &'a LogVerifier, trusted: Option<&'a TrustedCheckpoint<'a>>) -> Self {
        Self {
            log,
            trusted,
            opened_trusted: None,
            checkpoints: HashMap::new(),
        }
    }

    /// Verifies one receipt (see [`verify_receipt`]).
    pub fn verify(&mut self, receipt: &Receipt) -> Result<VerifiedReceipt, ReceiptError> {
        let entry = self.check_entry(receipt)?;
        let checkpoint = self.open_checkpoint(&receipt.checkpoint)?;
        let leaf = check_inclusion(receipt, &checkpoint)?;
        if let Some(trusted) = self.trusted {
            let later = self.open_trusted(trusted)?;
            verify_consistency(
                trusted.consistency_proof,
                TreeSize(checkpoint.size()),
                TreeSize(later.size()),
                &checkpoint.root(),
                &later.root(),
            )
            .map_err(ReceiptError::Consistency)?;
        }
        Ok(VerifiedReceipt {
            entry,
            leaf_hash: leaf,
            checkpoint,
        })
    }

    /// Format, entry encoding, origin, index and entry signature.
    fn check_entry(&self, receipt: &Receipt) -> Result<Entry, ReceiptError> {
        if receipt.format != RECEIPT_FORMAT {
            return Err(ReceiptError::Format);
        }
        let entry = Entry::from_canonical_bytes(receipt.entry.as_bytes())?;
        if entry.origin != self.log.name() {
            return Err(ReceiptError::Origin {
                expected: self.log.name().to_owned(),
                found: entry.origin,
            });
        }
        if entry.index != receipt.leaf_index {
            return Err(ReceiptError::IndexMismatch {
                leaf_index: receipt.leaf_index,
                entry_index: entry.index,
            });
        }
        let signature =
            signature_from_base64(&receipt.entry_signature).ok_or(ReceiptError::EntrySignature)?;
        if !self.log.verify_entry(receipt.entry.as_bytes(), &signature) {
            return Err(ReceiptError::EntrySignature);
        }
        Ok(entry)
    }

    fn open_checkpoint(&mut self, note: &str) -> Result<SignedCheckpoint, ReceiptError> {
        if let Some(known) = self.checkpoints.get(note) {
            return known.clone();
        }
        if self.checkpoints.len() >= MAX_REMEMBERED_CHECKPOINTS {
            self.checkpoints.clear();
        }
        let opened =
            SignedCheckpoint::open(note.as_bytes(), self.log).map_err(ReceiptError::Checkpoint);
        self.checkpoints.insert(note.to_owned(), opened.clone());
        opened
    }

    fn open_trusted(
        &mut self,
        trusted: &TrustedCheckpoint<'_>,
    ) -> Result<SignedCheckpoint, ReceiptError> {
        let log = self.log;
        self.opened_trusted
            .get_or_insert_with(|| {
                SignedCheckpoint::open(trusted.checkpoint, log)
                    .map_err(ReceiptError::TrustedCheckpoint)
            })
            .clone()
    }
}

/// Proof size against the checkpoint, then the inclusion proof; returns
/// the leaf hash.
fn check_inclusion(receipt: &Receipt, checkpoint: &SignedCheckpoint) -> Result<Hash, ReceiptError> {
    let proof = &receipt.inclusion_proof;
    if proof.tree_size != checkpoint.size() {
        return Err(ReceiptError::TreeSizeMismatch {
            proof: proof.tree_size,
            checkpoint: checkpoint.size(),
        });
    }
    let leaf = leaf_hash(receipt.entry.as_bytes());
    verify_inclusion(
        &proof.hashes,
        LeafIndex(receipt.leaf_index),
        TreeSize(proof.tree_size),
        &leaf,
        &checkpoint.root(),
    )
    .map_err(ReceiptError::Inclusion)?;
    Ok(leaf)
}

/// Checks that `content` (canonical bytes) opens `expected` with `salt_b64`.
#[must_use]
pub fn opens_commitment(expected: &Hash, salt_b64: &str, content: &[u8]) -> bool {
    let Ok(salt) = STANDARD.decode(salt_b64) else {
        return false;
    };
    let Ok(salt): Result<[u8; 32], _> = salt.try_into() else {
        return false;
    };
    commitment(&salt, content) == *expected
}

/// Encodes a 32-byte salt for a receipt.
#[must_use]
pub fn salt_to_base64(salt: &[u8; 32]) -> String {
    STANDARD.encode(salt)
}

/// Cleartext kept beside an entry (deletable), with the salts that open its
/// commitments. Stored by the ledger; the salts go into receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// The canonical payload.
    pub payload: serde_json::Value,
    /// The canonical result, if any.
    pub result: Option<serde_json::Value>,
    /// Salts of the two commitments.
    pub salts: Salts,
}
