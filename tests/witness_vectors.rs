//! The witness formats against the C2SP vectors in `tests/vectors/c2sp/`:
//! tlog-cosignature lines and tlog-witness add-checkpoint bodies, through
//! the library's own code (`core::cosignature`, `core::witness`,
//! `core::policy`, `witness::Witness`). `c2sp_vectors.rs` checks the same
//! files with an independent verifier written in the test; this file
//! checks that our implementation produces and accepts exactly those bytes.
//!
//! The generated vectors are signed with TEST-ONLY keys whose seeds are
//! public: `SHA-256("openexec c2sp test key: " || label)` (see
//! `gen_c2sp_vectors.py`), so our witness can reproduce a cosignature
//! byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use sha2::{Digest as _, Sha256};

use openexec::core::checkpoint::{LogVerifier, SignedCheckpoint};
use openexec::core::cosignature::{verified_cosignatures, WitnessSigner, WitnessVerifier};
use openexec::core::policy::Policy;
use openexec::core::witness::{AddCheckpoint, Refusal};
use openexec::witness::{Witness, WitnessError, WitnessedLog};

fn read(rel: &str) -> String {
    let path = format!("{}/tests/vectors/c2sp/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn test_seed(label: &str) -> [u8; 32] {
    Sha256::digest(format!("openexec c2sp test key: {label}").as_bytes()).into()
}

fn log_key() -> LogVerifier {
    LogVerifier::from_vkey(read("generated/log.vkey").trim()).unwrap()
}

fn witness1() -> WitnessSigner {
    WitnessSigner::from_seed("witness1.openexec.example", test_seed("witness1")).unwrap()
}

#[test]
fn witness_keys_match_the_published_vkeys() {
    assert_eq!(
        witness1().verifier().vkey(),
        read("generated/witness1.vkey").trim()
    );
    let w2 = WitnessVerifier::from_vkey(read("generated/witness2.vkey").trim()).unwrap();
    assert_eq!(w2.name(), "witness2.openexec.example");
}

#[test]
fn our_cosignature_is_the_vector_byte_for_byte() {
    let cp = SignedCheckpoint::open(read("generated/checkpoint-13.note").as_bytes(), &log_key())
        .unwrap();
    let line = witness1()
        .cosign(cp.body().as_bytes(), 1_700_000_000)
        .unwrap();
    assert_eq!(line, read("generated/add-checkpoint-8-13.response"));
    // The signed message is the one the vector spells out.
    assert_eq!(
        openexec::core::cosignature::signed_message(1_700_000_000, cp.body().as_bytes()),
        read("generated/cosignature-witness1-13.msg").as_bytes()
    );
}

#[test]
fn the_cosigned_checkpoint_verifies_and_ignores_the_stranger() {
    let note = read("generated/checkpoint-13-cosigned.note");
    let keys = [
        WitnessVerifier::from_vkey(read("generated/witness1.vkey").trim()).unwrap(),
        WitnessVerifier::from_vkey(read("generated/witness2.vkey").trim()).unwrap(),
    ];
    let sigs = verified_cosignatures(note.as_bytes(), &log_key(), &keys).unwrap();
    let names: Vec<&str> = sigs.iter().map(signed_note::Signature::name).collect();
    assert_eq!(
        names,
        ["witness1.openexec.example", "witness2.openexec.example"]
    );
    // As a policy: 2 of 2 met; 2 of 2 with a third, absent witness in a 3-group not.
    let policy = |group: &str| {
        format!(
            "log {}\nwitness A {}\nwitness B {}\nwitness C {}\n{group}",
            read("generated/log.vkey").trim(),
            keys[0].vkey(),
            keys[1].vkey(),
            WitnessSigner::from_seed("c.example", [3; 32])
                .unwrap()
                .verifier()
                .vkey()
        )
    };
    let two = Policy::parse(&policy("group G 2 A B C\nquorum G\n")).unwrap();
    assert_eq!(two.check(note.as_bytes()).unwrap().witnesses, ["A", "B"]);
    let all = Policy::parse(&policy("group G all A B C\nquorum G\n")).unwrap();
    assert!(all.check(note.as_bytes()).is_err());
}

#[test]
fn the_spec_add_checkpoint_request_parses_and_round_trips() {
    let text = read("spec/tlog-witness-add-checkpoint.request");
    let request = AddCheckpoint::parse(text.as_bytes()).unwrap();
    assert_eq!(request.old_size, 20_852_014);
    assert_eq!(request.proof.len(), 4);
    assert!(request
        .checkpoint
        .starts_with(b"example.com/behind-the-sofa\n20852163\n"));
    assert_eq!(request.to_bytes(), text.as_bytes());
}

/// A real witness, its state at size 8, answers the 8 → 13 request with
/// exactly the vector's cosignature line; a stale `old` gets 409 with the
/// latest size; the 0 → 13 request is then a conflict too.
#[test]
fn a_witness_answers_the_vector_request_with_the_vector_response() {
    let dir = tempfile::tempdir().unwrap();
    let logs = vec![WitnessedLog {
        key: log_key(),
        urls: Vec::new(),
    }];
    let witness = Witness::open(dir.path(), witness1(), logs.clone()).unwrap();
    let first = AddCheckpoint {
        old_size: 0,
        proof: Vec::new(),
        checkpoint: read("generated/checkpoint-8.note").into_bytes(),
    };
    witness
        .add_checkpoint(&first, "test", 1_600_000_000)
        .unwrap();
    let request =
        AddCheckpoint::parse(read("generated/add-checkpoint-8-13.request").as_bytes()).unwrap();
    let line = witness
        .add_checkpoint(&request, "test", 1_700_000_000)
        .unwrap();
    assert_eq!(line, read("generated/add-checkpoint-8-13.response"));
    let stale =
        AddCheckpoint::parse(read("generated/add-checkpoint-0-13.request").as_bytes()).unwrap();
    match witness.add_checkpoint(&stale, "test", 1_700_000_001) {
        Err(WitnessError::Refused(r @ Refusal::StaleOldSize { latest: 13, .. })) => {
            assert_eq!(r.status(), 409);
        }
        other => panic!("expected 409, got {other:?}"),
    }
    // State persisted: a reopened witness knows size 13.
    drop(witness);
    let again = Witness::open(dir.path(), witness1(), logs).unwrap();
    assert_eq!(
        again.latest("openexec.example/test-log").unwrap().size(),
        13
    );
}

/// The tlog-cosignature spec's example: its witness line has our shape
/// (key id, timestamp 1679315147, 64-byte signature) and its signed message
/// is what `signed_message` builds from the note's body. (The spec
/// publishes no key, so the signature itself cannot be checked.)
#[test]
fn the_spec_cosignature_example_has_our_shape() {
    let note = read("spec/tlog-cosignature-example.note");
    let witness_line = note.lines().last().unwrap();
    let sig = signed_note::Signature::from_bytes(witness_line.as_bytes()).unwrap();
    assert_eq!(sig.name(), "witness.example.com/w1");
    assert_eq!(sig.id(), 0x8d66_cf3f);
    assert_eq!(
        openexec::core::cosignature::cosignature_timestamp(sig.signature()),
        Some(1_679_315_147)
    );
    let body = &note[..note.find("\n\n").unwrap() + 1];
    assert_eq!(
        openexec::core::cosignature::signed_message(1_679_315_147, body.as_bytes()),
        read("spec/tlog-cosignature-example.msg").as_bytes()
    );
    assert_eq!(openexec::core::cosignature::count_cosignatures(&note), 1);
}
