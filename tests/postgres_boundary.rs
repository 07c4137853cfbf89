//! The boundary on PostgreSQL, through real servers over HTTP: execute,
//! replay, conflict, receipts that `openexec verify` accepts, a nonce
//! raced across two nodes that executes once, a node with another key
//! refused, and a node cut off from the database that stops being ready.
//! Needs `OPENEXEC_TEST_DB_URL` (see `scripts/pg-throwaway`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod postgres;

use std::time::{Duration, Instant};

use postgres::{fresh_database, keygen, sql, start, try_start, verify_all};
use serde_json::{json, Value};

#[test]
fn execute_replay_conflict_and_receipts_that_verify() {
    let db = fresh_database("boundary");
    let keys = tempfile::tempdir().unwrap();
    let node = start(&db, &keygen(keys.path()));
    assert_eq!(node.get("/ready").0, 200);

    let echo = json!({"action": "echo", "payload": {"x": 1}, "nonce": "n-1"});
    let (status, first) = node.execute(&echo);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["outcome"], "executed");
    let (status, again) = node.execute(&echo);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["outcome"], "replayed");
    assert_eq!(again["exec_id"], first["exec_id"]);
    assert_eq!(again["result"], first["result"]);

    let conflict = json!({"action": "echo", "payload": {"x": 2}, "nonce": "n-1"});
    let (status, refused) = node.execute(&conflict);
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "nonce_conflict");

    let mut responses = vec![first.clone(), again];
    for i in 0..3 {
        let body =
            json!({"action": "counter", "payload": {"name": "visits"}, "nonce": format!("c-{i}")});
        let (status, counted) = node.execute(&body);
        assert_eq!(status, 200, "{counted}");
        assert_eq!(counted["result"]["value"], i + 1);
        responses.push(counted);
    }
    verify_all(&node.vkey(), &responses);

    // A fresh receipt by exec_id verifies too, against the head now.
    let exec_id = first["exec_id"].as_str().unwrap();
    let (status, fresh) = node.get(&format!("/receipts/{exec_id}"));
    assert_eq!(status, 200, "{fresh}");
    verify_all(&node.vkey(), &[fresh]);
    let (status, health) = node.get("/health");
    assert_eq!(status, 200);
    assert_eq!(health["ledger"]["size"], 6, "{health}");
    let counted: i64 = sql(
        &db,
        &["SELECT value FROM openexec_counters WHERE name = 'visits'"],
    )[0]
    .get(0);
    assert_eq!(counted, 3);
    let log = postgres::entries(&db);
    postgres::assert_contiguous(&db, &log);
    postgres::assert_each_nonce_ran_once(&log);

    let (sound, said) = postgres::audit(&db);
    assert!(sound, "{said}");
    assert!(said.contains("OK: 6 entries"), "{said}");
    // One changed byte in a stored entry is found.
    sql(&db, &["UPDATE openexec_entries SET record = overlay(record placing 'X' from 3 for 1) WHERE idx = 4"]);
    let (sound, said) = postgres::audit(&db);
    assert!(!sound, "{said}");
    assert!(said.contains("FAILED: entry 4"), "{said}");
}

#[test]
fn a_nonce_raced_across_two_nodes_executes_once() {
    let db = fresh_database("race");
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path());
    let nodes = [start(&db, &key), start(&db, &key)];
    let nonces = 12;
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let mut racers = Vec::new();
        for n in 0..nonces {
            for node in &nodes {
                for _ in 0..2 {
                    racers.push(scope.spawn(move || {
                        let body = json!({"action": "counter", "payload": {"name": "raced"}, "nonce": format!("r-{n}")});
                        node.execute(&body)
                    }));
                }
            }
        }
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let executed: Vec<&Value> = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b["outcome"] == "executed")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        executed.len(),
        nonces,
        "each nonce executes once: {answers:?}"
    );
    for (status, body) in &answers {
        let fine = (*status == 200
            && ["executed", "replayed"].contains(&body["outcome"].as_str().unwrap_or("")))
            || (*status == 409 && body["code"] == "nonce_in_flight");
        assert!(fine, "{status} {body}");
    }
    let mut values: Vec<u64> = executed
        .iter()
        .map(|b| b["result"]["value"].as_u64().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, (1..=nonces as u64).collect::<Vec<_>>());
    let counted: i64 = sql(
        &db,
        &["SELECT value FROM openexec_counters WHERE name = 'raced'"],
    )[0]
    .get(0);
    assert_eq!(counted, nonces as i64);
    let acknowledged: Vec<Value> = answers
        .into_iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    verify_all(&nodes[0].vkey(), &acknowledged);
    let log = postgres::entries(&db);
    postgres::assert_contiguous(&db, &log);
    postgres::assert_each_nonce_ran_once(&log);
}

#[test]
fn a_node_with_another_key_is_refused() {
    let db = fresh_database("otherkey");
    let keys = tempfile::tempdir().unwrap();
    let _first = start(&db, &keygen(keys.path()));
    let other = tempfile::tempdir().unwrap();
    let refused = try_start(&db, &keygen(other.path()), &[])
        .err()
        .expect("refused");
    assert!(refused.contains("same origin and key file"), "{refused}");
}

#[test]
fn a_node_cut_off_from_the_database_is_not_ready_and_comes_back() {
    let db = fresh_database("cutoff");
    let name = postgres::database_of(&db);
    let keys = tempfile::tempdir().unwrap();
    let node = start(&db, &keygen(keys.path()));
    let (status, _) = node.execute(&json!({"action": "echo", "payload": {}, "nonce": "before"}));
    assert_eq!(status, 200);
    let admin = postgres::test_db_url();
    sql(
        &admin,
        &[
            &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ),
        ],
    );
    let (status, refused) =
        node.execute(&json!({"action": "echo", "payload": {}, "nonce": "during"}));
    assert_eq!(status, 503, "{refused}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.get("/ready").0 == 200 {
        assert!(
            Instant::now() < deadline,
            "still ready without its database"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sql(
        &admin,
        &[&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.get("/ready").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again once the database is back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, after) = node.execute(&json!({"action": "echo", "payload": {}, "nonce": "after"}));
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        after["receipt"]["leaf_index"], 1,
        "nothing was committed while cut off"
    );
    verify_all(&node.vkey(), &[after]);
}

#[test]
fn an_approval_raced_across_two_nodes_is_used_once() {
    let db = fresh_database("approval");
    let keys = tempfile::tempdir().unwrap();
    let key = keygen(keys.path());
    let approver = keys.path().join("approver.pem");
    let public = std::process::Command::new(postgres::binary())
        .args(["approver-keygen", "--out"])
        .arg(&approver)
        .output()
        .unwrap();
    assert!(public.status.success());
    let public_pem = keys.path().join("approver.pub.pem");
    std::fs::write(&public_pem, &public.stdout).unwrap();
    let env = [
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", public_pem.to_str().unwrap()),
        ("CLAWSHIELD_TENANT_ID", "acme"),
    ];
    let nodes = [
        try_start(&db, &key, &env).unwrap(),
        try_start(&db, &key, &env).unwrap(),
    ];
    // A v1 approval binds action and payload, not the nonce: each nonce
    // below is a new attempt with the one approval. Both effect classes:
    // `counter` reserves before it runs, `echo` claims as it records.
    for (action, payload) in [
        ("counter", json!({"name": "approved"})),
        ("echo", json!({"a": 1})),
    ] {
        let minted = std::process::Command::new(postgres::binary())
            .args([
                "approve",
                "--kind",
                "v1",
                "--tenant",
                "acme",
                "--action",
                action,
                "--payload",
            ])
            .arg(payload.to_string())
            .arg("--key")
            .arg(&approver)
            .output()
            .unwrap();
        assert!(minted.status.success(), "{minted:?}");
        let artifact: Value = serde_json::from_slice(&minted.stdout).unwrap();
        let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..8)
                .map(|i| {
                    let (node, artifact, payload) = (&nodes[i % 2], &artifact, &payload);
                    scope.spawn(move || {
                        node.execute(&json!({
                            "action": action,
                            "payload": payload,
                            "nonce": format!("{action}-{i}"),
                            "approval_artifact": artifact,
                        }))
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let executed = answers
            .iter()
            .filter(|(s, b)| *s == 200 && b["outcome"] == "executed")
            .count();
        assert_eq!(executed, 1, "{action}: {answers:?}");
        for (status, body) in &answers {
            assert!(
                (*status == 200 && body["outcome"] == "executed")
                    || (*status == 403 && body["code"] == "approval_reused"),
                "{action}: {status} {body}"
            );
        }
    }
    let counted: i64 = sql(
        &db,
        &["SELECT value FROM openexec_counters WHERE name = 'approved'"],
    )[0]
    .get(0);
    assert_eq!(counted, 1);
    let (sound, said) = postgres::audit(&db);
    assert!(sound, "{said}");
}
