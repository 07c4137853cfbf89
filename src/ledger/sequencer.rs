//! The sequencer: the single writer of the log, and of nonce reservations.
//!
//! It takes the first queued request, then everything else already queued
//! (up to `max_batch`): appends and nonce reservations. The reservations
//! and the batch of appends are written together ([`Store::write_cycle`])
//! and made durable by one sync of the cycle (one journal frame for all
//! the reservations, one commit for the batch), and only then is anyone
//! answered — so a reservation is durable before its handler runs, and an
//! entry before its receipt is given out.
//!
//! For the batch of appends it assigns indices, chains each
//! entry to the previous leaf hash, computes the new stored Merkle hashes
//! and root, signs each entry (spread over the cores for a large batch:
//! signatures do not chain, only leaf hashes do), signs one checkpoint, and
//! writes it all in one store cycle. The sync, the publication of the
//! new head and the answers are the [`super::syncer`]'s: this thread hands
//! each written cycle over and goes on with the next one while the last is
//! being made durable (a two-stage pipeline; the syncer's module doc says
//! why that is sound). Each caller builds its own receipt (inclusion proof
//! against the batch's checkpoint) on its own thread, from hashes that are
//! by then durable: only what must be serial runs here.
//! A storage failure answers the whole batch with an error and stops the
//! writer (fail-stop): it never guesses what reached the disk.
//!
//! This thread must never answer a caller with anything but a refusal: an
//! answer that rests on written state waits for the syncer.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, OnceLock, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::Utc;

use super::syncer::{
    answer_reservations, refuse, refuse_decided, stop, DecidedAnswer, Syncer, WrittenCycle,
};
use super::{
    AppendReply, Committed, EncodedContent, Job, LedgerError, LedgerStats, ReserveAndAppendJob,
    ReserveJob, Ticket, Work,
};
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::Entry;
use crate::core::entry::EntryDraft;
use crate::core::hash::{leaf_hash, Hash};
use crate::core::proof::{tree_root, TreeSize};
use crate::core::receipt::Salts;
use crate::store::{
    BatchWrite, Completion, Head, JournalTicket, OverlayReader, Reservation, ReservationRequest,
    Store, StoreError, StoredEntry,
};

/// Written cycles that may wait for the syncer besides the one it is
/// syncing: one, so the sequencer can write cycle N+2 while N syncs and
/// N+1 waits. Order and soundness do not depend on it (the syncer takes
/// cycles in order, each written before its sync begins); measured at 64
/// connections, one instead of none gave +3.8% (three alternating pairs).
const PIPELINE_DEPTH: usize = 1;

/// The writer: a sequencer thread and its syncer.
pub(super) struct Sequencer {
    writer: Writer,
    syncer: Syncer,
}

/// The sequencer thread's state.
struct Writer {
    store: Store,
    signer: crate::core::signing::LogSigner,
    stats: Arc<LedgerStats>,
    max_batch: usize,
    /// The head of everything written, durable or not: the next batch
    /// chains to it.
    head: Head,
    /// Set once, by either thread, when a storage failure stops the writer.
    stopped: Arc<OnceLock<String>>,
    /// Threads to sign a large batch on (the machine's parallelism, read
    /// once: `available_parallelism` reads cgroup files on every call).
    signing_threads: usize,
}

/// A batch laid out in memory, before it is written.
pub(super) struct Prepared {
    pub(super) write: BatchWrite,
    pub(super) entries: Vec<Entry>,
    pub(super) checkpoint: SignedCheckpoint,
    pub(super) head: Head,
    /// Salts of each entry's content, for its receipt.
    pub(super) salts: Vec<Option<Salts>>,
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
        let stopped = Arc::new(OnceLock::new());
        let syncer = Syncer::new(
            store.clone(),
            committed,
            stats.clone(),
            stopped.clone(),
            memo,
        );
        let writer = Writer {
            store,
            signer,
            stats,
            max_batch: max_batch.max(1),
            head,
            stopped,
            signing_threads: std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get),
        };
        Self { writer, syncer }
    }

    /// Starts both threads. The handle is the sequencer's, which joins the
    /// syncer before it ends: once it has, every cycle is answered.
    pub(super) fn spawn(self, rx: mpsc::Receiver<Work>) -> std::io::Result<JoinHandle<()>> {
        let Self { mut writer, syncer } = self;
        let (to_syncer, written) = mpsc::sync_channel(PIPELINE_DEPTH);
        let syncer = syncer.spawn(written)?;
        std::thread::Builder::new()
            .name("openexec-sequencer".into())
            .spawn(move || {
                // `recv` keeps returning queued work after every sender is
                // gone, so shutdown drains the queue before the loop ends.
                while let Ok(first) = rx.recv() {
                    let mut work = vec![first];
                    while work.len() < writer.max_batch {
                        match rx.try_recv() {
                            Ok(w) => work.push(w),
                            Err(_) => break,
                        }
                    }
                    // A panic here would leave the cycle half written: the
                    // writer stops (fail-stop, as after a storage failure),
                    // its callers are answered 503 as their replies drop,
                    // and the ledger reports itself unwritable.
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        writer.run_cycle(work)
                    }));
                    let Ok(written) = ran else {
                        let panicked =
                            LedgerError::Unavailable("the ledger's writer panicked".into());
                        stop(&writer.stopped, &writer.stats, &panicked);
                        continue;
                    };
                    if let Some(cycle) = written {
                        if let Err(mpsc::SendError(cycle)) = to_syncer.send(cycle) {
                            let gone = LedgerError::Unavailable(
                                "the ledger's syncer thread is gone".into(),
                            );
                            cycle.refuse(&stop(&writer.stopped, &writer.stats, &gone));
                        }
                    }
                }
                drop(to_syncer);
                if syncer.join().is_err() {
                    tracing::error!("the ledger's syncer thread panicked");
                }
            })
    }
}

impl Writer {
    /// One cycle, up to its sync: the queued reservations and the queued
    /// appends are written, to be made durable by one shared sync and only
    /// then answered (by the syncer). A reservation with its entry drafted
    /// is decided first, and its entry joins this cycle's batch if the
    /// nonce is won. Returns the written cycle, or `None` if everyone in it
    /// has already been refused.
    fn run_cycle(&mut self, work: Vec<Work>) -> Option<WrittenCycle> {
        let (mut jobs, reservations, reserving) = split(work);
        if let Some(reason) = self.stopped.get() {
            refuse_reserving(reserving, reason);
            refuse(jobs.into_iter().map(|j| j.reply), reservations, reason);
            return None;
        }
        let (won, decided) = self.reserve_first(reserving);
        jobs.extend(won);
        let jobs = self.refuse_misplaced_replays(jobs);
        let traced = crate::instruments::carried(jobs.iter().map(|j| &j.span));
        let _batch = crate::instruments::children(&traced, "batch", jobs.len());
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
                let reason = stop(&self.stopped, &self.stats, &e);
                refuse(replies, reservations, &reason);
                refuse_decided(decided, &reason);
                return None;
            }
        };
        let requests: Vec<ReservationRequest<'_>> =
            reservations.iter().map(|r| r.claim.request()).collect();
        match self
            .store
            .write_cycle(prepared.as_ref().map(|p| &p.write), &requests)
        {
            Ok(written) => {
                if let Some(p) = &prepared {
                    self.head = p.head;
                    crate::instruments::batch_written(started.elapsed());
                }
                let (reservations, reserved) = answer_when_journaled(
                    reservations,
                    written.reserved,
                    written.sync.journal(),
                    &self.stopped,
                );
                Some(WrittenCycle {
                    started,
                    traced,
                    batch: prepared.map(|p| (p, replies)),
                    reservations,
                    reserved,
                    sync: written.sync,
                    decided,
                })
            }
            Err(e) if prepared.is_some() => {
                let reason = stop(&self.stopped, &self.stats, &e.into());
                refuse(replies, reservations, &reason);
                refuse_decided(decided, &reason);
                None
            }
            Err(e) => {
                // Reservations alone failed, and wrote nothing; the
                // decided answers may rest on cycles still syncing.
                refuse([], reservations, &e.to_string());
                Some(WrittenCycle::answers_only(started, decided))
            }
        }
    }

    /// Claims the nonces of reservations whose entries are drafted
    /// ([`Store::claim`]: decided, nothing written), ahead of the batch,
    /// which is laid out only once it is known which of them join it. A
    /// won nonce's entry becomes an append of this cycle that completes it
    /// and consumes its approval: nonce, approval and entry are committed
    /// by the batch's one commit and made durable by the cycle's one
    /// sync, together or not at all (a crash before it leaves nothing — the
    /// handler has no effects). A nonce not won is decided here — nothing
    /// of it is appended — but answered only with the cycle, by the syncer:
    /// the state it was decided on (a nonce completed or reserved by the
    /// cycle before, say) may not be durable yet.
    fn reserve_first(&self, reserving: Vec<ReserveAndAppendJob>) -> (Vec<Job>, Vec<DecidedAnswer>) {
        if reserving.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let requests: Vec<ReservationRequest<'_>> =
            reserving.iter().map(|r| r.claim.request()).collect();
        let results = match self.store.claim(&requests) {
            Ok(results) => results,
            Err(e) => {
                refuse_reserving(reserving, &e.to_string());
                return (Vec::new(), Vec::new());
            }
        };
        let mut won = Vec::new();
        let mut decided = Vec::new();
        for (r, result) in reserving.into_iter().zip(results) {
            let result = match result {
                Ok(Reservation::Reserved) => {
                    won.push(Job {
                        draft: r.draft,
                        content: r.content,
                        completion: Some(Completion::claimed(r.claim.key)),
                        reply: AppendReply::Reserved(r.reply),
                        span: r.span,
                    });
                    continue;
                }
                Ok(other) => Ok(Ticket::NotReserved(other)),
                Err(e) => Err(e.into()),
            };
            decided.push(DecidedAnswer {
                reply: r.reply,
                result,
            });
        }
        (won, decided)
    }

    /// Answers alone, refused, every replay whose original is not an entry
    /// already written: its entry could not be encoded (a replay names an
    /// earlier entry), and would fail the whole batch.
    fn refuse_misplaced_replays(&self, jobs: Vec<Job>) -> Vec<Job> {
        let written = self.head.size;
        let (kept, misplaced): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .partition(|j| j.draft.replay_of.is_none_or(|r| r.index < written));
        for job in misplaced {
            job.reply.send(Err(LedgerError::Entry(
                crate::core::entry::EntryError::InvalidField("replay_of"),
            )));
        }
        kept
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
            // What `entry_approval_key` reads from `bytes`: the approval a
            // completing entry consumed (see "Approvals" in `store`); an
            // entry that releases its nonce consumes none.
            let approval_key = completion
                .as_ref()
                .filter(|c| c.completes())
                .and_then(|_| entry.approval.consume_key(&entry.tenant));
            write.entries.push(StoredEntry {
                index,
                // Filled in by `sign_all` once the batch is laid out.
                signature: [0; 64],
                bytes,
                index_exec_id: crate::core::entry::is_indexed(entry.outcome)
                    .then(|| entry.exec_id.clone()),
                content,
                completion,
                approval_key,
            });
            entries.push(entry);
            prev = leaf;
            index += 1;
        }
        sign_all(&self.signer, &mut write.entries, self.signing_threads);
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

/// A cycle's work, as appends, reservations, and reservations with their
/// entries drafted.
fn split(work: Vec<Work>) -> (Vec<Job>, Vec<ReserveJob>, Vec<ReserveAndAppendJob>) {
    let (mut jobs, mut reservations, mut reserving) = (Vec::new(), Vec::new(), Vec::new());
    for w in work {
        match w {
            Work::Append(job) => jobs.push(*job),
            Work::Reserve(r) => reservations.push(*r),
            Work::ReserveAndAppend(r) => reserving.push(*r),
        }
    }
    (jobs, reservations, reserving)
}

/// Answers every reservation with a drafted entry with `reason`.
fn refuse_reserving(reserving: Vec<ReserveAndAppendJob>, reason: &str) {
    for r in reserving {
        let _ = r
            .reply
            .send(Err(LedgerError::Unavailable(reason.to_owned())));
    }
}

/// Fewest entries worth a second signing thread (a thread costs about as
/// much as one signature, ~20 µs).
const PARALLEL_SIGNING_MIN: usize = 8;

/// Signs every entry of a batch. The signatures are independent of one
/// another (the chain runs through leaf hashes), so a large batch is split
/// over up to `cores` threads.
fn sign_all(signer: &crate::core::signing::LogSigner, entries: &mut [StoredEntry], cores: usize) {
    let sign = |chunk: &mut [StoredEntry]| {
        for e in chunk {
            e.signature = signer.sign_entry(&e.bytes).to_bytes();
        }
    };
    let threads = cores.min(entries.len() / PARALLEL_SIGNING_MIN).max(1);
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

/// Leaves the cycle's reservations found `Reserved` or `InFlight` to be
/// answered on the journal's thread the moment the cycle's frame is
/// durable (`ticket`): they rest on the journal alone — on that frame and
/// the ones before it, never on a batch not yet durable (see
/// [`Store::write_cycle`]) — so their handlers start while the cycle's
/// batch is still being committed. If the writer has stopped by then (a
/// failed sync of an earlier cycle), they are refused instead, as the
/// syncer refuses every cycle after a failed one. Returns the others,
/// which the syncer answers once the cycle is durable.
fn answer_when_journaled(
    jobs: Vec<ReserveJob>,
    results: Vec<Result<Reservation, StoreError>>,
    ticket: Option<JournalTicket>,
    stopped: &Arc<OnceLock<String>>,
) -> (Vec<ReserveJob>, Vec<Result<Reservation, StoreError>>) {
    let Some(ticket) = ticket else {
        return (jobs, results);
    };
    let (now, later): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .zip(results)
        .partition(|(_, r)| matches!(r, Ok(Reservation::Reserved | Reservation::InFlight(_))));
    if !now.is_empty() {
        let (jobs, results): (Vec<_>, Vec<_>) = now.into_iter().unzip();
        let stopped = Arc::clone(stopped);
        ticket.then(Box::new(move |durable| match stopped.get() {
            Some(reason) => refuse([], jobs, reason),
            None => answer_reservations(jobs, results, durable.err()),
        }));
    }
    later.into_iter().unzip()
}
