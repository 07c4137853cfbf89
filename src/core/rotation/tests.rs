use chrono::{DateTime, Utc};

use super::*;
use crate::core::entry::tests::sample_draft;
use crate::core::entry::GENESIS_PREV;
use crate::core::hash::{leaf_hash, node_hash};
use crate::core::receipt::{InclusionProof, RECEIPT_FORMAT};
use crate::core::signing::{signature_to_base64, LogSigner};

fn time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-06T17:00:00.000001Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A log of `drafts`, and the receipt of each entry in the checkpoint of
/// the whole log (at most two entries: enough for every case here).
fn log_of(signer: &LogSigner, drafts: Vec<EntryDraft>) -> Vec<Receipt> {
    let mut prev = GENESIS_PREV;
    let mut entries = Vec::new();
    for (index, draft) in (0u64..).zip(drafts) {
        let entry = Entry::from_draft(draft, signer.name(), index, prev, time());
        let bytes = entry.to_canonical_bytes().unwrap();
        prev = leaf_hash(&bytes);
        entries.push(bytes);
    }
    let leaves: Vec<Hash> = entries.iter().map(|b| leaf_hash(b)).collect();
    let root = match leaves.as_slice() {
        [one] => *one,
        [a, b] => node_hash(a, b),
        _ => unreachable!("one or two entries"),
    };
    let size = leaves.len() as u64;
    let checkpoint = SignedCheckpoint::sign(signer, size, root).unwrap();
    (0u64..)
        .zip(&entries)
        .map(|(index, bytes)| {
            let hashes = match (leaves.len(), index) {
                (1, _) => vec![],
                (_, 0) => vec![leaves[1]],
                _ => vec![leaves[0]],
            };
            Receipt {
                format: RECEIPT_FORMAT.into(),
                entry: String::from_utf8(bytes.clone()).unwrap(),
                entry_signature: signature_to_base64(&signer.sign_entry(bytes)),
                leaf_index: index,
                inclusion_proof: InclusionProof {
                    tree_size: size,
                    hashes,
                },
                checkpoint: checkpoint.note_text().to_owned(),
                salts: None,
            }
        })
        .collect()
}

struct Rotation {
    old: LogSigner,
    new: LogSigner,
    record: RotationRecord,
}

/// A predecessor of one ordinary entry and its `log_end`, and a successor
/// whose entry 0 names it.
fn rotation() -> Rotation {
    let old = LogSigner::from_seed("example.com/log", [1; 32]).unwrap();
    let new = LogSigner::from_seed("example.com/log-g2", [2; 32]).unwrap();
    let successor = Successor::of(&new.verifier());
    let end = log_end_draft(&successor, "end".into()).unwrap();
    let old_log = log_of(&old, vec![sample_draft(0), end]);
    let log_end = old_log[1].clone();
    let last = SignedCheckpoint::open(log_end.checkpoint.as_bytes(), &old.verifier()).unwrap();
    let predecessor = Predecessor::of(&old.verifier(), &last);
    let start = log_start_draft(&predecessor, "start".into()).unwrap();
    let log_start = log_of(&new, vec![start]).remove(0);
    Rotation {
        record: RotationRecord {
            format: ROTATION_FORMAT.into(),
            successor,
            predecessor,
            log_end,
            log_start,
        },
        old,
        new,
    }
}

#[test]
fn a_rotation_verifies_with_both_keys() {
    let r = rotation();
    let ok = verify_chain(&r.record, &r.old.verifier(), &r.new.verifier()).unwrap();
    assert_eq!(ok.final_checkpoint.size(), 2);
    assert_eq!(ok.final_checkpoint.origin(), "example.com/log");
    assert_eq!(ok.successor_checkpoint.origin(), "example.com/log-g2");
    assert_eq!(r.record.predecessor.size, 2);
    assert_eq!(r.record.predecessor.root, ok.final_checkpoint.root());
}

#[test]
fn the_keys_in_the_wrong_order_or_a_third_key_are_refused() {
    let r = rotation();
    let other = LogSigner::from_seed("example.com/other", [3; 32]).unwrap();
    assert!(matches!(
        verify_chain(&r.record, &r.new.verifier(), &r.old.verifier()),
        Err(RotationError::PredecessorReceipt(_))
    ));
    assert!(matches!(
        verify_chain(&r.record, &r.old.verifier(), &other.verifier()),
        Err(RotationError::WrongSuccessor(_))
    ));
    // A successor key with the right name but another key: its log_start
    // receipt does not verify, and the log_end names another key anyway.
    let impostor = LogSigner::from_seed("example.com/log-g2", [9; 32]).unwrap();
    assert!(matches!(
        verify_chain(&r.record, &r.old.verifier(), &impostor.verifier()),
        Err(RotationError::WrongSuccessor(_))
    ));
}

#[test]
fn record_members_other_than_the_recomputed_ones_are_refused() {
    let r = rotation();
    let check = |record: &RotationRecord| {
        verify_chain(record, &r.old.verifier(), &r.new.verifier())
            .err()
            .map(|e| e.to_string())
    };
    let mut bad = r.record.clone();
    bad.successor.origin = "example.com/elsewhere".into();
    assert_eq!(
        check(&bad).as_deref(),
        Some("the record's successor member is not the one the keys and the final checkpoint give")
    );
    let mut bad = r.record.clone();
    bad.predecessor.size += 1;
    assert!(check(&bad).unwrap().contains("predecessor member"));
    assert_eq!(check(&r.record), None);
}

#[test]
fn a_tampered_final_checkpoint_is_refused() {
    let mut r = rotation();
    // Another size in the body: the log's signature no longer covers it.
    r.record.log_end.checkpoint = r.record.log_end.checkpoint.replacen("\n2\n", "\n3\n", 1);
    assert!(matches!(
        verify_chain(&r.record, &r.old.verifier(), &r.new.verifier()),
        Err(RotationError::PredecessorReceipt(_))
    ));
}

#[test]
fn a_log_end_that_is_not_the_last_entry_is_refused() {
    let r = rotation();
    // The same predecessor, one entry past its log_end.
    let end = log_end_draft(&Successor::of(&r.new.verifier()), "end".into()).unwrap();
    let longer = log_of(&r.old, vec![end, sample_draft(1)]);
    let record = RotationRecord {
        log_end: longer[0].clone(),
        ..r.record.clone()
    };
    assert!(matches!(
        verify_chain(&record, &r.old.verifier(), &r.new.verifier()),
        Err(RotationError::NotFinal { index: 0, size: 2 })
    ));
    // An ordinary last entry is no log_end.
    let record = RotationRecord {
        log_end: longer[1].clone(),
        ..r.record
    };
    assert!(matches!(
        verify_chain(&record, &r.old.verifier(), &r.new.verifier()),
        Err(RotationError::NotLogEnd)
    ));
}

#[test]
fn a_successor_of_another_predecessor_or_checkpoint_is_refused() {
    let r = rotation();
    let last =
        SignedCheckpoint::open(r.record.log_end.checkpoint.as_bytes(), &r.old.verifier()).unwrap();
    // Committing to an earlier checkpoint of the same predecessor.
    let earlier = SignedCheckpoint::sign(&r.old, 1, Hash::sha256(b"root")).unwrap();
    let mut wrong = Predecessor::of(&r.old.verifier(), &earlier);
    let start = log_start_draft(&wrong, "start".into()).unwrap();
    let record = RotationRecord {
        log_start: log_of(&r.new, vec![start]).remove(0),
        ..r.record.clone()
    };
    assert!(matches!(
        verify_chain(&record, &r.old.verifier(), &r.new.verifier()),
        Err(RotationError::WrongPredecessor(_))
    ));
    // Committing to the right checkpoint under another predecessor key.
    wrong = Predecessor::of(&r.new.verifier(), &last);
    let start = log_start_draft(&wrong, "start".into()).unwrap();
    let record = RotationRecord {
        log_start: log_of(&r.new, vec![start]).remove(0),
        ..r.record.clone()
    };
    assert!(matches!(
        verify_chain(&record, &r.old.verifier(), &r.new.verifier()),
        Err(RotationError::WrongPredecessor(_))
    ));
    // The right payload at index 1 is not the successor's start.
    let start = log_start_draft(&r.record.predecessor, "start".into()).unwrap();
    let record = RotationRecord {
        log_start: log_of(&r.new, vec![sample_draft(0), start]).remove(1),
        ..r.record
    };
    assert!(matches!(
        verify_chain(&record, &r.old.verifier(), &r.new.verifier()),
        Err(RotationError::NotLogStart)
    ));
}

#[test]
fn link_payloads_open_under_the_public_salt_and_no_request_can_name_their_actions() {
    let r = rotation();
    let entry = Entry::from_canonical_bytes(r.record.log_end.entry.as_bytes()).unwrap();
    let payload = serde_json::json!({ "successor": r.record.successor });
    let bytes = to_canonical_bytes(&payload).unwrap();
    assert_eq!(entry.payload_commitment, commitment(&LINK_SALT, &bytes));
    for action in [LOG_END_ACTION, LOG_START_ACTION] {
        assert!(crate::core::request::ActionName::parse(action).is_err());
    }
}
