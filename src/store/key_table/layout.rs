//! The layout of a key-table file: where each table lies, and the header
//! that says how many there are and how much of the log they cover. Pure
//! arithmetic and byte codecs; no I/O.

pub(crate) const MAGIC: &[u8; 8] = b"OEXTAB02";
/// Bytes before table 0 (a page, so tables stay page-aligned).
pub(crate) const HEADER_LEN: u64 = 4096;
/// Bytes of the header that are used.
pub(crate) const HEADER_USED: usize = 40;
pub(crate) const SLOT: u64 = 16;
/// log2 of table 0's slots in a new file (1 MiB).
pub(crate) const FIRST_BITS: u32 = 16;
/// log2 of the slots of every table past the doubling ones (16 MiB; see
/// the module docs for why tables stop growing).
pub(crate) const CAP_BITS: u32 = 20;
/// The store's tables: 2^16, 2^17, … 2^20 slots, then 2^20 each.
pub(crate) const SHAPE: Shape = Shape {
    first_bits: FIRST_BITS,
    cap_bits: CAP_BITS,
};
/// Largest log2 of a table's slots a header may claim.
pub(crate) const MAX_BITS: u32 = 48;
/// Most tables a header may claim (with [`CAP_BITS`], 12.9 billion
/// keys; each costs the process 40 bytes until used).
pub(crate) const MAX_TABLES: u32 = 16_384;

/// The sizes of a new file's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// log2 of table 0's slots.
    pub first_bits: u32,
    /// log2 of the slots of the tables past the doubling ones.
    pub cap_bits: u32,
}

/// Where a file's tables lie: table `k` has `2^(first_bits + k)` slots
/// while `k < doubling`, then `2^cap_bits`. Fixed for the file's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) first_bits: u32,
    pub(crate) doubling: u32,
    pub(crate) cap_bits: u32,
}

impl Layout {
    pub(crate) fn of(shape: Shape) -> Self {
        Self {
            first_bits: shape.first_bits,
            doubling: shape.cap_bits.saturating_sub(shape.first_bits),
            cap_bits: shape.cap_bits,
        }
    }

    /// Whether a header may claim this layout with `tables` tables: no
    /// offset overflows, and every table holds keys (3/4 of 2 slots is
    /// none: such a layout would add tables until the limit).
    pub(crate) fn is_plausible(self, tables: u32) -> bool {
        self.first_bits
            .checked_add(self.doubling)
            .is_some_and(|b| b <= MAX_BITS)
            && (2..=MAX_BITS).contains(&self.first_bits)
            && (2..=MAX_BITS).contains(&self.cap_bits)
            && (1..=MAX_TABLES).contains(&tables)
            && self.wide_offset(tables) <= u128::from(u64::MAX)
    }

    /// Slots in table `k`.
    pub(crate) fn capacity(self, k: u32) -> u64 {
        if k < self.doubling {
            1u64 << (self.first_bits + k)
        } else {
            1u64 << self.cap_bits
        }
    }

    /// Where table `k` starts (table `tables` = where the file ends).
    /// Fits a `u64` for every `k` up to a plausible header's tables.
    pub(crate) fn offset(self, k: u32) -> u64 {
        u64::try_from(self.wide_offset(k)).unwrap_or(u64::MAX)
    }

    /// [`Self::offset`], computed where it cannot overflow (with
    /// `first_bits + doubling` and `cap_bits` at most [`MAX_BITS`]).
    pub(crate) fn wide_offset(self, k: u32) -> u128 {
        let doubled = k.min(self.doubling);
        let before = (1u128 << (self.first_bits + doubled)) - (1u128 << self.first_bits)
            + u128::from(k - doubled) * (1u128 << self.cap_bits);
        u128::from(HEADER_LEN) + u128::from(SLOT) * before
    }
}

/// What the writer knows of the file (readers need only `tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) layout: Layout,
    pub(crate) tables: u32,
    pub(crate) in_last: u64,
    pub(crate) indexed: u64,
}

impl Header {
    pub(crate) fn fresh(shape: Shape) -> Self {
        Self {
            layout: Layout::of(shape),
            tables: 1,
            in_last: 0,
            indexed: 0,
        }
    }

    pub(crate) fn encode(self) -> [u8; HEADER_USED] {
        let mut out = [0u8; HEADER_USED];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.layout.first_bits.to_be_bytes());
        out[12..16].copy_from_slice(&self.tables.to_be_bytes());
        out[16..24].copy_from_slice(&self.in_last.to_be_bytes());
        out[24..32].copy_from_slice(&self.indexed.to_be_bytes());
        out[32..36].copy_from_slice(&self.layout.doubling.to_be_bytes());
        out[36..].copy_from_slice(&self.layout.cap_bits.to_be_bytes());
        out
    }

    /// The header, if `bytes` is one this code wrote for a file of
    /// `file_len` bytes.
    pub(crate) fn decode(bytes: &[u8; HEADER_USED], file_len: u64) -> Option<Self> {
        let u32_at = |at: usize| bytes[at..at + 4].try_into().ok().map(u32::from_be_bytes);
        let u64_at = |at: usize| bytes[at..at + 8].try_into().ok().map(u64::from_be_bytes);
        let (first_bits, tables) = (u32_at(8)?, u32_at(12)?);
        if &bytes[..8] != MAGIC {
            return None;
        }
        let layout = Layout {
            first_bits,
            doubling: u32_at(32)?,
            cap_bits: u32_at(36)?,
        };
        let header = Self {
            layout,
            tables,
            in_last: u64_at(16)?,
            indexed: u64_at(24)?,
        };
        let plausible = layout.is_plausible(tables)
            && header.in_last <= header.capacity(header.tables - 1)
            && file_len >= header.offset(header.tables);
        plausible.then_some(header)
    }

    pub(crate) fn capacity(self, k: u32) -> u64 {
        self.layout.capacity(k)
    }

    pub(crate) fn offset(self, k: u32) -> u64 {
        self.layout.offset(k)
    }
}

