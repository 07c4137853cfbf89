//! Three nodes on one PostgreSQL database behave as one log through a
//! `kill -9` of one of them under load: every acknowledged receipt
//! verifies, indexes are contiguous, every checkpoint seen is consistent
//! with every later one, no nonce runs twice (nonces are raced across the
//! nodes), the dead node's reservations are resolved by the survivors, and
//! the `counter` handler's count matches the executions recorded.
//! Needs `OPENEXEC_TEST_DB_URL` (see `scripts/pg-throwaway`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod postgres;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::{fresh_database, keygen, sql, start, Node};
use serde_json::{json, Value};

/// Client threads with nonces of their own, and threads that race one
/// sequence of nonces, each on its own node.
const OWN: usize = 6;
const RACING: usize = 3;

/// One client thread: requests until `stop`, every acknowledged answer kept.
fn client(nodes: &[Node], thread: usize, stop: &AtomicBool) -> Vec<Value> {
    let mut answered = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (node, nonce) = if thread < OWN {
            (
                &nodes[(thread + i) % nodes.len()],
                format!("own-{thread}-{i}"),
            )
        } else {
            (&nodes[thread - OWN], format!("raced-{i}"))
        };
        let body = if i % 3 == 0 && thread < OWN {
            json!({"action": "echo", "payload": {"i": i}, "nonce": nonce})
        } else {
            json!({"action": "counter", "payload": {"name": "load"}, "nonce": nonce})
        };
        i += 1;
        // A dead node does not answer; a live one may answer 409 (nonce in
        // flight on another node) or 503 (its request was cut off).
        if let Some((200, answer)) = node.try_execute(&body) {
            answered.push(answer);
        }
    }
    answered
}

#[test]
fn three_nodes_are_one_log_through_a_kill_9_under_load() {
    let db = fresh_database("nodes");
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path());
    let mut nodes = vec![start(&db, &key), start(&db, &key), start(&db, &key)];
    let stop = AtomicBool::new(false);
    let answered: Vec<Value> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..OWN + RACING)
            .map(|t| {
                let (nodes, stop) = (&nodes, &stop);
                scope.spawn(move || client(nodes, t, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY of the test's own bookkeeping: the clients only read
        // `base` of the node; killing the process leaves it in place.
        let pid = nodes[1].child.id();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(2500));
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    nodes[1].kill9();
    assert!(answered.len() > 50, "too little load: {}", answered.len());

    // The dead node's reservations are recorded by the survivors once its
    // lease has run out.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let left: i64 = sql(
            &db,
            &["SELECT count(*) FROM openexec_nonces WHERE entry_idx IS NULL"],
        )[0]
        .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} reservations of the dead node never resolved"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let vkey = nodes[0].vkey();
    postgres::verify_all(&vkey, &answered);
    let log = postgres::entries(&db);
    postgres::assert_contiguous(&db, &log);
    postgres::assert_each_nonce_ran_once(&log);

    let verifier = openexec::core::signing::LogVerifier::from_vkey(&vkey).unwrap();
    let mut trees: Vec<_> = answered
        .iter()
        .map(|a| postgres::tree_of(a["receipt"]["checkpoint"].as_str().unwrap(), &verifier))
        .collect();
    for row in sql(&db, &["SELECT note FROM openexec_checkpoints"]) {
        trees.push(postgres::tree_of(row.get(0), &verifier));
    }
    for node in [&nodes[0], &nodes[2]] {
        if let (200, Value::String(note)) = node.get("/ledger/checkpoint") {
            trees.push(postgres::tree_of(&note, &verifier));
        }
    }
    postgres::assert_consistent(&nodes[0], &trees);

    let counted: i64 = sql(
        &db,
        &["SELECT value FROM openexec_counters WHERE name = 'load'"],
    )[0]
    .get(0);
    let counter_entries = |outcome: &str| {
        log.iter()
            .filter(|(_, e)| e["action"] == "counter" && e["outcome"] == outcome)
            .count() as i64
    };
    let (executed, interrupted) = (counter_entries("executed"), counter_entries("interrupted"));
    assert!(
        executed <= counted && counted <= executed + interrupted,
        "counter {counted}, executed {executed}, interrupted {interrupted}"
    );
    let mut values: Vec<u64> = answered
        .iter()
        .filter(|a| a["action"] == "counter" && a["outcome"] == "executed")
        .map(|a| a["result"]["value"].as_u64().unwrap())
        .collect();
    let acknowledged = values.len();
    values.sort_unstable();
    values.dedup();
    assert_eq!(
        values.len(),
        acknowledged,
        "two executions returned one counter value"
    );
    assert!(i64::try_from(acknowledged).unwrap() <= executed);
    assert!(values
        .last()
        .is_none_or(|v| i64::try_from(*v).unwrap() <= counted));
    for node in [&nodes[0], &nodes[2]] {
        assert_eq!(node.get("/ready").0, 200, "{}", node.stderr());
    }
    let (sound, said) = postgres::audit(&db);
    assert!(sound, "{said}");
}
