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

/// How many cosigned checkpoints are kept (the newest). A newer cosigned
/// checkpoint includes every entry an older one does, so receipts never
/// need an older one; the bound keeps the tree small however long the log
/// runs (one published checkpoint per second would otherwise add ~35 MB a
/// day).
pub const KEEP_COSIGNED: usize = 1024;

impl Store {
    fn cosignatures_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(TREE)?)
    }

    /// Stores the cosigned note of `size` (replacing the previous one) and
    /// drops all but the newest [`KEEP_COSIGNED`].
    pub fn put_cosigned(&self, size: u64, note: &str) -> Result<(), StoreError> {
        let tree = self.cosignatures_tree()?;
        tree.insert(size.to_be_bytes(), note.as_bytes())?;
        if tree.len() > KEEP_COSIGNED {
            let stale: Vec<_> = tree
                .iter()
                .keys()
                .take(tree.len() - KEEP_COSIGNED)
                .collect::<Result<_, _>>()?;
            for key in stale {
                tree.remove(key)?;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[test]
    fn only_the_newest_cosigned_checkpoints_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig {
            cache_bytes: 1 << 20,
            ..StoreConfig::new(dir.path().join("db"))
        })
        .unwrap();
        let total = KEEP_COSIGNED as u64 + 10;
        for size in 1..=total {
            store.put_cosigned(size, &format!("note {size}\n")).unwrap();
        }
        assert_eq!(store.cosigned(10).unwrap(), None, "oldest dropped");
        assert_eq!(store.cosigned(11).unwrap().as_deref(), Some("note 11\n"));
        let newest = store.cosigned_from(0, 3).unwrap();
        let sizes: Vec<u64> = newest.iter().map(|(s, _)| *s).collect();
        assert_eq!(sizes, [total, total - 1, total - 2]);
        // Replacing a kept size keeps the count.
        store.put_cosigned(total, "again\n").unwrap();
        assert_eq!(
            store.cosigned_from(0, usize::MAX).unwrap().len(),
            KEEP_COSIGNED
        );
    }
}
