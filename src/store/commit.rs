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
use super::reservations::journal::JournalRecord;
use super::segments::SegmentsMark;
use super::{
    commit_mark, open, read_head, reservations, sync_sled, BatchWrite, CycleSync, CycleWrite,
    FaultPoint, Inner, Reservation, ReservationRequest, Store, StoreError, HISTORY_STRIDE,
    META_ENTRIES_DICT, META_HEAD,
};

impl Store {
    /// Writes one batch atomically and makes it durable before returning.
    pub fn commit(&self, batch: &BatchWrite) -> Result<(), StoreError> {
        let mut written = self.write_cycle(Some(batch), &[])?;
        self.sync_cycle(&mut written.sync)?;
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
    /// The reservations are decided first, under the nonce lock, against
    /// the reservations in flight before this batch and the nonces
    /// (approvals) the batch completes (consumes); their journal records,
    /// with every record staged before them (counter increments), go to
    /// the journal's thread as the cycle's frame, whose `fdatasync` then
    /// runs while the batch's entries are written and synced here
    /// ([`super::reservations::writer`]). A nonce the batch releases is
    /// still in flight for this cycle's reservations (answered
    /// `InFlight`; free once the batch is durable), so no reservation
    /// rests on a batch that is not durable. The batch's entries then resolve the
    /// reservations they carry, under the lock again. The batch commits in
    /// the commit ring at the sync ([`super::commit_ring`]) and writes
    /// nothing to sled here — unless it chose the entry dictionary or
    /// consumes an approval for good (see "Approvals" in [`super`]): then
    /// it is one sled transaction, flushed at the sync.
    ///
    /// A reservation that cannot be encoded (or whose injected fault
    /// fires) fails alone and writes nothing; a failure of the batch's
    /// transaction fails the whole cycle.
    pub fn write_cycle(
        &self,
        batch: Option<&BatchWrite>,
        reservations: &[ReservationRequest<'_>],
    ) -> Result<CycleWrite, StoreError> {
        if batch.is_some() {
            self.inner.faults.check(FaultPoint::CommitWrite)?;
        }
        let (completed, consumed) = completions_of(batch);
        let reserved = self.reserve_cycle(reservations, &completed, &consumed)?;
        let journal = self.submit_frame(&reserved)?;
        // The segment files, durable before the head that covers them.
        let staged = batch
            .map(|b| self.inner.segments.stage(b, &self.inner.faults))
            .transpose()?;
        let dictionary = staged
            .filter(|s| s.new_dictionary)
            .and_then(|_| self.inner.segments.dictionary());
        let mut in_flight = self.lock_nonce_order()?;
        let resolution = batch.map(|b| in_flight.resolve(b)).unwrap_or_default();
        let ring = match (batch, staged) {
            (Some(b), Some(s)) if dictionary.is_none() && resolution.for_good.is_empty() => {
                // sled's head now is durable before this ring slot is
                // written: the syncer syncs every earlier cycle first.
                let sled_size = read_head(&self.inner.meta)?.map_or(0, |h| h.size);
                ring_commit(b, s.mark, sled_size)
            }
            _ => None,
        };
        if let Some(b) = batch.filter(|_| ring.is_none()) {
            let sled = SledBatches::new(b, staged.map(|s| s.mark), dictionary, &resolution);
            self.apply_in_sled(&sled)?;
        }
        if let (Some(staged), Some(batch)) = (&staged, batch) {
            self.inner.segments.publish(staged, &batch.hashes)?;
            // Before the lock is let go (see "Nonces").
            self.inner.done_nonces.insert_batch(
                completed.iter().map(|(&key, &index)| (key, index)),
                staged.count(),
            )?;
            self.inner.consumed_approvals.insert_batch(
                consumed
                    .iter()
                    .map(|(&key, &index)| (key.as_bytes(), index)),
                staged.count(),
            )?;
        }
        drop(in_flight);
        let sync = CycleSync {
            batch: batch.is_some(),
            ring,
            journal: Some(journal),
            released: resolution.released,
            resolved: resolution.attempts,
        };
        Ok(CycleWrite { reserved, sync })
    }

    /// Hands every staged record to the journal's thread as the cycle's
    /// frame. An injected `ReserveSync` fault (tests) fails the ticket
    /// instead and leaves the records staged for the next frame, as a
    /// failed sync would.
    fn submit_frame(
        &self,
        reserved: &[Result<Reservation, StoreError>],
    ) -> Result<super::JournalTicket, StoreError> {
        if reserved
            .iter()
            .any(|r| matches!(r, Ok(Reservation::Reserved)))
        {
            if let Err(e) = self.inner.faults.check(FaultPoint::ReserveSync) {
                return Ok(super::JournalTicket::failed(&e));
            }
        }
        // Held while the frame is queued, so frames queue in the order
        // their records were staged (a counter's later value last).
        let mut staged = self.inner.lock_staged()?;
        let records = std::mem::take(&mut *staged);
        self.inner.journal_writer.submit(records)
    }

    /// The cycle's reservations, decided under the nonce lock (see
    /// [`Self::write_cycle`]).
    fn reserve_cycle(
        &self,
        reservations: &[ReservationRequest<'_>],
        completed: &HashMap<&[u8], u64>,
        consumed: &HashMap<&str, u64>,
    ) -> Result<Vec<Result<Reservation, StoreError>>, StoreError> {
        if reservations.is_empty() {
            return Ok(Vec::new());
        }
        let mut in_flight = self.lock_nonce_order()?;
        Ok(reservations
            .iter()
            .map(|r| {
                let approval_consumed = r
                    .record
                    .approval_key
                    .as_ref()
                    .is_some_and(|k| consumed.contains_key(k.as_str()));
                let done = completed.get(r.key).copied();
                self.reserve_locked(&mut in_flight, *r, done, approval_consumed)
            })
            .collect())
    }

    /// The sled transaction of a batch that does not commit in the ring.
    fn apply_in_sled(&self, b: &SledBatches) -> Result<(), StoreError> {
        let i = &self.inner;
        (&i.checkpoints, &i.meta, &i.approvals)
            .transaction(|(tk, tm, ta)| {
                ta.apply_batch(&b.approvals)?;
                tk.apply_batch(&b.checkpoints)?;
                tm.apply_batch(&b.meta)?;
                Ok(())
            })
            .map_err(reservations::tx_error)
    }

    /// Makes a written cycle durable, and everything written before it:
    /// [`Self::sync_cycle_reservations`], then [`Self::sync_cycle_commit`].
    pub fn sync_cycle(&self, sync: &mut CycleSync) -> Result<(), StoreError> {
        self.sync_cycle_reservations(sync)?;
        self.sync_cycle_commit(sync)
    }

    /// The first half of a cycle's sync: waits until the cycle's journal
    /// frame (its reservations, and the counter increments staged before
    /// them) is durable. The cycle's answers of [`Reservation::Reserved`]
    /// and [`Reservation::InFlight`] may go out then, before the second
    /// half: they rest on the journal and on earlier cycles alone (a
    /// reservation rests on a batch not yet durable, see
    /// [`Self::write_cycle`]). The ledger's sequencer has them answered on
    /// the journal's thread ([`super::JournalTicket::then`]).
    pub fn sync_cycle_reservations(&self, sync: &mut CycleSync) -> Result<(), StoreError> {
        // A cycle without a frame (only answers decided from earlier,
        // durable cycles) has nothing of its own to wait for.
        match sync.journal.take() {
            Some(ticket) => ticket.wait(),
            None => Ok(()),
        }
    }

    /// The second half of a cycle's sync: the batch's sled transaction
    /// (flushed and sled's log fdatasynced) or its commit in the ring (one
    /// `pwrite` and `fdatasync`). Once it is durable, the nonces it
    /// released are free and the journal forgets the reservations it
    /// resolved.
    pub fn sync_cycle_commit(&self, sync: &CycleSync) -> Result<(), StoreError> {
        if sync.batch {
            self.inner.faults.check(FaultPoint::CommitSync)?;
        }
        if sync.batch && sync.ring.is_none() {
            self.sync()?;
        }
        if let Some(commit) = &sync.ring {
            self.commit_in_ring(commit)?;
        } else if sync.batch {
            // sled's head is the newest again.
            *self.inner.lock_ring_ahead()? = None;
        }
        if !sync.released.is_empty() {
            self.lock_nonce_order()?.release(&sync.released);
        }
        self.inner.journal.resolved(&sync.resolved)
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

    /// Makes the reservations made so far durable (one journal frame and
    /// its fdatasync).
    pub fn sync_reservations(&self) -> Result<(), StoreError> {
        self.submit_frame(&[])?.wait()
    }

    /// `flush()` then a real `fdatasync` of sled's log file.
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        sync_sled(&self.inner.db, &self.inner.log_file)
    }
}

/// The nonces (by key) a batch completes and the approvals it consumes,
/// each with the index of its entry: done for the cycle's reservations,
/// though `nonces.tab` (`approvals.tab`) takes them only after the write.
/// Both borrow from the batch: nothing is copied on the writer's path.
fn completions_of(batch: Option<&BatchWrite>) -> (HashMap<&[u8], u64>, HashMap<&str, u64>) {
    let entries = || batch.into_iter().flat_map(|b| &b.entries);
    let completed = entries()
        .filter_map(|e| {
            e.completion
                .as_ref()
                .filter(|c| c.completes())
                .map(|c| (c.key.as_slice(), e.index))
        })
        .collect();
    let consumed = entries()
        .filter_map(|e| e.approval_key.as_deref().map(|k| (k, e.index)))
        .collect();
    (completed, consumed)
}

/// The ring commit of a batch whose checkpoint fits a ring slot (the
/// caller has checked that it changes nothing else in sled).
fn ring_commit(batch: &BatchWrite, mark: SegmentsMark, sled_size: u64) -> Option<RingCommit> {
    match (&batch.head, &batch.checkpoint) {
        (Some(head), Some((size, note))) if *size == head.size && CommitRing::fits(note) => {
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
    approvals: sled::Batch,
    checkpoints: sled::Batch,
    meta: sled::Batch,
}

impl SledBatches {
    fn new(
        batch: &BatchWrite,
        mark: Option<SegmentsMark>,
        dictionary: Option<&[u8]>,
        resolution: &reservations::Resolution,
    ) -> Self {
        let mut b = Self {
            approvals: sled::Batch::default(),
            checkpoints: sled::Batch::default(),
            meta: sled::Batch::default(),
        };
        // Approvals consumed for good (see "Approvals"), with the entry
        // that ends their reservation.
        for (approval, nonce) in &resolution.for_good {
            b.approvals.insert(approval.as_bytes(), nonce.as_slice());
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
    pub(super) fn lock_staged(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Vec<(String, JournalRecord)>>, StoreError> {
        self.staged
            .lock()
            .map_err(|_| StoreError::Corrupt("staged reservations lock poisoned".into()))
    }

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
        // Every frame handed to the journal's thread is appended first.
        self.journal_writer.stop();
        // Reservations never synced (their cycle's sync failed, so no
        // handler of theirs ran) are kept, as a crash after a later sync
        // would have kept them: a restart records them `interrupted`.
        let staged = self.lock_staged().map(|mut s| std::mem::take(&mut *s));
        let journal = staged
            .and_then(|records| self.journal.append(records))
            .and_then(|()| self.journal.compact_now());
        if let Err(e) = journal {
            tracing::warn!(error = %e, "could not append the last reservations to the journal at close");
        }
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
