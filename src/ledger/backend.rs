//! The seam between the ledger and its storage: [`Backend`], an enum over
//! the embedded store (with this process's sequencer and syncer) and
//! PostgreSQL ([`crate::pg`]). An enum, not a trait object, so that each
//! call on the embedded path is one `match`, with no allocation and no
//! indirect call.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use super::{
    sequencer, witnessed, writer_stopped, Committed, LedgerConfig, LedgerError, LedgerStats, Work,
};
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::signing::LogSigner;
use crate::store::{Head, Store, StoreError};

/// Where the log lives: the seam between the ledger and its storage. An
/// enum, not a trait object: each call on the embedded store's path is
/// one match, with no allocation and no indirect call.
pub(super) enum Backend {
    /// The embedded store (segment files, key tables, commit ring,
    /// reservation journal, sled), written by this process's sequencer.
    Embedded(Embedded),
    /// PostgreSQL, shared by every node of the log (see [`crate::pg`]).
    Postgres(crate::pg::PgLog),
}

/// The embedded store and its writer threads.
pub(super) struct Embedded {
    pub(super) store: Store,
    pub(super) committed: Arc<RwLock<Committed>>,
    pub(super) jobs: Mutex<Option<mpsc::Sender<Work>>>,
    pub(super) writer: Mutex<Option<JoinHandle<()>>>,
    pub(super) witnessing: witnessed::Witnessing,
    /// Held by a redaction from its checks to its erase ([`super::redact`]).
    pub(super) redacting: tokio::sync::Mutex<()>,
}

impl Embedded {
    pub(super) fn send(&self, work: Work) -> Result<(), LedgerError> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = jobs
            .as_ref()
            .ok_or_else(|| LedgerError::Unavailable("shutting down".into()))?;
        sender.send(work).map_err(writer_stopped)
    }

    pub(super) fn committed(&self) -> Committed {
        self.committed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Opens the embedded store and starts its writer.
pub(super) fn open_embedded(
    config: &LedgerConfig,
    signer: LogSigner,
    stats: &Arc<LedgerStats>,
) -> Result<Embedded, LedgerError> {
    let store = Store::open(&config.store_config())?;
    let committed = initialize(&store, &signer)?;
    super::redact::settle_at_open(&store)?;
    let memo = config.memo();
    memo.check(&store, &signer.verifier(), &committed.head)?;
    let witnessing =
        witnessed::Witnessing::open(&store, config.witness_keys.clone(), config.publish_interval)?;
    let committed = Arc::new(RwLock::new(committed));
    let (tx, rx) = mpsc::channel();
    let writer = sequencer::Sequencer::new(
        store.clone(),
        signer,
        committed.clone(),
        stats.clone(),
        config.max_batch,
        memo,
    )
    .spawn(rx)?;
    Ok(Embedded {
        store,
        committed,
        jobs: Mutex::new(Some(tx)),
        writer: Mutex::new(Some(writer)),
        witnessing,
        redacting: tokio::sync::Mutex::new(()),
    })
}

/// An answer awaited from the writer of either backend.
pub(super) enum Queued<E, P> {
    Embedded(tokio::sync::oneshot::Receiver<Result<E, LedgerError>>),
    Postgres(tokio::sync::oneshot::Receiver<Result<P, LedgerError>>),
}

/// A queued answer handed back to a ledger of the other backend.
pub(super) fn mismatched() -> LedgerError {
    LedgerError::Unavailable("a queued append was handed to another ledger".into())
}

/// Checks an existing store against the key, or writes the genesis state
/// (empty tree, signed checkpoint of size 0) into a new one.
fn initialize(store: &Store, signer: &LogSigner) -> Result<Committed, LedgerError> {
    let vkey = signer.verifier().vkey();
    match store.meta("vkey")? {
        Some(stored) if stored != vkey.as_bytes() => {
            return Err(LedgerError::Config(format!(
                "this log was created with key {:?}, but the configured key is {vkey:?}; refusing to start",
                String::from_utf8_lossy(&stored)
            )));
        }
        Some(_) => {}
        None => store.set_meta(&[
            ("origin", signer.name().as_bytes()),
            ("vkey", vkey.as_bytes()),
        ])?,
    }
    if let Some(head) = store.head()? {
        let (size, checkpoint) = store
            .latest_checkpoint()?
            .ok_or_else(|| StoreError::Corrupt("head without a checkpoint".into()))?;
        let opened = SignedCheckpoint::open(checkpoint.as_bytes(), &signer.verifier())?;
        if size != head.size || opened.size() != head.size || opened.root() != head.root {
            return Err(
                StoreError::Corrupt("latest checkpoint does not match the head".into()).into(),
            );
        }
        return Ok(Committed { head, checkpoint });
    }
    let head = Head {
        size: 0,
        root: crate::core::hash::empty_tree_hash(),
        last_leaf: crate::core::entry::GENESIS_PREV,
    };
    let checkpoint = SignedCheckpoint::sign(signer, 0, head.root)?;
    let batch = crate::store::BatchWrite {
        head: Some(head),
        checkpoint: Some((0, checkpoint.note_text().to_owned())),
        ..Default::default()
    };
    store.commit(&batch)?;
    Ok(Committed {
        head,
        checkpoint: checkpoint.note_text().to_owned(),
    })
}
