//! Fuzzing harnesses: one function per fuzz target, each feeding arbitrary
//! bytes to a parser or verifier of the core and asserting the properties
//! that must hold for *every* input (no panic; strict decoders round-trip;
//! Merkle verification agrees with the naive reference). The targets in
//! `fuzz/` are one line each; unit tests run these on seed inputs.

use serde_json::Value;

use super::approval::{self, ApprovalPolicy, ApproverKey, Artifact, RequestRef};
use super::canonical::to_canonical_bytes;
use super::checkpoint::SignedCheckpoint;
use super::cosignature::{
    count_cosignatures, verified_cosignatures, with_cosignatures, WitnessSigner,
};
use super::entry::Entry;
use super::hash::{leaf_hash, Hash};
use super::policy::Policy;
use super::proof::{reference, verify_consistency, verify_inclusion, LeafIndex, TreeSize};
use super::receipt::{verify_receipt, Receipt};
use super::request::{parse_execute, Limits};
use super::signing::{LogSigner, LogVerifier};
use super::tlog_proof;
use super::witness::{check_add_checkpoint, check_pulled, AddCheckpoint};

fn verifier() -> LogVerifier {
    // A fixed key: fuzzing explores the parser, not the key space.
    LogSigner::from_seed("fuzz.example/log", [7; 32])
        .map(|s| s.verifier())
        .unwrap_or_else(|_| unreachable!())
}

/// Receipt JSON and tlog-proof text: parsing and verification never panic,
/// and an imported tlog-proof exports back to the same text.
pub fn receipt(data: &[u8]) {
    let v = verifier();
    if let Ok(r) = serde_json::from_slice::<Receipt>(data) {
        let _ = verify_receipt(&r, &v, None);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = tlog_proof::import(text) {
            let _ = verify_receipt(&r, &v, None);
            assert_eq!(
                tlog_proof::export(&r).ok().as_deref(),
                Some(text),
                "tlog-proof round trip"
            );
        }
    }
}

/// Signed-note checkpoints: opening never panics.
pub fn checkpoint(data: &[u8]) {
    let _ = SignedCheckpoint::open(data, &verifier());
}

/// Entries: strict decoding round-trips exactly.
pub fn entry(data: &[u8]) {
    if let Ok(e) = Entry::from_canonical_bytes(data) {
        assert_eq!(
            e.to_canonical_bytes().ok().as_deref(),
            Some(data),
            "entry round trip"
        );
    }
}

/// `/execute` bodies: parsing never panics and accepted requests satisfy
/// the documented limits.
pub fn execute_request(data: &[u8]) {
    if let Ok(r) = parse_execute(data, &Limits::default()) {
        assert!(super::request::is_action_name(&r.action) && super::request::is_nonce(&r.nonce));
        assert!(r.payload.is_object());
        // The handler's value is the canonical value of what was sent, and
        // a fixed point of canonicalization.
        let canonical = super::canonical::canonical_value(&r.payload_as_sent).ok();
        assert_eq!(canonical.as_ref(), Some(&r.payload), "handler value");
        let again = super::canonical::canonical_value(&r.payload).ok();
        assert_eq!(again.as_ref(), Some(&r.payload), "canonical fixed point");
    }
}

/// Approval artifacts (v1 and v2): parsing and verification never panic.
pub fn approval(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(artifact) = Artifact::from_value(&value) else {
        return;
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let policy = ApprovalPolicy {
        keys: vec![ApproverKey::new(key.verifying_key())],
        tenant: Some("t".into()),
        max_lifetime: chrono::Duration::hours(1),
        skew: chrono::Duration::seconds(30),
    };
    let payload = serde_json::json!({});
    let rh = Hash::sha256(b"request");
    let req = RequestRef {
        action: "echo",
        payload: &payload,
        request_hash: &rh,
        tenant: Some("t"),
    };
    let _ = approval::verify(&artifact, req, &policy, chrono::DateTime::UNIX_EPOCH);
}

/// RFC 8785: canonical text parses back to a value with the same canonical text.
pub fn canonical(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(once) = to_canonical_bytes(&value) else {
        return;
    };
    let again: Value = serde_json::from_slice(&once).unwrap_or(Value::Null);
    assert_eq!(
        to_canonical_bytes(&again).ok(),
        Some(once),
        "canonical form is a fixed point"
    );
}

/// Merkle proofs: for a tree built from the input, the reference proofs
/// verify, and a proof with any one byte changed does not.
pub fn merkle(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 64) + 1;
    let leaves: Vec<Hash> = (0..n)
        .map(|i| leaf_hash(&[rest, &i.to_be_bytes()].concat()))
        .collect();
    let m = rest.first().map_or(0, |b| usize::from(*b)) % n;
    let root = reference::root(&leaves);
    let size = n as u64;
    let proof = reference::inclusion(m, &leaves);
    assert!(verify_inclusion(
        &proof,
        LeafIndex(m as u64),
        TreeSize(size),
        &leaves[m],
        &root
    )
    .is_ok());
    let old = m + 1;
    let cproof = reference::consistency(old, &leaves);
    let old_root = reference::root(&leaves[..old]);
    assert!(verify_consistency(
        &cproof,
        TreeSize(old as u64),
        TreeSize(size),
        &old_root,
        &root
    )
    .is_ok());
    if let (Some(first), Some(&flip)) = (proof.first(), rest.get(1)) {
        let mut bytes = *first.as_bytes();
        bytes[usize::from(flip) % 32] ^= 1 << (flip % 8);
        let mut bad = proof.clone();
        bad[0] = Hash::from_bytes(bytes);
        assert!(
            verify_inclusion(&bad, LeafIndex(m as u64), TreeSize(size), &leaves[m], &root).is_err()
        );
    }
}

/// A checkpoint of the fuzz log at size 3 (the witness state the
/// add-checkpoint harness checks requests against).
fn witnessed_state() -> Option<SignedCheckpoint> {
    let signer = LogSigner::from_seed("fuzz.example/log", [7; 32]).ok()?;
    let leaves: Vec<Hash> = (0..3u8).map(|i| leaf_hash(&[i])).collect();
    SignedCheckpoint::sign(&signer, 3, reference::root(&leaves)).ok()
}

/// tlog-witness add-checkpoint bodies and cosigned notes: parsing round
/// trips, and the witness rule, cosignature verification and merging never
/// panic; a note that merges keeps the count of cosignatures it verified.
pub fn witness(data: &[u8]) {
    let v = verifier();
    if let Ok(request) = AddCheckpoint::parse(data) {
        assert_eq!(request.to_bytes(), data, "add-checkpoint round trip");
        if let Ok(offered) = SignedCheckpoint::open(&request.checkpoint, &v) {
            let state = witnessed_state();
            let _ =
                check_add_checkpoint(state.as_ref(), request.old_size, &request.proof, &offered);
            let _ = check_pulled(state.as_ref(), &offered);
        }
    }
    let key = WitnessSigner::from_seed("fuzz.example/witness", [8; 32])
        .map(|w| w.verifier())
        .unwrap_or_else(|_| unreachable!());
    if let Ok(sigs) = verified_cosignatures(data, &v, std::slice::from_ref(&key)) {
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(merged) = with_cosignatures(text, &sigs) {
                assert!(
                    count_cosignatures(&merged) >= sigs.len(),
                    "merge kept cosignatures"
                );
            }
        }
    }
    let _ = count_cosignatures(&String::from_utf8_lossy(data));
}

/// tlog-policy files: parsing never panics, and a parsed policy checks
/// arbitrary notes without panicking.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::parse(text) {
        let _ = policy.check(data);
        if let Some(state) = witnessed_state() {
            let _ = policy.check(state.note_text().as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harnesses_accept_seeds_and_garbage() {
        let seeds: [&[u8]; 6] = [
            b"",
            b"{}",
            br#"{"action":"echo","payload":"{\"a\":1}","nonce":"n"}"#,
            b"c2sp.org/tlog-proof@v1\nextra e30=\nindex 0\n\nx\n",
            br#"{"format":"openexec-approval/v2","approval_id":"a","tenant":"t","request_hash":"","key_id":"","issued_at":"","expires_at":""}"#,
            &[0xff, 0x00, 0x7b, 0x22],
        ];
        for s in seeds {
            receipt(s);
            checkpoint(s);
            entry(s);
            execute_request(s);
            approval(s);
            canonical(s);
            merkle(s);
            witness(s);
            policy(s);
        }
        for n in 0..=255u8 {
            merkle(&[n, n.wrapping_mul(31), 3]);
        }
    }
}
