//! The PostgreSQL backend of the ledger (`OPENEXEC_DB_URL=postgres://…`):
//! several `openexec serve` nodes on one database form one log.
//!
//! Each node keeps its own group-commit writer (`writer`): a task that
//! takes whatever is queued and runs it as **one database transaction**
//! that locks the single head row (`SELECT … FOR UPDATE`), decides the
//! nonce claims and reservations against the rows committed so far,
//! orders, hashes and signs the batch from the frontier in the head row
//! (`tree`), inserts it, moves the head (`UPDATE … WHERE size = old`,
//! which must change one row) and commits. Callers are answered only after
//! `COMMIT` returns. The head row serializes every batch of every node, so
//! indexes are contiguous and each checkpoint extends the one before,
//! whichever node signed it; a checkpoint signed for a transaction that
//! does not commit is dropped unseen. The entries' primary key and the
//! `UPDATE`'s row count fence any writer that would disagree.
//!
//! Reads go straight to the database on a second connection: a row is
//! visible only once its batch committed. The node's cached head (for
//! `/status` and default proof sizes) is refreshed by its own batches and
//! by the lease task (`lease`) every `lease::RENEW_EVERY`.
//!
//! A node holds a lease (`openexec_nodes`, on database time) and renews it
//! in every batch and every `lease::RENEW_EVERY`; a nonce reserved by a
//! node whose lease has run out is offered to the survivors by
//! [`PgLog::pending_reservations`] and recorded `interrupted` by them (or
//! released, for an idempotent-downstream handler), under the head lock,
//! never run again.

mod answer;
mod api;
pub mod audit;
mod batch;
mod lease;
mod reads;
mod schema;
pub(crate) mod tree;
mod write;
mod writer;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, NoTls};

pub use schema::SCHEMA_VERSION;
pub(crate) use writer::{AppendWork, ClaimWork, PgWork, ReserveWork};

use crate::core::signing::LogSigner;
use crate::ledger::{LedgerError, LedgerStats};
use crate::store::Head;

/// Longest a read waits for the database before it is answered 503.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest one round trip to the database may take (a statement, `BEGIN`,
/// `COMMIT`, a lease renewal) before its connection is given up: a
/// database that stops answering fails the work instead of holding it.
pub(crate) const ROUND_TRIP: Duration = Duration::from_secs(5);

/// Longest a batch waits for the head lock and its reads: past the
/// server's own `lock_timeout` (10 s), so that the server answers first
/// while another node holds the lock.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(12);

/// Longest a connection takes to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TCP keepalives: a peer that vanished is noticed within about
/// idle + 3 × interval, well inside the lease.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(3);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// Failures of the PostgreSQL backend.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The database answered with an error, or could not be reached.
    #[error("postgres: {}", db_detail(.0))]
    Db(#[from] tokio_postgres::Error),
    /// Rows that are not what this code writes.
    #[error("corrupt log in the database: {0}")]
    Corrupt(String),
    /// A database this node refuses to serve (version, origin, key).
    #[error("{0}")]
    Config(String),
    /// No answer within the time allowed.
    #[error("the database did not answer in time")]
    Timeout,
}

/// A driver error with what the server said (SQLSTATE and message), which
/// the driver's own display leaves out.
fn db_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

impl PgError {
    /// The SQLSTATE the server answered with, if it answered.
    pub(crate) fn sqlstate(&self) -> Option<&str> {
        let Self::Db(e) = self else { return None };
        e.as_db_error().map(|d| d.code().code())
    }

    /// A transaction the database asks to retry (serialization failure or
    /// deadlock; CockroachDB and YugabyteDB report every conflict so).
    fn is_retryable(&self) -> bool {
        let Self::Db(e) = self else { return false };
        e.code().is_some_and(|c| {
            *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                || *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
        })
    }
}

/// Whether `url` names a PostgreSQL-wire database.
#[must_use]
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The committed head as this node last saw it, and its checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct SeenHead {
    pub(crate) head: Head,
    pub(crate) checkpoint: String,
}

/// What the writer task, the lease task and the readers share.
pub(crate) struct Shared {
    pub(crate) url: String,
    /// This process's node id (a new one at every start).
    pub(crate) node: String,
    pub(crate) seen: RwLock<SeenHead>,
    pub(crate) stats: Arc<LedgerStats>,
    /// When the database last answered this node.
    pub(crate) contact: Mutex<Instant>,
    /// The connection reads use (replaced when it breaks).
    reader: tokio::sync::Mutex<Option<Arc<Client>>>,
    /// Set while the writer's last round trip got no answer in time or
    /// its connection broke: the node is not ready until one succeeds.
    pub(crate) writer_stalled: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Records an answer from the database.
    pub(crate) fn touched(&self) {
        *self.contact.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Moves the cached head forward (never back: a head older than one
    /// seen is another node's, read before this node's last batch).
    pub(crate) fn see(&self, seen: SeenHead) {
        let mut current = self.seen.write().unwrap_or_else(PoisonError::into_inner);
        if seen.head.size >= current.head.size {
            *current = seen;
        }
    }

    /// The reading connection, opened again if it broke.
    pub(crate) async fn reader(&self) -> Result<Arc<Client>, PgError> {
        let mut slot = self.reader.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(connect(&self.url).await?);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Gives up the reading connection (one that did not answer in time):
    /// the next read opens another.
    pub(crate) async fn forget_reader(&self) {
        *self.reader.lock().await = None;
    }
}

/// `work` bounded by `limit`: [`PgError::Timeout`] past it.
pub(crate) async fn within<T, E: Into<PgError>>(
    limit: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, PgError> {
    match tokio::time::timeout(limit, work).await {
        Ok(out) => out.map_err(Into::into),
        Err(_) => Err(PgError::Timeout),
    }
}

/// Opens a connection (bounded, with TCP keepalives, unless the URL sets
/// its own); its I/O runs as a task of the current runtime.
pub(crate) async fn connect(url: &str) -> Result<Client, PgError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(3);
    let (client, connection) = within(CONNECT_TIMEOUT, config.connect(NoTls)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// The log on PostgreSQL, as one node sees it.
pub struct PgLog {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    jobs: Mutex<Option<mpsc::UnboundedSender<PgWork>>>,
    /// Told when the writer task has answered everything and ended.
    writer_done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl PgLog {
    /// Connects, creates or checks the schema, and starts this node's
    /// writer and lease tasks on a runtime of their own.
    pub fn open(
        url: &str,
        signer: LogSigner,
        stats: Arc<LedgerStats>,
        max_batch: usize,
    ) -> Result<Self, LedgerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("openexec-pg")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let node = uuid::Uuid::new_v4().to_string();
        let (shared, writer) = runtime.block_on(async {
            let client = connect(url).await?;
            schema::prepare(&client, &signer).await?;
            let seen = reads::head(&client).await?;
            lease::join(&client, &node).await?;
            let shared = Arc::new(Shared {
                url: url.to_owned(),
                node,
                seen: RwLock::new(seen),
                stats,
                contact: Mutex::new(Instant::now()),
                reader: tokio::sync::Mutex::new(Some(Arc::new(client))),
                writer_stalled: std::sync::atomic::AtomicBool::new(false),
            });
            let writer = writer::Writer::open(Arc::clone(&shared), signer, max_batch).await?;
            Ok::<_, PgError>((shared, writer))
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            writer.run(rx).await;
            let _ = done_tx.send(());
        });
        runtime.spawn(lease::run(Arc::clone(&shared)));
        Ok(Self {
            shared,
            runtime: Mutex::new(Some(runtime)),
            handle,
            jobs: Mutex::new(Some(tx)),
            writer_done: Mutex::new(Some(done_rx)),
        })
    }

    /// Hands work to the writer.
    pub(crate) fn send(&self, work: PgWork) -> Result<(), LedgerError> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = jobs
            .as_ref()
            .ok_or_else(|| LedgerError::Unavailable("shutting down".into()))?;
        sender
            .send(work)
            .map_err(|_| LedgerError::Unavailable("the writer stopped".into()))
    }

    /// Stops taking work, lets the writer commit what is queued, then
    /// stops the runtime. Idempotent.
    pub fn shutdown(&self) {
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let done = self
            .writer_done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(done) = done {
            let _ = done.recv_timeout(READ_TIMEOUT);
        }
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            runtime.shutdown_background();
        }
    }

    /// The head this node last saw committed.
    #[must_use]
    pub fn head(&self) -> Head {
        self.shared
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .head
    }

    /// The checkpoint of [`Self::head`].
    #[must_use]
    pub fn latest_checkpoint(&self) -> String {
        self.shared
            .seen
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .checkpoint
            .clone()
    }

    /// Whether this node can append: its writer runs, its last round trip
    /// was answered, and the database answered within the lease's renewal
    /// margin.
    #[must_use]
    pub fn is_writable(&self) -> bool {
        let recent = self
            .shared
            .contact
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            < lease::READY_WITHIN;
        recent
            && !self.shared.stats.writer_failed.load(Ordering::Relaxed)
            && !self.shared.writer_stalled.load(Ordering::Relaxed)
            && self
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
    }

    /// Runs `work` on the backend's runtime and waits for it (from any
    /// thread, inside an async runtime or not).
    pub(crate) fn block<T, F>(
        &self,
        work: impl FnOnce(Arc<Shared>) -> F + Send + 'static,
    ) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, LedgerError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shared = Arc::clone(&self.shared);
        self.handle.spawn(async move {
            let out = match tokio::time::timeout(READ_TIMEOUT, work(Arc::clone(&shared))).await {
                Ok(out) => out,
                Err(_) => {
                    shared.forget_reader().await;
                    Err(PgError::Timeout.into())
                }
            };
            let _ = tx.send(out);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(LedgerError::Unavailable(
                "the database runtime stopped".into(),
            ))
        })
    }
}

impl Drop for PgLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An answer the writer sends once its batch committed.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, LedgerError>>;
