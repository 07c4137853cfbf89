//! Stored hashes kept in memory because proofs read them over and over:
//! the newest ones (every receipt of a fresh entry, and every batch the
//! writer lays out, needs the left siblings of the newest leaves) and
//! those of high levels (each covers 2^[`HIGH_LEVEL`] entries or more, and
//! proofs of entries anywhere in the log share them). Without it a
//! receipt cost about ten `pread`s of `hashes.bin`.
//!
//! The cache only ever holds what `hashes.bin` holds: the newest hashes as
//! a batch is published (after the transaction that commits it), the high
//! ones as they are read from the file. It must never answer for an index
//! the file could hold differently — so it is cleared whenever committed
//! data is overwritten (tamper tests) — and it never decides what is
//! visible: callers check the committed count first.

use std::collections::{HashMap, VecDeque};
use std::sync::{PoisonError, RwLock};

use crate::core::hash::Hash;

/// Newest stored hashes kept: 2 MB, the hashes of the last ~32k entries,
/// which hold every sibling below level 14 of a proof of one of them.
const RECENT: usize = 1 << 16;

/// Least level of the stored hashes kept once read (at 10M entries there
/// are ~80k of them, 2.5 MB of hashes).
pub(super) const HIGH_LEVEL: u8 = 8;

/// The newest stored hashes: indexes `start..start + hashes.len()`.
#[derive(Default)]
struct Recent {
    start: u64,
    hashes: VecDeque<Hash>,
}

/// See the module doc.
#[derive(Default)]
pub(super) struct HashCache {
    recent: RwLock<Recent>,
    high: RwLock<HashMap<u64, Hash>>,
}

impl HashCache {
    /// The stored hash at `index`, if kept.
    pub(super) fn get(&self, index: u64) -> Option<Hash> {
        {
            let recent = self.recent.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = index.checked_sub(recent.start) {
                if let Some(h) = usize::try_from(at)
                    .ok()
                    .and_then(|at| recent.hashes.get(at))
                {
                    return Some(*h);
                }
            }
        }
        self.high
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&index)
            .copied()
    }

    /// Keeps `hash`, just read from the file at `index`, if it is of a
    /// high level.
    pub(super) fn read_from_file(&self, index: u64, hash: Hash) {
        if tlog_tiles::split_stored_hash_index(index).0 >= HIGH_LEVEL {
            self.high
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(index, hash);
        }
    }

    /// Keeps the hashes of a batch just committed: consecutive stored
    /// hashes from `first`. Hashes not following the newest kept replace
    /// them.
    pub(super) fn published(&self, first: u64, hashes: impl IntoIterator<Item = Hash>) {
        let mut recent = self.recent.write().unwrap_or_else(PoisonError::into_inner);
        let end = recent.start + recent.hashes.len() as u64;
        if first != end || recent.hashes.is_empty() {
            recent.start = first;
            recent.hashes.clear();
        }
        recent.hashes.extend(hashes);
        let excess = recent.hashes.len().saturating_sub(RECENT);
        recent.hashes.drain(..excess);
        recent.start += excess as u64;
    }

    /// Forgets everything (committed data was overwritten).
    pub(super) fn clear(&self) {
        *self.recent.write().unwrap_or_else(PoisonError::into_inner) = Recent::default();
        self.high
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn h(i: u64) -> Hash {
        Hash::sha256(&i.to_be_bytes())
    }

    #[test]
    fn keeps_the_newest_hashes_and_forgets_the_oldest() {
        let cache = HashCache::default();
        let total = RECENT as u64 + 10;
        cache.published(0, (0..total).map(h));
        assert_eq!(cache.get(total - 1), Some(h(total - 1)));
        assert_eq!(cache.get(10), Some(h(10)));
        assert_eq!(cache.get(9), None);
        assert_eq!(cache.get(total), None);
        cache.published(total, (total..total + 3).map(h));
        assert_eq!(cache.get(total + 2), Some(h(total + 2)));
        assert_eq!(cache.get(13), Some(h(13)));
        assert_eq!(cache.get(12), None);
    }

    #[test]
    fn a_batch_that_does_not_follow_replaces_what_was_kept() {
        let cache = HashCache::default();
        cache.published(5, (5..8).map(h));
        cache.published(100, (100..102).map(h));
        assert_eq!(cache.get(6), None);
        assert_eq!(cache.get(101), Some(h(101)));
    }

    #[test]
    fn keeps_only_high_hashes_read_from_the_file_and_clear_forgets_all() {
        let cache = HashCache::default();
        let high = tlog_tiles::stored_hash_index(HIGH_LEVEL, 3);
        let low = tlog_tiles::stored_hash_index(HIGH_LEVEL - 1, 3);
        cache.read_from_file(high, h(1));
        cache.read_from_file(low, h(2));
        assert_eq!(cache.get(high), Some(h(1)));
        assert_eq!(cache.get(low), None);
        cache.published(0, (0..4).map(h));
        cache.clear();
        assert_eq!(cache.get(high), None);
        assert_eq!(cache.get(2), None);
    }
}
