//! The known-answer vectors of `tests/known_answer.rs`: fixed inputs (a
//! TEST-ONLY log key, a fixed time, three entry drafts with fixed salts)
//! and everything the pure core computes from them (entries, signatures,
//! leaf and stored hashes, the tree, the signed checkpoint, one receipt and
//! its tlog-proof form). [`render`] turns them into the files of
//! `tests/vectors/openexec/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

pub mod render;

use std::error::Error;

use chrono::{DateTime, Utc};
use ed25519_dalek::Signature;
use serde_json::{json, Value};

use openexec::core::canonical::{commitment, request_hash, to_canonical_bytes};
use openexec::core::checkpoint::SignedCheckpoint;
use openexec::core::entry::{
    ApprovalKind, ApprovalSummary, Entry, EntryDraft, Outcome, ReplayOf, GENESIS_PREV,
};
use openexec::core::hash::Hash;
use openexec::core::proof::reference;
use openexec::core::receipt::{salt_to_base64, InclusionProof, Receipt, Salts, RECEIPT_FORMAT};
use openexec::core::signing::{signature_to_base64, LogSigner};
use openexec::core::tlog_proof;

/// Set to `1` to rewrite the vector files (the test then fails on purpose).
pub const REGENERATE_VAR: &str = "OPENEXEC_REGENERATE_VECTORS";
/// The log's origin, which is also its key name.
pub const ORIGIN: &str = "example.com/openexec";
/// TEST-ONLY Ed25519 seed of the log key. Never use it for anything else.
pub const SEED: [u8; 32] = [0x42; 32];
/// The one sequencer time of the batch (all three entries share it).
pub const TIME: &str = "2026-11-21T12:00:00.000000Z";
/// Entry whose full receipt is stored.
pub const RECEIPT_INDEX: usize = 1;

// ---------------------------------------------------------------------------
// Fixed inputs
// ---------------------------------------------------------------------------

/// One entry's inputs, with the canonical texts written out by hand so that
/// the request hash and commitments are checked against the spec, not only
/// against the canonicalizer.
pub struct Case {
    pub exec_id: &'static str,
    pub tenant: &'static str,
    pub action: &'static str,
    pub nonce: &'static str,
    pub payload: Value,
    pub result: Option<Value>,
    pub payload_salt: [u8; 32],
    pub result_salt: Option<[u8; 32]>,
    pub approval: ApprovalSummary,
    pub outcome: Outcome,
    pub reason: &'static str,
    /// For a replay: the index of the case it replays.
    pub replay_of: Option<usize>,
    /// JCS of `{action, nonce, payload, tenant}`, by hand.
    pub request_jcs: &'static str,
    /// JCS of the payload, by hand.
    pub payload_jcs: &'static str,
    /// JCS of the result, by hand.
    pub result_jcs: Option<&'static str>,
}

pub fn cases() -> Vec<Case> {
    vec![
        // 0: an executed `echo` (demo mode, no approval): the result is the payload.
        Case {
            exec_id: "00000000-0000-4000-8000-000000000001",
            tenant: "tenant-001",
            action: "echo",
            nonce: "nonce-0001",
            payload: json!({"msg": "hello"}),
            result: Some(json!({"msg": "hello"})),
            payload_salt: [0x01; 32],
            result_salt: Some([0x02; 32]),
            approval: ApprovalSummary::none(),
            outcome: Outcome::Executed,
            reason: "ok",
            replay_of: None,
            request_jcs: r#"{"action":"echo","nonce":"nonce-0001","payload":{"msg":"hello"},"tenant":"tenant-001"}"#,
            payload_jcs: r#"{"msg":"hello"}"#,
            result_jcs: Some(r#"{"msg":"hello"}"#),
        },
        // 1: a `counter` request refused because its v2 approval had expired:
        // no handler ran, so there is no result commitment.
        Case {
            exec_id: "00000000-0000-4000-8000-000000000002",
            tenant: "tenant-001",
            action: "counter",
            nonce: "nonce-0002",
            payload: json!({"name": "visits"}),
            result: None,
            payload_salt: [0x03; 32],
            result_salt: None,
            approval: ApprovalSummary {
                kind: ApprovalKind::OpenexecV2,
                id: Some("approval-0002".into()),
                key_id: Some("approver-1".into()),
                expires_at: Some("2026-11-21T11:59:00Z".into()),
            },
            outcome: Outcome::Rejected,
            reason: "approval_expired",
            replay_of: None,
            request_jcs: r#"{"action":"counter","nonce":"nonce-0002","payload":{"name":"visits"},"tenant":"tenant-001"}"#,
            payload_jcs: r#"{"name":"visits"}"#,
            result_jcs: None,
        },
        // 2: the request of entry 0 sent again (same request hash): recorded
        // as replayed under entry 0's exec_id, no handler ran; the original
        // result is served again. The entry names entry 0 and repeats its
        // commitments (same salts), keeping no content of its own.
        Case {
            exec_id: "00000000-0000-4000-8000-000000000001",
            tenant: "tenant-001",
            action: "echo",
            nonce: "nonce-0001",
            payload: json!({"msg": "hello"}),
            result: Some(json!({"msg": "hello"})),
            payload_salt: [0x01; 32],
            result_salt: Some([0x02; 32]),
            approval: ApprovalSummary::none(),
            outcome: Outcome::Replayed,
            reason: "replay_of_executed",
            replay_of: Some(0),
            request_jcs: r#"{"action":"echo","nonce":"nonce-0001","payload":{"msg":"hello"},"tenant":"tenant-001"}"#,
            payload_jcs: r#"{"msg":"hello"}"#,
            result_jcs: Some(r#"{"msg":"hello"}"#),
        },
    ]
}

// ---------------------------------------------------------------------------
// Computation (pure core only)
// ---------------------------------------------------------------------------

/// One computed entry.
pub struct Computed {
    pub entry: Entry,
    pub bytes: Vec<u8>,
    pub leaf: Hash,
    pub signature: Signature,
    pub request_hash: Hash,
    pub payload_commitment: Hash,
    pub result_commitment: Option<Hash>,
}

/// Everything computed from the fixed inputs.
pub struct Vectors {
    pub signer: LogSigner,
    pub cases: Vec<Case>,
    pub entries: Vec<Computed>,
    pub leaves: Vec<Hash>,
    pub stored: Vec<Hash>,
    pub root: Hash,
    pub checkpoint: SignedCheckpoint,
    pub receipt: Receipt,
    pub tlog_proof: String,
}

pub fn fixed_time() -> Result<DateTime<Utc>, Box<dyn Error>> {
    Ok(DateTime::parse_from_rfc3339(TIME)?.with_timezone(&Utc))
}

/// An in-memory `tlog_tiles::HashReader` over a dense stored-hash array.
pub struct MemReader<'a>(pub &'a [Hash]);

impl tlog_tiles::HashReader for MemReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.0.get(i))
                    .map(|h| tlog_tiles::Hash::from(*h))
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

pub fn compute() -> Result<Vectors, Box<dyn Error>> {
    let signer = LogSigner::from_seed(ORIGIN, SEED)?;
    let time = fixed_time()?;
    let cases = cases();
    let mut entries = Vec::new();
    let mut prev = GENESIS_PREV;
    for (index, case) in (0u64..).zip(&cases) {
        let request_hash = request_hash(case.action, &case.payload, case.nonce, case.tenant)?;
        let payload_commitment =
            commitment(&case.payload_salt, &to_canonical_bytes(&case.payload)?);
        let result_commitment = match (&case.result, &case.result_salt) {
            (Some(result), Some(salt)) => Some(commitment(salt, &to_canonical_bytes(result)?)),
            (None, None) => None,
            _ => {
                return Err("a case has a result without a salt or a salt without a result".into())
            }
        };
        let replay_of = case
            .replay_of
            .map(|i| {
                entries
                    .get(i)
                    .map(|original: &Computed| ReplayOf {
                        index: u64::try_from(i).unwrap_or(u64::MAX),
                        leaf_hash: original.leaf,
                    })
                    .ok_or("a replay of a later case")
            })
            .transpose()?;
        let draft = EntryDraft {
            exec_id: case.exec_id.into(),
            tenant: case.tenant.into(),
            action: case.action.into(),
            nonce: case.nonce.into(),
            request_hash,
            payload_commitment,
            result_commitment,
            approval: case.approval.clone(),
            outcome: case.outcome,
            reason: case.reason.into(),
            replay_of,
            effects: None,
            registry: None,
            principal: None,
        };
        let entry = Entry::from_draft(draft, ORIGIN, index, prev, time);
        let bytes = entry.to_canonical_bytes()?;
        let leaf = entry.leaf_hash()?;
        let signature = signer.sign_entry(&bytes);
        prev = leaf;
        entries.push(Computed {
            entry,
            bytes,
            leaf,
            signature,
            request_hash,
            payload_commitment,
            result_commitment,
        });
    }
    let leaves: Vec<Hash> = entries.iter().map(|c| c.leaf).collect();

    // The stored-hash array, built the way the sequencer builds it.
    let mut stored: Vec<Hash> = Vec::new();
    for (index, leaf) in (0u64..).zip(&leaves) {
        let first = tlog_tiles::stored_hash_index(0, index);
        if usize::try_from(first)? != stored.len() {
            return Err(format!("stored hashes of record {index} do not start at {first}").into());
        }
        let new =
            tlog_tiles::stored_hashes_for_record_hash(index, (*leaf).into(), &MemReader(&stored))
                .map_err(|e| format!("stored hashes: {e:?}"))?;
        stored.extend(new.into_iter().map(Hash::from));
    }

    let size = u64::try_from(leaves.len())?;
    let root = reference::root(&leaves);
    let checkpoint = SignedCheckpoint::sign(&signer, size, root)?;
    let target = entries.get(RECEIPT_INDEX).ok_or("no receipt entry")?;
    let case = cases.get(RECEIPT_INDEX).ok_or("no receipt case")?;
    let receipt = Receipt {
        format: RECEIPT_FORMAT.to_owned(),
        entry: String::from_utf8(target.bytes.clone())?,
        entry_signature: signature_to_base64(&target.signature),
        leaf_index: u64::try_from(RECEIPT_INDEX)?,
        inclusion_proof: InclusionProof {
            tree_size: size,
            hashes: reference::inclusion(RECEIPT_INDEX, &leaves),
        },
        checkpoint: checkpoint.note_text().to_owned(),
        salts: Some(Salts {
            payload: salt_to_base64(&case.payload_salt),
            result: case.result_salt.as_ref().map(salt_to_base64),
        }),
    };
    let tlog_proof = tlog_proof::export(&receipt)?;
    Ok(Vectors {
        signer,
        cases,
        entries,
        leaves,
        stored,
        root,
        checkpoint,
        receipt,
        tlog_proof,
    })
}
