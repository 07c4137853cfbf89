//! Logs of a real server: with `--log-format json` every stderr line is a
//! JSON object, and each recorded attempt has a line whose fields are the
//! attempt's exec_id, nonce, tenant, principal, action and outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use chrono::Utc;
use openexec::auth::{self, NewToken, Role};
use serde_json::{json, Value};

use common::server::{self, start_in};

/// The JSON lines a stopped server wrote on stderr.
fn json_lines(data: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(data.with_extension("stderr.log")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[test]
fn json_logs_carry_each_attempts_exec_id_nonce_tenant_principal_action_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (token, record) = auth::store::create(
        &data,
        NewToken {
            role: Role::Agent,
            tenant: "acme".into(),
            actions: None,
            label: None,
            expires_at: None,
        },
        Utc::now(),
    )
    .unwrap();
    let mut s = start_in(
        &data,
        &[
            ("RUST_LOG", "info,openexec::request=debug"),
            ("OPENEXEC_LOG_FORMAT", "json"),
        ],
    )
    .unwrap();
    let mut answers = Vec::new();
    for (action, nonce) in [("echo", "log-nonce-1"), ("no_such_action", "log-nonce-2")] {
        let response = server::send(
            server::agent()
                .post(&s.url("/execute"))
                .set("Authorization", &format!("Bearer {}", token.reveal())),
            Some(&json!({"action": action, "payload": {"n": 1}, "nonce": nonce})),
        );
        let body: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
        answers.push((action, nonce, body));
    }
    s.stop();

    let lines = json_lines(&data);
    assert!(lines
        .iter()
        .any(|l| l["message"] == "openexec listening" && l["level"] == "INFO"));
    for (action, nonce, body) in answers {
        let exec_id = body["exec_id"].as_str().expect("exec_id");
        let line = lines
            .iter()
            .find(|l| l["exec_id"] == exec_id)
            .unwrap_or_else(|| panic!("no line for {exec_id} in {lines:#?}"));
        assert_eq!(line["target"], "openexec::request");
        assert_eq!(line["nonce"], nonce);
        assert_eq!(line["tenant"], "acme");
        assert_eq!(line["principal"], record.id.to_string());
        assert_eq!(line["action"], action);
        assert_eq!(line["outcome"], body["outcome"]);
        assert!(line["timestamp"].is_string());
    }
}
