//! Races at scale: 10,000 attempts on one nonce over 64 connections run the
//! handler once; one approval raced across 1,000 nonces executes once; the
//! same for a handler without effects (`echo`, reserved and recorded in
//! one writer cycle): one executed entry for the nonce in the whole log;
//! appends running while proofs and an audit read never yield a proof that
//! fails to verify.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::SigningKey;
use openexec::core::approval::mint_v1;
use openexec::core::checkpoint::SignedCheckpoint;
use openexec::core::proof::{verify_consistency, TreeSize};
use openexec::core::receipt::verify_receipt;
use serde_json::{json, Value};

/// `total` requests spread over `connections` threads, each with its own
/// keep-alive connection; returns (status, body) of every response.
fn hammer(
    base: &str,
    connections: usize,
    total: usize,
    body: impl Fn(usize) -> Value + Sync,
) -> Vec<(u16, Value)> {
    std::thread::scope(|scope| {
        let body = &body;
        let handles: Vec<_> = (0..connections)
            .map(|c| {
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(60))
                        .max_idle_connections(1)
                        .build();
                    (c..total)
                        .step_by(connections)
                        .map(
                            |i| match agent.post(&format!("{base}/execute")).send_json(body(i)) {
                                Ok(r) => (r.status(), r.into_json().unwrap()),
                                Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
                                Err(e) => panic!("transport: {e}"),
                            },
                        )
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

#[test]
fn ten_thousand_attempts_on_one_nonce_over_64_connections_run_once() {
    let s = common::server::start(&[]);
    let results = hammer(
        &s.base,
        64,
        10_000,
        |_| json!({"action": "counter", "payload": {"name": "race10k"}, "nonce": "one-nonce"}),
    );
    assert_eq!(results.len(), 10_000);
    let executed = results
        .iter()
        .filter(|(_, r)| r["outcome"] == "executed")
        .count();
    assert_eq!(executed, 1);
    for (status, r) in &results {
        match status {
            200 => assert_eq!(r["result"]["value"], 1),
            409 => assert_eq!(r["code"], "nonce_in_flight"),
            // Past the per-client limit on recorded rejections.
            429 => assert_eq!(r["code"], "rate_limited"),
            other => panic!("unexpected {other}: {r}"),
        }
    }
    let (_, r) = s
        .execute(&json!({"action": "counter", "payload": {"name": "race10k"}, "nonce": "another"}));
    assert_eq!(r["result"]["value"], 2, "the counter moved once");
}

/// Every entry of the log, parsed.
fn all_entries(s: &common::server::TestServer) -> Vec<Value> {
    let (_, health) = s.get_json("/health");
    let size = health["ledger"]["size"].as_u64().unwrap();
    (0..size)
        .step_by(1000)
        .flat_map(|start| {
            let end = (start + 1000).min(size);
            let (status, page) = s.get_json(&format!("/ledger/entries?start={start}&end={end}"));
            assert_eq!(status, 200, "{page}");
            page["entries"].as_array().unwrap().clone()
        })
        .map(|e| serde_json::from_str(e["entry"].as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn attempts_raced_on_one_nonce_of_a_handler_without_effects_record_one_execution() {
    let s = common::server::start(&[]);
    let body = json!({"action": "echo", "payload": {"n": 1}, "nonce": "echo-nonce"});
    let results = hammer(&s.base, 64, 2_000, |_| body.clone());
    let executed: Vec<&Value> = results
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r["outcome"] == "executed")
        .collect();
    assert_eq!(executed.len(), 1, "one attempt wins the nonce");
    let winner = executed[0]["exec_id"].clone();
    for (status, r) in &results {
        match status {
            // The winner, or a replay naming it, with its result.
            200 => {
                assert_eq!(r["exec_id"], winner, "{r}");
                assert_eq!(r["result"], json!({"echo": {"n": 1}}));
            }
            409 => assert_eq!(r["code"], "nonce_in_flight"),
            429 => assert_eq!(r["code"], "rate_limited"),
            other => panic!("unexpected {other}: {r}"),
        }
    }
    // The log holds one executed entry for the nonce; every other entry
    // for it is a rejection or a replay, none carries a result of its own.
    let entries = all_entries(&s);
    let of_nonce: Vec<&Value> = entries
        .iter()
        .filter(|e| e["nonce"] == "echo-nonce")
        .collect();
    assert_eq!(
        of_nonce
            .iter()
            .filter(|e| e["outcome"] == "executed")
            .count(),
        1
    );
    assert!(of_nonce
        .iter()
        .all(|e| ["executed", "rejected", "replayed"].contains(&e["outcome"].as_str().unwrap())));
}

#[test]
fn one_approval_raced_across_1000_nonces_executes_once() {
    approval_raced_across_nonces("counter", &json!({"name": "race1000"}));
}

#[test]
fn one_approval_for_a_handler_without_effects_raced_across_1000_nonces_executes_once() {
    approval_raced_across_nonces("echo", &json!({"msg": "race1000"}));
}

fn approval_raced_across_nonces(action: &str, payload: &Value) {
    let key = SigningKey::from_bytes(&[31; 32]);
    let pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    // 999 rejections from one address: lift the limits on recording them.
    let s = common::server::start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem),
        ("CLAWSHIELD_TENANT_ID", "t"),
        ("OPENEXEC_REJECT_RATE", "0"),
        ("OPENEXEC_REJECT_GLOBAL_RATE", "0"),
    ]);
    let art = serde_json::to_value(mint_v1(
        &key,
        "ap-1000",
        "t",
        action,
        payload,
        Utc::now(),
        chrono::Duration::seconds(600),
    ))
    .unwrap();
    let results = hammer(
        &s.base,
        64,
        1000,
        |i| json!({"action": action, "payload": payload, "nonce": format!("n-{i}"), "approval_artifact": art}),
    );
    assert_eq!(results.iter().filter(|(st, _)| *st == 200).count(), 1);
    assert!(results
        .iter()
        .filter(|(st, _)| *st != 200)
        .all(|(st, r)| *st == 403 && r["code"] == "approval_reused"));
}

#[test]
fn proofs_and_an_audit_read_correctly_while_appends_run() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(dir.path());
    for n in 0..50 {
        ledger.append(common::draft(n), None).unwrap();
    }
    let done = AtomicBool::new(false);
    let next = AtomicU64::new(1_000_000);
    let checked = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..150 {
                    ledger
                        .append(common::draft(next.fetch_add(1, Ordering::Relaxed)), None)
                        .unwrap();
                }
            });
        }
        for r in 0..2u64 {
            let (ledger, done, checked) = (&ledger, &done, &checked);
            scope.spawn(move || {
                let mut i = r;
                // The checkpoint of the receipt verified before this one.
                let mut previous: Option<SignedCheckpoint> = None;
                while !done.load(Ordering::Relaxed) {
                    let head = ledger.head().size;
                    let receipt = ledger.receipt(i % head).unwrap();
                    let verified = verify_receipt(&receipt, ledger.verifier(), None).unwrap();
                    let new = &verified.checkpoint;
                    // An older checkpoint is a prefix of the latest one.
                    if let Some(old) = &previous {
                        assert!(old.size() <= new.size());
                        let proof = ledger.consistency_proof(old.size(), new.size()).unwrap();
                        verify_consistency(
                            &proof,
                            TreeSize(old.size()),
                            TreeSize(new.size()),
                            &old.root(),
                            &new.root(),
                        )
                        .unwrap();
                    }
                    previous = Some(new.clone());
                    checked.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                }
            });
        }
        scope.spawn(|| {
            assert_eq!(
                common::full_audit(ledger.store().unwrap()),
                None,
                "a live audit sees a consistent prefix"
            );
        });
        // Stop the readers once the writers are done.
        scope.spawn(|| {
            while ledger.head().size < 650 {
                std::thread::sleep(Duration::from_millis(5));
            }
            done.store(true, Ordering::Relaxed);
        });
    });
    assert_eq!(ledger.head().size, 650);
    assert!(
        checked.load(Ordering::Relaxed) > 10,
        "readers ran concurrently"
    );
}
