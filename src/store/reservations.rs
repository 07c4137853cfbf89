//! Nonce reservations, single-use approvals, and the `counter` handler's
//! counters.
//!
//! A reservation is one sled transaction over three trees: it fails if the
//! nonce is already known — done (in `nonces`) or in flight (in `pending`)
//! — returning what is known, or if the approval is already consumed;
//! otherwise it records the nonce in the small `pending` tree and marks the
//! approval consumed. The ledger writer then makes it durable
//! ([`Store::sync_cycle`]) *before* anyone runs the handler. The sequencer
//! later writes the done record to `nonces` and deletes the pending one,
//! in the same transaction as the ledger entry — so "entry exists" and
//! "nonce done" are never out of step.
//!
//! A done record holds only the index of the nonce's entry (9 bytes): the
//! entry already says everything a replay needs (exec_id, request hash,
//! outcome), and sled keeps every done record for ever, so each byte here
//! is paid once per attempt, several times over on disk. Records written
//! before issue 5's fourth pass (the whole record, binary or JSON, also
//! kept in `nonces` while in flight before its third pass) still read.
//! At start-up only `pending` is scanned (its size is the number of
//! attempts in flight at a crash, not the size of the log).

use serde::Deserialize;
use sled::transaction::{
    ConflictableTransactionResult, TransactionError, Transactional, TransactionalTree,
};

use super::{Store, StoreError};
use crate::core::entry::Outcome;
use crate::core::hash::Hash;

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

/// What is known of a nonce, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    InFlight(PendingNonce),
    Done(u64),
}

impl From<Known> for Reservation {
    fn from(known: Known) -> Self {
        match known {
            Known::InFlight(p) => Self::InFlight(p),
            Known::Done(index) => Self::Done { index },
        }
    }
}

/// The nonce to mark done with an entry: its key (the entry's index is the
/// record).
#[derive(Debug, Clone)]
pub struct Completion {
    /// Nonce key (tenant ‖ 0x00 ‖ nonce).
    pub key: Vec<u8>,
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

/// First byte of a binary record that says everything (pending records;
/// done records before the fourth pass). JSON records, written before it,
/// start with `{`.
const RECORD_V1: u8 = 1;
/// First byte of a done record: `2` ‖ entry index (`u64`).
const RECORD_DONE: u8 = 2;
/// `status` / `index` of a record that has none yet.
const NO_STATUS: u16 = 0;
const NO_INDEX: u64 = u64::MAX;
/// String length that stands for `None` (`approval_key`).
const NO_STRING: u32 = u32::MAX;

/// A done record: the index of the entry that completed the nonce.
pub(super) fn encode_done(index: u64) -> [u8; 9] {
    let mut out = [RECORD_DONE; 9];
    out[1..].copy_from_slice(&index.to_be_bytes());
    out
}

/// A pending record's stored bytes, in the layout done records also had
/// before the fourth pass: `1` ‖ outcome (`u8`, 0 = none) ‖ request hash
/// (32) ‖ status (`u16`, 0 = none) ‖ index (`u64`, all ones = none) ‖
/// exec_id, approval key, action, tenant, nonce, each a `u32` length (all
/// ones = none) and UTF-8.
pub(super) fn encode_pending(record: &PendingNonce) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(128);
    out.push(RECORD_V1);
    out.push(0);
    out.extend_from_slice(record.request_hash.as_bytes());
    out.extend_from_slice(&NO_STATUS.to_be_bytes());
    out.extend_from_slice(&NO_INDEX.to_be_bytes());
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

fn decode(bytes: &[u8]) -> Result<Known, StoreError> {
    let corrupt = || StoreError::Corrupt("nonce record".into());
    match bytes.first() {
        Some(&RECORD_DONE) => {
            let index: [u8; 8] = bytes
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(corrupt)?;
            Ok(Known::Done(u64::from_be_bytes(index)))
        }
        Some(b'{') => serde_json::from_slice::<FullRecord>(bytes)
            .map_err(|e| StoreError::Corrupt(format!("nonce record: {e}")))?
            .known()
            .ok_or_else(corrupt),
        _ => decode_v1(bytes)
            .and_then(FullRecord::known)
            .ok_or_else(corrupt),
    }
}

/// A record in the layout that says everything (binary `1`, or JSON): a
/// pending record, or a done record written before the fourth pass.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullRecord {
    outcome: Option<Outcome>,
    request_hash: Hash,
    exec_id: String,
    approval_key: Option<String>,
    /// Kept by older done records; the entry's outcome now decides it.
    #[serde(default, rename = "status")]
    _status: serde::de::IgnoredAny,
    index: Option<u64>,
    action: String,
    tenant: String,
    nonce: String,
}

impl FullRecord {
    /// In flight without an outcome; done with one (and then it must name
    /// its entry).
    fn known(self) -> Option<Known> {
        match self.outcome {
            None => Some(Known::InFlight(PendingNonce {
                request_hash: self.request_hash,
                exec_id: self.exec_id,
                approval_key: self.approval_key,
                action: self.action,
                tenant: self.tenant,
                nonce: self.nonce,
            })),
            Some(_) => self.index.map(Known::Done),
        }
    }
}

fn decode_v1(bytes: &[u8]) -> Option<FullRecord> {
    let mut r = Reader(bytes);
    if r.take(1)? != [RECORD_V1] {
        return None;
    }
    let outcome = match r.take(1)?[0] {
        0 => None,
        code => Some(outcome_of(code)?),
    };
    let request_hash = Hash::from_slice(r.take(32)?).ok()?;
    // The status of older done records: the entry's outcome now decides it.
    r.take(2)?;
    let index = Some(u64::from_be_bytes(r.take(8)?.try_into().ok()?)).filter(|&i| i != NO_INDEX);
    let exec_id = r.string()??;
    let approval_key = r.string()?;
    let action = r.string()??;
    let tenant = r.string()??;
    let nonce = r.string()??;
    r.0.is_empty().then_some(FullRecord {
        outcome,
        request_hash,
        exec_id,
        approval_key,
        _status: serde::de::IgnoredAny,
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

/// Outcome codes of binary `1` records (1-based; 0 = none).
const OUTCOMES: [Outcome; 5] = [
    Outcome::Executed,
    Outcome::Failed,
    Outcome::Rejected,
    Outcome::Replayed,
    Outcome::Interrupted,
];

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
    pub record: &'a PendingNonce,
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
            value: encode_pending(request.record)?,
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
            Self::Existing(bytes) => Ok(decode(&bytes)?.into()),
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
        record: &PendingNonce,
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
    pub fn pending_reservations(&self) -> Result<Vec<(Vec<u8>, PendingNonce)>, StoreError> {
        self.inner
            .pending
            .iter()
            .map(|r| {
                let (k, v) = r?;
                match decode(&v)? {
                    Known::InFlight(p) => Ok((k.to_vec(), p)),
                    Known::Done(_) => Err(StoreError::Corrupt(
                        "a done nonce record in the pending tree".into(),
                    )),
                }
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

    fn record(n: u8) -> PendingNonce {
        PendingNonce {
            request_hash: Hash::from_bytes([n; 32]),
            exec_id: format!("exec-{n}"),
            approval_key: None,
            action: "echo".into(),
            tenant: String::new(),
            nonce: format!("nonce-{n}"),
        }
    }

    /// A done record as written before the fourth pass: the pending layout
    /// with an outcome, a status and an index.
    fn old_done_record(pending: &PendingNonce, outcome: Outcome, index: u64) -> Vec<u8> {
        let mut bytes = encode_pending(pending).unwrap();
        bytes[1] = (1u8..)
            .zip(OUTCOMES)
            .find(|(_, o)| *o == outcome)
            .unwrap()
            .0;
        bytes[34..36].copy_from_slice(&500u16.to_be_bytes());
        bytes[36..44].copy_from_slice(&index.to_be_bytes());
        bytes
    }

    #[test]
    fn pending_and_done_records_round_trip() {
        let mut pending = record(1);
        assert_eq!(
            decode(&encode_pending(&pending).unwrap()).unwrap(),
            Known::InFlight(pending.clone())
        );
        pending.approval_key = Some("key ‖ approval".into());
        assert_eq!(
            decode(&encode_pending(&pending).unwrap()).unwrap(),
            Known::InFlight(pending)
        );
        for index in [0, 7, (1 << 53) - 1, u64::MAX] {
            assert_eq!(decode(&encode_done(index)).unwrap(), Known::Done(index));
        }
    }

    #[test]
    fn done_records_written_before_still_decode_to_their_entry() {
        let pending = record(2);
        for outcome in OUTCOMES {
            let bytes = old_done_record(&pending, outcome, 41);
            assert_eq!(decode(&bytes).unwrap(), Known::Done(41), "{outcome}");
        }
        let json = serde_json::json!({
            "outcome": "executed", "request_hash": pending.request_hash,
            "exec_id": "e", "approval_key": null, "status": 200, "index": 7,
            "action": "echo", "tenant": "", "nonce": "n",
        });
        assert_eq!(
            decode(&serde_json::to_vec(&json).unwrap()).unwrap(),
            Known::Done(7)
        );
        let in_flight = serde_json::json!({
            "outcome": null, "request_hash": pending.request_hash,
            "exec_id": "exec-2", "approval_key": null, "status": null, "index": null,
            "action": "echo", "tenant": "", "nonce": "nonce-2",
        });
        assert_eq!(
            decode(&serde_json::to_vec(&in_flight).unwrap()).unwrap(),
            Known::InFlight(pending)
        );
    }

    #[test]
    fn damaged_records_are_corrupt_never_a_panic() {
        let pending = encode_pending(&record(4)).unwrap();
        let done = encode_done(5);
        let old_done = old_done_record(&record(4), Outcome::Executed, 5);
        for bytes in [&pending[..], &done[..], &old_done[..]] {
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert!(decode(&longer).is_err());
        }
        let mut bad_outcome = pending;
        bad_outcome[1] = 9;
        assert!(decode(&bad_outcome).is_err());
        // Done, but naming no entry.
        let mut no_index = old_done;
        no_index[36..44].copy_from_slice(&NO_INDEX.to_be_bytes());
        assert!(decode(&no_index).is_err());
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
            Reservation::InFlight(first.clone())
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

    #[test]
    fn a_done_record_is_nine_bytes_and_names_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&super::super::StoreConfig::new(dir.path())).unwrap();
        let key = nonce_key("t", "n-3");
        assert_eq!(
            store.reserve(&key, &record(3), None).unwrap(),
            Reservation::Reserved
        );
        let mut batch = super::super::BatchWrite::default();
        batch.entries.push(super::super::StoredEntry {
            index: 0,
            bytes: b"{}".to_vec(),
            signature: [0; 64],
            index_exec_id: None,
            content: None,
            completion: Some(Completion { key: key.clone() }),
        });
        batch.hashes.push((0, Hash::from_bytes([1; 32])));
        batch.head = Some(super::super::Head {
            size: 1,
            root: Hash::from_bytes([1; 32]),
            last_leaf: Hash::from_bytes([1; 32]),
        });
        store.commit(&batch).unwrap();
        assert_eq!(store.inner.nonces.get(&key).unwrap().unwrap().len(), 9);
        assert!(store.pending_reservations().unwrap().is_empty());
        assert_eq!(
            store.reserve(&key, &record(4), None).unwrap(),
            Reservation::Done { index: 0 }
        );
    }
}
