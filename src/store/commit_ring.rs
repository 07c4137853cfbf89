//! The commit ring (`commits.ring`): where a batch that changes nothing in
//! sled but the head commits — its head, segments mark and checkpoint —
//! with one `pwrite` and one `fdatasync` of a small file, instead of a
//! sled transaction, `flush()` and `fdatasync` of sled's log.
//!
//! Why: most batches (handlers without effects, whose nonces are claimed
//! in memory — see `reservations`) touch sled only for the head and the
//! checkpoint. sled 0.34's transaction and flush hand each write of its
//! log buffer to a thread pool that wakes all seven of its threads, and
//! its log needs a device wait of its own: measured at 64 connections,
//! skipping them raised `POST /execute` by 15–30%.
//!
//! The file holds [`SLOTS`] fixed slots written in turn. A slot holds its
//! commit twice, each copy a magic word, a length, the record and a SHA-256
//! of all three, so a torn or never-written slot is told apart from a
//! commit, and a slot one of whose copies was damaged after it was written
//! still holds its commit: a damaged newest slot would otherwise read as
//! one torn by a crash, and the open would cut off its acknowledged
//! entries. Only the ledger's syncer
//! writes it, one slot at a time, each durable before the next is written
//! (and only after every earlier cycle's sync): at most one slot is ever
//! unsynced, and the newest valid slot is the ring's last commit. The
//! store's committed head is the newer of sled's and the ring's; at open
//! and at a clean close the ring's is copied into sled ("promoted") when it
//! is the newer, so every other part of the store reads sled alone.
//!
//! This module must never write a slot before the previous one is durable,
//! and never holds a commit whose entries are not already durable.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::segments::{SegmentsMark, STORE_FORMAT};
use super::{Head, StoreError};

/// The ring's file name in the store directory.
pub(super) const FILE: &str = "commits.ring";
/// Slots in the ring. Two would do (one durable, one being written); four
/// leave room for a slot the device damaged.
const SLOTS: u64 = 4;
/// Bytes per slot: a page, so a slot is one aligned write.
const SLOT_LEN: usize = 4096;
/// Bytes per copy of the commit in a slot.
const COPY_LEN: usize = SLOT_LEN / 2;
const MAGIC: &[u8; 8] = b"OXCOMMIT";
const DIGEST_LEN: usize = 32;
/// Magic word and length word before the record.
const PREFIX_LEN: usize = MAGIC.len() + 4;
/// Head, mark and sled's head size before the checkpoint note.
const FIXED_LEN: usize = Head::LEN + SegmentsMark::LEN + 8;
/// The longest checkpoint note a slot holds; a batch with a longer one
/// commits through sled.
const MAX_NOTE_LEN: usize = COPY_LEN - PREFIX_LEN - FIXED_LEN - DIGEST_LEN;

/// One commit: what a batch's sled transaction would have written to
/// `meta` (head, segments mark) and `checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingCommit {
    pub(super) head: Head,
    pub(super) mark: SegmentsMark,
    /// The size of sled's head when the commit was written (durable in
    /// sled before this slot is): sled holding less at open means sled
    /// lost committed transactions.
    pub(super) sled_size: u64,
    pub(super) checkpoint: String,
}

impl RingCommit {
    /// The slot's bytes (the copy twice), or `None` when the note does
    /// not fit.
    fn encode(&self) -> Option<Vec<u8>> {
        if !CommitRing::fits(&self.checkpoint) {
            return None;
        }
        let len = FIXED_LEN + self.checkpoint.len();
        let mut copy = Vec::with_capacity(COPY_LEN);
        copy.extend_from_slice(MAGIC);
        copy.extend_from_slice(&u32::try_from(len).ok()?.to_be_bytes());
        copy.extend_from_slice(&self.head.encode());
        copy.extend_from_slice(&self.mark.encode());
        copy.extend_from_slice(&self.sled_size.to_be_bytes());
        copy.extend_from_slice(self.checkpoint.as_bytes());
        let digest = Sha256::digest(&copy);
        copy.extend_from_slice(&digest);
        copy.resize(COPY_LEN, 0);
        Some([copy.as_slice(), copy.as_slice()].concat())
    }

    /// The commit in a slot — its first copy that checks — or `None` for
    /// a slot never written, torn, or damaged in both copies.
    fn decode(slot: &[u8]) -> Option<Self> {
        Self::decode_as(slot, STORE_FORMAT)
    }

    /// [`Self::decode`] for a store in `format`.
    fn decode_as(slot: &[u8], format: u64) -> Option<Self> {
        if slot.len() != SLOT_LEN {
            return None;
        }
        slot.chunks_exact(COPY_LEN)
            .find_map(|copy| Self::decode_copy_as(copy, format))
    }

    /// The commit in one copy, if it checks (magic, length, digest, and
    /// zeros after the digest).
    fn decode_copy(copy: &[u8]) -> Option<Self> {
        Self::decode_copy_as(copy, STORE_FORMAT)
    }

    fn decode_copy_as(copy: &[u8], format: u64) -> Option<Self> {
        if &copy[..MAGIC.len()] != MAGIC {
            return None;
        }
        let len = u32::from_be_bytes(copy[MAGIC.len()..PREFIX_LEN].try_into().ok()?) as usize;
        if !(FIXED_LEN..=FIXED_LEN + MAX_NOTE_LEN).contains(&len) {
            return None;
        }
        let end = PREFIX_LEN + len;
        if Sha256::digest(&copy[..end]).as_slice() != &copy[end..end + DIGEST_LEN]
            || copy[end + DIGEST_LEN..].iter().any(|&b| b != 0)
        {
            return None;
        }
        let record = &copy[PREFIX_LEN..end];
        let mark_end = Head::LEN + SegmentsMark::LEN;
        Some(Self {
            head: Head::decode(&record[..Head::LEN]).ok()?,
            mark: SegmentsMark::decode_as(&record[Head::LEN..mark_end], format).ok()?,
            sled_size: u64::from_be_bytes(record[mark_end..FIXED_LEN].try_into().ok()?),
            checkpoint: String::from_utf8(record[FIXED_LEN..].to_vec()).ok()?,
        })
    }

    /// Size of the tree it commits.
    pub(super) fn size(&self) -> u64 {
        self.head.size
    }
}

/// The open ring.
pub(super) struct CommitRing {
    file: File,
    /// The slot the next commit goes to.
    next: Mutex<u64>,
}

impl CommitRing {
    /// Opens the ring in `dir`, creating it (every slot empty) if absent.
    /// Returns it with the commits its slots hold, oldest first (the last
    /// is its newest commit).
    pub(super) fn open(dir: &Path) -> Result<(Self, Vec<RingCommit>), StoreError> {
        let path = dir.join(FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let len = SLOTS * SLOT_LEN as u64;
        if file.metadata()?.len() < len {
            file.set_len(len)?;
            file.sync_all()?;
        }
        let mut bytes = vec![0u8; SLOT_LEN * SLOTS as usize];
        file.read_exact_at(&mut bytes, 0)?;
        let mut held: Vec<(u64, RingCommit)> = (0..SLOTS)
            .zip(bytes.chunks_exact(SLOT_LEN))
            .filter_map(|(at, slot)| RingCommit::decode(slot).map(|c| (at, c)))
            .collect();
        held.sort_by_key(|(_, c)| c.size());
        let next = held.last().map_or(0, |(at, _)| (at + 1) % SLOTS);
        let ring = Self {
            file,
            next: Mutex::new(next),
        };
        Ok((ring, held.into_iter().map(|(_, c)| c).collect()))
    }

    /// The slots in `dir`'s ring that are neither empty (all zeros) nor
    /// two equal copies that check: (slot, whether a copy still holds a
    /// commit). A crash while a slot is written leaves one such slot, the
    /// newest; damage leaves others (`openexec audit`).
    pub(super) fn unsound_slots(dir: &Path) -> Result<Vec<(u64, bool)>, StoreError> {
        let bytes = std::fs::read(dir.join(FILE))?;
        Ok(bytes
            .chunks(SLOT_LEN)
            .zip(0u64..)
            .filter_map(|(slot, at)| {
                let copies: Vec<_> = slot.chunks(COPY_LEN).map(RingCommit::decode_copy).collect();
                let sound = slot.iter().all(|&b| b == 0)
                    || (copies.len() == 2 && copies[0].is_some() && copies[0] == copies[1]);
                (!sound).then(|| (at, copies.iter().any(Option::is_some)))
            })
            .collect())
    }

    /// The newest commit of the ring in `dir` as a store in `format`
    /// wrote it, if any (the migration reads older formats').
    pub(super) fn newest_as(dir: &Path, format: u64) -> Result<Option<RingCommit>, StoreError> {
        let bytes = match std::fs::read(dir.join(FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(bytes
            .chunks_exact(SLOT_LEN)
            .filter_map(|slot| RingCommit::decode_as(slot, format))
            .max_by_key(RingCommit::size))
    }

    /// Empties every slot of the ring in `dir`, durably.
    pub(super) fn clear(dir: &Path) -> Result<(), StoreError> {
        let file = OpenOptions::new().write(true).open(dir.join(FILE))?;
        file.write_all_at(&vec![0u8; SLOT_LEN * SLOTS as usize], 0)?;
        file.sync_all()?;
        Ok(())
    }

    /// Whether a checkpoint note fits in a slot.
    pub(super) fn fits(note: &str) -> bool {
        note.len() <= MAX_NOTE_LEN
    }

    /// Writes `commit` to the next slot and makes it durable. The slot
    /// before it keeps the previous commit until this one is whole.
    pub(super) fn write(&self, commit: &RingCommit) -> Result<(), StoreError> {
        let slot = commit
            .encode()
            .ok_or_else(|| StoreError::TooLarge(commit.checkpoint.len()))?;
        let mut next = self
            .next
            .lock()
            .map_err(|_| StoreError::Corrupt("commit ring lock poisoned".into()))?;
        self.file.write_all_at(&slot, *next * SLOT_LEN as u64)?;
        crate::instruments::timed_sync(crate::instruments::SyncedFile::Ring, || {
            self.file.sync_data()
        })?;
        *next = (*next + 1) % SLOTS;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hash::Hash;

    fn commit(size: u64) -> RingCommit {
        RingCommit {
            head: Head {
                size,
                root: Hash::sha256(&size.to_be_bytes()),
                last_leaf: Hash::sha256(b"leaf"),
            },
            mark: SegmentsMark {
                entries_end: size * 400,
                derived: size / 2,
            },
            sled_size: size / 3,
            checkpoint: format!("example.com/log\n{size}\nroot\n\n— example.com/log sig\n"),
        }
    }

    #[test]
    fn the_newest_commit_is_found_after_the_ring_wraps() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, held) = CommitRing::open(dir.path()).unwrap();
        assert!(held.is_empty(), "a new ring holds no commit");
        for size in 1..=SLOTS + 3 {
            ring.write(&commit(size)).unwrap();
        }
        drop(ring);
        let (ring, held) = CommitRing::open(dir.path()).unwrap();
        let expected: Vec<_> = (4..=SLOTS + 3).map(commit).collect();
        assert_eq!(held, expected, "the last SLOTS commits, oldest first");
        ring.write(&commit(SLOTS + 4)).unwrap();
        let (_, held) = CommitRing::open(dir.path()).unwrap();
        assert_eq!(
            held.last(),
            Some(&commit(SLOTS + 4)),
            "reopening resumes at the right slot"
        );
        assert_eq!(held.len(), SLOTS as usize);
    }

    #[test]
    fn a_torn_slot_leaves_the_commit_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = CommitRing::open(dir.path()).unwrap();
        ring.write(&commit(7)).unwrap();
        ring.write(&commit(9)).unwrap();
        drop(ring);
        // Slot 1 holds size 9; tear it: its first copy written, its
        // second not (so damaged).
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(FILE))
            .unwrap();
        file.write_all_at(&[0xff], SLOT_LEN as u64 + 20).unwrap();
        let (_, held) = CommitRing::open(dir.path()).unwrap();
        assert_eq!(held, vec![commit(7), commit(9)], "one copy holds");
        file.write_all_at(&[0xff], (SLOT_LEN + COPY_LEN) as u64 + 20)
            .unwrap();
        let (_, held) = CommitRing::open(dir.path()).unwrap();
        assert_eq!(held, vec![commit(7)]);
    }

    #[test]
    fn any_one_flipped_bit_of_a_written_slot_leaves_its_commit() {
        let one = commit(42);
        let slot = one.encode().unwrap();
        for bit in 0..SLOT_LEN * 8 {
            let mut damaged = slot.clone();
            damaged[bit / 8] ^= 0x80 >> (bit % 8);
            assert_eq!(RingCommit::decode(&damaged), Some(one.clone()), "bit {bit}");
        }
    }

    #[test]
    fn slots_round_trip_and_refuse_what_does_not_fit() {
        let one = commit(42);
        assert_eq!(RingCommit::decode(&one.encode().unwrap()), Some(one));
        let long = RingCommit {
            checkpoint: "x".repeat(MAX_NOTE_LEN + 1),
            ..commit(1)
        };
        assert!(long.encode().is_none());
        assert!(!CommitRing::fits(&long.checkpoint));
        assert_eq!(RingCommit::decode(&[0u8; SLOT_LEN]), None);
    }
}
