//! Runs the README's Python agent example (examples/agent.py) against a real
//! server, then verifies the receipt it saved with `openexec verify`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::process::Command;

#[test]
fn python_agent_with_function_calling_runs_and_its_receipt_verifies() {
    let s = common::server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let receipt = dir.path().join("receipt.json");
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/agent.py"))
        .args(["--url", &s.base, "--out"])
        .arg(&receipt)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("result: {'sum': 42}"), "{stdout}");
    assert!(stdout.contains("the action ran once"), "{stdout}");

    let (_, vkey) = s.get("/ledger/key");
    let verify = Command::new(common::binary())
        .args(["verify", "--key", vkey.trim()])
        .arg(&receipt)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{line}");
    assert!(line.starts_with("OK: entry 0 (add executed"), "{line}");

    // A tampered receipt makes `openexec verify` exit 1 with one line.
    let text = std::fs::read_to_string(&receipt)
        .unwrap()
        .replace("\\\"add\\\"", "\\\"adx\\\"");
    std::fs::write(&receipt, text).unwrap();
    let verify = Command::new(common::binary())
        .args(["verify", "--key", vkey.trim()])
        .arg(&receipt)
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&verify.stdout).trim(),
        "FAILED: entry signature is invalid"
    );
}
