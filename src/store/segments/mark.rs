//! The segments mark: the segment files' part of the committed head, and
//! the store format it records.

use super::super::StoreError;

/// The segment files' part of the committed head, stored in sled's `meta`
/// tree under `segments` in the same transaction as the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentsMark {
    /// Where the committed records of `entries.bin` end.
    pub entries_end: u64,
    /// The tree size up to which `entries.idx` and `hashes.bin` are durable.
    pub derived: u64,
}

/// The store format this build reads and writes, recorded in every
/// segments mark. A store in any other format is refused at open; a later
/// format comes with a migration command, never an open-time conversion.
pub const STORE_FORMAT: u64 = 1;

impl SegmentsMark {
    pub(crate) const META_KEY: &'static [u8] = b"segments";
    /// Bytes of a stored mark: the two sizes and [`STORE_FORMAT`].
    pub(crate) const LEN: usize = 24;
    /// Bytes of the marks of development stores, which recorded no format.
    const UNVERSIONED_LEN: usize = 16;

    pub(crate) fn encode(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.entries_end.to_be_bytes());
        out[8..16].copy_from_slice(&self.derived.to_be_bytes());
        out[16..].copy_from_slice(&STORE_FORMAT.to_be_bytes());
        out
    }

    /// Reads a stored mark; refuses one of another store format
    /// ([`StoreError::UnsupportedFormat`], format 0 for a mark that records
    /// none) or of no known length.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let Ok(bytes) = <&[u8; Self::LEN]>::try_from(bytes) else {
            return Err(if bytes.len() == Self::UNVERSIONED_LEN {
                StoreError::UnsupportedFormat { found: 0 }
            } else {
                StoreError::Corrupt("segments mark has the wrong length".into())
            });
        };
        let [entries_end, derived, format] = [0, 8, 16].map(|at| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(word)
        });
        if format != STORE_FORMAT {
            return Err(StoreError::UnsupportedFormat { found: format });
        }
        Ok(Self {
            entries_end,
            derived,
        })
    }
}

