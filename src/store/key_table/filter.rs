//! The in-memory filters of a key table: one blocked Bloom filter per
//! table over its slots' fingerprints, and the fingerprint and probe seed
//! of a key. A filter is a hint: it can cost a read, never change an
//! answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::layout::FINGERPRINT_BITS;

/// Bits of a table's filter per slot of the table: a table holds at most
/// 3/4 of its slots, so ~10.7 bits per key, which with [`FILTER_PROBES`]
/// bits per key in one [`Block`] gives about 1% false positives.
pub(crate) const FILTER_BITS_PER_SLOT: u64 = 8;
pub(crate) const FILTER_PROBES: u64 = 6;

/// One cache line of a filter: all of a key's bits are in one block.
#[repr(align(64))]
pub(crate) struct Block(pub(crate) [AtomicU64; 8]);

/// A blocked Bloom filter over the fingerprints of one table.
pub(crate) struct Filter {
    pub(crate) blocks: Vec<Block>,
    /// Whether every slot the file held at open has been added.
    pub(crate) complete: AtomicBool,
}

impl Filter {
    pub(crate) fn new(slots: u64, complete: bool) -> Self {
        let blocks = (slots * FILTER_BITS_PER_SLOT / 512).max(1);
        Self {
            blocks: (0..blocks)
                .map(|_| Block(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            complete: AtomicBool::new(complete),
        }
    }

    /// The block of `fingerprint` (its high 32 of 48 bits; the block
    /// count is a power of two) and its bit positions there (double
    /// hashing over its low bits, past the always-set lowest).
    pub(crate) fn positions(
        &self,
        fingerprint: u64,
    ) -> (&Block, impl Iterator<Item = (usize, u64)>) {
        let block = &self.blocks[((fingerprint >> 16) as usize) & (self.blocks.len() - 1)];
        let first = fingerprint >> 1;
        let step = (fingerprint >> 10) | 1;
        let bits = (0..FILTER_PROBES).map(move |i| {
            let bit = first.wrapping_add(i.wrapping_mul(step)) & 511;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        });
        (block, bits)
    }

    pub(crate) fn add(&self, fingerprint: u64) {
        let (block, bits) = self.positions(fingerprint);
        for (word, mask) in bits {
            block.0[word].fetch_or(mask, Ordering::Relaxed);
        }
    }

    /// False only if `fingerprint` was never added (once complete).
    pub(crate) fn may_hold(&self, fingerprint: u64) -> bool {
        if !self.complete.load(Ordering::Acquire) {
            return true;
        }
        let (block, mut bits) = self.positions(fingerprint);
        bits.all(|(word, mask)| block.0[word].load(Ordering::Relaxed) & mask != 0)
    }
}

/// Where a key's slot is looked for: its fingerprint (the first
/// [`FINGERPRINT_BITS`] bits of SHA-256(key), lowest set) and the seed of
/// its probe run (the digest's bytes 8..16).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) fingerprint: u64,
    pub(crate) seed: u64,
}

impl Key {
    pub(crate) fn of(key: &[u8]) -> Self {
        let digest = Sha256::digest(key);
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest[at..at + 8]);
            u64::from_be_bytes(bytes)
        };
        Self {
            fingerprint: (word(0) >> (64 - FINGERPRINT_BITS)) | 1,
            seed: word(8),
        }
    }
}
