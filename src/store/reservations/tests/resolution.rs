//! Unit tests of how reservations end: the journal's live/resolved rule at
//! open, released nonces, damaged and torn journal frames, compaction
//! under a stream of reservations.

use super::*;

/// An entry of attempt `exec_id` naming nonce `nonce` (tenant "t"),
/// recorded `interrupted`, resolving its reservation as `held` says.
fn resolving_entry(index: u64, nonce: &str, exec_id: &str, held: Held) -> StoredEntry {
    let bytes = serde_json::to_vec(&serde_json::json!({
        "tenant": "t", "nonce": nonce, "exec_id": exec_id, "outcome": "interrupted",
    }))
    .unwrap();
    assert_eq!(
        crate::core::entry::indexed_exec_id(&bytes).as_deref(),
        Some(exec_id)
    );
    StoredEntry {
        index,
        bytes,
        signature: [0; 64],
        index_exec_id: Some(exec_id.to_owned()),
        content: None,
        completion: Some(Completion {
            key: nonce_key("t", nonce),
            held,
        }),
        approval_key: None,
    }
}

#[test]
fn a_released_nonce_is_free_its_approval_unheld_and_its_reservation_resolved_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(&checkpointed(batch_naming(&store, &["x"], false)))
        .unwrap();
    let k = reserve_holding(&store, "a", "k");
    let release = checkpointed(crate::store::batch_appending(
        &store,
        vec![resolving_entry(1, "a", "exec-1", Held::Released)],
    ));
    let mut written = store.write_cycle(Some(&release), &[]).unwrap();
    assert!(written.sync.ring.is_some(), "a release commits in the ring");
    // Written, not yet durable: a crash now keeps the reservation.
    let before_sync = crash_image(dir.path());
    store.sync_cycle(&mut written.sync).unwrap();
    store.index_exec_ids(&release).unwrap();
    // The entry records the attempt without completing the nonce.
    assert!(!store.completes_nonce(1).unwrap());
    assert!(store.pending_reservations().unwrap().is_empty());
    assert!(!store.approval_used(&k).unwrap());
    assert_eq!(approvals_in_sled(&store), 0);
    let released = crash_image(dir.path());
    // The client's retry reserves anew (another attempt, another exec_id).
    let retry = PendingNonce {
        approval_key: Some(k.clone()),
        ..record(2)
    };
    let key = nonce_key("t", "a");
    assert_eq!(
        store.reserve(&key, &retry, Some(&k)).unwrap(),
        Reservation::Reserved
    );
    store.sync_reservations().unwrap();
    let reserved_again = crash_image(dir.path());
    let reopened = open(before_sync.path());
    let pending = reopened.pending_reservations().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.exec_id, "exec-1");
    assert!(reopened.approval_used(&k).unwrap());
    let reopened = open(released.path());
    assert!(reopened.pending_reservations().unwrap().is_empty());
    assert!(!reopened.approval_used(&k).unwrap());
    assert_eq!(reserve(&reopened, "a"), Reservation::Reserved);
    let reopened = open(reserved_again.path());
    assert_eq!(reopened.pending_reservations().unwrap(), vec![(key, retry)]);
    assert!(reopened.approval_used(&k).unwrap());
}

#[test]
fn a_reservation_whose_attempt_has_an_entry_is_resolved_at_open_whatever_its_nonce() {
    // An entry carrying the reservation's exec_id resolves it even when
    // it completes nothing the tables know of (here: it releases).
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(reserve(&store, "a"), Reservation::Reserved);
    assert_eq!(
        store
            .reserve(&nonce_key("t", "b"), &record(2), None)
            .unwrap(),
        Reservation::Reserved
    );
    store.sync_reservations().unwrap();
    let entries = vec![
        resolving_entry(0, "a", "exec-1", Held::Reserved),
        resolving_entry(1, "b", "exec-2", Held::Released),
    ];
    let batch = checkpointed(crate::store::batch_appending(&store, entries));
    store.commit(&batch).unwrap();
    let image = crash_image(dir.path());
    let store = open(image.path());
    assert!(store.pending_reservations().unwrap().is_empty());
    assert_eq!(reserve(&store, "a"), Reservation::Done { index: 0 });
    assert_eq!(reserve(&store, "b"), Reservation::Reserved);
}

#[test]
fn a_journal_frame_damaged_in_both_copies_before_a_valid_one_refuses_to_open_and_a_torn_tail_is_cut(
) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(reserve(&store, "a"), Reservation::Reserved);
    store.sync_reservations().unwrap();
    assert_eq!(
        store
            .reserve(&nonce_key("t", "b"), &record(2), None)
            .unwrap(),
        Reservation::Reserved
    );
    store.sync_reservations().unwrap();
    let image = crash_image(dir.path());
    drop(store);
    let path = image.path().join(journal::FILE);
    let whole = std::fs::read(&path).unwrap();
    // A torn frame after the two: cut, both reservations kept.
    let mut torn = whole.clone();
    torn.extend_from_slice(b"OXRESERV\0\0\0\x40partial");
    std::fs::write(&path, &torn).unwrap();
    let torn_image = crash_image(image.path());
    assert_eq!(
        open(torn_image.path())
            .pending_reservations()
            .unwrap()
            .len(),
        2
    );
    // One copy of the first frame damaged: read from the other.
    let copy = journal::decode_copy(&whole).unwrap().len;
    let mut damaged = whole;
    damaged[20] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let one_copy = crash_image(image.path());
    assert_eq!(
        open(one_copy.path()).pending_reservations().unwrap().len(),
        2
    );
    // Both: refused, the file as it was.
    damaged[copy + 20] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let refused = Store::open(&StoreConfig::new(image.path())).err().unwrap();
    assert!(
        matches!(&refused, StoreError::Damaged(d) if d.file == journal::FILE && d.offset == 0),
        "{refused}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), damaged);
    // Missing: refused too.
    std::fs::remove_file(&path).unwrap();
    let refused = Store::open(&StoreConfig::new(image.path())).err().unwrap();
    assert!(refused.to_string().contains("is missing"), "{refused}");
}

#[test]
fn the_journal_stays_small_while_reservations_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(&checkpointed(batch_naming(&store, &["x"], false)))
        .unwrap();
    for round in 0..3000u64 {
        let nonce = format!("n-{round}");
        let pending = PendingNonce {
            exec_id: format!("exec-{round}"),
            ..record(1)
        };
        let key = nonce_key("t", &nonce);
        assert_eq!(
            store.reserve(&key, &pending, None).unwrap(),
            Reservation::Reserved
        );
        store.sync_reservations().unwrap();
        store
            .commit(&checkpointed(batch_naming(&store, &[nonce.as_str()], true)))
            .unwrap();
    }
    assert!(store.pending_reservations().unwrap().is_empty());
    let len = store.inner.journal.len().unwrap();
    assert!(len < journal::COMPACT_AT + 4096, "{len}");
    let on_disk = std::fs::metadata(dir.path().join(journal::FILE))
        .unwrap()
        .len();
    assert!(on_disk <= 2 * journal::COMPACT_AT, "{on_disk}");
}

#[test]
fn a_released_nonce_stays_in_flight_until_its_release_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(&checkpointed(batch_naming(&store, &["x"], false)))
        .unwrap();
    let k = reserve_holding(&store, "a", "k");
    let release = checkpointed(crate::store::batch_appending(
        &store,
        vec![resolving_entry(1, "a", "exec-1", Held::Released)],
    ));
    let mut written = store.write_cycle(Some(&release), &[]).unwrap();
    // Written, not durable: the nonce and its approval are still held.
    assert_eq!(store.pending_reservations().unwrap().len(), 1);
    assert!(store.approval_used(&k).unwrap());
    let retry = record(2);
    assert!(matches!(
        store.reserve(&nonce_key("t", "a"), &retry, None).unwrap(),
        Reservation::InFlight(_)
    ));
    store.sync_cycle(&mut written.sync).unwrap();
    // Durable: free.
    assert!(store.pending_reservations().unwrap().is_empty());
    assert!(!store.approval_used(&k).unwrap());
    assert_eq!(
        store.reserve(&nonce_key("t", "a"), &retry, None).unwrap(),
        Reservation::Reserved
    );
}
