//! `tlog_tiles::HashReader` over the `hashes` tree, and an overlay that adds
//! the hashes of a batch not yet committed (the sequencer computes the new
//! root and proofs before the batch is written).

use std::collections::HashMap;

use tlog_tiles::{Error as TlogError, HashReader};

use super::Store;
use crate::core::hash::Hash;

/// Reads committed stored hashes from sled.
pub struct StoreHashReader<'a>(pub &'a Store);

impl HashReader for StoreHashReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TlogError> {
        indexes
            .iter()
            .map(|&i| match self.0.stored_hash(i) {
                Ok(Some(h)) => Ok(h.into()),
                Ok(None) => Err(TlogError::IndexesNotInTree),
                Err(e) => Err(TlogError::InvalidInput(e.to_string())),
            })
            .collect()
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
