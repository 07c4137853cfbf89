//! Durable storage: sled for what is looked up by key, and append-only
//! segment files ([`segments`]) for the entries and Merkle stored hashes,
//! which are read by position. The only module that imports sled.
//!
//! It stores bytes under keys and makes a batch durable; it does not know
//! what an entry means, never signs, and never decides what to append.
//!
//! # Files (see [`segments`], [`key_table`], [`commit_ring`])
//!
//! `entries.bin` (signature ‖ entry bytes, by index), `entries.idx` (record
//! offsets) and `hashes.bin` (stored hashes, Go `sumdb/tlog` layout); and
//! three hash tables ([`key_table`]) derived from `entries.bin` and written
//! after each commit: `exec_ids.tab` (exec_id → index), `nonces.tab`
//! (done nonce → index of the entry that completed it) and `approvals.tab`
//! (consumed approval → index of the entry that consumed it).
//!
//! # Nonces
//!
//! A nonce in flight is a record in sled's `pending` tree; a done nonce is
//! the entry that completed it, found through `nonces.tab` and confirmed
//! against that entry: its record in `entries.bin` carries the completion
//! flag and the entry names the same tenant and nonce. A nonce leaves `pending` in the sled transaction that commits its entry, and is
//! put in `nonces.tab` right after it; every reservation takes the done
//! check and its sled transaction under one lock that each commit also
//! holds until its inserts are in, so none sees a nonce in neither place.
//!
//! # Approvals
//!
//! Approvals follow their nonces. One held by a reservation in flight is a
//! record in sled's `approvals` tree, written in the reservation's
//! transaction and removed in the transaction that commits the entry
//! completing the nonce; a claim's ([`Store::claim`]) is never in sled.
//! Once consumed by a committed entry, the approval is that entry: the
//! entry completes its nonce and names the approval, and `approvals.tab`
//! maps the approval's key to it, confirmed against the entry
//! (`approval_key_of`), taken under the same lock as the done nonces. An
//! approval whose entry does not name it (an attempt recorded as
//! `interrupted` at restart) keeps its record in sled, consumed for good.
//! (sled 0.34 keeps in memory every node it inserted a key into, so
//! consumed approvals live in a table file, not as sled keys.)
//!
//! # sled trees (key → value; all integers big-endian)
//!
//! | tree          | key                    | value                                   |
//! |---------------|------------------------|-----------------------------------------|
//! | `checkpoints` | tree size `u64`        | signed checkpoint note (see [`HISTORY_STRIDE`]) |
//! | `meta`        | name                   | origin, verifier key, head, segments mark, entries dictionary |
//! | `pending`     | tenant ‖ 0 ‖ nonce     | nonce record of an attempt in flight (only here until its entry commits) |
//! | `approvals`   | approval consume key   | nonce key of the reservation holding it (in flight), or that consumed it when its entry does not name it |
//! | `counters`    | name                   | `u64` (the `counter` handler)           |
//! | `cosignatures`| tree size `u64`        | checkpoint note with witness cosignatures |
//!
//! # Durability
//!
//! A batch's entries and hashes are first written to the segment files and
//! `entries.bin` is made durable (fdatasync); then the rest of the batch
//! and the new head (with where `entries.bin` ends) are applied as one
//! sled transaction — or, for a batch that changes nothing else in sled,
//! written to the commit ring ([`commit_ring`], `commits.ring`) at the
//! sync: one slot and one fdatasync. The committed head is the newer of
//! sled's and the ring's. sled 0.34's `flush()` writes its log with
//! `sync_file_range`, which neither flushes the disk cache nor the file's
//! size metadata, and sled leaves the real `fsync` to a background thread
//! every 500 ms; so [`Store::commit`] calls `flush()` and then `fdatasync`
//! on sled's log file (`<dir>/db`) itself, through a descriptor it keeps
//! open. Only after that returns is the batch durable and may any caller be
//! answered. A crash between the two leaves segment bytes that no head
//! covers; they are cut off at open. Values are bounded (see
//! [`MAX_VALUE_LEN`]) so that no sled node grows past sled's blob threshold:
//! sled writes blob files without a sync, and this fsync would not cover them.

mod codec;
mod commit_ring;
mod cosignatures;
mod faults;
mod hash_cache;
mod hash_reader;
mod key_table;
mod open;
pub mod reservations;
pub mod segments;
mod tokens;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sled::transaction::Transactional;

pub use cosignatures::KEEP_COSIGNED;
pub use faults::{FaultPoint, FaultStall};
pub use hash_reader::{OverlayReader, StoreHashReader};
pub use reservations::{
    nonce_key, Completion, Held, PendingNonce, Reservation, ReservationRequest,
};

use crate::core::hash::Hash;
use commit_ring::{CommitRing, RingCommit};
use segments::{Segments, SegmentsMark};

/// Largest value the store accepts: an entry's content frame in
/// `entries.bin` (also the most a read decompresses), or a sled value — a
/// sled node holds up to 17 values and sled moves a node larger than a
/// quarter segment (4 MiB) into a blob file that it writes *without* fsync;
/// 17 × 200 KiB stays below that. (The service's body limit, at most
/// 64 KiB, keeps content near 130 KiB.)
pub const MAX_VALUE_LEN: usize = 200 * 1024;

/// sled segment size: its blob threshold is a quarter of this.
const SEGMENT_SIZE: usize = 16 << 20;

/// Storage failures. A failed batch commit is fail-stop for the writer (it
/// stops rather than guess what reached the disk); a failed read or
/// reservation fails only its own request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A file operation failed (open, fsync).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes are not what this code wrote.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The directory holds a store in another format than this build's
    /// (format 0: a development store that recorded none). Nothing was
    /// written to it.
    #[error(
        "the store is in store format {found}; this OpenExec opens store format {} only \
         (another format needs a migration command, never a conversion at open)",
        segments::STORE_FORMAT
    )]
    UnsupportedFormat {
        /// The format the store's segments mark records.
        found: u64,
    },
    /// A value exceeds [`MAX_VALUE_LEN`].
    #[error("value of {0} bytes exceeds the store limit")]
    TooLarge(usize),
    /// A key table holds as many tables as its header may claim.
    #[error("{0} is full ({1} tables)")]
    TableFull(&'static str, u32),
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the sled database.
    pub path: PathBuf,
    /// sled page-cache size in bytes (sled's default of 1 GiB is too much
    /// for a sidecar; 64 MiB is the default here).
    pub cache_bytes: u64,
    /// The exec_id an entry's bytes are indexed under (see
    /// [`crate::core::entry::indexed_exec_id`], the default): used to index
    /// entries again at open and to check a lookup's candidates. The store
    /// itself never interprets entry bytes.
    pub exec_id_of: ExecIdOf,
    /// The nonce key an entry's bytes record (see
    /// [`crate::core::entry::entry_nonce_key`], the default): used to index
    /// completing entries again at open and to check a done-nonce
    /// candidate.
    pub nonce_key_of: NonceKeyOf,
    /// The key of the approval an entry's bytes name (see
    /// [`crate::core::entry::entry_approval_key`], the default): used to
    /// index completing entries again at open and to check a
    /// consumed-approval candidate.
    pub approval_key_of: ApprovalKeyOf,
}

/// Reads the exec_id to index an entry under from its bytes.
pub type ExecIdOf = fn(&[u8]) -> Option<String>;
/// Reads the nonce key of the attempt an entry records from its bytes.
pub type NonceKeyOf = fn(&[u8]) -> Option<Vec<u8>>;
/// Reads the key of the approval an entry names from its bytes.
pub type ApprovalKeyOf = fn(&[u8]) -> Option<String>;

impl StoreConfig {
    /// Defaults for a directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache_bytes: 64 << 20,
            exec_id_of: crate::core::entry::indexed_exec_id,
            nonce_key_of: crate::core::entry::entry_nonce_key,
            approval_key_of: crate::core::entry::entry_approval_key,
        }
    }
}

/// The committed head of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Number of entries.
    pub size: u64,
    /// Root hash of the tree of `size` entries.
    pub root: Hash,
    /// Leaf hash of the last entry (the next entry's `prev`).
    pub last_leaf: Hash,
}

impl Head {
    const LEN: usize = 8 + 32 + 32;

    fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..40].copy_from_slice(self.root.as_bytes());
        out[40..].copy_from_slice(self.last_leaf.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != Self::LEN {
            return Err(StoreError::Corrupt(
                "head record has the wrong length".into(),
            ));
        }
        let corrupt = |_| StoreError::Corrupt("head record".into());
        let size = u64::from_be_bytes(bytes[..8].try_into().map_err(corrupt)?);
        let root =
            Hash::from_slice(&bytes[8..40]).map_err(|_| StoreError::Corrupt("head root".into()))?;
        let last_leaf =
            Hash::from_slice(&bytes[40..]).map_err(|_| StoreError::Corrupt("head leaf".into()))?;
        Ok(Self {
            size,
            root,
            last_leaf,
        })
    }
}

/// An entry's canonical bytes and the log's 64-byte signature over them.
pub type SignedEntryBytes = (Vec<u8>, [u8; 64]);

/// One entry as written by the sequencer.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Its index.
    pub index: u64,
    /// Its canonical bytes.
    pub bytes: Vec<u8>,
    /// The log's signature over it.
    pub signature: [u8; 64],
    /// The exec_id to index it under (`None` for a replay, whose exec_id
    /// is the original attempt's and must keep pointing at the original).
    pub index_exec_id: Option<String>,
    /// Cleartext content to keep beside it (deletable), if any.
    pub content: Option<Vec<u8>>,
    /// The nonce this entry completes, if the attempt held one.
    pub completion: Option<Completion>,
    /// The approval this entry consumed: for an entry that completes its
    /// nonce and names an approval, the key `approval_key_of` reads from
    /// its bytes (the sequencer takes it from the entry it serialized).
    pub approval_key: Option<String>,
}

/// Everything one sequencer batch writes, atomically.
#[derive(Debug, Default)]
pub struct BatchWrite {
    /// New entries, in index order.
    pub entries: Vec<StoredEntry>,
    /// New stored Merkle hashes: (stored-hash index, hash).
    pub hashes: Vec<(u64, Hash)>,
    /// The new head.
    pub head: Option<Head>,
    /// The signed checkpoint of the new head: (size, note text).
    pub checkpoint: Option<(u64, String)>,
}

/// What [`Store::write_cycle`] decided and how to make it durable.
pub struct CycleWrite {
    /// The answer to each reservation, in order.
    pub reserved: Vec<Result<Reservation, StoreError>>,
    /// To pass to [`Store::sync_cycle`] before anyone acts on the cycle.
    pub sync: CycleSync,
}

/// How a written cycle is made durable ([`Store::sync_cycle`]).
#[derive(Debug, Default)]
pub struct CycleSync {
    batch: bool,
    reservations: bool,
    /// The batch's commit, when it goes to the commit ring.
    ring: Option<RingCommit>,
}

/// The ring commit of a batch, when the batch changes nothing in sled but
/// the head and the checkpoint: every nonce it completes was claimed (no
/// pending record, nor an approval's, to remove), and its checkpoint fits
/// a ring slot.
fn ring_commit(batch: &BatchWrite, mark: SegmentsMark) -> Option<RingCommit> {
    let only_head = batch.entries.iter().all(|e| {
        e.completion
            .as_ref()
            .is_none_or(|c| c.held == Held::Claimed)
    });
    match (&batch.head, &batch.checkpoint) {
        (Some(head), Some((size, note)))
            if only_head && *size == head.size && CommitRing::fits(note) =>
        {
            Some(RingCommit {
                head: *head,
                mark,
                checkpoint: note.clone(),
            })
        }
        _ => None,
    }
}

/// The files of the store directory `from` as they are now, copied with
/// `cp -a`: what a crash at this moment would leave. Tests only.
#[cfg(test)]
fn crash_image(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("a temporary directory");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to.path())
        .status()
        .expect("cp runs");
    assert!(copied.success(), "cp -a {}", from.display());
    to
}

/// sled's committed head.
fn read_head(meta: &sled::Tree) -> Result<Option<Head>, StoreError> {
    meta.get(META_HEAD)?.map(|v| Head::decode(&v)).transpose()
}

/// The sled-backed store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    segments: Segments,
    exec_table: Arc<key_table::KeyTable>,
    /// Makes `exec_table` durable in the background (stops when dropped).
    _exec_table_syncer: key_table::Syncer,
    exec_id_of: ExecIdOf,
    done_nonces: Arc<key_table::KeyTable>,
    /// Makes `done_nonces` durable in the background (stops when dropped).
    _done_nonces_syncer: key_table::Syncer,
    nonce_key_of: NonceKeyOf,
    /// Consumed approvals (see "Approvals").
    consumed_approvals: Arc<key_table::KeyTable>,
    /// Makes `consumed_approvals` durable in the background.
    _consumed_approvals_syncer: key_table::Syncer,
    approval_key_of: ApprovalKeyOf,
    /// Held by each reservation from its done checks to the end of its
    /// sled transaction, and by each commit from its transaction until its
    /// nonces and approvals are in their tables (see "Nonces").
    nonce_order: Mutex<()>,
    checkpoints: sled::Tree,
    meta: sled::Tree,
    pending: sled::Tree,
    approvals: sled::Tree,
    counters: sled::Tree,
    /// Injected failures (tests only).
    faults: faults::Faults,
    /// sled's log file, kept open so each commit can `fdatasync` it.
    log_file: File,
    /// Where batches that change nothing else in sled commit.
    ring: CommitRing,
    /// The ring's last commit while it is newer than sled's head.
    ring_ahead: Mutex<Option<RingCommit>>,
    /// The size of the newest checkpoint a ring commit filed in sled's
    /// history, or of the newest found there at open.
    history_filed: AtomicU64,
    path: PathBuf,
}

/// Ring-committed batches file their checkpoint in sled's history only
/// when it is this many entries past the newest one there. Each sled
/// insert of a new key stays in the process's memory (sled 0.34 keeps the
/// nodes it inserted into beyond its cache capacity): one checkpoint per
/// batch grew the server by ~730 bytes per append when requests came one
/// at a time. The newest checkpoint is never lost by this: the ring holds
/// it, and open and a clean close file it ([`open::restore_ring_checkpoints`],
/// [`open::promote_if_newer`]); any other size's can be signed again from the
/// tree (checkpoints are deterministic).
pub const HISTORY_STRIDE: u64 = 4096;

const META_HEAD: &[u8] = b"head";
/// The dictionary `entries.bin` is compressed with ([`codec`]).
const META_ENTRIES_DICT: &[u8] = b"entries_dict";
impl Store {
    /// Directory of the store.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The committed head, or `None` for a store never written: the newer
    /// of sled's and the commit ring's.
    pub fn head(&self) -> Result<Option<Head>, StoreError> {
        let ring = self.inner.lock_ring_ahead()?.as_ref().map(|c| c.head);
        let sled = read_head(&self.inner.meta)?;
        Ok(match (ring, sled) {
            (Some(r), Some(s)) if s.size >= r.size => Some(s),
            (Some(r), _) => Some(r),
            (None, s) => s,
        })
    }

    /// A metadata value.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.meta.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Sets metadata values and makes them durable.
    pub fn set_meta(&self, values: &[(&str, &[u8])]) -> Result<(), StoreError> {
        for (name, value) in values {
            self.inner.meta.insert(name.as_bytes(), *value)?;
        }
        self.sync()
    }

    /// Writes one batch atomically and makes it durable before returning.
    pub fn commit(&self, batch: &BatchWrite) -> Result<(), StoreError> {
        let written = self.write_cycle(Some(batch), &[])?;
        self.sync_cycle(&written.sync)?;
        self.index_exec_ids(batch)
    }

    /// Indexes the exec_ids of a batch written by [`Store::write_cycle`]
    /// in `exec_ids.tab`. The ledger's syncer calls it after the batch's
    /// sync and before answering anyone, so that a receipt's exec_id can
    /// be looked up as soon as the receipt exists — and off the sequencer,
    /// whose cycle is the serial part of every append. Batches must be
    /// indexed in the order they were written (the table's header claims
    /// every entry below the last batch indexed, once synced; a crash
    /// before that is re-indexed from `entries.bin` at open).
    pub fn index_exec_ids(&self, batch: &BatchWrite) -> Result<(), StoreError> {
        let Some(last) = batch.entries.last() else {
            return Ok(());
        };
        self.inner.exec_table.insert_batch(
            batch.entries.iter().filter_map(|e| {
                e.index_exec_id
                    .as_deref()
                    .map(|id| (id.as_bytes(), e.index))
            }),
            last.index + 1,
        )
    }

    /// Writes one cycle of the ledger writer: the batch (if any) and every
    /// reservation of the cycle, each reservation answered as
    /// [`Store::reserve`] would. Not yet durable: the writer calls
    /// [`Store::sync_cycle`] with the returned [`CycleSync`] before anyone
    /// acts on it.
    ///
    /// A cycle that changes sled beyond the head and checkpoint (a
    /// reservation, a pending record leaving, an approval consumed, the
    /// entry dictionary) is *one* sled transaction: each sled transaction
    /// seals and writes sled's I/O buffer, so a transaction per reservation
    /// made those writes, not the fdatasync, most of the device time of
    /// `POST /execute`. Any other batch commits in the commit ring at the
    /// sync instead ([`commit_ring`]), and writes nothing to sled here.
    ///
    /// A reservation that cannot be encoded (or whose injected fault
    /// fires) fails alone and writes nothing; a failure of the transaction
    /// fails the whole cycle.
    pub fn write_cycle(
        &self,
        batch: Option<&BatchWrite>,
        reservations: &[ReservationRequest<'_>],
    ) -> Result<CycleWrite, StoreError> {
        if batch.is_some() {
            self.inner.faults.check(FaultPoint::CommitWrite)?;
        }
        // The segment files first, durable before the head that covers them.
        let staged = batch
            .map(|b| self.inner.segments.stage(b, &self.inner.faults))
            .transpose()?;
        let dictionary = staged
            .filter(|s| s.new_dictionary)
            .and_then(|_| self.inner.segments.dictionary());
        let ring = match (batch, staged) {
            (Some(b), Some(s)) if reservations.is_empty() && dictionary.is_none() => {
                ring_commit(b, s.mark)
            }
            _ => None,
        };
        let batches = batch
            .filter(|_| ring.is_none())
            .map(|b| SledBatches::new(b, staged.map(|s| s.mark), dictionary));
        let _order = self.lock_nonce_order()?;
        // A nonce (an approval) this batch completes (consumes) is done for
        // the cycle's reservations, though `nonces.tab` (`approvals.tab`)
        // takes it only after the commit.
        let completed: HashMap<&[u8], u64> = batch
            .iter()
            .flat_map(|b| &b.entries)
            .filter_map(|e| e.completion.as_ref().map(|c| (c.key.as_slice(), e.index)))
            .collect();
        let consumed: HashMap<&[u8], u64> = batch
            .iter()
            .flat_map(|b| &b.entries)
            .filter_map(|e| e.approval_key.as_ref().map(|k| (k.as_bytes(), e.index)))
            .collect();
        let mut results: Vec<Result<Reservation, StoreError>> = Vec::new();
        let mut encoded = Vec::new();
        for r in reservations {
            let one = self
                .inner
                .faults
                .check(FaultPoint::ReserveWrite)
                .and_then(|()| reservations::Encoded::new(*r));
            match one {
                Ok(mut e) => {
                    e.done = match completed.get(r.key) {
                        Some(&index) => Some(index),
                        None => self.done_index(r.key)?,
                    };
                    if let Some(ak) = e.approval_key {
                        e.approval_done = consumed.contains_key(ak.as_bytes())
                            || self.approval_done(ak)?.is_some();
                    }
                    encoded.push(e);
                    // Placeholder, replaced by the transaction's answer.
                    results.push(Ok(Reservation::Reserved));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let found = if batches.is_some() || !encoded.is_empty() {
            self.apply_in_sled(batches.as_ref(), &encoded)?
        } else {
            Vec::new()
        };
        if let (Some(staged), Some(batch)) = (&staged, batch) {
            self.inner.segments.publish(staged, &batch.hashes)?;
            // Before the lock is let go (see "Nonces").
            self.inner.done_nonces.insert_batch(
                completed.iter().map(|(&key, &index)| (key, index)),
                staged.count(),
            )?;
            self.inner.consumed_approvals.insert_batch(
                consumed.iter().map(|(&key, &index)| (key, index)),
                staged.count(),
            )?;
        }
        let mut found = found.into_iter();
        for slot in results.iter_mut().filter(|r| r.is_ok()) {
            if let Some(f) = found.next() {
                *slot = f.decode();
            }
        }
        let sync = CycleSync {
            batch: batch.is_some(),
            reservations: results
                .iter()
                .any(|r| matches!(r, Ok(Reservation::Reserved))),
            ring,
        };
        Ok(CycleWrite {
            reserved: results,
            sync,
        })
    }

    /// The sled transaction of a cycle: the batch, then the reservations
    /// (which found what the batch completes before it, in `write_cycle`).
    fn apply_in_sled(
        &self,
        batches: Option<&SledBatches>,
        encoded: &[reservations::Encoded],
    ) -> Result<Vec<reservations::Found>, StoreError> {
        let i = &self.inner;
        (&i.checkpoints, &i.meta, &i.pending, &i.approvals)
            .transaction(|(tk, tm, tp, ta)| {
                if let Some(b) = batches {
                    tp.apply_batch(&b.pending)?;
                    ta.apply_batch(&b.approvals)?;
                    tk.apply_batch(&b.checkpoints)?;
                    tm.apply_batch(&b.meta)?;
                }
                encoded
                    .iter()
                    .map(|r| reservations::reserve_in(tp, ta, r))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(reservations::tx_error)
    }

    /// Makes a written cycle durable: its commit in the ring (one `pwrite`
    /// and `fdatasync`), or sled's `flush()` and a real `fdatasync` of its
    /// log — once per cycle for the batch and the reservations together,
    /// so that both share one device wait.
    pub fn sync_cycle(&self, sync: &CycleSync) -> Result<(), StoreError> {
        if sync.batch {
            self.inner.faults.check(FaultPoint::CommitSync)?;
        }
        if sync.reservations {
            self.inner.faults.check(FaultPoint::ReserveSync)?;
        }
        if let Some(commit) = &sync.ring {
            return self.commit_in_ring(commit);
        }
        if sync.batch || sync.reservations {
            self.sync()?;
        }
        if sync.batch {
            // sled's head is the newest again.
            *self.inner.lock_ring_ahead()? = None;
        }
        Ok(())
    }

    /// Commits a batch in the ring, then files its checkpoint in sled's
    /// history if it is [`HISTORY_STRIDE`] entries past the newest there
    /// (durable with sled's next flush; until then the ring's slots hold
    /// the newest few, filed again at open if a crash lost them —
    /// [`open::restore_ring_checkpoints`]).
    fn commit_in_ring(&self, commit: &RingCommit) -> Result<(), StoreError> {
        self.inner.ring.write(commit)?;
        let filed = &self.inner.history_filed;
        if commit.size() >= filed.load(Ordering::Relaxed).saturating_add(HISTORY_STRIDE) {
            self.inner
                .checkpoints
                .insert(commit.size().to_be_bytes(), commit.checkpoint.as_bytes())?;
            filed.store(commit.size(), Ordering::Relaxed);
        }
        *self.inner.lock_ring_ahead()? = Some(commit.clone());
        Ok(())
    }

    /// Makes the reservations written so far durable (`flush()` + a real
    /// fdatasync).
    pub fn sync_reservations(&self) -> Result<(), StoreError> {
        self.sync_cycle(&CycleSync {
            batch: false,
            reservations: true,
            ring: None,
        })
    }

    /// `flush()` then a real `fdatasync` of sled's log file.
    fn sync(&self) -> Result<(), StoreError> {
        sync_sled(&self.inner.db, &self.inner.log_file)
    }

    /// Entry bytes and signature at `index`.
    pub fn entry(&self, index: u64) -> Result<Option<SignedEntryBytes>, StoreError> {
        self.inner.segments.entry(index)
    }

    /// Index of the entry with this exec_id.
    pub fn index_of_exec_id(&self, exec_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.entry_of_exec_id(exec_id)?.map(|(index, _)| index))
    }

    /// The entry with this exec_id, and its index: the table's candidates,
    /// each checked against the entry it points at.
    pub fn entry_of_exec_id(
        &self,
        exec_id: &str,
    ) -> Result<Option<(u64, SignedEntryBytes)>, StoreError> {
        self.inner.exec_table.find(exec_id.as_bytes(), |index| {
            Ok(self
                .entry(index)?
                .filter(|(bytes, _)| (self.inner.exec_id_of)(bytes).as_deref() == Some(exec_id))
                .map(|entry| (index, entry)))
        })
    }

    /// The index of the entry that completed the nonce `key`, if it is
    /// done: the table's candidates, each checked against its entry (see
    /// "Nonces"). Callers hold [`Inner::nonce_order`].
    fn done_index(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        let i = &self.inner;
        i.done_nonces.find(key, |index| {
            Ok(i.segments
                .completing_entry(index)?
                .filter(|b| (i.nonce_key_of)(b).as_deref() == Some(key))
                .map(|_| index))
        })
    }

    /// The index of the entry that consumed the approval `key`, if a
    /// committed entry did: the table's candidates, each checked against
    /// its entry (see "Approvals"). Callers hold [`Inner::nonce_order`].
    fn approval_done(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let i = &self.inner;
        i.consumed_approvals.find(key.as_bytes(), |index| {
            Ok(i.segments
                .completing_entry(index)?
                .filter(|b| (i.approval_key_of)(b).as_deref() == Some(key))
                .map(|_| index))
        })
    }

    /// Whether entry `index`'s record says it completed its nonce (see
    /// "Nonces").
    pub fn completes_nonce(&self, index: u64) -> Result<bool, StoreError> {
        self.inner.segments.completes(index)
    }

    /// The index of the entry that completed the nonce `key`, as a
    /// reservation would find it (`openexec audit` checks that a completing
    /// entry is its own nonce's answer).
    pub fn done_nonce(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        let _order = self.lock_nonce_order()?;
        self.done_index(key)
    }

    /// Takes the lock that orders reservations after commits.
    fn lock_nonce_order(&self) -> Result<std::sync::MutexGuard<'_, ()>, StoreError> {
        self.inner
            .nonce_order
            .lock()
            .map_err(|_| StoreError::Corrupt("nonce lock poisoned".into()))
    }

    /// Cleartext content stored beside entry `index`, in its record in
    /// `entries.bin`.
    pub fn content(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.segments.content(index)
    }

    /// Erases the cleartext content kept beside entry `index`, durably and
    /// in place in its record. The log is unchanged: entries hold only
    /// salted commitments to content. Returns whether there was any.
    pub fn erase_content(&self, index: u64) -> Result<bool, StoreError> {
        self.inner.segments.erase_content(index)
    }

    /// The signed checkpoint of size `size`, if one was stored.
    pub fn checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        self.inner
            .checkpoints
            .get(size.to_be_bytes())?
            .map(|v| utf8(&v))
            .transpose()
    }

    /// The most recent stored checkpoint: (size, note).
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.inner
            .checkpoints
            .last()?
            .map(|(k, v)| Ok((decode_u64(&k)?, utf8(&v)?)))
            .transpose()
    }

    /// Every stored checkpoint, in size order.
    pub fn checkpoints(&self) -> impl Iterator<Item = Result<(u64, String), StoreError>> + '_ {
        self.checkpoints_up_to(u64::MAX)
    }

    /// Stored checkpoints of size at most `max_size`, in size order.
    pub fn checkpoints_up_to(
        &self,
        max_size: u64,
    ) -> impl Iterator<Item = Result<(u64, String), StoreError>> + '_ {
        self.inner
            .checkpoints
            .range(..=max_size.to_be_bytes())
            .map(|r| {
                let (k, v) = r?;
                Ok((decode_u64(&k)?, utf8(&v)?))
            })
    }

    /// One stored Merkle hash.
    pub fn stored_hash(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        self.inner.segments.hash(index)
    }

    /// Bytes on disk: what sled reports plus the segment files.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.size_on_disk()?
            + self.inner.segments.len_on_disk()?
            + self.inner.exec_table.len_on_disk()?
            + self.inner.done_nonces.len_on_disk()?
            + self.inner.consumed_approvals.len_on_disk()?)
    }
}

/// A [`BatchWrite`] as one sled batch per tree, built before the
/// transaction (whose closure may run more than once).
struct SledBatches {
    pending: sled::Batch,
    approvals: sled::Batch,
    checkpoints: sled::Batch,
    meta: sled::Batch,
}

impl SledBatches {
    fn new(batch: &BatchWrite, mark: Option<SegmentsMark>, dictionary: Option<&[u8]>) -> Self {
        let mut b = Self {
            pending: sled::Batch::default(),
            approvals: sled::Batch::default(),
            checkpoints: sled::Batch::default(),
            meta: sled::Batch::default(),
        };
        for e in &batch.entries {
            // A reservation's records leave sled with its entry; a claim
            // has none there (see "Approvals").
            let Some(Completion {
                key,
                held: Held::Reserved,
            }) = &e.completion
            else {
                continue;
            };
            b.pending.remove(key.as_slice());
            if let Some(ak) = &e.approval_key {
                b.approvals.remove(ak.as_bytes());
            }
        }
        if let Some((size, note)) = &batch.checkpoint {
            b.checkpoints
                .insert(size.to_be_bytes().to_vec(), note.as_bytes());
        }
        if let Some(head) = &batch.head {
            b.meta.insert(META_HEAD, head.encode().to_vec());
        }
        if let Some(mark) = mark {
            b.meta
                .insert(SegmentsMark::META_KEY, mark.encode().to_vec());
        }
        if let Some(dictionary) = dictionary {
            b.meta.insert(META_ENTRIES_DICT, dictionary);
        }
        b
    }
}

fn check_len(len: usize) -> Result<(), StoreError> {
    if len > MAX_VALUE_LEN {
        Err(StoreError::TooLarge(len))
    } else {
        Ok(())
    }
}

fn decode_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("u64 key or value".into()))?;
    Ok(u64::from_be_bytes(array))
}

fn utf8(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Corrupt("checkpoint is not UTF-8".into()))
}

impl Inner {
    fn lock_ring_ahead(&self) -> Result<std::sync::MutexGuard<'_, Option<RingCommit>>, StoreError> {
        self.ring_ahead
            .lock()
            .map_err(|_| StoreError::Corrupt("commit ring state lock poisoned".into()))
    }

    /// Copies the ring's last commit into sled if it is newer than sled's
    /// head ([`open::promote_if_newer`]), so that sled holds the newest head with
    /// the mark written next to it. Returns the committed size.
    fn promote_ring(&self) -> Result<u64, StoreError> {
        let ahead = self.lock_ring_ahead()?.take();
        if let Some(commit) = ahead {
            open::promote_if_newer(&self.db, &self.meta, &self.log_file, &commit)?;
        }
        Ok(read_head(&self.meta)?.map_or(0, |h| h.size))
    }
}

impl Inner {
    /// Makes the derived segment files durable up to `size` and records it.
    fn sync_derived_segments(&self, size: u64) -> Result<(), StoreError> {
        match self.segments.sync_derived(size)? {
            Some(mark) => commit_mark(&self.db, &self.meta, &self.log_file, mark),
            None => Ok(()),
        }
    }
}

impl Drop for Inner {
    /// A clean close makes the derived segment files and the key tables
    /// durable and records it, so that the next open has nothing to
    /// rebuild; a table's header claims no more than the committed head
    /// (a batch whose sync failed had its keys inserted).
    fn drop(&mut self) {
        let committed = self.promote_ring();
        let synced = committed
            .as_ref()
            .map_err(ToString::to_string)
            .and_then(|&size| self.sync_derived_segments(size).map_err(|e| e.to_string()));
        if let Err(e) = synced {
            tracing::warn!(error = %e, "could not sync the derived segment files at close; the next open rebuilds them");
        }
        for table in [
            &self.exec_table,
            &self.done_nonces,
            &self.consumed_approvals,
        ] {
            let closed = table.sync_now().and_then(|()| match &committed {
                Ok(size) => table.claim_at_most(*size),
                Err(_) => Ok(()),
            });
            if let Err(e) = closed {
                tracing::warn!(error = %e, "could not sync a key table at close; the next open indexes the rest again");
            }
        }
    }
}

/// Records a segments mark outside an append (after a rebuild at open, a
/// clean close, or a tamper) and makes it durable.
fn commit_mark(
    db: &sled::Db,
    meta: &sled::Tree,
    log_file: &File,
    mark: SegmentsMark,
) -> Result<(), StoreError> {
    meta.insert(SegmentsMark::META_KEY, mark.encode().to_vec())?;
    sync_sled(db, log_file)
}

/// `flush()` then a real `fdatasync` of sled's log file (see "Durability").
fn sync_sled(db: &sled::Db, log_file: &File) -> Result<(), StoreError> {
    db.flush()?;
    log_file.sync_data()?;
    Ok(())
}

/// fsync a directory so that newly created files in it survive a crash.
fn sync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)?.sync_all()?;
    Ok(())
}

impl Store {
    /// Arms an injected failure at `point`, after `successes_first` passes.
    /// For fault-injection tests; nothing else calls it.
    #[doc(hidden)]
    pub fn inject_fault(&self, point: FaultPoint, successes_first: u32) {
        self.inner.faults.arm(point, successes_first);
    }

    /// Arms an injected failure at `point` like [`Self::inject_fault`],
    /// and holds the failing operation until the returned stall is let go.
    /// For tests that act while that operation is under way.
    #[doc(hidden)]
    pub fn inject_stalled_fault(&self, point: FaultPoint, successes_first: u32) -> FaultStall {
        self.inner.faults.arm_stalled(point, successes_first)
    }

    /// Overwrites a raw value in one of the store's trees, bypassing every
    /// check, and syncs. Exists only so tamper tests and the tampering
    /// harness can corrupt a store on purpose; nothing else calls it.
    #[doc(hidden)]
    /// `entries` and `hashes` name the segment files (key: the index; an
    /// entry's value is signature ‖ bytes, re-encoded in place of the old);
    /// `nonces.tab` adds a slot to that table (value: the index, `u64`).
    pub fn tamper_raw(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if tree == key_table::DONE_NONCES {
            let table = &self.inner.done_nonces;
            let indexed = table.indexed()?;
            table.insert_batch(std::iter::once((key, decode_u64(value)?)), indexed)?;
            return table.sync_now();
        }
        // Tampering acts on sled's state: make it the newest first.
        self.inner.promote_ring()?;
        if tree == "entries" || tree == "hashes" {
            if let Some(mark) = self.inner.segments.tamper(tree, decode_u64(key)?, value)? {
                let i = &self.inner;
                commit_mark(&i.db, &i.meta, &i.log_file, mark)?;
            }
            return Ok(());
        }
        self.inner.db.open_tree(tree)?.insert(key, value)?;
        self.sync()
    }
}
