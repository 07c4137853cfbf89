//! Opening a store: checks its format, brings the commit ring, the
//! segment files and the key tables to the committed head, and starts the
//! tables' syncers.
//!
//! The order matters. The format is checked before anything is written
//! ([`check_format`]); the ring's newest commit is copied into sled before
//! the segment files are cut to sled's head ([`open_ring`]); the key tables
//! index what their headers miss only once the segment files are whole.
//! Opening never converts a store from another format.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sled::transaction::Transactional;

use super::commit_ring::{self, CommitRing, RingCommit};
use super::counters::{self, Counters};
use super::damage::DamageLog;
use super::reservations::journal::{self, Journal, JournalRecord};
use super::reservations::InFlight;
use super::segments::{Segments, SegmentsMark};
use super::{
    commit_mark, faults, key_table, read_head, reservations, sync_dir, sync_sled, Inner, Store,
    StoreConfig, StoreError, META_ENTRIES_DICT, META_HEAD, SEGMENT_SIZE,
};

impl Store {
    /// Opens (or creates) the store in `config.path`.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.path)?;
        let db = open_sled(config)?;
        let log_file = File::open(config.path.join("db"))?;
        let meta = db.open_tree("meta")?;
        let existing = check_format(&meta)?;
        let damage = Arc::new(DamageLog::opening());
        let (ring, held) = open_ring(&db, &meta, &config.path, &log_file, existing)?;
        if !existing {
            // The ring's and the journal's directory entries are durable
            // before the mark that makes their absence an error.
            journal::create_empty(&config.path)?;
            sync_dir(&config.path)?;
        }
        if existing {
            // Before anything reads a record an erase may have torn.
            let end = meta
                .get(SegmentsMark::META_KEY)?
                .map(|v| SegmentsMark::decode(&v))
                .transpose()?
                .map_or(0, |m| m.entries_end);
            super::redactions::redo_erasures(&db, &config.path, end)?;
        }
        let segments = open_segments(&db, &meta, &config.path, &log_file, &damage)?;
        restore_ring_checkpoints(&db, &segments, &held, &log_file)?;
        let counters_tree = db.open_tree("counters")?;
        let (exec_table, completions) =
            match open_tables(&segments, config, &damage, &counters_tree) {
                Ok(tables) => tables,
                // A lookup of the journal's reservations met a damaged slot,
                // which invalidated its table: indexed again from the start.
                Err(StoreError::Damaged(d)) if d.file != journal::FILE => {
                    tracing::warn!("{d}: indexing the key tables again from entries.bin");
                    open_tables(&segments, config, &damage, &counters_tree)?
                }
                Err(e) => return Err(e),
            };
        let (journal, in_flight, counters) = completions.journal;
        let journal = Arc::new(journal);
        let exec_table = Arc::new(exec_table);
        let done_nonces = Arc::new(completions.done_nonces);
        let consumed_approvals = Arc::new(completions.consumed_approvals);
        sync_dir(&config.path)?;
        damage.settle_open();
        let inner = Inner {
            segments,
            _exec_table_syncer: key_table::Syncer::start(Arc::clone(&exec_table))?,
            exec_table,
            exec_id_of: config.exec_id_of,
            _done_nonces_syncer: key_table::Syncer::start(Arc::clone(&done_nonces))?,
            done_nonces,
            nonce_key_of: config.nonce_key_of,
            _consumed_approvals_syncer: key_table::Syncer::start(Arc::clone(&consumed_approvals))?,
            consumed_approvals,
            approval_key_of: config.approval_key_of,
            nonce_order: Mutex::new(in_flight),
            staged: Mutex::new(Vec::new()),
            journal_writer: reservations::writer::JournalWriter::start(Arc::clone(&journal))?,
            journal,
            checkpoints: db.open_tree("checkpoints")?,
            meta,
            approvals: db.open_tree("approvals")?,
            redactions: db.open_tree(super::redactions::TREE)?,
            counters,
            faults: faults::Faults::default(),
            damage,
            db,
            log_file,
            ring,
            ring_ahead: Mutex::new(None),
            history_filed: AtomicU64::new(0),
            path: config.path.clone(),
        };
        let store = Self {
            inner: Arc::new(inner),
        };
        let newest = store.latest_checkpoint()?.map_or(0, |(size, _)| size);
        store.inner.history_filed.store(newest, Ordering::Relaxed);
        Ok(store)
    }
}

/// Whether the directory holds an existing store, after checking that it
/// is in [`super::segments::STORE_FORMAT`]: a store records its format in
/// its segments mark from its first open, so a head without a mark is a
/// store that records no format (format 0). Writes nothing.
fn check_format(meta: &sled::Tree) -> Result<bool, StoreError> {
    match meta.get(SegmentsMark::META_KEY)? {
        Some(mark) => SegmentsMark::decode(&mark).map(|_| true),
        None if read_head(meta)?.is_some() => Err(StoreError::UnsupportedFormat { found: 0 }),
        None => Ok(false),
    }
}

/// How long [`open_sled`] waits for sled's directory lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled, waiting up to [`LOCK_WAIT`] for its directory lock: sled
/// releases the lock of a database dropped in this process only when its
/// background threads have let go, a moment after the drop. Another
/// process holding the directory still fails, with sled's lock error.
pub(super) fn open_sled(config: &StoreConfig) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_bytes)
            .segment_size(SEGMENT_SIZE)
            .mode(sled::Mode::HighThroughput)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Opens the segment files for the committed head, and commits the
/// segments mark when opening rebuilt the derived files or the store is
/// new (so that every store records its format from its first open).
fn open_segments(
    db: &sled::Db,
    meta: &sled::Tree,
    dir: &Path,
    log_file: &File,
    damage: &Arc<DamageLog>,
) -> Result<Segments, StoreError> {
    let head = read_head(meta)?;
    let stored_mark = meta
        .get(SegmentsMark::META_KEY)?
        .map(|v| SegmentsMark::decode(&v))
        .transpose()?;
    let dictionary = meta.get(META_ENTRIES_DICT)?.map(|v| v.to_vec());
    let new = stored_mark.is_none();
    let entries_len = std::fs::metadata(dir.join("entries.bin")).map_or(0, |m| m.len());
    if new && entries_len > 0 {
        return Err(StoreError::Corrupt(format!(
            "entries.bin holds {entries_len} bytes but sled records no store: the files do \
             not belong together; restore the whole directory"
        )));
    }
    let mark = stored_mark.unwrap_or_default();
    let size = head.map_or(0, |h| h.size);
    let (segments, rebuilt) = Segments::open(
        dir,
        size,
        head.map(|h| h.root),
        mark,
        dictionary.clone(),
        Arc::clone(damage),
    )?;
    if let Some(mark) = rebuilt.or(new.then_some(mark)) {
        if let Some(d) = dictionary {
            meta.insert(META_ENTRIES_DICT, d)?;
        }
        commit_mark(db, meta, log_file, mark)?;
    }
    Ok(segments)
}

/// Opens the key tables, indexing what their headers miss on two threads
/// (the completion tables share one scan of the completing entries: after
/// a kill -9 under load at 13.6M entries, ~68k entries each, 0.45 s
/// apiece, most of it reading and decompressing them), then the journal,
/// which looks its reservations up in them.
fn open_tables(
    segments: &Segments,
    config: &StoreConfig,
    damage: &Arc<DamageLog>,
    counters: &sled::Tree,
) -> Result<(key_table::KeyTable, OpenedTables), StoreError> {
    let (exec_table, completions) = std::thread::scope(|scope| {
        let completions = scope.spawn(|| open_completion_tables(segments, config, damage));
        let exec_table = open_exec_table(segments, config, damage);
        let completions = completions
            .join()
            .map_err(|_| StoreError::Corrupt("opening nonces.tab panicked".into()))?;
        Ok::<_, StoreError>((exec_table?, completions?))
    })?;
    let journal = open_journal(
        segments,
        &exec_table,
        &completions.done_nonces,
        counters,
        config,
    )?;
    Ok((
        exec_table,
        OpenedTables {
            done_nonces: completions.done_nonces,
            consumed_approvals: completions.consumed_approvals,
            journal,
        },
    ))
}

/// The completion tables and the journal, as opened.
struct OpenedTables {
    done_nonces: key_table::KeyTable,
    consumed_approvals: key_table::KeyTable,
    journal: (Journal, InFlight, Counters),
}

/// Opens the exec_id table and indexes the entries its header does not
/// yet cover (those of the last seconds before a crash, or all of them when
/// the file was lost).
fn open_exec_table(
    segments: &Segments,
    config: &StoreConfig,
    damage: &Arc<DamageLog>,
) -> Result<key_table::KeyTable, StoreError> {
    again_if_damaged(|| {
        let table = open_table(&config.path, key_table::EXEC_IDS, damage)?;
        let exec_id_of = |bytes: &[u8]| (config.exec_id_of)(bytes).map(String::into_bytes);
        index_past_headers(
            segments,
            |index| {
                let (bytes, _) = segments
                    .entry(index)?
                    .ok_or_else(|| StoreError::Corrupt(format!("entry {index} is missing")))?;
                Ok(Some(bytes))
            },
            &[(&table, &exec_id_of)],
        )?;
        Ok(table)
    })
}

/// Runs `open` (opening key tables and indexing them) once more if it met
/// a damaged key-table slot: a table that met damage has its header
/// invalidated, so the second time it starts afresh and every entry is
/// indexed again. Damage in `entries.bin` fails both.
fn again_if_damaged<T>(open: impl Fn() -> Result<T, StoreError>) -> Result<T, StoreError> {
    match open() {
        Err(StoreError::Damaged(d)) if d.file != super::segments::ENTRIES => {
            tracing::warn!("{d}: indexing that table again from entries.bin");
            open()
        }
        other => other,
    }
}

/// A table to index at open, with the key it takes from an entry's bytes
/// (none: the entry is not indexed there).
type Indexing<'a> = (
    &'a key_table::KeyTable,
    &'a dyn Fn(&[u8]) -> Option<Vec<u8>>,
);

/// Indexes in each table the committed entries its header does not cover,
/// reading each entry once for all of them (`read`: the bytes to index, or
/// none for an entry no table takes), and makes the tables durable. A
/// header that claims entries past the log is lowered to it first
/// ([`key_table::KeyTable::claim_at_most`]).
fn index_past_headers(
    segments: &Segments,
    read: impl Fn(u64) -> Result<Option<Vec<u8>>, StoreError>,
    tables: &[Indexing<'_>],
) -> Result<(), StoreError> {
    let size = segments.visible();
    let starts = tables
        .iter()
        .map(|(table, _)| {
            table.claim_at_most(size)?;
            table.indexed()
        })
        .collect::<Result<Vec<u64>, _>>()?;
    for ((table, _), &start) in tables.iter().zip(&starts) {
        if start < size {
            tracing::info!(
                table = table.name(),
                from = start,
                to = size,
                "indexing entries.bin"
            );
        }
    }
    let from = starts.iter().copied().min().unwrap_or(size);
    for index in from..size {
        if let Some(bytes) = read(index)? {
            for ((table, key_of), &start) in tables.iter().zip(&starts) {
                if let Some(key) = key_of(&bytes).filter(|_| index >= start) {
                    table.reindex(&key, index)?;
                }
            }
        }
        if (index + 1) % 1_000_000 == 0 {
            tracing::info!(indexed = index + 1, of = size, "indexing entries.bin");
        }
    }
    tables.iter().try_for_each(|(table, _)| table.sync_now())
}

/// The tables of completing entries, as opened.
struct CompletionTables {
    done_nonces: key_table::KeyTable,
    consumed_approvals: key_table::KeyTable,
}

/// Opens the done-nonce and consumed-approval tables (see "Nonces" and
/// "Approvals") and indexes the completing entries their headers do not
/// cover, in one scan. A lost file is indexed again from the start: every
/// completing entry's record says so, and every entry names its nonce and
/// the approval it consumed.
fn open_completion_tables(
    segments: &Segments,
    config: &StoreConfig,
    damage: &Arc<DamageLog>,
) -> Result<CompletionTables, StoreError> {
    again_if_damaged(|| {
        let done_nonces = open_table(&config.path, key_table::DONE_NONCES, damage)?;
        let consumed_approvals = open_table(&config.path, key_table::CONSUMED_APPROVALS, damage)?;
        let nonce_key_of = |bytes: &[u8]| (config.nonce_key_of)(bytes);
        let approval_key_of =
            |bytes: &[u8]| (config.approval_key_of)(bytes).map(String::into_bytes);
        index_past_headers(
            segments,
            |index| segments.completing_entry(index),
            &[
                (&done_nonces, &nonce_key_of),
                (&consumed_approvals, &approval_key_of),
            ],
        )?;
        Ok(CompletionTables {
            done_nonces,
            consumed_approvals,
        })
    })
}

/// The key table `name` in `dir`, in the store's shape.
fn open_table(
    dir: &Path,
    name: &'static str,
    damage: &Arc<DamageLog>,
) -> Result<key_table::KeyTable, StoreError> {
    key_table::KeyTable::open(dir, name, key_table::SHAPE, Arc::clone(damage))
}

/// Opens the commit ring, and promotes its newest commit into sled when
/// it is newer than sled's head (a crash before a clean close), so that
/// everything after reads sled alone. Returns the ring with the commits it
/// holds.
///
/// Refuses, writing nothing: an `existing` store without its ring (its
/// newest head may have been there, and opening at sled's older head
/// would cut off committed entries), and a ring whose newer head ends past
/// `entries.bin` (a ring that does not belong with these files, such as
/// one left over a restored older copy).
fn open_ring(
    db: &sled::Db,
    meta: &sled::Tree,
    dir: &Path,
    log_file: &File,
    existing: bool,
) -> Result<(CommitRing, Vec<RingCommit>), StoreError> {
    if existing && !dir.join(commit_ring::FILE).exists() {
        return Err(StoreError::Corrupt(format!(
            "{} is missing: this store's newest head may be there, and opening without it \
             would cut off committed entries; restore it with the rest of the directory",
            commit_ring::FILE
        )));
    }
    let (ring, held) = CommitRing::open(dir)?;
    let sled_size = read_head(meta)?.map_or(0, |h| h.size);
    if let Some(lost) = held.iter().find(|c| c.sled_size > sled_size) {
        return Err(StoreError::Corrupt(format!(
            "sled's head holds {sled_size} entries, but {} was written when sled durably held \
             {}: sled lost committed transactions (its log db/db is damaged); refusing to start",
            commit_ring::FILE,
            lost.sled_size
        )));
    }
    if let Some(newest) = held.last() {
        let entries_len = std::fs::metadata(dir.join("entries.bin")).map_or(0, |m| m.len());
        if newest.size() > sled_size && newest.mark.entries_end > entries_len {
            return Err(StoreError::Corrupt(format!(
                "{} holds a head of {} entries ending at byte {} of entries.bin, which has {} \
                 bytes: the ring does not belong with these files",
                commit_ring::FILE,
                newest.size(),
                newest.mark.entries_end,
                entries_len
            )));
        }
        if promote_if_newer(db, meta, log_file, newest)? {
            tracing::info!(
                size = newest.size(),
                "the commit ring held a newer head than sled: copied it into sled"
            );
        }
    }
    Ok((ring, held))
}

/// Reads the reservation journal once the key tables are whole, and
/// opens it holding the counters (sled's `counters` tree overlaid with the
/// journal's counter records, see [`super::counters`]) and the
/// reservations still in flight: a record whose
/// nonce is not done (`nonces.tab`, confirmed against the entry) and
/// whose exec_id no entry carries (`exec_ids.tab`, confirmed) — an entry
/// that resolved it (completed or released the nonce) would. Refuses,
/// writing nothing, a store without its journal (the reservations in
/// flight at a crash are there; a new store's is created before its
/// segments mark) and a damaged journal.
fn open_journal(
    segments: &Segments,
    exec_table: &key_table::KeyTable,
    done_nonces: &key_table::KeyTable,
    counters_tree: &sled::Tree,
    config: &StoreConfig,
) -> Result<(Journal, InFlight, Counters), StoreError> {
    let dir = &config.path;
    if !dir.join(journal::FILE).exists() {
        return Err(StoreError::Corrupt(format!(
            "{} is missing: the reservations in flight at the last stop are there, and \
             opening without it could run their handlers again; restore it with the rest of \
             the directory",
            journal::FILE
        )));
    }
    let scanned = Journal::read(dir)?;
    let (counter_records, reservations): (Vec<&JournalRecord>, Vec<&JournalRecord>) = scanned
        .records
        .iter()
        .partition(|r| counters::is_counter_record(r));
    let (counters, newest) = Counters::load(counters_tree, counter_records.into_iter())?;
    // A counter's newest record is needed for good: its attempt's exec_id
    // is "".
    let mut live: Vec<(journal::Attempt, JournalRecord)> = newest
        .into_iter()
        .map(|r| ((r.key.clone(), String::new()), r))
        .collect();
    let mut in_flight = Vec::new();
    for record in reservations {
        let pending = journal::pending_of(record)?;
        let done = done_nonces.find(&record.key, |index| {
            Ok(segments
                .completing_entry(index)?
                .filter(|b| (config.nonce_key_of)(b).as_deref() == Some(record.key.as_slice()))
                .map(|_| index))
        })?;
        let resolved = exec_table.find(pending.exec_id.as_bytes(), |index| {
            Ok(segments.entry(index)?.and_then(|(bytes, _)| {
                ((config.exec_id_of)(&bytes).as_deref() == Some(pending.exec_id.as_str()))
                    .then_some(index)
            }))
        })?;
        if done.is_none() && resolved.is_none() {
            live.push((
                (record.key.clone(), pending.exec_id.clone()),
                record.clone(),
            ));
            in_flight.push((record.key.clone(), pending));
        }
    }
    let journal = Journal::open(dir, &scanned, live)?;
    Ok((journal, InFlight::of(in_flight), counters))
}

/// Files in sled's checkpoint history the checkpoints of ring commits it
/// lacks (a crash can lose a ring commit's checkpoint when sled's
/// background flush made a later transaction durable first), each only if
/// the tree at its size has its root.
pub(super) fn restore_ring_checkpoints(
    db: &sled::Db,
    segments: &Segments,
    held: &[RingCommit],
    log_file: &File,
) -> Result<(), StoreError> {
    let checkpoints = db.open_tree("checkpoints")?;
    let mut restored = false;
    for commit in held.iter().filter(|c| c.size() <= segments.visible()) {
        let key = commit.size().to_be_bytes();
        if checkpoints.contains_key(key)? || segments.tree_root(commit.size())? != commit.head.root
        {
            continue;
        }
        checkpoints.insert(key, commit.checkpoint.as_bytes())?;
        restored = true;
    }
    if restored {
        sync_sled(db, log_file)?;
    }
    Ok(())
}

/// Writes a ring commit into sled (head, mark, checkpoint) as one
/// transaction and makes it durable — only if it is newer than sled's
/// head. Sled's can be the newer even when the ring's was written later
/// than sled's last *durable* head: a cycle written through sled after the
/// ring's whose sync failed is still in sled's memory, with the rest of its
/// transaction (pending records removed, approvals consumed); its head
/// must not be replaced by an older one while the rest stays. Returns
/// whether it wrote.
pub(super) fn promote_if_newer(
    db: &sled::Db,
    meta: &sled::Tree,
    log_file: &File,
    commit: &RingCommit,
) -> Result<bool, StoreError> {
    if read_head(meta)?.is_some_and(|h| h.size >= commit.size()) {
        return Ok(false);
    }
    let checkpoints = db.open_tree("checkpoints")?;
    (meta, &checkpoints)
        .transaction(|(tm, tk)| {
            tm.insert(META_HEAD, commit.head.encode().to_vec())?;
            tm.insert(SegmentsMark::META_KEY, commit.mark.encode().to_vec())?;
            tk.insert(
                commit.size().to_be_bytes().to_vec(),
                commit.checkpoint.as_bytes(),
            )?;
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        })
        .map_err(reservations::tx_error)?;
    sync_sled(db, log_file)?;
    Ok(true)
}
