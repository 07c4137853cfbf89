//! Hostile `POST /execute` requests against the real server: the table of
//! `tests/hostile_cases/` (bodies of any bytes, odd content types and
//! framing), each with the status and code it must get and whether it is
//! RECORDED in the ledger or REFUSED BEFORE RECORDING (SECURITY.md §3).
//!
//! Requests are written by hand on a `std::net::TcpStream`
//! (`common::wire`) so that every byte is under the test's control.
//! Whatever reaches the application must be answered with a 4xx and a JSON
//! `{detail, code}` body — never a 5xx, a panic or a hang. The rows that
//! are not 4xx are listed as such: successes, and one documented handler
//! failure (`add` overflowing to infinity, recorded as `failed`).
//! Slow clients and malformed framing: `tests/hostile_connections.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;
mod hostile_cases;

use openexec::core::receipt::{verify_receipt, Receipt};
use serde_json::json;

use common::server::start;
use common::wire::post;
use hostile_cases::{
    cases,
    Fate::{Recorded, Refused},
};

#[test]
fn hostile_inputs_get_their_documented_status_and_fate() {
    let s = start(&[]);
    let addr = s.addr();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for c in cases() {
        let before = s.ledger_size();
        let r = post(addr, c.content_type, c.framing, &c.body);
        let after = s.ledger_size();
        let body = r.json();
        let code = body["code"].as_str().map(str::to_owned);
        let fate = match after - before {
            0 => Refused,
            1 => Recorded,
            n => panic!("{}: {n} entries appended", c.name),
        };
        let mut problems = Vec::new();
        if r.status != c.status {
            problems.push(format!("status {} (want {})", r.status, c.status));
        }
        if code.as_deref() != c.code {
            problems.push(format!("code {code:?} (want {:?})", c.code));
        }
        if fate != c.fate {
            problems.push(format!("{fate:?} (want {:?})", c.fate));
        }
        if !body.is_object() {
            problems.push(format!(
                "body is not JSON: {:?}",
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
            ));
        }
        if r.status >= 400 && !(body["detail"].is_string() && body["code"].is_string()) {
            problems.push(format!("no {{detail, code}}: {body}"));
        }
        if r.status >= 500 && c.status < 500 {
            problems.push("5xx".into());
        }
        // A recorded attempt carries a receipt for the new entry that
        // verifies offline; a refusal carries none.
        match (fate, body.get("receipt")) {
            (Recorded, Some(receipt)) => {
                let receipt: Receipt = serde_json::from_value(receipt.clone()).expect("receipt");
                let v = verify_receipt(&receipt, &s.verifier(), None).expect("receipt verifies");
                assert_eq!(v.entry.index, before, "{}", c.name);
            }
            (Recorded, None) => problems.push("recorded without a receipt".into()),
            (Refused, Some(_)) => problems.push("refused with a receipt".into()),
            (Refused, None) => {}
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", c.name, problems.join("; ")));
        }
        rows.push(format!(
            "| {} | {} | {} | {} |",
            c.name.replace('|', "\\|"),
            r.status,
            code.as_deref().unwrap_or("—"),
            match fate {
                Recorded => "recorded",
                Refused => "refused before recording",
            }
        ));
    }
    eprintln!(
        "| case | status | code | fate |\n|---|---|---|---|\n{}",
        rows.join("\n")
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // Still serving, and nothing was logged as a panic.
    assert_eq!(s.get("/ready").0, 200);
    let log = std::fs::read_to_string(s.data.with_extension("stderr.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "server log:\n{log}");
}

#[test]
fn echoed_payloads_keep_odd_unicode_and_get_numbers_in_canonical_form() {
    let s = start(&[]);
    let (status, r) = s.post_raw(
        "/execute",
        "application/json",
        "{\"action\":\"echo\",\"nonce\":\"u1\",\"payload\":{\"m\":\"a\u{202e}b\\u0000c\u{200d}\",\"n\":18446744073709552000,\"i\":-9223372036854776000,\"f\":1.0,\"z\":-0.0,\"e\":25e-1}}"
            .as_bytes(),
    );
    assert_eq!(status, 200, "{r}");
    let echo = &r["result"]["echo"];
    assert_eq!(echo["m"], json!("a\u{202e}b\u{0}c\u{200d}"));
    // The handler gets the payload read back from its canonical bytes:
    // 2^64 and -2^63 (as JCS writes them, beyond 64-bit integers) are
    // floats, 1.0 the integer 1, -0.0 the integer 0 and 25e-1 the float 2.5.
    assert_eq!(echo["n"].as_f64(), Some(18_446_744_073_709_551_616.0));
    assert!(echo["n"].is_f64());
    assert_eq!(echo["i"].as_f64(), Some(-9_223_372_036_854_775_808.0));
    assert!(echo["i"].is_f64());
    assert_eq!(echo["f"], json!(1));
    assert!(echo["f"].is_u64());
    assert_eq!(echo["z"], json!(0));
    assert!(echo["z"].is_u64());
    assert_eq!(echo["e"], json!(2.5));
}
