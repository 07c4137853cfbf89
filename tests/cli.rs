//! The command-line tools as an operator or auditor uses them: keygen,
//! verify (JSON receipt, tlog-proof text, later checkpoint + consistency),
//! audit, approver-keygen and approve.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::process::{Command, Output};

use serde_json::{json, Value};

fn openexec(args: &[&str]) -> Output {
    Command::new(common::binary()).args(args).output().unwrap()
}

fn line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn verify_checks_many_receipts_from_json_lines_and_names_each_failure() {
    let s = common::server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let mut lines: Vec<String> = (0..5)
        .map(|i| {
            s.execute(&json!({"action": "echo", "nonce": format!("many-{i}")}))
                .1["receipt"]
                .to_string()
        })
        .collect();
    let (_, vkey) = s.get("/ledger/key");
    std::fs::write(path("log.vkey"), &vkey).unwrap();
    std::fs::write(path("ok.jsonl"), lines.join("\n") + "\n").unwrap();
    let out = openexec(&["verify", "--key", &path("log.vkey"), &path("ok.jsonl")]);
    assert!(out.status.success(), "{}", line(&out));
    assert_eq!(line(&out), "OK: 5 receipts verified");
    // Line 4 loses a bit of its signature; a second file adds one more receipt.
    lines[3] = lines[3].replacen("\"entry_signature\":\"", "\"entry_signature\":\"A", 1);
    std::fs::write(path("bad.jsonl"), lines.join("\n")).unwrap();
    let out = openexec(&[
        "verify",
        "--key",
        &path("log.vkey"),
        &path("bad.jsonl"),
        &path("ok.jsonl"),
    ]);
    assert!(!out.status.success());
    let text = line(&out);
    assert!(
        text.contains(&format!(
            "FAILED: {}:4: entry signature is invalid",
            path("bad.jsonl")
        )),
        "{text}"
    );
    assert!(text.ends_with("FAILED: 1 of 10 receipts failed"), "{text}");
}

#[test]
fn verify_counts_an_unreadable_line_as_one_failure_and_checks_the_rest() {
    let s = common::server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let receipt =
        |n: &str| s.execute(&json!({"action": "echo", "nonce": n})).1["receipt"].to_string();
    let (_, vkey) = s.get("/ledger/key");
    std::fs::write(path("log.vkey"), &vkey).unwrap();
    let text = [receipt("u-1"), "{not json".to_owned(), receipt("u-2")].join("\n");
    std::fs::write(path("mixed.jsonl"), text).unwrap();
    let out = openexec(&["verify", "--key", &path("log.vkey"), &path("mixed.jsonl")]);
    assert!(!out.status.success());
    let text = line(&out);
    assert!(
        text.starts_with(&format!(
            "FAILED: {}:2: receipt is not JSON",
            path("mixed.jsonl")
        )),
        "{text}"
    );
    assert!(text.ends_with("FAILED: 1 of 3 receipts failed"), "{text}");
    // A file with no receipt at all verifies nothing, and says so.
    std::fs::write(path("empty.jsonl"), "\n\n").unwrap();
    let out = openexec(&["verify", "--key", &path("log.vkey"), &path("empty.jsonl")]);
    assert!(!out.status.success());
    assert_eq!(line(&out), "FAILED: no receipt in the files given");
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("log.key");
    let out = openexec(&[
        "keygen",
        "--origin",
        "example.org/log",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let vkey = line(&out);
    assert!(openexec::core::signing::LogVerifier::from_vkey(&vkey).is_ok());
    assert!(vkey.starts_with("example.org/log+"));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = openexec(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(!again.status.success());
}

#[test]
fn verify_accepts_every_receipt_form_and_names_failures() {
    let s = common::server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (_, r) = s.execute(&json!({"action": "echo", "nonce": "cli-1"}));
    std::fs::write(path("resp.json"), r.to_string()).unwrap();
    let (_, vkey) = s.get("/ledger/key");
    std::fs::write(path("log.vkey"), &vkey).unwrap();

    // tlog-proof text made from the same receipt.
    let receipt: openexec::core::receipt::Receipt =
        serde_json::from_value(r["receipt"].clone()).unwrap();
    std::fs::write(
        path("r.tlog-proof"),
        openexec::core::tlog_proof::export(&receipt).unwrap(),
    )
    .unwrap();
    for file in ["resp.json", "r.tlog-proof"] {
        let out = openexec(&["verify", "--key", &path("log.vkey"), &path(file)]);
        assert!(out.status.success(), "{file}: {}", line(&out));
        assert!(
            line(&out).starts_with("OK: entry 0 (echo executed"),
            "{}",
            line(&out)
        );
    }

    // Grow the log; check against the later checkpoint.
    for i in 0..4 {
        s.execute(&json!({"action": "echo", "nonce": format!("cli-more-{i}")}));
    }
    let (_, cp) = s.get("/ledger/checkpoint");
    std::fs::write(path("cp.txt"), cp).unwrap();
    let (_, cons) = s.get("/ledger/proof/consistency?from=1");
    std::fs::write(path("cons.json"), cons).unwrap();
    let out = openexec(&[
        "verify",
        "--key",
        &path("log.vkey"),
        &path("resp.json"),
        "--checkpoint",
        &path("cp.txt"),
        "--consistency",
        &path("cons.json"),
    ]);
    assert!(
        line(&out).ends_with("consistent with the trusted checkpoint"),
        "{}",
        line(&out)
    );
    let out = openexec(&[
        "verify",
        "--key",
        &path("log.vkey"),
        &path("resp.json"),
        "--checkpoint",
        &path("cp.txt"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(line(&out).contains("add --consistency"), "{}", line(&out));

    // Wrong key: one line, exit 1.
    let other = openexec::core::signing::LogSigner::from_seed("openexec.local/log", [1; 32])
        .unwrap()
        .verifier()
        .vkey();
    let out = openexec(&["verify", "--key", &other, &path("resp.json")]);
    assert_eq!(
        (out.status.code(), line(&out).as_str()),
        (Some(1), "FAILED: entry signature is invalid")
    );
    let out = openexec(&["verify", "--key", &path("log.vkey"), &path("missing.json")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(line(&out).starts_with("FAILED: reading"));
}

#[test]
fn audit_reports_ok_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = common::server::start_in(&data, &[]).unwrap();
    for i in 0..5 {
        s.execute(&json!({"action": "echo", "nonce": format!("a-{i}")}));
    }
    s.stop();
    let out = openexec(&["audit", "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", line(&out));
    // One line per registry that wrote entries, then the verdict.
    let text = line(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("registry ") && lines[0].ends_with(": entries 0..=4"),
        "{text}"
    );
    assert!(lines[1].starts_with("OK: 5 entries,"), "{text}");
    assert!(lines[1].contains("rs_merkle rebuild agrees"));
    let out = openexec(&[
        "audit",
        "--data",
        dir.path().join("nothing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn approve_mints_artifacts_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("approver.pem");
    let out = openexec(&["approver-keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap();
    let s = common::server::start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &public),
        ("CLAWSHIELD_TENANT_ID", "acme"),
    ]);
    for (kind, nonce) in [("v1", "ap-1"), ("v2", "ap-2")] {
        let out = openexec(&[
            "approve",
            "--key",
            key.to_str().unwrap(),
            "--kind",
            kind,
            "--action",
            "echo",
            "--payload",
            r#"{"m":1}"#,
            "--nonce",
            nonce,
            "--tenant",
            "acme",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let artifact: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (status, r) = s.execute(&json!({"action": "echo", "payload": {"m": 1}, "nonce": nonce, "approval_artifact": artifact}));
        assert_eq!(status, 200, "{kind}: {r}");
    }
}

#[test]
fn bench_reports_throughput_and_fails_on_errors() {
    let s = common::server::start(&[]);
    let out = openexec(&[
        "bench",
        "--url",
        &s.base,
        "--connections",
        "2",
        "--duration",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = line(&out);
    assert!(text.starts_with("connections=2 executions="), "{text}");
    assert!(
        text.contains("executions_per_second=") && text.ends_with("errors=0"),
        "{text}"
    );
    // Every execution it counts is an entry of the (fresh) log.
    let counted: u64 = text
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("executions="))
        .unwrap()
        .parse()
        .unwrap();
    let (_, checkpoint) = s.get("/ledger/checkpoint");
    let size: u64 = checkpoint.lines().nth(1).unwrap().parse().unwrap();
    assert!(counted > 0);
    assert_eq!(size, counted, "{text}");
    let out = openexec(&[
        "bench",
        "--url",
        &s.base,
        "--mode",
        "receipts",
        "--sample",
        "5",
        "--connections",
        "2",
        "--duration",
        "1",
    ]);
    let text = line(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("connections=2 receipts="), "{text}");
    let out = openexec(&[
        "bench",
        "--url",
        &s.base,
        "--connections",
        "1",
        "--duration",
        "1",
        "--action",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1), "any non-2xx fails the run");
}
