//! The ledger's bulk data in three append-only files beside sled: the
//! signed entries, an offset index over them, and the Merkle stored hashes.
//!
//! sled keeps what is small or must be looked up by key (head, nonces and
//! approvals in flight, checkpoints); exec_ids, done nonces and consumed
//! approvals have their own tables ([`super::key_table`]). The entries
//! (with their cleartext content, if kept) and hashes, which grow with
//! every attempt and are only ever read by position, live here.
//! In sled they cost a B-tree page per handful of values: memory at open
//! and on every read, start-up time and ~2× the bytes on disk, all growing
//! with the log. Here they cost their own bytes, and a read is one `pread`.
//!
//! # Files (in the store directory)
//!
//! | file          | content                                                     |
//! |---------------|-------------------------------------------------------------|
//! | `entries.bin` | per entry: `u32` length (BE) ‖ signature (64 B) ‖ entry bytes, zstd-compressed ([`super::codec`]) ‖ CRC-32 of the record; when the entry has cleartext content, the length's top bit is set and the body is signature ‖ `u32` length of the entry frame ‖ entry frame ‖ content frame; the length's next bit says the frames were rewritten by [`super::tokens`] first (set on every record); the third says the entry completed its nonce |
//! | `entries.idx` | per entry: `u64` end offset (BE) of its record in `entries.bin` |
//! | `hashes.bin`  | stored hash `i` (Go `sumdb/tlog` layout) at offset `32 i`    |
//!
//! # Durability
//!
//! `entries.bin` is the primary record: each batch is written to it and
//! made durable (fdatasync) *before* the sled transaction that commits the
//! new head, which also records where `entries.bin` ends. `entries.idx` and
//! `hashes.bin` are derived from it (offsets, and RFC 6962 hashes of the
//! entry bytes): they are written with every batch but made durable only
//! about once a second ([`DERIVED_SYNC_INTERVAL`]), and the sled head
//! records up to which size they were. At open, anything past the
//! committed head is a batch that never committed and is cut off; the
//! derived files are rebuilt from `entries.bin` from their last durable
//! size, and the rebuilt tree must have the committed root. So a batch
//! costs one fdatasync here and one for sled, not four.
//!
//! This module must never make an entry visible to readers before the sled
//! transaction that commits it, and never write anywhere but at the end of
//! the committed data (so a failed or repeated write overwrites only what
//! no committed head covers).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tlog_tiles::{Error as TlogError, HashReader};

use super::codec::Codec;
use super::damage::{DamageLog, Damaged};
use super::faults::Faults;
use super::hash_cache::HashCache;
use super::{BatchWrite, FaultPoint, SignedEntryBytes, StoreError};
use crate::core::hash::{leaf_hash, Hash};

mod erase;
mod mark;
mod record;

pub use erase::ContentSpan;
pub(super) use erase::{damage_kept, finish_erase, Erase};

pub use mark::{SegmentsMark, STORE_FORMAT};
use record::{append_record, Record, RecordParts, LEN_PREFIX, SIG_LEN};

/// The primary file's name, in the store directory.
pub(super) const ENTRIES: &str = "entries.bin";
/// The record index's name.
pub(super) const INDEX: &str = "entries.idx";
/// The stored hashes' name.
pub(super) const HASHES: &str = "hashes.bin";

/// How often, at most, the derived files are made durable. What was not
/// is rebuilt at open: about this much of the log's entries, at most.
pub const DERIVED_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// More than any record's length (signature, and two frames of at most
/// [`super::MAX_VALUE_LEN`] bytes, tokens doubling them at worst, each
/// compressed): how far a record is read by its own length word when the
/// index cannot be trusted.
const MAX_RECORD_LEN: u64 = 4 << 20;

/// Bytes per `entries.idx` slot and per `hashes.bin` slot.
const IDX_SLOT: u64 = 8;
const HASH_SLOT: u64 = 32;

/// A batch written to the files and ready for its sled transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Staged {
    /// Entries after the batch.
    count: u64,
    /// Stored hashes after the batch.
    hash_count: u64,
    /// The mark to commit with the head.
    pub(super) mark: SegmentsMark,
    /// The entry dictionary, when this is the batch that chose it.
    pub(super) new_dictionary: bool,
}

/// Writer-side position of the files (only the writer changes it).
#[derive(Debug)]
struct Tail {
    count: u64,
    hash_count: u64,
    mark: SegmentsMark,
    last_derived_sync: Instant,
    /// Whether the codec's dictionary is committed in sled.
    dictionary_committed: bool,
}

/// The three files, and how much of them is committed.
pub(super) struct Segments {
    entries: File,
    index: File,
    hashes: File,
    /// Set from the committed dictionary at open, or by the first batch.
    codec: OnceLock<Codec>,
    tail: Mutex<Tail>,
    /// Entries readers may see (committed to sled).
    visible: AtomicU64,
    /// Stored hashes readers may see.
    visible_hashes: AtomicU64,
    /// Stored hashes proofs read often, in memory.
    cache: HashCache,
    /// Where damage found is noted (the store's).
    damage: Arc<DamageLog>,
    /// Set when a read found `entries.idx` damaged: a clean close then
    /// records that no derived file is durable, so that the next open
    /// derives both again from `entries.bin`.
    index_damaged: AtomicBool,
    /// Held while a content frame is erased in place ([`erase`]).
    erasing: Mutex<()>,
}

impl Staged {
    /// Entries in the log once this batch is committed.
    pub(super) fn count(&self) -> u64 {
        self.count
    }
}

impl Segments {
    /// Opens the files in `dir` for a store whose committed head has
    /// `size` entries and whose committed mark is `mark`, and brings them
    /// to exactly that state: cuts off what no commit covers, rebuilds the
    /// derived files from `entries.bin` past their durable size, and checks
    /// the rebuilt tree against `root`. Returns the new mark to commit
    /// (its `derived` is `size`) when a rebuild happened.
    pub(super) fn open(
        dir: &Path,
        size: u64,
        root: Option<Hash>,
        mark: SegmentsMark,
        dictionary: Option<Vec<u8>>,
        damage: Arc<DamageLog>,
    ) -> Result<(Self, Option<SegmentsMark>), StoreError> {
        let codec = OnceLock::new();
        let dictionary_committed = dictionary.is_some();
        if let Some(d) = dictionary {
            let _ = codec.set(Codec::new(d)?);
        }
        let segments = Self {
            entries: open_rw(&dir.join(ENTRIES))?,
            index: open_rw(&dir.join(INDEX))?,
            hashes: open_rw(&dir.join(HASHES))?,
            codec,
            tail: Mutex::new(Tail {
                count: 0,
                hash_count: 0,
                mark: SegmentsMark::default(),
                last_derived_sync: Instant::now(),
                dictionary_committed,
            }),
            visible: AtomicU64::new(0),
            visible_hashes: AtomicU64::new(0),
            cache: HashCache::default(),
            damage,
            index_damaged: AtomicBool::new(false),
            erasing: Mutex::new(()),
        };
        let rebuilt = segments.recover(size, root, mark)?;
        Ok((segments, rebuilt))
    }

    fn recover(
        &self,
        size: u64,
        root: Option<Hash>,
        mark: SegmentsMark,
    ) -> Result<Option<SegmentsMark>, StoreError> {
        let entries_len = self.entries.metadata()?.len();
        if entries_len < mark.entries_end {
            return Err(StoreError::Corrupt(format!(
                "entries.bin holds {entries_len} bytes but the committed head needs {}: \
                 committed entries are missing",
                mark.entries_end
            )));
        }
        // What the derived files durably hold, never more than committed.
        let derived = mark
            .derived
            .min(size)
            .min(self.index.metadata()?.len() / IDX_SLOT)
            .min(whole_records(self.hashes.metadata()?.len() / HASH_SLOT));
        self.entries.set_len(mark.entries_end)?;
        self.index.set_len(derived * IDX_SLOT)?;
        self.hashes
            .set_len(tlog_tiles::stored_hash_count(derived) * HASH_SLOT)?;
        {
            let mut tail = self.lock_tail()?;
            tail.count = derived;
            tail.hash_count = tlog_tiles::stored_hash_count(derived);
            tail.mark = mark;
        }
        let rebuilt = if derived < size {
            tracing::info!(
                from = derived,
                to = size,
                "rebuilding the entry index and stored hashes from entries.bin"
            );
            match self.rebuild(derived, size, mark.entries_end) {
                Ok(rebuilt) => Some(rebuilt),
                // The index slot the rebuild starts from may be damaged.
                Err(StoreError::Damaged(d)) if derived > 0 => {
                    let rebuilt = self.rebuild_all(size, mark, &d.to_string())?;
                    return self.check_root(size, root).map(|()| rebuilt);
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        self.publish_counts(size);
        match self.check_root(size, root) {
            Err(StoreError::Corrupt(_)) if derived > 0 => {
                // The derived files may be what is damaged.
                let rebuilt =
                    self.rebuild_all(size, mark, "they do not give the committed root")?;
                self.check_root(size, root).map(|()| rebuilt)
            }
            checked => checked.map(|()| rebuilt),
        }
    }

    /// Whether the stored hashes give the committed `root` at `size`.
    fn check_root(&self, size: u64, root: Option<Hash>) -> Result<(), StoreError> {
        let Some(root) = root else {
            return Ok(());
        };
        let found = self.tree_root(size)?;
        if found == root {
            return Ok(());
        }
        Err(StoreError::Corrupt(format!(
            "the stored hashes give root {found} at size {size}, the committed head \
             says {root}: entries.bin was altered after it was committed"
        )))
    }

    /// Derives `entries.idx` and `hashes.bin` again from the whole of
    /// `entries.bin` (whose records must check), because of `why`.
    fn rebuild_all(
        &self,
        size: u64,
        mark: SegmentsMark,
        why: &str,
    ) -> Result<Option<SegmentsMark>, StoreError> {
        self.damage.repaired(format!(
            "{INDEX} and {HASHES} are damaged ({why}): deriving them again from {ENTRIES}"
        ));
        self.index.set_len(0)?;
        self.hashes.set_len(0)?;
        self.cache.clear();
        let rebuilt = self.rebuild(0, size, mark.entries_end)?;
        self.publish_counts(size);
        Ok(Some(rebuilt))
    }

    /// Re-derives `entries.idx` and `hashes.bin` for entries `from..to`
    /// by walking their records in `entries.bin`, which must end at `end`,
    /// then makes them durable.
    fn rebuild(&self, from: u64, to: u64, end: u64) -> Result<SegmentsMark, StoreError> {
        let mut offset = self.record_start(from)?;
        let mut hash_at = tlog_tiles::stored_hash_count(from);
        for index in from..to {
            let record = self.read_record(offset, end)?;
            offset = record.end;
            let bytes = record.entry_bytes(self.codec()?)?;
            self.index
                .write_all_at(&offset.to_be_bytes(), index * IDX_SLOT)?;
            // Readers over the hashes written so far in this walk.
            self.visible_hashes.store(hash_at, Ordering::Release);
            let stored = tlog_tiles::stored_hashes_for_record_hash(
                index,
                leaf_hash(&bytes).into(),
                &FileHashes(self),
            )
            .map_err(|e| StoreError::Corrupt(format!("rebuilding stored hashes: {e}")))?;
            for hash in stored {
                self.hashes.write_all_at(&hash.0, hash_at * HASH_SLOT)?;
                hash_at += 1;
            }
        }
        if offset != end {
            return Err(StoreError::Corrupt(format!(
                "the committed records of entries.bin end at {offset}, the head says {end}"
            )));
        }
        self.index.sync_data()?;
        self.hashes.sync_data()?;
        let mark = SegmentsMark {
            entries_end: end,
            derived: to,
        };
        let mut tail = self.lock_tail()?;
        tail.count = to;
        tail.hash_count = hash_at;
        tail.mark = mark;
        Ok(mark)
    }

    /// Writes `batch`'s entries and hashes at the end of the committed
    /// data and makes `entries.bin` durable (and the derived files, when
    /// their interval is up). Nothing becomes visible until [`Self::publish`].
    pub(super) fn stage(&self, batch: &BatchWrite, faults: &Faults) -> Result<Staged, StoreError> {
        let tail = self.lock_tail()?;
        if batch.entries.is_empty() && batch.hashes.is_empty() {
            return Ok(Staged {
                count: tail.count,
                hash_count: tail.hash_count,
                mark: tail.mark,
                new_dictionary: false,
            });
        }
        let codec = self.codec_for(batch)?;
        let (records, offsets, end) = lay_out_entries(codec, &tail, batch)?;
        let hashes = lay_out_hashes(&tail, batch)?;
        let count = tail.count + batch.entries.len() as u64;
        let hash_count = tail.hash_count + (hashes.len() as u64) / HASH_SLOT;
        self.entries.write_all_at(&records, tail.mark.entries_end)?;
        self.index.write_all_at(&offsets, tail.count * IDX_SLOT)?;
        self.hashes
            .write_all_at(&hashes, tail.hash_count * HASH_SLOT)?;
        faults.check(FaultPoint::EntriesSync)?;
        crate::instruments::timed_sync(crate::instruments::SyncedFile::Entries, || {
            self.entries.sync_data()
        })?;
        let derived = if tail.last_derived_sync.elapsed() >= DERIVED_SYNC_INTERVAL {
            self.index.sync_data()?;
            self.hashes.sync_data()?;
            count
        } else {
            tail.mark.derived
        };
        Ok(Staged {
            count,
            hash_count,
            mark: SegmentsMark {
                entries_end: end,
                derived,
            },
            new_dictionary: !tail.dictionary_committed,
        })
    }

    /// The codec, choosing the dictionary (the batch's first entry) if the
    /// store has none yet.
    fn codec_for(&self, batch: &BatchWrite) -> Result<&Codec, StoreError> {
        if let Some(codec) = self.codec.get() {
            return Ok(codec);
        }
        let first = batch.entries.first().map(|e| e.bytes.clone());
        let codec = Codec::new(first.unwrap_or_default())?;
        Ok(self.codec.get_or_init(|| codec))
    }

    /// The committed dictionary's bytes, for a batch that chose it.
    pub(super) fn dictionary(&self) -> Option<&[u8]> {
        self.codec.get().map(Codec::dictionary)
    }

    /// After the sled transaction that committed `staged` (whose stored
    /// hashes are `hashes`): it is the new tail, and readers may see it.
    pub(super) fn publish(
        &self,
        staged: &Staged,
        hashes: &[(u64, Hash)],
    ) -> Result<(), StoreError> {
        if let Some(&(first, _)) = hashes.first() {
            self.cache.published(first, hashes.iter().map(|&(_, h)| h));
        }
        let mut tail = self.lock_tail()?;
        if staged.mark.derived != tail.mark.derived {
            tail.last_derived_sync = Instant::now();
        }
        tail.dictionary_committed |= staged.new_dictionary;
        tail.count = staged.count;
        tail.hash_count = staged.hash_count;
        tail.mark = staged.mark;
        drop(tail);
        self.publish_counts(staged.count);
        Ok(())
    }

    /// Makes the derived files durable now if they are behind, and returns
    /// the mark to commit for it (at a clean close, so that the next open
    /// rebuilds nothing) — or, once a read found `entries.idx` damaged, a
    /// mark saying that none of them is, so that the next open derives
    /// them again. Nothing when the files hold more than the `committed`
    /// head (a batch written whose commit failed): that mark would not
    /// match the head it is committed beside.
    pub(super) fn sync_derived(&self, committed: u64) -> Result<Option<SegmentsMark>, StoreError> {
        let mut tail = self.lock_tail()?;
        if tail.count != committed {
            return Ok(None);
        }
        if self.index_damaged.load(Ordering::Acquire) {
            tail.mark.derived = 0;
            return Ok(Some(tail.mark));
        }
        if tail.mark.derived >= tail.count {
            return Ok(None);
        }
        self.index.sync_data()?;
        self.hashes.sync_data()?;
        tail.mark.derived = tail.count;
        tail.last_derived_sync = Instant::now();
        Ok(Some(tail.mark))
    }

    fn publish_counts(&self, count: u64) {
        self.visible_hashes
            .store(tlog_tiles::stored_hash_count(count), Ordering::Release);
        self.visible.store(count, Ordering::Release);
    }

    /// The root of the tree of the first `size` entries, from the stored
    /// hashes.
    pub(super) fn tree_root(&self, size: u64) -> Result<Hash, StoreError> {
        tlog_tiles::tree_hash(size, &FileHashes(self))
            .map(Hash::from)
            .map_err(|e| StoreError::Corrupt(format!("tree of the segment files: {e}")))
    }

    /// Entries readers may see (the committed head's size).
    pub(super) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Entry `index`, if committed.
    pub(super) fn entry(&self, index: u64) -> Result<Option<SignedEntryBytes>, StoreError> {
        let Some(record) = self.record(index)? else {
            return Ok(None);
        };
        Ok(Some((record.entry_bytes(self.codec()?)?, record.signature)))
    }

    /// Entry `index`'s bytes, if it is committed and its record says it
    /// completed its nonce.
    pub(super) fn completing_entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.record(index)? {
            Some(record) if record.completes => Ok(Some(record.entry_bytes(self.codec()?)?)),
            _ => Ok(None),
        }
    }

    /// Whether entry `index` is committed and its record (which checks)
    /// says it completed its nonce.
    pub(super) fn completes(&self, index: u64) -> Result<bool, StoreError> {
        Ok(self.record(index)?.is_some_and(|r| r.completes))
    }

    /// The cleartext content kept in entry `index`'s record: `None` when
    /// the entry is not committed, or its record carries none or it was
    /// erased.
    pub(super) fn content(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.record(index)? {
            Some(record) => record.content_bytes(self.codec()?),
            None => Ok(None),
        }
    }

    /// Whether entry `index` is committed and its record's content frame
    /// was erased (a record that never kept content has none to erase).
    pub(super) fn content_erased(&self, index: u64) -> Result<bool, StoreError> {
        Ok(self.record(index)?.is_some_and(|record| record.erased))
    }

    /// Erases entry `index`'s content in place ([`erase`]), durably.
    /// The entry, its signature and every proof are untouched — the entry
    /// holds only salted commitments to the content. Returns whether there
    /// was any.
    #[cfg(test)]
    pub(super) fn erase_content(&self, index: u64) -> Result<bool, StoreError> {
        let Some(span) = self.content_span(index)? else {
            return Ok(false);
        };
        self.erase_span(span, self.prefix_crc(span)?)?;
        Ok(true)
    }

    /// Entry `index`'s record, if committed.
    fn record(&self, index: u64) -> Result<Option<Record>, StoreError> {
        if index >= self.visible.load(Ordering::Acquire) {
            return Ok(None);
        }
        let (start, end) = if index == 0 {
            (0, self.read_end(0)?)
        } else {
            let mut pair = [0u8; 16];
            self.index
                .read_exact_at(&mut pair, (index - 1) * IDX_SLOT)?;
            let corrupt = || StoreError::Corrupt(format!("index slot of entry {index}"));
            (
                be_u64(&pair[..8]).ok_or_else(corrupt)?,
                be_u64(&pair[8..]).ok_or_else(corrupt)?,
            )
        };
        let mut outcome = self.parse_record(start, end)?;
        if outcome.is_err() {
            // Perhaps read while an erase was writing it: read it again.
            self.wait_for_erase();
            outcome = self.parse_record(start, end)?;
        }
        let outcome = match outcome {
            Ok(record) if record.end == end => return Ok(Some(record)),
            outcome => outcome,
        };
        if self.index_is_damaged(index, start, end)? {
            self.index_damaged.store(true, Ordering::Release);
            return Err(self.damage.found(Damaged::new(
                INDEX,
                index.saturating_sub(1) * IDX_SLOT,
                format!("entry {index}'s record does not lie where the index says"),
            )));
        }
        let what = outcome
            .err()
            .unwrap_or("a record does not end where the index says");
        Err(self.damage.found(Damaged::new(ENTRIES, start, what)))
    }

    /// After entry `index` was not found whole at `start..end`: whether
    /// the index is what is wrong — the record at `start`, or the one
    /// before it, read by its own length, checks but does not end where
    /// the index says.
    fn index_is_damaged(&self, index: u64, start: u64, end: u64) -> Result<bool, StoreError> {
        let ends_elsewhere = |from: u64, at: u64| -> Result<bool, StoreError> {
            let record = self.parse_record(from, from + LEN_PREFIX + MAX_RECORD_LEN);
            Ok(match record {
                Ok(Ok(record)) => record.end != at,
                Ok(Err(_)) | Err(_) => false,
            })
        };
        if ends_elsewhere(start, end)? {
            return Ok(true);
        }
        match index.checked_sub(1) {
            Some(before) => ends_elsewhere(self.record_start(before)?, start),
            None => Ok(false),
        }
    }

    /// Stored hash `index`, if committed.
    pub(super) fn hash(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        if index >= self.visible_hashes.load(Ordering::Acquire) {
            return Ok(None);
        }
        if let Some(hash) = self.cache.get(index) {
            return Ok(Some(hash));
        }
        let mut bytes = [0u8; 32];
        self.hashes.read_exact_at(&mut bytes, index * HASH_SLOT)?;
        let hash = Hash::from_bytes(bytes);
        self.cache.read_from_file(index, hash);
        Ok(Some(hash))
    }

    /// Bytes the three files take.
    pub(super) fn len_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.entries.metadata()?.len()
            + self.index.metadata()?.len()
            + self.hashes.metadata()?.len())
    }

    /// Overwrites committed data (tamper tests only): an entry (signature
    /// ‖ bytes, re-encoded; the records after it are moved and the index
    /// rewritten, as someone editing the file would), or a stored hash.
    /// Returns the new mark when `entries.bin` changed length.
    pub(super) fn tamper(
        &self,
        file: &str,
        index: u64,
        value: &[u8],
    ) -> Result<Option<SegmentsMark>, StoreError> {
        self.cache.clear();
        if file != "entries" {
            self.hashes.write_all_at(value, index * HASH_SLOT)?;
            self.hashes.sync_data()?;
            return Ok(None);
        }
        let codec = self.codec()?;
        let mut tail = self.lock_tail()?;
        let start = self.record_start(index)?;
        let (mut records, mut offsets, mut end) = (Vec::new(), Vec::new(), start);
        let mut at = start;
        for i in index..tail.count {
            let record = self.read_record(at, tail.mark.entries_end)?;
            at = record.end;
            let content = record.content_bytes(codec)?;
            let (sig, bytes) = if i == index {
                let (s, b) = value.split_at(SIG_LEN.min(value.len()));
                (
                    s.try_into()
                        .map_err(|_| StoreError::Corrupt("short value".into()))?,
                    b.to_vec(),
                )
            } else {
                (record.signature, record.entry_bytes(codec)?)
            };
            let parts = RecordParts {
                signature: &sig,
                bytes: &bytes,
                content: content.as_deref(),
                completes: record.completes,
            };
            end += append_record(codec, &parts, &mut records)?;
            offsets.extend_from_slice(&end.to_be_bytes());
        }
        self.entries.write_all_at(&records, start)?;
        self.entries.set_len(end)?;
        self.index.write_all_at(&offsets, index * IDX_SLOT)?;
        for f in [&self.entries, &self.index] {
            f.sync_data()?;
        }
        tail.mark.entries_end = end;
        Ok(Some(tail.mark))
    }

    /// Where entry `index`'s record starts: where the one before it ends.
    fn record_start(&self, index: u64) -> Result<u64, StoreError> {
        match index.checked_sub(1) {
            Some(before) => self.read_end(before),
            None => Ok(0),
        }
    }

    /// The end offset of entry `index`'s record, from `entries.idx`.
    fn read_end(&self, index: u64) -> Result<u64, StoreError> {
        let mut slot = [0u8; 8];
        self.index.read_exact_at(&mut slot, index * IDX_SLOT)?;
        Ok(u64::from_be_bytes(slot))
    }

    /// The record at `start`, which must lie wholly before `limit` and
    /// check (its CRC), still compressed.
    fn read_record(&self, start: u64, limit: u64) -> Result<Record, StoreError> {
        self.parse_record(start, limit)?
            .map_err(|what| self.damage.found(Damaged::new(ENTRIES, start, what)))
    }

    /// [`Self::read_record`], with damage as a value (what failed),
    /// noted nowhere.
    fn parse_record(
        &self,
        start: u64,
        limit: u64,
    ) -> Result<Result<Record, &'static str>, StoreError> {
        record::parse(&self.entries, start, limit)
    }

    /// The codec of a store that has records.
    fn codec(&self) -> Result<&Codec, StoreError> {
        self.codec.get().ok_or_else(|| {
            StoreError::Corrupt("entries.bin has records but no committed dictionary".into())
        })
    }

    fn lock_tail(&self) -> Result<std::sync::MutexGuard<'_, Tail>, StoreError> {
        self.tail
            .lock()
            .map_err(|_| StoreError::Corrupt("segment writer state poisoned".into()))
    }
}

/// The records and index slots of a batch's entries, and where the
/// records will end.
fn lay_out_entries(
    codec: &Codec,
    tail: &Tail,
    batch: &BatchWrite,
) -> Result<(Vec<u8>, Vec<u8>, u64), StoreError> {
    let mut records = Vec::with_capacity(
        batch
            .entries
            .iter()
            .map(|e| 4 + SIG_LEN + e.bytes.len())
            .sum(),
    );
    let mut offsets = Vec::with_capacity(batch.entries.len() * 8);
    let mut end = tail.mark.entries_end;
    for (expected, e) in (tail.count..).zip(&batch.entries) {
        if e.index != expected {
            return Err(StoreError::Corrupt(format!(
                "batch entry {} written where entry {expected} belongs",
                e.index
            )));
        }
        super::check_len(SIG_LEN + e.bytes.len())?;
        if let Some(c) = &e.content {
            super::check_len(c.len())?;
        }
        let parts = RecordParts {
            signature: &e.signature,
            bytes: &e.bytes,
            content: e.content.as_deref(),
            completes: e
                .completion
                .as_ref()
                .is_some_and(super::Completion::completes),
        };
        end += append_record(codec, &parts, &mut records)?;
        offsets.extend_from_slice(&end.to_be_bytes());
    }
    Ok((records, offsets, end))
}

/// The stored hashes of a batch, contiguous from the committed count.
fn lay_out_hashes(tail: &Tail, batch: &BatchWrite) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(batch.hashes.len() * 32);
    for (expected, (index, hash)) in (tail.hash_count..).zip(&batch.hashes) {
        if *index != expected {
            return Err(StoreError::Corrupt(format!(
                "stored hash {index} written where hash {expected} belongs"
            )));
        }
        out.extend_from_slice(hash.as_bytes());
    }
    Ok(out)
}

/// The largest tree size whose stored hashes fit in `hashes` slots.
fn whole_records(hashes: u64) -> u64 {
    // stored_hash_count(n) = 2n − popcount(n) < 2n, so size hashes/2 always
    // fits; step up from there (at most ~64 steps).
    let mut n = hashes / 2;
    while tlog_tiles::stored_hash_count(n + 1) <= hashes {
        n += 1;
    }
    n
}

/// `tlog_tiles::HashReader` over `hashes.bin` (readable part only).
pub(super) struct FileHashes<'a>(pub(super) &'a Segments);

impl HashReader for FileHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TlogError> {
        indexes
            .iter()
            .map(|&i| match self.0.hash(i) {
                Ok(Some(h)) => Ok(h.into()),
                Ok(None) => Err(TlogError::IndexesNotInTree),
                Err(e) => Err(TlogError::InvalidInput(e.to_string())),
            })
            .collect()
    }
}

/// Opens (creating if missing) a file for positioned reads and writes.
pub(super) fn open_rw(path: &Path) -> Result<File, StoreError> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?)
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests;
