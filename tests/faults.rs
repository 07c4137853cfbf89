//! Fault injection at the storage boundary: every fault point answers 503
//! with a clear code and no receipt; reservation faults leave the service
//! working; commit faults stop the writer (503, /ready fails) and, after a
//! restart, the log audits clean and every receipt given before the fault
//! still verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::sync::Arc;

use openexec::core::approval::ApprovalPolicy;
use openexec::core::receipt::{verify_receipt, Receipt};
use openexec::core::request::Limits;
use openexec::exec::handlers::Registry;
use openexec::exec::{Boundary, Mode, Policy, Response};
use openexec::store::FaultPoint;
use serde_json::json;

fn boundary(dir: &std::path::Path) -> Boundary {
    let policy = Policy {
        mode: Mode::Demo,
        approvals: ApprovalPolicy {
            keys: vec![],
            tenant: None,
            max_lifetime: chrono::Duration::hours(1),
            skew: chrono::Duration::seconds(30),
        },
        allow_list: None,
        store_content: true,
        limits: Limits::default(),
        reject_rate: 0.0,
        reject_burst: 1,
    };
    Boundary::new(Arc::new(common::open(dir)), Registry::builtin(), policy)
}

async fn execute(b: &Boundary, nonce: &str) -> Response {
    let body = json!({"action": "counter", "payload": {"name": nonce}, "nonce": nonce}).to_string();
    b.execute(body.as_bytes(), None).await
}

fn assert_unavailable(r: &Response) {
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (503, Some("ledger_unavailable")),
        "{}",
        r.body
    );
    assert!(
        r.body.get("receipt").is_none(),
        "no receipt for an entry that is not durable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_faults_answer_503_and_the_service_recovers() {
    for point in [FaultPoint::ReserveWrite, FaultPoint::ReserveSync] {
        let dir = tempfile::tempdir().unwrap();
        let b = boundary(dir.path());
        assert_eq!(execute(&b, "before").await.status, 200);
        b.ledger().store().inject_fault(point, 0);
        let r = execute(&b, "faulted").await;
        assert_unavailable(&r);
        // The handler did not run: the counter is untouched.
        assert_eq!(
            b.ledger().store().counter("faulted").unwrap(),
            0,
            "{point:?}"
        );
        // The service keeps working for other requests.
        assert_eq!(execute(&b, "after").await.status, 200, "{point:?}");
        assert!(b.ledger().is_writable());
        // A failed reservation write consumed nothing; a reservation whose
        // sync failed stays pending (409) until a restart records it as interrupted.
        let again = execute(&b, "faulted").await;
        match point {
            FaultPoint::ReserveWrite => assert_eq!(again.status, 200),
            _ => assert_eq!(
                (again.status, again.body["code"].as_str()),
                (409, Some("nonce_in_flight"))
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_faults_stop_the_writer_without_corrupting_the_log() {
    for point in [
        FaultPoint::CommitWrite,
        FaultPoint::EntriesSync,
        FaultPoint::CommitSync,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut receipts: Vec<Receipt> = Vec::new();
        {
            let b = boundary(dir.path());
            for i in 0..5 {
                let r = execute(&b, &format!("ok-{i}")).await;
                receipts.push(serde_json::from_value(r.body["receipt"].clone()).unwrap());
            }
            b.ledger().store().inject_fault(point, 0);
            assert_unavailable(&execute(&b, "faulted").await);
            // Fail-stop: the writer refuses further appends.
            assert!(!b.ledger().is_writable(), "{point:?}");
            assert_unavailable(&execute(&b, "later").await);
        }
        // Restart: the log is whole, every receipt given out still verifies.
        let ledger = common::open(dir.path());
        for r in &receipts {
            verify_receipt(r, ledger.verifier(), None).unwrap();
            assert_eq!(ledger.entry(r.leaf_index).unwrap().0, r.entry.as_bytes());
        }
        assert_eq!(common::full_audit(ledger.store()), None, "{point:?}");
        assert!(ledger.head().size >= 5);
    }
}
