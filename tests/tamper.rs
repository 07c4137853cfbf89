//! One flipped bit anywhere in a receipt, or in the stored log, is caught
//! and named.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use openexec::core::checkpoint::CheckpointError;
use openexec::core::proof::ProofError;
use openexec::core::receipt::{verify_receipt, Receipt, ReceiptError};
use openexec::core::tlog_proof;
use openexec::ledger::audit::Location;

fn ledger_with_receipt() -> (tempfile::TempDir, openexec::ledger::Ledger, Receipt) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(dir.path());
    for n in 0..6 {
        ledger.append(common::draft(n), None).unwrap();
    }
    let receipt = ledger.receipt(3).unwrap();
    (dir, ledger, receipt)
}

fn flip_char(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    // Replace the byte by another ASCII letter: the text stays UTF-8 and
    // always changes, whatever the byte at `at` (base64 '+' and '/'
    // included), so no test depends on which byte it lands on.
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn tampered_entry_fails_signature_or_encoding() {
    let (_d, ledger, receipt) = ledger_with_receipt();
    let at = receipt.entry.find("echo").unwrap();
    let mut r = receipt.clone();
    r.entry = flip_char(&receipt.entry, at);
    assert_eq!(
        verify_receipt(&r, ledger.verifier(), None).unwrap_err(),
        ReceiptError::EntrySignature
    );
}

#[test]
fn tampered_proof_hash_fails_inclusion() {
    let (_d, ledger, receipt) = ledger_with_receipt();
    for i in 0..receipt.inclusion_proof.hashes.len() {
        let mut r = receipt.clone();
        let mut bytes = *r.inclusion_proof.hashes[i].as_bytes();
        bytes[31] ^= 0x80;
        r.inclusion_proof.hashes[i] = openexec::core::hash::Hash::from_bytes(bytes);
        assert_eq!(
            verify_receipt(&r, ledger.verifier(), None).unwrap_err(),
            ReceiptError::Inclusion(ProofError::RootMismatch)
        );
    }
    let mut r = receipt.clone();
    r.inclusion_proof.hashes.push(r.inclusion_proof.hashes[0]);
    assert_eq!(
        verify_receipt(&r, ledger.verifier(), None).unwrap_err(),
        ReceiptError::Inclusion(ProofError::MalformedProof)
    );
}

#[test]
fn tampered_checkpoint_fails_its_signature() {
    let (_d, ledger, receipt) = ledger_with_receipt();
    let root_line_start = receipt.checkpoint.find('\n').unwrap() + 3;
    let mut r = receipt.clone();
    r.checkpoint = flip_char(&receipt.checkpoint, root_line_start + 2);
    assert_eq!(
        verify_receipt(&r, ledger.verifier(), None).unwrap_err(),
        ReceiptError::Checkpoint(CheckpointError::BadSignature)
    );
}

#[test]
fn tampered_signatures_fail() {
    let (_d, ledger, receipt) = ledger_with_receipt();
    let mut r = receipt.clone();
    r.entry_signature = flip_char(&receipt.entry_signature, 5);
    assert_eq!(
        verify_receipt(&r, ledger.verifier(), None).unwrap_err(),
        ReceiptError::EntrySignature
    );
    let sig_line = receipt.checkpoint.find("— ").unwrap();
    let at = receipt.checkpoint.len() - 10;
    assert!(at > sig_line);
    let mut r = receipt.clone();
    r.checkpoint = flip_char(&receipt.checkpoint, at);
    assert!(matches!(
        verify_receipt(&r, ledger.verifier(), None).unwrap_err(),
        ReceiptError::Checkpoint(_)
    ));
}

#[test]
fn wrong_index_and_foreign_key_are_named() {
    let (_d, ledger, receipt) = ledger_with_receipt();
    let mut r = receipt.clone();
    r.leaf_index = 2;
    assert!(matches!(
        verify_receipt(&r, ledger.verifier(), None).unwrap_err(),
        ReceiptError::IndexMismatch { .. }
    ));
    let other_dir = tempfile::tempdir().unwrap();
    let other = common::open(other_dir.path());
    // Same origin, different key: the entry signature is the first to fail.
    assert_eq!(
        verify_receipt(&receipt, other.verifier(), None).unwrap_err(),
        ReceiptError::EntrySignature
    );
}

#[test]
fn tlog_proof_round_trips_and_still_verifies() {
    let (_d, ledger, receipt) = ledger_with_receipt();
    let text = tlog_proof::export(&receipt).unwrap();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
    assert!(text.contains("\nindex 3\n"));
    let back = tlog_proof::import(&text).unwrap();
    assert_eq!(back, receipt);
    verify_receipt(&back, ledger.verifier(), None).unwrap();
    // A flipped proof line in the text form fails too.
    let lines: Vec<&str> = text.lines().collect();
    let mut bytes = *openexec::core::hash::Hash::from_base64(lines[3])
        .unwrap()
        .as_bytes();
    bytes[0] ^= 1;
    let flipped = text.replacen(
        lines[3],
        &openexec::core::hash::Hash::from_bytes(bytes).to_base64(),
        1,
    );
    let back = tlog_proof::import(&flipped).unwrap();
    assert!(matches!(
        verify_receipt(&back, ledger.verifier(), None).unwrap_err(),
        ReceiptError::Inclusion(_)
    ));
}

/// Import requires the `extra` bundle in exactly the RFC 8785 form export
/// writes: the same bundle with other spacing, member order, escapes or a
/// trailing space is refused, although it is the same JSON value.
#[test]
fn tlog_proof_import_requires_the_canonical_bundle() {
    use base64::Engine as _;
    use openexec::core::tlog_proof::TlogProofError;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (_d, ledger, receipt) = ledger_with_receipt();
    let text = tlog_proof::export(&receipt).unwrap();
    let line = text.lines().nth(1).unwrap();
    let canonical = b64.decode(line.strip_prefix("extra ").unwrap()).unwrap();
    let canonical = String::from_utf8(canonical).unwrap();
    let value: serde_json::Value = serde_json::from_str(&canonical).unwrap();
    let field = |k: &str| serde_json::to_string(&value[k]).unwrap();

    // The canonical bundle, re-encoded: accepted, the same receipt.
    let with = |bundle: &str| text.replacen(line, &format!("extra {}", b64.encode(bundle)), 1);
    let back = tlog_proof::import(&with(&canonical)).unwrap();
    assert_eq!(back, receipt);
    verify_receipt(&back, ledger.verifier(), None).unwrap();

    let variants = [
        serde_json::to_string_pretty(&value).unwrap(),
        format!(
            r#"{{"format":{},"entry":{},"entry_signature":{}}}"#,
            field("format"),
            field("entry"),
            field("entry_signature")
        ),
        canonical.replacen("\\\"", "\\u0022", 1),
        format!("{canonical} "),
    ];
    for bundle in variants {
        assert_ne!(bundle, canonical);
        let same: serde_json::Value = serde_json::from_str(&bundle).unwrap();
        assert_eq!(same, value, "{bundle}");
        assert_eq!(
            tlog_proof::import(&with(&bundle)),
            Err(TlogProofError::Extra),
            "{bundle}"
        );
    }
}

fn audit_first_bad(dir: &std::path::Path) -> Option<Location> {
    let store =
        openexec::store::Store::open(&openexec::store::StoreConfig::new(dir.join("db"))).unwrap();
    common::full_audit(&store).map(|f| f.at)
}

#[test]
fn audit_passes_a_clean_log_and_names_the_first_tampered_entry() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = common::open(dir.path());
        for n in 0..20 {
            ledger.append(common::draft(n), None).unwrap();
        }
        let (bytes, sig) = ledger.entry(7).unwrap();
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace("nonce-7", "nonce-X");
        let mut value = sig.to_vec();
        value.extend_from_slice(text.as_bytes());
        ledger
            .store()
            .unwrap()
            .tamper_raw("entries", &7u64.to_be_bytes(), &value)
            .unwrap();
    }
    assert_eq!(audit_first_bad(dir.path()), Some(Location::Entry(7)));
}

#[test]
fn audit_catches_a_tampered_stored_hash_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = common::open(dir.path());
        for n in 0..20 {
            ledger.append(common::draft(n), None).unwrap();
        }
    }
    {
        let store =
            openexec::store::Store::open(&openexec::store::StoreConfig::new(dir.path().join("db")))
                .unwrap();
        assert_eq!(common::full_audit(&store), None);
        // The stored hash of level 1 covering leaves 4,5 (written with entry 5).
        let at = tlog_tiles::stored_hash_index(1, 2);
        store
            .tamper_raw("hashes", &at.to_be_bytes(), &[0u8; 32])
            .unwrap();
    }
    assert_eq!(audit_first_bad(dir.path()), Some(Location::Entry(5)));
    // Checkpoint tampering, on a fresh log.
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = common::open(dir.path());
        ledger.append(common::draft(0), None).unwrap();
        let note = ledger.latest_checkpoint().replacen("\n1\n", "\n2\n", 1);
        ledger
            .store()
            .unwrap()
            .tamper_raw("checkpoints", &1u64.to_be_bytes(), note.as_bytes())
            .unwrap();
    }
    assert_eq!(audit_first_bad(dir.path()), Some(Location::Checkpoint(1)));
}
