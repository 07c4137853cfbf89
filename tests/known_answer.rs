//! Known-answer tests for OpenExec's own formats: request hash, salted
//! commitments, entries, entry signatures, leaf and node hashes, the stored
//! hash layout, the signed checkpoint, inclusion and consistency proofs, the
//! receipt JSON and its `c2sp.org/tlog-proof@v1` export.
//!
//! Everything is computed from fixed inputs with the pure core only (no
//! ledger, no store): a fixed TEST-ONLY log key (seed `[0x42; 32]`), a fixed
//! time, three fixed entry drafts and fixed salts (`tests/known_answer_vectors/`
//! holds them and the computation). Ed25519 is deterministic, so every byte
//! is reproducible. The expected bytes live in
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
//! then writes the files and fails on purpose, so it can never succeed silently.
//! Run again without the variable to check.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod known_answer_vectors;

use std::error::Error;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use openexec::core::canonical::to_canonical_bytes;
use openexec::core::entry::{Entry, Outcome};
use openexec::core::hash::{empty_tree_hash, leaf_hash, node_hash, Hash};
use openexec::core::proof::{
    prove_consistency, prove_inclusion, reference, tree_root, verify_consistency, verify_inclusion,
    LeafIndex, TreeSize,
};
use openexec::core::receipt::{
    opens_commitment, verify_receipt, Receipt, ReceiptError, TrustedCheckpoint,
};
use openexec::core::signing::{LogSigner, LogVerifier};
use openexec::core::tlog_proof;

use known_answer_vectors::render::{
    consistency_pairs, first_difference, hx, key_id_input, public_key, read, read_str,
    regenerating, render, split_single_signature, vectors_dir, NoteParts,
};
use known_answer_vectors::{
    compute, fixed_time, MemReader, ORIGIN, RECEIPT_INDEX, REGENERATE_VAR, SEED, TIME,
};

type TestResult = Result<(), Box<dyn Error>>;

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
