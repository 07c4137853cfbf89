//! The ledger's bulk data in three append-only files beside sled: the
//! signed entries, an offset index over them, and the Merkle stored hashes.
//!
//! sled keeps what is small or must be looked up by key (head, nonces in
//! flight, approvals, checkpoints; exec_ids and done nonces have their own
//! tables, [`super::key_table`]); the entries (with their cleartext content, if
//! kept) and hashes, which
//! grow with every attempt and are only ever read by position, live here.
//! In sled they cost a B-tree page per handful of values: memory at open
//! and on every read, start-up time and ~2× the bytes on disk, all growing
//! with the log. Here they cost their own bytes, and a read is one `pread`.
//!
//! # Files (in the store directory)
//!
//! | file          | content                                                     |
//! |---------------|-------------------------------------------------------------|
//! | `entries.bin` | per entry: `u32` length (BE) ‖ signature (64 B) ‖ entry bytes, zstd-compressed ([`super::codec`]); when the entry has cleartext content, the length's top bit is set and the body is signature ‖ `u32` length of the entry frame ‖ entry frame ‖ content frame; the length's next bit says the frames were rewritten by [`super::tokens`] first (set on every record); the third says the entry completed its nonce |
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tlog_tiles::{Error as TlogError, HashReader};

use super::codec::Codec;
use super::faults::Faults;
use super::hash_cache::HashCache;
use super::{BatchWrite, FaultPoint, SignedEntryBytes, StoreError};
use crate::core::hash::{leaf_hash, Hash};

/// How often, at most, the derived files are made durable. What was not
/// is rebuilt at open: about this much of the log's entries, at most.
pub const DERIVED_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes before the signature in an `entries.bin` record.
const LEN_PREFIX: u64 = 4;
/// Set in a record's length word when the record carries a content frame.
const CONTENT_FLAG: u32 = 1 << 31;
/// Set in every record's length word: its frames were rewritten by
/// [`super::tokens`] before compression. A record without it is corrupt.
const TOKENS_FLAG: u32 = 1 << 30;
/// Set in a record's length word when its entry completed the entry's
/// nonce (the store's `nonces.tab` takes only such entries).
const COMPLETES_FLAG: u32 = 1 << 29;
/// The flag bits of a length word.
const FLAGS: u32 = CONTENT_FLAG | TOKENS_FLAG | COMPLETES_FLAG;
/// Signature bytes in a record.
const SIG_LEN: usize = 64;
/// Bytes per `entries.idx` slot and per `hashes.bin` slot.
const IDX_SLOT: u64 = 8;
const HASH_SLOT: u64 = 32;

/// The segment files' part of the committed head, stored in sled's `meta`
/// tree under `segments` in the same transaction as the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentsMark {
    /// Where the committed records of `entries.bin` end.
    pub entries_end: u64,
    /// The tree size up to which `entries.idx` and `hashes.bin` are durable.
    pub derived: u64,
}

/// The store format this build reads and writes, recorded in every
/// segments mark. A store in any other format is refused at open; a later
/// format comes with a migration command, never an open-time conversion.
pub const STORE_FORMAT: u64 = 1;

impl SegmentsMark {
    pub(super) const META_KEY: &'static [u8] = b"segments";
    /// Bytes of a stored mark: the two sizes and [`STORE_FORMAT`].
    pub(super) const LEN: usize = 24;
    /// Bytes of the marks of development stores, which recorded no format.
    const UNVERSIONED_LEN: usize = 16;

    pub(super) fn encode(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.entries_end.to_be_bytes());
        out[8..16].copy_from_slice(&self.derived.to_be_bytes());
        out[16..].copy_from_slice(&STORE_FORMAT.to_be_bytes());
        out
    }

    /// Reads a stored mark; refuses one of another store format
    /// ([`StoreError::UnsupportedFormat`], format 0 for a mark that records
    /// none) or of no known length.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let Ok(bytes) = <&[u8; Self::LEN]>::try_from(bytes) else {
            return Err(if bytes.len() == Self::UNVERSIONED_LEN {
                StoreError::UnsupportedFormat { found: 0 }
            } else {
                StoreError::Corrupt("segments mark has the wrong length".into())
            });
        };
        let [entries_end, derived, format] = [0, 8, 16].map(|at| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(word)
        });
        if format != STORE_FORMAT {
            return Err(StoreError::UnsupportedFormat { found: format });
        }
        Ok(Self {
            entries_end,
            derived,
        })
    }
}

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
    ) -> Result<(Self, Option<SegmentsMark>), StoreError> {
        let codec = OnceLock::new();
        let dictionary_committed = dictionary.is_some();
        if let Some(d) = dictionary {
            let _ = codec.set(Codec::new(d)?);
        }
        let segments = Self {
            entries: open_rw(&dir.join("entries.bin"))?,
            index: open_rw(&dir.join("entries.idx"))?,
            hashes: open_rw(&dir.join("hashes.bin"))?,
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
            Some(self.rebuild(derived, size, mark.entries_end)?)
        } else {
            None
        };
        self.publish_counts(size);
        if let Some(root) = root {
            let found = self.tree_root(size)?;
            if found != root {
                return Err(StoreError::Corrupt(format!(
                    "the stored hashes give root {found} at size {size}, the committed head \
                     says {root}: entries.bin was altered after it was committed{}",
                    if derived < size {
                        format!(" (somewhere in entries {derived}..{size}, rebuilt at this open)")
                    } else {
                        String::new()
                    }
                )));
            }
        }
        Ok(rebuilt)
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
        self.entries.sync_data()?;
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
    /// rebuilds nothing). Nothing when the files hold more than the
    /// `committed` head (a batch written whose commit failed): that mark
    /// would not match the head it is committed beside.
    pub(super) fn sync_derived(&self, committed: u64) -> Result<Option<SegmentsMark>, StoreError> {
        let mut tail = self.lock_tail()?;
        if tail.mark.derived >= tail.count || tail.count != committed {
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

    /// Whether entry `index` is committed and its record says it completed
    /// its nonce (reads only the record's length word).
    pub(super) fn completes(&self, index: u64) -> Result<bool, StoreError> {
        if index >= self.visible.load(Ordering::Acquire) {
            return Ok(false);
        }
        let mut word = [0u8; 4];
        self.entries
            .read_exact_at(&mut word, self.record_start(index)?)?;
        Ok(u32::from_be_bytes(word) & COMPLETES_FLAG != 0)
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

    /// Erases entry `index`'s content in place: its frame becomes zeros
    /// (no zstd frame starts with a zero byte), durably. The entry, its
    /// signature and every proof are untouched — the entry holds only
    /// salted commitments to the content. Returns whether there was any.
    pub(super) fn erase_content(&self, index: u64) -> Result<bool, StoreError> {
        let Some(record) = self.record(index)? else {
            return Ok(false);
        };
        match record.content {
            Some(frame) => {
                let at = record.end - frame.len() as u64;
                self.entries.write_all_at(&vec![0; frame.len()], at)?;
                self.entries.sync_data()?;
                Ok(true)
            }
            None => Ok(false),
        }
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
        let record = self.read_record(start, end)?;
        if record.end != end {
            return Err(StoreError::Corrupt(format!(
                "entry {index}: its record does not end where the index says"
            )));
        }
        Ok(Some(record))
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

    /// The record at `start`, which must lie wholly before `limit`, still
    /// compressed.
    fn read_record(&self, start: u64, limit: u64) -> Result<Record, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("entries.bin at {start}: {what}"));
        let mut prefix = [0u8; 4];
        if start + LEN_PREFIX > limit {
            return Err(corrupt("record past the committed end"));
        }
        self.entries.read_exact_at(&mut prefix, start)?;
        let word = u32::from_be_bytes(prefix);
        let len = u64::from(word & !FLAGS);
        if word & TOKENS_FLAG == 0 {
            return Err(corrupt("record without the tokens flag"));
        }
        if len < SIG_LEN as u64 || start + LEN_PREFIX + len > limit {
            return Err(corrupt("record length out of bounds"));
        }
        let mut record = vec![0u8; usize::try_from(len).map_err(|_| corrupt("length"))?];
        self.entries
            .read_exact_at(&mut record, start + LEN_PREFIX)?;
        let body = record.split_off(SIG_LEN);
        let signature: [u8; 64] = record.try_into().map_err(|_| corrupt("signature length"))?;
        let (entry, content) = if word & CONTENT_FLAG == 0 {
            (body, None)
        } else {
            split_content(body).ok_or_else(|| corrupt("entry frame length out of bounds"))?
        };
        Ok(Record {
            signature,
            entry,
            content,
            completes: word & COMPLETES_FLAG != 0,
            end: start + LEN_PREFIX + len,
        })
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
            completes: e.completion.is_some(),
        };
        end += append_record(codec, &parts, &mut records)?;
        offsets.extend_from_slice(&end.to_be_bytes());
    }
    Ok((records, offsets, end))
}

/// What one record holds.
struct RecordParts<'a> {
    signature: &'a [u8; 64],
    /// The entry's bytes.
    bytes: &'a [u8],
    /// Its cleartext content, if kept.
    content: Option<&'a [u8]>,
    /// Whether the entry completed its nonce ([`COMPLETES_FLAG`]).
    completes: bool,
}

/// Appends one record to `out` — length ‖ signature ‖ compressed bytes, or
/// with content: flagged length ‖ signature ‖ entry frame length ‖ entry
/// frame ‖ content frame — and returns its length.
fn append_record(
    codec: &Codec,
    parts: &RecordParts<'_>,
    out: &mut Vec<u8>,
) -> Result<u64, StoreError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(parts.signature);
    let flag = match parts.content {
        None => {
            codec.compress_into(parts.bytes, out)?;
            0
        }
        Some(content) => {
            let frame_at = out.len();
            out.extend_from_slice(&[0; 4]);
            codec.compress_into(parts.bytes, out)?;
            let frame_len = word(out.len() - frame_at - 4)?;
            out[frame_at..frame_at + 4].copy_from_slice(&frame_len.to_be_bytes());
            codec.compress_into(content, out)?;
            CONTENT_FLAG
        }
    };
    let completes = if parts.completes { COMPLETES_FLAG } else { 0 };
    let len = word(out.len() - at - 4)?;
    out[at..at + 4].copy_from_slice(&(len | flag | completes | TOKENS_FLAG).to_be_bytes());
    Ok(LEN_PREFIX + u64::from(len))
}

/// A record length, which must leave the [`FLAGS`] free.
fn word(len: usize) -> Result<u32, StoreError> {
    u32::try_from(len)
        .ok()
        .filter(|l| l & FLAGS == 0)
        .ok_or(StoreError::TooLarge(len))
}

/// A flagged record's body (after the signature): its entry frame and
/// content frame (`None` once erased).
fn split_content(mut body: Vec<u8>) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let frame_len = usize::try_from(u32::from_be_bytes(body.get(..4)?.try_into().ok()?)).ok()?;
    let content = body.split_off(4usize.checked_add(frame_len).filter(|&e| e <= body.len())?);
    body.drain(..4);
    Some((body, Some(content).filter(|frame| !is_erased(frame))))
}

/// Whether a content frame was erased ([`Segments::erase_content`]).
fn is_erased(frame: &[u8]) -> bool {
    frame.iter().all(|&b| b == 0)
}

/// One `entries.bin` record, its frames still compressed.
struct Record {
    signature: [u8; 64],
    entry: Vec<u8>,
    /// The content frame, unless the record has none or it was erased.
    content: Option<Vec<u8>>,
    /// Whether its entry completed its nonce ([`COMPLETES_FLAG`]).
    completes: bool,
    /// Where the record ends in the file.
    end: u64,
}

impl Record {
    fn entry_bytes(&self, codec: &Codec) -> Result<Vec<u8>, StoreError> {
        codec.decompress(&self.entry)
    }

    fn content_bytes(&self, codec: &Codec) -> Result<Option<Vec<u8>>, StoreError> {
        self.content
            .as_ref()
            .map(|frame| codec.decompress(frame))
            .transpose()
    }
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
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

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
        assert!(matches!(store.entry(0), Err(StoreError::Corrupt(_))));
        assert!(store.entry(1).unwrap().is_some());
        drop(store);
        truncate(&dir.path().join("hashes.bin"));
        let err = open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("does not decompress"), "{err}");
    }

    #[test]
    fn marks_carry_the_store_format_and_other_formats_are_refused() {
        let mark = SegmentsMark {
            entries_end: 1234,
            derived: 56,
        };
        let bytes = mark.encode();
        assert_eq!(bytes.len(), 24);
        assert_eq!(SegmentsMark::decode(&bytes).unwrap(), mark);
        for (other, found) in [(STORE_FORMAT + 1, STORE_FORMAT + 1), (8, 8), (0, 0)] {
            let mut bytes = bytes;
            bytes[16..].copy_from_slice(&other.to_be_bytes());
            assert!(matches!(
                SegmentsMark::decode(&bytes),
                Err(StoreError::UnsupportedFormat { found: f }) if f == found
            ));
        }
        assert!(matches!(
            SegmentsMark::decode(&bytes[..16]),
            Err(StoreError::UnsupportedFormat { found: 0 })
        ));
        assert!(matches!(
            SegmentsMark::decode(&bytes[..20]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_store_in_another_format_is_refused_at_open_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let model = written(dir.path());
        let store = open(dir.path()).unwrap();
        let mut other = SegmentsMark::decode(&store.meta("segments").unwrap().unwrap())
            .unwrap()
            .encode();
        other[16..].copy_from_slice(&8u64.to_be_bytes());
        store
            .tamper_raw("meta", SegmentsMark::META_KEY, &other)
            .unwrap();
        drop(store);
        let files = |dir: &Path| {
            ["entries.bin", "entries.idx", "hashes.bin", "exec_ids.tab", "commits.ring"]
                .map(|f| std::fs::read(dir.join(f)).unwrap())
        };
        let before = files(dir.path());
        let Err(refused) = open(dir.path()) else {
            panic!("a store in format 8 opened");
        };
        let line = refused.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("format 8") && line.contains("format 1"), "{line}");
        assert_eq!(files(dir.path()), before, "a refused open writes nothing");
        // Put back in this format, it opens whole.
        let db = crate::store::open::open_sled(&StoreConfig::new(dir.path())).unwrap();
        let mut current = other;
        current[16..].copy_from_slice(&STORE_FORMAT.to_be_bytes());
        db.open_tree("meta")
            .unwrap()
            .insert(SegmentsMark::META_KEY, &current[..])
            .unwrap();
        db.flush().unwrap();
        drop(db);
        let store = open(dir.path()).unwrap();
        assert_holds(&store, &model);
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
        store.inner.segments.entries.read_exact_at(&mut word, at).unwrap();
        let cleared = u32::from_be_bytes(word) & !TOKENS_FLAG;
        store
            .inner
            .segments
            .entries
            .write_all_at(&cleared.to_be_bytes(), at)
            .unwrap();
        assert!(matches!(store.entry(7), Err(StoreError::Corrupt(_))));
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
}
