//! Nonce reservations, single-use approvals, and the `counter` handler's
//! counters.
//!
//! A reservation is one sled transaction over three trees: it fails if the
//! nonce is already known — done (in `nonces`) or in flight (in `pending`)
//! — returning what is known, or if the approval is already consumed;
//! otherwise it records the nonce in the small `pending` tree and marks the
//! approval consumed. The ledger writer then makes it durable
//! ([`Store::sync_cycle`]) *before* anyone runs the handler. The sequencer
//! later writes the final record to `nonces` and deletes the pending one,
//! in the same transaction as the ledger entry — so "entry exists" and
//! "nonce done" are never out of step. (Until issue 5's third pass the
//! pending record was written to `nonces` too: one record more per attempt
//! for sled to write and collect. Stores of that time hold such records
//! only for attempts in flight at their last stop, and read the same.)
//! At start-up only `pending` is scanned (its size is the number of
//! attempts in flight at a crash, not the size of the log).

use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionResult, TransactionError, Transactional, TransactionalTree,
};

use super::{Store, StoreError};
use crate::core::entry::Outcome;
use crate::core::hash::Hash;

/// What is known of a nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceRecord {
    /// `None` while in flight; the recorded outcome once done.
    pub outcome: Option<Outcome>,
    /// Request hash of the attempt that holds the nonce.
    pub request_hash: Hash,
    /// exec_id of that attempt.
    pub exec_id: String,
    /// The approval it consumed, if any.
    pub approval_key: Option<String>,
    /// HTTP status it was answered with, once done.
    pub status: Option<u16>,
    /// Its ledger index, once done.
    pub index: Option<u64>,
    /// Action and approval summary, to record an `interrupted` entry at restart.
    pub action: String,
    /// Tenant.
    pub tenant: String,
    /// Nonce (also in the key; kept for the interrupted entry).
    pub nonce: String,
}

/// Result of a reservation attempt (expected conflicts are values, not errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The nonce is now reserved (and the approval consumed).
    Reserved,
    /// The nonce was already known.
    Existing(NonceRecord),
    /// The approval was already consumed by another nonce.
    ApprovalUsed,
}

/// The final nonce record to write with the entry, under `key`.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Nonce key (tenant ‖ 0x00 ‖ nonce).
    pub key: Vec<u8>,
    /// The done record.
    pub record: NonceRecord,
}

/// The key of a nonce in its tenant's scope.
#[must_use]
pub fn nonce_key(tenant: &str, nonce: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + 1 + nonce.len());
    key.extend_from_slice(tenant.as_bytes());
    key.push(0);
    key.extend_from_slice(nonce.as_bytes());
    key
}

/// First byte of a binary nonce record (JSON records, written before it,
/// start with `{`).
const RECORD_V1: u8 = 1;
/// `status` / `index` of a record that has none yet.
const NO_STATUS: u16 = 0;
const NO_INDEX: u64 = u64::MAX;
/// String length that stands for `None` (`approval_key`).
const NO_STRING: u32 = u32::MAX;

/// A nonce record's stored bytes: `1` ‖ outcome (`u8`, 0 = none) ‖
/// request hash (32) ‖ status (`u16`, 0 = none) ‖ index (`u64`, all ones =
/// none) ‖ exec_id, approval key, action, tenant, nonce, each a `u32`
/// length (all ones = none) and UTF-8. About half the JSON it replaced:
/// every attempt writes its record twice and sled keeps it forever.
pub(super) fn encode(record: &NonceRecord) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(128);
    out.push(RECORD_V1);
    out.push(record.outcome.map_or(0, outcome_code));
    out.extend_from_slice(record.request_hash.as_bytes());
    out.extend_from_slice(&record.status.unwrap_or(NO_STATUS).to_be_bytes());
    out.extend_from_slice(&record.index.unwrap_or(NO_INDEX).to_be_bytes());
    for text in [
        Some(&record.exec_id),
        record.approval_key.as_ref(),
        Some(&record.action),
        Some(&record.tenant),
        Some(&record.nonce),
    ] {
        let len = match text {
            Some(t) => u32::try_from(t.len())
                .ok()
                .filter(|&l| l != NO_STRING)
                .ok_or(StoreError::TooLarge(t.len()))?,
            None => NO_STRING,
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(text.map_or(&[][..], |t| t.as_bytes()));
    }
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<NonceRecord, StoreError> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("nonce record: {e}")));
    }
    decode_v1(bytes).ok_or_else(|| StoreError::Corrupt("nonce record".into()))
}

fn decode_v1(bytes: &[u8]) -> Option<NonceRecord> {
    let mut r = Reader(bytes);
    if r.take(1)? != [RECORD_V1] {
        return None;
    }
    let outcome = match r.take(1)?[0] {
        0 => None,
        code => Some(outcome_of(code)?),
    };
    let request_hash = Hash::from_slice(r.take(32)?).ok()?;
    let status = Some(u16::from_be_bytes(r.take(2)?.try_into().ok()?)).filter(|&s| s != NO_STATUS);
    let index = Some(u64::from_be_bytes(r.take(8)?.try_into().ok()?)).filter(|&i| i != NO_INDEX);
    let exec_id = r.string()??;
    let approval_key = r.string()?;
    let action = r.string()??;
    let tenant = r.string()??;
    let nonce = r.string()??;
    r.0.is_empty().then_some(NonceRecord {
        outcome,
        request_hash,
        exec_id,
        approval_key,
        status,
        index,
        action,
        tenant,
        nonce,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A length-prefixed string: `Some(None)` for the `None` length.
    fn string(&mut self) -> Option<Option<String>> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        if len == NO_STRING {
            return Some(None);
        }
        let bytes = self.take(usize::try_from(len).ok()?)?;
        Some(Some(String::from_utf8(bytes.to_vec()).ok()?))
    }
}

const OUTCOMES: [Outcome; 5] = [
    Outcome::Executed,
    Outcome::Failed,
    Outcome::Rejected,
    Outcome::Replayed,
    Outcome::Interrupted,
];

fn outcome_code(outcome: Outcome) -> u8 {
    (1u8..)
        .zip(OUTCOMES)
        .find(|(_, o)| *o == outcome)
        .map_or(0, |(c, _)| c)
}

fn outcome_of(code: u8) -> Option<Outcome> {
    OUTCOMES.get(usize::from(code).checked_sub(1)?).copied()
}

/// One reservation to make inside a writer cycle's transaction
/// ([`Store::write_cycle`]).
#[derive(Debug, Clone, Copy)]
pub struct ReservationRequest<'a> {
    /// Nonce key (tenant ‖ 0x00 ‖ nonce).
    pub key: &'a [u8],
    /// The pending record to store under it.
    pub record: &'a NonceRecord,
}

/// A reservation as the transaction saw it: its stored value is encoded
/// before the transaction (which may run more than once).
pub(super) struct Encoded<'a> {
    pub(super) key: &'a [u8],
    pub(super) value: Vec<u8>,
    pub(super) approval_key: Option<&'a str>,
}

impl<'a> Encoded<'a> {
    pub(super) fn new(request: ReservationRequest<'a>) -> Result<Self, StoreError> {
        Ok(Self {
            key: request.key,
            value: encode(request.record)?,
            approval_key: request.record.approval_key.as_deref(),
        })
    }
}

/// What a reservation found, inside the transaction: the raw existing
/// record is decoded only afterwards.
pub(super) enum Found {
    Reserved,
    ApprovalUsed,
    Existing(Vec<u8>),
}

impl Found {
    pub(super) fn decode(self) -> Result<Reservation, StoreError> {
        match self {
            Self::Reserved => Ok(Reservation::Reserved),
            Self::ApprovalUsed => Ok(Reservation::ApprovalUsed),
            Self::Existing(bytes) => Ok(Reservation::Existing(decode(&bytes)?)),
        }
    }
}

/// The body of one reservation, inside a transaction over `nonces`,
/// `pending` and `approvals`: refuses a known nonce or a consumed approval,
/// otherwise records the nonce as pending and consumes the approval.
pub(super) fn reserve_in(
    nonces: &TransactionalTree,
    pending: &TransactionalTree,
    approvals: &TransactionalTree,
    r: &Encoded<'_>,
) -> ConflictableTransactionResult<Found, ()> {
    let existing = match nonces.get(r.key)? {
        Some(done) => Some(done),
        None => pending.get(r.key)?,
    };
    if let Some(existing) = existing {
        return Ok(Found::Existing(existing.to_vec()));
    }
    if let Some(ak) = r.approval_key {
        if approvals.get(ak.as_bytes())?.is_some() {
            return Ok(Found::ApprovalUsed);
        }
        approvals.insert(ak.as_bytes(), r.key)?;
    }
    pending.insert(r.key, r.value.as_slice())?;
    Ok(Found::Reserved)
}

impl Store {
    /// Atomically reserves `key` for `record` and consumes `approval_key`,
    /// in a transaction of its own. Not yet durable: sync
    /// ([`Store::sync_cycle`]) before acting on it. (The service reserves
    /// through the ledger writer's [`Store::write_cycle`] instead, which
    /// shares one transaction among all the reservations of a cycle.)
    pub fn reserve(
        &self,
        key: &[u8],
        record: &NonceRecord,
        approval_key: Option<&str>,
    ) -> Result<Reservation, StoreError> {
        self.inner.faults.check(super::FaultPoint::ReserveWrite)?;
        let encoded = Encoded {
            approval_key,
            ..Encoded::new(ReservationRequest { key, record })?
        };
        let i = &self.inner;
        (&i.nonces, &i.pending, &i.approvals)
            .transaction(|(nonces, pending, approvals)| {
                reserve_in(nonces, pending, approvals, &encoded)
            })
            .map_err(tx_error)?
            .decode()
    }

    /// The nonce key an approval was consumed by, if it was.
    pub fn approval_consumed_by(&self, approval_key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .inner
            .approvals
            .get(approval_key.as_bytes())?
            .map(|v| v.to_vec()))
    }

    /// Reservations left pending (attempts in flight when the process stopped).
    pub fn pending_reservations(&self) -> Result<Vec<(Vec<u8>, NonceRecord)>, StoreError> {
        self.inner
            .pending
            .iter()
            .map(|r| {
                let (k, v) = r?;
                Ok((k.to_vec(), decode(&v)?))
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
mod tests {
    use super::*;

    fn record(n: u8) -> NonceRecord {
        NonceRecord {
            outcome: None,
            request_hash: Hash::from_bytes([n; 32]),
            exec_id: format!("exec-{n}"),
            approval_key: None,
            status: None,
            index: None,
            action: "echo".into(),
            tenant: String::new(),
            nonce: format!("nonce-{n}"),
        }
    }

    #[test]
    fn records_round_trip_in_every_state_and_shrink() {
        let pending = record(1);
        let mut done = record(2);
        done.approval_key = Some("key ‖ approval".into());
        done.status = Some(409);
        done.index = Some((1 << 53) - 1);
        for outcome in OUTCOMES {
            done.outcome = Some(outcome);
            assert_eq!(decode(&encode(&done).unwrap()).unwrap(), done);
        }
        let bytes = encode(&pending).unwrap();
        assert_eq!(decode(&bytes).unwrap(), pending);
        let json = serde_json::to_vec(&pending).unwrap();
        assert!(
            bytes.len() * 2 < json.len(),
            "{} vs {}",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn json_records_written_before_still_decode() {
        let mut done = record(3);
        done.outcome = Some(Outcome::Executed);
        done.status = Some(200);
        done.index = Some(7);
        let json = serde_json::to_vec(&done).unwrap();
        assert_eq!(decode(&json).unwrap(), done);
    }

    #[test]
    fn damaged_records_are_corrupt_never_a_panic() {
        let bytes = encode(&record(4)).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut bad_outcome = bytes;
        bad_outcome[1] = 9;
        assert!(decode(&bad_outcome).is_err());
    }

    #[test]
    fn a_nonce_in_flight_is_known_from_the_pending_tree_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&super::super::StoreConfig::new(dir.path())).unwrap();
        let key = nonce_key("", "n-1");
        let first = record(1);
        assert_eq!(
            store.reserve(&key, &first, Some("approval-1")).unwrap(),
            Reservation::Reserved
        );
        assert_eq!(
            store.reserve(&key, &record(9), None).unwrap(),
            Reservation::Existing(first.clone())
        );
        assert_eq!(
            store
                .reserve(&nonce_key("", "n-2"), &record(2), Some("approval-1"))
                .unwrap(),
            Reservation::ApprovalUsed
        );
        assert!(store.inner.nonces.get(&key).unwrap().is_none());
        assert_eq!(store.pending_reservations().unwrap(), vec![(key, first)]);
    }
}
