//! This node's writer: a task that group-commits whatever is queued as
//! one transaction under the head lock (see [`super`]), retried from the
//! start when the database reports a serialization failure, and answers
//! only after `COMMIT` returned. Every round trip is bounded
//! ([`super::ROUND_TRIP`], [`super::LOCK_WAIT`] for the head lock): one
//! without an answer in time refuses the batch, gives the connection up
//! and marks the node not ready until a round trip succeeds. A
//! transaction whose `COMMIT` got no answer (an error without one, or
//! none in time) is looked up again under the head lock (which waits for
//! it to end); if even that fails, the writer stops (fail-stop): it never
//! guesses.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_postgres::{Client, Transaction};

use super::batch::{self, Decided, Found, Layout};
use super::write::Statements;
use super::{answer, reads, within, PgError, Reply, SeenHead, Shared, LOCK_WAIT, ROUND_TRIP};
use crate::core::entry::EntryDraft;
use crate::core::receipt::Salts;
use crate::core::signing::LogSigner;
use crate::ledger::{Appended, LedgerError, Recorded};
use crate::store::{Completion, PendingNonce, Reservation};

/// Attempts at one batch when the database asks to retry it.
const ATTEMPTS: usize = 16;

/// Session limits of the writer's connection: a stalled holder of the
/// head lock is cut off, so the other nodes wait at most this long.
const SESSION: &str = "SET idle_in_transaction_session_timeout = '5s'; \
     SET lock_timeout = '10s'; SET statement_timeout = '10s'";

/// Work for the writer.
pub(crate) enum PgWork {
    /// An entry (resolving a reservation, if it carries a completion).
    Append(Box<AppendWork>),
    /// A nonce reservation for a handler with effects.
    Reserve(Box<ReserveWork>),
    /// A claim, with the entry that completes it if it is won.
    Claim(Box<ClaimWork>),
}

/// See [`PgWork::Append`].
pub(crate) struct AppendWork {
    pub(crate) draft: EntryDraft,
    pub(crate) content: Option<(Vec<u8>, Salts)>,
    pub(crate) completion: Option<Completion>,
    pub(crate) reply: Reply<Appended>,
}

/// See [`PgWork::Reserve`].
pub(crate) struct ReserveWork {
    pub(crate) key: Vec<u8>,
    pub(crate) record: PendingNonce,
    pub(crate) reply: Reply<Reservation>,
}

/// See [`PgWork::Claim`].
pub(crate) struct ClaimWork {
    pub(crate) key: Vec<u8>,
    pub(crate) record: PendingNonce,
    pub(crate) draft: EntryDraft,
    pub(crate) content: Option<(Vec<u8>, Salts)>,
    pub(crate) reply: Reply<Recorded>,
}

impl PgWork {
    /// Answers with a refusal.
    pub(super) fn refuse(self, why: &str) {
        let e = || LedgerError::Unavailable(why.to_owned());
        match self {
            Self::Append(a) => drop(a.reply.send(Err(e()))),
            Self::Reserve(r) => drop(r.reply.send(Err(e()))),
            Self::Claim(c) => drop(c.reply.send(Err(e()))),
        }
    }
}

/// A batch that committed.
pub(super) struct Done {
    pub(super) fates: Vec<Decided>,
    pub(super) layout: Option<Layout>,
    /// The first reservation it made: (nonce key, exec_id).
    first_reserved: Option<(Vec<u8>, String)>,
}

/// The writer's state.
pub(super) struct Writer {
    shared: Arc<Shared>,
    signer: LogSigner,
    max_batch: usize,
    client: Option<Client>,
    /// The batch's statements, prepared on `client`.
    statements: Option<Statements>,
    /// Reservations this node made and has not resolved.
    mine: batch::Mine,
    /// Tasks answering committed batches (awaited before the writer ends).
    answering: Vec<tokio::task::JoinHandle<()>>,
    stopped: Option<String>,
}

impl Writer {
    pub(super) async fn open(
        shared: Arc<Shared>,
        signer: LogSigner,
        max_batch: usize,
    ) -> Result<Self, PgError> {
        let mut writer = Self {
            shared,
            signer,
            max_batch: max_batch.max(1),
            client: None,
            statements: None,
            mine: HashSet::new(),
            answering: Vec::new(),
            stopped: None,
        };
        writer.client().await?;
        Ok(writer)
    }

    /// The writer's own connection, opened again if it broke.
    async fn client(&mut self) -> Result<&mut Client, PgError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let client = super::connect(&self.shared.url).await?;
            within(ROUND_TRIP, client.batch_execute(SESSION)).await?;
            self.statements = Some(within(ROUND_TRIP, Statements::prepare(&client)).await?);
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| PgError::Corrupt("no connection".into()))
    }

    /// Runs until every sender is gone and the queue is drained.
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<PgWork>) {
        loop {
            let next = if self.shared.writer_stalled.load(Ordering::Relaxed) {
                // A node not ready gets no work: it probes the database
                // itself until a round trip succeeds.
                match tokio::time::timeout(super::lease::RENEW_EVERY, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.probe().await;
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            let Some(first) = next else { break };
            let mut work = vec![first];
            while work.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(w) => work.push(w),
                    Err(_) => break,
                }
            }
            self.cycle(work).await;
        }
        for task in self.answering.drain(..) {
            let _ = task.await;
        }
        // A node that stops ends its lease: what it left in flight (a
        // handler still running past the drain) is the others' to record
        // now, not after the lease would have run out.
        let node = self.shared.node.clone();
        if let Ok(client) = self.client().await {
            let ended = within(
                ROUND_TRIP,
                client.execute(
                    "UPDATE openexec_nodes SET lease_until = now() WHERE node_id = $1",
                    &[&node],
                ),
            )
            .await;
            if let Err(e) = ended {
                tracing::warn!(error = %e, "ending this node's lease");
            }
        }
    }

    /// One round trip on the writer's connection (opened again if needed);
    /// the node is ready again once it is answered.
    async fn probe(&mut self) {
        let answered = match self.client().await {
            Ok(client) => within(ROUND_TRIP, client.simple_query("SELECT 1")).await,
            Err(e) => Err(e),
        };
        match answered {
            Ok(_) => {
                self.shared.touched();
                self.shared.writer_stalled.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(error = %e, "the database still does not answer the writer");
                self.client = None;
            }
        }
    }

    async fn cycle(&mut self, work: Vec<PgWork>) {
        if let Some(why) = &self.stopped {
            work.into_iter().for_each(|w| w.refuse(why));
            return;
        }
        let started = Instant::now();
        let mut tries = 0;
        let done = loop {
            tries += 1;
            match self.attempt(&work).await {
                Ok(done) => break done,
                Err(Failure::Retry(e)) if tries < ATTEMPTS => {
                    tracing::debug!(error = %e, "batch transaction retried");
                }
                Err(Failure::Retry(e) | Failure::Refused(e)) => {
                    let code = e.sqlstate();
                    tracing::warn!(error = %e, sqlstate = ?code, "batch transaction failed; nothing of it committed");
                    if code.is_none() {
                        // No answer from the server: not ready until one.
                        self.shared.writer_stalled.store(true, Ordering::Relaxed);
                    }
                    self.client = None;
                    if code.is_some() && work.len() > 1 {
                        // The server refused something of the batch that
                        // the decisions did not foresee: each request
                        // alone, so that it refuses only its own.
                        for w in work {
                            Box::pin(self.cycle(vec![w])).await;
                        }
                        return;
                    }
                    let why = e.to_string();
                    work.into_iter().for_each(|w| w.refuse(&why));
                    return;
                }
                Err(Failure::Stop(e)) => {
                    let why = format!("writer stopped: {e}");
                    tracing::error!(error = %e, "ledger writer stopped");
                    self.shared
                        .stats
                        .writer_failed
                        .store(true, Ordering::Relaxed);
                    work.into_iter().for_each(|w| w.refuse(&why));
                    self.stopped = Some(why);
                    return;
                }
            }
        };
        self.shared.touched();
        self.shared.writer_stalled.store(false, Ordering::Relaxed);
        self.note(&work, &done, started);
        // The answers (receipts read what they need from the committed
        // rows) go out on the reading connection, while this connection
        // takes the next batch.
        let shared = Arc::clone(&self.shared);
        self.answering.retain(|task| !task.is_finished());
        self.answering.push(tokio::spawn(async move {
            let client = shared.reader().await.ok();
            answer::send(client.as_deref(), work, done).await;
        }));
    }

    /// Publishes what a committed batch changed.
    fn note(&mut self, work: &[PgWork], done: &Done, started: Instant) {
        for (w, fate) in work.iter().zip(&done.fates) {
            match (w, fate) {
                (PgWork::Reserve(r), Decided::Reservation(Reservation::Reserved)) => {
                    self.mine.insert((r.key.clone(), r.record.exec_id.clone()));
                }
                (PgWork::Append(a), Decided::Entry(_)) => {
                    if let Some(c) = &a.completion {
                        self.mine.remove(&(c.key.clone(), a.draft.exec_id.clone()));
                    }
                }
                _ => {}
            }
        }
        let Some(layout) = &done.layout else { return };
        self.shared.see(SeenHead {
            head: layout.head,
            checkpoint: layout.checkpoint.clone(),
        });
        let stats = &self.shared.stats;
        let n = u64::try_from(layout.entries.len()).unwrap_or(u64::MAX);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.entries.fetch_add(n, Ordering::Relaxed);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        stats.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
        stats.max_batch.fetch_max(n, Ordering::Relaxed);
    }

    /// One try at the batch transaction.
    async fn attempt(&mut self, work: &[PgWork]) -> Result<Done, Failure> {
        let seen = self
            .shared
            .seen
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .head;
        let node = self.shared.node.clone();
        self.client().await.map_err(Failure::Refused)?;
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| Failure::Refused(PgError::Corrupt("no connection".into())))?;
        let st = self
            .statements
            .as_ref()
            .ok_or_else(|| Failure::Refused(PgError::Corrupt("no statements".into())))?;
        let tx = within(ROUND_TRIP, client.transaction())
            .await
            .map_err(classify)?;
        let found = within(LOCK_WAIT, find(&tx, st, work, &node))
            .await
            .map_err(classify)?;
        if found.head.size < seen.size
            || (found.head.size == seen.size && found.head.root != seen.root)
        {
            return Err(Failure::Stop(PgError::Corrupt(format!(
                "the database's head (size {}) is not a continuation of the head this node saw (size {}): the database lost committed batches",
                found.head.size, seen.size
            ))));
        }
        let decisions = batch::decide(work, &found, &node, &self.mine);
        let layout = match decisions.drafts.is_empty() {
            true => None,
            false => Some(
                batch::lay_out(&decisions.drafts, &found, &self.signer).map_err(Failure::Stop)?,
            ),
        };
        let writes = super::write::write(&tx, st, &node, &found, &decisions, layout.as_ref());
        within(ROUND_TRIP, writes).await.map_err(classify)?;
        let first_reserved = decisions
            .reserved
            .first()
            .map(|(key, record)| (key.clone(), record.exec_id.clone()));
        let fates = decisions.fates;
        let commit = within(ROUND_TRIP, tx.commit()).await;
        let done = Done {
            fates,
            layout,
            first_reserved,
        };
        match commit {
            Ok(()) => Ok(done),
            Err(e) if e.sqlstate().is_some() => Err(classify(e)),
            Err(e) => {
                tracing::warn!(error = %e, "COMMIT got no answer; looking the batch up");
                self.client = None;
                let lookup = within(LOCK_WAIT, self.committed_after_all(&done)).await;
                match lookup {
                    Ok(true) => Ok(done),
                    Ok(false) => Err(Failure::Refused(e)),
                    Err(lookup) => Err(Failure::Stop(lookup)),
                }
            }
        }
    }

    /// Whether a batch whose `COMMIT` got no answer committed: under the
    /// head lock (which its transaction held until it ended), its first
    /// entry, or its first reservation, is looked up.
    async fn committed_after_all(&mut self, done: &Done) -> Result<bool, PgError> {
        let first_entry = done.layout.as_ref().and_then(|l| l.entries.first());
        let node = self.shared.node.clone();
        let client = self.client().await?;
        let tx = client.transaction().await?;
        tx.query_one(
            "SELECT size FROM openexec_head WHERE id = 0 FOR UPDATE",
            &[],
        )
        .await?;
        let found = match (first_entry, &done.first_reserved) {
            (Some(e), _) => tx
                .query_opt(
                    "SELECT signature FROM openexec_entries WHERE idx = $1",
                    &[&reads::index_param(e.entry.index)?],
                )
                .await?
                .map(|row| row.try_get::<_, Vec<u8>>(0))
                .transpose()?
                .is_some_and(|sig| sig == e.signature),
            (None, Some((key, exec_id))) => tx
                .query_opt(
                    "SELECT 1 FROM openexec_nonces WHERE nonce_key = $1 AND owner = $2 AND exec_id = $3",
                    &[key, &node, exec_id],
                )
                .await?
                .is_some(),
            // Nothing written: the answers (all decided from what the
            // batch read) hold whether it committed or not.
            (None, None) => true,
        };
        tx.rollback().await?;
        Ok(found)
    }
}

/// How an attempt failed.
enum Failure {
    /// Rolled back; the database asks to try again.
    Retry(PgError),
    /// Rolled back; refuse this batch, keep going.
    Refused(PgError),
    /// The writer must stop.
    Stop(PgError),
}

/// A database error fails the batch alone (retried if the database asks);
/// rows that break the log's invariants (a head that moved under the lock)
/// stop the writer.
fn classify(e: impl Into<PgError>) -> Failure {
    match e.into() {
        e if e.is_retryable() => Failure::Retry(e),
        e @ (PgError::Db(_) | PgError::Timeout) => Failure::Refused(e),
        e => Failure::Stop(e),
    }
}

/// Locks the head and reads what the batch's decisions rest on.
async fn find(
    tx: &Transaction<'_>,
    st: &Statements,
    work: &[PgWork],
    node: &str,
) -> Result<Found, PgError> {
    let super::write::FoundRows {
        head,
        nonces,
        approvals,
        recorded,
    } = super::write::find(tx, st, node, &keys_of(work)).await?;
    let micros: i64 = head.try_get(4)?;
    let time = chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| PgError::Corrupt(format!("database time {micros}")))?;
    Ok(Found {
        head: crate::store::Head {
            size: reads::size_of(&head, 0)?,
            root: reads::hash_of(&head, 1)?,
            last_leaf: reads::hash_of(&head, 2)?,
        },
        frontier: head.try_get(3)?,
        time,
        nonces,
        approvals,
        recorded,
    })
}

/// The nonce keys, approval keys and exec_ids a batch's decisions look at.
fn keys_of(work: &[PgWork]) -> super::write::Keys {
    let mut keys = super::write::Keys::default();
    for w in work {
        let draft = match w {
            PgWork::Claim(c) => Some(&c.draft),
            PgWork::Reserve(_) => None,
            PgWork::Append(a) => Some(&a.draft),
        };
        keys.exec_ids.extend(
            draft
                .filter(|d| crate::core::entry::is_indexed(d.outcome))
                .map(|d| d.exec_id.clone()),
        );
        let (key, record) = match w {
            PgWork::Claim(c) => (&c.key, Some(&c.record)),
            PgWork::Reserve(r) => (&r.key, Some(&r.record)),
            PgWork::Append(a) => match &a.completion {
                Some(c) => (&c.key, None),
                None => continue,
            },
        };
        keys.nonces.push(key.clone());
        keys.approvals
            .extend(record.and_then(|r| r.approval_key.clone()));
    }
    keys
}
