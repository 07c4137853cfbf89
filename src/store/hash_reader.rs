//! `tlog_tiles::HashReader` over the committed stored hashes, and an overlay that adds
//! the hashes of a batch not yet committed (the sequencer computes the new
//! root and proofs before the batch is written).

use std::collections::HashMap;

use tlog_tiles::{Error as TlogError, HashReader};

use super::segments::FileHashes;
use super::Store;
use crate::core::hash::Hash;

/// Reads committed stored hashes (from `hashes.bin`).
pub struct StoreHashReader<'a>(pub &'a Store);

impl HashReader for StoreHashReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TlogError> {
        FileHashes(&self.0.inner.segments).read_hashes(indexes)
    }
}

/// Pending hashes of the batch being built, over the committed ones.
pub struct OverlayReader<'a> {
    /// The store.
    pub base: &'a Store,
    /// Hashes computed in this batch, by stored-hash index.
    pub pending: &'a HashMap<u64, Hash>,
}

impl HashReader for OverlayReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TlogError> {
        indexes
            .iter()
            .map(|i| match self.pending.get(i) {
                Some(h) => Ok((*h).into()),
                None => StoreHashReader(self.base)
                    .read_hashes(&[*i])
                    .and_then(|mut v| v.pop().ok_or(TlogError::IndexesNotInTree)),
            })
            .collect()
    }
}
