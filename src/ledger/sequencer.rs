//! The sequencer: the single writer of the log, and of nonce reservations.
//!
//! It takes the first queued request, then everything else already queued
//! (up to `max_batch`): appends and nonce reservations. The reservations
//! and the batch of appends are written as one store transaction and made
//! durable by one fdatasync, and only then is anyone answered — so a
//! reservation is durable before its handler runs, and an entry before its
//! receipt is given out, with one device wait per cycle for both.
//!
//! For the batch of appends it assigns indices, chains each
//! entry to the previous leaf hash, computes the new stored Merkle hashes
//! and root, signs each entry (spread over the cores for a large batch:
//! signatures do not chain, only leaf hashes do), signs one checkpoint,
//! writes it all as one store transaction, fsyncs once, and only then
//! answers every caller of the batch. Each caller builds its own receipt
//! (inclusion proof against the batch's checkpoint) on its own thread, from
//! hashes that are by then durable: only what must be serial runs here.
//! A storage failure answers the whole batch with an error and stops the
//! writer (fail-stop): it never guesses what reached the disk.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::Utc;

use super::{
    raise, AppendReply, Committed, EncodedContent, Job, LedgerError, LedgerStats,
    ReserveAndAppendJob, ReserveJob, Sealed, Ticket, Work,
};
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::EntryDraft;
use crate::core::entry::{Entry, Outcome};
use crate::core::hash::{leaf_hash, Hash};
use crate::core::proof::{tree_root, TreeSize};
use crate::core::receipt::Salts;
use crate::store::{
    BatchWrite, Completion, Head, OverlayReader, Reservation, ReservationRequest, Store,
    StoreError, StoredEntry,
};

pub(super) struct Sequencer {
    store: Store,
    signer: crate::core::signing::LogSigner,
    committed: Arc<RwLock<Committed>>,
    stats: Arc<LedgerStats>,
    max_batch: usize,
    head: Head,
    failed: Option<String>,
    memo: super::memo::CheckpointMemo,
    /// The newest checkpoint not yet in the memo, and when the memo was
    /// last written (see [`MEMO_INTERVAL`]).
    memo_due: Option<Arc<str>>,
    memo_written: Instant,
}

/// Least time between two writes of the checkpoint memo. A write is a file
/// write and a rename (~5% of this thread when done every cycle); a memo up
/// to this much older than the head is still sound (see `memo`: an older
/// checkpoint of the log is a prefix of it), it covers a rollback of the
/// last few milliseconds less. The newest checkpoint is written when the
/// writer stops.
const MEMO_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// A batch laid out in memory, before it is written.
struct Prepared {
    write: BatchWrite,
    entries: Vec<Entry>,
    checkpoint: SignedCheckpoint,
    head: Head,
    /// Salts of each entry's content, for its receipt.
    salts: Vec<Option<Salts>>,
}

impl Sequencer {
    pub(super) fn new(
        store: Store,
        signer: crate::core::signing::LogSigner,
        committed: Arc<RwLock<Committed>>,
        stats: Arc<LedgerStats>,
        max_batch: usize,
        memo: super::memo::CheckpointMemo,
    ) -> Self {
        let head = committed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .head;
        Self {
            store,
            signer,
            committed,
            stats,
            max_batch: max_batch.max(1),
            memo,
            memo_due: None,
            memo_written: Instant::now(),
            head,
            failed: None,
        }
    }

    pub(super) fn spawn(mut self, rx: mpsc::Receiver<Work>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("openexec-sequencer".into())
            .spawn(move || {
                // `recv` keeps returning queued work after every sender is
                // gone, so shutdown drains the queue before the loop ends.
                while let Ok(first) = rx.recv() {
                    let mut work = vec![first];
                    while work.len() < self.max_batch {
                        match rx.try_recv() {
                            Ok(w) => work.push(w),
                            Err(_) => break,
                        }
                    }
                    self.run_cycle(work);
                }
                self.write_memo();
            })
    }

    /// One cycle: the queued reservations and the queued appends are
    /// written, made durable by one shared sync, and only then answered.
    /// A reservation with its entry drafted is decided first, and its
    /// entry joins this cycle's batch if the nonce is won.
    fn run_cycle(&mut self, work: Vec<Work>) {
        let (mut jobs, reservations, reserving) = split(work);
        if let Some(reason) = &self.failed {
            let reason = reason.clone();
            refuse_reserving(reserving, &reason);
            refuse(jobs.into_iter().map(|j| j.reply), reservations, &reason);
            return;
        }
        jobs.extend(self.reserve_first(reserving));
        let (drafts, replies): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .map(|j| ((j.draft, j.content, j.completion), j.reply))
            .unzip();
        let started = Instant::now();
        let prepared = match (!drafts.is_empty())
            .then(|| self.prepare(drafts))
            .transpose()
        {
            Ok(p) => p,
            Err(e) => {
                let reason = self.stop(&e);
                refuse(replies, reservations, &reason);
                return;
            }
        };
        match self.write_and_sync(prepared.as_ref().map(|p| &p.write), &reservations) {
            Written::Durable(reserved) => {
                let note = prepared.map(|p| {
                    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    let (sealed, note) = self.publish(p, nanos);
                    for (reply, one) in replies.into_iter().zip(sealed) {
                        reply.send(Ok(one));
                    }
                    note
                });
                answer_reservations(reservations, reserved, None);
                // After the replies: the memo is advisory (see `memo`), so
                // no caller waits for it.
                if let Some(note) = note {
                    self.memo_due = Some(note);
                    if self.memo_written.elapsed() >= MEMO_INTERVAL {
                        self.write_memo();
                    }
                }
            }
            Written::ReservationsNotDurable(reserved, why) => {
                answer_reservations(reservations, reserved, Some(&why));
            }
            Written::ReservationsFailed(why) => refuse([], reservations, &why),
            Written::BatchFailed(e) => {
                let reason = self.stop(&e);
                refuse(replies, reservations, &reason);
            }
        }
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

    /// Reserves the nonces of reservations whose entries are drafted, in a
    /// store transaction of their own ahead of the batch (which is laid
    /// out only once it is known which of them join it). A won nonce's
    /// entry becomes an append of this cycle that completes it — the
    /// pending record written here and the final record the batch writes
    /// are made durable by the cycle's one sync (a crash before it leaves
    /// at most the pending record: `interrupted` at restart, as for any
    /// reservation). A nonce not won is answered at once with why, from
    /// state already durable or decided: nothing of it is appended.
    fn reserve_first(&self, reserving: Vec<ReserveAndAppendJob>) -> Vec<Job> {
        if reserving.is_empty() {
            return Vec::new();
        }
        let requests: Vec<ReservationRequest<'_>> =
            reserving.iter().map(|r| r.claim.request()).collect();
        let results = match self.store.write_cycle(None, &requests) {
            Ok(results) => results,
            Err(e) => {
                refuse_reserving(reserving, &e.to_string());
                return Vec::new();
            }
        };
        let mut won = Vec::new();
        for (r, result) in reserving.into_iter().zip(results) {
            match result {
                Ok(Reservation::Reserved) => won.push(Job {
                    draft: r.draft,
                    content: r.content,
                    completion: Some(Completion { key: r.claim.key }),
                    reply: AppendReply::Reserved(r.reply),
                }),
                Ok(other) => {
                    let _ = r.reply.send(Ok(Ticket::NotReserved(other)));
                }
                Err(e) => {
                    let _ = r.reply.send(Err(e.into()));
                }
            }
        }
        won
    }

    /// Writes the cycle (batch and reservations, one transaction) and
    /// syncs it once. A failure with a batch is fail-stop; with
    /// reservations alone it fails only those reservations.
    fn write_and_sync(&self, batch: Option<&BatchWrite>, reservations: &[ReserveJob]) -> Written {
        let requests: Vec<ReservationRequest<'_>> =
            reservations.iter().map(|r| r.claim.request()).collect();
        let reserved = match self.store.write_cycle(batch, &requests) {
            Ok(r) => r,
            Err(e) if batch.is_some() => return Written::BatchFailed(e.into()),
            Err(e) => return Written::ReservationsFailed(e.to_string()),
        };
        // Only new reservations change state and need the sync.
        let changed = reserved
            .iter()
            .any(|r| matches!(r, Ok(Reservation::Reserved)));
        if batch.is_none() && !changed {
            return Written::Durable(reserved);
        }
        match self.store.sync_cycle(batch.is_some(), changed) {
            Ok(()) => Written::Durable(reserved),
            Err(e) if batch.is_some() => Written::BatchFailed(e.into()),
            Err(e) => Written::ReservationsNotDurable(reserved, e.to_string()),
        }
    }

    /// Fail-stop after a storage failure of a batch: every later request
    /// is refused with `reason`.
    fn stop(&mut self, e: &LedgerError) -> String {
        let reason = e.to_string();
        self.failed = Some(format!("writer stopped after a storage failure: {reason}"));
        self.stats.writer_failed.store(true, Ordering::Relaxed);
        tracing::error!(error = %reason, "ledger writer stopped after a storage failure");
        reason
    }

    /// After the batch's sync: makes it the committed head, and returns
    /// what each caller needs to build its receipt, in draft order, and
    /// the batch's checkpoint.
    fn publish(&mut self, prepared: Prepared, nanos: u64) -> (Vec<Sealed>, Arc<str>) {
        self.head = prepared.head;
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

    /// Lays out a batch: positions, chain, signatures, Merkle hashes, root,
    /// checkpoint. Nothing is written yet.
    fn prepare(
        &self,
        drafts: Vec<(EntryDraft, Option<EncodedContent>, Option<Completion>)>,
    ) -> Result<Prepared, LedgerError> {
        let mut write = BatchWrite::default();
        let mut entries = Vec::with_capacity(drafts.len());
        let mut salts = Vec::with_capacity(drafts.len());
        let mut pending = HashMap::new();
        let mut prev = self.head.last_leaf;
        let mut index = self.head.size;
        let now = Utc::now();
        for (draft, content, completion) in drafts {
            let entry = Entry::from_draft(draft, self.signer.name(), index, prev, now);
            let bytes = entry.to_canonical_bytes()?;
            let leaf = leaf_hash(&bytes);
            let reader = OverlayReader {
                base: &self.store,
                pending: &pending,
            };
            let stored = tlog_tiles::stored_hashes_for_record_hash(index, leaf.into(), &reader)
                .map_err(|e| LedgerError::Unavailable(format!("reading stored hashes: {e}")))?;
            let first = tlog_tiles::stored_hash_index(0, index);
            for (offset, hash) in (first..).zip(stored) {
                pending.insert(offset, Hash::from(hash));
                write.hashes.push((offset, Hash::from(hash)));
            }
            let (content, entry_salts) = content.map(|c| (c.bytes, c.salts)).unzip();
            salts.push(entry_salts);
            write.entries.push(StoredEntry {
                index,
                // Filled in by `sign_all` once the batch is laid out.
                signature: [0; 64],
                bytes,
                index_exec_id: (entry.outcome != Outcome::Replayed).then(|| entry.exec_id.clone()),
                content,
                completion,
            });
            entries.push(entry);
            prev = leaf;
            index += 1;
        }
        sign_all(&self.signer, &mut write.entries);
        let root = tree_root(
            &OverlayReader {
                base: &self.store,
                pending: &pending,
            },
            TreeSize(index),
        )?;
        let head = Head {
            size: index,
            root,
            last_leaf: prev,
        };
        let checkpoint = SignedCheckpoint::sign(&self.signer, index, root)?;
        write.head = Some(head);
        write.checkpoint = Some((index, checkpoint.note_text().to_owned()));
        Ok(Prepared {
            write,
            entries,
            checkpoint,
            head,
            salts,
        })
    }
}

/// How a cycle's write and sync went.
enum Written {
    /// Durable (or nothing needed a sync): each reservation's result.
    Durable(Vec<Result<Reservation, StoreError>>),
    /// Reservations alone, written but not made durable: their results
    /// and why.
    ReservationsNotDurable(Vec<Result<Reservation, StoreError>>, String),
    /// Reservations alone, whose write failed: why.
    ReservationsFailed(String),
    /// The batch could not be written or made durable (fail-stop).
    BatchFailed(LedgerError),
}

/// A cycle's work, as appends, reservations, and reservations with their
/// entries drafted.
fn split(work: Vec<Work>) -> (Vec<Job>, Vec<ReserveJob>, Vec<ReserveAndAppendJob>) {
    let (mut jobs, mut reservations, mut reserving) = (Vec::new(), Vec::new(), Vec::new());
    for w in work {
        match w {
            Work::Append(job) => jobs.push(*job),
            Work::Reserve(r) => reservations.push(r),
            Work::ReserveAndAppend(r) => reserving.push(*r),
        }
    }
    (jobs, reservations, reserving)
}

/// Answers every append and reservation of a cycle with `reason`.
fn refuse(
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

/// Answers every reservation with a drafted entry with `reason`.
fn refuse_reserving(reserving: Vec<ReserveAndAppendJob>, reason: &str) {
    for r in reserving {
        let _ = r
            .reply
            .send(Err(LedgerError::Unavailable(reason.to_owned())));
    }
}

/// Answers each reservation with its result, except that a new
/// reservation whose sync failed (`sync_failed`) is an error: it is not
/// durable, so its handler must not run.
fn answer_reservations(
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

/// Fewest entries worth a second signing thread (a thread costs about as
/// much as one signature, ~20 µs).
const PARALLEL_SIGNING_MIN: usize = 8;

/// Signs every entry of a batch. The signatures are independent of one
/// another (the chain runs through leaf hashes), so a large batch is split
/// over the available cores.
fn sign_all(signer: &crate::core::signing::LogSigner, entries: &mut [StoredEntry]) {
    let sign = |chunk: &mut [StoredEntry]| {
        for e in chunk {
            e.signature = signer.sign_entry(&e.bytes).to_bytes();
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(entries.len() / PARALLEL_SIGNING_MIN)
        .max(1);
    if threads == 1 {
        sign(entries);
        return;
    }
    let per_thread = entries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = entries.chunks_mut(per_thread);
        let mine = chunks.next();
        for chunk in chunks {
            scope.spawn(move || sign(chunk));
        }
        if let Some(chunk) = mine {
            sign(chunk);
        }
    });
}
