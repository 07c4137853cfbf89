//! The ledger on real sled: receipts, proofs, reopen, refusal to open with
//! the wrong key or origin.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use openexec::core::entry::Entry;
use openexec::core::hash::{leaf_hash, Hash};
use openexec::core::proof::{reference, verify_consistency, verify_inclusion, LeafIndex, TreeSize};
use openexec::core::receipt::{verify_receipt, TrustedCheckpoint};
use openexec::ledger::{Ledger, LedgerConfig, LedgerError};
use proptest::prelude::*;

#[test]
fn every_receipt_verifies_and_the_chain_links() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(dir.path());
    let mut prev_leaf = openexec::core::entry::GENESIS_PREV;
    for n in 0..40 {
        let appended = ledger.append(common::draft(n), None).unwrap();
        assert_eq!(appended.entry.index, n);
        assert_eq!(appended.entry.prev, prev_leaf);
        let verified = verify_receipt(&appended.receipt, ledger.verifier(), None).unwrap();
        assert_eq!(verified.entry, appended.entry);
        prev_leaf = verified.leaf_hash;
    }
    assert_eq!(ledger.head().size, 40);
    assert_eq!(ledger.head().last_leaf, prev_leaf);
}

#[test]
fn concurrent_appends_get_distinct_indices_and_valid_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(dir.path());
    let receipts: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let ledger = &ledger;
                s.spawn(move || {
                    (0..25)
                        .map(|i| ledger.append(common::draft(t * 1000 + i), None).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut indices: Vec<u64> = receipts.iter().map(|a| a.entry.index).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..400).collect::<Vec<_>>());
    for a in &receipts {
        verify_receipt(&a.receipt, ledger.verifier(), None).unwrap();
    }
    // Group commit happened: fewer batches than entries.
    let stats = ledger.stats();
    assert!(stats.batches.load(std::sync::atomic::Ordering::Relaxed) < 400);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Proofs read back from a real sled store verify, and roots equal the
    /// naive recursive MTH of RFC 6962.
    #[test]
    fn proofs_from_sled_match_the_reference(size in 1u64..150, picks in proptest::collection::vec(any::<u64>(), 8)) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = common::open(dir.path());
        let mut leaves = Vec::new();
        let mut roots = vec![reference::root(&[])];
        for n in 0..size {
            let a = ledger.append(common::draft(n), None).unwrap();
            leaves.push(leaf_hash(a.receipt.entry.as_bytes()));
            roots.push(reference::root(&leaves));
        }
        prop_assert_eq!(ledger.head().root, reference::root(&leaves));
        for pick in picks {
            let tree_size = 1 + pick % size;
            let index = (pick / 7) % tree_size;
            let proof = ledger.inclusion_proof(index, tree_size).unwrap();
            let root = roots[usize::try_from(tree_size).unwrap()];
            prop_assert!(verify_inclusion(&proof, LeafIndex(index), TreeSize(tree_size), &leaves[usize::try_from(index).unwrap()], &root).is_ok());
            let old = (pick / 13) % (tree_size + 1);
            let proof = ledger.consistency_proof(old, tree_size).unwrap();
            let old_root = roots[usize::try_from(old).unwrap()];
            prop_assert!(verify_consistency(&proof, TreeSize(old), TreeSize(tree_size), &old_root, &root).is_ok());
        }
    }
}

#[test]
fn reopen_keeps_appending_and_old_checkpoints_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (old_receipt, old_vkey) = {
        let ledger = common::open(dir.path());
        for n in 0..10 {
            ledger.append(common::draft(n), None).unwrap();
        }
        (
            ledger.append(common::draft(10), None).unwrap().receipt,
            ledger.verifier().vkey(),
        )
    };
    let ledger = common::open(dir.path());
    assert_eq!(ledger.verifier().vkey(), old_vkey);
    assert_eq!(ledger.head().size, 11);
    for n in 11..30 {
        let a = ledger.append(common::draft(n), None).unwrap();
        assert_eq!(a.entry.index, n);
    }
    let latest = ledger.latest_checkpoint();
    let proof = ledger
        .consistency_proof(old_receipt.inclusion_proof.tree_size, 30)
        .unwrap();
    let trusted = TrustedCheckpoint {
        checkpoint: latest.as_bytes(),
        consistency_proof: &proof,
    };
    verify_receipt(&old_receipt, ledger.verifier(), Some(&trusted)).unwrap();
    // A fresh receipt for an old entry proves against the new head.
    let fresh = ledger.receipt_for_exec_id("exec-3").unwrap();
    assert_eq!(fresh.inclusion_proof.tree_size, 30);
    assert_eq!(
        Entry::from_canonical_bytes(fresh.entry.as_bytes())
            .unwrap()
            .index,
        3
    );
    verify_receipt(&fresh, ledger.verifier(), None).unwrap();
}

#[test]
fn a_log_refuses_another_key_or_origin() {
    let dir = tempfile::tempdir().unwrap();
    drop(common::open(dir.path()));
    // Another origin with the same key file.
    let mut config = LedgerConfig::new(dir.path());
    config.origin = "other.example/log".into();
    let err = Ledger::open(&config).err().expect("must refuse");
    assert!(
        matches!(err, LedgerError::Config(ref m) if m.contains("origin")),
        "{err}"
    );
    // Another key for the same origin.
    let other_key = dir.path().join("other.key");
    let mut config = LedgerConfig::new(dir.path());
    config.key_path = Some(other_key);
    let err = Ledger::open(&config).err().expect("must refuse");
    assert!(
        matches!(err, LedgerError::Config(ref m) if m.contains("refusing to start")),
        "{err}"
    );
}

#[test]
fn key_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    drop(common::open(dir.path()));
    let mode = std::fs::metadata(dir.path().join("log.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn proofs_beyond_the_head_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(dir.path());
    ledger.append(common::draft(0), None).unwrap();
    assert!(matches!(
        ledger.inclusion_proof(0, 2),
        Err(LedgerError::NotFound)
    ));
    assert!(matches!(
        ledger.consistency_proof(1, 5),
        Err(LedgerError::NotFound)
    ));
    assert!(matches!(ledger.entry(1), Err(LedgerError::NotFound)));
    let _: Hash = ledger.head().root;
}

#[test]
fn a_bad_draft_is_refused_alone_and_the_writer_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(dir.path());
    let mut bad = common::draft(0);
    bad.reason = "Not A Code".into();
    assert!(matches!(
        ledger.append(bad, None),
        Err(LedgerError::Entry(_))
    ));
    assert_eq!(
        ledger.append(common::draft(1), None).unwrap().entry.index,
        0
    );
}

#[test]
fn oversized_content_is_refused_alone() {
    use openexec::core::receipt::{Content, Salts};
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(dir.path());
    let big = Content {
        payload: serde_json::json!({ "x": "y".repeat(openexec::store::MAX_VALUE_LEN) }),
        result: None,
        salts: Salts {
            payload: String::new(),
            result: None,
        },
    };
    assert!(matches!(
        ledger.append(common::draft(0), Some(big)),
        Err(LedgerError::Store(_))
    ));
    assert!(ledger.is_writable());
    assert_eq!(
        ledger.append(common::draft(1), None).unwrap().entry.index,
        0
    );
}

#[test]
fn audit_names_the_second_entry_that_consumes_one_approval() {
    use openexec::core::entry::{ApprovalKind, ApprovalSummary};
    use openexec::ledger::audit::Location;
    use openexec::store::Completion;
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(dir.path());
    let approved = |n: u64, id: &str| {
        let mut draft = common::draft(n);
        draft.approval = ApprovalSummary {
            kind: ApprovalKind::OpenexecV2,
            id: Some(id.into()),
            key_id: Some("kid".into()),
            expires_at: None,
        };
        let key = openexec::core::entry::nonce_key(&draft.tenant, &draft.nonce);
        ledger
            .append_completing_blocking(draft, None, Some(Completion::claimed(key)))
            .unwrap();
    };
    ledger.append(common::draft(0), None).unwrap();
    approved(1, "once");
    approved(2, "other");
    assert_eq!(common::full_audit(ledger.store().unwrap()), None);
    // The writer consumes whatever approval its entries name; the boundary
    // never gives it one twice, and the audit would see it if it did.
    approved(3, "once");
    let finding = common::full_audit(ledger.store().unwrap()).expect("a finding");
    assert_eq!(finding.at, Location::Entry(3));
    assert!(
        finding.problem.contains("consumed record is entry 1"),
        "{}",
        finding.problem
    );
}

#[test]
fn audit_names_the_second_entry_that_completes_one_nonce() {
    use openexec::ledger::audit::Location;
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_with_originals(dir.path());
    assert_eq!(common::full_audit(ledger.store().unwrap()), None);
    // The writer completes whatever it is given; the boundary never gives
    // it one nonce twice, and the audit would see it if it did.
    append_completing(&ledger, 3, "once");
    let finding = common::full_audit(ledger.store().unwrap()).expect("a finding");
    assert_eq!(finding.at, Location::Entry(3));
    assert!(
        finding.problem.contains("done record is entry 1"),
        "{}",
        finding.problem
    );
}

/// A replay's draft of `original` (index `at`): what the boundary writes.
fn replay_of(ledger: &Ledger, at: u64) -> openexec::core::entry::EntryDraft {
    use openexec::core::entry::{EntryDraft, Outcome, ReplayOf};
    let (bytes, _) = ledger.entry(at).unwrap();
    let original = Entry::from_canonical_bytes(&bytes).unwrap();
    EntryDraft {
        exec_id: original.exec_id,
        tenant: original.tenant,
        action: original.action,
        nonce: original.nonce,
        request_hash: original.request_hash,
        payload_commitment: original.payload_commitment,
        result_commitment: original.result_commitment,
        approval: original.approval,
        outcome: Outcome::Replayed,
        reason: format!("replay_of_{}", original.outcome),
        replay_of: Some(ReplayOf {
            index: at,
            leaf_hash: leaf_hash(&bytes),
        }),
        effects: None,
        registry: None,
        principal: None,
    }
}

/// A ledger holding entry 0 (completes nothing), entry 1 (completes nonce
/// `once`) and entry 2 (completes nonce `other`).
fn ledger_with_originals(dir: &std::path::Path) -> Ledger {
    let ledger = common::open(dir);
    ledger.append(common::draft(0), None).unwrap();
    append_completing(&ledger, 1, "once");
    append_completing(&ledger, 2, "other");
    ledger
}

/// Appends `common::draft(n)` for `nonce`, completing it.
fn append_completing(ledger: &Ledger, n: u64, nonce: &str) {
    use openexec::store::Completion;
    let mut draft = common::draft(n);
    draft.nonce = nonce.into();
    let key = openexec::core::entry::nonce_key(&draft.tenant, nonce);
    ledger
        .append_completing_blocking(draft, None, Some(Completion::reserved(key)))
        .unwrap();
}

#[test]
fn a_replay_that_names_no_written_entry_is_refused_alone() {
    use openexec::core::entry::{EntryError, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_with_originals(dir.path());
    let refused = |r: Result<openexec::ledger::Appended, LedgerError>| {
        matches!(
            r,
            Err(LedgerError::Entry(EntryError::InvalidField("replay_of")))
        )
    };
    // Pointing at itself or later: the writer refuses it before the batch.
    for at in [3, 4, 1 << 40] {
        let mut draft = replay_of(&ledger, 1);
        draft.replay_of.as_mut().unwrap().index = at;
        assert!(refused(ledger.append(draft, None)), "{at}");
    }
    // A replay without its original, or a pointer on another outcome: at
    // submission.
    let mut draft = replay_of(&ledger, 1);
    draft.replay_of = None;
    assert!(refused(ledger.append(draft, None)));
    let mut draft = replay_of(&ledger, 1);
    draft.outcome = Outcome::Rejected;
    assert!(refused(ledger.append(draft, None)));
    assert!(ledger.is_writable());
    let appended = ledger.append(replay_of(&ledger, 1), None).unwrap();
    assert_eq!(appended.entry.index, 3);
    assert_eq!(common::full_audit(ledger.store().unwrap()), None);
}

#[test]
fn audit_names_a_replay_that_does_not_name_its_original() {
    use openexec::ledger::audit::Location;
    type Spoil = fn(&mut openexec::core::entry::EntryDraft, &Ledger);
    let cases: [(&str, Spoil, &str); 7] = [
        ("as written", |_, _| {}, ""),
        (
            "another leaf hash",
            |d, _| d.replay_of.as_mut().unwrap().leaf_hash = Hash::sha256(b"x"),
            "whose leaf hash is not the one it names",
        ),
        (
            "another nonce's entry",
            |d, l| d.replay_of = replay_of(l, 2).replay_of,
            "which holds another nonce",
        ),
        (
            "an entry that completed nothing",
            |d, l| d.replay_of = replay_of(l, 0).replay_of,
            "which did not complete a nonce",
        ),
        (
            "another request",
            |d, _| d.request_hash = Hash::sha256(b"another request"),
            "which is another request",
        ),
        (
            "other commitments",
            |d, _| d.payload_commitment = Hash::sha256(b"other payload"),
            "does not repeat its exec_id, commitments and outcome",
        ),
        (
            "another outcome",
            |d, _| d.reason = "replay_of_failed".into(),
            "does not repeat its exec_id, commitments and outcome",
        ),
    ];
    for (what, spoil, problem) in cases {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger_with_originals(dir.path());
        let mut draft = replay_of(&ledger, 1);
        spoil(&mut draft, &ledger);
        ledger.append(draft, None).unwrap();
        let finding = common::full_audit(ledger.store().unwrap());
        if problem.is_empty() {
            assert_eq!(finding, None, "{what}");
            continue;
        }
        let finding = finding.unwrap_or_else(|| panic!("{what}: no finding"));
        assert_eq!(finding.at, Location::Entry(3), "{what}");
        assert!(
            finding.problem.contains(problem),
            "{what}: {}",
            finding.problem
        );
    }
}
