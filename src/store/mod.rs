//! Durable storage: sled for what is looked up by key, and append-only
//! segment files ([`segments`]) for the entries and Merkle stored hashes,
//! which are read by position. The only module that imports sled.
//!
//! It stores bytes under keys and makes a batch durable; it does not know
//! what an entry means, never signs, and never decides what to append.
//!
//! # Files (see [`segments`], [`key_table`], [`commit_ring`], [`reservations::journal`])
//!
//! `entries.bin` (signature ‖ entry bytes, by index), `entries.idx` (record
//! offsets) and `hashes.bin` (stored hashes, Go `sumdb/tlog` layout); three
//! hash tables ([`key_table`]) derived from `entries.bin` and written
//! after each commit: `exec_ids.tab` (exec_id → index), `nonces.tab`
//! (done nonce → index of the entry that completed it) and `approvals.tab`
//! (consumed approval → index of the entry that consumed it); the commit
//! ring (`commits.ring`); and the reservation journal (`reservations.log`:
//! the reservations made durable before their handlers ran, and the
//! values of the named counters, [`counters`]).
//!
//! # Nonces
//!
//! A nonce in flight is a reservation: a record in the journal, and in
//! memory ([`reservations::InFlight`], sized by the attempts in flight); a
//! done nonce is the entry that completed it, found through `nonces.tab`
//! and confirmed against that entry: its record in `entries.bin` carries
//! the completion flag and the entry names the same tenant and nonce.
//! The entry that carries a reservation's exec_id resolves it — completing
//! the nonce, or releasing it ([`Completion::released`]: no completion
//! flag, the nonce free again) — and nothing is written to the journal for
//! that: at open, a journal record is in flight iff its nonce is not done
//! and no entry carries its exec_id (both looked up once the tables are
//! whole). In memory the reservation ends when the batch holding its entry
//! is written, and the nonce is put in `nonces.tab` right after; every
//! reservation takes the done check and enters [`reservations::InFlight`]
//! under one lock that each commit also holds from then until its inserts
//! are in, so none sees a nonce in neither place.
//!
//! Why not sled (where format 1 kept them): sled 0.34 keeps in memory every
//! node it ever inserted a key into, so a record inserted and removed per
//! execution grew the process by hundreds of bytes per execution for life,
//! and each cycle with a reservation went through a sled transaction and
//! flush instead of the commit ring (see docs/ARCHITECTURE.md).
//!
//! # Approvals
//!
//! Approvals follow their nonces. One held by a reservation in flight is
//! held in memory with it (the journal record names it) and released with
//! it; a claim's ([`Store::claim`]) is held by the claim alone. Once
//! consumed by a committed entry, the approval is that entry: the entry
//! completes its nonce and names the approval, and `approvals.tab` maps
//! the approval's key to it, confirmed against the entry
//! (`approval_key_of`), taken under the same lock as the done nonces. An
//! approval whose entry does not name it (an attempt recorded as
//! `interrupted` at restart) is consumed for good: a record in sled's
//! `approvals`, written in the transaction of that entry's batch (which
//! therefore commits through sled, not the ring). A release neither
//! consumes its approval nor keeps it held.
//!
//! # sled trees (key → value; all integers big-endian)
//!
//! | tree          | key                    | value                                   |
//! |---------------|------------------------|-----------------------------------------|
//! | `checkpoints` | tree size `u64`        | signed checkpoint note (see [`HISTORY_STRIDE`]) |
//! | `meta`        | name                   | origin, verifier key, head, segments mark, entries dictionary |
//! | `approvals`   | approval consume key   | nonce key of the attempt that consumed it for good (its entry does not name it) |
//! | `counters`    | name                   | `u64`: a counter's value as an earlier build left it, read at open (the journal holds the newer) |
//! | `cosignatures`| tree size `u64`        | checkpoint note with witness cosignatures |
//! | `redactions`  | redacted entry index `u64` | where its content frame lies, the redaction entry's index, the reason ([`redactions`]) |
//!
//! # Durability
//!
//! A batch's entries and hashes are first written to the segment files and
//! `entries.bin` is made durable (fdatasync); the new head (with where
//! `entries.bin` ends) and the checkpoint are then written to the commit
//! ring ([`commit_ring`], `commits.ring`) at the cycle's sync: one slot and
//! one fdatasync — or, for the first batch with entries (which records the
//! entries dictionary) and a batch that consumes an approval for good,
//! applied as one sled transaction (flushed at the sync). The committed
//! head is the newer of sled's and the ring's. A cycle's reservations and
//! counter increments are appended to the journal as one frame at its
//! sync and fdatasynced, before the commit (an increment made before an
//! entry is queued is durable before that entry's head).
//! sled 0.34's `flush()` writes its log with `sync_file_range`, which
//! neither flushes the disk cache nor the file's size metadata, and sled
//! leaves the real `fsync` to a background thread every 500 ms; so the
//! store calls `flush()` and then `fdatasync` on sled's log file
//! (`<dir>/db`) itself, through a descriptor it keeps open. Only after the
//! sync returns is the cycle durable and may any caller be answered. A
//! crash before leaves segment bytes that no head covers; they are cut off
//! at open. Values are bounded (see [`MAX_VALUE_LEN`]) so that no sled node
//! grows past sled's blob threshold: sled writes blob files without a
//! sync, and this fsync would not cover them.

mod carry;
mod codec;
mod commit;
mod commit_ring;
mod cosignatures;
pub mod counters;
mod damage;
mod faults;
mod hash_cache;
mod hash_reader;
mod key_table;
pub mod migrate;
mod open;
mod redactions;
pub mod reservations;
pub mod segments;
mod tokens;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

pub use cosignatures::KEEP_COSIGNED;
pub use damage::Damaged;
pub use faults::{FaultPoint, FaultStall};
pub use hash_reader::{OverlayReader, StoreHashReader};
pub use redactions::RedactionRecord;
pub use reservations::writer::{JournalTicket, Then};
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
    /// Stored bytes fail their check (see [`damage`]): the read they
    /// served is refused.
    #[error("{0}")]
    Damaged(#[from] Damaged),
    /// The directory holds a store in another format than this build's
    /// (format 0: a store that records none). Nothing was written to it.
    #[error(
        "the store is in store format {found}; this OpenExec opens store format {} only \
         (opening never converts a store: for format 1 or 2, stop the service and run \
         `openexec migrate --db-url <the same --db-url>`)",
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
    /// A reservation journal frame could not be made durable.
    #[error("reservation journal: {0}")]
    Journal(String),
    /// A counter's increment refused (a name out of bounds, or too many
    /// counters; see [`counters`]).
    #[error("{0}")]
    Counter(String),
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
    /// To hand to [`Store::sync_cycle`] before anyone acts on the cycle.
    pub sync: CycleSync,
}

/// How a written cycle is made durable ([`Store::sync_cycle`]).
#[derive(Debug, Default)]
pub struct CycleSync {
    batch: bool,
    /// The batch's commit, when it goes to the commit ring (otherwise it
    /// was applied to sled, and the sync flushes sled).
    ring: Option<RingCommit>,
    /// The cycle's journal frame, handed to the journal's thread.
    journal: Option<reservations::writer::JournalTicket>,
    /// The reservations the batch releases ([`Completion::released`]):
    /// ended in memory once the batch is durable.
    released: Vec<reservations::journal::Attempt>,
    /// The reservations the batch resolved: the journal forgets them once
    /// the batch is durable.
    resolved: Vec<reservations::journal::Attempt>,
}

impl CycleSync {
    /// The ticket of the cycle's journal frame (none for a cycle built
    /// by hand, which [`Store::sync_cycle`] makes durable itself).
    #[must_use]
    pub fn journal(&self) -> Option<reservations::writer::JournalTicket> {
        self.journal.clone()
    }
}

/// The batch that appends `entries` (consecutive indexes, the first one
/// the size of the tree `store` holds hashes for) to `store`, with their
/// real stored hashes and the new head, as the sequencer would write it.
/// Tests only.
#[cfg(test)]
fn batch_appending(store: &Store, entries: Vec<StoredEntry>) -> BatchWrite {
    let mut batch = BatchWrite::default();
    let mut pending: std::collections::HashMap<u64, Hash> = std::collections::HashMap::new();
    let mut last_leaf = Hash::from_bytes([0; 32]);
    for entry in &entries {
        last_leaf = crate::core::hash::leaf_hash(&entry.bytes);
        let reader = OverlayReader {
            base: store,
            pending: &pending,
        };
        let stored =
            tlog_tiles::stored_hashes_for_record_hash(entry.index, last_leaf.into(), &reader)
                .expect("stored hashes");
        for (at, h) in (tlog_tiles::stored_hash_index(0, entry.index)..).zip(stored) {
            pending.insert(at, h.into());
            batch.hashes.push((at, h.into()));
        }
    }
    if let Some(last) = entries.last() {
        let size = last.index + 1;
        let reader = OverlayReader {
            base: store,
            pending: &pending,
        };
        batch.head = Some(Head {
            size,
            root: crate::core::proof::tree_root(&reader, crate::core::proof::TreeSize(size))
                .expect("root"),
            last_leaf,
        });
    }
    batch.entries = entries;
    batch
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
    /// The reservations in flight. Held by each reservation from its done
    /// checks until it is in flight, and by each commit from the moment it
    /// resolves its reservations until its nonces and approvals are in
    /// their tables (see "Nonces").
    nonce_order: Mutex<reservations::InFlight>,
    /// Journal records of reservations made since the last sync, for the
    /// next [`Store::sync_cycle`] to append.
    staged: Mutex<Vec<(String, reservations::journal::JournalRecord)>>,
    /// The reservation journal (`reservations.log`).
    journal: Arc<reservations::journal::Journal>,
    /// The journal's thread, which appends each cycle's frame.
    journal_writer: reservations::writer::JournalWriter,
    checkpoints: sled::Tree,
    meta: sled::Tree,
    approvals: sled::Tree,
    /// Redaction records ([`redactions`]).
    redactions: sled::Tree,
    /// Named counters, durable in the journal (see [`counters`]).
    counters: counters::Counters,
    /// Injected failures (tests only).
    faults: faults::Faults,
    /// Damage met in the files.
    damage: Arc<damage::DamageLog>,
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

    /// The first damage met since the store was opened (stored bytes that
    /// failed their check; the reads that met it were refused), if any.
    #[must_use]
    pub fn damage(&self) -> Option<Damaged> {
        self.inner.damage.first()
    }

    /// How many reads met damage since the store was opened.
    #[must_use]
    pub fn damage_count(&self) -> u64 {
        self.inner.damage.count()
    }

    /// The damage to derived files found and repaired since the store was
    /// opened (at open: a key table or the derived segment files derived
    /// again from `entries.bin`).
    #[must_use]
    pub fn repairs(&self) -> Vec<String> {
        self.inner.damage.repairs()
    }

    /// The commit-ring slots that are neither empty nor two equal copies
    /// that check: (slot, whether one copy still holds its commit). After
    /// a crash the newest slot can be one (torn); any other is damage.
    pub fn unsound_ring_slots(&self) -> Result<Vec<(u64, bool)>, StoreError> {
        CommitRing::unsound_slots(&self.inner.path)
    }

    /// Reads every slot of the three key tables: the first that fails its
    /// check in each, if any (`openexec audit`).
    pub fn first_damaged_slots(&self) -> Result<Vec<(&'static str, Option<u64>)>, StoreError> {
        [
            &self.inner.exec_table,
            &self.inner.done_nonces,
            &self.inner.consumed_approvals,
        ]
        .into_iter()
        .map(|table| Ok((table.name(), table.first_damaged_slot()?)))
        .collect()
    }

    /// The index of the entry that completed the nonce `key`, as a
    /// reservation would find it (`openexec audit` checks that a completing
    /// entry is its own nonce's answer).
    pub fn done_nonce(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        let _order = self.lock_nonce_order()?;
        self.done_index(key)
    }

    /// Takes the lock that orders reservations after commits, and holds
    /// the reservations in flight.
    fn lock_nonce_order(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, reservations::InFlight>, StoreError> {
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

    /// Whether entry `index`'s record kept content that was erased (told
    /// from a record that never kept any, for `openexec audit`).
    pub fn content_erased(&self, index: u64) -> Result<bool, StoreError> {
        self.inner.segments.content_erased(index)
    }

    /// Erases the cleartext content kept beside entry `index`, durably and
    /// in place in its record, with no redaction record: for the store's
    /// own tests only (every erase of a running store goes through a
    /// redaction, [`Self::begin_redaction`]). Returns whether there was any.
    #[cfg(test)]
    pub(crate) fn erase_content(&self, index: u64) -> Result<bool, StoreError> {
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
            + self.inner.consumed_approvals.len_on_disk()?
            + self.inner.journal.len_on_disk()?)
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
    crate::instruments::timed_sync(crate::instruments::SyncedFile::Sled, || {
        db.flush()?;
        log_file.sync_data()?;
        Ok(())
    })
}

/// fsync a directory so that newly created files in it survive a crash.
fn sync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)?.sync_all()?;
    Ok(())
}

impl Store {
    /// Arms an injected failure at `point`, after `successes_first` successful operations.
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
