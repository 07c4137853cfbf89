//! Fault injection at the storage boundary: every fault point answers 503
//! with a clear code and no receipt; reservation faults leave the service
//! working; commit faults stop the writer (503, /ready fails) and, after a
//! restart, the log audits clean and every receipt given before the fault
//! still verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::sync::Arc;

use openexec::core::receipt::{verify_receipt, Receipt};
use openexec::exec::{Boundary, Mode, Response};
use openexec::store::FaultPoint;
use serde_json::json;

fn boundary(dir: &std::path::Path) -> Boundary {
    common::boundary(dir, Mode::Demo, common::no_approvals())
}

/// `counter` has effects (reserved, then run, then recorded: two writer
/// cycles); `echo` has none (reserved and recorded in one cycle).
#[derive(Clone, Copy, Debug)]
enum Action {
    Counter,
    Echo,
}

async fn execute_as(b: &Boundary, action: Action, nonce: &str) -> Response {
    let body = match action {
        Action::Counter => json!({"action": "counter", "payload": {"name": nonce}, "nonce": nonce}),
        Action::Echo => json!({"action": "echo", "payload": {"n": nonce}, "nonce": nonce}),
    };
    b.execute(body.to_string().as_bytes(), None, None).await
}

async fn execute(b: &Boundary, nonce: &str) -> Response {
    execute_as(b, Action::Counter, nonce).await
}

async fn echo(b: &Boundary, nonce: &str) -> Response {
    execute_as(b, Action::Echo, nonce).await
}

/// Five receipts, then a fault at `point` on the sixth attempt: it and the
/// next one are 503 and the writer has stopped. Returns the receipts.
async fn receipts_then_a_commit_fault(
    dir: &std::path::Path,
    point: FaultPoint,
    action: Action,
) -> Vec<Receipt> {
    let b = boundary(dir);
    let mut receipts = Vec::new();
    for i in 0..5 {
        let r = execute_as(&b, action, &format!("ok-{i}")).await;
        receipts.push(serde_json::from_value(r.body["receipt"].clone()).unwrap());
    }
    b.ledger().store().unwrap().inject_fault(point, 0);
    assert_unavailable(&execute_as(&b, action, "faulted").await);
    // Fail-stop: the writer refuses further appends.
    assert!(!b.ledger().is_writable(), "{point:?} {action:?}");
    assert_unavailable(&execute_as(&b, action, "later").await);
    receipts
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
        b.ledger().store().unwrap().inject_fault(point, 0);
        let r = execute(&b, "faulted").await;
        assert_unavailable(&r);
        // The handler did not run: the counter is untouched.
        assert_eq!(
            b.ledger().store().unwrap().counter("faulted").unwrap(),
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
        let receipts = receipts_then_a_commit_fault(dir.path(), point, Action::Counter).await;
        // Restart: the log is whole, every receipt given out still verifies.
        let ledger = common::open(dir.path());
        for r in &receipts {
            verify_receipt(r, ledger.verifier(), None).unwrap();
            assert_eq!(ledger.entry(r.leaf_index).unwrap().0, r.entry.as_bytes());
        }
        assert_eq!(
            common::full_audit(ledger.store().unwrap()),
            None,
            "{point:?}"
        );
        assert!(ledger.head().size >= 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cycle_attempts_answer_503_on_a_reservation_fault_and_leave_the_nonce_free() {
    let dir = tempfile::tempdir().unwrap();
    let b = boundary(dir.path());
    assert_eq!(echo(&b, "before").await.status, 200);
    let size = b.ledger().head().size;
    b.ledger()
        .store()
        .unwrap()
        .inject_fault(FaultPoint::ReserveWrite, 0);
    assert_unavailable(&echo(&b, "faulted").await);
    // Nothing was appended, the writer goes on, and the nonce is free.
    assert_eq!(b.ledger().head().size, size);
    assert!(b.ledger().is_writable());
    let again = echo(&b, "faulted").await;
    assert_eq!(
        (again.status, again.body["outcome"].as_str()),
        (200, Some("executed")),
        "{}",
        again.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cycle_attempts_stop_the_writer_on_a_commit_fault_without_corrupting_the_log() {
    for point in [
        FaultPoint::CommitWrite,
        FaultPoint::EntriesSync,
        FaultPoint::CommitSync,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let receipts = receipts_then_a_commit_fault(dir.path(), point, Action::Echo).await;
        // Restart: the log is whole, every receipt given out still
        // verifies, and the faulted nonce is free, or done once: by its
        // entry if that reached the disk (a failed sync is not proof that
        // nothing did), else as interrupted if its reservation did.
        let b = boundary(dir.path());
        tokio::task::block_in_place(|| b.recover_interrupted()).unwrap();
        for r in &receipts {
            verify_receipt(r, b.ledger().verifier(), None).unwrap();
        }
        assert_eq!(
            common::full_audit(b.ledger().store().unwrap()),
            None,
            "{point:?}"
        );
        let again = echo(&b, "faulted").await;
        match again.body["outcome"].as_str() {
            Some("executed") => assert_eq!(again.status, 200),
            Some("replayed") => assert!(
                ["interrupted", "executed"]
                    .contains(&again.body["original_outcome"].as_str().unwrap()),
                "{point:?}: {}",
                again.body
            ),
            _ => panic!("{point:?}: {}", again.body),
        }
    }
}

/// The sequencer writes the next cycle while the syncer makes the last one
/// durable; nothing that rests on a cycle still syncing is answered before
/// it. With the sync of X's cycle held (and then failed), a retry of X's
/// nonce and a fresh attempt are not answered while the sync is held
/// (the retry's own entry — every attempt is recorded — queues behind
/// it), and once it fails all three are refused: nobody gets a receipt or
/// a replay of an entry that may not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_resting_on_a_cycle_still_syncing_wait_for_its_sync() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(boundary(dir.path()));
    assert_eq!(echo(&b, "before").await.status, 200);
    let stall = b
        .ledger()
        .store()
        .unwrap()
        .inject_stalled_fault(FaultPoint::CommitSync, 0);
    let attempt = |nonce: &'static str| {
        let b = Arc::clone(&b);
        tokio::spawn(async move { echo(&b, nonce).await })
    };
    let first = attempt("x");
    tokio::task::block_in_place(|| stall.wait_reached());
    // X's cycle is written and its sync held; the sequencer is free to
    // decide the next ones.
    let retry = attempt("x");
    let fresh = attempt("y");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!first.is_finished(), "answered before its sync");
    assert!(
        !retry.is_finished(),
        "a retry was answered before the cycle it rests on was durable"
    );
    assert!(!fresh.is_finished(), "answered before its sync");
    stall.release();
    for r in [first, retry, fresh] {
        assert_unavailable(&r.await.unwrap());
    }
    assert!(!b.ledger().is_writable());
}

/// The writer's own answer for a nonce it did not win waits for the cycles
/// before it: with the sync of X's cycle held, the sequencer decides that
/// a second reservation of X's nonce finds it done (X's entry is written,
/// not durable) — and that answer is not given until the sync ends; the
/// sync fails, so it is a refusal. Answering it from the sequencer, ahead
/// of the syncer, fails this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_found_done_in_a_cycle_still_syncing_is_answered_after_that_sync() {
    use openexec::core::entry::EntryDraft;
    use openexec::ledger::Ledger;
    use openexec::store::{nonce_key, PendingNonce};

    fn claim(draft: &EntryDraft) -> (Vec<u8>, PendingNonce) {
        let record = PendingNonce {
            request_hash: draft.request_hash,
            exec_id: draft.exec_id.clone(),
            approval_key: None,
            action: draft.action.clone(),
            tenant: draft.tenant.clone(),
            nonce: draft.nonce.clone(),
            effects: openexec::core::entry::Effects::AtMostOnce,
            principal: None,
        };
        (nonce_key(&draft.tenant, &draft.nonce), record)
    }
    async fn reserve_and_append(
        ledger: &Ledger,
        draft: EntryDraft,
    ) -> Result<openexec::ledger::Recorded, openexec::ledger::LedgerError> {
        let (key, record) = claim(&draft);
        ledger.reserve_and_append(key, record, draft, None).await
    }

    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(common::open(dir.path()));
    let stall = ledger
        .store()
        .unwrap()
        .inject_stalled_fault(FaultPoint::CommitSync, 0);
    let first = tokio::spawn({
        let ledger = Arc::clone(&ledger);
        async move { reserve_and_append(&ledger, common::draft(1)).await }
    });
    tokio::task::block_in_place(|| stall.wait_reached());
    let mut again = common::draft(1);
    again.exec_id = "exec-again".into();
    let retry = tokio::spawn({
        let ledger = Arc::clone(&ledger);
        async move { reserve_and_append(&ledger, again).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !retry.is_finished(),
        "answered before the cycle its answer rests on was durable: {:?}",
        retry.await.unwrap()
    );
    stall.release();
    assert!(matches!(
        first.await.unwrap(),
        Err(openexec::ledger::LedgerError::Unavailable(_))
    ));
    assert!(matches!(
        retry.await.unwrap(),
        Err(openexec::ledger::LedgerError::Unavailable(_))
    ));
}

/// A reservation of a cycle after one whose commit fails may be answered
/// (its journal frame is durable) and its handler run before the writer
/// stops: its entry is then refused, and the restart records the attempt
/// `interrupted` — once, and the handler never runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_answered_before_the_writer_stops_is_recorded_interrupted_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Arc::new(boundary(dir.path()));
        assert_eq!(echo(&b, "before").await.status, 200);
        let stall = b
            .ledger()
            .store()
            .unwrap()
            .inject_stalled_fault(FaultPoint::CommitSync, 0);
        let first = tokio::spawn({
            let b = Arc::clone(&b);
            async move { echo(&b, "x").await }
        });
        tokio::task::block_in_place(|| stall.wait_reached());
        let later = tokio::spawn({
            let b = Arc::clone(&b);
            async move { execute(&b, "z").await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stall.release();
        assert_unavailable(&first.await.unwrap());
        assert_unavailable(&later.await.unwrap());
        assert!(!b.ledger().is_writable());
    }
    // Restart: the attempt is recorded once, whether or not its handler ran.
    let b = boundary(dir.path());
    let recovered = tokio::task::block_in_place(|| b.recover_interrupted()).unwrap();
    assert_eq!(recovered, 1);
    let ran = b.ledger().counter("z").unwrap();
    assert!(ran <= 1, "the handler ran {ran} times");
    let again = execute(&b, "z").await;
    assert_eq!(
        (again.status, again.body["original_outcome"].as_str()),
        (500, Some("interrupted")),
        "{}",
        again.body
    );
    assert_eq!(again.body["replayed"], true, "{}", again.body);
    assert_eq!(b.ledger().counter("z").unwrap(), ran, "never re-run");
}
