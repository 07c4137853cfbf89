//! Known-answer tests for OpenExec's own formats: request hash, salted
//! commitments, entries, entry signatures, leaf and node hashes, the stored
//! hash layout, the signed checkpoint, inclusion and consistency proofs, the
//! receipt JSON and its `c2sp.org/tlog-proof@v1` export.
//!
//! Everything is computed from fixed inputs with the pure core only (no
//! ledger, no store): a fixed TEST-ONLY log key (seed `[0x42; 32]`), a fixed
//! time, three fixed entry drafts and fixed salts. Ed25519 is deterministic,
//! so every byte is reproducible. The expected bytes live in
//! `tests/vectors/openexec/` (see the README there) and are the worked
//! example of `docs/FORMATS.md`.
//!
//! Besides comparing with the stored files, each value is derived a second
//! time from the spec alone (SHA-256 over hand-written inputs, Ed25519 via
//! `ed25519-dalek`, hand-built trees and proofs), so the vectors pin the
//! *spec*, not merely whatever the code happened to produce.
//!
//! To regenerate after an intended format change:
//! `OPENEXEC_REGENERATE_VECTORS=1 cargo test --test known_answer`; the run
//! then writes the files and fails on purpose, so it can never pass silently.
//! Run again without the variable to check.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use openexec::core::canonical::{commitment, request_hash, to_canonical_bytes};
use openexec::core::checkpoint::SignedCheckpoint;
use openexec::core::entry::{
    ApprovalKind, ApprovalSummary, Entry, EntryDraft, Outcome, ReplayOf, GENESIS_PREV,
};
use openexec::core::hash::{empty_tree_hash, leaf_hash, node_hash, Hash};
use openexec::core::proof::{
    prove_consistency, prove_inclusion, reference, tree_root, verify_consistency, verify_inclusion,
    LeafIndex, TreeSize,
};
use openexec::core::receipt::{
    opens_commitment, salt_to_base64, verify_receipt, InclusionProof, Receipt, ReceiptError, Salts,
    TrustedCheckpoint, RECEIPT_FORMAT,
};
use openexec::core::signing::{entry_message, signature_to_base64, LogSigner, LogVerifier};
use openexec::core::tlog_proof;

type TestResult = Result<(), Box<dyn Error>>;

/// Set to `1` to rewrite the vector files (the test then fails on purpose).
const REGENERATE_VAR: &str = "OPENEXEC_REGENERATE_VECTORS";
/// The log's origin, which is also its key name.
const ORIGIN: &str = "example.com/openexec";
/// TEST-ONLY Ed25519 seed of the log key. Never use it for anything else.
const SEED: [u8; 32] = [0x42; 32];
/// The one sequencer time of the batch (all three entries share it).
const TIME: &str = "2026-11-21T12:00:00.000000Z";
/// Entry whose full receipt is stored.
const RECEIPT_INDEX: usize = 1;

// ---------------------------------------------------------------------------
// Fixed inputs
// ---------------------------------------------------------------------------

/// One entry's inputs, with the canonical texts written out by hand so that
/// the request hash and commitments are checked against the spec, not only
/// against the canonicalizer.
struct Case {
    exec_id: &'static str,
    tenant: &'static str,
    action: &'static str,
    nonce: &'static str,
    payload: Value,
    result: Option<Value>,
    payload_salt: [u8; 32],
    result_salt: Option<[u8; 32]>,
    approval: ApprovalSummary,
    outcome: Outcome,
    reason: &'static str,
    /// For a replay: the index of the case it replays.
    replay_of: Option<usize>,
    /// JCS of `{action, nonce, payload, tenant}`, by hand.
    request_jcs: &'static str,
    /// JCS of the payload, by hand.
    payload_jcs: &'static str,
    /// JCS of the result, by hand.
    result_jcs: Option<&'static str>,
}

fn cases() -> Vec<Case> {
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
struct Computed {
    entry: Entry,
    bytes: Vec<u8>,
    leaf: Hash,
    signature: Signature,
    request_hash: Hash,
    payload_commitment: Hash,
    result_commitment: Option<Hash>,
}

/// Everything computed from the fixed inputs.
struct Vectors {
    signer: LogSigner,
    cases: Vec<Case>,
    entries: Vec<Computed>,
    leaves: Vec<Hash>,
    stored: Vec<Hash>,
    root: Hash,
    checkpoint: SignedCheckpoint,
    receipt: Receipt,
    tlog_proof: String,
}

fn fixed_time() -> Result<DateTime<Utc>, Box<dyn Error>> {
    Ok(DateTime::parse_from_rfc3339(TIME)?.with_timezone(&Utc))
}

/// An in-memory `tlog_tiles::HashReader` over a dense stored-hash array.
struct MemReader<'a>(&'a [Hash]);

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

fn compute() -> Result<Vectors, Box<dyn Error>> {
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

// ---------------------------------------------------------------------------
// Rendering the vector files
// ---------------------------------------------------------------------------

fn hx(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn hash_json(h: &Hash) -> Value {
    json!({"hex": hx(h.as_bytes()), "base64": h.to_base64()})
}

fn bytes_json(b: &[u8]) -> Value {
    json!({"hex": hx(b), "base64": STANDARD.encode(b)})
}

fn hashes_b64(hs: &[Hash]) -> Vec<String> {
    hs.iter().map(Hash::to_base64).collect()
}

fn pretty(value: &impl serde::Serialize) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut out = serde_json::to_vec_pretty(value)?;
    out.push(b'\n');
    Ok(out)
}

fn public_key() -> [u8; 32] {
    SigningKey::from_bytes(&SEED).verifying_key().to_bytes()
}

/// `name ‖ "\n" ‖ 0x01 ‖ public key`: the input of the signed-note key id.
fn key_id_input() -> Vec<u8> {
    let mut input = format!("{ORIGIN}\n").into_bytes();
    input.push(0x01);
    input.extend_from_slice(&public_key());
    input
}

/// A signed note with one signature line, taken apart.
struct NoteParts {
    /// The signed text, with its final newline.
    body: String,
    /// The signature line, without its newline.
    line: String,
    /// The 4-byte key id at the start of the signature blob.
    key_id: [u8; 4],
    /// The 64-byte Ed25519 signature after it.
    signature: Vec<u8>,
}

/// Splits a signed note with exactly one signature line — independent of
/// the `signed_note` crate.
fn split_single_signature(note: &str) -> Result<NoteParts, Box<dyn Error>> {
    let (body, sigs) = note
        .rsplit_once("\n\n")
        .ok_or("no blank line in the note")?;
    let line = sigs
        .strip_suffix('\n')
        .ok_or("note does not end in a newline")?;
    if line.contains('\n') {
        return Err("expected exactly one signature line".into());
    }
    let rest = line
        .strip_prefix("\u{2014} ")
        .ok_or("signature line does not start with an em dash")?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or("no space in the signature line")?;
    if name != ORIGIN {
        return Err(format!("signature line names {name:?}").into());
    }
    let raw = STANDARD.decode(b64)?;
    if raw.len() != 4 + 64 {
        return Err(format!("signature blob is {} bytes, expected 68", raw.len()).into());
    }
    let (id, sig) = raw.split_at(4);
    Ok(NoteParts {
        body: format!("{body}\n"),
        line: line.to_owned(),
        key_id: id.try_into()?,
        signature: sig.to_vec(),
    })
}

fn render(v: &Vectors) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn Error>> {
    let mut files = BTreeMap::new();
    let verifier = v.signer.verifier();

    files.insert(
        "vkey.txt".to_owned(),
        format!("{}\n", verifier.vkey()).into_bytes(),
    );
    files.insert(
        "private-key.txt".to_owned(),
        v.signer.private_key_text().into_bytes(),
    );
    let key = json!({
        "name": ORIGIN,
        "seed": bytes_json(&SEED),
        "public_key": bytes_json(&public_key()),
        "key_id_input_hex": hx(&key_id_input()),
        "key_id": format!("{:08x}", verifier.key_id()),
        "vkey": verifier.vkey(),
        "private_key": v.signer.private_key_text().trim_end(),
        "warning": "TEST-ONLY key derived from a public seed; never use it for a real log",
    });
    files.insert("key.json".to_owned(), pretty(&key)?);

    let mut entries = Vec::new();
    for (i, (case, c)) in v.cases.iter().zip(&v.entries).enumerate() {
        let file = format!("entry-{i}.json");
        files.insert(file.clone(), c.bytes.clone());
        let message = entry_message(&c.bytes);
        entries.push(json!({
            "index": i,
            "inputs": {
                "exec_id": case.exec_id,
                "tenant": case.tenant,
                "action": case.action,
                "nonce": case.nonce,
                "payload": case.payload,
                "result": case.result,
                "payload_salt": bytes_json(&case.payload_salt),
                "result_salt": case.result_salt.as_ref().map(|s| bytes_json(s)),
                "approval": case.approval,
                "outcome": case.outcome,
                "reason": case.reason,
                "replay_of": case.replay_of,
            },
            "request_hash_input": format!("openexec/request/v1\n{}", case.request_jcs),
            "request_hash": hash_json(&c.request_hash),
            "payload_canonical": case.payload_jcs,
            "payload_commitment": hash_json(&c.payload_commitment),
            "result_canonical": case.result_jcs,
            "result_commitment": c.result_commitment.as_ref().map(hash_json),
            "prev": hash_json(&c.entry.prev),
            "entry": String::from_utf8(c.bytes.clone())?,
            "entry_file": file,
            "entry_len": c.bytes.len(),
            "leaf_hash": hash_json(&c.leaf),
            "signature_message": String::from_utf8(message.clone())?,
            "signature_message_hex": hx(&message),
            "signature": bytes_json(&c.signature.to_bytes()),
        }));
    }
    files.insert(
        "entries.json".to_owned(),
        pretty(&json!({"origin": ORIGIN, "time": TIME, "entries": entries}))?,
    );

    let mut stored = Vec::new();
    for (i, h) in (0u64..).zip(&v.stored) {
        let (level, n) = tlog_tiles::split_stored_hash_index(i);
        stored.push(json!({"stored_index": i, "level": level, "n": n, "hash": hash_json(h)}));
    }
    let mut roots = Vec::new();
    for size in 0..=v.leaves.len() {
        roots
            .push(json!({"tree_size": size, "root": hash_json(&reference::root(v.leaves.get(..size).ok_or("size")?))}));
    }
    let inclusion: Vec<Value> = (0..v.leaves.len())
        .map(|m| json!({"leaf_index": m, "tree_size": v.leaves.len(), "hashes": hashes_b64(&reference::inclusion(m, &v.leaves))}))
        .collect();
    let mut consistency = Vec::new();
    for (old, new) in consistency_pairs() {
        let hashes = reference::consistency(old, v.leaves.get(..new).ok_or("size")?);
        consistency.push(json!({"old_size": old, "new_size": new, "hashes": hashes_b64(&hashes)}));
    }
    let parts = split_single_signature(v.checkpoint.note_text())?;
    let tree = json!({
        "tree_size": v.leaves.len(),
        "leaf_hashes": v.leaves.iter().map(hash_json).collect::<Vec<_>>(),
        "stored_hashes": stored,
        "roots": roots,
        "inclusion": inclusion,
        "consistency": consistency,
        "checkpoint": {
            "body": parts.body,
            "signature_line": parts.line,
            "key_id": hx(&parts.key_id),
            "signature": bytes_json(&parts.signature),
        },
    });
    files.insert("tree.json".to_owned(), pretty(&tree)?);
    files.insert(
        "checkpoint.txt".to_owned(),
        v.checkpoint.note_text().as_bytes().to_vec(),
    );
    files.insert("receipt.json".to_owned(), pretty(&v.receipt)?);
    files.insert(
        "receipt.tlog-proof".to_owned(),
        v.tlog_proof.clone().into_bytes(),
    );
    Ok(files)
}

/// (old size, new size) of the consistency proofs in `tree.json`.
fn consistency_pairs() -> [(usize, usize); 5] {
    [(0, 3), (1, 2), (1, 3), (2, 3), (3, 3)]
}

// ---------------------------------------------------------------------------
// File access
// ---------------------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/openexec")
}

fn regenerating() -> bool {
    std::env::var(REGENERATE_VAR).is_ok_and(|v| v == "1")
}

fn read(name: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).map_err(|e| {
        format!(
            "{}: {e} (regenerate with {REGENERATE_VAR}=1)",
            path.display()
        )
        .into()
    })
}

fn read_str(name: &str) -> Result<String, Box<dyn Error>> {
    Ok(String::from_utf8(read(name)?)?)
}

/// First line where two texts differ, for a readable failure.
fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let e = String::from_utf8_lossy(expected);
    let a = String::from_utf8_lossy(actual);
    for (n, (le, la)) in e.split('\n').zip(a.split('\n')).enumerate() {
        if le != la {
            return format!("line {}:\n  stored:   {le:?}\n  computed: {la:?}", n + 1);
        }
    }
    format!(
        "lengths differ: stored {} bytes, computed {} bytes",
        expected.len(),
        actual.len()
    )
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// The computed vectors equal the stored files byte for byte (or, with
/// `OPENEXEC_REGENERATE_VECTORS=1`, are written and the test fails).
#[test]
fn vectors_match_stored_files() -> TestResult {
    let v = compute()?;
    let files = render(&v)?;
    let dir = vectors_dir();
    if regenerating() {
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in &files {
            std::fs::write(dir.join(name), bytes)?;
        }
        return Err(format!(
            "regenerated {} vector files in {}; unset {REGENERATE_VAR} and run again to check them",
            files.len(),
            dir.display()
        )
        .into());
    }
    let mut problems = Vec::new();
    for (name, computed) in &files {
        match std::fs::read(dir.join(name)) {
            Ok(stored) if stored == *computed => {}
            Ok(stored) => problems.push(format!(
                "{name} differs: {}",
                first_difference(&stored, computed)
            )),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    for item in std::fs::read_dir(&dir)? {
        let name = item?.file_name().to_string_lossy().into_owned();
        if name != "README.md" && !files.contains_key(&name) {
            problems.push(format!(
                "{name} is in the vector directory but is not generated"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} vector file(s) do not match (after an intended format change, regenerate with {REGENERATE_VAR}=1):\n{}",
            problems.len(),
            problems.join("\n")
        )
        .into())
    }
}

/// Each computed value, derived again from the spec without the code under
/// test: hand-written canonical texts, plain SHA-256, hand-built trees.
#[test]
fn values_follow_the_spec() -> TestResult {
    let v = compute()?;
    let sha = |parts: &[&[u8]]| {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        Hash::from_bytes(h.finalize().into())
    };
    let time = fixed_time()?;
    for (i, (case, c)) in v.cases.iter().zip(&v.entries).enumerate() {
        // Canonical texts.
        assert_eq!(
            to_canonical_bytes(&case.payload)?,
            case.payload_jcs.as_bytes(),
            "payload {i}"
        );
        if let (Some(result), Some(jcs)) = (&case.result, case.result_jcs) {
            assert_eq!(to_canonical_bytes(result)?, jcs.as_bytes(), "result {i}");
        }
        // Request hash and commitments.
        assert_eq!(
            c.request_hash,
            sha(&[b"openexec/request/v1\n", case.request_jcs.as_bytes()]),
            "request hash {i}"
        );
        assert_eq!(
            c.payload_commitment,
            sha(&[
                b"openexec/commitment/v1\n",
                &case.payload_salt,
                case.payload_jcs.as_bytes()
            ]),
            "payload commitment {i}"
        );
        let expected_result = match (case.result_salt, case.result_jcs) {
            (Some(salt), Some(jcs)) => {
                Some(sha(&[b"openexec/commitment/v1\n", &salt, jcs.as_bytes()]))
            }
            _ => None,
        };
        assert_eq!(
            c.result_commitment, expected_result,
            "result commitment {i}"
        );
        // Chain and position.
        assert_eq!(c.entry.index, u64::try_from(i)?);
        let expected_prev = if i == 0 {
            Hash::from_bytes([0; 32])
        } else {
            v.leaves[i - 1]
        };
        assert_eq!(c.entry.prev, expected_prev, "prev {i}");
        assert_eq!(c.entry.time, time);
        // Entry text: keys sorted, every field present, prefix as specified.
        let text = std::str::from_utf8(&c.bytes)?;
        // (serde_json's Value keeps object keys sorted, as JCS does here.)
        let approval = serde_json::to_string(&serde_json::to_value(&case.approval)?)?;
        assert!(
            text.starts_with(&format!(
                r#"{{"action":"{}","approval":{approval},"exec_id":"{}","index":{i},"#,
                case.action, case.exec_id
            )),
            "{text}"
        );
        assert!(
            text.ends_with(&format!(r#""time":"{TIME}","v":1}}"#)),
            "{text}"
        );
        assert_eq!(Entry::from_canonical_bytes(&c.bytes)?, c.entry);
        // Leaf hash and entry signature.
        assert_eq!(c.leaf, sha(&[&[0x00], &c.bytes]), "leaf {i}");
        assert_eq!(c.leaf, leaf_hash(&c.bytes));
        let key = SigningKey::from_bytes(&SEED).verifying_key();
        let mut message = b"OpenExec entry signature v1\n".to_vec();
        message.extend_from_slice(&c.bytes);
        key.verify_strict(&message, &c.signature)?;
        assert!(v.signer.verifier().verify_entry(&c.bytes, &c.signature));
    }
    // A replay carries the request hash, exec_id and commitments of the
    // entry it repeats, and names it by index and leaf hash, after `reason`.
    let (original, replay) = (&v.entries[0], &v.entries[2]);
    assert_eq!(replay.request_hash, original.request_hash);
    assert_eq!(replay.entry.exec_id, original.entry.exec_id);
    assert_eq!(replay.payload_commitment, original.payload_commitment);
    assert_eq!(replay.result_commitment, original.result_commitment);
    let pointer = format!(
        r#""reason":"replay_of_executed","replay_of":{{"index":0,"leaf_hash":"{}"}},"request_hash":"#,
        sha(&[&[0x00], &original.bytes]).to_base64()
    );
    assert!(std::str::from_utf8(&replay.bytes)?.contains(&pointer));
    for c in &v.entries[..2] {
        assert!(!std::str::from_utf8(&c.bytes)?.contains("replay_of"));
    }

    // Tree: node = SHA-256(0x01 ‖ left ‖ right); 3 leaves split 2 + 1.
    let (l0, l1, l2) = (v.leaves[0], v.leaves[1], v.leaves[2]);
    let n01 = sha(&[&[0x01], l0.as_bytes(), l1.as_bytes()]);
    assert_eq!(n01, node_hash(&l0, &l1));
    let root = sha(&[&[0x01], n01.as_bytes(), l2.as_bytes()]);
    assert_eq!(v.root, root);
    assert_eq!(empty_tree_hash(), sha(&[]));
    // Stored-hash layout (Go sumdb/tlog): record 0 → [l0], record 1 → [l1,
    // node(l0,l1)], record 2 → [l2].
    assert_eq!(v.stored, vec![l0, l1, n01, l2]);
    assert_eq!(tlog_tiles::stored_hash_index(1, 0), 2);
    assert_eq!(tlog_tiles::stored_hash_index(0, 2), 3);
    // Proofs, leaf side first.
    let inclusion: [Vec<Hash>; 3] = [vec![l1, l2], vec![l0, l2], vec![n01]];
    let reader = MemReader(&v.stored);
    for (m, expected) in inclusion.iter().enumerate() {
        assert_eq!(
            &reference::inclusion(m, &v.leaves),
            expected,
            "inclusion {m}"
        );
        assert_eq!(
            &prove_inclusion(&reader, LeafIndex(u64::try_from(m)?), TreeSize(3))?,
            expected,
            "stored inclusion {m}"
        );
        verify_inclusion(
            expected,
            LeafIndex(u64::try_from(m)?),
            TreeSize(3),
            &v.leaves[m],
            &root,
        )?;
    }
    assert_eq!(tree_root(&reader, TreeSize(3))?, root);
    let roots = [sha(&[]), l0, n01, root];
    let consistency: [(usize, usize, Vec<Hash>); 5] = [
        (0, 3, vec![]),
        (1, 2, vec![l1]),
        (1, 3, vec![l1, l2]),
        (2, 3, vec![l2]),
        (3, 3, vec![]),
    ];
    for (old, new, expected) in &consistency {
        assert_eq!(
            &reference::consistency(*old, &v.leaves[..*new]),
            expected,
            "consistency {old}->{new}"
        );
        let (o, n) = (u64::try_from(*old)?, u64::try_from(*new)?);
        if *new == 3 {
            assert_eq!(
                &prove_consistency(&reader, TreeSize(o), TreeSize(n))?,
                expected,
                "stored consistency {old}->{new}"
            );
        }
        verify_consistency(
            expected,
            TreeSize(o),
            TreeSize(n),
            &roots[*old],
            &roots[*new],
        )?;
    }
    assert_eq!(
        consistency
            .iter()
            .map(|(o, n, _)| (*o, *n))
            .collect::<Vec<_>>(),
        consistency_pairs()
    );

    // Key id: first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
    let id_hash = sha(&[&key_id_input()]);
    let key_id = u32::from_be_bytes(id_hash.as_bytes()[..4].try_into()?);
    let verifier = v.signer.verifier();
    assert_eq!(verifier.key_id(), key_id);
    let mut encoded = vec![0x01];
    encoded.extend_from_slice(&public_key());
    assert_eq!(
        verifier.vkey(),
        format!("{ORIGIN}+{key_id:08x}+{}", STANDARD.encode(&encoded))
    );
    let mut private = vec![0x01];
    private.extend_from_slice(&SEED);
    assert_eq!(
        v.signer.private_key_text(),
        format!(
            "PRIVATE+KEY+{ORIGIN}+{key_id:08x}+{}\n",
            STANDARD.encode(&private)
        )
    );

    // Checkpoint: C2SP body, one signed-note line over exactly the body.
    let NoteParts {
        body,
        key_id: id,
        signature: sig,
        ..
    } = split_single_signature(v.checkpoint.note_text())?;
    assert_eq!(body, format!("{ORIGIN}\n3\n{}\n", root.to_base64()));
    assert_eq!(
        v.checkpoint.note_text(),
        format!(
            "{body}\n\u{2014} {ORIGIN} {}\n",
            STANDARD.encode([id.as_slice(), &sig].concat())
        )
    );
    assert_eq!(u32::from_be_bytes(id), key_id);
    SigningKey::from_bytes(&SEED)
        .verifying_key()
        .verify_strict(body.as_bytes(), &Signature::from_slice(&sig)?)?;

    // tlog-proof: header, extra = base64(JCS{entry, entry_signature, format, salts}), index, path, blank, note.
    let r = &v.receipt;
    let extra = to_canonical_bytes(&json!({
        "entry": r.entry, "entry_signature": r.entry_signature, "format": r.format, "salts": r.salts,
    }))?;
    let mut expected = format!(
        "c2sp.org/tlog-proof@v1\nextra {}\nindex {}\n",
        STANDARD.encode(extra),
        r.leaf_index
    );
    for h in &r.inclusion_proof.hashes {
        expected.push_str(&format!("{}\n", h.to_base64()));
    }
    expected.push('\n');
    expected.push_str(&r.checkpoint);
    assert_eq!(v.tlog_proof, expected);
    Ok(())
}

/// The stored receipt, and its tlog-proof form, verify offline with the
/// stored verifier key; the salts open the commitments.
#[test]
fn stored_receipt_verifies() -> TestResult {
    if regenerating() {
        return Ok(()); // the regenerating test fails on purpose instead
    }
    let log = LogVerifier::from_vkey(read_str("vkey.txt")?.trim_end_matches('\n'))?;
    let signer = LogSigner::from_private_key_text(&read_str("private-key.txt")?)?;
    assert_eq!(signer.verifier(), log);

    let receipt: Receipt = serde_json::from_slice(&read("receipt.json")?)?;
    let checkpoint = read("checkpoint.txt")?;
    assert_eq!(receipt.checkpoint.as_bytes(), checkpoint.as_slice());
    let verified = verify_receipt(&receipt, &log, None)?;
    assert_eq!(verified.entry.index, u64::try_from(RECEIPT_INDEX)?);
    assert_eq!(verified.entry.outcome, Outcome::Rejected);
    assert_eq!(verified.entry.reason, "approval_expired");
    assert_eq!(verified.checkpoint.size(), 3);
    assert_eq!(
        receipt.entry.as_bytes(),
        read(&format!("entry-{RECEIPT_INDEX}.json"))?.as_slice()
    );
    // Against the same checkpoint as the "later trusted" one: empty proof.
    let trusted = TrustedCheckpoint {
        checkpoint: &checkpoint,
        consistency_proof: &[],
    };
    verify_receipt(&receipt, &log, Some(&trusted))?;

    // The salts open the commitments over the canonical payload.
    let salts = receipt.salts.as_ref().ok_or("receipt has no salts")?;
    assert!(opens_commitment(
        &verified.entry.payload_commitment,
        &salts.payload,
        br#"{"name":"visits"}"#
    ));
    assert!(!opens_commitment(
        &verified.entry.payload_commitment,
        &salts.payload,
        br#"{"name":"visitors"}"#
    ));
    assert_eq!(salts.result, None);
    assert_eq!(verified.entry.result_commitment, None);

    // tlog-proof import gives back the same receipt, which verifies too.
    let imported = tlog_proof::import(&read_str("receipt.tlog-proof")?)?;
    assert_eq!(imported, receipt);
    verify_receipt(&imported, &log, None)?;

    // Every stored entry decodes strictly and is in the stored tree.
    let tree: Value = serde_json::from_slice(&read("tree.json")?)?;
    let root = verified.checkpoint.root();
    for i in 0..3u64 {
        let bytes = read(&format!("entry-{i}.json"))?;
        let entry = Entry::from_canonical_bytes(&bytes)?;
        assert_eq!(entry.index, i);
        let path: Vec<Hash> =
            serde_json::from_value(tree["inclusion"][usize::try_from(i)?]["hashes"].clone())?;
        verify_inclusion(&path, LeafIndex(i), TreeSize(3), &leaf_hash(&bytes), &root)?;
    }
    Ok(())
}

/// A few single changes to the stored receipt are each caught and named.
#[test]
fn stored_receipt_tampering_is_caught() -> TestResult {
    if regenerating() {
        return Ok(());
    }
    let log = LogVerifier::from_vkey(read_str("vkey.txt")?.trim_end_matches('\n'))?;
    let receipt: Receipt = serde_json::from_slice(&read("receipt.json")?)?;

    let mut r = receipt.clone();
    r.entry = r.entry.replace("approval_expired", "approval_expirex");
    assert_eq!(
        verify_receipt(&r, &log, None).err(),
        Some(ReceiptError::EntrySignature)
    );

    let mut r = receipt.clone();
    r.leaf_index = 0;
    assert!(matches!(
        verify_receipt(&r, &log, None),
        Err(ReceiptError::IndexMismatch { .. })
    ));

    let mut r = receipt.clone();
    r.inclusion_proof.hashes.swap(0, 1);
    assert!(matches!(
        verify_receipt(&r, &log, None),
        Err(ReceiptError::Inclusion(_))
    ));

    let mut r = receipt.clone();
    r.checkpoint = r.checkpoint.replacen("\n3\n", "\n4\n", 1);
    assert!(matches!(
        verify_receipt(&r, &log, None),
        Err(ReceiptError::Checkpoint(_))
    ));

    let mut r = receipt.clone();
    r.format = "openexec-receipt/v2".into();
    assert_eq!(
        verify_receipt(&r, &log, None).err(),
        Some(ReceiptError::Format)
    );

    let other = LogSigner::from_seed(ORIGIN, [0x43; 32])?.verifier();
    assert_eq!(
        verify_receipt(&receipt, &other, None).err(),
        Some(ReceiptError::EntrySignature)
    );
    Ok(())
}

/// The worked example of docs/FORMATS.md quotes these vectors verbatim.
#[test]
fn formats_doc_quotes_the_vectors() -> TestResult {
    if regenerating() {
        return Ok(());
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/FORMATS.md");
    let doc = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v = compute()?;
    let mut quoted = vec![
        v.signer.verifier().vkey(),
        v.checkpoint.note_text().to_owned(),
        v.receipt.entry_signature.clone(),
        v.tlog_proof.clone(),
        v.root.to_base64(),
        hx(v.root.as_bytes()),
    ];
    for c in &v.entries {
        quoted.push(String::from_utf8(c.bytes.clone())?);
        quoted.push(c.leaf.to_base64());
        quoted.push(hx(c.leaf.as_bytes()));
    }
    for q in quoted {
        assert!(doc.contains(&q), "docs/FORMATS.md does not quote {q:?}");
    }
    Ok(())
}
