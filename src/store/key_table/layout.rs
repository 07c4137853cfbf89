//! The layout of a key-table file: where each table lies, the header that
//! says how many there are and how much of the log they cover, and the
//! bytes of a slot. Pure arithmetic and byte codecs; no I/O.
//!
//! Both carry a check, so that damage is told from data. The header ends
//! in a CRC-32 of its fields and is followed by zeros up to table 0: a
//! header that fails either is no header (the table is derived, and is
//! indexed again from `entries.bin`). A slot's tag ends in a CRC-16 of its
//! fingerprint and index: the empty slot (all zeros) is a codeword of that
//! CRC, and every two codewords differ in at least four bits, so one to
//! three flipped bits never turn a slot into another slot, nor into an
//! empty one, nor an empty one into a slot — they give a slot that fails
//! its check ([`Slot::Damaged`]).

pub(crate) const MAGIC: &[u8; 8] = b"OEXTAB03";
/// Bytes before table 0 (a page, so tables stay page-aligned).
pub(crate) const HEADER_LEN: u64 = 4096;
/// Bytes of the header's fields, before its CRC.
const HEADER_FIELDS: usize = 40;
/// Bytes of the header that are written: its fields and their CRC-32; the
/// rest of the page is zeros.
pub(crate) const HEADER_USED: usize = HEADER_FIELDS + 4;
pub(crate) const SLOT: u64 = 16;
/// Bits of a slot's tag that hold the key's fingerprint (the rest hold
/// the slot's CRC-16).
pub(crate) const FINGERPRINT_BITS: u32 = 48;
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
        out[36..HEADER_FIELDS].copy_from_slice(&self.layout.cap_bits.to_be_bytes());
        let crc = crc32fast::hash(&out[..HEADER_FIELDS]);
        out[HEADER_FIELDS..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// The header, if `page` (the file's first [`HEADER_LEN`] bytes) is
    /// one this code wrote for a file of `file_len` bytes: magic, CRC,
    /// zeros after it, and a plausible layout.
    pub(crate) fn decode(page: &[u8], file_len: u64) -> Option<Self> {
        if page.len() != HEADER_LEN as usize || page[HEADER_USED..].iter().any(|&b| b != 0) {
            return None;
        }
        let bytes = &page[..HEADER_USED];
        let u32_at = |at: usize| bytes[at..at + 4].try_into().ok().map(u32::from_be_bytes);
        let u64_at = |at: usize| bytes[at..at + 8].try_into().ok().map(u64::from_be_bytes);
        let (first_bits, tables) = (u32_at(8)?, u32_at(12)?);
        if &bytes[..8] != MAGIC
            || u32_at(HEADER_FIELDS)? != crc32fast::hash(&bytes[..HEADER_FIELDS])
        {
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

/// What one slot's 16 bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// All zeros: no key.
    Empty,
    /// A key's fingerprint and its entry's index, which check.
    Held { fingerprint: u64, index: u64 },
    /// Bytes this code never writes: damage.
    Damaged,
}

impl Slot {
    /// The bytes of a slot holding `fingerprint` (a [`FINGERPRINT_BITS`]-bit
    /// value with its low bit set) and `index`: tag (`u64`, the fingerprint
    /// then the CRC-16) ‖ index (`u64`).
    pub(crate) fn encode(fingerprint: u64, index: u64) -> [u8; SLOT as usize] {
        let mut out = [0u8; SLOT as usize];
        out[..8].copy_from_slice(&(fingerprint << (64 - FINGERPRINT_BITS)).to_be_bytes());
        out[8..].copy_from_slice(&index.to_be_bytes());
        let check = crc16(&out[..6], &out[8..]);
        out[6..8].copy_from_slice(&check.to_be_bytes());
        out
    }

    /// What `bytes` (one slot) hold.
    pub(crate) fn decode(bytes: &[u8]) -> Self {
        if bytes.iter().all(|&b| b == 0) {
            return Self::Empty;
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(w)
        };
        let (tag, index) = (word(0), word(8));
        let fingerprint = tag >> (64 - FINGERPRINT_BITS);
        let check = (tag & 0xffff) as u16;
        if fingerprint & 1 == 1 && check == crc16(&bytes[..6], &bytes[8..16]) {
            Self::Held { fingerprint, index }
        } else {
            Self::Damaged
        }
    }
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection, no
/// final XOR) of `a ‖ b`. Linear with a zero start: all zeros check as all
/// zeros, and over a slot's 112 bits any two codewords differ in at least
/// four bits.
fn crc16(a: &[u8], b: &[u8]) -> u16 {
    a.iter().chain(b).fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod slot_tests {
    use super::*;

    #[test]
    fn crc16_is_xmodem() {
        // The standard check value of CRC-16/XMODEM.
        assert_eq!(crc16(b"1234", b"56789"), 0x31c3);
    }

    #[test]
    fn every_flip_of_one_to_three_bits_of_a_slot_is_damage() {
        // Slots of assorted fingerprints and indexes, the empty one among
        // them: every flip of one, two or three of their 128 bits fails
        // the check (three bits: a sample of positions).
        let slots = [
            Slot::encode(1, 0),
            Slot::encode((1 << FINGERPRINT_BITS) - 1, u64::MAX),
            Slot::encode(0x0123_4567_89ab | 1, 42),
            Slot::encode(0xfff0_0000_0001, 1 << 40),
            [0u8; SLOT as usize],
        ];
        let flip = |s: &[u8; 16], bits: &[usize]| {
            let mut out = *s;
            for &b in bits {
                out[b / 8] ^= 0x80 >> (b % 8);
            }
            out
        };
        for slot in &slots {
            for a in 0..128 {
                assert_eq!(Slot::decode(&flip(slot, &[a])), Slot::Damaged, "bit {a}");
                for b in a + 1..128 {
                    assert_eq!(Slot::decode(&flip(slot, &[a, b])), Slot::Damaged);
                    for c in (b + 1..128).step_by(7) {
                        assert_eq!(Slot::decode(&flip(slot, &[a, b, c])), Slot::Damaged);
                    }
                }
            }
        }
        assert_eq!(
            Slot::decode(&Slot::encode(0x0123_4567_89ab | 1, 42)),
            Slot::Held {
                fingerprint: 0x0123_4567_89ab | 1,
                index: 42
            }
        );
        assert_eq!(Slot::decode(&[0u8; 16]), Slot::Empty);
    }

    #[test]
    fn every_flip_of_a_header_page_invalidates_it() {
        let header = Header::fresh(SHAPE);
        let mut page = vec![0u8; HEADER_LEN as usize];
        page[..HEADER_USED].copy_from_slice(&header.encode());
        let len = header.offset(1);
        assert_eq!(Header::decode(&page, len), Some(header));
        for bit in 0..page.len() * 8 {
            page[bit / 8] ^= 0x80 >> (bit % 8);
            assert_eq!(Header::decode(&page, len), None, "bit {bit}");
            page[bit / 8] ^= 0x80 >> (bit % 8);
        }
    }
}
