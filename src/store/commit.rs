//! Writing: one writer cycle's batch and reservations written together
//! ([`Store::write_cycle`]), made durable once ([`Store::sync_cycle`]) in
//! the commit ring or through sled, and the clean close that leaves the
//! next open nothing to rebuild.
//!
//! Nothing here decides what to append; the ledger's sequencer and syncer
//! call these in order (see "Durability" in [`super`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use sled::transaction::Transactional;

use super::commit_ring::{CommitRing, RingCommit};
use super::segments::SegmentsMark;
use super::{
    commit_mark, open, read_head, reservations, sync_sled, BatchWrite, Completion, CycleSync,
    CycleWrite, FaultPoint, Held, Inner, Reservation, ReservationRequest, Store, StoreError,
    HISTORY_STRIDE, META_ENTRIES_DICT, META_HEAD,
};

impl Store {
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
    /// sync instead ([`super::commit_ring`]), and writes nothing to sled here.
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
                // sled's head now is durable before this ring slot is
                // written: the syncer syncs every earlier cycle first.
                let sled_size = read_head(&self.inner.meta)?.map_or(0, |h| h.size);
                ring_commit(b, s.mark, sled_size)
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
                .and_then(|()| reservations::Encoded::new(*r))
                .and_then(|mut e| {
                    // A lookup that meets damage fails this reservation
                    // alone, never as "not done".
                    e.done = match completed.get(r.key) {
                        Some(&index) => Some(index),
                        None => self.done_index(r.key)?,
                    };
                    if let Some(ak) = e.approval_key {
                        e.approval_done = consumed.contains_key(ak.as_bytes())
                            || self.approval_done(ak)?.is_some();
                    }
                    Ok(e)
                });
            match one {
                Ok(e) => {
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
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        sync_sled(&self.inner.db, &self.inner.log_file)
    }
}

/// The ring commit of a batch, when the batch changes nothing in sled but
/// the head and the checkpoint: every nonce it completes was claimed (no
/// pending record, nor an approval's, to remove), and its checkpoint fits
/// a ring slot.
fn ring_commit(batch: &BatchWrite, mark: SegmentsMark, sled_size: u64) -> Option<RingCommit> {
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
                sled_size,
                checkpoint: note.clone(),
            })
        }
        _ => None,
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

impl Inner {
    pub(super) fn lock_ring_ahead(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Option<RingCommit>>, StoreError> {
        self.ring_ahead
            .lock()
            .map_err(|_| StoreError::Corrupt("commit ring state lock poisoned".into()))
    }

    /// Copies the ring's last commit into sled if it is newer than sled's
    /// head ([`open::promote_if_newer`]), so that sled holds the newest head with
    /// the mark written next to it. Returns the committed size.
    pub(super) fn promote_ring(&self) -> Result<u64, StoreError> {
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
