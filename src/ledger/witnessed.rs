//! The log's side of witnessing: accepting cosignatures, publishing a
//! checkpoint for witnesses, and choosing the checkpoint a refreshed
//! receipt proves against.
//!
//! Witnesses pull: they read the published checkpoint, check it against
//! their own state and hand back a cosignature (`POST
//! /ledger/cosignatures`). The log verifies each cosignature with the
//! witness keys it was configured with before storing it, and never waits
//! on a witness: nothing here runs on the append path.
//!
//! The published checkpoint advances at most once per `publish_interval`,
//! so that witnesses polling at different moments under load cosign the
//! *same* tree size and a quorum can form on one checkpoint. Receipts
//! refreshed later (`GET /receipts/{exec_id}`) prove against the cosigned
//! checkpoint with the most cosignatures among the newest that cover the
//! entry, and against the latest checkpoint while none does.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::core::checkpoint::{CheckpointError, SignedCheckpoint};
use crate::core::cosignature::{
    cosignatures_on, count_cosignatures, with_cosignatures, CosignedNoteError, WitnessVerifier,
};
use crate::core::proof::{tree_root, TreeSize};
use crate::store::{Store, StoreError, StoreHashReader, KEEP_COSIGNED};

use super::{Ledger, LedgerError};

/// How many of the newest cosigned checkpoints a refreshed receipt looks at.
const RECEIPT_CANDIDATES: usize = 16;

/// Why a cosignature was not accepted (each maps to one HTTP status).
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    /// Not a well-formed checkpoint note.
    #[error("malformed checkpoint note: {0}")]
    Malformed(String),
    /// Not signed by this log's key (or for another origin).
    #[error("the checkpoint is not signed by this log: {0}")]
    NotThisLog(CheckpointError),
    /// No cosignature from a witness key this log trusts.
    #[error("no cosignature from a trusted witness key")]
    NoTrustedCosignature,
    /// A cosignature from a trusted witness key does not verify.
    #[error("a cosignature from a trusted witness key does not verify")]
    BadCosignature,
    /// Signed with this log's key, but not a tree this log has: a split
    /// view or a stolen key.
    #[error("this log never had the tree in this checkpoint: {0}")]
    NotOurTree(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Computing the log's own root failed.
    #[error("{0}")]
    Ledger(#[from] LedgerError),
}

/// A cosignature the log accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Size of the cosigned checkpoint.
    pub tree_size: u64,
    /// Key names of the witnesses whose cosignatures this request added.
    pub witnesses: Vec<String>,
    /// Cosignatures now stored for that checkpoint.
    pub cosignatures: usize,
}

/// Witness keys, the published checkpoint, and the lock that makes
/// concurrent cosignature merges safe.
pub(super) struct Witnessing {
    keys: Vec<WitnessVerifier>,
    interval: Duration,
    published: Mutex<Option<Published>>,
    /// Cosignature count of every stored cosigned checkpoint, by size (the
    /// same sizes the store keeps), so that choosing a receipt's
    /// checkpoint reads one note, not sixteen. Its lock also serializes
    /// merges.
    cosigned: Mutex<BTreeMap<u64, usize>>,
}

struct Published {
    size: u64,
    note: String,
    at: Instant,
}

impl Witnessing {
    /// Loads the cosignature counts of the stored cosigned checkpoints.
    pub(super) fn open(
        store: &Store,
        keys: Vec<WitnessVerifier>,
        interval: Duration,
    ) -> Result<Self, StoreError> {
        let cosigned = store
            .cosigned_from(0, KEEP_COSIGNED)?
            .into_iter()
            .map(|(size, note)| (size, count_cosignatures(&note)))
            .collect();
        Ok(Self {
            keys,
            interval,
            published: Mutex::new(None),
            cosigned: Mutex::new(cosigned),
        })
    }

    fn lock_cosigned(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, usize>> {
        self.cosigned.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ledger {
    /// The witness keys this log trusts.
    #[must_use]
    pub fn witness_keys(&self) -> &[WitnessVerifier] {
        self.embedded().map_or(&[], |e| &e.witnessing.keys)
    }

    /// Entries appended since the newest checkpoint a trusted witness
    /// cosigned (all of them if none was); `None` without witness keys.
    #[must_use]
    pub fn witness_lag(&self) -> Option<u64> {
        let e = self.embedded().filter(|e| !e.witnessing.keys.is_empty())?;
        let newest = e
            .witnessing
            .lock_cosigned()
            .last_key_value()
            .map_or(0, |(s, _)| *s);
        Some(self.head().size.saturating_sub(newest))
    }

    /// Verifies a witness's cosigned checkpoint and stores its
    /// cosignatures. The note must be one of this log's checkpoints (log
    /// signature, a root this log has at that size) with at least one
    /// cosignature from a trusted witness key.
    pub fn add_cosignatures(&self, note: &[u8]) -> Result<Accepted, CosignError> {
        let Some(e) = self.embedded() else {
            return Err(CosignError::NoTrustedCosignature);
        };
        let checkpoint = SignedCheckpoint::open(note, &self.verifier).map_err(|e| match e {
            CheckpointError::MalformedNote | CheckpointError::MalformedBody => {
                CosignError::Malformed(e.to_string())
            }
            other => CosignError::NotThisLog(other),
        })?;
        self.check_our_tree(&e.store, &checkpoint)?;
        let cosignatures =
            cosignatures_on(&checkpoint, &e.witnessing.keys).map_err(|e| match e {
                CosignedNoteError::BadSignature => CosignError::BadCosignature,
                other => CosignError::Malformed(other.to_string()),
            })?;
        if cosignatures.is_empty() {
            return Err(CosignError::NoTrustedCosignature);
        }
        let mut counts = e.witnessing.lock_cosigned();
        let size = checkpoint.size();
        let earlier = e.store.cosigned(size)?;
        let base = earlier.as_deref().unwrap_or(checkpoint.note_text());
        let merged = with_cosignatures(base, &cosignatures)
            .map_err(|e| CosignError::Malformed(e.to_string()))?;
        e.store.put_cosigned(size, &merged)?;
        let count = count_cosignatures(&merged);
        counts.insert(size, count);
        // The same pruning rule as the store's: keep the newest.
        while counts.len() > KEEP_COSIGNED {
            counts.pop_first();
        }
        Ok(Accepted {
            tree_size: size,
            witnesses: cosignatures.iter().map(|s| s.name().to_owned()).collect(),
            cosignatures: count,
        })
    }

    /// Refuses a checkpoint, signed with this log's key, whose tree this
    /// log does not have. That can only come from a second instance using
    /// this key (a split view) or from a stolen key, so it is logged loudly.
    fn check_our_tree(
        &self,
        store: &Store,
        checkpoint: &SignedCheckpoint,
    ) -> Result<(), CosignError> {
        let head = self.head();
        let refuse = |why: String| {
            tracing::error!(
                size = checkpoint.size(),
                head = head.size,
                "a checkpoint signed with this log's key is not this log's tree: {why}"
            );
            Err(CosignError::NotOurTree(why))
        };
        if checkpoint.size() > head.size {
            return refuse(format!(
                "size {} is beyond this log's size {}",
                checkpoint.size(),
                head.size
            ));
        }
        let root = tree_root(&StoreHashReader(store), TreeSize(checkpoint.size()))
            .map_err(LedgerError::from)?;
        if root != checkpoint.root() {
            return refuse(format!(
                "root at size {} differs from this log's",
                checkpoint.size()
            ));
        }
        Ok(())
    }

    /// The checkpoint published for witnesses and monitors, with every
    /// cosignature stored for it. It advances to the latest checkpoint at
    /// most once per publish interval.
    pub fn published_checkpoint(&self) -> Result<String, LedgerError> {
        let Some(e) = self.embedded() else {
            return Ok(self.latest_checkpoint());
        };
        let (size, note) = self.advance_published(&e.witnessing);
        Ok(e.store.cosigned(size)?.unwrap_or(note))
    }

    fn advance_published(&self, witnessing: &Witnessing) -> (u64, String) {
        let mut published = witnessing
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let head_size = self.head().size;
        let stale = published
            .as_ref()
            .is_none_or(|p| p.size < head_size && p.at.elapsed() >= witnessing.interval);
        if stale {
            *published = Some(Published {
                size: head_size,
                note: self.latest_checkpoint(),
                at: Instant::now(),
            });
        }
        published
            .as_ref()
            .map(|p| (p.size, p.note.clone()))
            .unwrap_or_default()
    }

    /// The checkpoint a fresh receipt for leaf `index` proves against:
    /// among the newest cosigned checkpoints that include the leaf, the
    /// one with the most cosignatures (the newest of equals); otherwise
    /// the latest checkpoint, `latest`.
    pub(super) fn receipt_checkpoint(
        &self,
        store: &Store,
        index: u64,
        latest: (u64, String),
    ) -> Result<(u64, String), LedgerError> {
        let candidates = store.cosigned_from(index.saturating_add(1), RECEIPT_CANDIDATES)?;
        let best = candidates
            .into_iter()
            .filter(|(size, _)| *size <= latest.0)
            .fold(None::<(usize, u64, String)>, |best, (size, note)| {
                let count = count_cosignatures(&note);
                match best {
                    Some(b) if b.0 >= count => Some(b),
                    _ => Some((count, size, note)),
                }
            });
        Ok(best.map_or(latest, |(_, size, note)| (size, note)))
    }
}
