//! OpenExec v2 approvals over HTTP: nonce binding, single use by id, key
//! rotation (several trusted keys at once), unknown keys.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use chrono::{Duration, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::SigningKey;
use openexec::core::approval::mint_v2;
use openexec::core::canonical::request_hash;
use serde_json::{json, Value};

fn pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap()
}

fn approve(key: &SigningKey, id: &str, action: &str, payload: &Value, nonce: &str) -> Value {
    let rh = request_hash(action, payload, nonce, "acme").unwrap();
    serde_json::to_value(mint_v2(key, id, "acme", &rh, Utc::now(), Duration::seconds(120)).unwrap())
        .unwrap()
}

#[test]
fn v2_approvals_bind_the_nonce_are_single_use_and_rotate() {
    let old = SigningKey::from_bytes(&[21; 32]);
    let new = SigningKey::from_bytes(&[22; 32]);
    let keys = format!("{}{}", pem(&old), pem(&new));
    let s = common::server::start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &keys),
        ("CLAWSHIELD_TENANT_ID", "acme"),
    ]);
    let p = json!({"to": "ops@example.com"});

    // Both trusted keys work.
    for (key, nonce) in [(&old, "v2-1"), (&new, "v2-2")] {
        let art = approve(key, &format!("id-{nonce}"), "echo", &p, nonce);
        let (status, r) = s.execute(
            &json!({"action": "echo", "payload": p, "nonce": nonce, "approval_artifact": art}),
        );
        assert_eq!(
            (status, r["outcome"].as_str()),
            (200, Some("executed")),
            "{r}"
        );
    }
    // An approval for one nonce does not run under another.
    let art = approve(&new, "id-v2-3", "echo", &p, "v2-3");
    let (status, r) = s.execute(
        &json!({"action": "echo", "payload": p, "nonce": "v2-4", "approval_artifact": art}),
    );
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("approval_hash_mismatch"))
    );
    // A second approval reusing an id already consumed is refused.
    let again = approve(&new, "id-v2-2", "echo", &p, "v2-5"); // ids are scoped per approver key
    let (status, r) = s.execute(
        &json!({"action": "echo", "payload": p, "nonce": "v2-5", "approval_artifact": again}),
    );
    assert_eq!((status, r["code"].as_str()), (403, Some("approval_reused")));
    // An untrusted key is refused.
    let stranger = SigningKey::from_bytes(&[23; 32]);
    let art = approve(&stranger, "id-v2-6", "echo", &p, "v2-6");
    let (status, r) = s.execute(
        &json!({"action": "echo", "payload": p, "nonce": "v2-6", "approval_artifact": art}),
    );
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("approval_signature_invalid"))
    );
    // A malformed v2 artifact (unknown field) is a 422, recorded.
    let mut bad = approve(&new, "id-v2-7", "echo", &p, "v2-7");
    bad["extra"] = json!(1);
    let (status, r) = s.execute(
        &json!({"action": "echo", "payload": p, "nonce": "v2-7", "approval_artifact": bad}),
    );
    assert_eq!(
        (status, r["code"].as_str(), r["outcome"].as_str()),
        (422, Some("approval_malformed"), Some("rejected"))
    );
}

#[test]
fn one_v2_approval_raced_on_its_nonce_executes_once() {
    let key = SigningKey::from_bytes(&[24; 32]);
    let pem = pem(&key);
    let s = common::server::start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem),
        ("CLAWSHIELD_TENANT_ID", "acme"),
    ]);
    let p = json!({"name": "v2race"});
    let art = approve(&key, "id-race", "counter", &p, "race-nonce");
    let body =
        json!({"action": "counter", "payload": p, "nonce": "race-nonce", "approval_artifact": art});
    let results: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..64).map(|_| scope.spawn(|| s.execute(&body))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results
            .iter()
            .filter(|(_, r)| r["outcome"] == "executed")
            .count(),
        1
    );
    assert!(results
        .iter()
        .all(|(st, r)| (*st == 200 && r["result"]["value"] == 1) || *st == 409));
}
