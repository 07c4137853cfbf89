//! Witness cosignatures the log has accepted, by checkpoint size.
//!
//! Each value is one signed note: the checkpoint text, the log's
//! signature, then every accepted witness cosignature for that tree size.
//! The ledger verifies everything before it stores it; this module only
//! keeps the bytes. Cosignatures are not part of the log's own history (a
//! witness can always sign again), so they are written with `flush` and
//! never inside an append's transaction: accepting a cosignature must never
//! slow down or fail an append.

use super::{decode_u64, utf8, Store, StoreError};

/// The tree holding cosigned notes (tree size `u64` → note).
const TREE: &str = "cosignatures";

impl Store {
    fn cosignatures_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(TREE)?)
    }

    /// Stores the cosigned note of `size` (replacing the previous one).
    pub fn put_cosigned(&self, size: u64, note: &str) -> Result<(), StoreError> {
        let tree = self.cosignatures_tree()?;
        tree.insert(size.to_be_bytes(), note.as_bytes())?;
        tree.flush()?;
        Ok(())
    }

    /// The cosigned note of `size`, if any witness cosigned it.
    pub fn cosigned(&self, size: u64) -> Result<Option<String>, StoreError> {
        self.cosignatures_tree()?
            .get(size.to_be_bytes())?
            .map(|v| utf8(&v))
            .transpose()
    }

    /// Up to `limit` cosigned notes of sizes at least `min_size`, newest
    /// first.
    pub fn cosigned_from(
        &self,
        min_size: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        self.cosignatures_tree()?
            .range(min_size.to_be_bytes()..)
            .rev()
            .take(limit)
            .map(|r| {
                let (k, v) = r?;
                Ok((decode_u64(&k)?, utf8(&v)?))
            })
            .collect()
    }
}
