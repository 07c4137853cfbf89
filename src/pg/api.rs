//! What the ledger asks of the PostgreSQL backend outside the writer:
//! reads, proofs, receipts, the reservations left by dead nodes, and the
//! `counter` handler's counters. Each runs on the backend's runtime, and
//! the calling thread waits for it (see [`PgLog::block`]).

use std::collections::HashMap;

use super::{reads, PgLog};
use crate::core::hash::Hash;
use crate::core::receipt::Receipt;
use crate::ledger::{make_receipt, LedgerError};
use crate::store::{PendingNonce, SignedEntryBytes};

impl PgLog {
    /// Entry bytes and signature at `index`.
    pub fn entry(&self, index: u64) -> Result<SignedEntryBytes, LedgerError> {
        self.block(move |s| async move {
            let client = s.reader().await?;
            reads::entry(&client, index)
                .await?
                .ok_or(LedgerError::NotFound)
        })
    }

    /// The index of the entry carrying this exec_id.
    pub fn index_of_exec_id(&self, exec_id: &str) -> Result<Option<u64>, LedgerError> {
        let exec_id = exec_id.to_owned();
        self.block(move |s| async move {
            let client = s.reader().await?;
            Ok(reads::entry_of_exec_id(&client, &exec_id)
                .await?
                .map(|(i, _)| i))
        })
    }

    /// Cleartext content kept beside entry `index`.
    pub fn content(&self, index: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        self.block(move |s| async move {
            let client = s.reader().await?;
            Ok(reads::content(&client, index).await?)
        })
    }

    /// The redaction of entry `index`, if any: the `redacted` entry's index
    /// and its reason.
    pub fn redaction(&self, index: u64) -> Result<Option<(u64, String)>, LedgerError> {
        self.block(move |s| async move {
            let client = s.reader().await?;
            Ok(reads::redaction(&client, index).await?)
        })
    }

    /// The stored hashes at `indexes`, in their order (one tlog tile's), in
    /// one query; `NotFound` if the head has not reached one of them.
    pub fn stored_hashes(&self, indexes: Vec<u64>) -> Result<Vec<Hash>, LedgerError> {
        self.block(move |s| async move {
            let client = s.reader().await?;
            let mut known = HashMap::new();
            reads::fill_hashes(&client, indexes.clone(), &mut known).await?;
            indexes
                .iter()
                .map(|i| known.get(i).copied().ok_or(LedgerError::NotFound))
                .collect()
        })
    }

    /// Inclusion proof of `index` in the tree of `tree_size`.
    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_size(tree_size)?;
        self.block(move |s| async move {
            let client = s.reader().await?;
            reads::inclusion(&client, index, tree_size, &mut HashMap::new()).await
        })
    }

    /// Consistency proof between two committed sizes.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        self.check_size(new)?;
        self.block(move |s| async move {
            let client = s.reader().await?;
            reads::consistency(&client, old, new).await
        })
    }

    /// Refuses a size beyond the committed head: the cached head, or the
    /// database's when the size is beyond the cache (another node's batch
    /// since the last refresh).
    fn check_size(&self, tree_size: u64) -> Result<(), LedgerError> {
        if tree_size <= self.head().size {
            return Ok(());
        }
        let size = self.block(|s| async move {
            let client = s.reader().await?;
            let seen = reads::head(&client).await?;
            let size = seen.head.size;
            s.see(seen);
            Ok(size)
        })?;
        if tree_size > size {
            return Err(LedgerError::NotFound);
        }
        Ok(())
    }

    /// A fresh receipt for the entry at `index`, against the head
    /// committed now.
    pub fn receipt(&self, index: u64) -> Result<Receipt, LedgerError> {
        self.block(move |s| async move {
            let client = s.reader().await?;
            let entry = reads::entry(&client, index)
                .await?
                .ok_or(LedgerError::NotFound)?;
            receipt_of(&client, index, entry).await
        })
    }

    /// A fresh receipt for the entry with this exec_id.
    pub fn receipt_for_exec_id(&self, exec_id: &str) -> Result<Receipt, LedgerError> {
        let exec_id = exec_id.to_owned();
        self.block(move |s| async move {
            let client = s.reader().await?;
            let (index, entry) = reads::entry_of_exec_id(&client, &exec_id)
                .await?
                .ok_or(LedgerError::NotFound)?;
            receipt_of(&client, index, entry).await
        })
    }

    /// Reservations whose node's lease has run out: the attempts a
    /// survivor records as `interrupted` (or releases).
    pub fn pending_reservations(&self) -> Result<Vec<(Vec<u8>, PendingNonce)>, LedgerError> {
        self.block(|s| async move {
            let client = s.reader().await?;
            Ok(reads::orphaned_reservations(&client).await?)
        })
    }

    /// Adds one to a counter, committed before it returns (so before the
    /// entry of the attempt that made it is acknowledged).
    pub fn increment_counter(&self, name: &str) -> Result<u64, LedgerError> {
        let name = name.to_owned();
        self.block(move |s| async move {
            let client = s.reader().await?;
            Ok(reads::increment_counter(&client, &name).await?)
        })
    }

    /// A counter's value.
    pub fn counter(&self, name: &str) -> Result<u64, LedgerError> {
        let name = name.to_owned();
        self.block(move |s| async move {
            let client = s.reader().await?;
            Ok(reads::counter(&client, &name).await?)
        })
    }
}

/// The receipt of a committed entry against the head committed now.
async fn receipt_of(
    client: &tokio_postgres::Client,
    index: u64,
    (bytes, signature): SignedEntryBytes,
) -> Result<Receipt, LedgerError> {
    let head = reads::head(client).await?;
    let size = head.head.size;
    let hashes = reads::inclusion(client, index, size, &mut HashMap::new()).await?;
    let own = reads::content(client, index).await?;
    let salts = match own {
        Some(content) => super::batch::salts_in(&content),
        None => match crate::core::entry::replayed_index(&bytes) {
            Some(original) => reads::content(client, original)
                .await
                .ok()
                .flatten()
                .as_deref()
                .and_then(super::batch::salts_in),
            None => None,
        },
    };
    make_receipt(
        bytes,
        &signature,
        index,
        size,
        hashes,
        head.checkpoint,
        salts,
    )
}
