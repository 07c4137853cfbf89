//! Erasing an entry's kept content in place in `entries.bin`: the content
//! frame becomes zeros (no zstd frame starts with a zero byte, so an
//! all-zero frame reads as erased) and the record's CRC is computed again.
//! The length word, signature and entry frame are untouched, so every
//! offset, index slot, stored hash and proof stays as it was.
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

    /// Erases the content frame at `span` durably, holding the erase lock
    /// so that a reader meeting the record half written waits and reads it
    /// again instead of taking it for damage.
    pub(in crate::store) fn erase_span(&self, span: ContentSpan) -> Result<(), StoreError> {
        let _erasing = self
            .erasing
            .lock()
            .map_err(|_| StoreError::Corrupt("erase lock poisoned".into()))?;
        finish_erase(&self.entries, span)
    }

    /// Waits for an erase in progress to end (a reader that found a record
    /// failing its check reads it again after this).
    pub(super) fn wait_for_erase(&self) {
        drop(self.erasing.lock());
    }
}

/// Makes the record at `span` of `entries` one whose content frame is
/// erased and whose CRC checks: nothing when it already is, else the zeros
/// and the CRC of the record's unchanged bytes before the frame, written
/// and made durable. Refuses a span that does not lie on a record keeping
/// content (its length word must say so).
pub(in crate::store) fn finish_erase(entries: &File, span: ContentSpan) -> Result<(), StoreError> {
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
    let frame = (span.frame_at - span.start) as usize..(span.crc_at() - span.start) as usize;
    if crc_checks(&record) && is_erased(&record[frame.clone()]) {
        return Ok(());
    }
    record[frame.clone()].fill(0);
    let crc = crc_of(&record[..frame.end]);
    let mut tail = record[frame.clone()].to_vec();
    tail.extend_from_slice(&crc);
    entries.write_all_at(&tail, span.frame_at)?;
    entries.sync_data()?;
    Ok(())
}
