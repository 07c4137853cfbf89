//! The Merkle tree as the database keeps it: each entry row carries the
//! stored hashes written with it (Go `sumdb/tlog` layout), and the head row
//! carries the frontier — the roots of the perfect subtrees of the tree,
//! largest first. A batch is laid out from the frontier alone (new stored
//! hashes, root, next frontier), so the writer reads no stored hash while it
//! holds the head lock; proofs read the stored hashes they need in one
//! query, after collecting which ones they need (the indexes a proof reads
//! depend on the sizes only, never on the hashes).

use std::cell::RefCell;
use std::collections::HashMap;

use tlog_tiles::{Error as TlogError, HashReader};

use crate::core::hash::Hash;

/// Stored hashes by stored-hash index.
#[derive(Debug, Default)]
pub(crate) struct HashMapReader(pub(crate) HashMap<u64, Hash>);

impl HashReader for HashMapReader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TlogError> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(i)
                    .map(|h| (*h).into())
                    .ok_or(TlogError::IndexesNotInTree)
            })
            .collect()
    }
}

/// Answers every read with zero hashes and notes the indexes asked for.
#[derive(Debug, Default)]
pub(crate) struct IndexRecorder(RefCell<Vec<u64>>);

impl IndexRecorder {
    /// The indexes asked for so far.
    pub(crate) fn into_indexes(self) -> Vec<u64> {
        self.0.into_inner()
    }
}

impl HashReader for IndexRecorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, TlogError> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Ok(vec![tlog_tiles::Hash::default(); indexes.len()])
    }
}

/// The perfect subtrees of a tree of `size` leaves, largest first: (level,
/// first leaf).
fn subtrees(size: u64) -> impl Iterator<Item = (u8, u64)> {
    let mut start = 0u64;
    (0..64u8).rev().filter_map(move |level| {
        let width = 1u64 << level;
        (size & width != 0).then(|| {
            let at = start;
            start += width;
            (level, at)
        })
    })
}

/// The stored-hash indexes of the frontier of a tree of `size` leaves.
fn frontier_indexes(size: u64) -> impl Iterator<Item = u64> {
    subtrees(size).map(|(level, at)| tlog_tiles::stored_hash_index(level, at >> level))
}

/// The frontier of `size` as stored hashes by index, from its encoding.
pub(crate) fn decode_frontier(size: u64, bytes: &[u8]) -> Option<HashMap<u64, Hash>> {
    let indexes: Vec<u64> = frontier_indexes(size).collect();
    if bytes.len() != indexes.len() * 32 {
        return None;
    }
    indexes
        .into_iter()
        .zip(bytes.chunks_exact(32))
        .map(|(i, chunk)| Hash::from_slice(chunk).ok().map(|h| (i, h)))
        .collect()
}

/// The encoding of the frontier of `size`, read from `hashes` (which must
/// hold it).
pub(crate) fn encode_frontier(size: u64, hashes: &HashMap<u64, Hash>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for i in frontier_indexes(size) {
        out.extend_from_slice(hashes.get(&i)?.as_bytes());
    }
    Some(out)
}

/// The entry whose row carries stored hash `index`, and its position among
/// that row's hashes: level L's node n is written with leaf
/// `(n + 1) · 2^L − 1`, as its L-th stored hash.
pub(crate) fn row_of_stored_hash(index: u64) -> (u64, usize) {
    let (level, n) = tlog_tiles::split_stored_hash_index(index);
    (((n + 1) << level) - 1, usize::from(level))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::proof::{tree_root, TreeSize};

    /// Builds a tree leaf by leaf from the frontier only, and checks the
    /// root against the whole-tree computation at every size.
    #[test]
    fn the_frontier_alone_extends_the_tree() {
        let mut all = HashMapReader::default();
        let mut frontier = encode_frontier(0, &HashMap::new()).unwrap();
        for n in 0..300u64 {
            let mut known = HashMapReader(decode_frontier(n, &frontier).unwrap());
            let leaf = crate::core::hash::leaf_hash(&n.to_be_bytes());
            let stored = tlog_tiles::stored_hashes_for_record_hash(n, leaf.into(), &known).unwrap();
            let first = tlog_tiles::stored_hash_index(0, n);
            for (offset, (i, h)) in (first..).zip(stored).enumerate() {
                known.0.insert(i, Hash::from(h));
                all.0.insert(i, Hash::from(h));
                assert_eq!(row_of_stored_hash(i), (n, offset));
            }
            frontier = encode_frontier(n + 1, &known.0).unwrap();
            assert_eq!(
                tree_root(&known, TreeSize(n + 1)).unwrap(),
                tree_root(&all, TreeSize(n + 1)).unwrap()
            );
        }
    }

    #[test]
    fn a_proof_reads_the_same_indexes_whatever_the_hashes() {
        let recorder = IndexRecorder::default();
        let _ = crate::core::proof::prove_inclusion(
            &recorder,
            crate::core::proof::LeafIndex(5),
            TreeSize(77),
        );
        assert!(!recorder.into_indexes().is_empty());
    }
}
