//! Unit tests of reservations and claims: pending records, the journal's
//! live/resolved rule, released nonces, done nonces and consumed
//! approvals across commits, crashes, the commit ring and lost tables.

use super::*;

fn record(n: u8) -> PendingNonce {
    PendingNonce {
        request_hash: Hash::from_bytes([n; 32]),
        exec_id: format!("exec-{n}"),
        approval_key: None,
        action: "echo".into(),
        tenant: String::new(),
        nonce: format!("nonce-{n}"),
        effects: crate::core::entry::Effects::AtMostOnce,
        principal: None,
    }
}

#[test]
fn pending_records_round_trip() {
    let mut pending = record(1);
    assert_eq!(
        decode_pending(&encode_pending(&pending).unwrap()).unwrap(),
        pending
    );
    pending.approval_key = Some("key ‖ approval".into());
    pending.tenant = "tenant-ü".into();
    assert_eq!(
        decode_pending(&encode_pending(&pending).unwrap()).unwrap(),
        pending
    );
}

#[test]
fn damaged_records_are_corrupt_never_a_panic() {
    let mut with_key = record(4);
    with_key.approval_key = Some("k".into());
    with_key.principal = Some("0123456789abcdef".into());
    for pending in [record(4), with_key] {
        let bytes = encode_pending(&pending).unwrap();
        assert_eq!(decode_pending(&bytes).unwrap(), pending);
        for cut in 0..bytes.len() {
            assert!(decode_pending(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_pending(&longer).is_err());
        // The kind byte and every reserved byte hold one value only (bytes
        // 36..44 are the principal's id).
        for at in [0, 1].into_iter().chain(34..36) {
            let mut changed = bytes.clone();
            changed[at] ^= 0x01;
            assert!(decode_pending(&changed).is_err(), "byte {at}");
        }
        // A string that is not UTF-8.
        let mut not_utf8 = bytes.clone();
        not_utf8[48] = 0xff;
        assert!(decode_pending(&not_utf8).is_err());
    }
}

use super::super::{crash_image, BatchWrite, StoreConfig, StoredEntry};

fn open(dir: &std::path::Path) -> Store {
    Store::open(&StoreConfig::new(dir)).unwrap()
}

/// Entry bytes naming `nonce` and, if given, the v2 approval of id
/// `approval` (all the store reads of an entry here).
fn entry_naming(nonce: &str, approval: Option<&str>) -> Vec<u8> {
    let mut entry = serde_json::json!({"tenant": "t", "nonce": nonce});
    if let Some(id) = approval {
        entry["approval"] = serde_json::to_value(summary(id)).unwrap();
    }
    serde_json::to_vec(&entry).unwrap()
}

/// A v2 approval's summary as an entry records it.
fn summary(id: &str) -> crate::core::entry::ApprovalSummary {
    crate::core::entry::ApprovalSummary {
        kind: crate::core::entry::ApprovalKind::OpenexecV2,
        id: Some(id.to_owned()),
        key_id: Some("kid".into()),
        expires_at: None,
    }
}

/// The consume key of the approval of id `id` (tenant `t`).
fn approval_key(id: &str) -> String {
    summary(id).consume_key("t").unwrap()
}

/// The next batch of `store`: entries naming `nonces`, each completing
/// its nonce if `complete`, with their real stored hashes and root.
fn batch_naming(store: &Store, nonces: &[&str], complete: bool) -> BatchWrite {
    let from = store.head().unwrap().map_or(0, |h| h.size);
    batch_naming_from(store, from, nonces, complete)
}

/// [`batch_naming`] from index `from` (a batch written while the one
/// before it awaits its sync).
fn batch_naming_from(store: &Store, from: u64, nonces: &[&str], complete: bool) -> BatchWrite {
    let named: Vec<(&str, Option<&str>)> = nonces.iter().map(|n| (*n, None)).collect();
    batch_approving(store, from, &named, complete.then_some(Held::Reserved))
}

/// The batch of `store` from index `from`: entries naming each (nonce,
/// approval id), each completing its nonce as `held` says (and then
/// consuming its approval), with their real stored hashes and root.
fn batch_approving(
    store: &Store,
    from: u64,
    named: &[(&str, Option<&str>)],
    held: Option<Held>,
) -> BatchWrite {
    let entries = (from..)
        .zip(named)
        .map(|(index, &(nonce, approval))| StoredEntry {
            index,
            bytes: entry_naming(nonce, approval),
            signature: [0; 64],
            index_exec_id: None,
            content: None,
            completion: held.map(|held| Completion {
                key: nonce_key("t", nonce),
                held,
            }),
            approval_key: held.and(approval).map(approval_key),
        })
        .collect();
    super::super::batch_appending(store, entries)
}

fn reserve(store: &Store, nonce: &str) -> Reservation {
    store
        .reserve(&nonce_key("t", nonce), &record(1), None)
        .unwrap()
}

/// `batch` with a checkpoint, as the ledger's batches have: one that
/// changes nothing else in sled commits in the commit ring.
fn checkpointed(mut batch: BatchWrite) -> BatchWrite {
    let size = batch.head.map_or(0, |h| h.size);
    batch.checkpoint = Some((size, format!("checkpoint {size}\n")));
    batch
}

#[test]
fn a_failed_commit_through_sled_after_a_ring_commit_never_frees_its_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_ring_head(dir.path());
    // A nonce whose handler ran: its completing batch consumes its
    // approval for good in a sled transaction, and that cycle's sync
    // fails.
    reserve_holding(&store, "a", "k");
    store.inject_fault(crate::store::FaultPoint::CommitSync, 0);
    let completing = for_good(&store, 2);
    let mut written = store.write_cycle(Some(&completing), &[]).unwrap();
    assert!(written.sync.ring.is_none());
    assert!(store.sync_cycle(&mut written.sync).is_err());
    // A clean close must not put the ring's older head over the
    // transaction still in sled's memory, nor leave the nonce free.
    drop(store);
    let store = open(dir.path());
    assert_ne!(reserve(&store, "a"), Reservation::Reserved);
}

/// The batch of `store` from index `from` completing nonce "a" with an
/// entry that does not name the approval its reservation holds (as an
/// attempt recorded `interrupted` at restart): it consumes the approval
/// for good, through sled.
fn for_good(store: &Store, from: u64) -> BatchWrite {
    checkpointed(batch_approving(
        store,
        from,
        &[("a", None)],
        Some(Held::Reserved),
    ))
}

/// A store at size 2: the first batch through sled (it chooses the
/// entry dictionary), the second in the commit ring.
fn store_with_a_ring_head(dir: &std::path::Path) -> Store {
    let store = open(dir);
    store
        .commit(&checkpointed(batch_naming(&store, &["x"], false)))
        .unwrap();
    store
        .commit(&checkpointed(batch_naming(&store, &["y"], false)))
        .unwrap();
    let in_sled = super::super::read_head(&store.inner.meta).unwrap();
    assert_eq!(in_sled.map(|h| h.size), Some(1));
    assert_eq!(store.head().unwrap().map(|h| h.size), Some(2));
    store
}

#[test]
fn a_cycle_refused_before_its_sync_then_a_clean_close_never_frees_its_nonce() {
    // As when a later cycle's failure stops the writer and the syncer
    // refuses this one without syncing it.
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_ring_head(dir.path());
    assert_eq!(reserve(&store, "a"), Reservation::Reserved);
    let completing = checkpointed(batch_naming(&store, &["a"], true));
    let written = store.write_cycle(Some(&completing), &[]).unwrap();
    assert!(
        written.sync.ring.is_some(),
        "a batch that completes reserved nonces commits in the ring"
    );
    drop(store);
    let store = open(dir.path());
    assert_ne!(reserve(&store, "a"), Reservation::Reserved);
}

#[test]
fn every_crash_point_of_interleaved_ring_and_sled_cycles_opens_consistent() {
    // The writer's order: the sequencer writes a ring cycle, then a
    // cycle through sled (completing nonce "a"), before the syncer has
    // synced the first; sled's background flush may run at any time.
    // An image of the files is taken after each step, as a crash
    // there would leave them, with the size acknowledged by then.
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_ring_head(dir.path());
    reserve_holding(&store, "a", "k");
    let mut images = vec![(crash_image(dir.path()), 2)];
    let ring = checkpointed(batch_naming(&store, &["y2"], false));
    let mut in_ring = store.write_cycle(Some(&ring), &[]).unwrap();
    assert!(in_ring.sync.ring.is_some());
    images.push((crash_image(dir.path()), 2));
    let completing = for_good(&store, 3);
    let mut through_sled = store.write_cycle(Some(&completing), &[]).unwrap();
    assert!(through_sled.sync.ring.is_none());
    images.push((crash_image(dir.path()), 2));
    store.inner.db.flush().unwrap();
    images.push((crash_image(dir.path()), 2));
    store.sync_cycle(&mut in_ring.sync).unwrap();
    images.push((crash_image(dir.path()), 3));
    store.sync_cycle(&mut through_sled.sync).unwrap();
    images.push((crash_image(dir.path()), 4));
    store
        .commit(&checkpointed(batch_naming(&store, &["z"], false)))
        .unwrap();
    images.push((crash_image(dir.path()), 5));
    drop(store);
    images.push((crash_image(dir.path()), 5));
    for (step, (image, acknowledged)) in images.iter().enumerate() {
        let store = open(image.path());
        let head = store.head().unwrap().unwrap().size;
        assert!(head >= *acknowledged, "step {step}: head {head}");
        let (latest, _) = store.latest_checkpoint().unwrap().unwrap();
        assert_eq!(
            latest, head,
            "step {step}: the latest checkpoint is the head's"
        );
        let a = reserve(&store, "a");
        if head >= 4 {
            assert_eq!(a, Reservation::Done { index: 3 }, "step {step}");
        } else {
            assert!(matches!(a, Reservation::InFlight(_)), "step {step}: {a:?}");
        }
    }
}

#[test]
fn the_head_is_never_behind_the_latest_checkpoint_while_a_cycle_awaits_its_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_ring_head(dir.path());
    reserve_holding(&store, "a", "k");
    let next = for_good(&store, 2);
    let _written = store.write_cycle(Some(&next), &[]).unwrap();
    let head = store.head().unwrap().unwrap().size;
    let latest = store.latest_checkpoint().unwrap().unwrap().0;
    assert_eq!((head, latest), (3, 3));
}

/// The sizes of the checkpoints in sled's history.
fn history(store: &Store) -> Vec<u64> {
    store.checkpoints().map(|c| c.unwrap().0).collect()
}

#[test]
fn ring_commits_file_a_checkpoint_once_per_stride_and_the_newest_is_filed_at_open_and_close() {
    use super::super::HISTORY_STRIDE;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let names: Vec<String> = (0..HISTORY_STRIDE + 100).map(|n| format!("n{n}")).collect();
    for chunk in names.chunks(512) {
        let nonces: Vec<&str> = chunk.iter().map(String::as_str).collect();
        store
            .commit(&checkpointed(batch_naming(&store, &nonces, false)))
            .unwrap();
    }
    let size = HISTORY_STRIDE + 100;
    assert_eq!(store.head().unwrap().map(|h| h.size), Some(size));
    // Nine batches; in the history: the one through sled that chose the
    // dictionary, the first ring commit a stride past the newest — not
    // every batch, and not yet the newest.
    let filed = history(&store);
    assert!(filed.len() <= 3, "{filed:?}");
    assert!(filed.contains(&HISTORY_STRIDE), "{filed:?}");
    assert!(!filed.contains(&size), "{filed:?}");
    // A crash: open files the newest from the ring.
    let image = crash_image(dir.path());
    let crashed = open(image.path());
    let newest = (size, format!("checkpoint {size}\n"));
    assert_eq!(crashed.latest_checkpoint().unwrap(), Some(newest.clone()));
    drop(crashed);
    // A clean close files it too.
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.latest_checkpoint().unwrap(), Some(newest));
}

#[test]
fn a_ring_commits_checkpoint_lost_behind_a_later_transaction_is_restored_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(&checkpointed(batch_naming(&store, &["x"], false)))
        .unwrap();
    reserve_holding(&store, "a", "k");
    // A ring cycle written, then a cycle through sled written before
    // the ring cycle's sync; sled's background flush writes the
    // latter's transaction; the syncer writes the ring slot, and the
    // process dies before the checkpoint reaches sled's history.
    let ring_cycle = checkpointed(batch_naming(&store, &["y"], false));
    let in_ring = store.write_cycle(Some(&ring_cycle), &[]).unwrap();
    let commit = in_ring.sync.ring.clone().expect("a ring commit");
    let through_sled = for_good(&store, 2);
    let _written = store.write_cycle(Some(&through_sled), &[]).unwrap();
    store.inner.db.flush().unwrap();
    store.inner.ring.write(&commit).unwrap();
    let image = crash_image(dir.path());
    drop(store);
    let store = open(image.path());
    assert_eq!(store.head().unwrap().map(|h| h.size), Some(3));
    assert_eq!(
        store.checkpoint(2).unwrap().as_deref(),
        Some("checkpoint 2\n")
    );
}

#[test]
fn a_store_whose_ring_is_missing_or_not_its_own_refuses_to_open_and_cuts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_ring_head(dir.path());
    let image = crash_image(dir.path());
    drop(store);
    let entries = |d: &std::path::Path| std::fs::read(d.join("entries.bin")).unwrap();
    let before = entries(image.path());
    // Without the ring.
    let ring = image.path().join(super::super::commit_ring::FILE);
    let kept = std::fs::read(&ring).unwrap();
    std::fs::remove_file(&ring).unwrap();
    let refused = Store::open(&StoreConfig::new(image.path())).err().unwrap();
    assert!(refused.to_string().contains("is missing"), "{refused}");
    assert_eq!(entries(image.path()), before, "nothing cut off");
    // With the ring, over an entries file that ends before its head
    // (an older copy restored under a newer ring).
    std::fs::write(&ring, kept).unwrap();
    let shorter = &before[..before.len() - 1];
    std::fs::write(image.path().join("entries.bin"), shorter).unwrap();
    for _ in 0..2 {
        let refused = Store::open(&StoreConfig::new(image.path())).err().unwrap();
        assert!(refused.to_string().contains("does not belong"), "{refused}");
    }
    assert_eq!(entries(image.path()), shorter, "nothing cut off");
}

#[test]
fn a_done_nonce_is_its_completing_entry_across_a_reopen_and_a_lost_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(reserve(&store, "a"), Reservation::Reserved);
    store
        .commit(&batch_naming(&store, &["x", "a", "b"], true))
        .unwrap();
    assert_eq!(reserve(&store, "a"), Reservation::Done { index: 1 });
    assert_eq!(reserve(&store, "b"), Reservation::Done { index: 2 });
    assert!(store.pending_reservations().unwrap().is_empty());
    drop(store);
    assert_eq!(
        reserve(&open(dir.path()), "a"),
        Reservation::Done { index: 1 }
    );
    // The table is derived from the records' completion flags.
    std::fs::remove_file(dir.path().join(super::super::key_table::DONE_NONCES)).unwrap();
    let store = open(dir.path());
    assert_eq!(reserve(&store, "a"), Reservation::Done { index: 1 });
    assert_eq!(reserve(&store, "x"), Reservation::Done { index: 0 });
    assert_eq!(reserve(&store, "c"), Reservation::Reserved);
}

#[test]
fn an_entry_that_names_a_nonce_it_did_not_complete_is_not_its_done_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Entry 0 completes "a"; entry 1 names "b" without completing it
    // (as a refused attempt does).
    store.commit(&batch_naming(&store, &["a"], true)).unwrap();
    store.commit(&batch_naming(&store, &["b"], false)).unwrap();
    // Slots a crash could leave: "b" at the entry naming it, "c" at an
    // entry completing another nonce, "d" past the head.
    let stale = [("b", 1), ("c", 0), ("d", 5)].map(|(n, i)| (nonce_key("t", n), i));
    store
        .inner
        .done_nonces
        .insert_batch(stale.iter().map(|(k, i)| (k.as_slice(), *i)), 2)
        .unwrap();
    for nonce in ["b", "c", "d"] {
        assert_eq!(reserve(&store, nonce), Reservation::Reserved, "{nonce}");
    }
    assert_eq!(reserve(&store, "a"), Reservation::Done { index: 0 });
}

#[test]
fn a_reservation_in_the_cycle_that_completes_its_nonce_finds_it_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(reserve(&store, "a"), Reservation::Reserved);
    let key = nonce_key("t", "a");
    let pending = record(2);
    let answers = store
        .write_cycle(
            Some(&batch_naming(&store, &["a"], true)),
            &[ReservationRequest {
                key: &key,
                record: &pending,
            }],
        )
        .unwrap()
        .reserved;
    assert_eq!(answers.len(), 1);
    assert_eq!(
        answers[0].as_ref().unwrap(),
        &Reservation::Done { index: 0 }
    );
}

#[test]
fn a_reservation_racing_the_commit_that_completes_its_nonce_never_wins_it() {
    // Without the lock that orders reservations after commits, a
    // reservation could run between the commit's transaction (the
    // nonce leaves the reservations in flight) and its insert into `nonces.tab`, and
    // find the nonce in neither place.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for round in 0..200 {
        let nonce = format!("race-{round}");
        assert_eq!(reserve(&store, &nonce), Reservation::Reserved);
        let batch = batch_naming(&store, &[nonce.as_str()], true);
        let seen = std::thread::scope(|scope| {
            let racer = scope.spawn(|| loop {
                match reserve(&store, &nonce) {
                    Reservation::InFlight(_) => continue,
                    other => return other,
                }
            });
            store.commit(&batch).unwrap();
            racer.join().unwrap()
        });
        let index = batch.entries[0].index;
        assert_eq!(seen, Reservation::Done { index }, "round {round}");
    }
}

/// The nonce keys and pending records (of `record(n)`) of `(nonce,
/// approval key)` requests of tenant "t".
fn owned_requests(requests: &[(&str, Option<&str>)], n: u8) -> (Vec<Vec<u8>>, Vec<PendingNonce>) {
    requests
        .iter()
        .map(|(nonce, approval)| {
            let record = PendingNonce {
                nonce: (*nonce).to_owned(),
                effects: crate::core::entry::Effects::AtMostOnce,
                principal: None,
                approval_key: approval.map(str::to_owned),
                ..record(n)
            };
            (nonce_key("t", nonce), record)
        })
        .unzip()
}

/// [`owned_requests`] as the store takes them.
fn borrowed_requests<'a>(
    keys: &'a [Vec<u8>],
    records: &'a [PendingNonce],
) -> Vec<ReservationRequest<'a>> {
    keys.iter()
        .zip(records)
        .map(|(key, record)| ReservationRequest { key, record })
        .collect()
}

/// `(nonce, approval)` pairs as claim requests of tenant "t".
fn claims(store: &Store, requests: &[(&str, Option<&str>)]) -> Vec<Reservation> {
    let (keys, records) = owned_requests(requests, 7);
    store
        .claim(&borrowed_requests(&keys, &records))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn claims_write_nothing_and_refuse_what_is_held_done_or_taken_earlier_in_the_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(reserve(&store, "done"), Reservation::Reserved);
    store
        .commit(&batch_naming(&store, &["done"], true))
        .unwrap();
    assert_eq!(reserve(&store, "held"), Reservation::Reserved);
    let used = PendingNonce {
        approval_key: Some("used".into()),
        ..record(3)
    };
    store
        .reserve(&nonce_key("t", "with-used"), &used, Some("used"))
        .unwrap();
    let found = claims(
        &store,
        &[
            ("fresh", None),
            ("fresh", None),
            ("held", None),
            ("done", None),
            ("first", Some("k")),
            ("second", Some("k")),
            ("third", Some("used")),
        ],
    );
    assert_eq!(found[0], Reservation::Reserved);
    assert!(matches!(&found[1], Reservation::InFlight(p) if p.nonce == "fresh"));
    assert!(matches!(&found[2], Reservation::InFlight(p) if p.exec_id == "exec-1"));
    assert_eq!(found[3], Reservation::Done { index: 0 });
    assert_eq!(found[4], Reservation::Reserved);
    assert_eq!(found[5], Reservation::ApprovalUsed);
    assert_eq!(found[6], Reservation::ApprovalUsed);
    // Nothing was written: the winners are free again for the next cycle.
    assert_eq!(store.pending_reservations().unwrap().len(), 2);
    assert!(!store.approval_used("k").unwrap());
    assert_eq!(claims(&store, &[("fresh", None)]), [Reservation::Reserved]);
}

/// `named` as the next batch of `store`, completing each nonce as
/// `held` says, committed through [`Store::write_cycle`] with
/// `reservations` of the same cycle; returns their answers and whether
/// the batch went to the commit ring.
fn commit_approving(
    store: &Store,
    named: &[(&str, Option<&str>)],
    held: Held,
    reservations: &[(&str, &str)],
) -> (Vec<Reservation>, bool) {
    let from = store.head().unwrap().map_or(0, |h| h.size);
    let batch = checkpointed(batch_approving(store, from, named, Some(held)));
    let approvals: Vec<String> = reservations.iter().map(|(_, a)| approval_key(a)).collect();
    let keyed: Vec<(&str, Option<&str>)> = reservations
        .iter()
        .zip(&approvals)
        .map(|((n, _), k)| (*n, Some(k.as_str())))
        .collect();
    let (keys, records) = owned_requests(&keyed, 4);
    let mut written = store
        .write_cycle(Some(&batch), &borrowed_requests(&keys, &records))
        .unwrap();
    let ring = written.sync.ring.is_some();
    store.sync_cycle(&mut written.sync).unwrap();
    let answers = written.reserved.into_iter().map(Result::unwrap).collect();
    (answers, ring)
}

/// Reserves `nonce` (tenant "t") holding the approval of id `id`,
/// durably; returns the approval's key.
fn reserve_holding(store: &Store, nonce: &str, id: &str) -> String {
    let k = approval_key(id);
    let holder = PendingNonce {
        approval_key: Some(k.clone()),
        ..record(1)
    };
    assert_eq!(
        store
            .reserve(&nonce_key("t", nonce), &holder, Some(&k))
            .unwrap(),
        Reservation::Reserved
    );
    store.sync_reservations().unwrap();
    k
}

/// How many records sled's `approvals` tree holds.
fn approvals_in_sled(store: &Store) -> usize {
    store.inner.approvals.len()
}

#[test]
fn a_claimed_completion_consumes_its_approval_with_its_entry_and_writes_nothing_to_sled() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // The first batch chooses the entry dictionary (through sled).
    store
        .commit(&checkpointed(batch_naming(&store, &["x"], false)))
        .unwrap();
    let k = approval_key("k");
    assert_eq!(claims(&store, &[("a", Some(&k))]), [Reservation::Reserved]);
    // A reservation of the same cycle naming the same approval finds
    // it consumed.
    let (answers, ring) = commit_approving(&store, &[("a", Some("k"))], Held::Claimed, &[]);
    assert!(answers.is_empty());
    assert!(
        ring,
        "a batch of claims commits in the ring, approvals or not"
    );
    assert_eq!(approvals_in_sled(&store), 0);
    assert!(store.approval_used(&k).unwrap());
    assert_eq!(
        claims(&store, &[("b", Some(&k))]),
        [Reservation::ApprovalUsed]
    );
    assert_eq!(
        store
            .reserve(&nonce_key("t", "c"), &record(5), Some(&k))
            .unwrap(),
        Reservation::ApprovalUsed
    );
    assert_eq!(
        claims(&store, &[("a", None)]),
        [Reservation::Done { index: 1 }]
    );
    // Known after a crash (the table rebuilt from the entry) and after
    // a clean close.
    let image = super::super::crash_image(dir.path());
    assert!(open(image.path()).approval_used(&k).unwrap());
    drop(store);
    assert!(open(dir.path()).approval_used(&k).unwrap());
}

#[test]
fn an_approval_consumed_in_the_batch_of_a_cycle_is_used_for_its_reservations() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let k = approval_key("k");
    assert_eq!(claims(&store, &[("a", Some(&k))]), [Reservation::Reserved]);
    let (answers, _) = commit_approving(&store, &[("a", Some("k"))], Held::Claimed, &[("b", "k")]);
    assert_eq!(answers, [Reservation::ApprovalUsed]);
    assert!(store.pending_reservations().unwrap().is_empty());
}

#[test]
fn a_reserved_approval_is_consumed_by_its_entry_in_the_ring_and_never_in_sled() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(&checkpointed(batch_naming(&store, &["x"], false)))
        .unwrap();
    let k = reserve_holding(&store, "a", "k");
    assert_eq!(approvals_in_sled(&store), 0);
    // In flight: refused to claims and reservations alike.
    assert_eq!(
        claims(&store, &[("b", Some(&k))]),
        [Reservation::ApprovalUsed]
    );
    // Its entry completes the nonce and names the approval; a
    // reservation of the same cycle still finds it consumed, though
    // the batch ends its hold.
    let (answers, ring) =
        commit_approving(&store, &[("a", Some("k"))], Held::Reserved, &[("c", "k")]);
    assert_eq!(answers, [Reservation::ApprovalUsed]);
    assert!(ring);
    assert_eq!(approvals_in_sled(&store), 0);
    assert!(store.approval_used(&k).unwrap());
    let image = super::super::crash_image(dir.path());
    assert!(open(image.path()).approval_used(&k).unwrap());
    // A lost table is built again from the entries.
    drop(store);
    std::fs::remove_file(dir.path().join(super::super::key_table::CONSUMED_APPROVALS)).unwrap();
    let store = open(dir.path());
    assert!(store.approval_used(&k).unwrap());
    assert_eq!(
        claims(&store, &[("d", Some(&k))]),
        [Reservation::ApprovalUsed]
    );
}

/// A store of one committed entry, and a second batch written and
/// indexed whose commit never becomes durable (its sync fails), while
/// the tables' syncer marked its keys in their headers.
fn store_with_a_failed_batch(dir: &std::path::Path) -> Store {
    let store = open(dir);
    store
        .commit(&checkpointed(batch_naming(&store, &["x"], false)))
        .unwrap();
    store.inject_fault(crate::store::FaultPoint::CommitSync, 0);
    let lost = checkpointed(batch_approving(
        &store,
        1,
        &[("lost", Some("lost"))],
        Some(Held::Claimed),
    ));
    let mut written = store.write_cycle(Some(&lost), &[]).unwrap();
    assert!(store.sync_cycle(&mut written.sync).is_err());
    store.inner.consumed_approvals.sync_now().unwrap();
    store.inner.done_nonces.sync_now().unwrap();
    store
}

/// What the header of the key table `name` in `dir` claims is indexed.
fn claimed(dir: &std::path::Path, name: &str) -> u64 {
    let bytes = std::fs::read(dir.join(name)).unwrap();
    u64::from_be_bytes(bytes[24..32].try_into().unwrap())
}

#[test]
fn a_clean_close_after_a_failed_sync_leaves_no_table_header_past_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_failed_batch(dir.path());
    assert_eq!(
        claimed(dir.path(), super::super::key_table::CONSUMED_APPROVALS),
        2
    );
    drop(store);
    for name in [
        super::super::key_table::CONSUMED_APPROVALS,
        super::super::key_table::DONE_NONCES,
    ] {
        assert_eq!(claimed(dir.path(), name), 1, "{name}");
    }
}

#[test]
fn a_table_header_ahead_of_the_log_is_lowered_at_open_so_later_entries_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_failed_batch(dir.path());
    let image = super::super::crash_image(dir.path());
    drop(store);
    let store = open(image.path());
    assert_eq!(store.head().unwrap().map(|h| h.size), Some(1));
    // The tables as durable right after this open.
    let durable: Vec<(&str, Vec<u8>)> = [
        super::super::key_table::CONSUMED_APPROVALS,
        super::super::key_table::DONE_NONCES,
    ]
    .into_iter()
    .map(|name| (name, std::fs::read(image.path().join(name)).unwrap()))
    .collect();
    // Entry 1 again, consuming an approval and completing a nonce; then
    // a power loss that loses the slots inserted since.
    let k = approval_key("k");
    assert_eq!(claims(&store, &[("a", Some(&k))]), [Reservation::Reserved]);
    commit_approving(&store, &[("a", Some("k"))], Held::Claimed, &[]);
    let crashed = super::super::crash_image(image.path());
    drop(store);
    for (name, bytes) in durable {
        std::fs::write(crashed.path().join(name), bytes).unwrap();
    }
    let store = open(crashed.path());
    assert!(store.approval_used(&k).unwrap());
    assert_eq!(
        claims(&store, &[("a", None)]),
        [Reservation::Done { index: 1 }]
    );
}

#[test]
fn an_approval_whose_entry_does_not_name_it_stays_consumed_in_sled() {
    // As for an attempt recorded `interrupted` at restart: its entry
    // completes the nonce but names no approval.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let k = reserve_holding(&store, "a", "k");
    commit_approving(&store, &[("a", None)], Held::Reserved, &[]);
    assert_eq!(approvals_in_sled(&store), 1);
    assert!(store.pending_reservations().unwrap().is_empty());
    drop(store);
    let store = open(dir.path());
    assert!(store.approval_used(&k).unwrap());
    assert_eq!(
        claims(&store, &[("b", Some(&k))]),
        [Reservation::ApprovalUsed]
    );
}

#[test]
fn a_nonce_in_flight_is_known_from_the_journal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&super::super::StoreConfig::new(dir.path())).unwrap();
    let key = nonce_key("", "n-1");
    let first = PendingNonce {
        approval_key: Some("approval-1".into()),
        ..record(1)
    };
    assert_eq!(
        store.reserve(&key, &first, Some("approval-1")).unwrap(),
        Reservation::Reserved
    );
    assert_eq!(
        store.reserve(&key, &record(9), None).unwrap(),
        Reservation::InFlight(first.clone())
    );
    assert_eq!(
        store
            .reserve(&nonce_key("", "n-2"), &record(2), Some("approval-1"))
            .unwrap(),
        Reservation::ApprovalUsed
    );
    assert_eq!(
        store.pending_reservations().unwrap(),
        vec![(key.clone(), first.clone())]
    );
    store.sync_reservations().unwrap();
    let image = crash_image(dir.path());
    let store = open(image.path());
    assert_eq!(store.pending_reservations().unwrap(), vec![(key, first)]);
    assert!(store.approval_used("approval-1").unwrap());
}

mod resolution;

#[test]
fn a_counter_name_an_earlier_build_took_leaves_every_open_working() {
    let dir = tempfile::tempdir().unwrap();
    let long = "n".repeat(crate::store::counters::MAX_NAME_LEN + 1);
    {
        let store = open(dir.path());
        store
            .tamper_raw("counters", long.as_bytes(), &7u64.to_be_bytes())
            .unwrap();
        store.increment_counter("fine").unwrap();
        store.sync_reservations().unwrap();
    }
    for _ in 0..2 {
        let store = open(dir.path());
        assert_eq!(store.counter(&long).unwrap(), 7);
        assert_eq!(store.counter("fine").unwrap(), 1);
    }
}
