//! Nonce reservations and single-use approvals.
//!
//! A reservation fails if the nonce is already known — done (its
//! completing entry found through `nonces.tab`, see "Nonces" in
//! [`super`]) or in flight ([`InFlight`]) — returning what is known, or if
//! the approval is already consumed (by a committed entry, found through
//! `approvals.tab`; consumed for good, in sled's `approvals`; or held by a
//! reservation in flight; see "Approvals" in [`super`]); otherwise the
//! nonce and the approval it holds enter [`InFlight`] and its record is
//! staged for the reservation journal ([`journal`]). The ledger writer
//! makes it durable ([`Store::sync_cycle`]: one frame, one fdatasync)
//! *before* anyone runs the handler. The entry that carries the
//! reservation's exec_id resolves it: it completes the nonce (or releases
//! it, [`Completion::released`]), and the reservation leaves [`InFlight`]
//! when that entry's batch is written; the journal forgets it at its next
//! compaction once the batch is durable.
//!
//! At start-up only the journal is read (its size is the number of
//! attempts in flight at a crash, not the size of the log).

use std::collections::{HashMap, HashSet};

use sled::transaction::TransactionError;

use super::{Store, StoreError};

pub(super) mod journal;
mod record;
pub mod writer;

use crate::core::hash::Hash;
pub(super) use record::{decode_pending, encode_pending};

/// A nonce held by an attempt in flight: what is needed to record it as
/// `interrupted` if the process stops before its entry is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNonce {
    /// Request hash of the attempt that holds the nonce.
    pub request_hash: Hash,
    /// exec_id of that attempt.
    pub exec_id: String,
    /// The approval it consumed, if any.
    pub approval_key: Option<String>,
    /// Its action.
    pub action: String,
    /// Its tenant.
    pub tenant: String,
    /// The nonce (also in the key).
    pub nonce: String,
    /// The effects class of the handler it reserved for: what a restart
    /// records for it.
    pub effects: crate::core::entry::Effects,
    /// The id of the authenticated principal that made the attempt (16
    /// lowercase hex characters), if any.
    pub principal: Option<String>,
}

/// Result of a reservation attempt (expected conflicts are values, not errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The nonce is now reserved (and the approval consumed).
    Reserved,
    /// The nonce is held by an attempt still in flight.
    InFlight(PendingNonce),
    /// The nonce's attempt is done: its entry is at `index`.
    Done {
        /// Ledger index of the entry that completed the nonce.
        index: u64,
    },
    /// The approval was already consumed by another nonce.
    ApprovalUsed,
}

/// The nonce an entry resolves: its key, and how it was held until then.
/// An entry that completes its nonce (held [`Held::Reserved`] or
/// [`Held::Claimed`]) gets the completion flag in its record and its
/// nonce enters `nonces.tab`; one that releases it ([`Held::Released`])
/// gets neither.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Nonce key (tenant ‖ 0x00 ‖ nonce).
    pub key: Vec<u8>,
    /// How the nonce was held until its entry.
    pub held: Held,
}

/// How a resolved nonce was held until its entry was written, and what
/// the entry does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Reserved in an earlier cycle (a record in the reservation journal):
    /// the entry completes the nonce and ends the reservation.
    Reserved,
    /// Claimed in the entry's own cycle ([`Store::claim`]): the entry
    /// completes the nonce; nothing of it is in the journal.
    Claimed,
    /// Reserved in an earlier cycle, and the entry ends the reservation
    /// *without* completing the nonce (an idempotent-downstream attempt
    /// cut off by a restart): once the entry is durable, the nonce is free
    /// again and its approval, if any, is no longer held (nor consumed).
    Released,
}

impl Completion {
    /// The completion of a nonce reserved in an earlier cycle.
    #[must_use]
    pub fn reserved(key: Vec<u8>) -> Self {
        Self {
            key,
            held: Held::Reserved,
        }
    }

    /// The completion of a nonce claimed in the entry's own cycle.
    #[must_use]
    pub fn claimed(key: Vec<u8>) -> Self {
        Self {
            key,
            held: Held::Claimed,
        }
    }

    /// The end of a reservation made in an earlier cycle that leaves the
    /// nonce free: the entry records the attempt, the nonce is not done,
    /// and a later request may reserve it anew.
    #[must_use]
    pub fn released(key: Vec<u8>) -> Self {
        Self {
            key,
            held: Held::Released,
        }
    }

    /// Whether the entry completes its nonce (not [`Held::Released`]).
    #[must_use]
    pub fn completes(&self) -> bool {
        self.held != Held::Released
    }
}

/// The reservations in flight, in memory: the nonces reserved and not yet
/// resolved by a written entry, and the approvals they hold. Sized by the
/// attempts in flight; behind the store's nonce lock (see "Nonces" in
/// [`super`]).
#[derive(Debug, Default)]
pub(super) struct InFlight {
    nonces: HashMap<Vec<u8>, PendingNonce>,
    /// Approval consume key → nonce key of the reservation holding it.
    approvals: HashMap<String, Vec<u8>>,
}

/// What the written entries of a batch did to the reservations in flight.
#[derive(Debug, Default)]
pub(super) struct Resolution {
    /// The reservations the batch resolved (the journal forgets them once
    /// the batch is durable).
    pub(super) attempts: Vec<journal::Attempt>,
    /// Approvals consumed for good: (approval key, nonce key) of a
    /// reservation completed by an entry that does not name its approval.
    pub(super) for_good: Vec<(String, Vec<u8>)>,
    /// The reservations the batch releases ([`Held::Released`]): still in
    /// flight, with their approvals held, until the batch is durable
    /// ([`InFlight::release`]) — so that no reservation, answered as soon
    /// as its own journal frame is durable, rests on a release a crash
    /// could still undo.
    pub(super) released: Vec<journal::Attempt>,
}

impl InFlight {
    /// The reservations in flight found at open.
    pub(super) fn of(live: impl IntoIterator<Item = (Vec<u8>, PendingNonce)>) -> Self {
        let mut in_flight = Self::default();
        for (key, pending) in live {
            in_flight.hold(key, pending);
        }
        in_flight
    }

    fn hold(&mut self, key: Vec<u8>, pending: PendingNonce) {
        if let Some(ak) = &pending.approval_key {
            self.approvals.insert(ak.clone(), key.clone());
        }
        self.nonces.insert(key, pending);
    }

    /// Ends the reservations that `batch`'s entries resolve (see
    /// [`Held`]).
    pub(super) fn resolve(&mut self, batch: &super::BatchWrite) -> Resolution {
        let mut out = Resolution::default();
        for e in &batch.entries {
            let Some(c) = e.completion.as_ref().filter(|c| c.held != Held::Claimed) else {
                continue;
            };
            if c.held == Held::Released {
                if let Some(pending) = self.nonces.get(&c.key) {
                    let attempt = (c.key.clone(), pending.exec_id.clone());
                    out.released.push(attempt.clone());
                    out.attempts.push(attempt);
                }
                continue;
            }
            let Some(pending) = self.nonces.remove(&c.key) else {
                continue;
            };
            if let Some(ak) = pending.approval_key {
                self.approvals.remove(&ak);
                if c.held == Held::Reserved && e.approval_key.as_deref() != Some(ak.as_str()) {
                    out.for_good.push((ak, c.key.clone()));
                }
            }
            out.attempts.push((c.key.clone(), pending.exec_id));
        }
        if self.nonces.capacity() > 4 * self.nonces.len().max(64) {
            self.nonces.shrink_to_fit();
            self.approvals.shrink_to_fit();
        }
        out
    }

    /// Ends the reservations a durable batch released (see
    /// [`Resolution::released`]); one reserved again since (another
    /// exec_id) stays.
    pub(super) fn release(&mut self, released: &[journal::Attempt]) {
        for (key, exec_id) in released {
            if self.nonces.get(key).is_some_and(|p| &p.exec_id == exec_id) {
                if let Some(ak) = self.nonces.remove(key).and_then(|p| p.approval_key) {
                    self.approvals.remove(&ak);
                }
            }
        }
    }

    /// The attempt holding `key`, if it is in flight.
    pub(super) fn holder(&self, key: &[u8]) -> Option<&PendingNonce> {
        self.nonces.get(key)
    }

    /// Whether a reservation in flight holds the approval `key`.
    pub(super) fn holds_approval(&self, key: &str) -> bool {
        self.approvals.contains_key(key)
    }
}

pub use crate::core::entry::nonce_key;

/// One reservation to make inside a writer cycle's transaction
/// ([`Store::write_cycle`]).
#[derive(Debug, Clone, Copy)]
pub struct ReservationRequest<'a> {
    /// Nonce key (tenant ‖ 0x00 ‖ nonce).
    pub key: &'a [u8],
    /// The pending record to store under it.
    pub record: &'a PendingNonce,
}

impl Store {
    /// Decides reservations whose entries are appended in this same cycle
    /// (handlers without effects), writing nothing: each is refused if its
    /// nonce is done or in flight — reserved in the store, or claimed by an
    /// earlier request of `requests` — or its approval is consumed or
    /// claimed earlier in `requests`; otherwise it is won (`Reserved`).
    ///
    /// A won claim holds its nonce only in the caller's hands: the entry
    /// that completes it ([`Completion::claimed`]) must be committed in the
    /// same cycle, by the same writer, and that entry is what consumes the
    /// approval (it names it; `approvals.tab` takes it with the nonce) — so
    /// nonce, approval and entry become durable together or not at all,
    /// and nothing is left in the journal for a crash to turn into
    /// `interrupted`. Sound only because the ledger writer alone reserves
    /// and commits: nothing can change the reservations in flight,
    /// `nonces.tab` or `approvals.tab` between this decision and that
    /// commit.
    pub fn claim(
        &self,
        requests: &[ReservationRequest<'_>],
    ) -> Result<Vec<Result<Reservation, StoreError>>, StoreError> {
        let in_flight = self.lock_nonce_order()?;
        let mut nonces: HashMap<&[u8], &PendingNonce> = HashMap::new();
        let mut approvals: HashSet<&str> = HashSet::new();
        let mut results = Vec::with_capacity(requests.len());
        for r in requests {
            if let Err(e) = self.inner.faults.check(super::FaultPoint::ReserveWrite) {
                results.push(Err(e));
                continue;
            }
            // A lookup that fails (damage found, an I/O error) fails
            // this claim alone; the others of the cycle go on.
            let found = self.claim_one(r, &in_flight, &nonces, &approvals);
            if matches!(found, Ok(Reservation::Reserved)) {
                nonces.insert(r.key, r.record);
                approvals.extend(r.record.approval_key.as_deref());
            }
            results.push(found);
        }
        Ok(results)
    }

    /// One claim's decision, given what earlier claims of its cycle took.
    fn claim_one(
        &self,
        r: &ReservationRequest<'_>,
        in_flight: &InFlight,
        nonces: &HashMap<&[u8], &PendingNonce>,
        approvals: &HashSet<&str>,
    ) -> Result<Reservation, StoreError> {
        if let Some(index) = self.done_index(r.key)? {
            return Ok(Reservation::Done { index });
        }
        if let Some(&holder) = nonces.get(r.key) {
            return Ok(Reservation::InFlight(holder.clone()));
        }
        if let Some(holder) = in_flight.holder(r.key) {
            return Ok(Reservation::InFlight(holder.clone()));
        }
        if let Some(ak) = r.record.approval_key.as_deref() {
            if approvals.contains(ak) || self.approval_used_unlocked(in_flight, ak)? {
                return Ok(Reservation::ApprovalUsed);
            }
        }
        Ok(Reservation::Reserved)
    }

    /// One reservation of a writer cycle, under the nonce lock: refuses a
    /// nonce done (in `done`, this cycle's batch, or `nonces.tab`) or in
    /// flight, and an approval consumed (by this cycle's batch,
    /// `consumed`, or before) or held; otherwise the nonce and its
    /// approval enter `in_flight` and its journal record is staged for the
    /// cycle's sync.
    pub(super) fn reserve_locked(
        &self,
        in_flight: &mut InFlight,
        r: ReservationRequest<'_>,
        done: Option<u64>,
        consumed: bool,
    ) -> Result<Reservation, StoreError> {
        self.inner.faults.check(super::FaultPoint::ReserveWrite)?;
        let record = encode_pending(r.record)?;
        // A lookup that meets damage fails this reservation alone, never
        // as "not done".
        let done = match done {
            Some(index) => Some(index),
            None => self.done_index(r.key)?,
        };
        if let Some(index) = done {
            return Ok(Reservation::Done { index });
        }
        if let Some(holder) = in_flight.holder(r.key) {
            return Ok(Reservation::InFlight(holder.clone()));
        }
        if let Some(ak) = r.record.approval_key.as_deref() {
            if consumed || self.approval_used_unlocked(in_flight, ak)? {
                return Ok(Reservation::ApprovalUsed);
            }
        }
        in_flight.hold(r.key.to_vec(), r.record.clone());
        self.inner.lock_staged()?.push((
            r.record.exec_id.clone(),
            journal::JournalRecord {
                key: r.key.to_vec(),
                record,
            },
        ));
        Ok(Reservation::Reserved)
    }

    /// Reserves `key` for `record` and holds `approval_key` (the record's
    /// own approval, which the record names), on its own. Not yet durable:
    /// sync ([`Store::sync_cycle`], [`Store::sync_reservations`]) before
    /// acting on it. (The service reserves through the ledger writer's
    /// [`Store::write_cycle`] instead, which shares one journal frame and
    /// one sync among all the reservations of a cycle.)
    pub fn reserve(
        &self,
        key: &[u8],
        record: &PendingNonce,
        approval_key: Option<&str>,
    ) -> Result<Reservation, StoreError> {
        let mut in_flight = self.lock_nonce_order()?;
        let record = PendingNonce {
            approval_key: approval_key.map(str::to_owned),
            ..record.clone()
        };
        self.reserve_locked(
            &mut in_flight,
            ReservationRequest {
                key,
                record: &record,
            },
            None,
            false,
        )
    }

    /// Whether an approval was consumed: by a committed entry (see
    /// "Approvals" in [`super`]), for good by an attempt whose entry does
    /// not name it, or by a reservation still in flight.
    pub fn approval_used(&self, approval_key: &str) -> Result<bool, StoreError> {
        let in_flight = self.lock_nonce_order()?;
        self.approval_used_unlocked(&in_flight, approval_key)
    }

    /// The index of the committed entry that consumed an approval, as a
    /// reservation would find it (`openexec audit` checks that each entry
    /// that consumed one is its approval's answer).
    pub fn approval_consumer(&self, approval_key: &str) -> Result<Option<u64>, StoreError> {
        let _order = self.lock_nonce_order()?;
        self.approval_done(approval_key)
    }

    /// [`Self::approval_used`], for callers that hold the nonce lock.
    fn approval_used_unlocked(
        &self,
        in_flight: &InFlight,
        approval_key: &str,
    ) -> Result<bool, StoreError> {
        Ok(in_flight.holds_approval(approval_key)
            || self.approval_done(approval_key)?.is_some()
            || self.inner.approvals.contains_key(approval_key.as_bytes())?)
    }

    /// Reservations in flight (at start-up: attempts in flight when the
    /// process stopped), in nonce-key order.
    pub fn pending_reservations(&self) -> Result<Vec<(Vec<u8>, PendingNonce)>, StoreError> {
        let in_flight = self.lock_nonce_order()?;
        let mut all: Vec<(Vec<u8>, PendingNonce)> = in_flight
            .nonces
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// Increments a named counter and returns the new value. Made durable
    /// by the sync of the cycle that writes the entry recording the
    /// attempt (or an earlier one): the increment's journal record is
    /// staged before that entry is queued (see [`crate::store::counters`]).
    pub fn increment_counter(&self, name: &str) -> Result<u64, StoreError> {
        self.inner.counters.increment(name, |record| {
            self.inner.lock_staged()?.push((String::new(), record));
            Ok(())
        })
    }

    /// A counter's current value.
    pub fn counter(&self, name: &str) -> Result<u64, StoreError> {
        self.inner.counters.get(name)
    }
}

pub(super) fn tx_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(s) => StoreError::Sled(s),
        TransactionError::Abort(()) => StoreError::Corrupt("transaction aborted".into()),
    }
}

#[cfg(test)]
mod tests;
