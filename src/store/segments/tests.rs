//! Unit tests of the segment files through the store: commits read back,
//! what a crash leaves is cut off or rebuilt, the format mark, records and
//! their content.

use std::fs::OpenOptions;
use std::io::Write;

use super::record::TOKENS_FLAG;
use super::*;
use crate::store::{Head, Store, StoreConfig, StoredEntry};

/// Stored hashes kept in memory, to build batches as the sequencer would.
#[derive(Default)]
struct Model {
    hashes: Vec<tlog_tiles::Hash>,
    size: u64,
    last_leaf: Hash,
}

impl HashReader for Model {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TlogError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.hashes.get(i).copied())
                    .ok_or(TlogError::IndexesNotInTree)
            })
            .collect()
    }
}

impl Model {
    /// A batch of `count` records (distinct bytes per index).
    fn batch(&mut self, count: u64) -> BatchWrite {
        let mut write = BatchWrite::default();
        for _ in 0..count {
            let index = self.size;
            let bytes = format!("record {index} {}", "x".repeat((index % 7) as usize));
            let leaf = leaf_hash(bytes.as_bytes());
            let stored =
                tlog_tiles::stored_hashes_for_record_hash(index, leaf.into(), &*self).unwrap();
            let first = tlog_tiles::stored_hash_index(0, index);
            for (at, h) in (first..).zip(stored) {
                self.hashes.push(h);
                write.hashes.push((at, h.into()));
            }
            write.entries.push(StoredEntry {
                index,
                bytes: bytes.into_bytes(),
                signature: [index as u8; 64],
                index_exec_id: Some(format!("record {index}")),
                content: None,
                completion: None,
                approval_key: None,
            });
            self.size += 1;
            self.last_leaf = leaf;
        }
        write.head = Some(self.head());
        write
    }

    fn head(&self) -> Head {
        Head {
            size: self.size,
            root: tlog_tiles::tree_hash(self.size, self).unwrap().into(),
            last_leaf: self.last_leaf,
        }
    }
}

fn open(dir: &Path) -> Result<Store, StoreError> {
    Store::open(&StoreConfig {
        exec_id_of: record_name,
        ..StoreConfig::new(dir)
    })
}

/// The model's exec_id: its records' first two words ("record 7").
fn record_name(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut words = text.split(' ');
    Some(format!("{} {}", words.next()?, words.next()?))
}

/// A store of 50 entries in batches of 1..=10, closed.
fn written(dir: &Path) -> Model {
    let mut model = Model::default();
    let store = open(dir).unwrap();
    for n in 1..=10 {
        if model.size + n > 50 {
            break;
        }
        store.commit(&model.batch(n)).unwrap();
    }
    store.commit(&model.batch(50 - model.size)).unwrap();
    model
}

fn assert_holds(store: &Store, model: &Model) {
    assert_eq!(store.head().unwrap(), Some(model.head()));
    for i in 0..model.size {
        let (bytes, sig) = store.entry(i).unwrap().unwrap();
        assert!(bytes.starts_with(format!("record {i} ").as_bytes()));
        assert_eq!(sig, [i as u8; 64]);
    }
    assert!(store.entry(model.size).unwrap().is_none());
    for i in 0..model.size {
        let id = format!("record {i}");
        assert_eq!(store.index_of_exec_id(&id).unwrap(), Some(i), "{id}");
    }
    let next = format!("record {}", model.size);
    assert_eq!(store.index_of_exec_id(&next).unwrap(), None);
    for (i, h) in (0u64..).zip(&model.hashes) {
        assert_eq!(store.stored_hash(i).unwrap(), Some(Hash::from(*h)));
    }
    let count = model.hashes.len() as u64;
    assert!(store.stored_hash(count).unwrap().is_none());
}

fn append_garbage(path: &Path, bytes: usize) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&vec![0xAB; bytes]).unwrap();
}

/// The model's next batch of `count`, with a checkpoint: a batch the
/// store commits in the commit ring.
fn ring_batch(model: &mut Model, count: u64) -> BatchWrite {
    let mut batch = model.batch(count);
    batch.checkpoint = Some((model.size, format!("checkpoint {}\n", model.size)));
    batch
}

#[test]
fn a_head_committed_in_the_ring_survives_a_crash_and_is_copied_into_sled() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let store = open(dir.path()).unwrap();
    // The first batch chooses the entry dictionary: a sled transaction.
    store.commit(&ring_batch(&mut model, 3)).unwrap();
    let in_sled = model.head();
    assert_eq!(
        crate::store::read_head(&store.inner.meta).unwrap(),
        Some(in_sled)
    );
    store.commit(&ring_batch(&mut model, 4)).unwrap();
    store.commit(&ring_batch(&mut model, 2)).unwrap();
    assert_eq!(
        crate::store::read_head(&store.inner.meta).unwrap(),
        Some(in_sled),
        "the later batches changed nothing in sled but the head: the ring took them"
    );
    assert_eq!(store.head().unwrap(), Some(model.head()));
    // A crash now: the files as they are, with no clean close.
    let crashed = crate::store::crash_image(dir.path());
    drop(store);
    for path in [crashed.path(), dir.path()] {
        let store = open(path).unwrap();
        assert_holds(&store, &model);
        assert_eq!(
            crate::store::read_head(&store.inner.meta).unwrap(),
            Some(model.head()),
            "opening copies the ring's newer head into sled"
        );
        assert_eq!(
            store.latest_checkpoint().unwrap(),
            Some((9, "checkpoint 9\n".to_owned()))
        );
    }
}

#[test]
fn committed_batches_read_back_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = written(dir.path());
    let store = open(dir.path()).unwrap();
    assert_holds(&store, &model);
    store.commit(&model.batch(3)).unwrap();
    assert_holds(&store, &model);
}

#[test]
fn bytes_past_the_committed_head_are_cut_off_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = written(dir.path());
    // A batch written to the files whose sled transaction never ran.
    for (file, n) in [
        ("entries.bin", 700),
        ("entries.idx", 24),
        ("hashes.bin", 96),
    ] {
        append_garbage(&dir.path().join(file), n);
    }
    let store = open(dir.path()).unwrap();
    assert_holds(&store, &model);
    let mark = SegmentsMark::decode(&store.meta("segments").unwrap().unwrap()).unwrap();
    let len = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().len();
    assert_eq!(len("entries.bin"), mark.entries_end);
    assert_eq!(len("entries.idx"), 8 * model.size);
    assert_eq!(len("hashes.bin"), 32 * model.hashes.len() as u64);
    // The next batch lands where the cut-off bytes were.
    store.commit(&model.batch(4)).unwrap();
    drop(store);
    assert_holds(&open(dir.path()).unwrap(), &model);
}

#[test]
fn a_batch_whose_entries_file_is_not_durable_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = written(dir.path());
    let committed = model.head();
    let store = open(dir.path()).unwrap();
    store.inject_fault(FaultPoint::EntriesSync, 0);
    assert!(store.commit(&model.batch(3)).is_err());
    // The batch's bytes reached the file, but no head covers them.
    assert_eq!(store.head().unwrap(), Some(committed));
    assert!(store.entry(committed.size).unwrap().is_none());
    drop(store);
    let store = open(dir.path()).unwrap();
    assert_eq!(store.head().unwrap(), Some(committed));
    assert!(store.entry(committed.size).unwrap().is_none());
}

#[test]
fn lost_derived_files_are_rebuilt_from_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let model = written(dir.path());
    for file in ["entries.idx", "hashes.bin"] {
        truncate(&dir.path().join(file));
    }
    let store = open(dir.path()).unwrap();
    assert_holds(&store, &model);
    let mark = SegmentsMark::decode(&store.meta("segments").unwrap().unwrap()).unwrap();
    assert_eq!(mark.derived, 50, "the rebuild is committed");
}

#[test]
fn a_missing_committed_entry_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let path = dir.path().join("entries.bin");
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let err = open(dir.path()).err().unwrap();
    assert!(
        err.to_string().contains("committed entries are missing"),
        "{err}"
    );
}

fn truncate(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[test]
fn an_entry_altered_before_a_rebuild_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    {
        // Entry 3 re-encoded with other bytes, as an editor would.
        let store = open(dir.path()).unwrap();
        let mut value = vec![3u8; 64];
        value.extend_from_slice(b"record 3 forged");
        store
            .tamper_raw("entries", &3u64.to_be_bytes(), &value)
            .unwrap();
        assert_eq!(store.entry(3).unwrap().unwrap().0, b"record 3 forged");
    }
    truncate(&dir.path().join("hashes.bin"));
    let err = open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("altered"), "{err}");
}

#[test]
fn a_damaged_record_fails_its_read_and_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let f = OpenOptions::new()
        .write(true)
        .open(dir.path().join("entries.bin"))
        .unwrap();
    // Inside entry 0's compressed bytes (after length and signature).
    f.write_all_at(b"\xFF", 4 + 64 + 6).unwrap();
    let store = open(dir.path()).unwrap();
    assert!(matches!(store.entry(0), Err(StoreError::Damaged(_))));
    assert!(store.entry(1).unwrap().is_some());
    drop(store);
    truncate(&dir.path().join("hashes.bin"));
    let err = open(dir.path()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "entries.bin is damaged at byte 0: a record fails its CRC"
    );
}

#[test]
fn marks_carry_the_store_format_and_other_formats_are_refused() {
    let mark = SegmentsMark {
        entries_end: 1234,
        derived: 56,
    };
    let bytes = mark.encode();
    assert_eq!(bytes.len(), 32);
    assert_eq!(SegmentsMark::decode(&bytes).unwrap(), mark);
    for other in [STORE_FORMAT + 1, 8, 0, u64::MAX] {
        let mut bytes = bytes;
        bytes[16..24].copy_from_slice(&other.to_be_bytes());
        assert!(matches!(
            SegmentsMark::decode(&bytes),
            Err(StoreError::UnsupportedFormat { found }) if found == other
        ));
        // The 24-byte layout names its format in its last 8 bytes.
        assert!(matches!(
            SegmentsMark::decode(&bytes[..24]),
            Err(StoreError::UnsupportedFormat { found }) if found == other
        ));
    }
    assert!(matches!(
        SegmentsMark::decode(&bytes[..16]),
        Err(StoreError::UnsupportedFormat { found: 0 })
    ));
    let mut no_magic = bytes;
    no_magic[31] ^= 1;
    for not_a_mark in [&bytes[..20], &no_magic[..], &[][..]] {
        assert!(matches!(
            SegmentsMark::decode(not_a_mark),
            Err(StoreError::Corrupt(_))
        ));
    }
}

/// The OpenExec files of a store directory (sled's aside), to check that
/// a refused open leaves them as they were.
fn store_files(dir: &Path) -> Vec<Vec<u8>> {
    [
        "entries.bin",
        "entries.idx",
        "hashes.bin",
        "exec_ids.tab",
        "nonces.tab",
        "commits.ring",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap())
    .collect()
}

/// Sets (or, with `None`, removes) the stored segments mark with sled
/// alone, as another build would have left it.
fn put_mark(dir: &Path, mark: Option<&[u8]>) {
    let db = crate::store::open::open_sled(&StoreConfig::new(dir)).unwrap();
    let meta = db.open_tree("meta").unwrap();
    match mark {
        Some(bytes) => meta.insert(SegmentsMark::META_KEY, bytes).unwrap(),
        None => meta.remove(SegmentsMark::META_KEY).unwrap(),
    };
    db.flush().unwrap();
}

#[test]
fn a_store_in_another_format_is_refused_at_open_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let model = written(dir.path());
    let store = open(dir.path()).unwrap();
    let current = store.meta("segments").unwrap().unwrap();
    drop(store);
    let mut format_8 = current.clone();
    format_8[16..24].copy_from_slice(&8u64.to_be_bytes());
    let others: [(Option<&[u8]>, u64); 4] = [
        (Some(&format_8), 8),
        (Some(&format_8[..24]), 8),
        (Some(&current[..16]), 0),
        // A head without a mark.
        (None, 0),
    ];
    let before = store_files(dir.path());
    for (mark, found) in others {
        put_mark(dir.path(), mark);
        let Err(refused) = open(dir.path()) else {
            panic!("a store in format {found} opened");
        };
        let line = refused.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains(&format!("store format {found};"))
                && line.contains(&format!("format {STORE_FORMAT} only")),
            "{line}"
        );
        assert_eq!(
            store_files(dir.path()),
            before,
            "a refused open writes nothing"
        );
    }
    // Marked in this format again, it opens whole.
    put_mark(dir.path(), Some(&current));
    let store = open(dir.path()).unwrap();
    assert_holds(&store, &model);
}

#[test]
fn a_new_store_records_its_format_at_its_first_open_and_then_needs_its_ring() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    let db = crate::store::open::open_sled(&StoreConfig::new(dir.path())).unwrap();
    let mark = db
        .open_tree("meta")
        .unwrap()
        .get(SegmentsMark::META_KEY)
        .unwrap()
        .expect("a mark after the first open");
    assert_eq!(
        SegmentsMark::decode(&mark).unwrap(),
        SegmentsMark::default()
    );
    drop(db);
    std::fs::remove_file(dir.path().join(crate::store::commit_ring::FILE)).unwrap();
    let Err(refused) = open(dir.path()) else {
        panic!("a store without its ring opened");
    };
    assert!(refused.to_string().contains("commits.ring"), "{refused}");
}

#[test]
fn entries_without_a_store_in_sled_are_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let model = written(dir.path());
    // sled and the ring lost, the segment files kept.
    let kept = ["entries.bin", "entries.idx", "hashes.bin"];
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        if kept.iter().any(|k| path.ends_with(k)) {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let entries = std::fs::read(dir.path().join("entries.bin")).unwrap();
    assert!(!entries.is_empty() && model.size > 0);
    let Err(refused) = open(dir.path()) else {
        panic!("entries without a store opened");
    };
    assert!(matches!(refused, StoreError::Corrupt(_)), "{refused}");
    assert_eq!(
        std::fs::read(dir.path().join("entries.bin")).unwrap(),
        entries
    );
}

#[test]
fn a_slot_pointing_at_another_entry_is_not_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let model = written(dir.path());
    let store = open(dir.path()).unwrap();
    // Slots that name entries which do not carry those exec_ids (as a
    // stale or colliding slot would), one of them newer than the true one.
    let wrong = [("record 3", 7), ("record 50", 9), ("record 51", 50)];
    store
        .inner
        .exec_table
        .insert_batch(
            wrong.map(|(id, i)| (id.as_bytes(), i)).into_iter(),
            model.size,
        )
        .unwrap();
    assert_eq!(store.index_of_exec_id("record 3").unwrap(), Some(3));
    assert_eq!(store.index_of_exec_id("record 50").unwrap(), None);
    assert_eq!(store.index_of_exec_id("record 51").unwrap(), None);
}

#[test]
fn content_lives_in_its_entry_record_across_a_rebuild_and_a_tamper() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let store = open(dir.path()).unwrap();
    let mut batch = model.batch(10);
    for e in batch.entries.iter_mut().filter(|e| e.index % 2 == 0) {
        e.content = Some(format!("{{\"content\":{}}}", e.index).into_bytes());
    }
    store.commit(&batch).unwrap();
    let assert_content = |store: &Store| {
        for i in 0..10u64 {
            let expected = (i % 2 == 0).then(|| format!("{{\"content\":{i}}}").into_bytes());
            assert_eq!(store.content(i).unwrap(), expected, "content {i}");
        }
        assert_eq!(store.content(10).unwrap(), None);
    };
    assert_holds(&store, &model);
    assert_content(&store);
    // Re-encoding entry 1 (as an editor would) moves the later records
    // with their content.
    let (bytes, sig) = store.entry(1).unwrap().unwrap();
    let mut value = sig.to_vec();
    value.extend_from_slice(&bytes);
    store
        .tamper_raw("entries", &1u64.to_be_bytes(), &value)
        .unwrap();
    drop(store);
    for file in ["entries.idx", "hashes.bin"] {
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    let store = open(dir.path()).unwrap();
    assert_holds(&store, &model);
    assert_eq!(store.content(4).unwrap(), Some(b"{\"content\":4}".to_vec()));
    assert_eq!(store.content(3).unwrap(), None);
    // Erased in place: gone across a reopen and a rebuild, the log whole.
    assert!(store.erase_content(4).unwrap());
    assert!(store.erase_content(2).unwrap());
    assert!(!store.erase_content(4).unwrap());
    assert!(!store.erase_content(3).unwrap());
    assert!(!store.erase_content(5).unwrap());
    let len = std::fs::metadata(dir.path().join("entries.bin"))
        .unwrap()
        .len();
    drop(store);
    std::fs::remove_file(dir.path().join("hashes.bin")).unwrap();
    let store = open(dir.path()).unwrap();
    assert_holds(&store, &model);
    for i in [2, 3, 4] {
        assert_eq!(store.content(i).unwrap(), None, "content {i}");
    }
    assert_eq!(store.content(6).unwrap(), Some(b"{\"content\":6}".to_vec()));
    let after = std::fs::metadata(dir.path().join("entries.bin"))
        .unwrap()
        .len();
    assert_eq!(after, len, "erasing moves no record");
}

#[test]
fn tokenized_content_reads_back_and_a_record_without_the_flag_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let store = open(dir.path()).unwrap();
    let mut batch = model.batch(10);
    for e in &mut batch.entries {
        // A hash and a UUID, which tokens shorten.
        e.content = Some(
            format!(
                "{{\"salt\":\"{}\",\"id\":\"37cbf50e-ed7e-4cef-94c2-{:012}\"}}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    [e.index as u8; 32]
                ),
                e.index
            )
            .into_bytes(),
        );
    }
    let contents: Vec<_> = batch
        .entries
        .iter()
        .map(|e| e.content.clone().unwrap())
        .collect();
    store.commit(&batch).unwrap();
    drop(store);
    for file in ["entries.idx", "hashes.bin"] {
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    let store = open(dir.path()).unwrap();
    assert_holds(&store, &model);
    for (i, content) in (0..10).zip(&contents) {
        assert_eq!(store.content(i).unwrap().as_ref(), Some(content), "{i}");
    }
    assert!(store.erase_content(2).unwrap());
    assert_eq!(store.content(2).unwrap(), None);
    assert_holds(&store, &model);
    // Entry 7's length word without the tokens flag.
    let at = store.inner.segments.record_start(7).unwrap();
    let mut word = [0u8; 4];
    store
        .inner
        .segments
        .entries
        .read_exact_at(&mut word, at)
        .unwrap();
    let cleared = u32::from_be_bytes(word) & !TOKENS_FLAG;
    store
        .inner
        .segments
        .entries
        .write_all_at(&cleared.to_be_bytes(), at)
        .unwrap();
    assert!(matches!(store.entry(7), Err(StoreError::Damaged(_))));
    assert!(store.entry(6).unwrap().is_some());
}

#[test]
fn whole_records_is_the_largest_size_that_fits() {
    for n in 0..600u64 {
        let count = tlog_tiles::stored_hash_count(n);
        assert_eq!(whole_records(count), n);
        if n > 0 {
            assert_eq!(whole_records(count - 1), n - 1);
        }
    }
}
