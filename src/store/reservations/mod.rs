//! Nonce reservations, single-use approvals, and the `counter` handler's
//! counters.
//!
//! A reservation fails if the nonce is already known — done (its
//! completing entry found through `nonces.tab`, checked by the store
//! before the transaction, see "Nonces" in [`super`]) or in flight (in
//! `pending`) — returning what is known, or if the approval is already
//! consumed (by a committed entry, found through `approvals.tab`, or held
//! by a reservation in flight, in `approvals`; see "Approvals" in
//! [`super`]); otherwise one sled transaction records the nonce in the
//! small `pending` tree and the approval as held in `approvals`. The
//! ledger writer then makes it durable ([`Store::sync_cycle`]) *before*
//! anyone runs the handler. The sequencer later deletes both records in
//! the same transaction as the ledger entry whose record carries the
//! completion flag (and names the approval) — so "entry exists", "nonce
//! done" and "approval consumed" are never out of step.
//!
//! At start-up only `pending` is scanned (its size is the number of
//! attempts in flight at a crash, not the size of the log).

use std::collections::{HashMap, HashSet};

use sled::transaction::{
    ConflictableTransactionResult, TransactionError, Transactional, TransactionalTree,
};

use super::{Store, StoreError};

mod record;

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

/// The nonce an entry completes: its key (the entry's record gets the
/// completion flag, the nonce enters `nonces.tab`), and how it was held
/// until then.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Nonce key (tenant ‖ 0x00 ‖ nonce).
    pub key: Vec<u8>,
    /// How the nonce was held until its entry.
    pub held: Held,
}

/// How a completed nonce was held until its entry was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Reserved in an earlier cycle: the entry's batch removes its pending
    /// record (and its approval's in-flight record) in a sled transaction.
    Reserved,
    /// Claimed in the entry's own cycle ([`Store::claim`]): nothing of it
    /// is in sled.
    Claimed,
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

    /// The resolution of a reservation whose entry does not complete the
    /// nonce (an idempotent-downstream attempt cut off by a crash).
    #[must_use]
    pub fn released(key: Vec<u8>) -> Self {
        Self::reserved(key)
    }

    /// The completion of a nonce claimed in the entry's own cycle.
    #[must_use]
    pub fn claimed(key: Vec<u8>) -> Self {
        Self {
            key,
            held: Held::Claimed,
        }
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

/// A reservation as the transaction saw it: its stored value is encoded
/// before the transaction (which may run more than once).
pub(super) struct Encoded<'a> {
    pub(super) key: &'a [u8],
    pub(super) value: Vec<u8>,
    pub(super) approval_key: Option<&'a str>,
    /// The index of the entry that completed the nonce, if it is done
    /// (looked up by the store before the transaction).
    pub(super) done: Option<u64>,
    /// Whether the approval was consumed by a committed entry (found in
    /// `approvals.tab` or in the cycle's batch by the store before the
    /// transaction; the transaction checks sled's in-flight records).
    pub(super) approval_done: bool,
}

impl<'a> Encoded<'a> {
    pub(super) fn new(request: ReservationRequest<'a>) -> Result<Self, StoreError> {
        Ok(Self {
            key: request.key,
            value: encode_pending(request.record)?,
            approval_key: request.record.approval_key.as_deref(),
            done: None,
            approval_done: false,
        })
    }
}

/// What a reservation found, inside the transaction: the raw existing
/// record is decoded only afterwards.
pub(super) enum Found {
    Reserved,
    ApprovalUsed,
    Done(u64),
    InFlight(Vec<u8>),
}

impl Found {
    pub(super) fn decode(self) -> Result<Reservation, StoreError> {
        match self {
            Self::Reserved => Ok(Reservation::Reserved),
            Self::ApprovalUsed => Ok(Reservation::ApprovalUsed),
            Self::Done(index) => Ok(Reservation::Done { index }),
            Self::InFlight(bytes) => decode_pending(&bytes).map(Reservation::InFlight),
        }
    }
}

/// The body of one reservation, inside a transaction over `pending` and
/// `approvals`: refuses a nonce found done (before the transaction) or in
/// flight, or an approval consumed (found done before the transaction, or
/// held in flight in `approvals`); otherwise records the nonce as pending
/// and the approval as held by it.
pub(super) fn reserve_in(
    pending: &TransactionalTree,
    approvals: &TransactionalTree,
    r: &Encoded<'_>,
) -> ConflictableTransactionResult<Found, ()> {
    if let Some(index) = r.done {
        return Ok(Found::Done(index));
    }
    if let Some(existing) = pending.get(r.key)? {
        return Ok(Found::InFlight(existing.to_vec()));
    }
    if let Some(ak) = r.approval_key {
        if r.approval_done || approvals.get(ak.as_bytes())?.is_some() {
            return Ok(Found::ApprovalUsed);
        }
        approvals.insert(ak.as_bytes(), r.key)?;
    }
    pending.insert(r.key, r.value.as_slice())?;
    Ok(Found::Reserved)
}

impl Store {
    /// Decides reservations whose entries are appended in this same cycle
    /// (handlers without effects), writing nothing: each is refused if its
    /// nonce is done or in flight — pending in the store, or claimed by an
    /// earlier request of `requests` — or its approval is consumed or
    /// claimed earlier in `requests`; otherwise it is won (`Reserved`).
    ///
    /// A won claim holds its nonce only in the caller's hands: the entry
    /// that completes it ([`Completion::claimed`]) must be committed in the
    /// same cycle, by the same writer, and that entry is what consumes the
    /// approval (it names it; `approvals.tab` takes it with the nonce) — so
    /// nonce, approval and entry become durable together or not at all,
    /// and nothing is left pending for a crash to turn into `interrupted`.
    /// Sound only because the ledger writer alone reserves and commits:
    /// nothing can change `pending`, `approvals`, `nonces.tab` or
    /// `approvals.tab` between this decision and that commit.
    pub fn claim(
        &self,
        requests: &[ReservationRequest<'_>],
    ) -> Result<Vec<Result<Reservation, StoreError>>, StoreError> {
        let _order = self.lock_nonce_order()?;
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
            let found = self.claim_one(r, &nonces, &approvals);
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
        nonces: &HashMap<&[u8], &PendingNonce>,
        approvals: &HashSet<&str>,
    ) -> Result<Reservation, StoreError> {
        if let Some(index) = self.done_index(r.key)? {
            return Ok(Reservation::Done { index });
        }
        if let Some(&holder) = nonces.get(r.key) {
            return Ok(Reservation::InFlight(holder.clone()));
        }
        if let Some(existing) = self.inner.pending.get(r.key)? {
            return decode_pending(&existing).map(Reservation::InFlight);
        }
        if let Some(ak) = r.record.approval_key.as_deref() {
            if approvals.contains(ak) || self.approval_used_unlocked(ak)? {
                return Ok(Reservation::ApprovalUsed);
            }
        }
        Ok(Reservation::Reserved)
    }

    /// Atomically reserves `key` for `record` and consumes `approval_key`,
    /// in a transaction of its own. Not yet durable: sync
    /// ([`Store::sync_cycle`]) before acting on it. (The service reserves
    /// through the ledger writer's [`Store::write_cycle`] instead, which
    /// shares one transaction among all the reservations of a cycle.)
    pub fn reserve(
        &self,
        key: &[u8],
        record: &PendingNonce,
        approval_key: Option<&str>,
    ) -> Result<Reservation, StoreError> {
        self.inner.faults.check(super::FaultPoint::ReserveWrite)?;
        let _order = self.lock_nonce_order()?;
        let encoded = Encoded {
            approval_key,
            done: self.done_index(key)?,
            approval_done: match approval_key {
                Some(ak) => self.approval_done(ak)?.is_some(),
                None => false,
            },
            ..Encoded::new(ReservationRequest { key, record })?
        };
        let i = &self.inner;
        (&i.pending, &i.approvals)
            .transaction(|(pending, approvals)| reserve_in(pending, approvals, &encoded))
            .map_err(tx_error)?
            .decode()
    }

    /// Whether an approval was consumed: by a committed entry (see
    /// "Approvals" in [`super`]) or by a reservation still in flight.
    pub fn approval_used(&self, approval_key: &str) -> Result<bool, StoreError> {
        let _order = self.lock_nonce_order()?;
        self.approval_used_unlocked(approval_key)
    }

    /// The index of the committed entry that consumed an approval, as a
    /// reservation would find it (`openexec audit` checks that each entry
    /// that consumed one is its approval's answer).
    pub fn approval_consumer(&self, approval_key: &str) -> Result<Option<u64>, StoreError> {
        let _order = self.lock_nonce_order()?;
        self.approval_done(approval_key)
    }

    /// [`Self::approval_used`], for callers that hold the nonce lock.
    fn approval_used_unlocked(&self, approval_key: &str) -> Result<bool, StoreError> {
        Ok(self.approval_done(approval_key)?.is_some()
            || self.inner.approvals.get(approval_key.as_bytes())?.is_some())
    }

    /// Reservations left pending (attempts in flight when the process stopped).
    pub fn pending_reservations(&self) -> Result<Vec<(Vec<u8>, PendingNonce)>, StoreError> {
        self.inner
            .pending
            .iter()
            .map(|r| {
                let (k, v) = r?;
                Ok((k.to_vec(), decode_pending(&v)?))
            })
            .collect()
    }

    /// Increments a named counter and returns the new value. Made durable
    /// by the ledger commit that records the attempt (same sled log file).
    pub fn increment_counter(&self, name: &str) -> Result<u64, StoreError> {
        let next = self
            .inner
            .counters
            .update_and_fetch(name.as_bytes(), |old| {
                let value = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some(value.saturating_add(1).to_be_bytes().to_vec())
            })?;
        let bytes = next.ok_or_else(|| StoreError::Corrupt("counter vanished".into()))?;
        let array: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::Corrupt("counter value".into()))?;
        Ok(u64::from_be_bytes(array))
    }

    /// A counter's current value.
    pub fn counter(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .counters
            .get(name.as_bytes())?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
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
