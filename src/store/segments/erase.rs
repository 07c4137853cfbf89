//! Erasing an entry's kept content in place in `entries.bin`: the content
//! frame becomes zeros (no zstd frame starts with a zero byte, so an
//! all-zero frame reads as erased) and the record's CRC is computed again.
//! The length word, signature and entry frame are untouched, so every
//! offset, index slot, stored hash and proof stays as it was.
//!
//! The new CRC covers the record's bytes before the frame, so they are
//! checked first: the redaction record keeps their CRC from when the
//! redaction began (read from a record whose own CRC checked), and an
//! erase that finds them changed (bit rot, say, in the signature) keeps
//! the old CRC, leaving the damage visible instead of making the record
//! verify.
//!
//! The zeros and the CRC go out in one positioned write and one
//! fdatasync. A crash can tear that write; the store's redaction record
//! (written durably before, [`super::super::redactions`]) names the
//! record's [`ContentSpan`], and [`finish_erase`] completes the erase from
//! it at the next open, before anything reads the record.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::record::{crc_checks, crc_of, is_erased, CONTENT_FLAG, CRC_LEN, FLAGS, LEN_PREFIX};
use super::{Segments, StoreError};

/// Where an entry's record and its content frame lie in `entries.bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentSpan {
    /// Where the record starts (its length word).
    pub start: u64,
    /// Where its content frame starts.
    pub frame_at: u64,
    /// Where the record ends (after its CRC).
    pub end: u64,
}

impl ContentSpan {
    /// Bytes of the span's encoding.
    pub const LEN: usize = 24;

    /// `start ‖ frame_at ‖ end`, big-endian.
    #[must_use]
    pub fn encode(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.start.to_be_bytes());
        out[8..16].copy_from_slice(&self.frame_at.to_be_bytes());
        out[16..].copy_from_slice(&self.end.to_be_bytes());
        out
    }

    /// The span `bytes` encode, if they are one (`start < frame_at`, and
    /// room for the CRC after the frame).
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let word = |at: usize| {
            bytes
                .get(at..at + 8)?
                .try_into()
                .ok()
                .map(u64::from_be_bytes)
        };
        let span = Self {
            start: word(0)?,
            frame_at: word(8)?,
            end: word(16)?,
        };
        (bytes.len() == Self::LEN
            && span.start < span.frame_at
            && span.frame_at.checked_add(CRC_LEN as u64)? < span.end)
            .then_some(span)
    }

    fn crc_at(self) -> u64 {
        self.end - CRC_LEN as u64
    }

    /// The content frame's bytes within the record (from its start).
    fn frame_range(self) -> std::ops::Range<usize> {
        (self.frame_at - self.start) as usize..(self.crc_at() - self.start) as usize
    }
}

impl Segments {
    /// Where entry `index`'s content frame lies, if the entry is committed
    /// and its record keeps content not yet erased.
    pub(in crate::store) fn content_span(
        &self,
        index: u64,
    ) -> Result<Option<ContentSpan>, StoreError> {
        let Some(record) = self.record(index)? else {
            return Ok(None);
        };
        let Some(frame) = record.content else {
            return Ok(None);
        };
        Ok(Some(ContentSpan {
            start: record.start,
            frame_at: record.end - CRC_LEN as u64 - frame.len() as u64,
            end: record.end,
        }))
    }

    /// The CRC of the bytes before the content frame of the record at
    /// `span`, read from the record whose own CRC checks: what its erase
    /// checks again before computing a new CRC over them. Refuses a
    /// damaged record (erasing it would make it check).
    pub(in crate::store) fn prefix_crc(
        &self,
        span: ContentSpan,
    ) -> Result<[u8; CRC_LEN], StoreError> {
        let record = read_record(&self.entries, span)?;
        if !crc_checks(&record) {
            return Err(StoreError::Corrupt(format!(
                "the record at byte {} of entries.bin fails its CRC: it is damaged, and \
                 erasing its content would make it check; nothing was erased",
                span.start
            )));
        }
        Ok(crc_of(&record[..span.frame_range().start]))
    }

    /// Erases the content frame at `span` durably, holding the erase lock
    /// so that a reader meeting the record half written waits and reads it
    /// again instead of taking it for damage. `prefix` is
    /// [`Self::prefix_crc`] of the record when its redaction began.
    pub(in crate::store) fn erase_span(
        &self,
        span: ContentSpan,
        prefix: [u8; CRC_LEN],
    ) -> Result<(), StoreError> {
        let _erasing = self
            .erasing
            .lock()
            .map_err(|_| StoreError::Corrupt("erase lock poisoned".into()))?;
        match finish_erase(&self.entries, span, prefix)? {
            Erase::Done => Ok(()),
            Erase::DamageKept => Err(damage_kept(span)),
        }
    }

    /// Waits for an erase in progress to end (a reader that found a record
    /// failing its check reads it again after this).
    pub(super) fn wait_for_erase(&self) {
        drop(self.erasing.lock());
    }
}

/// What [`finish_erase`] left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum Erase {
    /// The content frame is zeros and the record's CRC checks.
    Done,
    /// The bytes before the frame changed since the redaction began
    /// (damage): the frame is zeros, and the old CRC is kept, so that the
    /// record still fails its check and reads report the damage.
    DamageKept,
}

/// The error of an erase that found the record damaged.
pub(in crate::store) fn damage_kept(span: ContentSpan) -> StoreError {
    StoreError::Corrupt(format!(
        "the record at byte {} of entries.bin changed before its content frame since its \
         redaction began: it is damaged; its content was erased and its CRC left failing",
        span.start
    ))
}

/// Makes the record at `span` of `entries` one whose content frame is
/// erased and whose CRC checks: nothing when it already is, else the zeros
/// and the CRC of the record's bytes before the frame, written and made
/// durable — only if those bytes still have the CRC `prefix` they had when
/// the redaction began. If they do not, the record is damaged: the zeros
/// are written and the old CRC kept, so that the erase hides no damage
/// ([`Erase::DamageKept`]). Refuses a span that does not lie on a record
/// keeping content (its length word must say so).
pub(in crate::store) fn finish_erase(
    entries: &File,
    span: ContentSpan,
    prefix: [u8; CRC_LEN],
) -> Result<Erase, StoreError> {
    let mut record = read_record(entries, span)?;
    let frame = span.frame_range();
    if crc_checks(&record) && is_erased(&record[frame.clone()]) {
        return Ok(Erase::Done);
    }
    let intact = crc_of(&record[..frame.start]) == prefix;
    record[frame.clone()].fill(0);
    let mut tail = record[frame.clone()].to_vec();
    if intact {
        tail.extend_from_slice(&crc_of(&record[..frame.end]));
    }
    entries.write_all_at(&tail, span.frame_at)?;
    entries.sync_data()?;
    Ok(if intact {
        Erase::Done
    } else {
        Erase::DamageKept
    })
}

/// The whole record at `span`, refused unless its length word describes a
/// record keeping content of that length.
fn read_record(entries: &File, span: ContentSpan) -> Result<Vec<u8>, StoreError> {
    let bad = |what: &str| {
        StoreError::Corrupt(format!(
            "the erase of the record at byte {} of entries.bin: {what}",
            span.start
        ))
    };
    let len = usize::try_from(span.end - span.start).map_err(|_| bad("too long"))?;
    let mut record = vec![0u8; len];
    entries
        .read_exact_at(&mut record, span.start)
        .map_err(|e| bad(&format!("reading it: {e}")))?;
    let word = u32::from_be_bytes([record[0], record[1], record[2], record[3]]);
    if u64::from(word & !FLAGS) + LEN_PREFIX != span.end - span.start || word & CONTENT_FLAG == 0 {
        return Err(bad(
            "its length word does not describe a record keeping content",
        ));
    }
    Ok(record)
}
