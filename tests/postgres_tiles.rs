//! The C2SP tlog-tiles routes on a log kept in PostgreSQL: the spec-written
//! client of tests/tiles.rs verifies the checkpoint, the root, the entry
//! bundles and inclusion from the tiles a node serves from the database's
//! stored hashes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

#[path = "tiles/client.rs"]
mod client;
mod postgres;

use client::{check_tree, checkpoint, fetch, TileClient};
use serde_json::json;

#[test]
fn a_spec_client_verifies_a_postgres_log_through_the_tiles() {
    let db = postgres::fresh_database("tiles");
    let keys = tempfile::tempdir().unwrap();
    let key = postgres::keygen(keys.path());
    let node = postgres::start(&db, &key);
    let vkey = String::from_utf8(fetch(&node.base, "/ledger/key").3).unwrap();
    for (from, to) in [(0, 1), (1, 257), (257, 300)] {
        std::thread::scope(|scope| {
            for part in 0..3u64 {
                let node = &node;
                scope.spawn(move || {
                    for i in (from..to).filter(|i| i % 3 == part) {
                        let body = json!({"action": "echo", "payload": {"i": i}, "nonce": format!("pg-tile-{i}")});
                        assert_eq!(node.execute(&body).0, 200);
                    }
                });
            }
        });
        let (note, cp) = checkpoint(&node.base, &vkey);
        assert_eq!(cp.size, to);
        assert_eq!(
            note.as_bytes(),
            &fetch(&node.base, "/ledger/checkpoint").3[..],
            "the same note"
        );
        check_tree(&node.base, &cp, &[0, 1, 255, 256, to - 1]);
        assert_eq!(
            TileClient::new(&node.base, cp.size).mth(0, cp.size),
            cp.root
        );
    }
    assert_eq!(fetch(&node.base, "/tile/0/001").0, 404);
    assert_eq!(fetch(&node.base, "/tile/0/001.p/45").0, 404);
    assert_eq!(fetch(&node.base, "/tile/entries/001.p/45").0, 404);
    assert_eq!(fetch(&node.base, "/tile/0/001.p/44").0, 200);
    // `openexec audit --url` audits the node through the same tiles.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openexec"))
        .env_clear()
        .args(["audit", "--url", &node.base, "--key", &vkey])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("OK: 300 entries of openexec.local/log verified through 3 hash tiles and 2 entry bundles"),
        "{stdout}"
    );
}
