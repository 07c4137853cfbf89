//! The syncer: the second stage of the writer. It takes each cycle the
//! sequencer has written, makes it durable — waits for its journal frame
//! (appended by the journal's thread while the sequencer wrote the
//! entries), then commits its batch (sled if written to, or the commit
//! ring) — and only then publishes it (committed head, checkpoint) and
//! answers its callers, while the sequencer already lays out, signs and
//! writes the next cycle. Nothing is answered before the state it rests
//! on is durable. A reservation won (or found in flight) rests on the
//! journal alone — never on a batch not yet durable, since a nonce a batch
//! releases stays in flight until that batch is durable — so the
//! sequencer has it answered on the journal's thread as soon as its frame
//! is durable, ahead of this thread.
//!
//! Why the overlap is sound (SECURITY.md §1 and docs/ARCHITECTURE.md,
//! "Writer invariants"):
//! - Cycles reach this thread in the order they were written and are
//!   answered in that order, each after a sync that began after its own
//!   write: everything a cycle's answers rest on (its entries, its
//!   reservations, and every earlier cycle's) is durable when they go out.
//!   That covers answers that only *refer* to earlier state, such as a
//!   replay of a nonce completed one cycle before: the sequencer hands
//!   them here instead of answering them itself.
//! - A sync that begins while the sequencer writes the next cycle may make
//!   part of that cycle durable early. That is harmless: a cycle's entries
//!   are fdatasynced before the head that covers them is written, so
//!   whatever reaches the disk is a consistent store, and a reservation
//!   durable early is one a crash records as `interrupted`, as it would be
//!   anyway.
//! - Readers are bounded by the committed head, which only this thread
//!   moves, after the sync.
//! - A failed sync of a batch stops the ledger (fail-stop, like a failed
//!   write): this cycle and every one after it — written or not — is
//!   refused, never answered as if durable. A reservation of a later
//!   cycle whose journal frame became durable before the stop may already
//!   have been answered on the journal's thread and its handler have run:
//!   its entry is then refused, and the next start records the attempt
//!   `interrupted`, as after a crash at that moment (it never runs twice).
//!
//! This thread must never answer a cycle before that cycle's sync has
//! returned, nor answer cycles out of the order they were written. (The
//! reservations answered on the journal's thread go out in frame order.)

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sequencer::Prepared;
use super::{raise, AppendReply, Committed, LedgerError, LedgerStats, ReserveJob, Sealed, Ticket};
use crate::store::{CycleSync, Reservation, Store, StoreError};

/// Least time between two writes of the checkpoint memo. A write is a file
/// write and a rename (~5% of the writer when done every cycle); a memo up
/// to this much older than the head is still sound (see `memo`: an older
/// checkpoint of the log is a prefix of it), it covers a rollback of the
/// last few milliseconds less. The newest checkpoint is written when the
/// writer stops.
const MEMO_INTERVAL: Duration = Duration::from_millis(20);

/// A cycle the sequencer has written but not made durable.
pub(super) struct WrittenCycle {
    /// When the sequencer began it (for the commit-time statistic).
    pub(super) started: Instant,
    /// The spans of its entries' requests (traces on), parents of its sync.
    pub(super) traced: Vec<tracing::Span>,
    /// The batch, laid out and written, and where to answer each entry.
    pub(super) batch: Option<(Prepared, Vec<AppendReply>)>,
    /// The cycle's plain reservations and what the store decided for each.
    pub(super) reservations: Vec<ReserveJob>,
    pub(super) reserved: Vec<Result<Reservation, StoreError>>,
    /// How the store makes the cycle durable.
    pub(super) sync: CycleSync,
    /// Answers already decided (a nonce not won by a reservation with a
    /// drafted entry), which may rest on cycles still being made durable.
    pub(super) decided: Vec<DecidedAnswer>,
}

/// An answer to a reservation with a drafted entry, decided by the
/// sequencer, sent once every cycle before it is durable.
pub(super) struct DecidedAnswer {
    pub(super) reply: tokio::sync::oneshot::Sender<Result<Ticket, LedgerError>>,
    pub(super) result: Result<Ticket, LedgerError>,
}

impl WrittenCycle {
    /// A cycle with nothing to sync: only answers decided from earlier
    /// cycles.
    pub(super) fn answers_only(started: Instant, decided: Vec<DecidedAnswer>) -> Self {
        Self {
            started,
            traced: Vec::new(),
            batch: None,
            reservations: Vec::new(),
            reserved: Vec::new(),
            sync: CycleSync::default(),
            decided,
        }
    }

    /// Answers everyone in the cycle with `reason`.
    pub(super) fn refuse(self, reason: &str) {
        let replies = self.batch.into_iter().flat_map(|(_, replies)| replies);
        refuse(replies, self.reservations, reason);
        refuse_decided(self.decided, reason);
    }
}

/// The syncing half of the writer.
pub(super) struct Syncer {
    pub(super) store: Store,
    pub(super) committed: Arc<RwLock<Committed>>,
    pub(super) stats: Arc<LedgerStats>,
    pub(super) stopped: Arc<OnceLock<String>>,
    pub(super) memo: super::memo::CheckpointMemo,
    /// The newest checkpoint not yet in the memo, and when the memo was
    /// last written (see [`MEMO_INTERVAL`]).
    memo_due: Option<Arc<str>>,
    memo_written: Instant,
}

impl Syncer {
    pub(super) fn new(
        store: Store,
        committed: Arc<RwLock<Committed>>,
        stats: Arc<LedgerStats>,
        stopped: Arc<OnceLock<String>>,
        memo: super::memo::CheckpointMemo,
    ) -> Self {
        Self {
            store,
            committed,
            stats,
            stopped,
            memo,
            memo_due: None,
            memo_written: Instant::now(),
        }
    }

    /// Runs until the sequencer hangs up, then writes the newest
    /// checkpoint to the memo.
    pub(super) fn spawn(
        mut self,
        rx: mpsc::Receiver<WrittenCycle>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("openexec-syncer".into())
            .spawn(move || {
                while let Ok(cycle) = rx.recv() {
                    self.finish(cycle);
                }
                self.write_memo();
            })
    }

    /// Makes one written cycle durable, then publishes and answers it:
    /// its journal frame first (which holds the counter increments its
    /// entries record), then its batch.
    fn finish(&mut self, mut cycle: WrittenCycle) {
        if let Some(reason) = self.stopped.get() {
            cycle.refuse(reason);
            return;
        }
        let entries = cycle.batch.as_ref().map_or(0, |(p, _)| p.entries.len());
        let sync = crate::instruments::children(&cycle.traced, "sync", entries);
        if let Err(e) = self.store.sync_cycle_reservations(&mut cycle.sync) {
            return self.failed(cycle, e);
        }
        let synced = self
            .store
            .sync_cycle_commit(&cycle.sync)
            .and_then(|()| match &cycle.batch {
                // Before anyone is answered (see `Store::index_exec_ids`).
                Some((prepared, _)) => self.store.index_exec_ids(&prepared.write),
                None => Ok(()),
            });
        drop(sync);
        match synced {
            Ok(()) => self.answer(cycle),
            Err(e) => self.failed(cycle, e),
        }
    }

    /// A failed sync: of a cycle with a batch, the writer stops;
    /// otherwise its new reservations, not durable, fail, and the rest
    /// rest on earlier cycles, which are durable.
    fn failed(&self, cycle: WrittenCycle, e: StoreError) {
        if cycle.batch.is_some() {
            let reason = stop(&self.stopped, &self.stats, &e.into());
            cycle.refuse(&reason);
            return;
        }
        answer_reservations(cycle.reservations, cycle.reserved, Some(&e.to_string()));
        send_decided(cycle.decided);
    }

    /// After the cycle's sync: publishes its batch and answers everyone.
    fn answer(&mut self, cycle: WrittenCycle) {
        if let Some((prepared, replies)) = cycle.batch {
            let nanos = u64::try_from(cycle.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let (sealed, note) = self.publish(prepared, nanos);
            for (reply, one) in replies.into_iter().zip(sealed) {
                reply.send(Ok(one));
            }
            self.memo_due = Some(note);
        }
        answer_reservations(cycle.reservations, cycle.reserved, None);
        send_decided(cycle.decided);
        // After the replies: the memo is advisory (see `memo`), so no
        // caller waits for it.
        if self.memo_written.elapsed() >= MEMO_INTERVAL {
            self.write_memo();
        }
    }

    /// Makes the batch the committed head, and returns what each caller
    /// needs to build its receipt, in draft order, and the batch's
    /// checkpoint.
    fn publish(&self, prepared: Prepared, nanos: u64) -> (Vec<Sealed>, Arc<str>) {
        let note: Arc<str> = Arc::from(prepared.checkpoint.note_text());
        {
            let mut committed = self
                .committed
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            committed.head = prepared.head;
            committed.checkpoint = note.to_string();
        }
        let n = u64::try_from(prepared.entries.len()).unwrap_or(u64::MAX);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.entries.fetch_add(n, Ordering::Relaxed);
        self.stats.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
        raise(&self.stats.max_batch, n);
        crate::instruments::batch_committed(n);
        let size = prepared.head.size;
        let sealed = prepared
            .write
            .entries
            .into_iter()
            .zip(prepared.entries)
            .zip(prepared.salts)
            .map(|((stored, entry), salts)| Sealed {
                entry,
                bytes: stored.bytes,
                signature: stored.signature,
                tree_size: size,
                checkpoint: Arc::clone(&note),
                salts,
            })
            .collect();
        (sealed, note)
    }

    /// Writes the newest checkpoint not yet in the memo, if any.
    fn write_memo(&mut self) {
        if let Some(note) = self.memo_due.take() {
            self.memo_written = Instant::now();
            if let Err(e) = self.memo.record(&note) {
                tracing::warn!(error = %e, path = %self.memo.path().display(), "could not update the checkpoint memo");
            }
        }
    }
}

/// Fail-stop after a storage failure of a batch: every later request is
/// refused. Returns why, for the cycle that failed.
pub(super) fn stop(stopped: &OnceLock<String>, stats: &LedgerStats, e: &LedgerError) -> String {
    let reason = e.to_string();
    let _ = stopped.set(format!("writer stopped after a storage failure: {reason}"));
    stats.writer_failed.store(true, Ordering::Relaxed);
    tracing::error!(error = %reason, "ledger writer stopped after a storage failure");
    reason
}

/// Answers every append and reservation of a cycle with `reason`.
pub(super) fn refuse(
    appends: impl IntoIterator<Item = AppendReply>,
    reservations: Vec<ReserveJob>,
    reason: &str,
) {
    for reply in appends {
        reply.send(Err(LedgerError::Unavailable(reason.to_owned())));
    }
    for r in reservations {
        let _ = r
            .reply
            .send(Err(LedgerError::Unavailable(reason.to_owned())));
    }
}

/// Answers every decided answer with `reason` instead.
pub(super) fn refuse_decided(decided: Vec<DecidedAnswer>, reason: &str) {
    for d in decided {
        let _ = d
            .reply
            .send(Err(LedgerError::Unavailable(reason.to_owned())));
    }
}

fn send_decided(decided: Vec<DecidedAnswer>) {
    for d in decided {
        let _ = d.reply.send(d.result);
    }
}

/// Answers each reservation with its result, except that a new
/// reservation whose sync failed (`sync_failed`) is an error: it is not
/// durable, so its handler must not run.
pub(super) fn answer_reservations(
    reservations: Vec<ReserveJob>,
    results: Vec<Result<Reservation, StoreError>>,
    sync_failed: Option<&str>,
) {
    for (job, result) in reservations.into_iter().zip(results) {
        let answer = match (sync_failed, result) {
            (Some(e), Ok(Reservation::Reserved)) => Err(LedgerError::Unavailable(format!(
                "the reservation could not be made durable: {e}"
            ))),
            (_, r) => r.map_err(LedgerError::from),
        };
        let _ = job.reply.send(answer);
    }
}
