//! The original service's test suite (ORIGINAL.md §5), run against the real
//! server over HTTP on a loopback port with real sled storage.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use chrono::{Duration, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::SigningKey;
use openexec::core::approval::{mint_v1, v1_action_hash};
use openexec::core::hash::Hash;
use openexec::core::pyjson::{dumps_sorted, Separators};
use serde_json::{json, Value};

use common::server::{refuses, start};

fn public_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap()
}

fn clawshield_env(key: &SigningKey, tenant: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OPENEXEC_MODE", "clawshield".into()),
        ("CLAWSHIELD_PUBLIC_KEY", public_pem(key)),
        ("CLAWSHIELD_TENANT_ID", tenant.into()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn artifact(key: &SigningKey, tenant: &str, action: &str, payload: &Value, ttl_secs: i64) -> Value {
    let id = format!("ap-{}", rand_id());
    serde_json::to_value(mint_v1(
        key,
        &id,
        tenant,
        action,
        payload,
        Utc::now(),
        Duration::seconds(ttl_secs),
    ))
    .unwrap()
}

fn rand_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// 1–3
#[test]
fn health_version_ready() {
    let s = start(&[]);
    let (status, body) = s.get_json("/health");
    assert_eq!((status, body["status"].as_str()), (200, Some("healthy")));
    let (status, body) = s.get_json("/version");
    assert_eq!(status, 200);
    assert!(body["version"].is_string());
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    let (status, body) = s.get_json("/ready");
    assert_eq!((status, &body["ready"]), (200, &json!(true)));
}

// 4–6
#[test]
fn demo_flow_echo_replay_and_legacy_receipt() {
    let s = start(&[]);
    let (status, r) =
        s.execute(&json!({"action": "echo", "payload": {"msg": "hello"}, "nonce": "test-nonce-1"}));
    assert_eq!(status, 200);
    assert_eq!(r["action"], "echo");
    assert_eq!(r["result"]["echo"]["msg"], "hello");
    assert_eq!(r["approved"], true);
    assert!(r["receipt"].is_object());

    let body = json!({"action": "add", "payload": {"a": 2, "b": 3}, "nonce": "test-nonce-2"});
    let (_, first) = s.execute(&body);
    let (_, second) = s.execute(&body);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["replayed"], true);

    let (status, r) = s
        .execute(&json!({"action": "add", "payload": {"a": 10, "b": 20}, "nonce": "test-nonce-3"}));
    assert_eq!((status, &r["result"]["sum"]), (200, &json!(30)));
    // The original's formula: sha256(id + ":" + json.dumps(result, sort_keys=True)).
    let result_json = dumps_sorted(&r["result"], Separators::Default);
    assert_eq!(result_json, r#"{"sum": 30}"#);
    let expected = hex::encode(
        Hash::sha256(format!("{}:{}", r["id"].as_str().unwrap(), result_json).as_bytes())
            .as_bytes(),
    );
    assert_eq!(r["receipt_hash"], json!(expected));
    let (status, v) = s.post_json(
        "/receipts/verify",
        &json!({"exec_id": r["id"], "result": result_json, "receipt": expected}),
    );
    assert_eq!((status, &v["valid"]), (200, &json!(true)));
}

// 7, 11
#[test]
fn canonical_action_hash_and_minted_artifact() {
    let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": 2, "x": 1}}"#).unwrap();
    let b: Value = serde_json::from_str(r#"{"a": {"x": 1, "y": 2}, "b": 1}"#).unwrap();
    assert_eq!(v1_action_hash("echo", &a), v1_action_hash("echo", &b));
    let key = SigningKey::from_bytes(&[1; 32]);
    let art = artifact(&key, "tenant-001", "echo", &a, 300);
    assert_eq!(art["tenant_id"], "tenant-001");
    assert_eq!(art["action_hash"], json!(v1_action_hash("echo", &a)));
    assert!(art["expires_at"].is_string() && art["signature"].is_string());
}

// 12–15, 17–19
#[test]
fn clawshield_mode_checks() {
    let key = SigningKey::from_bytes(&[2; 32]);
    let env = clawshield_env(&key, "tenant-001");
    let s = start(&as_refs(&env));
    let payload = json!({"msg": "constitutional"});

    let (status, r) = s.execute(&json!({"action": "echo", "payload": payload, "nonce": "c-1", "approval_artifact": artifact(&key, "tenant-001", "echo", &payload, 300)}));
    assert_eq!(
        (status, &r["approved"], &r["result"]["echo"]["msg"]),
        (200, &json!(true), &json!("constitutional"))
    );

    let (status, r) = s.execute(&json!({"action": "echo", "payload": payload, "nonce": "c-2"}));
    assert_eq!(status, 403);
    assert_eq!(r["detail"], "ClawShield mode requires an approval artifact");

    let art = artifact(&key, "tenant-001", "echo", &payload, 300);
    let (status, r) = s.execute(&json!({"action": "echo", "payload": {"msg": "tampered"}, "nonce": "c-3", "approval_artifact": art}));
    assert_eq!(status, 403);
    assert!(r["detail"].as_str().unwrap().contains("hash mismatch"));

    let (status, r) = s.execute(&json!({"action": "echo", "payload": payload, "nonce": "c-4", "approval_artifact": artifact(&key, "wrong-tenant", "echo", &payload, 300)}));
    assert_eq!(status, 403);
    assert_eq!(
        r["detail"],
        "Tenant mismatch: expected tenant-001, got wrong-tenant"
    );

    let other = SigningKey::from_bytes(&[3; 32]);
    let (status, r) = s.execute(&json!({"action": "echo", "payload": payload, "nonce": "c-5", "approval_artifact": artifact(&other, "tenant-001", "echo", &payload, 300)}));
    assert_eq!(status, 403);
    assert!(r["detail"]
        .as_str()
        .unwrap()
        .starts_with("Invalid signature"));

    let (status, r) = s.execute(&json!({"action": "echo", "payload": payload, "nonce": "c-6", "approval_artifact": artifact(&key, "tenant-001", "echo", &payload, -60)}));
    assert_eq!(status, 403);
    assert!(r["detail"].as_str().unwrap().contains("expired"));

    let (_, h) = s.get_json("/health");
    assert_eq!(
        (
            h["exec_mode"].as_str(),
            h["signature_verification"].as_str()
        ),
        (Some("clawshield"), Some("enabled"))
    );
}

// 15 (env side): the configured tenant must match.
#[test]
fn configured_tenant_mismatch() {
    let key = SigningKey::from_bytes(&[4; 32]);
    let env = clawshield_env(&key, "wrong-tenant");
    let s = start(&as_refs(&env));
    let payload = json!({"msg": "x"});
    let (status, r) = s.execute(&json!({"action": "echo", "payload": payload, "nonce": "t-1", "approval_artifact": artifact(&key, "tenant-001", "echo", &payload, 300)}));
    assert_eq!(status, 403);
    assert!(r["detail"].as_str().unwrap().starts_with("Tenant mismatch"));
}

// 16: the original answered 403 per request; we refuse to start (fail closed, B10).
#[test]
fn clawshield_without_key_refuses_to_start() {
    let stderr = refuses(&[("OPENEXEC_MODE", "clawshield")]);
    assert!(
        stderr.contains("CLAWSHIELD_PUBLIC_KEY not configured"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
}

// 20–22
#[test]
fn health_reports_restriction() {
    let s = start(&[]);
    let (_, h) = s.get_json("/health");
    assert_eq!(h["signature_verification"], "disabled");
    assert_eq!(h["restriction"], "open");
    assert_eq!(h["warning"], "No execution allow-list configured");
    drop(s);
    let s = start(&[("OPENEXEC_ALLOWED_ACTIONS", " echo, add ,")]);
    let (_, h) = s.get_json("/health");
    assert_eq!(h["restriction"], "restricted");
    assert_eq!(h["allow_list"], json!(["echo", "add"]));
    assert!(h.get("warning").is_none());
    assert!(h["ledger"]["size"].is_u64());
}

/// A rejected attempt is recorded without completing its nonce: the same
/// nonce with a corrected request (here: the approval it lacked, then a
/// valid one) executes once, and only then is the nonce done.
#[test]
fn a_rejected_attempt_leaves_its_nonce_free_for_a_corrected_retry() {
    let key = SigningKey::from_bytes(&[4; 32]);
    let env = clawshield_env(&key, "tenant-001");
    let s = start(&as_refs(&env));
    let payload = json!({"name": "retried"});
    let unapproved = json!({"action": "counter", "payload": payload, "nonce": "r-1"});
    let (status, r) = s.execute(&unapproved);
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("approval_missing")),
        "{r}"
    );
    let expired = json!({"action": "counter", "payload": payload, "nonce": "r-1",
        "approval_artifact": artifact(&key, "tenant-001", "counter", &payload, -60)});
    let (status, r) = s.execute(&expired);
    assert_eq!(status, 403, "{r}");
    assert_eq!(s.ledger_size(), 2, "both rejections are recorded");
    let approved = json!({"action": "counter", "payload": payload, "nonce": "r-1",
        "approval_artifact": artifact(&key, "tenant-001", "counter", &payload, 300)});
    let (status, r) = s.execute(&approved);
    assert_eq!(
        (status, r["outcome"].as_str(), &r["result"]["value"]),
        (200, Some("executed"), &json!(1)),
        "{r}"
    );
    // Now the nonce is done: the same request is a replay, not a second run.
    let (status, r) = s.execute(&approved);
    assert_eq!((status, r["replayed"].as_bool()), (200, Some(true)), "{r}");
    assert_eq!(r["result"]["value"], json!(1));
}
