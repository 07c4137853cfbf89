//! The sequencer: the single writer of the log.
//!
//! It takes the first queued append, then everything else already queued
//! (up to `max_batch`), and for that batch: assigns indices, chains each
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

use super::{raise, Committed, EncodedContent, Job, LedgerError, LedgerStats, Sealed};
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::EntryDraft;
use crate::core::entry::{Entry, Outcome};
use crate::core::hash::{leaf_hash, Hash};
use crate::core::proof::{tree_root, TreeSize};
use crate::core::receipt::Salts;
use crate::store::{BatchWrite, Completion, Head, OverlayReader, Store, StoredEntry};

pub(super) struct Sequencer {
    store: Store,
    signer: crate::core::signing::LogSigner,
    committed: Arc<RwLock<Committed>>,
    stats: Arc<LedgerStats>,
    max_batch: usize,
    head: Head,
    failed: Option<String>,
    memo: super::memo::CheckpointMemo,
}

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
            head,
            failed: None,
        }
    }

    pub(super) fn spawn(mut self, rx: mpsc::Receiver<Job>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("openexec-sequencer".into())
            .spawn(move || {
                // `recv` keeps returning queued jobs after every sender is gone,
                // so shutdown drains the queue before the loop ends.
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < self.max_batch {
                        match rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    self.run_batch(jobs);
                }
            })
    }

    fn run_batch(&mut self, jobs: Vec<Job>) {
        if let Some(reason) = &self.failed {
            for job in jobs {
                let _ = job
                    .reply
                    .send(Err(LedgerError::Unavailable(reason.clone())));
            }
            return;
        }
        let (drafts, replies): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .map(|j| ((j.draft, j.content, j.completion), j.reply))
            .unzip();
        match self.commit(drafts) {
            Ok((sealed, note)) => {
                for (reply, one) in replies.into_iter().zip(sealed) {
                    let _ = reply.send(Ok(one));
                }
                // After the replies: the memo is advisory (see `memo`), so
                // no caller waits for it.
                if let Err(e) = self.memo.record(&note) {
                    tracing::warn!(error = %e, path = %self.memo.path().display(), "could not update the checkpoint memo");
                }
            }
            Err(e) => {
                let reason = e.to_string();
                self.failed = Some(format!("writer stopped after a storage failure: {reason}"));
                self.stats.writer_failed.store(true, Ordering::Relaxed);
                tracing::error!(error = %reason, "ledger writer stopped after a storage failure");
                for reply in replies {
                    let _ = reply.send(Err(LedgerError::Unavailable(reason.clone())));
                }
            }
        }
    }

    /// Prepares, writes and syncs one batch; returns what each caller needs
    /// to build its receipt, in draft order, and the batch's checkpoint.
    fn commit(
        &mut self,
        drafts: Vec<(EntryDraft, Option<EncodedContent>, Option<Completion>)>,
    ) -> Result<(Vec<Sealed>, Arc<str>), LedgerError> {
        let prepared = self.prepare(drafts)?;
        let started = Instant::now();
        self.store.commit(&prepared.write)?;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
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
        Ok((sealed, note))
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
                completion: completion.map(|mut c| {
                    c.record.index = Some(index);
                    c
                }),
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
