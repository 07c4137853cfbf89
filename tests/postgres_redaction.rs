//! Redaction on a log kept in PostgreSQL: the redaction entry and the
//! erase commit in one transaction; replays say the content was erased,
//! every receipt verifies, the audit accepts the log, and a second
//! redaction is answered from the recorded one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;
mod postgres;

use std::path::Path;

use serde_json::{json, Value};

fn admin(socket: &Path, body: &Value) -> (u16, Value) {
    common::admin::redact(socket, &body.to_string())
}

#[test]
fn a_postgres_log_erases_content_in_the_redaction_entrys_transaction() {
    let db = postgres::fresh_database("redaction");
    let keys = tempfile::tempdir().unwrap();
    let key = postgres::keygen(keys.path());
    let socket = keys.path().join("admin.sock");
    let mut node = postgres::try_start(
        &db,
        &key,
        &[("OPENEXEC_ADMIN_SOCKET", socket.to_str().unwrap())],
    )
    .unwrap();
    let secret = "pg-Hq7Zt2Kv9Lm4Xw8Rj3Np6Bc1Sd5Fg0";
    let request = json!({"action": "echo", "nonce": "pg-redact-1", "payload": {"note": secret}});
    let (status, first) = node.execute(&request);
    assert_eq!(status, 200, "{first}");
    let kept = json!({"action": "echo", "nonce": "pg-keep-1", "payload": {"note": "kept"}});
    assert_eq!(node.execute(&kept).0, 200);
    let content = |idx: i64| {
        postgres::sql(
            &db,
            &[&format!(
                "SELECT content FROM openexec_entries WHERE idx = {idx}"
            )],
        )[0]
        .get::<_, Option<Vec<u8>>>(0)
    };
    assert!(String::from_utf8_lossy(&content(0).unwrap()).contains(secret));

    let (status, bad) = admin(&socket, &json!({"index": 0, "reason": "whim"}));
    assert_eq!(
        (status, bad["code"].as_str()),
        (422, Some("invalid_reason"))
    );
    let (status, done) = admin(
        &socket,
        &json!({"exec_id": first["exec_id"], "reason": "leaked_secret"}),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (
            done["redacted_index"].as_u64(),
            done["redaction_index"].as_u64()
        ),
        (Some(0), Some(2))
    );
    assert_eq!(content(0), None, "the content column is NULL");
    assert!(content(1).is_some(), "other content stays");
    let rows = postgres::sql(
        &db,
        &["SELECT idx, entry_idx, reason FROM openexec_redactions"],
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(2), "leaked_secret");

    let (status, again) = admin(&socket, &json!({"index": 0, "reason": "legal"}));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["already_redacted"], true);
    assert_eq!(again["redaction_index"], 2);
    let (status, replay) = node.execute(&request);
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["outcome"], "replayed");
    assert_eq!(replay["content"], "erased");
    assert_eq!(replay["redaction"]["index"], 2);
    assert!(replay.get("result").is_none(), "{replay}");
    let (_, fresh) = node.get(&format!("/receipts/{}", first["exec_id"].as_str().unwrap()));
    assert!(fresh.get("salts").is_none(), "{fresh}");
    postgres::verify_all(
        &node.vkey(),
        &[
            json!({"receipt": first["receipt"]}),
            json!({"receipt": done["receipt"]}),
            json!({"receipt": replay["receipt"]}),
            json!({"receipt": fresh}),
        ],
    );
    node.kill9();
    let (ok, said) = postgres::audit(&db);
    assert!(ok, "{said}");
    // The content put back (as the ledger writes it, opening the
    // commitments): the audit names the redaction whose erase is undone.
    let content = serde_json::to_vec(&json!({
        "payload": request["payload"],
        "result": first["result"],
        "salts": first["receipt"]["salts"],
    }))
    .unwrap();
    postgres::sql(
        &db,
        &[&format!(
            "UPDATE openexec_entries SET content = '\\x{}' WHERE idx = 0",
            hex::encode(content)
        )],
    );
    let (ok, said) = postgres::audit(&db);
    assert!(!ok, "{said}");
    assert!(said.contains("whose content is still kept"), "{said}");
}
