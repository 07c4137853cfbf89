//! Redaction records and erases in place, across reopens and torn writes.

use std::os::unix::fs::FileExt;

use super::super::{batch_appending, Store, StoreConfig, StoredEntry};
use super::RedactionRecord;

const SECRET: &[u8] = b"zq7-SECRET-k2v9x-redact-me-4815162342";

fn open(dir: &std::path::Path) -> Store {
    Store::open(&StoreConfig::new(dir)).unwrap()
}

fn entry(index: u64, content: Option<Vec<u8>>) -> StoredEntry {
    let bytes = format!(
        "{{\"exec_id\":\"x-{index}\",\"index\":{index},\"nonce\":\"n-{index}\",\"outcome\":\"executed\",\"tenant\":\"t\"}}"
    )
    .into_bytes();
    StoredEntry {
        index,
        bytes,
        signature: [index as u8; 64],
        index_exec_id: Some(format!("x-{index}")),
        content,
        completion: None,
        approval_key: None,
    }
}

fn secret_content(index: u64) -> Vec<u8> {
    let mut c = format!("{{\"payload\":{{\"k\":\"{index}-").into_bytes();
    c.extend_from_slice(SECRET);
    c.extend_from_slice(b"\"}}");
    c
}

/// A store of 6 entries, 1 to 5 keeping content holding the secret.
fn filled(dir: &std::path::Path) -> Store {
    let store = open(dir);
    let entries = (0..6)
        .map(|i| entry(i, (i > 0).then(|| secret_content(i))))
        .collect();
    store.commit(&batch_appending(&store, entries)).unwrap();
    store
}

fn holds(dir: &std::path::Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(dir.join("entries.bin")).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn records_survive_encoding_and_refuse_other_bytes() {
    let record = RedactionRecord {
        span: super::ContentSpan {
            start: 10,
            frame_at: 90,
            end: 140,
        },
        from_size: 7,
        entry: Some(9),
        prefix_crc: [1, 2, 3, 4],
        reason: "leaked_secret".into(),
    };
    assert_eq!(RedactionRecord::decode(&record.encode()).unwrap(), record);
    let pending = RedactionRecord {
        entry: None,
        ..record.clone()
    };
    assert_eq!(RedactionRecord::decode(&pending.encode()).unwrap(), pending);
    let bytes = record.encode();
    assert!(RedactionRecord::decode(&bytes[..30]).is_err());
    assert!(RedactionRecord::decode(&bytes[..ContentSpanLen::LEN + 16]).is_err());
    assert!(RedactionRecord::decode(&bytes[..ContentSpanLen::LEN + 20]).is_err());
}

use super::ContentSpan as ContentSpanLen;

#[test]
fn a_redaction_erases_the_content_and_leaves_entries_and_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path());
    assert!(
        holds(dir.path(), SECRET),
        "the secret is stored in the clear first"
    );
    let before: Vec<_> = (0..6).map(|i| store.entry(i).unwrap()).collect();
    let root = store.head().unwrap().unwrap().root;
    assert!(
        store.begin_redaction(0, "other").unwrap().is_none(),
        "entry 0 keeps nothing"
    );
    assert!(
        store.begin_redaction(9, "other").unwrap().is_none(),
        "no entry 9"
    );
    let record = store.begin_redaction(3, "personal_data").unwrap().unwrap();
    assert_eq!(record.entry, None);
    assert_eq!(store.redaction(3).unwrap(), Some(record));
    store.finish_redaction(3, 5).unwrap();
    assert_eq!(store.content(3).unwrap(), None);
    assert!(store.content(2).unwrap().is_some());
    assert_eq!(store.redaction(3).unwrap().unwrap().entry, Some(5));
    let after: Vec<_> = (0..6).map(|i| store.entry(i).unwrap()).collect();
    assert_eq!(before, after, "entries and signatures are untouched");
    assert!(
        store.begin_redaction(3, "other").unwrap().is_none(),
        "already erased"
    );
    for i in [1, 2, 4, 5] {
        store.begin_redaction(i, "legal").unwrap().unwrap();
        store.finish_redaction(i, 5).unwrap();
    }
    assert!(
        !holds(dir.path(), SECRET),
        "no record holds the secret any more"
    );
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.head().unwrap().unwrap().root, root);
    assert_eq!(store.redactions().unwrap().len(), 5);
    for i in 1..6 {
        assert_eq!(store.content(i).unwrap(), None, "content {i}");
    }
}

/// Entry 2's redaction begun and its redaction entry (5) recorded, as
/// a crash before the erase leaves it.
fn recorded_redaction_of_2(store: &Store) -> RedactionRecord {
    let record = store.begin_redaction(2, "leaked_secret").unwrap().unwrap();
    store
        .put_redaction(
            2,
            &RedactionRecord {
                entry: Some(5),
                ..record.clone()
            },
        )
        .unwrap();
    record
}

#[test]
fn a_torn_erase_is_completed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path());
    // The redaction entry committed, then a crash tore the erase: half the
    // frame zeroed, the old CRC left.
    let record = recorded_redaction_of_2(&store);
    let half = (record.span.end - 4 - record.span.frame_at) / 2;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("entries.bin"))
        .unwrap();
    file.write_all_at(&vec![0u8; half as usize], record.span.frame_at)
        .unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.content(2).unwrap(), None);
    assert!(store.entry(2).unwrap().is_some(), "the record checks again");
    assert!(store.content(3).unwrap().is_some());
    assert!(store.damage().is_none());
}

#[test]
fn a_redaction_begun_but_never_recorded_erases_nothing_until_finished() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path());
    store.begin_redaction(4, "other").unwrap().unwrap();
    drop(store);
    let store = open(dir.path());
    assert!(
        store.content(4).unwrap().is_some(),
        "no entry recorded it: kept"
    );
    assert_eq!(store.redaction(4).unwrap().unwrap().entry, None);
    store.forget_redaction(4).unwrap();
    assert_eq!(store.redaction(4).unwrap(), None);
}

/// Flips one bit of the signature of the record that starts at `start`.
fn rot_signature(dir: &std::path::Path, start: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("entries.bin"))
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, start + 10).unwrap();
    file.write_all_at(&[byte[0] ^ 0x04], start + 10).unwrap();
}

#[test]
fn a_record_failing_its_crc_is_not_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path());
    let span = store.inner.segments.content_span(3).unwrap().unwrap();
    rot_signature(dir.path(), span.start);
    assert!(store.begin_redaction(3, "other").is_err());
    assert_eq!(store.redaction(3).unwrap(), None, "nothing recorded");
}

#[test]
fn an_erase_does_not_make_a_record_damaged_since_its_redaction_began_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path());
    let record = store.begin_redaction(2, "leaked_secret").unwrap().unwrap();
    rot_signature(dir.path(), record.span.start);
    let err = store.finish_redaction(2, 5).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(
        store.entry(2).is_err(),
        "the rotted signature still fails the record's CRC"
    );
    let mut frame = vec![1u8; (record.span.end - 4 - record.span.frame_at) as usize];
    std::fs::File::open(dir.path().join("entries.bin"))
        .unwrap()
        .read_exact_at(&mut frame, record.span.frame_at)
        .unwrap();
    assert!(
        frame.iter().all(|&b| b == 0),
        "the content is erased all the same"
    );
    assert!(store.entry(3).unwrap().is_some());
}

#[test]
fn the_erase_redone_at_open_does_not_hide_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path());
    let record = recorded_redaction_of_2(&store);
    drop(store);
    // A crash before the erase, and bit rot in the signature since.
    rot_signature(dir.path(), record.span.start);
    let store = open(dir.path());
    assert!(
        store.entry(2).is_err(),
        "the rotted signature still fails the record's CRC"
    );
    drop(store);
    assert!(!holds_content_of(dir.path(), &record));
}

/// Whether the content frame at `record`'s span holds anything but zeros.
fn holds_content_of(dir: &std::path::Path, record: &RedactionRecord) -> bool {
    let mut frame = vec![0u8; (record.span.end - 4 - record.span.frame_at) as usize];
    std::fs::File::open(dir.join("entries.bin"))
        .unwrap()
        .read_exact_at(&mut frame, record.span.frame_at)
        .unwrap();
    frame.iter().any(|&b| b != 0)
}
