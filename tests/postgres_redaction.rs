//! Redaction on a log kept in PostgreSQL: not supported, refused with a
//! clear answer on the admin socket; nothing is recorded or erased.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod postgres;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;

use serde_json::{json, Value};

#[test]
fn a_postgres_log_refuses_redaction_and_keeps_everything() {
    let db = postgres::fresh_database("redaction");
    let keys = tempfile::tempdir().unwrap();
    let key = postgres::keygen(keys.path());
    let socket = keys.path().join("admin.sock");
    let node = postgres::try_start(
        &db,
        &key,
        &[("OPENEXEC_ADMIN_SOCKET", socket.to_str().unwrap())],
    )
    .unwrap();
    let request = json!({"action": "echo", "nonce": "pg-redact-1", "payload": {"note": "kept"}});
    let (status, first) = node.execute(&request);
    assert_eq!(status, 200, "{first}");
    let body = json!({"exec_id": first["exec_id"], "reason": "legal"}).to_string();
    let mut stream = UnixStream::connect(&socket).unwrap();
    write!(
        stream,
        "POST /admin/redact HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    let refusal: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(refusal["code"], "unsupported_backend", "{refusal}");
    assert!(
        refusal["detail"].as_str().unwrap().contains("PostgreSQL"),
        "{refusal}"
    );
    let (status, replay) = node.execute(&request);
    assert_eq!(status, 200);
    assert_eq!(replay["result"]["echo"]["note"], "kept", "nothing erased");
    assert!(replay.get("content").is_none());
    assert_eq!(postgres::entries(&db).len(), 2, "nothing recorded");
}
