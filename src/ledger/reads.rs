//! Reads of the ledger, from either backend: entries, proofs, receipts,
//! content, counters and the reservations left in flight.

use super::backend::{Backend, Embedded};
use super::{Ledger, LedgerError};
use crate::core::hash::Hash;
use crate::core::proof::{prove_consistency, prove_inclusion, LeafIndex, TreeSize};
use crate::core::receipt::{Content, InclusionProof, Receipt, RECEIPT_FORMAT};
use crate::core::signing::signature_to_base64;
use crate::store::{PendingNonce, Store, StoreError, StoreHashReader};

impl Ledger {
    /// The embedded store (for the audit, tests and tools), if the log
    /// runs on it.
    #[must_use]
    pub fn store(&self) -> Option<&Store> {
        self.embedded().map(|e| &e.store)
    }

    /// Whether the log's storage is readable (`/ready`).
    #[must_use]
    pub fn readable(&self) -> bool {
        match &self.backend {
            Backend::Embedded(e) => matches!(e.store.head(), Ok(Some(_))),
            Backend::Postgres(pg) => pg.is_writable(),
        }
    }

    /// The first damage the embedded store met in its files, if any.
    #[must_use]
    pub fn damage(&self) -> Option<crate::store::Damaged> {
        self.embedded().and_then(|e| e.store.damage())
    }

    /// How many reads met damage in the embedded store's files.
    #[must_use]
    pub fn damage_count(&self) -> u64 {
        self.embedded().map_or(0, |e| e.store.damage_count())
    }

    /// Cleartext content kept beside entry `index`, if any: none once a
    /// redaction of the entry began (its content is being erased).
    pub fn content(&self, index: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        match &self.backend {
            Backend::Embedded(e) => Ok(kept_content(&e.store, index)?),
            Backend::Postgres(pg) => pg.content(index),
        }
    }

    /// The index of the entry carrying this exec_id.
    pub fn index_of_exec_id(&self, exec_id: &str) -> Result<Option<u64>, LedgerError> {
        match &self.backend {
            Backend::Embedded(e) => Ok(e.store.index_of_exec_id(exec_id)?),
            Backend::Postgres(pg) => pg.index_of_exec_id(exec_id),
        }
    }

    /// Reservations in flight that this process must record: at start-up
    /// on the embedded store, every one left by the previous process; on
    /// PostgreSQL, those of nodes whose lease has run out.
    pub fn pending_reservations(&self) -> Result<Vec<(Vec<u8>, PendingNonce)>, LedgerError> {
        match &self.backend {
            Backend::Embedded(e) => Ok(e.store.pending_reservations()?),
            Backend::Postgres(pg) => pg.pending_reservations(),
        }
    }

    /// Whether other nodes share the log, so that reservations left by a
    /// dead one appear while this one runs (and must be looked for now
    /// and then, not only at start).
    #[must_use]
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Adds one to the counter `name` and returns its new value: durable
    /// before the entry of the attempt that made it is acknowledged.
    pub fn increment_counter(&self, name: &str) -> Result<u64, LedgerError> {
        match &self.backend {
            Backend::Embedded(e) => Ok(e.store.increment_counter(name)?),
            Backend::Postgres(pg) => pg.increment_counter(name),
        }
    }

    /// A counter's current value (0 if it was never incremented).
    pub fn counter(&self, name: &str) -> Result<u64, LedgerError> {
        match &self.backend {
            Backend::Embedded(e) => Ok(e.store.counter(name)?),
            Backend::Postgres(pg) => pg.counter(name),
        }
    }

    /// Entry bytes and signature at `index`.
    pub fn entry(&self, index: u64) -> Result<(Vec<u8>, [u8; 64]), LedgerError> {
        let e = match &self.backend {
            Backend::Embedded(e) => e,
            Backend::Postgres(pg) => return pg.entry(index),
        };
        if index >= self.head().size {
            return Err(LedgerError::NotFound);
        }
        e.store.entry(index)?.ok_or(LedgerError::NotFound)
    }

    /// Inclusion proof of `index` in the tree of `tree_size` (≤ committed size).
    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<Hash>, LedgerError> {
        let e = match &self.backend {
            Backend::Embedded(e) => e,
            Backend::Postgres(pg) => return pg.inclusion_proof(index, tree_size),
        };
        self.check_size(tree_size)?;
        Ok(prove_inclusion(
            &StoreHashReader(&e.store),
            LeafIndex(index),
            TreeSize(tree_size),
        )?)
    }

    /// Consistency proof between two committed sizes.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, LedgerError> {
        let e = match &self.backend {
            Backend::Embedded(e) => e,
            Backend::Postgres(pg) => return pg.consistency_proof(old_size, new_size),
        };
        self.check_size(new_size)?;
        Ok(prove_consistency(
            &StoreHashReader(&e.store),
            TreeSize(old_size),
            TreeSize(new_size),
        )?)
    }

    /// A fresh receipt for the entry at `index`, against the best cosigned
    /// checkpoint that includes it, or else the latest checkpoint.
    pub fn receipt(&self, index: u64) -> Result<Receipt, LedgerError> {
        let e = match &self.backend {
            Backend::Embedded(e) => e,
            Backend::Postgres(pg) => return pg.receipt(index),
        };
        let entry = e.store.entry(index)?.ok_or(LedgerError::NotFound)?;
        self.receipt_of_entry(e, index, entry)
    }

    /// The receipt of entry `index`, whose stored bytes and signature the
    /// caller already read; `NotFound` until its batch is durable (the
    /// store shows a batch to readers before its sync returns).
    fn receipt_of_entry(
        &self,
        e: &Embedded,
        index: u64,
        (bytes, signature): crate::store::SignedEntryBytes,
    ) -> Result<Receipt, LedgerError> {
        let committed = e.committed();
        if index >= committed.head.size {
            return Err(LedgerError::NotFound);
        }
        let (tree_size, checkpoint) =
            self.receipt_checkpoint(&e.store, index, (committed.head.size, committed.checkpoint))?;
        let hashes = prove_inclusion(
            &StoreHashReader(&e.store),
            LeafIndex(index),
            TreeSize(tree_size),
        )?;
        let salts = match kept_content(&e.store, index)? {
            Some(content) => salts_of(&content),
            None => crate::core::entry::replayed_index(&bytes)
                .and_then(|original| original_salts(&e.store, original)),
        };
        make_receipt(
            bytes, &signature, index, tree_size, hashes, checkpoint, salts,
        )
    }

    /// A fresh receipt for the entry with this exec_id.
    pub fn receipt_for_exec_id(&self, exec_id: &str) -> Result<Receipt, LedgerError> {
        let e = match &self.backend {
            Backend::Embedded(e) => e,
            Backend::Postgres(pg) => return pg.receipt_for_exec_id(exec_id),
        };
        let (index, entry) = e
            .store
            .entry_of_exec_id(exec_id)?
            .ok_or(LedgerError::NotFound)?;
        self.receipt_of_entry(e, index, entry)
    }

    /// `count` stored hashes at tree `level` (0 = leaves) from position
    /// `first`: the subtree roots over leaves `[n·2^level, (n+1)·2^level)`
    /// for `n` in `[first, first + count)` — one C2SP tile's hashes, read
    /// as stored, none recomputed. `NotFound` when the committed tree does
    /// not hold them all.
    pub fn subtree_hashes(
        &self,
        level: u8,
        first: u64,
        count: u64,
    ) -> Result<Vec<Hash>, LedgerError> {
        let end = first.checked_add(count).ok_or(LedgerError::NotFound)?;
        let span = 1u64
            .checked_shl(u32::from(level))
            .ok_or(LedgerError::NotFound)?;
        let leaves = end.checked_mul(span).ok_or(LedgerError::NotFound)?;
        if leaves > self.head().size {
            return Err(LedgerError::NotFound);
        }
        let indexes = (first..end).map(|n| tlog_tiles::stored_hash_index(level, n));
        match &self.backend {
            Backend::Embedded(e) => indexes
                .map(|index| {
                    e.store.stored_hash(index)?.ok_or_else(|| {
                        StoreError::Corrupt(format!("stored hash {index} missing below the head"))
                            .into()
                    })
                })
                .collect(),
            Backend::Postgres(pg) => pg.stored_hashes(indexes.collect()),
        }
    }

    fn check_size(&self, tree_size: u64) -> Result<(), LedgerError> {
        if tree_size > self.head().size {
            return Err(LedgerError::NotFound);
        }
        Ok(())
    }
}

/// The content kept beside entry `index`, as readers may see it: none
/// while the entry has a redaction record in any state. A redaction whose
/// caller went away, or a crash, can leave its record with the content not
/// yet erased until the redaction is finished; its salts and result are
/// never served meanwhile.
pub(super) fn kept_content(store: &Store, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
    if store.redaction(index)?.is_some() {
        return Ok(None);
    }
    store.content(index)
}

/// The salts kept in an entry's content.
pub(super) fn salts_of(content: &[u8]) -> Option<crate::core::receipt::Salts> {
    serde_json::from_slice::<Content>(content)
        .ok()
        .map(|c| c.salts)
}

/// The salts a replay's receipt carries: a replay keeps no content and
/// repeats the commitments of the entry it replays, so the salts kept with
/// that entry open them. `None` when they cannot be read: the receipt
/// proves the replay without them.
pub(super) fn original_salts(store: &Store, original: u64) -> Option<crate::core::receipt::Salts> {
    kept_content(store, original)
        .ok()
        .flatten()
        .as_deref()
        .and_then(salts_of)
}

/// Builds a receipt from its parts.
pub(crate) fn make_receipt(
    bytes: Vec<u8>,
    signature: &[u8; 64],
    index: u64,
    tree_size: u64,
    hashes: Vec<Hash>,
    checkpoint: String,
    salts: Option<crate::core::receipt::Salts>,
) -> Result<Receipt, LedgerError> {
    let entry = String::from_utf8(bytes)
        .map_err(|_| StoreError::Corrupt(format!("entry {index} is not UTF-8")))?;
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    Ok(Receipt {
        format: RECEIPT_FORMAT.to_owned(),
        entry,
        entry_signature: signature_to_base64(&signature),
        leaf_index: index,
        inclusion_proof: InclusionProof { tree_size, hashes },
        checkpoint,
        salts,
    })
}
