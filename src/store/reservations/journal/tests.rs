//! Unit tests of the reservation journal: the frame codec, torn and
//! damaged frames, and compaction's crash points.

use super::*;

fn rec(n: u8) -> JournalRecord {
    JournalRecord {
        key: vec![b't', 0, b'0' + n],
        record: vec![n; 20 + usize::from(n)],
    }
}

fn attempt(n: u8) -> (String, JournalRecord) {
    (format!("exec-{n}"), rec(n))
}

#[test]
fn frames_round_trip_from_either_copy_and_each_copy_refuses_every_change() {
    let records = vec![rec(1), rec(2), rec(3)];
    let frame = encode_frame(&records).unwrap();
    let half = frame.len() / 2;
    let first = decode_copy(&frame).unwrap();
    let second = decode_copy(&frame[half..]).unwrap();
    assert_eq!(
        (first.which, first.len, &first.records),
        (0, half, &records)
    );
    assert_eq!(
        (second.which, second.len, &second.records),
        (1, half, &records)
    );
    assert!(decode_copy(&encode_frame(&[]).unwrap())
        .unwrap()
        .records
        .is_empty());
    for cut in 0..half {
        assert_eq!(decode_copy(&frame[..cut]), None, "cut at {cut}");
    }
    for at in 0..half {
        let mut changed = frame.clone();
        changed[at] ^= 0x40;
        assert_eq!(decode_copy(&changed), None, "byte {at}");
        // ... and the frame is read from its second copy.
        let read = scan(&changed).unwrap();
        assert_eq!(
            (&read.records, read.repaired),
            (&records, true),
            "byte {at}"
        );
    }
    for at in half..frame.len() {
        let mut changed = frame.clone();
        changed[at] ^= 0x40;
        let read = scan(&changed).unwrap();
        assert_eq!(
            (&read.records, read.repaired),
            (&records, true),
            "byte {at}"
        );
    }
    assert!(!scan(&frame).unwrap().repaired);
}

#[test]
fn a_torn_last_frame_is_cut_and_one_damaged_in_both_copies_before_a_valid_one_refuses() {
    let first = encode_frame(&[rec(1)]).unwrap();
    let second = encode_frame(&[rec(2), rec(3)]).unwrap();
    let whole = [first.clone(), second.clone()].concat();
    let all = scan(&whole).unwrap();
    assert_eq!(all.records, vec![rec(1), rec(2), rec(3)]);
    assert_eq!(all.end, whole.len() as u64);
    // Torn anywhere in the last frame's first copy, or zeros after it:
    // cut there.
    for cut in first.len()..first.len() + second.len() / 2 {
        let torn = scan(&whole[..cut]).unwrap();
        assert_eq!((torn.records, torn.end), (vec![rec(1)], first.len() as u64));
    }
    // Torn in its second copy: the first holds it.
    for cut in first.len() + second.len() / 2..whole.len() {
        let torn = scan(&whole[..cut]).unwrap();
        assert_eq!(torn.records, vec![rec(1), rec(2), rec(3)], "cut at {cut}");
    }
    let mut zeros = whole.clone();
    zeros.extend_from_slice(&[0; 100]);
    assert_eq!(scan(&zeros).unwrap().end, whole.len() as u64);
    // Both copies damaged before a valid frame: refused, naming the file
    // and the frame's offset.
    for (a, b) in [
        (0, first.len() / 2),
        (9, first.len() - 1),
        (15, first.len() / 2 + 20),
    ] {
        let mut damaged = whole.clone();
        damaged[a] ^= 1;
        damaged[b] ^= 1;
        let refused = scan(&damaged).unwrap_err();
        assert_eq!((refused.file, refused.offset), (FILE, 0), "bytes {a}, {b}");
    }
}

#[test]
fn appended_frames_survive_a_reopen_and_resolved_records_leave_by_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let scanned = Journal::read(dir.path()).unwrap();
    let journal = Journal::open(dir.path(), &scanned, Vec::new()).unwrap();
    journal.append(vec![attempt(1), attempt(2)]).unwrap();
    journal.append(vec![attempt(3)]).unwrap();
    let on_disk = Journal::read(dir.path()).unwrap();
    assert_eq!(on_disk.records, vec![rec(1), rec(2), rec(3)]);
    // Resolving records compacts only past the bound.
    journal.resolved(&[(rec(1).key, "exec-1".into())]).unwrap();
    assert_eq!(Journal::read(dir.path()).unwrap().records.len(), 3);
    let mut n = 0u64;
    while journal.len().unwrap() < COMPACT_AT {
        let big = JournalRecord {
            key: n.to_be_bytes().to_vec(),
            record: vec![7; 4000],
        };
        journal.append(vec![(format!("big-{n}"), big)]).unwrap();
        n += 1;
    }
    let resolved: Vec<Attempt> = (0..n)
        .map(|n| (n.to_be_bytes().to_vec(), format!("big-{n}")))
        .collect();
    journal.resolved(&resolved).unwrap();
    let compacted = Journal::read(dir.path()).unwrap();
    assert_eq!(compacted.records, vec![rec(2), rec(3)]);
    assert!(journal.len().unwrap() < 400);
    // Later frames go after the compacted one.
    journal.append(vec![attempt(4)]).unwrap();
    assert_eq!(
        Journal::read(dir.path()).unwrap().records,
        vec![rec(2), rec(3), rec(4)]
    );
    // A clean close keeps only what is still needed.
    journal.resolved(&[(rec(2).key, "exec-2".into())]).unwrap();
    journal.compact_now().unwrap();
    assert_eq!(
        Journal::read(dir.path()).unwrap().records,
        vec![rec(3), rec(4)]
    );
}

#[test]
fn every_crash_point_of_a_compaction_leaves_a_whole_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let old = [
        encode_frame(&[rec(1)]).unwrap(),
        encode_frame(&[rec(2)]).unwrap(),
    ]
    .concat();
    let new = encode_frame(&[rec(2)]).unwrap();
    // Before the rename: the old journal, with a .new file whole, torn
    // or empty beside it (removed at open).
    for leftover in [new.clone(), new[..new.len() / 2].to_vec(), Vec::new()] {
        std::fs::write(path.join(FILE), &old).unwrap();
        std::fs::write(path.join(NEW_FILE), &leftover).unwrap();
        let read = Journal::read(path).unwrap();
        assert_eq!(read.records, vec![rec(1), rec(2)]);
        assert!(!path.join(NEW_FILE).exists());
    }
    // After it: the new journal.
    std::fs::write(path.join(FILE), &new).unwrap();
    assert_eq!(Journal::read(path).unwrap().records, vec![rec(2)]);
}

#[test]
fn opening_rewrites_a_journal_to_its_live_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let mut bytes = encode_frame(&[rec(1), rec(2)]).unwrap();
    bytes.extend_from_slice(&encode_frame(&[rec(3)]).unwrap()[..10]);
    std::fs::write(path.join(FILE), &bytes).unwrap();
    let scanned = Journal::read(path).unwrap();
    assert_eq!(scanned.records, vec![rec(1), rec(2)]);
    let live = vec![((rec(2).key, "exec-2".to_owned()), rec(2))];
    let journal = Journal::open(path, &scanned, live).unwrap();
    assert_eq!(Journal::read(path).unwrap().records, vec![rec(2)]);
    journal.append(vec![attempt(5)]).unwrap();
    assert_eq!(Journal::read(path).unwrap().records, vec![rec(2), rec(5)]);
}

#[test]
fn a_failed_append_refuses_every_later_frame() {
    let dir = tempfile::tempdir().unwrap();
    let scanned = Journal::read(dir.path()).unwrap();
    let journal = Journal::open(dir.path(), &scanned, Vec::new()).unwrap();
    journal.lock().unwrap().broken = Some("injected".into());
    assert!(journal.append(vec![attempt(1)]).is_err());
    assert!(Journal::read(dir.path()).unwrap().records.is_empty());
}

#[test]
fn frames_overwrite_zeros_written_ahead_and_a_reopen_takes_the_file_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    create_empty(dir.path()).unwrap();
    let scanned = Journal::read(dir.path()).unwrap();
    let journal = Journal::open(dir.path(), &scanned, Vec::new()).unwrap();
    journal.append(vec![attempt(1)]).unwrap();
    journal.append(vec![attempt(2)]).unwrap();
    let path = dir.path().join(FILE);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATE);
    let scanned = Journal::read(dir.path()).unwrap();
    assert!(scanned.zeros_after && !scanned.repaired);
    assert_eq!(scanned.end, journal.len().unwrap());
    let before = std::fs::read(&path).unwrap();
    let live = [1, 2].map(|n| ((rec(n).key, format!("exec-{n}")), rec(n)));
    let reopened = Journal::open(dir.path(), &scanned, live.to_vec()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "not rewritten");
    reopened.append(vec![attempt(3)]).unwrap();
    assert_eq!(
        Journal::read(dir.path()).unwrap().records,
        vec![rec(1), rec(2), rec(3)]
    );
}

#[test]
fn a_failed_compaction_leaves_the_journal_refusing_later_frames() {
    let dir = tempfile::tempdir().unwrap();
    let scanned = Journal::read(dir.path()).unwrap();
    let journal = Journal::open(dir.path(), &scanned, Vec::new()).unwrap();
    journal.append(vec![attempt(1)]).unwrap();
    let mut n = 0u64;
    while journal.len().unwrap() < COMPACT_AT {
        let big = JournalRecord {
            key: n.to_be_bytes().to_vec(),
            record: vec![7; 4000],
        };
        journal.append(vec![(format!("big-{n}"), big)]).unwrap();
        n += 1;
    }
    // The compaction's file cannot be created: a directory holds its name.
    std::fs::create_dir(dir.path().join(NEW_FILE)).unwrap();
    let resolved: Vec<Attempt> = (0..n)
        .map(|n| (n.to_be_bytes().to_vec(), format!("big-{n}")))
        .collect();
    assert!(journal.resolved(&resolved).is_err());
    // Fail closed: no frame is taken (and answered durable) after it.
    assert!(journal.append(vec![attempt(2)]).is_err());
    std::fs::remove_dir(dir.path().join(NEW_FILE)).unwrap();
    let on_disk = Journal::read(dir.path()).unwrap().records;
    assert!(on_disk.contains(&rec(1)) && !on_disk.contains(&rec(2)));
}
