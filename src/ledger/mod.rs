//! The ledger: the append-only, signed, hash-chained Merkle log on top of
//! the store — the embedded one, or PostgreSQL shared by several nodes
//! (`backend`, [`crate::pg`]). What follows is the embedded store's
//! path; PostgreSQL's writer is [`crate::pg`]'s.
//!
//! All writes go through one sequencer thread ([`sequencer`]) that batches
//! whatever is queued (group commit): entries, and the nonce reservations
//! of the execution layer, which share the batch's one fdatasync. Reads (entries, proofs, checkpoints)
//! go straight to the store: stored hashes below the committed size never
//! change, so readers need no lock against the writer.
//!
//! This layer never answers an append before the batch holding it is
//! durable, never rewrites a committed entry, and never signs a checkpoint
//! for a tree it has not just computed from stored hashes.

pub mod audit;
mod backend;
pub mod keyfile;
pub mod memo;
pub mod predecessor;
mod reads;
pub mod redact;
mod sequencer;
mod syncer;
mod witnessed;

pub(crate) use reads::make_receipt;
pub use witnessed::{Accepted, CosignError};

use backend::{mismatched, open_embedded, Backend, Embedded, Queued};
use reads::original_salts;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::core::checkpoint::CheckpointError;
use crate::core::cosignature::WitnessVerifier;
use crate::core::entry::{Entry, EntryDraft, EntryError};
use crate::core::proof::{prove_inclusion, LeafIndex, ProofError, TreeSize};
use crate::core::receipt::{Content, Receipt};
use crate::core::signing::{KeyError, LogVerifier};
use crate::store::{
    Completion, Head, PendingNonce, Reservation, ReservationRequest, Store, StoreConfig,
    StoreError, StoreHashReader,
};

/// Default log origin (checkpoint first line and key name).
pub const DEFAULT_ORIGIN: &str = "openexec.local/log";

/// Ledger failures.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Storage failed (a commit failure also stops the writer), or one
    /// append's content is too large to store (refused alone).
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Configuration refused at open (wrong key, wrong origin, bad key file).
    #[error("{0}")]
    Config(String),
    /// The writer has stopped (after a storage failure, or at shutdown).
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// An entry could not be encoded.
    #[error("entry: {0}")]
    Entry(#[from] EntryError),
    /// A proof could not be built (e.g. out-of-range sizes).
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// Checkpoint signing or parsing failed.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A key failed to parse.
    #[error("key: {0}")]
    Key(#[from] KeyError),
    /// File I/O outside the store (key file).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Nothing at that index / exec_id / size.
    #[error("not found")]
    NotFound,
    /// The PostgreSQL backend failed.
    #[error("{0}")]
    Postgres(#[from] crate::pg::PgError),
}

/// How to open a ledger.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Data directory (sled lives in `<dir>/db`).
    pub data_dir: PathBuf,
    /// Log origin.
    pub origin: String,
    /// Private key file; default `<data_dir>/log.key`.
    pub key_path: Option<PathBuf>,
    /// sled cache size.
    pub cache_bytes: u64,
    /// Most entries committed in one batch.
    pub max_batch: usize,
    /// Checkpoint memo file (see [`memo`]); default `<data_dir>.checkpoint`.
    pub checkpoint_memo: Option<PathBuf>,
    /// Witness keys whose cosignatures the log accepts.
    pub witness_keys: Vec<WitnessVerifier>,
    /// Least time between two advances of the published checkpoint
    /// (zero: always the latest). See [`witnessed`].
    pub publish_interval: Duration,
    /// A `postgres://` URL: the log lives in that database, shared with
    /// every node pointed at it (see [`crate::pg`]); the data directory
    /// keeps only the key file's default place. `None`: the embedded store.
    pub db_url: Option<String>,
}

impl LedgerConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            origin: DEFAULT_ORIGIN.to_owned(),
            key_path: None,
            cache_bytes: 64 << 20,
            max_batch: 1024,
            checkpoint_memo: None,
            witness_keys: Vec::new(),
            publish_interval: Duration::ZERO,
            db_url: None,
        }
    }

    /// The key file path actually used.
    #[must_use]
    pub fn key_path(&self) -> PathBuf {
        self.key_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("log.key"))
    }

    /// The checkpoint memo actually used.
    #[must_use]
    pub fn memo(&self) -> memo::CheckpointMemo {
        self.checkpoint_memo.clone().map_or_else(
            || memo::CheckpointMemo::default_for(&self.data_dir),
            memo::CheckpointMemo::new,
        )
    }

    fn store_config(&self) -> StoreConfig {
        StoreConfig {
            cache_bytes: self.cache_bytes,
            ..StoreConfig::new(self.data_dir.join("db"))
        }
    }
}

/// The result of one append: the entry as recorded, and its receipt.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The entry.
    pub entry: Entry,
    /// The receipt, against the checkpoint of the batch that committed it.
    pub receipt: Receipt,
}

/// Counters the sequencer keeps (for metrics and benchmarks).
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Entries committed.
    pub entries: AtomicU64,
    /// Total nanoseconds spent in commit+fsync.
    pub commit_nanos: AtomicU64,
    /// Largest batch so far.
    pub max_batch: AtomicU64,
    /// Set when the writer stopped after a storage failure.
    pub writer_failed: std::sync::atomic::AtomicBool,
}

/// What the ledger knows of its committed state.
#[derive(Debug, Clone)]
struct Committed {
    head: Head,
    checkpoint: String,
}

/// Content encoded once, at submission: its stored bytes and the salts
/// its receipt carries.
struct EncodedContent {
    bytes: Vec<u8>,
    salts: crate::core::receipt::Salts,
}

/// What the writer thread is asked to do.
enum Work {
    /// Append an entry (each variant boxed: the message stays one pointer).
    Append(Box<Job>),
    /// Reserve a nonce.
    Reserve(Box<ReserveJob>),
    /// Reserve a nonce and, if it is won, append the entry that completes
    /// it, in the same cycle (see [`Ledger::reserve_and_append`]).
    ReserveAndAppend(Box<ReserveAndAppendJob>),
}

/// A nonce to reserve (its key) for an attempt (its pending record).
struct NonceClaim {
    key: Vec<u8>,
    record: PendingNonce,
}

impl NonceClaim {
    fn request(&self) -> ReservationRequest<'_> {
        ReservationRequest {
            key: &self.key,
            record: &self.record,
        }
    }
}

/// A reservation whose entry is already drafted.
struct ReserveAndAppendJob {
    claim: NonceClaim,
    draft: EntryDraft,
    content: Option<EncodedContent>,
    reply: tokio::sync::oneshot::Sender<Result<Ticket, LedgerError>>,
    /// The submitter's span (traces on), parent of the writer's steps.
    span: tracing::Span,
}

/// The writer's answer to a [`ReserveAndAppendJob`].
enum Ticket {
    /// The nonce was won and its entry is durable.
    Sealed(Box<Sealed>),
    /// The nonce was not won (nothing was appended): why.
    NotReserved(Reservation),
}

/// An entry handed to the writer, not yet durable
/// ([`Ledger::queue_append`]).
pub struct QueuedAppend(Queued<Sealed, Appended>);

/// A claim and its entry handed to the writer, not yet durable
/// ([`Ledger::queue_reserve_and_append`]).
pub struct QueuedRecord(Queued<Ticket, Recorded>);

/// How [`Ledger::reserve_and_append`] ended.
#[derive(Debug)]
pub enum Recorded {
    /// The nonce was reserved and the entry completing it is durable.
    Appended(Box<Appended>),
    /// The nonce was not reserved, and nothing was appended: in flight,
    /// done, or its approval already used.
    NotReserved(Reservation),
}

/// Where the writer answers one append.
enum AppendReply {
    /// A plain append.
    Plain(tokio::sync::oneshot::Sender<Result<Sealed, LedgerError>>),
    /// The append of a won [`ReserveAndAppendJob`].
    Reserved(tokio::sync::oneshot::Sender<Result<Ticket, LedgerError>>),
}

impl AppendReply {
    /// Answers the caller (who may have gone: then nobody is told).
    fn send(self, result: Result<Sealed, LedgerError>) {
        match self {
            Self::Plain(tx) => {
                let _ = tx.send(result);
            }
            Self::Reserved(tx) => {
                let _ = tx.send(result.map(|sealed| Ticket::Sealed(Box::new(sealed))));
            }
        }
    }
}

/// A nonce reservation: answered once it is durable.
struct ReserveJob {
    claim: NonceClaim,
    reply: tokio::sync::oneshot::Sender<Result<Reservation, LedgerError>>,
}

struct Job {
    draft: EntryDraft,
    content: Option<EncodedContent>,
    completion: Option<Completion>,
    reply: AppendReply,
    /// The submitter's span (traces on), parent of the writer's steps.
    span: tracing::Span,
}

/// What the sequencer hands back for one durable entry: everything its
/// receipt needs except the inclusion proof, which the caller builds on its
/// own thread ([`Sealed::into_appended`]) so that the single writer thread
/// does not.
struct Sealed {
    entry: Entry,
    bytes: Vec<u8>,
    signature: [u8; 64],
    /// Size of the tree of the batch that committed it.
    tree_size: u64,
    /// That tree's signed checkpoint, shared by the batch.
    checkpoint: Arc<str>,
    salts: Option<crate::core::receipt::Salts>,
}

impl Sealed {
    /// The receipt, proven against the batch's tree (whose stored hashes
    /// are durable and never change).
    fn into_appended(self, store: &Store) -> Result<Appended, LedgerError> {
        let index = self.entry.index;
        let hashes = prove_inclusion(
            &StoreHashReader(store),
            LeafIndex(index),
            TreeSize(self.tree_size),
        )?;
        let salts = match (self.salts, self.entry.replay_of) {
            (None, Some(original)) => original_salts(store, original.index),
            (salts, _) => salts,
        };
        let receipt = make_receipt(
            self.bytes,
            &self.signature,
            index,
            self.tree_size,
            hashes,
            self.checkpoint.to_string(),
            salts,
        )?;
        Ok(Appended {
            entry: self.entry,
            receipt,
        })
    }
}

/// An open ledger.
pub struct Ledger {
    verifier: LogVerifier,
    stats: Arc<LedgerStats>,
    backend: Backend,
    /// What the logs this one continues completed (after a rotation).
    predecessor: Option<predecessor::PredecessorIndex>,
    /// Whether its last entry is a `log_end` entry: it takes no appends
    /// (see [`crate::core::rotation`]).
    retired: bool,
}

impl Ledger {
    /// Opens (or creates) the ledger: on PostgreSQL when
    /// [`LedgerConfig::db_url`] names one, else the embedded store in the
    /// data directory. Refuses to open a log made with a different key or
    /// origin, and a successor whose rotation is not finished or whose
    /// predecessor index does not match its entry 0
    /// ([`predecessor::check_start`]).
    pub fn open(config: &LedgerConfig) -> Result<Self, LedgerError> {
        let ledger = Self::open_for_rotation(config)?;
        if ledger.embedded().is_some() {
            predecessor::check_start(&ledger, &config.data_dir)?;
        }
        Ok(ledger)
    }

    /// [`Self::open`] without the successor's start check: for `openexec
    /// rotate`, which completes that successor.
    pub fn open_for_rotation(config: &LedgerConfig) -> Result<Self, LedgerError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let signer = keyfile::load_or_create(&config.key_path(), &config.origin)?;
        let verifier = signer.verifier();
        let stats = Arc::new(LedgerStats::default());
        let backend = match &config.db_url {
            Some(url) => {
                if !config.witness_keys.is_empty() {
                    return Err(LedgerError::Config(
                        "witness cosignatures are kept by the embedded store only; unset OPENEXEC_WITNESS_KEYS with a postgres:// OPENEXEC_DB_URL".into(),
                    ));
                }
                Backend::Postgres(crate::pg::PgLog::open(
                    url,
                    signer,
                    stats.clone(),
                    config.max_batch,
                )?)
            }
            None => Backend::Embedded(open_embedded(config, signer, &stats)?),
        };
        let predecessor = match &backend {
            Backend::Embedded(_) => predecessor::PredecessorIndex::load(&config.data_dir)?,
            Backend::Postgres(_) => None,
        };
        let mut ledger = Self {
            verifier,
            stats,
            backend,
            predecessor,
            retired: false,
        };
        ledger.retired = ledger.ends_with_log_end(&config.data_dir)?;
        Ok(ledger)
    }

    /// The embedded store and its writer, if the log runs on it.
    fn embedded(&self) -> Option<&Embedded> {
        match &self.backend {
            Backend::Embedded(e) => Some(e),
            Backend::Postgres(_) => None,
        }
    }

    /// Appends one entry and waits (blocking the thread) until it is durable.
    /// Must not be called from inside an async runtime; use [`Self::append_async`].
    pub fn append(
        &self,
        draft: EntryDraft,
        content: Option<Content>,
    ) -> Result<Appended, LedgerError> {
        self.append_completing_blocking(draft, content, None)
    }

    /// Appends one entry and waits until it is durable.
    pub async fn append_async(
        &self,
        draft: EntryDraft,
        content: Option<Content>,
    ) -> Result<Appended, LedgerError> {
        self.append_completing(draft, content, None).await
    }

    /// Appends one entry and, in the same store transaction, finalizes the
    /// nonce reservation it answers (its `index` is filled in here).
    pub async fn append_completing(
        &self,
        draft: EntryDraft,
        content: Option<Content>,
        completion: Option<Completion>,
    ) -> Result<Appended, LedgerError> {
        let queued = self.queue_append(draft, content, completion)?;
        self.appended(queued).await
    }

    /// The first half of [`Self::append_completing`]: the entry is with
    /// the writer once this returns `Ok` (a caller that must know whether
    /// its entry was handed over notes it between the two halves).
    pub fn queue_append(
        &self,
        draft: EntryDraft,
        content: Option<Content>,
        completion: Option<Completion>,
    ) -> Result<QueuedAppend, LedgerError> {
        self.submit(draft, content, completion).map(QueuedAppend)
    }

    /// The second half of [`Self::append_completing`]: waits until the
    /// queued entry is durable.
    pub async fn appended(&self, queued: QueuedAppend) -> Result<Appended, LedgerError> {
        match (queued.0, &self.backend) {
            (Queued::Embedded(rx), Backend::Embedded(e)) => {
                rx.await.map_err(writer_stopped)??.into_appended(&e.store)
            }
            (Queued::Postgres(rx), _) => rx.await.map_err(writer_stopped)?,
            (Queued::Embedded(_), Backend::Postgres(_)) => Err(mismatched()),
        }
    }

    /// Blocking form of [`Self::append_completing`] (start-up recovery).
    pub fn append_completing_blocking(
        &self,
        draft: EntryDraft,
        content: Option<Content>,
        completion: Option<Completion>,
    ) -> Result<Appended, LedgerError> {
        match (self.submit(draft, content, completion)?, &self.backend) {
            (Queued::Embedded(rx), Backend::Embedded(e)) => rx
                .blocking_recv()
                .map_err(writer_stopped)??
                .into_appended(&e.store),
            (Queued::Postgres(rx), _) => rx.blocking_recv().map_err(writer_stopped)?,
            (Queued::Embedded(_), Backend::Postgres(_)) => Err(mismatched()),
        }
    }

    fn submit(
        &self,
        draft: EntryDraft,
        content: Option<Content>,
        completion: Option<Completion>,
    ) -> Result<Queued<Sealed, Appended>, LedgerError> {
        self.check_not_retired()?;
        let content = encode(&draft, content)?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        match &self.backend {
            Backend::Embedded(e) => {
                e.send(Work::Append(Box::new(Job {
                    draft,
                    content,
                    completion,
                    reply: AppendReply::Plain(reply),
                    span: crate::instruments::current_span(),
                })))?;
                Ok(Queued::Embedded(rx))
            }
            Backend::Postgres(pg) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                pg.send(crate::pg::PgWork::Append(Box::new(crate::pg::AppendWork {
                    draft,
                    content: content.map(|c| (c.bytes, c.salts)),
                    completion,
                    reply,
                })))?;
                Ok(Queued::Postgres(rx))
            }
        }
    }

    /// Reserves the nonce `key` for `record` (consuming the approval it
    /// names) and, if it is won, appends `draft` — the entry completing it
    /// — in the same writer cycle: one fdatasync makes the reservation,
    /// the entry and the nonce's final record durable together. If the
    /// nonce is not won, nothing is appended.
    ///
    /// This is for handlers without effects (see
    /// [`crate::core::entry::Effects::None`]), whose result is computed before
    /// the nonce is reserved and discarded if it is not won. A handler with
    /// effects must not run before [`Self::reserve`] has answered.
    pub async fn reserve_and_append(
        &self,
        key: Vec<u8>,
        record: PendingNonce,
        draft: EntryDraft,
        content: Option<Content>,
    ) -> Result<Recorded, LedgerError> {
        let queued = self.queue_reserve_and_append(key, record, draft, content)?;
        self.reserved_and_appended(queued).await
    }

    /// The first half of [`Self::reserve_and_append`]: the claim and its
    /// entry are with the writer once this returns `Ok`.
    pub fn queue_reserve_and_append(
        &self,
        key: Vec<u8>,
        record: PendingNonce,
        draft: EntryDraft,
        content: Option<Content>,
    ) -> Result<QueuedRecord, LedgerError> {
        self.check_not_retired()?;
        let content = encode(&draft, content)?;
        match &self.backend {
            Backend::Embedded(e) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                e.send(Work::ReserveAndAppend(Box::new(ReserveAndAppendJob {
                    claim: NonceClaim { key, record },
                    draft,
                    content,
                    reply,
                    span: crate::instruments::current_span(),
                })))?;
                Ok(QueuedRecord(Queued::Embedded(rx)))
            }
            Backend::Postgres(pg) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                pg.send(crate::pg::PgWork::Claim(Box::new(crate::pg::ClaimWork {
                    key,
                    record,
                    draft,
                    content: content.map(|c| (c.bytes, c.salts)),
                    reply,
                })))?;
                Ok(QueuedRecord(Queued::Postgres(rx)))
            }
        }
    }

    /// The second half of [`Self::reserve_and_append`].
    pub async fn reserved_and_appended(
        &self,
        queued: QueuedRecord,
    ) -> Result<Recorded, LedgerError> {
        match (queued.0, &self.backend) {
            (Queued::Embedded(rx), Backend::Embedded(e)) => {
                match rx.await.map_err(writer_stopped)?? {
                    Ticket::Sealed(sealed) => Ok(Recorded::Appended(Box::new(
                        sealed.into_appended(&e.store)?,
                    ))),
                    Ticket::NotReserved(reservation) => Ok(Recorded::NotReserved(reservation)),
                }
            }
            (Queued::Postgres(rx), _) => rx.await.map_err(writer_stopped)?,
            (Queued::Embedded(_), Backend::Postgres(_)) => Err(mismatched()),
        }
    }

    /// Atomically reserves the nonce `key` for `record` (and consumes the
    /// approval it names), and returns once the reservation is durable —
    /// made so by the writer's next fdatasync, shared with the entries of
    /// its batch (on PostgreSQL: by the commit of this node's next batch).
    /// Only then may the caller run the handler.
    pub async fn reserve(
        &self,
        key: Vec<u8>,
        record: PendingNonce,
    ) -> Result<Reservation, LedgerError> {
        self.check_not_retired()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        match &self.backend {
            Backend::Embedded(e) => e.send(Work::Reserve(Box::new(ReserveJob {
                claim: NonceClaim { key, record },
                reply,
            })))?,
            Backend::Postgres(pg) => pg.send(crate::pg::PgWork::Reserve(Box::new(
                crate::pg::ReserveWork { key, record, reply },
            )))?,
        }
        rx.await.map_err(writer_stopped)?
    }

    /// Stops accepting appends, lets the writer commit everything already
    /// queued, and waits for it. Idempotent.
    pub fn shutdown(&self) {
        let e = match &self.backend {
            Backend::Embedded(e) => e,
            Backend::Postgres(pg) => return pg.shutdown(),
        };
        drop(e.jobs.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(handle) = e
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = handle.join();
        }
    }

    /// The nonces and approvals of the logs this one continues, if it
    /// is a successor ([`predecessor`]).
    #[must_use]
    pub fn predecessor(&self) -> Option<&predecessor::PredecessorIndex> {
        self.predecessor.as_ref()
    }

    /// Whether the log is retired: its last entry, when it was opened, is
    /// a `log_end` entry naming its successor. A retired log serves reads
    /// and takes no appends.
    #[must_use]
    pub const fn is_retired(&self) -> bool {
        self.retired
    }

    fn check_not_retired(&self) -> Result<(), LedgerError> {
        if self.retired {
            return Err(LedgerError::Unavailable(
                "the log is retired (its last entry is a log_end entry naming its successor)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether the last entry is a `log_end` entry. A last entry that
    /// cannot be read or decoded (damage, reported as any damaged read is;
    /// the audit names it) counts as one when a rotation record is in the
    /// data directory: a retired log stays closed, and any other log still
    /// starts.
    fn ends_with_log_end(&self, data_dir: &std::path::Path) -> Result<bool, LedgerError> {
        let Some(last) = self.head().size.checked_sub(1) else {
            return Ok(false);
        };
        let recorded = || {
            data_dir
                .join(crate::core::rotation::ROTATION_OUT_FILE)
                .exists()
        };
        match self.entry(last) {
            Ok((bytes, _)) => Ok(Entry::from_canonical_bytes(&bytes)
                .map_or_else(|_| recorded(), |e| crate::core::rotation::is_log_end(&e))),
            Err(LedgerError::Store(StoreError::Damaged(_))) => Ok(recorded()),
            Err(e) => Err(e),
        }
    }

    /// The log's verifier key.
    #[must_use]
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// The committed head (on PostgreSQL: the newest this node has seen,
    /// at most a lease renewal old).
    #[must_use]
    pub fn head(&self) -> Head {
        match &self.backend {
            Backend::Embedded(e) => {
                e.committed
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .head
            }
            Backend::Postgres(pg) => pg.head(),
        }
    }

    /// The latest signed checkpoint (note text).
    #[must_use]
    pub fn latest_checkpoint(&self) -> String {
        match &self.backend {
            Backend::Embedded(e) => e.committed().checkpoint,
            Backend::Postgres(pg) => pg.latest_checkpoint(),
        }
    }

    /// Whether appends can still succeed (the writer has not stopped; on
    /// PostgreSQL, also: the database answered recently).
    #[must_use]
    pub fn is_writable(&self) -> bool {
        match &self.backend {
            Backend::Embedded(e) => {
                !self.stats.writer_failed.load(Ordering::Relaxed)
                    && e.jobs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_some()
            }
            Backend::Postgres(pg) => pg.is_writable(),
        }
    }

    /// Sequencer counters.
    #[must_use]
    pub fn stats(&self) -> &LedgerStats {
        &self.stats
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The error of a request whose reply channel the writer dropped, or whose
/// work it could not take: it has stopped.
fn writer_stopped<E>(_: E) -> LedgerError {
    LedgerError::Unavailable("the writer stopped".into())
}

/// Checks a draft and encodes its content, once, at submission: the
/// size check and the stored value use the same bytes, and a draft or
/// content that cannot be stored is refused alone instead of failing the
/// whole batch it would have joined.
fn encode(
    draft: &EntryDraft,
    content: Option<Content>,
) -> Result<Option<EncodedContent>, LedgerError> {
    // What can make encoding fail, but for a replay's position, which the
    // writer checks (`sequencer::Writer::run_cycle`).
    draft.check()?;
    content
        .map(|c| {
            let bytes = serde_json::to_vec(&c)
                .map_err(|_| LedgerError::Store(StoreError::TooLarge(usize::MAX)))?;
            if bytes.len() > crate::store::MAX_VALUE_LEN {
                return Err(LedgerError::Store(StoreError::TooLarge(bytes.len())));
            }
            Ok(EncodedContent {
                bytes,
                salts: c.salts,
            })
        })
        .transpose()
}

/// Stats helper: bumps `max` to at least `value`.
fn raise(max: &AtomicU64, value: u64) {
    max.fetch_max(value, Ordering::Relaxed);
}
