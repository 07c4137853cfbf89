//! A key → entry index map kept as an on-disk hash table beside the log,
//! derived from `entries.bin` and written outside sled and outside the
//! append transaction. The store keeps three: `exec_ids.tab` (exec_id → the
//! entry that answers it), `nonces.tab` (tenant ‖ 0 ‖ nonce → the entry
//! that completed the nonce) and `approvals.tab` (an approval's consume
//! key → the entry that consumed it).
//!
//! Why a file: in sled, each map cost the ledger's one writer a
//! read-modify-write of sled pages for every entry, and at 10M entries
//! those pages are outside sled's cache (the writer spent its time
//! materializing them) while sled's own memory grew with every key (done
//! nonces: 361 MB resident right after opening an 11M-entry ledger). Here
//! an insert is one `pread` of a probe run and a 16-byte `pwrite` into the
//! OS page cache, and a lookup is a `pread` per table; nothing of it is
//! held in the process's memory.
//!
//! # Layout
//!
//! A 4 KiB header, then tables 0, 1, 2, … back to back; table `k` has
//! `2^(first_bits + k)` slots of 16 bytes while `k < doubling`, and
//! `2^cap_bits` after: a slot holds a fingerprint (`u64` BE, the
//! first 8 bytes of SHA-256(key) with the low bit set, so that 0 means
//! an empty slot) and the entry index (`u64` BE). Linear probing from the
//! next 8 bytes of the digest. Only the last table takes new keys;
//! when it is 3/4 full the next table is added after it. No table
//! is ever rewritten, so growing never pauses the writer; a lookup probes
//! the tables newest first until a candidate is confirmed (an unknown key
//! probes all, unless the [filters](#filters) rule them out).
//!
//! Why the cap ([`CAP_BITS`], 16 MiB): the OS writes back every page an
//! insert dirtied, and inserts land on random slots of the last table. A
//! last table that doubled without end (256 MiB at 10M keys) had every one
//! of its pages dirtied between two syncs — ~25 MB/s of write-back per
//! table at 20,000 appends/s, sharing the device with the log's own
//! fdatasyncs. A capped last table bounds that at its size per sync,
//! whatever the ledger's length; the price is more tables to probe (one
//! per 786,432 keys past the first 737,280), which the filters answer from
//! memory.
//!
//! Header: magic `OEXTAB02` ‖ `first_bits` (`u32`) ‖ tables (`u32`) ‖
//! keys in the last table (`u64`) ‖ `indexed` (`u64`) ‖ `doubling`
//! (`u32`) ‖ `cap_bits` (`u32`): every entry below `indexed` is in the
//! table durably. A file with any other header is started afresh and
//! indexed again from `entries.bin` (it is derived data).
//!
//! # Durability and trust
//!
//! The table is derived data. Inserts happen after each batch's sled
//! transaction commits; the file is fdatasynced about once per
//! [`SYNC_INTERVAL`] by a thread of its own ([`Syncer`]: the inserts dirty
//! pages all over the file, and syncing them on the writer stalled
//! appends), and at a clean close; only
//! *after* such a sync does the header claim the entries inserted before
//! it. At open, entries from `indexed` to the head are indexed again from
//! `entries.bin`; one found already (inserted after the last header) is not
//! inserted twice. A header may claim entries past the head — keys are
//! inserted before their batch's sync, which can fail or be cut off — and
//! is then lowered to the head, durably, before anything is inserted
//! ([`KeyTable::claim_at_most`]).
//!
//! # Filters
//!
//! Every table has a blocked Bloom filter in memory, over its slots'
//! fingerprints — one byte per slot (~1% false positives at the 3/4 fill
//! limit), ~14 MB per file at 10M keys; a key's bits lie in one 64-byte
//! block, one cache line to test per table. Most lookups in `nonces.tab`
//! are of a key never seen (a fresh nonce), and without filters a receipt's
//! exec_id would be probed in half the capped tables on average. A lookup
//! skips a table whose filter says the
//! key is not there instead of reading its probe run (at 10M, nine
//! `pread`s for a fresh nonce were 15% of the writer thread). The filters
//! of the tables found at open are filled from the file by the
//! [`Syncer`]'s thread; until a filter is complete its table is probed as
//! before. Every insert sets its bits first, so a filter never hides a
//! key. A filter is a hint like a slot: it can cost a read, never change
//! an answer.
//!
//! A fingerprint match is only a
//! candidate: the store reads the entry and checks it against the key, so
//! a stale, torn or colliding slot can cost a lookup a read, never a wrong
//! answer. This module must never be the only evidence of where a key's
//! entry is, and never write to a table other than the last.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::StoreError;

/// How often the [`Syncer`] makes the table durable. Longer than the other
/// derived files' second: inserts land on random pages, and a page written
/// back once per interval takes every insert into it meanwhile — at 10M
/// entries a 1 s interval wrote ~28 MB/s of table pages, and those writes
/// queued in front of the ledger writer's fdatasyncs (p99 24–27 ms against
/// 15–19 ms without). The cost is at open after a crash: up to this long a
/// stretch of entries is indexed again (~12 µs each).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(10);
/// Bytes read at a time when warming the last table at start.
const WARM_CHUNK: usize = 1 << 20;

/// File of the exec_id → entry map, in the store directory.
pub(super) const EXEC_IDS: &str = "exec_ids.tab";
/// File of the done nonce → completing entry map, in the store directory.
pub(super) const DONE_NONCES: &str = "nonces.tab";
/// File of the consumed approval → consuming entry map, in the store
/// directory.
pub(super) const CONSUMED_APPROVALS: &str = "approvals.tab";
const MAGIC: &[u8; 8] = b"OEXTAB02";
/// Bytes before table 0 (a page, so tables stay page-aligned).
const HEADER_LEN: u64 = 4096;
/// Bytes of the header that are used.
const HEADER_USED: usize = 40;
const SLOT: u64 = 16;
/// Slots read per `pread` while walking a probe run.
const WINDOW: u64 = 32;
/// log2 of table 0's slots in a new file (1 MiB).
const FIRST_BITS: u32 = 16;
/// log2 of the slots of every table past the doubling ones (16 MiB; see
/// the module docs for why tables stop growing).
const CAP_BITS: u32 = 20;
/// The store's tables: 2^16, 2^17, … 2^20 slots, then 2^20 each.
pub(super) const SHAPE: Shape = Shape {
    first_bits: FIRST_BITS,
    cap_bits: CAP_BITS,
};
/// Largest log2 of a table's slots a header may claim.
const MAX_BITS: u32 = 48;
/// Most tables a header may claim (with [`CAP_BITS`], 12.9 billion
/// keys; each costs the process 40 bytes until used).
const MAX_TABLES: u32 = 16_384;

/// Bits of a table's filter per slot of the table: a table holds at most
/// 3/4 of its slots, so ~10.7 bits per key, which with [`FILTER_PROBES`]
/// bits per key in one [`Block`] gives about 1% false positives.
const FILTER_BITS_PER_SLOT: u64 = 8;
const FILTER_PROBES: u64 = 6;

/// The sizes of a new file's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    /// log2 of table 0's slots.
    pub first_bits: u32,
    /// log2 of the slots of the tables past the doubling ones.
    pub cap_bits: u32,
}

/// Where a file's tables lie: table `k` has `2^(first_bits + k)` slots
/// while `k < doubling`, then `2^cap_bits`. Fixed for the file's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    first_bits: u32,
    doubling: u32,
    cap_bits: u32,
}

impl Layout {
    fn of(shape: Shape) -> Self {
        Self {
            first_bits: shape.first_bits,
            doubling: shape.cap_bits.saturating_sub(shape.first_bits),
            cap_bits: shape.cap_bits,
        }
    }

    /// Whether a header may claim this layout with `tables` tables: no
    /// offset overflows, and every table holds keys (3/4 of 2 slots is
    /// none: such a layout would add tables until the limit).
    fn is_plausible(self, tables: u32) -> bool {
        self.first_bits
            .checked_add(self.doubling)
            .is_some_and(|b| b <= MAX_BITS)
            && (2..=MAX_BITS).contains(&self.first_bits)
            && (2..=MAX_BITS).contains(&self.cap_bits)
            && (1..=MAX_TABLES).contains(&tables)
            && self.wide_offset(tables) <= u128::from(u64::MAX)
    }

    /// Slots in table `k`.
    fn capacity(self, k: u32) -> u64 {
        if k < self.doubling {
            1u64 << (self.first_bits + k)
        } else {
            1u64 << self.cap_bits
        }
    }

    /// Where table `k` starts (table `tables` = where the file ends).
    /// Fits a `u64` for every `k` up to a plausible header's tables.
    fn offset(self, k: u32) -> u64 {
        u64::try_from(self.wide_offset(k)).unwrap_or(u64::MAX)
    }

    /// [`Self::offset`], computed where it cannot overflow (with
    /// `first_bits + doubling` and `cap_bits` at most [`MAX_BITS`]).
    fn wide_offset(self, k: u32) -> u128 {
        let doubled = k.min(self.doubling);
        let before = (1u128 << (self.first_bits + doubled)) - (1u128 << self.first_bits)
            + u128::from(k - doubled) * (1u128 << self.cap_bits);
        u128::from(HEADER_LEN) + u128::from(SLOT) * before
    }
}

/// One cache line of a filter: all of a key's bits are in one block.
#[repr(align(64))]
struct Block([AtomicU64; 8]);

/// A blocked Bloom filter over the fingerprints of one table.
struct Filter {
    blocks: Vec<Block>,
    /// Whether every slot the file held at open has been added.
    complete: AtomicBool,
}

impl Filter {
    fn new(slots: u64, complete: bool) -> Self {
        let blocks = (slots * FILTER_BITS_PER_SLOT / 512).max(1);
        Self {
            blocks: (0..blocks)
                .map(|_| Block(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            complete: AtomicBool::new(complete),
        }
    }

    /// The block of `fingerprint` (its high half; the block count is a
    /// power of two) and its bit positions there (double hashing over the
    /// low half, past the always-set low bit).
    fn positions(&self, fingerprint: u64) -> (&Block, impl Iterator<Item = (usize, u64)>) {
        let block = &self.blocks[((fingerprint >> 32) as usize) & (self.blocks.len() - 1)];
        let first = fingerprint >> 1;
        let step = (fingerprint >> 10) | 1;
        let bits = (0..FILTER_PROBES).map(move |i| {
            let bit = first.wrapping_add(i.wrapping_mul(step)) & 511;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        });
        (block, bits)
    }

    fn add(&self, fingerprint: u64) {
        let (block, bits) = self.positions(fingerprint);
        for (word, mask) in bits {
            block.0[word].fetch_or(mask, Ordering::Relaxed);
        }
    }

    /// False only if `fingerprint` was never added (once complete).
    fn may_hold(&self, fingerprint: u64) -> bool {
        if !self.complete.load(Ordering::Acquire) {
            return true;
        }
        let (block, mut bits) = self.positions(fingerprint);
        bits.all(|(word, mask)| block.0[word].load(Ordering::Relaxed) & mask != 0)
    }
}

/// Where a key's slot is looked for.
#[derive(Debug, Clone, Copy)]
struct Key {
    fingerprint: u64,
    seed: u64,
}

impl Key {
    fn of(key: &[u8]) -> Self {
        let digest = Sha256::digest(key);
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest[at..at + 8]);
            u64::from_be_bytes(bytes)
        };
        Self {
            fingerprint: word(0) | 1,
            seed: word(8),
        }
    }
}

/// What the writer knows of the file (readers need only `tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    layout: Layout,
    tables: u32,
    in_last: u64,
    indexed: u64,
}

impl Header {
    fn fresh(shape: Shape) -> Self {
        Self {
            layout: Layout::of(shape),
            tables: 1,
            in_last: 0,
            indexed: 0,
        }
    }

    fn encode(self) -> [u8; HEADER_USED] {
        let mut out = [0u8; HEADER_USED];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.layout.first_bits.to_be_bytes());
        out[12..16].copy_from_slice(&self.tables.to_be_bytes());
        out[16..24].copy_from_slice(&self.in_last.to_be_bytes());
        out[24..32].copy_from_slice(&self.indexed.to_be_bytes());
        out[32..36].copy_from_slice(&self.layout.doubling.to_be_bytes());
        out[36..].copy_from_slice(&self.layout.cap_bits.to_be_bytes());
        out
    }

    /// The header, if `bytes` is one this code wrote for a file of
    /// `file_len` bytes.
    fn decode(bytes: &[u8; HEADER_USED], file_len: u64) -> Option<Self> {
        let u32_at = |at: usize| bytes[at..at + 4].try_into().ok().map(u32::from_be_bytes);
        let u64_at = |at: usize| bytes[at..at + 8].try_into().ok().map(u64::from_be_bytes);
        let (first_bits, tables) = (u32_at(8)?, u32_at(12)?);
        if &bytes[..8] != MAGIC {
            return None;
        }
        let layout = Layout {
            first_bits,
            doubling: u32_at(32)?,
            cap_bits: u32_at(36)?,
        };
        let header = Self {
            layout,
            tables,
            in_last: u64_at(16)?,
            indexed: u64_at(24)?,
        };
        let plausible = layout.is_plausible(tables)
            && header.in_last <= header.capacity(header.tables - 1)
            && file_len >= header.offset(header.tables);
        plausible.then_some(header)
    }

    fn capacity(self, k: u32) -> u64 {
        self.layout.capacity(k)
    }

    fn offset(self, k: u32) -> u64 {
        self.layout.offset(k)
    }
}

/// Writer-side state.
#[derive(Debug)]
struct State {
    header: Header,
    /// The `indexed` of the header last written after a sync.
    durable: u64,
}

/// The end of a probe run: the indexes whose fingerprint matched, and the
/// first empty slot (`None` if the table is full).
struct Run {
    matches: Vec<u64>,
    empty: Option<u64>,
}

/// The open table file.
pub(super) struct KeyTable {
    file: File,
    /// The file's name, for what is logged about it.
    name: &'static str,
    /// Where the tables lie (fixed for the file's life).
    layout: Layout,
    /// Tables readers may probe.
    tables: AtomicU32,
    /// Filter `k` is table `k`'s. Set before the table is visible in
    /// `tables`.
    filters: Vec<OnceLock<Filter>>,
    state: Mutex<State>,
    /// Probe runs read (what the filters save).
    #[cfg(test)]
    runs: AtomicU64,
}

impl KeyTable {
    /// Opens (or creates) the table in `dir`. A file whose header this code
    /// did not write is started afresh (it is derived; the caller indexes
    /// again from [`Self::indexed`]).
    pub(super) fn open(dir: &Path, name: &'static str, shape: Shape) -> Result<Self, StoreError> {
        let file = super::segments::open_rw(&dir.join(name))?;
        // Slots are read and written 16 bytes at a time, all over the file:
        // no readahead, so that the page cache holds it in 4 KiB pages. Read
        // ahead (as the warm-up's long reads were), it is cached in large
        // folios, and every 16-byte write then costs the kernel a walk over
        // a large folio's blocks (`ext4_block_write_begin`: 27% of the
        // writer's CPU at 14M entries).
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random)
            .map_err(std::io::Error::from)?;
        let len = file.metadata()?.len();
        let mut bytes = [0u8; HEADER_USED];
        let found = if len >= HEADER_LEN {
            file.read_exact_at(&mut bytes, 0)?;
            Header::decode(&bytes, len)
        } else {
            None
        };
        let header = match found {
            Some(h) => h,
            None => {
                if len > 0 {
                    tracing::warn!("{name} has no valid header; indexing every entry again");
                }
                let fresh = Header::fresh(shape);
                file.set_len(0)?;
                file.set_len(fresh.offset(1))?;
                file.write_all_at(&fresh.encode(), 0)?;
                file.sync_all()?;
                fresh
            }
        };
        let filters = (0..MAX_TABLES)
            .map(|k| {
                let slot = OnceLock::new();
                if k < header.tables {
                    let _ = slot.set(Filter::new(header.capacity(k), false));
                }
                slot
            })
            .collect();
        let table = Self {
            file,
            name,
            layout: header.layout,
            tables: AtomicU32::new(header.tables),
            filters,
            state: Mutex::new(State {
                header,
                durable: header.indexed,
            }),
            #[cfg(test)]
            runs: AtomicU64::new(0),
        };
        Ok(table)
    }

    /// The file's name.
    pub(super) fn name(&self) -> &'static str {
        self.name
    }

    /// Every entry below this index is in the table durably.
    pub(super) fn indexed(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.header.indexed)
    }

    /// The first of `key`'s candidate indexes (newest table first) that
    /// `confirm` accepts, with what it returned: the caller checks each
    /// against the entry. Never waits for the writer.
    pub(super) fn find<T>(
        &self,
        key: &[u8],
        mut confirm: impl FnMut(u64) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let key = Key::of(key);
        for k in (0..self.tables.load(Ordering::Acquire)).rev() {
            if !self.may_hold(k, key) {
                continue;
            }
            for index in self.run(k, key)?.matches {
                if let Some(found) = confirm(index)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Records `keys` (with their entries' indexes) for the entries below
    /// `indexed`. Only the store's writer calls this, after the batch
    /// committed; the [`Syncer`] makes it durable.
    pub(super) fn insert_batch<'a>(
        &self,
        keys: impl Iterator<Item = (&'a [u8], u64)>,
        indexed: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        for (key, index) in keys {
            self.insert(&mut state, Key::of(key), index)?;
        }
        state.header.indexed = indexed;
        Ok(())
    }

    /// Indexes entry `index`, found at open past the durable header,
    /// unless a slot inserted after that header already records it (a slot
    /// with this fingerprint *and* this index says what indexing would:
    /// either it was inserted for this committed entry, or for an entry of
    /// a batch that never committed whose key this entry has too).
    pub(super) fn reindex(&self, key: &[u8], index: u64) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let key = Key::of(key);
        let last = state.header.tables - 1;
        match self.table_recording(state.header.tables, key, index)? {
            // Inserted after the last header: counted in none yet.
            Some(k) if k == last => state.header.in_last += 1,
            // Inserted before the table that followed it was added.
            Some(_) => {}
            None => self.insert(&mut state, key, index)?,
        }
        state.header.indexed = state.header.indexed.max(index + 1);
        Ok(())
    }

    /// The table, of the first `tables`, that records `index` under `key`.
    fn table_recording(
        &self,
        tables: u32,
        key: Key,
        index: u64,
    ) -> Result<Option<u32>, StoreError> {
        for k in (0..tables).rev() {
            if self.run(k, key)?.matches.contains(&index) {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// Lowers what the header claims to `size` (the committed head's) if
    /// it claims more, durably, before anything is inserted. The header can
    /// run ahead of the log: the writer inserts a batch's keys before the
    /// batch's sync, and the [`Syncer`] may mark them meanwhile, so a batch
    /// whose sync failed or was cut off by a crash stays claimed. Left so,
    /// the entries written later at those indexes would be taken as indexed
    /// by the open after a crash that lost their slots — a done nonce or a
    /// consumed approval forgotten.
    pub(super) fn claim_at_most(&self, size: u64) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.header.indexed <= size {
            return Ok(());
        }
        let header = Header {
            indexed: size,
            ..state.header
        };
        state.header = header;
        self.mark(&mut state, header)?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Makes every insert durable and says so in the header (a clean close,
    /// or the end of indexing at open).
    pub(super) fn sync_now(&self) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.durable < state.header.indexed {
            self.file.sync_data()?;
            let header = state.header;
            self.mark(&mut state, header)?;
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// The [`Syncer`]'s step: syncs without holding the writer up, then
    /// records in the header what was inserted before the sync began —
    /// unless a newer header was written meanwhile (a table added, or a
    /// clean close's [`Self::sync_now`]), which it must not overwrite.
    fn sync_behind_the_writer(&self) -> Result<(), StoreError> {
        let before = {
            let state = self.lock()?;
            if state.durable >= state.header.indexed {
                return Ok(());
            }
            state.header
        };
        self.file.sync_data()?;
        let mut state = self.lock()?;
        if state.header.tables == before.tables && before.indexed > state.durable {
            self.mark(&mut state, before)?;
        }
        Ok(())
    }

    /// Bytes the file takes.
    pub(super) fn len_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.file.metadata()?.len())
    }

    fn insert(&self, state: &mut State, key: Key, index: u64) -> Result<(), StoreError> {
        let header = state.header;
        let last = header.tables - 1;
        let full = header.in_last + 1 > header.capacity(last) / 4 * 3;
        let empty = if full {
            None
        } else {
            self.run(last, key)?.empty
        };
        let Some(at) = empty else {
            self.add_table(state)?;
            return self.insert(state, key, index);
        };
        if let Some(filter) = self.filter(last) {
            filter.add(key.fingerprint);
        }
        let mut slot = [0u8; SLOT as usize];
        slot[..8].copy_from_slice(&key.fingerprint.to_be_bytes());
        slot[8..].copy_from_slice(&index.to_be_bytes());
        self.file
            .write_all_at(&slot, header.offset(last) + at * SLOT)?;
        state.header.in_last += 1;
        Ok(())
    }

    /// Adds the next table (twice the size of the last while the layout
    /// doubles, else the cap's), without a sync, so that
    /// growing never holds the writer up on the table's dirty pages (at 10M
    /// entries, up to an interval's worth of random pages). The new table's
    /// region is first cut off and extended again, so it holds zeros even
    /// if a crash left slots of an earlier attempt there; the header
    /// written now claims only what the last sync covered, and becomes
    /// durable with the next one. Should a crash lose it, the next open
    /// sees the old last table, indexes the entries since that sync into
    /// it again, and adds the new table again when it fills.
    fn add_table(&self, state: &mut State) -> Result<(), StoreError> {
        let current = state.header;
        let mut next = current;
        next.tables += 1;
        next.in_last = 0;
        if !next.layout.is_plausible(next.tables) {
            return Err(StoreError::TableFull(self.name, current.tables));
        }
        self.file.set_len(current.offset(current.tables))?;
        self.file.set_len(next.offset(next.tables))?;
        let claimed = Header {
            indexed: state.durable,
            ..next
        };
        self.file.write_all_at(&claimed.encode(), 0)?;
        if let Some(slot) = self.filters.get(current.tables as usize) {
            // Complete from the start: the region was just zeroed.
            let _ = slot.set(Filter::new(next.capacity(current.tables), true));
        }
        state.header = next;
        self.tables.store(next.tables, Ordering::Release);
        Ok(())
    }

    fn filter(&self, k: u32) -> Option<&Filter> {
        self.filters.get(k as usize)?.get()
    }

    /// Whether table `k` may hold `key` (always, without a complete filter).
    fn may_hold(&self, k: u32, key: Key) -> bool {
        self.filter(k).is_none_or(|f| f.may_hold(key.fingerprint))
    }

    /// Reads the tables found at open, adding each slot's fingerprint to
    /// its table's filter, and marks each filter complete once its table
    /// is read; until `stop()`. The OS page cache then holds the last
    /// table too, so that after a restart inserts do not wait on the disk.
    fn warm(&self, stop: impl Fn() -> bool) -> Result<(), StoreError> {
        let tables = self.tables.load(Ordering::Acquire);
        let mut buffer = vec![0u8; WARM_CHUNK];
        for k in 0..tables {
            let filter = self
                .filter(k)
                .filter(|f| !f.complete.load(Ordering::Acquire));
            let (start, end) = (self.layout.offset(k), self.layout.offset(k + 1));
            let mut at = start;
            while at < end {
                if stop() {
                    return Ok(());
                }
                let len = usize::try_from(end - at).map_or(WARM_CHUNK, |l| l.min(WARM_CHUNK));
                self.file.read_exact_at(&mut buffer[..len], at)?;
                if let Some(filter) = filter {
                    for slot in buffer[..len].chunks_exact(SLOT as usize) {
                        let fingerprint = be_u64(&slot[..8]);
                        if fingerprint != 0 {
                            filter.add(fingerprint);
                        }
                    }
                }
                at += len as u64;
            }
            if let Some(filter) = filter {
                filter.complete.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Writes `header`, whose inserts a sync has made durable; it becomes
    /// durable itself with the next sync (until then the older one holds,
    /// which only means more to index again).
    fn mark(&self, state: &mut State, header: Header) -> Result<(), StoreError> {
        self.file.write_all_at(&header.encode(), 0)?;
        state.durable = header.indexed;
        Ok(())
    }

    /// Walks table `k`'s probe run for `key` up to its first empty slot.
    fn run(&self, k: u32, key: Key) -> Result<Run, StoreError> {
        #[cfg(test)]
        self.runs.fetch_add(1, Ordering::Relaxed);
        let capacity = self.layout.capacity(k);
        let base = self.layout.offset(k);
        let mut at = key.seed & (capacity - 1);
        let mut matches = Vec::new();
        let mut window = [0u8; (WINDOW * SLOT) as usize];
        let mut seen = 0u64;
        while seen < capacity {
            let count = WINDOW.min(capacity - at).min(capacity - seen);
            let bytes = &mut window[..(count * SLOT) as usize];
            self.file.read_exact_at(bytes, base + at * SLOT)?;
            for slot in bytes.chunks_exact(SLOT as usize) {
                let fingerprint = be_u64(&slot[..8]);
                if fingerprint == 0 {
                    return Ok(Run {
                        matches,
                        empty: Some(at),
                    });
                }
                if fingerprint == key.fingerprint {
                    matches.push(be_u64(&slot[8..]));
                }
                at = (at + 1) & (capacity - 1);
                seen += 1;
            }
        }
        Ok(Run {
            matches,
            empty: None,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Corrupt(format!("{} lock poisoned", self.name)))
    }
}

/// The thread that first reads the table once ([`KeyTable::warm`]: the
/// filters, and the last table's pages for the writer's inserts), then
/// makes the table durable about once per [`SYNC_INTERVAL`]; stopped
/// (and joined) when dropped.
pub(super) struct Syncer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts syncing `table` in the background.
    pub(super) fn start(table: Arc<KeyTable>) -> Result<Self, StoreError> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let name = table.name;
        let thread = std::thread::Builder::new()
            .name(format!("sync-{name}"))
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let is_stopped = || *stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let started = std::time::Instant::now();
                match table.warm(is_stopped) {
                    Ok(()) if !is_stopped() => tracing::info!(
                        tables = table.tables.load(Ordering::Acquire),
                        ms = started.elapsed().as_millis(),
                        "{name}: filters filled"
                    ),
                    Ok(()) => {}
                    Err(e) => tracing::debug!(error = %e, "could not read {name} ahead"),
                }
                let mut guard = stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                while !*guard {
                    guard = wake
                        .wait_timeout(guard, SYNC_INTERVAL)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                    if let Err(e) = table.sync_behind_the_writer() {
                        tracing::warn!(error = %e, "could not sync {name}; the next open indexes the rest again");
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    u64::from_be_bytes(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables of `2^first_bits`, twice that, … (a cap no test reaches).
    fn uncapped(first_bits: u32) -> Shape {
        Shape {
            first_bits,
            cap_bits: 30,
        }
    }

    fn id(n: u64) -> String {
        format!("exec-{n}")
    }

    /// Every index the table holds for `exec_id`, in the order `find` tries them.
    fn candidates(table: &KeyTable, exec_id: &str) -> Result<Vec<u64>, StoreError> {
        let mut all = Vec::new();
        table.find::<()>(exec_id.as_bytes(), |index| {
            all.push(index);
            Ok(None)
        })?;
        Ok(all)
    }

    /// Inserts exec_ids `from..to` as entries of those indexes, in batches
    /// of `per_batch`, as the writer does.
    fn insert(table: &KeyTable, from: u64, to: u64, per_batch: u64) {
        let mut at = from;
        while at < to {
            let end = (at + per_batch).min(to);
            let ids: Vec<(String, u64)> = (at..end).map(|n| (id(n), n)).collect();
            table
                .insert_batch(ids.iter().map(|(s, n)| (s.as_bytes(), *n)), end)
                .unwrap();
            at = end;
        }
    }

    /// Occupied slots per table, read from the file.
    fn occupied(table: &KeyTable) -> Vec<u64> {
        let tables = table.tables.load(Ordering::Acquire);
        (0..tables)
            .map(|k| {
                let mut bytes = vec![0u8; (table.layout.capacity(k) * SLOT) as usize];
                table
                    .file
                    .read_exact_at(&mut bytes, table.layout.offset(k))
                    .unwrap();
                bytes
                    .chunks_exact(SLOT as usize)
                    .filter(|s| be_u64(&s[..8]) != 0)
                    .count() as u64
            })
            .collect()
    }

    /// Indexes the exec_ids from the header's count up to `to` again, as
    /// the store does at open; returns where the header said to start.
    fn reindex_past_header(table: &KeyTable, to: u64) -> u64 {
        let from = table.indexed().unwrap();
        for n in from..to {
            table.reindex(id(n).as_bytes(), n).unwrap();
        }
        from
    }

    /// Every exec_id below `to` has exactly one slot, with its index; the
    /// header's count of the last table is exact.
    fn assert_exact(table: &KeyTable, to: u64) {
        for n in 0..to {
            assert_eq!(candidates(table, &id(n)).unwrap(), vec![n], "exec_id {n}");
        }
        assert!(candidates(table, &id(to)).unwrap().is_empty());
        let occupied = occupied(table);
        assert_eq!(occupied.iter().sum::<u64>(), to);
        let state = table.lock().unwrap();
        assert_eq!(Some(&state.header.in_last), occupied.last());
    }

    #[test]
    fn inserted_exec_ids_are_found_across_a_clean_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, SHAPE).unwrap();
        insert(&table, 0, 1_000, 64);
        assert_exact(&table, 1_000);
        table.sync_now().unwrap();
        drop(table);
        let table = KeyTable::open(dir.path(), EXEC_IDS, SHAPE).unwrap();
        assert_eq!(table.indexed().unwrap(), 1_000);
        assert_exact(&table, 1_000);
    }

    #[test]
    fn tables_are_added_as_the_last_fills_and_none_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(2)).unwrap();
        insert(&table, 0, 3, 3);
        let first_table = occupied(&table);
        insert(&table, 3, 500, 7);
        let tables = table.tables.load(Ordering::Acquire);
        // 4, 8, 16, ... slots, each filled to 3/4 before the next.
        assert_eq!(tables, 8, "{:?}", occupied(&table));
        assert_eq!(occupied(&table)[0], first_table[0]);
        assert_eq!(
            table.len_on_disk().unwrap(),
            table.layout.offset(tables),
            "the file ends with the last table"
        );
        assert_exact(&table, 500);
    }

    /// Tables of 4 and 8 slots, then 16 each.
    const CAPPED: Shape = Shape {
        first_bits: 2,
        cap_bits: 4,
    };

    #[test]
    fn past_the_cap_every_table_added_has_the_caps_size() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, CAPPED).unwrap();
        insert(&table, 0, 500, 7);
        let tables = table.tables.load(Ordering::Acquire);
        // 3 in the first, 6 in the second, then 12 (3/4 of 16) in each.
        assert_eq!(tables, 2 + (500u32 - 9).div_ceil(12));
        let sizes: Vec<u64> = (0..tables).map(|k| table.layout.capacity(k)).collect();
        assert_eq!(&sizes[..3], &[4, 8, 16]);
        assert!(sizes[2..].iter().all(|s| *s == 16), "{sizes:?}");
        assert_eq!(table.len_on_disk().unwrap(), table.layout.offset(tables));
        assert_exact(&table, 500);
        table.sync_now().unwrap();
        drop(table);
        let table = KeyTable::open(dir.path(), EXEC_IDS, CAPPED).unwrap();
        assert_eq!(table.tables.load(Ordering::Acquire), tables);
        table.warm(|| false).unwrap();
        assert_exact(&table, 500);
    }

    #[test]
    fn a_file_with_another_magic_is_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, CAPPED).unwrap();
        insert(&table, 0, 50, 7);
        table.sync_now().unwrap();
        assert_eq!(table.indexed().unwrap(), 50);
        drop(table);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(EXEC_IDS))
            .unwrap();
        file.write_all_at(b"OEXTAB01", 0).unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, CAPPED).unwrap();
        assert_eq!(table.indexed().unwrap(), 0);
        assert_eq!(table.tables.load(Ordering::Acquire), 1);
        assert_eq!(table.layout, Layout::of(CAPPED));
    }

    #[test]
    fn entries_past_the_durable_header_are_indexed_again_once() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        insert(&table, 0, 40, 10);
        table.sync_now().unwrap();
        // Within the sync interval: slots written, the header not moved,
        // and tables added on the way (each writes a header of its own).
        insert(&table, 40, 300, 9);
        drop(table);
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        let from = reindex_past_header(&table, 300);
        assert!((40..300).contains(&from), "header at {from}");
        assert_exact(&table, 300);
        // The counts stay exact for what follows.
        insert(&table, 300, 400, 13);
        assert_exact(&table, 400);
    }

    #[test]
    fn the_background_sync_records_what_it_made_durable() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        insert(&table, 0, 30, 10);
        table.sync_behind_the_writer().unwrap();
        assert_eq!(table.lock().unwrap().durable, 30);
        // Nothing new: nothing written (the header already says 30).
        table.sync_behind_the_writer().unwrap();
        insert(&table, 30, 45, 15);
        drop(table);
        // Its header is written after the sync, and claims only what that
        // sync covered.
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        assert_eq!(reindex_past_header(&table, 45), 30);
        assert_exact(&table, 45);
    }

    #[test]
    fn a_table_added_again_after_a_crash_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(2)).unwrap();
        insert(&table, 0, 3, 3);
        table.sync_now().unwrap();
        // What a crash can leave: table 1's region written (slots of
        // entries the lost header's table held) while the durable header
        // still says one table.
        table.file.set_len(table.layout.offset(2)).unwrap();
        let mut stale = [0u8; SLOT as usize];
        stale[..8].copy_from_slice(&Key::of(id(99).as_bytes()).fingerprint.to_be_bytes());
        stale[8..].copy_from_slice(&99u64.to_be_bytes());
        table
            .file
            .write_all_at(&stale, table.layout.offset(1))
            .unwrap();
        drop(table);
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(2)).unwrap();
        assert_eq!(table.tables.load(Ordering::Acquire), 1);
        insert(&table, 3, 20, 4);
        assert!(table.tables.load(Ordering::Acquire) > 1);
        assert!(candidates(&table, &id(99)).unwrap().is_empty());
        assert_exact(&table, 20);
    }

    #[test]
    fn reindexing_what_was_never_inserted_inserts_it() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        for n in 0..100 {
            table.reindex(id(n).as_bytes(), n).unwrap();
        }
        assert_eq!(table.indexed().unwrap(), 100);
        assert_exact(&table, 100);
    }

    #[test]
    fn a_file_without_a_valid_header_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        insert(&table, 0, 50, 10);
        table.sync_now().unwrap();
        drop(table);
        let path = dir.path().join(EXEC_IDS);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"NOTATABL", 0).unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        assert_eq!(table.indexed().unwrap(), 0);
        assert!(candidates(&table, &id(1)).unwrap().is_empty());
        // A header whose tables run past the file's end is not trusted either.
        let mut header = Header::fresh(uncapped(3));
        header.tables = 5;
        file.write_all_at(&header.encode(), 0).unwrap();
        drop(table);
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        assert_eq!(table.tables.load(Ordering::Acquire), 1);
        // Nor one whose tables would hold no keys (3/4 of 2 slots), which
        // would add tables until the limit and jam every insert.
        insert(&table, 0, 20, 5);
        table.sync_now().unwrap();
        let mut header = table.lock().unwrap().header;
        header.layout.cap_bits = 1;
        file.write_all_at(&header.encode(), 0).unwrap();
        drop(table);
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        assert_eq!(table.indexed().unwrap(), 0);
        insert(&table, 0, 40, 5);
        assert_exact(&table, 40);
    }

    #[test]
    fn a_layout_whose_file_would_end_past_u64_offsets_is_not_plausible() {
        let layout = Layout::of(Shape {
            first_bits: 16,
            cap_bits: MAX_BITS,
        });
        assert!(layout.is_plausible(1_000));
        // 16 bytes × 2^48 slots × 16,384 tables: past 2^64.
        assert!(!layout.is_plausible(MAX_TABLES));
        assert_eq!(layout.offset(MAX_TABLES), u64::MAX);
    }

    #[test]
    fn a_full_table_is_never_probed_forever() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(2)).unwrap();
        // Fill table 0 completely behind the writer's back.
        let mut slot = [0u8; SLOT as usize];
        for at in 0..4u64 {
            slot[..8].copy_from_slice(&(2 * at + 1).to_be_bytes());
            table
                .file
                .write_all_at(&slot, HEADER_LEN + at * SLOT)
                .unwrap();
        }
        assert!(candidates(&table, "anything").unwrap().is_empty());
        insert(&table, 0, 1, 1);
        assert_eq!(candidates(&table, &id(0)).unwrap(), vec![0]);
    }

    /// Probe runs a lookup of each of `ids` reads.
    fn runs_to_find(table: &KeyTable, ids: impl Iterator<Item = String>) -> u64 {
        let before = table.runs.load(Ordering::Relaxed);
        for exec_id in ids {
            candidates(table, &exec_id).unwrap();
        }
        table.runs.load(Ordering::Relaxed) - before
    }

    #[test]
    fn complete_filters_spare_the_reads_of_absent_keys_and_hide_none() {
        let dir = tempfile::tempdir().unwrap();
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        insert(&table, 0, 300, 7);
        table.sync_now().unwrap();
        drop(table);
        let table = KeyTable::open(dir.path(), EXEC_IDS, uncapped(3)).unwrap();
        let tables = u64::from(table.tables.load(Ordering::Acquire));
        assert!(tables >= 5, "{tables} tables");
        let absent = || (1_000..2_000).map(id);
        // Before the filters are filled from the file: every table read.
        assert_eq!(runs_to_find(&table, absent()), 1_000 * tables);
        assert_exact(&table, 300);
        table.warm(|| false).unwrap();
        assert_exact(&table, 300);
        let runs = runs_to_find(&table, absent());
        assert!(
            runs < 1_000 * tables / 20,
            "{runs} runs for 1,000 absent keys"
        );
        // Inserted after: in the filters at once, including a new table's.
        insert(&table, 300, 700, 50);
        assert!(table.tables.load(Ordering::Acquire) as u64 > tables);
        assert_exact(&table, 700);
    }

    /// What may happen to the table between two looks at it.
    #[derive(Debug, Clone)]
    enum Step {
        /// The writer indexes a batch of this many entries.
        Batch(u64),
        /// A clean close's sync.
        Sync,
        /// A crash (nothing synced since the last sync or added table),
        /// then an open that indexes the rest again.
        Crash,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (1u64..40).prop_map(Step::Batch),
            1 => Just(Step::Sync),
            2 => Just(Step::Crash),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the order of batches, syncs and crashes, every exec_id
        /// ends up in exactly one slot and the header's count stays exact;
        /// with filters, filled or not after each crash, every one is found.
        #[test]
        fn any_history_of_batches_and_crashes_leaves_one_slot_per_exec_id(
            steps in proptest::collection::vec(step(), 1..30),
            fill_filters in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut table = KeyTable::open(dir.path(), EXEC_IDS, CAPPED).unwrap();
            let mut size = 0;
            for step in steps {
                match step {
                    Step::Batch(n) => {
                        insert(&table, size, size + n, n);
                        size += n;
                    }
                    Step::Sync => table.sync_now().unwrap(),
                    Step::Crash => {
                        drop(table);
                        table = KeyTable::open(dir.path(), EXEC_IDS, CAPPED).unwrap();
                        reindex_past_header(&table, size);
                        if fill_filters {
                            table.warm(|| false).unwrap();
                        }
                    }
                }
                assert_exact(&table, size);
            }
        }
    }
}
