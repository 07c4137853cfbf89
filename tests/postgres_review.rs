//! The PostgreSQL backend under a reviewer's cases: a node paused past
//! its lease, a database that stops answering, a stale completion, and
//! what `openexec audit` checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres;

use openexec::core::entry::{ApprovalSummary, Effects, EntryDraft, Outcome};
use openexec::core::hash::Hash;
use openexec::ledger::{Ledger, LedgerConfig};
use openexec::store::{nonce_key, Completion, PendingNonce, Reservation};
use postgres::{fresh_database, sql};

const TENANT: &str = "acme";

fn draft(exec_id: &str, nonce: &str, outcome: Outcome, reason: &str) -> EntryDraft {
    EntryDraft {
        exec_id: exec_id.into(),
        tenant: TENANT.into(),
        action: "counter".into(),
        nonce: nonce.into(),
        request_hash: Hash::sha256(b"request"),
        payload_commitment: Hash::sha256(b"payload"),
        result_commitment: None,
        approval: ApprovalSummary::none(),
        reason: reason.into(),
        outcome,
        replay_of: None,
        effects: None,
        registry: None,
        principal: None,
    }
}

fn ledger(db: &str, dir: &std::path::Path, key: &std::path::Path) -> Ledger {
    let mut config = LedgerConfig::new(dir);
    config.db_url = Some(db.to_owned());
    config.key_path = Some(key.to_owned());
    Ledger::open(&config).unwrap()
}

/// OPERATIONS.md: "A node paused past its lease whose attempt was so
/// recorded records its own entry too, without completing the nonce".
/// The survivor's `interrupted` entry carries the reservation's exec_id;
/// the paused node's own entry carries the same exec_id, and
/// openexec_entries.exec_id is UNIQUE: the insert fails, the whole batch
/// is refused, and the executed attempt is never recorded.
#[test]
fn a_paused_node_records_its_own_entry_after_a_survivor_recorded_interrupted() {
    let db = fresh_database("pgreview_paused");
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let key = dir_a.path().join("log.key");
    let a = ledger(&db, dir_a.path(), &key);
    let b = ledger(&db, dir_b.path(), &key);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let exec_id = "00000000-0000-4000-8000-000000000001";
    let nonce = "paused-1";
    let k = nonce_key(TENANT, nonce);
    let record = PendingNonce {
        request_hash: Hash::sha256(b"request"),
        exec_id: exec_id.into(),
        approval_key: None,
        action: "counter".into(),
        tenant: TENANT.into(),
        nonce: nonce.into(),
        effects: Effects::AtMostOnce,
        principal: None,
    };
    assert_eq!(
        rt.block_on(a.reserve(k.clone(), record)).unwrap(),
        Reservation::Reserved
    );
    // Node A's handler is "running"; A is cut off past its lease (simulated
    // by moving its lease into the past; retried if A's 1 s renewal wins).
    let mut recorded = false;
    for _ in 0..50 {
        sql(
            &db,
            &["UPDATE openexec_nodes SET lease_until = now() - interval '1 minute'"],
        );
        let pending = b.pending_reservations().unwrap();
        if pending.is_empty() {
            continue;
        }
        let d = draft(
            exec_id,
            nonce,
            Outcome::Interrupted,
            "interrupted_at_restart",
        );
        match b.append_completing_blocking(d, None, Some(Completion::reserved(k.clone()))) {
            Ok(_) => {
                recorded = true;
                break;
            }
            Err(e) => eprintln!("survivor retry: {e}"),
        }
    }
    assert!(
        recorded,
        "the survivor never recorded the interrupted attempt"
    );

    // Node A comes back; its handler ran; it records `executed`, as the
    // docs promise it can.
    let d = draft(exec_id, nonce, Outcome::Executed, "ok");
    let own = a.append_completing_blocking(d, None, Some(Completion::reserved(k.clone())));
    let rows: i64 = sql(&db, &["SELECT count(*) FROM openexec_entries"])[0].get(0);
    eprintln!(
        "A's own entry: {:?}; entries in the log: {rows}",
        own.as_ref().map(|x| x.entry.index)
    );
    assert!(
        own.is_ok(),
        "the paused node's executed attempt was not recorded: {:?}",
        own.err()
    );
    assert_eq!(rows, 2, "the survivor's entry and the paused node's own");
    // The nonce stays completed by the survivor's entry; the late entry
    // is kept unindexed and the log audits clean.
    let done: i64 = sql(&db, &["SELECT entry_idx FROM openexec_nonces"])[0].get(0);
    assert_eq!(done, 0);
    let indexed: i64 = sql(
        &db,
        &["SELECT count(*) FROM openexec_entries WHERE exec_id IS NOT NULL"],
    )[0]
    .get(0);
    assert_eq!(indexed, 1);
    a.shutdown();
    b.shutdown();
    let report = openexec::pg::audit::audit(&db).unwrap();
    assert!(
        report.first_bad.is_none(),
        "audit: {:?}",
        report.first_bad.map(|f| f.to_string())
    );
    assert_eq!(report.entries, 2);
}

fn pending(exec_id: &str, nonce: &str) -> PendingNonce {
    PendingNonce {
        request_hash: Hash::sha256(b"request"),
        exec_id: exec_id.into(),
        approval_key: None,
        action: "counter".into(),
        tenant: TENANT.into(),
        nonce: nonce.into(),
        effects: Effects::AtMostOnce,
        principal: None,
    }
}

/// The same unique violation refuses every request that shares the batch:
/// here an unrelated attempt whose handler ran and whose completing entry
/// is refused, leaving its nonce in flight under a live node.
#[test]
fn a_late_entry_in_a_batch_does_not_refuse_the_others() {
    let db = fresh_database("pgreview_collateral");
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let key = dir_a.path().join("log.key");
    let a = ledger(&db, dir_a.path(), &key);
    let b = ledger(&db, dir_b.path(), &key);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (x, n1) = ("00000000-0000-4000-8000-000000000021", "paused-2");
    let (y, n2) = ("00000000-0000-4000-8000-000000000022", "innocent-2");
    let (k1, k2) = (nonce_key(TENANT, n1), nonce_key(TENANT, n2));
    assert_eq!(
        rt.block_on(a.reserve(k1.clone(), pending(x, n1))).unwrap(),
        Reservation::Reserved
    );
    let mut recorded = false;
    for _ in 0..50 {
        sql(
            &db,
            &["UPDATE openexec_nodes SET lease_until = now() - interval '1 minute'"],
        );
        if b.pending_reservations().unwrap().is_empty() {
            continue;
        }
        let d = draft(x, n1, Outcome::Interrupted, "interrupted_at_restart");
        if b.append_completing_blocking(d, None, Some(Completion::reserved(k1.clone())))
            .is_ok()
        {
            recorded = true;
            break;
        }
    }
    assert!(recorded);
    assert_eq!(
        rt.block_on(a.reserve(k2.clone(), pending(y, n2))).unwrap(),
        Reservation::Reserved
    );
    let holder = hold_head_lock(&db);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let first = a
        .queue_append(
            draft(
                "00000000-0000-4000-8000-000000000023",
                "other",
                Outcome::Rejected,
                "approval_reused",
            ),
            None,
            None,
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let doomed = a
        .queue_append(
            draft(x, n1, Outcome::Executed, "ok"),
            None,
            Some(Completion::reserved(k1)),
        )
        .unwrap();
    let innocent = a
        .queue_append(
            draft(y, n2, Outcome::Executed, "ok"),
            None,
            Some(Completion::reserved(k2)),
        )
        .unwrap();
    holder.join().unwrap();
    let first = rt.block_on(a.appended(first));
    let doomed = rt.block_on(a.appended(doomed));
    let innocent = rt.block_on(a.appended(innocent));
    let in_flight: i64 = sql(
        &db,
        &["SELECT count(*) FROM openexec_nonces WHERE entry_idx IS NULL"],
    )[0]
    .get(0);
    eprintln!(
        "first: {:?}\ndoomed: {:?}\ninnocent: {:?}\nnonces still in flight: {in_flight}",
        first.as_ref().map(|a| a.entry.index),
        doomed.as_ref().map(|a| a.entry.index),
        innocent.as_ref().map(|a| a.entry.index)
    );
    assert!(
        innocent.is_ok(),
        "an unrelated executed attempt was refused with the paused node's entry"
    );
    assert!(
        first.is_ok() && doomed.is_ok(),
        "first {:?} late {:?}",
        first.err(),
        doomed.err()
    );
    assert_eq!(in_flight, 0);
}

/// A database session that stops answering (here: the writer's backend
/// frozen with SIGSTOP, as a black-holed network or a hung server would
/// look): the append is answered within the writer's round-trip bound,
/// the node reports itself not writable, and it recovers on a new
/// connection.
#[test]
fn a_writer_session_that_stops_answering_fails_the_append_in_time_and_recovers() {
    let db = fresh_database("pgreview_hang");
    let name = postgres::database_of(&db);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("log.key");
    let a = std::sync::Arc::new(ledger(&db, dir.path(), &key));
    a.append(
        draft(
            "00000000-0000-4000-8000-000000000010",
            "h-0",
            Outcome::Rejected,
            "approval_reused",
        ),
        None,
    )
    .unwrap();
    let rows = sql(
        &postgres::test_db_url(),
        &[&format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND query = 'COMMIT'"
        )],
    );
    assert_eq!(rows.len(), 1, "the writer's session");
    let pid: i32 = rows[0].get(0);
    let stop = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
    };
    stop("-STOP");
    let (tx, rx) = std::sync::mpsc::channel();
    let a2 = std::sync::Arc::clone(&a);
    std::thread::spawn(move || {
        let r = a2.append(
            draft(
                "00000000-0000-4000-8000-000000000011",
                "h-1",
                Outcome::Rejected,
                "approval_reused",
            ),
            None,
        );
        let _ = tx.send(r.map(|x| x.entry.index));
    });
    let started = std::time::Instant::now();
    let waited = rx.recv_timeout(std::time::Duration::from_secs(20));
    let elapsed = started.elapsed();
    let writable = a.is_writable();
    stop("-CONT");
    eprintln!("after {elapsed:?}: answer {waited:?}, is_writable {writable}");
    assert!(
        waited.is_ok(),
        "the append was still unanswered after 20 s (writable: {writable})"
    );
    assert!(
        !writable,
        "the node stayed writable while its writer got no answer"
    );
    // The writer recovers on a new connection by itself, with no work.
    let ready = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        a.is_writable()
    });
    assert!(
        ready,
        "the node did not become writable again after SIGCONT"
    );
    let next = a.append(
        draft(
            "00000000-0000-4000-8000-000000000012",
            "h-2",
            Outcome::Rejected,
            "approval_reused",
        ),
        None,
    );
    assert!(next.is_ok(), "after SIGCONT: {:?}", next.err());
    assert!(a.is_writable());
}

/// `openexec audit --db-url` checks the head row's `checkpoint`
/// column, which is what every node serves (`/ledger/checkpoint`, `/status`)
/// and what fresh receipts (`/receipts/{exec_id}`) carry.
#[test]
fn audit_checks_the_served_head_checkpoint() {
    let db = fresh_database("pgreview_audit");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("log.key");
    let a = ledger(&db, dir.path(), &key);
    for i in 0..3 {
        a.append(
            draft(
                &format!("00000000-0000-4000-8000-00000000003{i}"),
                "aud",
                Outcome::Rejected,
                "approval_reused",
            ),
            None,
        )
        .unwrap();
    }
    a.shutdown();
    drop(a);
    let clean = openexec::pg::audit::audit(&db).unwrap();
    assert!(
        clean.first_bad.is_none(),
        "{:?}",
        clean.first_bad.map(|f| f.to_string())
    );
    // A validly signed but stale checkpoint (size 0) put in the head row.
    sql(&db, &["UPDATE openexec_head SET checkpoint = (SELECT note FROM openexec_checkpoints WHERE size = 0)"]);
    let report = openexec::pg::audit::audit(&db).unwrap();
    eprintln!(
        "audit: entries {} checkpoints {} first_bad {:?}",
        report.entries,
        report.checkpoints,
        report.first_bad.as_ref().map(ToString::to_string)
    );
    let bad = report.first_bad.map(|f| f.to_string()).unwrap_or_default();
    assert!(
        bad.contains("checkpoint"),
        "audit accepted a head row whose served checkpoint is not the head's: {bad:?}"
    );
}

/// A survivor releases a paused node's idempotent-downstream reservation
/// (exec_id X); the paused node, back, reserves the nonce again for a new
/// attempt (Y). Its late entry for X must not complete Y's reservation:
/// it is recorded, and Y's stays in flight until Y's own entry.
#[test]
fn a_stale_completion_does_not_close_a_newer_reservation_of_the_nonce() {
    let db = fresh_database("pgreview_stale");
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let key = dir_a.path().join("log.key");
    let a = ledger(&db, dir_a.path(), &key);
    let b = ledger(&db, dir_b.path(), &key);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (x, y, n) = (
        "00000000-0000-4000-8000-000000000041",
        "00000000-0000-4000-8000-000000000042",
        "stale-1",
    );
    let k = nonce_key(TENANT, n);
    let mut first = pending(x, n);
    first.effects = Effects::IdempotentDownstream;
    assert_eq!(
        rt.block_on(a.reserve(k.clone(), first)).unwrap(),
        Reservation::Reserved
    );
    let mut released = false;
    for _ in 0..50 {
        sql(
            &db,
            &["UPDATE openexec_nodes SET lease_until = now() - interval '1 minute'"],
        );
        if b.pending_reservations().unwrap().is_empty() {
            continue;
        }
        let d = draft(x, n, Outcome::Interrupted, "interrupted_at_restart");
        if b.append_completing_blocking(d, None, Some(Completion::released(k.clone())))
            .is_ok()
        {
            released = true;
            break;
        }
    }
    assert!(released, "the survivor never released the reservation");
    assert_eq!(
        rt.block_on(a.reserve(k.clone(), pending(y, n))).unwrap(),
        Reservation::Reserved
    );
    let late = a.append_completing_blocking(
        draft(x, n, Outcome::Executed, "ok"),
        None,
        Some(Completion::reserved(k.clone())),
    );
    assert!(late.is_ok(), "the late entry: {:?}", late.err());
    let rows = sql(&db, &["SELECT exec_id, entry_idx FROM openexec_nonces"]);
    let (held, done): (String, Option<i64>) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(
        (held.as_str(), done),
        (y, None),
        "Y's reservation was closed by X's late entry"
    );
    let own = a.append_completing_blocking(
        draft(y, n, Outcome::Executed, "ok"),
        None,
        Some(Completion::reserved(k)),
    );
    let own = own.unwrap();
    let done: Option<i64> = sql(&db, &["SELECT entry_idx FROM openexec_nonces"])[0].get(0);
    assert_eq!(done, Some(i64::try_from(own.entry.index).unwrap()));
    a.shutdown();
    b.shutdown();
    let report = openexec::pg::audit::audit(&db).unwrap();
    assert!(
        report.first_bad.is_none(),
        "audit: {:?}",
        report.first_bad.map(|f| f.to_string())
    );
}

/// Reads that wait for the database (`/receipts`, proofs) run off the HTTP
/// workers: with `openexec_entries` locked by another session, requests
/// for receipts wait, and `/health` on the same two-worker node is still
/// answered at once.
#[test]
fn reads_waiting_for_the_database_do_not_hold_up_the_http_workers() {
    let db = fresh_database("pgreview_workers");
    let keys = tempfile::tempdir().unwrap();
    let node = postgres::start(&db, &postgres::keygen(keys.path()));
    assert_eq!(node.get("/health").0, 200);
    let db2 = db.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let (mut c, conn) = tokio_postgres::connect(&db2, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let tx = c.transaction().await.unwrap();
                tx.batch_execute("LOCK TABLE openexec_entries IN ACCESS EXCLUSIVE MODE")
                    .await
                    .unwrap();
                locked_tx.send(()).unwrap();
                tokio::time::sleep(std::time::Duration::from_secs(6)).await;
                tx.commit().await.unwrap();
            });
    });
    locked_rx.recv().unwrap();
    let waiting: Vec<_> = (0..6)
        .map(|i| {
            let url = format!(
                "{}/receipts/00000000-0000-4000-8000-0000000000{:02}",
                node.base,
                50 + i
            );
            std::thread::spawn(move || {
                let _ = postgres::agent().get(&url).call();
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    let (status, _) = node.get("/health");
    let took = started.elapsed();
    holder.join().unwrap();
    waiting.into_iter().for_each(|t| t.join().unwrap());
    eprintln!("/health: {status} in {took:?}");
    assert!(
        took < std::time::Duration::from_secs(2),
        "/health waited {took:?} behind reads waiting for the database"
    );
}

/// A request the database itself refuses (here an exec_id with a NUL
/// byte, which a TEXT column does not take) refuses itself alone, not the
/// requests batched with it.
#[test]
fn a_request_the_database_refuses_does_not_refuse_its_batch() {
    let db = fresh_database("pgreview_split");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("log.key");
    let a = ledger(&db, dir.path(), &key);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let holder = hold_head_lock(&db);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let first = a
        .queue_append(
            draft(
                "00000000-0000-4000-8000-000000000060",
                "s-0",
                Outcome::Rejected,
                "approval_reused",
            ),
            None,
            None,
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let bad = a
        .queue_append(
            draft("bad\0id", "s-1", Outcome::Rejected, "approval_reused"),
            None,
            None,
        )
        .unwrap();
    let good = a
        .queue_append(
            draft(
                "00000000-0000-4000-8000-000000000061",
                "s-2",
                Outcome::Rejected,
                "approval_reused",
            ),
            None,
            None,
        )
        .unwrap();
    holder.join().unwrap();
    let first = rt.block_on(a.appended(first));
    let bad = rt.block_on(a.appended(bad));
    let good = rt.block_on(a.appended(good));
    eprintln!(
        "first {:?} bad {:?} good {:?}",
        first.as_ref().err(),
        bad.as_ref().err(),
        good.as_ref().err()
    );
    assert!(first.is_ok());
    assert!(bad.is_err(), "the database took an exec_id with a NUL byte");
    assert!(
        good.is_ok(),
        "a request was refused with the one the database refused: {:?}",
        good.err()
    );
}

/// Holds the head row's lock for 2 s from another connection, so that a
/// node's writer is busy with a first batch while the next requests queue
/// up together.
fn hold_head_lock(db: &str) -> std::thread::JoinHandle<()> {
    let db = db.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let (mut c, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let tx = c.transaction().await.unwrap();
                tx.query_one(
                    "SELECT size FROM openexec_head WHERE id = 0 FOR UPDATE",
                    &[],
                )
                .await
                .unwrap();
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                tx.commit().await.unwrap();
            });
    })
}
