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
/// format comes with a migration command (`openexec migrate` converts
/// formats 1 and 2), never an open-time conversion. Format 3 keeps the
/// reservations in flight and the named counters' values in the
/// reservation journal; format 2 kept the counters in sled, format 1 the
/// reservations too.
pub const STORE_FORMAT: u64 = 3;

impl SegmentsMark {
    pub(in crate::store) const META_KEY: &'static [u8] = b"segments";
    /// Bytes of a stored mark: the two sizes, [`STORE_FORMAT`] and
    /// [`Self::MAGIC`].
    pub(in crate::store) const LEN: usize = 32;
    /// The last 8 bytes of every mark.
    const MAGIC: &'static [u8; 8] = b"OEXSTORE";

    pub(in crate::store) fn encode(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.entries_end.to_be_bytes());
        out[8..16].copy_from_slice(&self.derived.to_be_bytes());
        out[16..24].copy_from_slice(&STORE_FORMAT.to_be_bytes());
        out[24..].copy_from_slice(Self::MAGIC);
        out
    }

    /// Reads a stored mark; refuses a mark of another store format
    /// ([`StoreError::UnsupportedFormat`]) and bytes that are no mark.
    ///
    /// Marks of other lengths are not read, so that no build that reads
    /// another layout takes this one for its own: a 24-byte mark names its
    /// format in its last 8 bytes, a 16-byte one names none (reported as
    /// format 0).
    pub(in crate::store) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        Self::decode_as(bytes, STORE_FORMAT)
    }

    /// [`Self::decode`] for a store in `format` (the migration reads
    /// format 1's marks: the same layout, another format word).
    pub(in crate::store) fn decode_as(bytes: &[u8], format: u64) -> Result<Self, StoreError> {
        let word = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(word)
        };
        match bytes.len() {
            16 => return Err(StoreError::UnsupportedFormat { found: 0 }),
            24 => return Err(StoreError::UnsupportedFormat { found: word(16) }),
            Self::LEN if &bytes[24..] == Self::MAGIC => {}
            _ => {
                return Err(StoreError::Corrupt(
                    "the segments mark is not a mark".into(),
                ))
            }
        }
        match word(16) {
            found if found == format => Ok(Self {
                entries_end: word(0),
                derived: word(8),
            }),
            found => Err(StoreError::UnsupportedFormat { found }),
        }
    }
}
