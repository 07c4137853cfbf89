//! No request can panic a worker. Approval times outside the accepted
//! years are recorded `403 approval_time_out_of_range` rejections, over
//! the real server, for v1 and v2. And a panic injected at any stage of
//! the `/execute` path is answered `500 {detail, code}`, counted in
//! `/metrics`, and leaves the ledger consistent: the attempt is recorded as
//! far as it got, a reserved nonce is never left in flight, and the log
//! audits clean.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::sync::Arc;

use chrono::Duration;
use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::SigningKey;
use openexec::core::approval::V2_FORMAT;
use openexec::core::canonical::request_hash;
use openexec::core::entry::{Entry, Outcome};
use openexec::core::receipt::{verify_receipt, Receipt};
use openexec::exec::{Boundary, Mode, Response, Stage};
use serde_json::{json, Value};

fn pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap()
}

/// The review's request: a v1 artifact whose `expires_at` is near
/// chrono's largest date, with any signature, closed the connection
/// without an answer and recorded nothing. Now it and its kin (v1 and v2,
/// either field, both ends, zoned or not) are recorded 403 rejections with
/// their own code, and the server keeps serving.
#[test]
fn approval_times_out_of_range_are_recorded_403s_over_http() {
    let key = SigningKey::from_bytes(&[51; 32]);
    let s = common::server::start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem(&key)),
        ("CLAWSHIELD_TENANT_ID", "tenant-001"),
    ]);
    let payload = json!({"msg": "hi"});
    let signature = "A".repeat(86) + "==";
    let v1 = |issued: &str, expires: &str| {
        json!({
            "approval_id": "ap-far", "tenant_id": "tenant-001",
            "action_hash": openexec::core::approval::v1_action_hash("echo", &payload),
            "issued_at": issued, "expires_at": expires, "signature": signature,
        })
    };
    let v2 = |issued: &str, expires: &str, nonce: &str| {
        let rh = request_hash("echo", &payload, nonce, "tenant-001").unwrap();
        json!({
            "format": V2_FORMAT, "approval_id": "ap-far", "tenant": "tenant-001",
            "request_hash": rh.to_base64(), "key_id": "0011223344556677",
            "issued_at": issued, "expires_at": expires, "signature": signature,
        })
    };
    let now = chrono::Utc::now();
    let fine_issued = now.to_rfc3339();
    let fine_expires = (now + Duration::seconds(60)).to_rfc3339();
    let mut cases = vec![
        (
            v1("2026-11-21T12:00:00", "+262142-12-31T23:59:59"),
            "expires_at",
        ),
        (v1(&fine_issued, "-262143-01-01T00:00:00"), "expires_at"),
        (v1("+262142-12-31T23:59:59", &fine_expires), "issued_at"),
        (v1(&fine_issued, "9999-12-31T23:59:59-00:01"), "expires_at"),
        (v1("0000-01-01T00:00:00+00:01", &fine_expires), "issued_at"),
    ];
    for (i, (issued, expires, field)) in [
        (
            fine_issued.as_str(),
            "9999-12-31T23:59:59-23:59",
            "expires_at",
        ),
        (
            fine_issued.as_str(),
            "0000-01-01T00:00:00+00:01",
            "expires_at",
        ),
        (
            "9999-12-31T23:59:59-00:01",
            fine_expires.as_str(),
            "issued_at",
        ),
        (
            "0000-01-01T00:00:00+23:59",
            fine_expires.as_str(),
            "issued_at",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        cases.push((v2(issued, expires, &format!("far-v2-{i}")), field));
    }
    for (i, (artifact, field)) in cases.into_iter().enumerate() {
        let nonce = if artifact.get("format").is_some() {
            format!("far-v2-{}", i - 5)
        } else {
            format!("far-v1-{i}")
        };
        let (status, r) = s.execute(
            &json!({"action": "echo", "payload": payload, "nonce": nonce, "approval_artifact": artifact}),
        );
        assert_eq!(
            (status, r["code"].as_str()),
            (403, Some("approval_time_out_of_range")),
            "{artifact}: {r}"
        );
        assert!(r["detail"].as_str().unwrap().contains(field), "{r}");
        let receipt: Receipt = serde_json::from_value(r["receipt"].clone()).unwrap();
        let verified = verify_receipt(&receipt, &s.verifier(), None).unwrap();
        assert_eq!(verified.entry.reason, "approval_time_out_of_range");
        assert_eq!(verified.entry.outcome, Outcome::Rejected);
    }
    assert_eq!(s.get("/ready").0, 200);
    let log = std::fs::read_to_string(s.data.with_extension("stderr.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "server log:\n{log}");
}

fn boundary(dir: &std::path::Path) -> Boundary {
    common::boundary(dir, Mode::Demo, common::no_approvals())
}

async fn execute(b: &Boundary, action: &str, nonce: &str) -> Response {
    let body = json!({"action": action, "payload": {"name": nonce}, "nonce": nonce});
    b.execute(body.to_string().as_bytes(), None, None).await
}

/// `openexec_panics_total{stage="…"}` from the metrics text.
fn panics_counted(b: &Boundary, stage: Stage) -> u64 {
    let line = format!("openexec_panics_total{{stage=\"{}\"}} ", stage.as_str());
    b.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in the metrics"))
}

fn last_entry(b: &Boundary) -> Entry {
    let size = b.ledger().head().size;
    Entry::from_canonical_bytes(&b.ledger().entry(size - 1).unwrap().0).unwrap()
}

/// One injected panic: where, on which action, the entry it must leave
/// (`None`: none), the counter's value after it, and how a retry of the
/// same request is answered (status, outcome).
struct Case {
    stage: Stage,
    action: &'static str,
    entry: Option<(Outcome, &'static str)>,
    counter: u64,
    retry: (u16, &'static str),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_at_any_stage_is_answered_counted_and_recorded_as_far_as_it_got() {
    use Outcome::{Executed, Failed, Interrupted, Rejected};
    let case = |stage, action, entry, counter, retry| Case {
        stage,
        action,
        entry,
        counter,
        retry,
    };
    let cases = [
        // Nothing parsed: nothing recorded, nothing run.
        case(Stage::Parse, "counter", None, 0, (200, "executed")),
        // Parsed, nothing reserved: a rejection; the nonce stays free.
        case(
            Stage::Authorize,
            "counter",
            Some((Rejected, "internal_panic")),
            0,
            (200, "executed"),
        ),
        case(
            Stage::Record,
            "echo",
            Some((Rejected, "internal_panic")),
            0,
            (200, "executed"),
        ),
        // Reserved, before the handler: interrupted, never run.
        case(
            Stage::Reserve,
            "counter",
            Some((Interrupted, "internal_panic")),
            0,
            (500, "replayed"),
        ),
        // In the handler: caught where it runs, recorded as failed.
        case(
            Stage::Handler,
            "counter",
            Some((Failed, "handler_panic")),
            0,
            (500, "replayed"),
        ),
        case(
            Stage::Handler,
            "echo",
            Some((Failed, "handler_panic")),
            0,
            (500, "replayed"),
        ),
        // Reserved, after the handler: interrupted; it ran once, never again.
        case(
            Stage::Record,
            "counter",
            Some((Interrupted, "internal_panic")),
            1,
            (500, "replayed"),
        ),
        // After the entry is durable: it stands; a retry replays it.
        case(
            Stage::Respond,
            "counter",
            Some((Executed, "ok")),
            1,
            (200, "replayed"),
        ),
        case(
            Stage::Respond,
            "echo",
            Some((Executed, "ok")),
            0,
            (200, "replayed"),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let b = boundary(dir.path());
    for (i, c) in cases.iter().enumerate() {
        let nonce = format!("p-{i}");
        let what = format!("{:?} {}", c.stage, c.action);
        let size = b.ledger().head().size;
        let counted = panics_counted(&b, c.stage);
        b.inject_panic(c.stage);
        let r = execute(&b, c.action, &nonce).await;

        // Answered 500 {detail, code}.
        let code = if c.stage == Stage::Handler {
            "handler_panic"
        } else {
            "internal_panic"
        };
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (500, Some(code)),
            "{what}: {}",
            r.body
        );
        assert!(
            !r.body["detail"].as_str().unwrap_or("").is_empty(),
            "{what}"
        );
        // Counted.
        assert_eq!(panics_counted(&b, c.stage), counted + 1, "{what}");
        // Recorded as far as it got.
        match c.entry {
            None => assert_eq!(b.ledger().head().size, size, "{what}"),
            Some((outcome, reason)) => {
                assert_eq!(b.ledger().head().size, size + 1, "{what}");
                let e = last_entry(&b);
                assert_eq!(
                    (e.outcome, e.reason.as_str(), e.nonce.as_str()),
                    (outcome, reason, nonce.as_str()),
                    "{what}"
                );
                if r.body.get("receipt").is_some() {
                    let receipt: Receipt =
                        serde_json::from_value(r.body["receipt"].clone()).unwrap();
                    verify_receipt(&receipt, b.ledger().verifier(), None).unwrap();
                }
            }
        }
        if c.action == "counter" {
            assert_eq!(
                b.ledger().store().unwrap().counter(&nonce).unwrap(),
                c.counter,
                "{what}"
            );
        }
        // The nonce is never left in flight: a retry is answered from the
        // record (or runs, when nothing took the nonce).
        let again = execute(&b, c.action, &nonce).await;
        assert_eq!(
            (again.status, again.body["outcome"].as_str()),
            (c.retry.0, Some(c.retry.1)),
            "{what}: retry {}",
            again.body
        );
        if c.action == "counter" {
            assert_eq!(
                b.ledger().store().unwrap().counter(&nonce).unwrap(),
                c.counter.max(u64::from(c.retry.1 == "executed")),
                "{what}"
            );
        }
    }
    // Every stage was counted once, or twice where two cases hit it.
    let text = b.metrics_text();
    assert!(
        text.contains("openexec_panics_total{stage=\"record\"} 2"),
        "{text}"
    );
    assert!(
        text.contains(
            "openexec_attempts_total{outcome=\"interrupted\",reason=\"internal_panic\"} 2"
        ),
        "{text}"
    );
    // The service goes on, and the log audits clean.
    assert!(b.ledger().is_writable());
    assert_eq!(execute(&b, "echo", "after").await.status, 200);
    assert_eq!(common::full_audit(b.ledger().store().unwrap()), None);
}

/// A panic on the record stage while attempts race on one nonce: the
/// handler runs once, exactly one entry completes the nonce, and it is not
/// left in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_after_the_reservation_never_leaves_the_nonce_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(boundary(dir.path()));
    b.inject_panic(Stage::Record);
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let b = Arc::clone(&b);
            tokio::spawn(async move { execute(&b, "counter", "raced").await })
        })
        .collect();
    let mut outcomes: Vec<(u16, Value)> = Vec::new();
    for a in attempts {
        let r = a.await.unwrap();
        outcomes.push((r.status, r.body["outcome"].clone()));
    }
    // Whichever attempt reached the record stage first panicked there (the
    // winner after its handler, or a loser recording its 409): the handler
    // ran once, the nonce is done, and one entry completes it.
    assert_eq!(b.ledger().store().unwrap().counter("raced").unwrap(), 1);
    assert!(
        outcomes.iter().all(|(status, _)| *status != 503),
        "{outcomes:?}"
    );
    let again = execute(&b, "counter", "raced").await;
    assert_eq!(again.body["outcome"], json!("replayed"), "{}", again.body);
    assert_eq!(
        common::full_audit(b.ledger().store().unwrap()),
        None,
        "{outcomes:?}"
    );
    assert_eq!(panics_counted(&b, Stage::Record), 1);
}
