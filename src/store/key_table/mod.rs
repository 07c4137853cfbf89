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
//! `2^cap_bits` after: a slot holds a tag (`u64` BE: the first 48 bits of
//! SHA-256(key) with the lowest set, then a CRC-16 of the slot,
//! [`layout::Slot`]) and the entry index (`u64` BE); all zeros is an empty
//! slot. Linear probing from the next 8 bytes of the digest. Only the last table takes new keys;
//! when it is 3/4 full the next table is added after it. No table
//! is ever rewritten, so growing never pauses the writer; a lookup probes
//! the tables newest first until a candidate is confirmed (an unknown key
//! probes all, unless the [filters](#filters) rule them out).
//!
//! Why the cap ([`layout::CAP_BITS`], 16 MiB): the OS writes back every page an
//! insert dirtied, and inserts land on random slots of the last table. A
//! last table that doubled without end (256 MiB at 10M keys) had every one
//! of its pages dirtied between two syncs — ~25 MB/s of write-back per
//! table at 20,000 appends/s, sharing the device with the log's own
//! fdatasyncs. A capped last table bounds that at its size per sync,
//! whatever the ledger's length; the price is more tables to probe (one
//! per 786,432 keys past the first 737,280), which the filters answer from
//! memory.
//!
//! Header: magic `OEXTAB03` ‖ `first_bits` (`u32`) ‖ tables (`u32`) ‖
//! keys in the last table (`u64`) ‖ `indexed` (`u64`) ‖ `doubling`
//! (`u32`) ‖ `cap_bits` (`u32`) ‖ CRC-32 of those, then zeros: every entry
//! below `indexed` is in the table durably. A file with any other header
//! (damaged, or of another magic) is started afresh and indexed again
//! from `entries.bin` (it is derived data).
//!
//! # Damage
//!
//! Every slot a probe run reads is checked; one that fails ([`Slot::Damaged`])
//! fails the lookup with [`StoreError::Damaged`] — never a miss, which for
//! `nonces.tab` would free a done nonce — and is noted in the store's
//! [`DamageLog`] (an insert walks past it: the key it inserts lies beyond,
//! where its lookups meet the damage too). The table is then *damaged*:
//! its header is overwritten with zeros (durably), so that the next open
//! indexes it again from `entries.bin`, and this process never writes a
//! header to it again. The filters are filled from checked slots only, and the filter
//! of a table where the warm-up met damage is never complete, so that it
//! never hides a key whose slot is damaged.
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
use std::sync::atomic::AtomicBool;
#[cfg(test)]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::damage::{DamageLog, Damaged};
use super::StoreError;

mod filter;
mod layout;
mod syncer;

use filter::{Filter, Key};
pub(super) use layout::SHAPE;
use layout::{Header, Layout, Shape, Slot, HEADER_LEN, MAX_TABLES, SLOT};
pub(super) use syncer::Syncer;

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
/// Slots read per `pread` while walking a probe run.
const WINDOW: u64 = 32;
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

/// Why a probe run is read, and whether the reader holds the writer's
/// lock (`state`), under which no slot is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// A lookup without the lock: a slot failing its check may be an
    /// insert's 16-byte write seen half done, and is read again under the
    /// lock before it counts as damage.
    Lookup,
    /// A lookup by the writer, which holds the lock.
    LookupLocked,
    /// An insert, which holds the lock.
    Insert,
}

/// How a walk of a probe run ended.
enum Walk {
    Done(Run),
    /// A slot read half written: walk again.
    Torn,
}

/// Walks of one probe run a lookup makes before taking a slot that keeps
/// reading half written as damage (each walk after the first follows a
/// check under the writer's lock that found the slot whole).
const TORN_RETRIES: usize = 3;

/// The open table file.
pub(super) struct KeyTable {
    file: File,
    /// The file's name, for what is logged about it.
    name: &'static str,
    /// Where the tables lie (fixed for the file's life).
    layout: Layout,
    /// Tables readers may probe.
    tables: AtomicU32,
    /// Where damage found is noted (the store's).
    damage: Arc<DamageLog>,
    /// Set once damage was found: the header is invalidated and nothing
    /// is written to the file again.
    damaged: AtomicBool,
    /// Held around every header write and the invalidation, so that no
    /// header written after a check of `damaged` lands over the zeros.
    header_io: Mutex<()>,
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
    /// did not write, or that fails its check, is started afresh (it is
    /// derived; the caller indexes again from [`Self::indexed`]); a header
    /// that fails its check is noted as a repair in `damage`.
    pub(super) fn open(
        dir: &Path,
        name: &'static str,
        shape: Shape,
        damage: Arc<DamageLog>,
    ) -> Result<Self, StoreError> {
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
        let mut page = vec![0u8; HEADER_LEN as usize];
        let found = if len >= HEADER_LEN {
            file.read_exact_at(&mut page, 0)?;
            Header::decode(&page, len)
        } else {
            None
        };
        let header = match found {
            Some(h) => h,
            None => {
                if len > 0 {
                    damage.repaired(format!(
                        "{name} has no valid header (damaged, invalidated after damage, or \
                         of another format): indexing every entry of entries.bin again"
                    ));
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
            damage,
            damaged: AtomicBool::new(false),
            header_io: Mutex::new(()),
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
            for index in self.run(k, key, Read::Lookup)?.matches {
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
            if self
                .run(k, key, Read::LookupLocked)?
                .matches
                .contains(&index)
            {
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
        if state.header.indexed <= size || self.is_damaged() {
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
        if state.durable < state.header.indexed && !self.is_damaged() {
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
        crate::instruments::timed_sync(crate::instruments::SyncedFile::KeyTable, || {
            self.file.sync_data()
        })?;
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
            self.run(last, key, Read::Insert)?.empty
        };
        let Some(at) = empty else {
            self.add_table(state)?;
            return self.insert(state, key, index);
        };
        if let Some(filter) = self.filter(last) {
            filter.add(key.fingerprint);
        }
        self.file.write_all_at(
            &Slot::encode(key.fingerprint, index),
            header.offset(last) + at * SLOT,
        )?;
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
        self.write_header(claimed)?;
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
            // Whether every slot of table `k` checked.
            let mut sound = true;
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
                for (n, bytes) in buffer[..len].chunks_exact(SLOT as usize).enumerate() {
                    match Slot::decode(bytes) {
                        Slot::Held { fingerprint, .. } => {
                            if let Some(filter) = filter {
                                filter.add(fingerprint);
                            }
                        }
                        Slot::Empty => {}
                        Slot::Damaged if sound => {
                            let offset = at + n as u64 * SLOT;
                            if self.fails_under_lock(offset)? {
                                sound = false;
                                let _ = self.damaged_slot(offset);
                            } else if let (Some(filter), Slot::Held { fingerprint, .. }) =
                                (filter, self.slot_at(offset)?)
                            {
                                // Read half written; whole now.
                                filter.add(fingerprint);
                            }
                        }
                        Slot::Damaged => {}
                    }
                }
                at += len as u64;
            }
            if let Some(filter) = filter.filter(|_| sound) {
                filter.complete.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Writes `header`, whose inserts a sync has made durable; it becomes
    /// durable itself with the next sync (until then the older one holds,
    /// which only means more to index again).
    fn mark(&self, state: &mut State, header: Header) -> Result<(), StoreError> {
        if self.write_header(header)? {
            state.durable = header.indexed;
        }
        Ok(())
    }

    /// Writes `header` unless the table is damaged (its header then stays
    /// invalidated); returns whether it wrote.
    fn write_header(&self, header: Header) -> Result<bool, StoreError> {
        let _io = self
            .header_io
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.is_damaged() {
            return Ok(false);
        }
        self.file.write_all_at(&header.encode(), 0)?;
        Ok(true)
    }

    /// Walks table `k`'s probe run for `key` up to its first empty slot.
    /// A damaged slot fails a lookup; an insert notes it and walks past it
    /// (the key then lies past the damage, where its lookups fail too).
    fn run(&self, k: u32, key: Key, read: Read) -> Result<Run, StoreError> {
        for _ in 0..TORN_RETRIES {
            if let Walk::Done(run) = self.walk(k, key, read)? {
                return Ok(run);
            }
        }
        match self.walk(k, key, Read::LookupLocked)? {
            Walk::Done(run) => Ok(run),
            Walk::Torn => Err(StoreError::Corrupt(format!(
                "{}: a slot stays torn",
                self.name
            ))),
        }
    }

    /// One walk of table `k`'s probe run for `key` (see [`Self::run`]).
    fn walk(&self, k: u32, key: Key, read: Read) -> Result<Walk, StoreError> {
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
                match Slot::decode(slot) {
                    Slot::Empty => {
                        return Ok(Walk::Done(Run {
                            matches,
                            empty: Some(at),
                        }))
                    }
                    Slot::Held { fingerprint, index } if fingerprint == key.fingerprint => {
                        matches.push(index);
                    }
                    Slot::Held { .. } => {}
                    Slot::Damaged => {
                        let offset = base + at * SLOT;
                        if read == Read::Lookup && !self.fails_under_lock(offset)? {
                            return Ok(Walk::Torn);
                        }
                        let damaged = self.damaged_slot(offset);
                        if read != Read::Insert {
                            return Err(damaged);
                        }
                    }
                }
                at = (at + 1) & (capacity - 1);
                seen += 1;
            }
        }
        Ok(Walk::Done(Run {
            matches,
            empty: None,
        }))
    }

    /// Whether the slot at byte `offset` still fails its check when read
    /// again under the writer's lock (a reader without it may have seen an
    /// insert's write half done).
    fn fails_under_lock(&self, offset: u64) -> Result<bool, StoreError> {
        let _writer = self.lock()?;
        Ok(matches!(self.slot_at(offset)?, Slot::Damaged))
    }

    /// The slot at byte `offset`, as read now.
    fn slot_at(&self, offset: u64) -> Result<Slot, StoreError> {
        let mut slot = [0u8; SLOT as usize];
        self.file.read_exact_at(&mut slot, offset)?;
        Ok(Slot::decode(&slot))
    }

    /// Whether damage was found in the file.
    pub(super) fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Acquire)
    }

    /// Notes the damaged slot at byte `offset` and makes the table damaged
    /// (see "Damage"); returns the error to fail the read with.
    fn damaged_slot(&self, offset: u64) -> StoreError {
        let _io = self
            .header_io
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.damaged.swap(true, Ordering::AcqRel) {
            // The next open indexes the table again from entries.bin.
            let invalidated = self
                .file
                .write_all_at(&[0u8; layout::HEADER_USED], 0)
                .and_then(|()| self.file.sync_data());
            if let Err(e) = invalidated {
                tracing::error!(error = %e, "could not invalidate the header of {}", self.name);
            }
        }
        self.damage.found(Damaged::new(
            self.name,
            offset,
            "a key-table slot fails its check",
        ))
    }

    /// Reads every table and checks every slot: the offset of the first
    /// that fails, if any (`openexec audit`).
    pub(super) fn first_damaged_slot(&self) -> Result<Option<u64>, StoreError> {
        let tables = self.tables.load(Ordering::Acquire);
        let mut buffer = vec![0u8; WARM_CHUNK];
        let (start, end) = (self.layout.offset(0), self.layout.offset(tables));
        let mut at = start;
        while at < end {
            let len = usize::try_from(end - at).map_or(WARM_CHUNK, |l| l.min(WARM_CHUNK));
            self.file.read_exact_at(&mut buffer[..len], at)?;
            let bad = buffer[..len]
                .chunks_exact(SLOT as usize)
                .position(|s| Slot::decode(s) == Slot::Damaged);
            if let Some(n) = bad {
                return Ok(Some(at + n as u64 * SLOT));
            }
            at += len as u64;
        }
        Ok(None)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Corrupt(format!("{} lock poisoned", self.name)))
    }
}

#[cfg(test)]
mod tests;
