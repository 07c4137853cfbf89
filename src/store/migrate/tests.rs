//! The conversion of a format-1 store, built here by hand: a format-2
//! store's files turned back into format 1's (the mark's and the ring's
//! format word, sled's `pending` and `approvals` trees, no journal).

use sha2::{Digest, Sha256};

use super::*;
use crate::core::entry::Effects;
use crate::core::hash::Hash;
use crate::store::{
    batch_appending, crash_image, nonce_key, PendingNonce, Reservation, Store, StoredEntry,
};

fn entry(index: u64, nonce: &str) -> StoredEntry {
    StoredEntry {
        index,
        bytes: serde_json::to_vec(&serde_json::json!({"tenant": "t", "nonce": nonce})).unwrap(),
        signature: [0; 64],
        index_exec_id: None,
        content: None,
        completion: None,
        approval_key: None,
    }
}

fn commit(store: &Store, index: u64, nonce: &str) {
    let mut batch = batch_appending(store, vec![entry(index, nonce)]);
    batch.checkpoint = Some((index + 1, format!("checkpoint {}\n", index + 1)));
    store.commit(&batch).unwrap();
}

fn pending(n: u8, approval: Option<&str>, effects: Effects) -> PendingNonce {
    PendingNonce {
        request_hash: Hash::from_bytes([n; 32]),
        exec_id: format!("exec-{n}"),
        approval_key: approval.map(str::to_owned),
        action: "counter".into(),
        tenant: "t".into(),
        nonce: format!("n-{n}"),
        effects,
        principal: None,
    }
}

/// Rewrites the format word of every ring copy to `format` (and its
/// digest), as a format-1 build wrote them.
fn ring_in_format(dir: &Path, format: u64) {
    let path = dir.join("commits.ring");
    let mut ring = std::fs::read(&path).unwrap();
    for copy in ring.chunks_exact_mut(2048) {
        if &copy[..8] != b"OXCOMMIT" {
            continue;
        }
        copy[100..108].copy_from_slice(&format.to_be_bytes());
        let end = 12 + u32::from_be_bytes(copy[8..12].try_into().unwrap()) as usize;
        let digest = Sha256::digest(&copy[..end]);
        copy[end..end + 32].copy_from_slice(&digest);
    }
    std::fs::write(&path, ring).unwrap();
}

/// A format-1 store whose ring holds a newer head (size 2) than sled
/// (size 1), with two reservations in flight (one from a build before
/// effects classes, holding approval `k-a`) and approval `k-old` consumed
/// for good.
fn format_1_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path())).unwrap();
    commit(&store, 0, "x");
    commit(&store, 1, "y");
    let image = crash_image(dir.path());
    drop(store);
    let path = image.path();
    let db = open::open_sled(&StoreConfig::new(path)).unwrap();
    let meta = db.open_tree("meta").unwrap();
    let mut mark = meta.get(SegmentsMark::META_KEY).unwrap().unwrap().to_vec();
    mark[16..24].copy_from_slice(&1u64.to_be_bytes());
    meta.insert(SegmentsMark::META_KEY, mark).unwrap();
    let pending_tree = db.open_tree("pending").unwrap();
    let mut old = encode_pending(&pending(1, Some("k-a"), Effects::AtMostOnce)).unwrap();
    old[1] = 0;
    pending_tree.insert(nonce_key("t", "a"), old).unwrap();
    let b = encode_pending(&pending(2, None, Effects::IdempotentDownstream)).unwrap();
    pending_tree.insert(nonce_key("t", "b"), b).unwrap();
    let approvals = db.open_tree("approvals").unwrap();
    approvals.insert("k-a", nonce_key("t", "a")).unwrap();
    approvals.insert("k-old", nonce_key("t", "z")).unwrap();
    db.flush().unwrap();
    drop(db);
    std::fs::remove_file(path.join(journal::FILE)).unwrap();
    ring_in_format(path, 1);
    image
}

#[test]
fn a_format_1_store_is_refused_at_open_and_converted_by_migrate_with_its_reservations() {
    let image = format_1_store();
    let path = image.path();
    let refused = Store::open(&StoreConfig::new(path)).err().unwrap();
    assert!(
        matches!(refused, StoreError::UnsupportedFormat { found: 1 }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("openexec migrate --db-url"),
        "{refused}"
    );
    assert!(
        !path.join(journal::FILE).exists(),
        "the refused open wrote nothing"
    );
    // A journal left by a conversion that crashed is written again.
    std::fs::write(path.join(journal::FILE), b"leftover").unwrap();
    let done = migrate(path).unwrap();
    assert_eq!(
        done,
        Migrated {
            already: false,
            from: 1,
            reservations: 2,
            approvals_kept: 1,
            ring_promoted: true,
        }
    );
    let store = Store::open(&StoreConfig::new(path)).unwrap();
    assert_eq!(store.head().unwrap().map(|h| h.size), Some(2));
    assert_eq!(store.latest_checkpoint().unwrap().map(|c| c.0), Some(2));
    assert!(store.unsound_ring_slots().unwrap().is_empty());
    let found = store.pending_reservations().unwrap();
    assert_eq!(
        found,
        vec![
            (
                nonce_key("t", "a"),
                pending(1, Some("k-a"), Effects::AtMostOnce)
            ),
            (
                nonce_key("t", "b"),
                pending(2, None, Effects::IdempotentDownstream)
            ),
        ]
    );
    assert!(
        store.approval_used("k-a").unwrap(),
        "held by its reservation"
    );
    assert!(store.approval_used("k-old").unwrap(), "consumed for good");
    assert!(!store.approval_used("k-new").unwrap());
    assert_eq!(store.inner.approvals.len(), 1);
    assert!(matches!(
        store
            .reserve(
                &nonce_key("t", "a"),
                &pending(3, None, Effects::AtMostOnce),
                None
            )
            .unwrap(),
        Reservation::InFlight(_)
    ));
    drop(store);
    // Again: nothing left to do, nothing changed.
    let again = migrate(path).unwrap();
    assert!(again.already);
    let store = Store::open(&StoreConfig::new(path)).unwrap();
    assert_eq!(store.pending_reservations().unwrap().len(), 2);
}

/// Rewrites a closed store's mark and ring slots into `format`, as a
/// build of that format wrote them.
fn mark_in_format(path: &Path, format: u64) {
    let db = open::open_sled(&StoreConfig::new(path)).unwrap();
    let meta = db.open_tree("meta").unwrap();
    let mut mark = meta.get(SegmentsMark::META_KEY).unwrap().unwrap().to_vec();
    mark[16..24].copy_from_slice(&format.to_be_bytes());
    meta.insert(SegmentsMark::META_KEY, mark).unwrap();
    db.flush().unwrap();
    drop((meta, db));
    ring_in_format(path, format);
}

#[test]
fn a_format_2_store_keeps_its_journal_and_sled_counters_through_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path())).unwrap();
    commit(&store, 0, "x");
    commit(&store, 1, "y");
    let in_flight = pending(1, Some("k-a"), Effects::AtMostOnce);
    let key = nonce_key("t", "a");
    store.reserve(&key, &in_flight, Some("k-a")).unwrap();
    store.sync_reservations().unwrap();
    let image = crash_image(dir.path());
    drop(store);
    let path = image.path();
    // A format-2 build kept counters in sled.
    let db = open::open_sled(&StoreConfig::new(path)).unwrap();
    db.open_tree("counters")
        .unwrap()
        .insert("visits", &41u64.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
    drop(db);
    mark_in_format(path, 2);
    assert!(matches!(
        Store::open(&StoreConfig::new(path)).err().unwrap(),
        StoreError::UnsupportedFormat { found: 2 }
    ));
    let done = migrate(path).unwrap();
    assert_eq!((done.already, done.from, done.reservations), (false, 2, 0));
    assert!(done.ring_promoted);
    let store = Store::open(&StoreConfig::new(path)).unwrap();
    assert_eq!(store.head().unwrap().map(|h| h.size), Some(2));
    assert!(store.unsound_ring_slots().unwrap().is_empty());
    let mut expected = in_flight.clone();
    expected.approval_key = Some("k-a".into());
    assert_eq!(store.pending_reservations().unwrap(), vec![(key, expected)]);
    assert!(store.approval_used("k-a").unwrap());
    assert_eq!(store.counter("visits").unwrap(), 41);
    assert_eq!(store.increment_counter("visits").unwrap(), 42);
    store.sync_reservations().unwrap();
    drop(store);
    // The increment is in the journal now, and read back over sled's value.
    let store = Store::open(&StoreConfig::new(path)).unwrap();
    assert_eq!(store.counter("visits").unwrap(), 42);
}

#[test]
fn migrate_refuses_a_directory_without_a_store_and_other_formats() {
    let empty = tempfile::tempdir().unwrap();
    assert!(migrate(empty.path()).is_err());
    assert!(!empty.path().join("db").exists(), "nothing created");
    let image = format_1_store();
    let db = open::open_sled(&StoreConfig::new(image.path())).unwrap();
    let meta = db.open_tree("meta").unwrap();
    let mut mark = meta.get(SegmentsMark::META_KEY).unwrap().unwrap().to_vec();
    mark[16..24].copy_from_slice(&7u64.to_be_bytes());
    meta.insert(SegmentsMark::META_KEY, mark).unwrap();
    db.flush().unwrap();
    drop((meta, db));
    let refused = migrate(image.path());
    assert!(
        matches!(refused, Err(StoreError::UnsupportedFormat { found: 7 })),
        "{refused:?}"
    );
}
