//! One test per flaw of the original service (ORIGINAL.md §6, A1–A4 and
//! B1–B13): each asserts the behaviour the original got wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::collections::HashMap;

use chrono::{Duration, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::SigningKey;
use openexec::core::approval::mint_v1;
use openexec::core::entry::{Entry, Outcome};
use openexec::core::hash::Hash;
use openexec::core::proof::{verify_consistency, TreeSize};
use openexec::core::receipt::{verify_receipt, Receipt};
use serde_json::{json, Value};

use common::server::{refuses, start, start_in, TestServer};

fn pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap()
}

fn clawshield(key: &SigningKey) -> TestServer {
    let pem = pem(key);
    start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem),
        ("CLAWSHIELD_TENANT_ID", "t1"),
    ])
}

fn v1(key: &SigningKey, id: &str, tenant: &str, action: &str, payload: &Value) -> Value {
    serde_json::to_value(mint_v1(
        key,
        id,
        tenant,
        action,
        payload,
        Utc::now(),
        Duration::seconds(300),
    ))
    .unwrap()
}

/// Verifies a response's receipt offline against the server's key and returns its entry.
fn verified_entry(s: &TestServer, response: &Value) -> Entry {
    let receipt: Receipt =
        serde_json::from_value(response["receipt"].clone()).expect("receipt object");
    verify_receipt(&receipt, &s.verifier(), None)
        .expect("receipt verifies")
        .entry
}

/// Sends `n` requests at once from `n` threads.
fn race(s: &TestServer, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .into_iter()
            .map(|b| scope.spawn(move || s.execute(&b)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn a1_one_approval_runs_once_across_nonces() {
    let key = SigningKey::from_bytes(&[11; 32]);
    let s = clawshield(&key);
    let payload = json!({"name": "a1"});
    let art = v1(&key, "ap-a1", "t1", "counter", &payload);
    let statuses: Vec<u16> = ["csA", "csB", "csC"]
        .iter()
        .map(|n| s.execute(&json!({"action": "counter", "payload": payload, "nonce": n, "approval_artifact": art})).0)
        .collect();
    assert_eq!(statuses, [200, 403, 403]);
    let (_, r) = s.execute(
        &json!({"action": "counter", "payload": payload, "nonce": "csD", "approval_artifact": art}),
    );
    assert_eq!(r["code"], "approval_reused");
}

/// Single use outlives the process: approvals consumed by a handler with
/// effects (`counter`, reserved before it runs) and by one without
/// (`echo`, claimed with its entry) stay consumed while it runs, across a
/// `kill -9` and across a clean restart — the store keeps them in
/// `approvals.tab`, confirmed against the entries that consumed them.
#[test]
fn a1_consumed_approvals_stay_consumed_across_restarts_and_crashes() {
    let key = SigningKey::from_bytes(&[14; 32]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pem = pem(&key);
    let env = [
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", pem.as_str()),
        ("CLAWSHIELD_TENANT_ID", "t1"),
    ];
    let counter = json!({"name": "a1-restart"});
    let echo = json!({"msg": "a1-restart"});
    let approvals = [
        (
            "counter",
            &counter,
            v1(&key, "ap-counter", "t1", "counter", &counter),
        ),
        ("echo", &echo, v1(&key, "ap-echo", "t1", "echo", &echo)),
    ];
    let mut s = start_in(&data, &env).unwrap();
    for (action, payload, art) in &approvals {
        let (status, r) = s.execute(&json!({"action": action, "payload": payload, "nonce": format!("{action}-0"), "approval_artifact": art}));
        assert_eq!(status, 200, "{r}");
    }
    let reuse = |s: &TestServer, round: &str| {
        for (action, payload, art) in &approvals {
            let (status, r) = s.execute(&json!({"action": action, "payload": payload, "nonce": format!("{action}-{round}"), "approval_artifact": art}));
            assert_eq!(
                (status, r["code"].as_str()),
                (403, Some("approval_reused")),
                "{action} after {round}: {r}"
            );
        }
    };
    reuse(&s, "live");
    // SIGKILL right after, before the tables' periodic sync: the next start
    // recovers as after a crash. (A kill keeps the OS page cache; losing
    // the table's unsynced slots is covered by the store's tests, which
    // open crash images and stores whose table was lost.)
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let mut s = start_in(&data, &env).unwrap();
    reuse(&s, "crash");
    s.stop();
    let s = start_in(&data, &env).unwrap();
    reuse(&s, "restart");
}

#[test]
fn a1_one_approval_raced_across_100_nonces_executes_once() {
    let key = SigningKey::from_bytes(&[12; 32]);
    let s = clawshield(&key);
    let payload = json!({"name": "race100"});
    let art = v1(&key, "ap-race", "t1", "counter", &payload);
    let bodies = (0..100).map(|i| json!({"action": "counter", "payload": payload, "nonce": format!("r-{i}"), "approval_artifact": art})).collect();
    let results = race(&s, bodies);
    let executed: Vec<_> = results.iter().filter(|(st, _)| *st == 200).collect();
    assert_eq!(executed.len(), 1, "exactly one execution");
    assert_eq!(executed[0].1["result"]["value"], 1);
    assert!(results
        .iter()
        .filter(|(st, _)| *st != 200)
        .all(|(st, r)| *st == 403 && r["code"] == "approval_reused"));
}

#[test]
fn a2_200_concurrent_requests_on_one_nonce_run_the_handler_once() {
    let s = start(&[]);
    let body = json!({"action": "counter", "payload": {"name": "a2"}, "nonce": "same-nonce"});
    let results = race(&s, vec![body; 200]);
    let mut by_outcome: HashMap<String, usize> = HashMap::new();
    for (status, r) in &results {
        *by_outcome
            .entry(format!("{status}/{}", r["outcome"].as_str().unwrap_or("?")))
            .or_default() += 1;
        if *status == 200 {
            assert_eq!(
                r["result"]["value"], 1,
                "every success shows the one execution"
            );
        } else {
            assert_eq!(
                (*status, r["code"].as_str()),
                (409, Some("nonce_in_flight"))
            );
        }
    }
    assert_eq!(by_outcome.get("200/executed"), Some(&1), "{by_outcome:?}");
    // The counter moved exactly once: the next increment gives 2.
    let (_, r) =
        s.execute(&json!({"action": "counter", "payload": {"name": "a2"}, "nonce": "other-nonce"}));
    assert_eq!(r["result"]["value"], 2);
}

#[test]
fn a3_a_non_loopback_bind_is_refused_and_the_default_is_loopback() {
    let stderr = refuses(&[("OPENEXEC_BIND", "0.0.0.0:0")]);
    assert!(
        stderr.contains("refusing to bind to non-loopback address"),
        "{stderr}"
    );
    let s = start(&[]);
    assert!(s.base.starts_with("http://127.0.0.1:"));
}

#[test]
fn a4_payloads_need_not_be_stored_in_clear() {
    let mut s = start(&[("OPENEXEC_STORE_CONTENT", "false")]);
    let secret = "card-4111-1111-1111-1111";
    let (status, r) =
        s.execute(&json!({"action": "echo", "payload": {"secret": secret}, "nonce": "a4"}));
    assert_eq!(status, 200);
    assert!(
        r["receipt"]["salts"].is_null(),
        "no salts kept means no opening kept"
    );
    let data = s.data.clone();
    s.stop();
    let mut found = false;
    for entry in walk(&data) {
        let bytes = std::fs::read(&entry).unwrap();
        found |= bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
    }
    assert!(!found, "the secret payload is on disk in clear");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn b1_every_rejection_is_recorded_with_a_verifiable_receipt() {
    let key = SigningKey::from_bytes(&[13; 32]);
    let pem = pem(&key);
    let s = start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem),
        ("CLAWSHIELD_TENANT_ID", "t1"),
        ("OPENEXEC_ALLOWED_ACTIONS", "echo,add,nope"),
    ]);
    let cases = [
        (
            json!({"action": "counter", "payload": {"name": "x"}, "nonce": "b1-1"}),
            403,
            "action_not_allowed",
        ),
        (
            json!({"action": "nope", "nonce": "b1-2"}),
            400,
            "unknown_action",
        ),
        (
            json!({"action": "echo", "nonce": "b1-3"}),
            403,
            "approval_missing",
        ),
        (
            json!({"action": "add", "payload": {"a": "x"}, "nonce": "b1-4", "approval_artifact": v1(&key, "ap-b1", "t1", "add", &json!({"a": "x"}))}),
            400,
            "invalid_payload",
        ),
    ];
    for (i, (body, status, code)) in cases.iter().enumerate() {
        let (st, r) = s.execute(body);
        assert_eq!(
            (st, r["code"].as_str()),
            (*status, Some(*code)),
            "case {i}: {r}"
        );
        let entry = verified_entry(&s, &r);
        assert_eq!(
            (entry.outcome, entry.reason.as_str()),
            (Outcome::Rejected, *code)
        );
        assert_eq!(entry.index, u64::try_from(i).unwrap());
    }
    let (_, h) = s.get_json("/health");
    assert_eq!(h["ledger"]["size"], 4);
}

#[test]
fn b2_an_invented_execution_is_not_valid() {
    let s = start(&[]);
    let exec_id = "00000000-0000-4000-8000-000000000000";
    let result = r#"{"sum": 1000000}"#;
    let forged = hex::encode(Hash::sha256(format!("{exec_id}:{result}").as_bytes()).as_bytes());
    let (status, v) = s.post_json(
        "/receipts/verify",
        &json!({"exec_id": exec_id, "result": result, "receipt": forged}),
    );
    assert_eq!((status, &v["valid"]), (200, &json!(false)));
    // And a real one with a changed result is not valid either.
    let (_, r) = s.execute(&json!({"action": "add", "payload": {"a": 1, "b": 2}, "nonce": "b2"}));
    let fake = r#"{"sum": 4}"#;
    let hash = hex::encode(
        Hash::sha256(format!("{}:{fake}", r["id"].as_str().unwrap()).as_bytes()).as_bytes(),
    );
    let (_, v) = s.post_json(
        "/receipts/verify",
        &json!({"exec_id": r["id"], "result": fake, "receipt": hash}),
    );
    assert_eq!(v["valid"], false);
    // The full receipt object verifies.
    let (_, v) = s.post_json("/receipts/verify", &json!({"receipt": r["receipt"]}));
    assert_eq!(v["valid"], true);
}

#[test]
fn b3_the_ledger_is_append_only_with_proofs() {
    let s = start(&[]);
    let (_, first) = s.execute(&json!({"action": "echo", "nonce": "b3-1"}));
    let old_cp = first["receipt"]["checkpoint"].as_str().unwrap().to_owned();
    for i in 2..6 {
        s.execute(&json!({"action": "echo", "nonce": format!("b3-{i}")}));
    }
    let (_, proof) = s.get_json("/ledger/proof/consistency?from=1&to=5");
    let (_, latest) = s.get("/ledger/checkpoint");
    let v = s.verifier();
    let old = openexec::core::checkpoint::SignedCheckpoint::open(old_cp.as_bytes(), &v).unwrap();
    let new = openexec::core::checkpoint::SignedCheckpoint::open(latest.as_bytes(), &v).unwrap();
    let hashes: Vec<Hash> = serde_json::from_value(proof["hashes"].clone()).unwrap();
    verify_consistency(
        &hashes,
        TreeSize(old.size()),
        TreeSize(new.size()),
        &old.root(),
        &new.root(),
    )
    .unwrap();
    let (_, fresh) = s.get_json(&format!("/receipts/{}", first["id"].as_str().unwrap()));
    let receipt: Receipt = serde_json::from_value(fresh).unwrap();
    assert_eq!(receipt.inclusion_proof.tree_size, 5);
    verify_receipt(&receipt, &v, None).unwrap();
    let (status, _) = s.get_json("/receipts/no-such-id");
    assert_eq!(status, 404);
}

#[test]
fn b4_a_reused_nonce_with_another_request_is_a_conflict() {
    let s = start(&[]);
    s.execute(&json!({"action": "echo", "payload": {"x": 1}, "nonce": "b4"}));
    let (status, r) = s.execute(&json!({"action": "add", "payload": {"a": 1}, "nonce": "b4"}));
    assert_eq!((status, r["code"].as_str()), (422, Some("nonce_conflict")));
    assert!(r.get("result").is_none());
}

#[test]
fn b5_replays_are_authorized_again() {
    let key = SigningKey::from_bytes(&[15; 32]);
    let pem = pem(&key);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", pem.as_str()),
        ("CLAWSHIELD_TENANT_ID", "t1"),
    ];
    let mut s = start_in(&data, &env).unwrap();
    let payload = json!({"msg": "secret result"});
    let art = v1(&key, "ap-b5", "t1", "echo", &payload);
    let body =
        json!({"action": "echo", "payload": payload, "nonce": "b5", "approval_artifact": art});
    assert_eq!(s.execute(&body).0, 200);
    // Without an approval the replay is refused, and the result is not shown.
    let (status, r) = s.execute(&json!({"action": "echo", "payload": payload, "nonce": "b5"}));
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("approval_missing"))
    );
    assert!(r.get("result").is_none());
    // With the approval it replays.
    let (status, r) = s.execute(&body);
    assert_eq!((status, &r["replayed"]), (200, &json!(true)));
    s.stop();
    // After the action leaves the allow-list, the replay is refused.
    let mut env2 = env.to_vec();
    env2.push(("OPENEXEC_ALLOWED_ACTIONS", "add"));
    let s = start_in(&data, &env2).unwrap();
    let (status, r) = s.execute(&body);
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("action_not_allowed"))
    );
}

#[test]
fn b7_v1_tenant_ambiguity_is_closed() {
    let key = SigningKey::from_bytes(&[16; 32]);
    let s = clawshield(&key); // tenant t1
    let payload = json!({});
    // Move "t" from tenant "t1" into the approval id: same signed bytes.
    let mut art = v1(&key, "ap", "t1", "echo", &payload);
    art["approval_id"] = json!("apt");
    art["tenant_id"] = json!("1");
    let (status, r) =
        s.execute(&json!({"action": "echo", "nonce": "b7", "approval_artifact": art}));
    assert_eq!((status, r["code"].as_str()), (403, Some("tenant_mismatch")));
    // Without a configured tenant, v1 artifacts are not accepted at all.
    let pem = pem(&key);
    let s = start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem),
    ]);
    let (status, r) =
        s.execute(&json!({"action": "echo", "nonce": "b7b", "approval_artifact": art}));
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("approval_v1_needs_tenant"))
    );
}

#[test]
fn b8_zoned_timestamps_are_accepted_and_lifetimes_bounded() {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let key = SigningKey::from_bytes(&[17; 32]);
    let s = clawshield(&key);
    let payload = json!({});
    let sign = |issued: String, expires: String, id: &str| {
        let hash = openexec::core::approval::v1_action_hash("echo", &payload);
        let msg = format!("{id}t1{hash}{issued}{expires}");
        json!({"approval_id": id, "tenant_id": "t1", "action_hash": hash, "issued_at": issued, "expires_at": expires,
               "signature": base64::engine::general_purpose::STANDARD.encode(key.sign(msg.as_bytes()).to_bytes())})
    };
    let now = Utc::now();
    let z = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let art = sign(z(now), z(now + Duration::seconds(300)), "b8-z");
    let (status, _) =
        s.execute(&json!({"action": "echo", "nonce": "b8", "approval_artifact": art}));
    assert_eq!(status, 200, "a 'Z' timestamp is a valid time, not a 500");
    let art = sign(z(now), z(now + Duration::days(30)), "b8-long");
    let (status, r) =
        s.execute(&json!({"action": "echo", "nonce": "b8-2", "approval_artifact": art}));
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("approval_lifetime_too_long"))
    );
    let art = sign(
        z(now + Duration::hours(1)),
        z(now + Duration::hours(1) + Duration::seconds(60)),
        "b8-future",
    );
    let (status, r) =
        s.execute(&json!({"action": "echo", "nonce": "b8-3", "approval_artifact": art}));
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("approval_not_yet_valid"))
    );
}

#[test]
fn b9_loose_base64_is_refused() {
    let key = SigningKey::from_bytes(&[18; 32]);
    let s = clawshield(&key);
    let mut art = v1(&key, "ap-b9", "t1", "echo", &json!({}));
    let sig = art["signature"].as_str().unwrap().to_owned();
    art["signature"] = json!(format!("{}!!{}", &sig[..10], &sig[10..]));
    let (status, r) =
        s.execute(&json!({"action": "echo", "nonce": "b9", "approval_artifact": art}));
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("approval_signature_invalid"))
    );
}

#[test]
fn b10_misconfiguration_refuses_to_start_with_one_line() {
    for (env, needle) in [
        (vec![("OPENEXEC_MODE", "clawshild")], "Unknown mode"),
        (
            vec![
                ("OPENEXEC_MODE", "clawshield"),
                (
                    "CLAWSHIELD_PUBLIC_KEY",
                    "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
                ),
            ],
            "not an Ed25519 public key",
        ),
        (
            vec![("OPENEXEC_DB_URL", "sqlite:///openexec.db")],
            "unsupported OPENEXEC_DB_URL",
        ),
        (
            vec![("OPENEXEC_MAX_BODY_BYTES", "1000000")],
            "exceeds 65536",
        ),
    ] {
        let stderr = refuses(&env);
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn b11_openai_function_arguments_string_is_accepted() {
    let s = start(&[]);
    let (status, r) = s.execute(
        &json!({"action": "echo", "payload": "{\"msg\": \"from arguments\"}", "nonce": "b11"}),
    );
    assert_eq!(
        (status, &r["result"]["echo"]["msg"]),
        (200, &json!("from arguments"))
    );
}

#[test]
fn b12_replays_and_rejections_are_distinguishable() {
    let s = start(&[]);
    let body = json!({"action": "echo", "nonce": "b12"});
    let (_, first) = s.execute(&body);
    let (_, again) = s.execute(&body);
    assert_eq!(
        (first["replayed"].as_bool(), again["replayed"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(again["outcome"], "replayed");
    let replay_entry = verified_entry(&s, &again);
    assert_eq!(replay_entry.outcome, Outcome::Replayed);
    // The replay entry names the original execution, and looking that
    // execution up still finds the original entry.
    assert_eq!(replay_entry.exec_id, first["id"].as_str().unwrap());
    let (_, original) = s.get_json(&format!("/receipts/{}", first["id"].as_str().unwrap()));
    let original: Receipt = serde_json::from_value(original).unwrap();
    assert_eq!(
        Entry::from_canonical_bytes(original.entry.as_bytes())
            .unwrap()
            .outcome,
        Outcome::Executed
    );
    let (_, rejected) = s.execute(&json!({"action": "nope", "nonce": "b12-x"}));
    assert_eq!(
        (rejected["approved"].as_bool(), rejected["outcome"].as_str()),
        (Some(false), Some("rejected"))
    );
}

#[test]
fn b13_nonces_and_bodies_are_bounded() {
    let s = start(&[]);
    let (status, r) = s.execute(&json!({"action": "echo", "nonce": "n".repeat(129)}));
    assert_eq!((status, r["code"].as_str()), (422, Some("invalid_nonce")));
    let big = json!({"action": "echo", "nonce": "big", "payload": {"x": "y".repeat(70_000)}});
    let (status, r) = s.execute(&big);
    assert_eq!((status, r["code"].as_str()), (413, Some("body_too_large")));
    let (status, r) = s.post_raw("/execute", "text/plain", b"{}");
    assert_eq!(
        (status, r["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
}

#[test]
fn a_failed_handler_is_recorded_and_consumes_its_nonce() {
    let s = start(&[]);
    // i64::MAX itself is not I-JSON (it reads as 2^63); this integer is,
    // reaches `add` as an i64, and overflows when 1000 is added.
    let body = json!({"action": "add", "payload": {"a": 9_223_372_036_854_775_000_i64, "b": 1000}, "nonce": "f1"});
    let (status, r) = s.execute(&body);
    assert_eq!(
        (status, r["outcome"].as_str(), r["code"].as_str()),
        (500, Some("failed"), Some("handler_error"))
    );
    assert_eq!(verified_entry(&s, &r).outcome, Outcome::Failed);
    let (status, r) = s.execute(&body);
    assert_eq!(
        (status, r["replayed"].as_bool()),
        (500, Some(true)),
        "a failed attempt is not re-run"
    );
}

#[test]
fn demo_mode_ignores_an_unverified_artifacts_tenant() {
    let s = start(&[]);
    let art = json!({"approval_id": "x", "tenant_id": "someone-else", "action_hash": "", "issued_at": "", "expires_at": "", "signature": ""});
    let (status, r) =
        s.execute(&json!({"action": "echo", "nonce": "dt", "approval_artifact": art}));
    assert_eq!(status, 200);
    assert_eq!(verified_entry(&s, &r).tenant, "");
}

#[test]
fn b13_rejected_attempts_per_client_are_rate_limited_and_not_recorded_past_the_limit() {
    let s = start(&[
        ("OPENEXEC_REJECT_RATE", "0.5"),
        ("OPENEXEC_REJECT_BURST", "5"),
    ]);
    let statuses: Vec<u16> = (0..10)
        .map(|i| {
            s.execute(&json!({"action": "nope", "nonce": format!("spam-{i}")}))
                .0
        })
        .collect();
    assert_eq!(&statuses[..5], &[400; 5]);
    assert!(statuses[5..].iter().all(|&st| st == 429), "{statuses:?}");
    let (_, h) = s.get_json("/health");
    assert_eq!(
        h["ledger"]["size"], 5,
        "refused rejections are not recorded"
    );
    // Legitimate executions are not limited.
    let (status, _) = s.execute(&json!({"action": "echo", "nonce": "after-spam"}));
    assert_eq!(status, 200);
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains("openexec_rate_limited_total 5"),
        "{metrics}"
    );
}
