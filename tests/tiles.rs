//! The log read as C2SP `tlog-tiles` by a client written here from the
//! spec (tlog-tiles, tlog-checkpoint, signed-note, RFC 6962 / RFC 9162),
//! using none of the server's code: it verifies `/checkpoint` with the
//! log's verifier key, recomputes the signed root from the tiles, proves
//! inclusion of entries from the tiles alone, checks that entry bundles
//! hash to the level-0 tiles, refuses a tampered tile, and checks an older
//! checkpoint against a newer tree from the tiles.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

#[path = "tiles/client.rs"]
mod client;
mod common;

use client::{
    check_tree, checkpoint, encode_index, fetch, leaf_hash, open_checkpoint, tile_url, Checkpoint,
    TileClient,
};
use common::server::{self, TestServer};
use serde_json::json;

fn grow_to(s: &TestServer, target: u64) {
    let have = s.ledger_size();
    let todo: Vec<u64> = (have..target).collect();
    std::thread::scope(|scope| {
        for chunk in todo.chunks(todo.len().div_ceil(4).max(1)) {
            scope.spawn(move || {
                for i in chunk {
                    let body = json!({"action": "echo", "payload": {"i": i}, "nonce": format!("tile-{i}")});
                    assert_eq!(s.execute(&body).0, 200);
                }
            });
        }
    });
    assert_eq!(s.ledger_size(), target);
}

#[test]
fn a_spec_client_verifies_trees_of_several_sizes_through_the_tiles() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    let (_, empty) = checkpoint(&s.base, &vkey);
    assert_eq!(empty.size, 0);
    assert_eq!(fetch(&s.base, "/tile/0/000.p/1").0, 404);
    assert_eq!(fetch(&s.base, "/tile/entries/000.p/1").0, 404);
    let mut seen = Vec::new();
    for size in [1, 255, 256, 257, 1030] {
        grow_to(&s, size);
        let (note, cp) = checkpoint(&s.base, &vkey);
        assert_eq!(note, s.get("/ledger/checkpoint").1, "the same note");
        assert_eq!(cp.size, size);
        check_tree(
            &s.base,
            &cp,
            &[0, 1, 254, 255, 256, 511, 512, 1000, size - 1],
        );
        // Every earlier checkpoint's root still recomputes from the tiles
        // its tree gives (its partial tiles stay available), and the
        // newer tree's root from the newer tiles: a monitor's consistency
        // check from tiles alone.
        for old in &seen {
            let old: &Checkpoint = old;
            assert_eq!(
                TileClient::new(&s.base, old.size).mth(0, old.size),
                old.root
            );
        }
        seen.push(cp);
    }
}

/// While entries are appended, every checkpoint read verifies from the
/// tiles its tree gives, though the tree has grown by the time they are
/// fetched (the partial tiles of earlier trees stay available).
#[test]
fn checkpoints_verify_from_the_tiles_while_the_log_grows() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    grow_to(&s, 250);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..400 {
                let body =
                    json!({"action": "echo", "payload": {"i": i}, "nonce": format!("grow-{i}")});
                assert_eq!(s.execute(&body).0, 200);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut sizes = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) || sizes.is_empty() {
            let (_, cp) = checkpoint(&s.base, &vkey);
            let client = TileClient::new(&s.base, cp.size);
            assert_eq!(client.mth(0, cp.size), cp.root, "size {}", cp.size);
            sizes.push(cp.size);
        }
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
        assert!(sizes.iter().any(|&n| n > 250 && n < 650), "{sizes:?}");
    });
    assert_eq!(s.ledger_size(), 650);
}

#[test]
fn a_tampered_tile_or_entry_is_refused() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    grow_to(&s, 300);
    let (note, cp) = checkpoint(&s.base, &vkey);
    let client = TileClient::new(&s.base, cp.size);
    assert_eq!(client.mth(0, cp.size), cp.root);
    // One bit of one cached level-0 hash flipped: the root differs.
    client.tiles.borrow_mut().get_mut(&(0, 1)).unwrap()[5] ^= 1;
    assert_ne!(client.mth(0, cp.size), cp.root);
    // An entry changed no longer hashes to its leaf.
    let mut entries = TileClient::new(&s.base, cp.size).bundle(0);
    entries[3][10] ^= 1;
    let fresh = TileClient::new(&s.base, cp.size);
    assert_ne!(leaf_hash(&entries[3]), fresh.tile(0, 0)[96..128]);
    // A checkpoint whose body was altered does not verify.
    let forged = note.replacen(
        &format!("\n{}\n", cp.size),
        &format!("\n{}\n", cp.size + 1),
        1,
    );
    assert!(open_checkpoint(&forged, &vkey).is_err());
}

#[test]
fn paths_the_tree_does_not_hold_are_404() {
    let s = server::start(&[]);
    grow_to(&s, 257);
    for (path, status) in [
        ("/tile/0/000", 200),
        ("/tile/0/000.p/255", 200),
        ("/tile/0/001.p/1", 200),
        ("/tile/1/000.p/1", 200),
        ("/tile/entries/000", 200),
        ("/tile/entries/000.p/7", 200),
        ("/tile/entries/001.p/1", 200),
        ("/tile/0/001", 404),
        ("/tile/0/001.p/2", 404),
        ("/tile/0/002.p/1", 404),
        ("/tile/1/000", 404),
        ("/tile/1/000.p/2", 404),
        ("/tile/2/000.p/1", 404),
        ("/tile/7/000.p/1", 404),
        ("/tile/8/000.p/1", 404),
        ("/tile/63/000.p/1", 404),
        ("/tile/64/000.p/1", 404),
        ("/tile/entries/001", 404),
        ("/tile/entries/001.p/2", 404),
        ("/tile/0/000.p/0", 404),
        ("/tile/0/000.p/+0", 404),
        ("/tile/entries/000.p/+0", 404),
        ("/tile/0/000.p/+1", 404),
        ("/tile/+0/000", 404),
        ("/tile/0/000.p/256", 404),
        ("/tile/0/000.p/01", 404),
        ("/tile/00/000", 404),
        ("/tile/0/0", 404),
        ("/tile/0/x000/000", 404),
        ("/tile/0/x001", 404),
        ("/tile/0/000/", 404),
        ("/tile/data/000", 404),
        ("/tile/0/x018/x446/x744/x073/x709/x551/615", 404),
        ("/tile/0/x018/x446/x744/x073/x709/x551/616", 404),
        ("/tile/0", 404),
        ("/tile/", 404),
    ] {
        let (got, ct, _, body) = fetch(&s.base, path);
        assert_eq!(got, status, "{path}");
        if status == 404 {
            let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(err["code"], "not_found", "{path}: {err}");
            assert!(ct.starts_with("application/json"), "{path}");
        }
    }
    // The partial tile of an earlier tree is a prefix of the full tile.
    let full = fetch(&s.base, "/tile/0/000").3;
    assert_eq!(fetch(&s.base, "/tile/0/000.p/255").3, full[..255 * 32]);
    assert_eq!(fetch(&s.base, "/tile/0/000.p/1").2, "no-cache");
    // Other methods are refused as on every route.
    let r = server::send(server::agent().post(&s.url("/tile/0/000")), None);
    assert_eq!(r.status(), 405);
}

#[test]
fn the_path_encoding_follows_the_spec_example() {
    assert_eq!(encode_index(1_234_067), "x001/x234/067");
    assert_eq!(tile_url(Some(0), 1_234_067, 256), "/tile/0/x001/x234/067");
    assert_eq!(tile_url(None, 5, 12), "/tile/entries/005.p/12");
}

/// Bundles are compressed when the client asks, and decompress to the
/// bytes served uncompressed; hash tiles are not compressed.
#[test]
fn bundles_are_compressed_on_request() {
    use std::io::Read as _;
    let s = server::start(&[]);
    grow_to(&s, 300);
    let r = server::send(
        server::agent()
            .get(&s.url("/tile/0/000"))
            .set("Accept-Encoding", "zstd, gzip"),
        None,
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("Content-Encoding"), None);
    for path in ["/tile/entries/000", "/tile/entries/001.p/44"] {
        let plain = fetch(&s.base, path);
        assert_eq!(plain.0, 200, "{path}");
        let r = server::send(
            server::agent()
                .get(&s.url(path))
                .set("Accept-Encoding", "zstd"),
            None,
        );
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.header("Content-Encoding"), Some("zstd"), "{path}");
        assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
        assert_eq!(r.header("Cache-Control"), Some(plain.2.as_str()), "{path}");
        assert!(r
            .header("Vary")
            .is_some_and(|v| v.contains("accept-encoding") || v.contains("Accept-Encoding")));
        let mut packed = Vec::new();
        r.into_reader().read_to_end(&mut packed).unwrap();
        assert_eq!(zstd::decode_all(&packed[..]).unwrap(), plain.3, "{path}");
        assert!(
            packed.len() * 3 < plain.3.len(),
            "{path}: {} of {}",
            packed.len(),
            plain.3.len()
        );
    }
}
