//! Damage at the store's boundary: a flipped bit in a record, a key-table
//! slot or a key-table header never frees a done nonce nor a consumed
//! approval; reads that meet it fail, and the store says so.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::super::key_table::DONE_NONCES;
use super::super::segments::{ENTRIES, INDEX};
use super::super::{
    batch_appending, crash_image, nonce_key, BatchWrite, Completion, PendingNonce, Reservation,
    ReservationRequest, Store, StoreConfig, StoreError, StoredEntry,
};
use crate::core::entry::{ApprovalKind, ApprovalSummary};
use crate::core::hash::Hash;

fn open(dir: &Path) -> Store {
    Store::open(&StoreConfig::new(dir)).unwrap()
}

/// The v2 approval of id `id`, as an entry records it.
fn summary(id: &str) -> ApprovalSummary {
    ApprovalSummary {
        kind: ApprovalKind::OpenexecV2,
        id: Some(id.to_owned()),
        key_id: Some("kid".into()),
        expires_at: None,
    }
}

fn approval_key(id: &str) -> String {
    summary(id).consume_key("t").unwrap()
}

/// Commits entries naming each nonce (tenant `t`), each completing it
/// and consuming the approval `ap-<nonce>`; every other one keeps
/// content. Returns the index of each nonce's entry. Commits through sled.
fn commit_completing(store: &Store, nonces: &[&str]) -> HashMap<String, u64> {
    store.commit(&batch_completing(store, nonces)).unwrap();
    (store.head().unwrap().unwrap().size - nonces.len() as u64..)
        .zip(nonces)
        .map(|(i, n)| ((*n).to_owned(), i))
        .collect()
}

/// The batch [`commit_completing`] commits.
fn batch_completing(store: &Store, nonces: &[&str]) -> BatchWrite {
    let from = store.head().unwrap().map_or(0, |h| h.size);
    let entries = (from..)
        .zip(nonces)
        .map(|(index, nonce)| {
            let approval = format!("ap-{nonce}");
            let entry = serde_json::json!({
                "tenant": "t", "nonce": nonce, "exec_id": format!("x-{nonce}"),
                "approval": serde_json::to_value(summary(&approval)).unwrap(),
            });
            StoredEntry {
                index,
                bytes: serde_json::to_vec(&entry).unwrap(),
                signature: [index as u8; 64],
                index_exec_id: Some(format!("x-{nonce}")),
                content: (index % 2 == 0).then(|| format!("{{\"kept\":\"{nonce}\"}}").into_bytes()),
                completion: Some(Completion::claimed(nonce_key("t", nonce))),
                approval_key: Some(approval_key(&approval)),
            }
        })
        .collect();
    batch_appending(store, entries)
}

fn attempt(nonce: &str, approval: Option<&str>) -> PendingNonce {
    PendingNonce {
        request_hash: Hash::from_bytes([9; 32]),
        exec_id: format!("again-{nonce}"),
        approval_key: approval.map(approval_key),
        action: "counter".into(),
        tenant: "t".into(),
        nonce: nonce.into(),
        effects: crate::core::entry::Effects::AtMostOnce,
        principal: None,
    }
}

/// Whether a claim of `nonce` (with the approval `approval`) was won: the
/// handler would run.
fn claim_won(store: &Store, nonce: &str, approval: Option<&str>) -> bool {
    let key = nonce_key("t", nonce);
    let record = attempt(nonce, approval);
    let request = ReservationRequest {
        key: &key,
        record: &record,
    };
    let claimed = store.claim(&[request]);
    let written = store.write_cycle(None, &[request]).map(|w| w.reserved);
    let won = |r: &Result<Vec<Result<Reservation, StoreError>>, StoreError>| {
        matches!(r.as_deref(), Ok([Ok(Reservation::Reserved)]))
    };
    won(&claimed) || won(&written)
}

fn flip(dir: &Path, file: &str, at: u64, bit: u8) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(file))
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 0x80 >> bit;
    f.write_all_at(&byte, at).unwrap();
}

/// Where entry `index`'s record starts and ends in `entries.bin`.
fn record_span(dir: &Path, index: u64) -> (u64, u64) {
    let idx = std::fs::read(dir.join(INDEX)).unwrap();
    let end_of = |i: u64| {
        let at = usize::try_from(i * 8).unwrap();
        u64::from_be_bytes(idx[at..at + 8].try_into().unwrap())
    };
    (index.checked_sub(1).map_or(0, end_of), end_of(index))
}

#[test]
fn a_record_with_any_bit_flipped_is_refused_and_never_frees_its_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let nonces = ["n0", "n1", "n2", "n3"];
    let at = commit_completing(&store, &nonces);
    // Entry 2 keeps content, entry 3 does not.
    for nonce in ["n2", "n3"] {
        let index = at[nonce];
        let (start, end) = record_span(dir.path(), index);
        for bit in 0..(end - start) * 8 {
            flip(dir.path(), ENTRIES, start + bit / 8, (bit % 8) as u8);
            assert!(
                matches!(store.entry(index), Err(StoreError::Damaged(_))),
                "{nonce}, bit {bit}"
            );
            assert!(store.completes_nonce(index).is_err());
            assert!(store.content(index).is_err());
            assert!(store.done_nonce(&nonce_key("t", nonce)).is_err());
            assert!(
                !claim_won(&store, nonce, None),
                "{nonce}, bit {bit}: the nonce was freed"
            );
            let approval = format!("ap-{nonce}");
            assert!(
                !claim_won(&store, &format!("fresh-{bit}"), Some(&approval)),
                "{nonce}, bit {bit}: the approval was admitted again"
            );
            flip(dir.path(), ENTRIES, start + bit / 8, (bit % 8) as u8);
            assert_eq!(
                store.done_nonce(&nonce_key("t", nonce)).unwrap(),
                Some(index)
            );
        }
    }
    assert!(store.damage().is_some_and(|d| d.file == ENTRIES));
    assert!(store.damage_count() > 0);
}

#[test]
fn a_cleared_completion_flag_never_frees_a_done_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let at = commit_completing(&store, &["done"]);
    let (start, _) = record_span(dir.path(), at["done"]);
    // Bit 29 of the big-endian length word: byte 0, bit 2 from the top.
    flip(dir.path(), ENTRIES, start, 2);
    assert!(store.done_nonce(&nonce_key("t", "done")).is_err());
    assert!(!claim_won(&store, "done", None));
    assert!(!claim_won(&store, "fresh", Some("ap-done")));
}

/// The byte offsets of the occupied slots of `nonces.tab`'s first table.
fn occupied_slots(dir: &Path) -> Vec<u64> {
    let bytes = std::fs::read(dir.join(DONE_NONCES)).unwrap();
    (4096..bytes.len())
        .step_by(16)
        .filter(|&at| bytes[at..at + 16].iter().any(|&b| b != 0))
        .map(|at| at as u64)
        .collect()
}

#[test]
fn a_done_nonce_whose_slot_has_a_bit_flipped_is_refused_and_the_table_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let nonces: Vec<String> = (0..6).map(|n| format!("n{n}")).collect();
    let names: Vec<&str> = nonces.iter().map(String::as_str).collect();
    {
        let store = open(dir.path());
        commit_completing(&store, &names);
    }
    let slots = occupied_slots(dir.path());
    assert_eq!(slots.len(), nonces.len());
    for bit in [0u64, 13, 31, 47, 48, 55, 63, 64, 90, 127] {
        let image = crash_image(dir.path());
        flip(
            image.path(),
            DONE_NONCES,
            slots[0] + bit / 8,
            (bit % 8) as u8,
        );
        let store = open(image.path());
        // Whichever nonce the slot was, none is freed.
        for nonce in &names {
            assert!(!claim_won(&store, nonce, None), "bit {bit}: {nonce} freed");
        }
        assert!(
            store
                .damage()
                .is_some_and(|d| d.file == DONE_NONCES && d.offset == slots[0]),
            "bit {bit}: {:?}",
            store.damage()
        );
        drop(store);
        // The next open indexes the table again from the entries.
        let store = open(image.path());
        assert!(!store.repairs().is_empty());
        for nonce in &names {
            assert!(store.done_nonce(&nonce_key("t", nonce)).unwrap().is_some());
        }
        assert!(store.damage().is_none());
    }
}

#[test]
fn a_table_header_with_a_bit_flipped_is_indexed_again_and_forgets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        commit_completing(&store, &["a0", "a1", "a2", "a3", "a4"]);
    }
    // The table as a clean close left it after a0..a4 (its header claims
    // entries 0..5): what it holds when b0..b4's slots were lost to a
    // crash before its sync.
    let clean = std::fs::read(dir.path().join(DONE_NONCES)).unwrap();
    {
        let store = open(dir.path());
        commit_completing(&store, &["b0", "b1", "b2", "b3", "b4"]);
    }
    std::fs::write(dir.path().join(DONE_NONCES), &clean).unwrap();
    // `indexed` is the u64 at bytes 24..32: flips that raise it to 7, 13
    // and far past the log; then the magic, a table count, the CRC, and
    // the zeros after it.
    let flips = [
        (31, 6),
        (31, 4),
        (24, 0),
        (0, 7),
        (15, 7),
        (41, 3),
        (2000, 1),
    ];
    for (byte, bit) in flips {
        let image = crash_image(dir.path());
        flip(image.path(), DONE_NONCES, byte, bit);
        let store = open(image.path());
        for nonce in ["a0", "a4", "b0", "b1", "b2", "b4"] {
            assert!(
                store.done_nonce(&nonce_key("t", nonce)).unwrap().is_some(),
                "byte {byte} bit {bit}: {nonce} forgotten"
            );
            assert!(!claim_won(&store, nonce, None));
        }
        assert!(!store.repairs().is_empty(), "byte {byte} bit {bit}");
    }
}

#[test]
fn a_sled_that_lost_transactions_the_commit_ring_saw_durable_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    commit_completing(&store, &["a0", "a1", "a2"]);
    // sled as it was then: what it goes back to if its log loses every
    // transaction after this one (sled ends its recovery at the first
    // message that fails its CRC).
    let old = crash_image(dir.path());
    commit_completing(&store, &["b0", "b1", "b2"]);
    // A batch that commits in the ring, written when sled held 6 entries.
    let mut ring_batch = batch_completing(&store, &["c0", "c1"]);
    ring_batch.checkpoint = Some((8, "checkpoint 8\n".into()));
    store.commit(&ring_batch).unwrap();
    drop(store);
    for entry in std::fs::read_dir(old.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "db" || name == "conf" || name.starts_with("snap.") {
            std::fs::copy(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    for stale in std::fs::read_dir(dir.path()).unwrap() {
        let stale = stale.unwrap();
        let name = stale.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") && !old.path().join(&name).exists() {
            std::fs::remove_file(stale.path()).unwrap();
        }
    }
    let err = Store::open(&StoreConfig::new(dir.path()))
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("sled lost committed transactions"),
        "{err}"
    );
}

#[test]
fn a_damaged_index_slot_met_by_a_read_is_derived_again_after_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let at = {
        let store = open(dir.path());
        commit_completing(&store, &["i0", "i1", "i2", "i3"])
    };
    // Entry 2's end in entries.idx, one bit off.
    flip(dir.path(), INDEX, 2 * 8 + 7, 6);
    {
        let store = open(dir.path());
        assert!(matches!(store.entry(at["i2"]), Err(StoreError::Damaged(d)) if d.file == INDEX));
        assert!(store.done_nonce(&nonce_key("t", "i2")).is_err());
        assert!(!claim_won(&store, "i2", None));
    }
    let store = open(dir.path());
    for (nonce, index) in &at {
        assert_eq!(
            store.done_nonce(&nonce_key("t", nonce)).unwrap(),
            Some(*index)
        );
        assert!(store.entry(*index).unwrap().is_some());
    }
}
