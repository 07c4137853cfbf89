//! The store's side of a redaction: a record per redacted entry in sled's
//! `redactions` tree, and the erase of the entry's kept content in place
//! ([`super::segments::ContentSpan`]).
//!
//! The ledger records the redaction as an entry first, so that erasing
//! always leaves a trace; the record here is what makes the erase survive
//! a crash at any moment:
//!
//! 1. [`Store::begin_redaction`]: the record, without the redaction
//!    entry's index (*recording*), durable before the entry is queued;
//! 2. the redaction entry is committed;
//! 3. [`Store::finish_redaction`]: the record with the entry's index
//!    (*erasing*), durable, then the erase, durable.
//!
//! At open, before anything reads `entries.bin`, every *erasing* record's
//! erase is completed ([`redo_erasures`]): a torn write of the zeros and
//! the CRC is written again whole. A *recording* record is resolved by the
//! ledger once the store is open: erased if its redaction entry was
//! committed, forgotten otherwise (nothing was erased). The records hold
//! positions, an index, a reason code and a log size: no content.

use std::path::Path;

use super::segments::{damage_kept, finish_erase, open_rw, ContentSpan, Erase, ENTRIES};
use super::{sync_sled, Store, StoreError};

/// sled's tree of redaction records: redacted entry index (`u64`) → record.
pub(super) const TREE: &str = "redactions";

/// Bytes of a record before its reason code.
const FIXED: usize = ContentSpan::LEN + 20;

/// The longest reason code a record holds.
const MAX_REASON: usize = 64;

/// What the store records of one redacted entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionRecord {
    /// Where the redacted entry's record and content frame lie.
    pub span: ContentSpan,
    /// The log's size when the redaction began: its entry is at or past it.
    pub from_size: u64,
    /// The redaction entry's index, once it is committed (`None`: the
    /// entry may not be).
    pub entry: Option<u64>,
    /// The CRC of the redacted record's bytes before its content frame,
    /// read when the redaction began from the record whose CRC checked:
    /// the erase checks them against it before writing a new CRC over
    /// them ([`super::segments::finish_erase`]).
    pub prefix_crc: [u8; 4],
    /// The redaction's reason code.
    pub reason: String,
}

impl RedactionRecord {
    /// `span (24) ‖ from_size (u64) ‖ entry (u64; all ones: none) ‖
    /// prefix_crc (4) ‖ reason`.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED + self.reason.len());
        out.extend_from_slice(&self.span.encode());
        out.extend_from_slice(&self.from_size.to_be_bytes());
        out.extend_from_slice(&self.entry.unwrap_or(u64::MAX).to_be_bytes());
        out.extend_from_slice(&self.prefix_crc);
        out.extend_from_slice(self.reason.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("a redaction record is not one".into());
        let span = ContentSpan::decode(bytes.get(..ContentSpan::LEN).ok_or_else(corrupt)?)
            .ok_or_else(corrupt)?;
        let word = |at: usize| -> Result<u64, StoreError> {
            let w = bytes.get(at..at + 8).ok_or_else(corrupt)?;
            Ok(u64::from_be_bytes(w.try_into().map_err(|_| corrupt())?))
        };
        let from_size = word(ContentSpan::LEN)?;
        let entry = Some(word(ContentSpan::LEN + 8)?).filter(|&i| i != u64::MAX);
        let prefix_crc = bytes
            .get(ContentSpan::LEN + 16..FIXED)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .ok_or_else(corrupt)?;
        let reason = std::str::from_utf8(&bytes[FIXED..])
            .map_err(|_| corrupt())?
            .to_owned();
        if reason.is_empty() || reason.len() > MAX_REASON {
            return Err(corrupt());
        }
        Ok(Self {
            span,
            from_size,
            entry,
            prefix_crc,
            reason,
        })
    }
}

impl Store {
    /// The redaction record of entry `index`, if it was redacted (or a
    /// redaction of it began).
    pub fn redaction(&self, index: u64) -> Result<Option<RedactionRecord>, StoreError> {
        self.inner
            .redactions
            .get(index.to_be_bytes())?
            .map(|v| RedactionRecord::decode(&v))
            .transpose()
    }

    /// Every redaction record, by redacted entry index.
    pub fn redactions(&self) -> Result<Vec<(u64, RedactionRecord)>, StoreError> {
        self.inner
            .redactions
            .iter()
            .map(|item| {
                let (key, value) = item?;
                let index = <[u8; 8]>::try_from(key.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("a redaction record's key".into()))?;
                Ok((index, RedactionRecord::decode(&value)?))
            })
            .collect()
    }

    /// Step 1: records, durably, that entry `index`'s content is about to
    /// be erased for `reason`, before the redaction entry is queued.
    /// `None` when the entry is not committed or keeps no content (none
    /// kept, or already erased): nothing to erase, nothing recorded.
    /// Refuses a record whose CRC does not check.
    pub fn begin_redaction(
        &self,
        index: u64,
        reason: &str,
    ) -> Result<Option<RedactionRecord>, StoreError> {
        if reason.is_empty() || reason.len() > MAX_REASON {
            return Err(StoreError::Corrupt(format!("redaction reason {reason:?}")));
        }
        let Some(span) = self.inner.segments.content_span(index)? else {
            return Ok(None);
        };
        let record = RedactionRecord {
            span,
            from_size: self.inner.segments.visible(),
            entry: None,
            prefix_crc: self.inner.segments.prefix_crc(span)?,
            reason: reason.to_owned(),
        };
        self.put_redaction(index, &record)?;
        Ok(Some(record))
    }

    /// Step 3: records, durably, that entry `entry` (committed) records
    /// the redaction of entry `index`, then erases its content, durably.
    pub fn finish_redaction(&self, index: u64, entry: u64) -> Result<(), StoreError> {
        let mut record = self.redaction(index)?.ok_or_else(|| {
            StoreError::Corrupt(format!("no redaction of entry {index} was begun"))
        })?;
        if record.entry != Some(entry) {
            record.entry = Some(entry);
            self.put_redaction(index, &record)?;
        }
        self.inner
            .segments
            .erase_span(record.span, record.prefix_crc)
    }

    /// Forgets a redaction begun whose entry was never committed (nothing
    /// was erased).
    pub fn forget_redaction(&self, index: u64) -> Result<(), StoreError> {
        self.inner.redactions.remove(index.to_be_bytes())?;
        sync_sled(&self.inner.db, &self.inner.log_file)
    }

    fn put_redaction(&self, index: u64, record: &RedactionRecord) -> Result<(), StoreError> {
        self.inner
            .redactions
            .insert(index.to_be_bytes(), record.encode())?;
        sync_sled(&self.inner.db, &self.inner.log_file)
    }
}

/// At open, before the segment files are read: completes the erase of
/// every redaction whose entry is committed (a crash may have torn its
/// write). A record damaged since its redaction began has its content
/// erased and keeps a failing CRC. Records past `entries_end` (the committed records' end) are
/// refused: a committed redaction names a committed entry.
pub(super) fn redo_erasures(db: &sled::Db, dir: &Path, entries_end: u64) -> Result<(), StoreError> {
    let tree = db.open_tree(TREE)?;
    if tree.is_empty() {
        return Ok(());
    }
    let entries = open_rw(&dir.join(ENTRIES))?;
    for item in &tree {
        let (_, value) = item?;
        let record = RedactionRecord::decode(&value)?;
        if record.entry.is_none() {
            continue;
        }
        if record.span.end > entries_end {
            return Err(StoreError::Corrupt(format!(
                "a redaction names a record ending at byte {} of entries.bin, past the \
                 committed records' end {entries_end}",
                record.span.end
            )));
        }
        // A damaged record keeps its content erased and its CRC failing:
        // reads report the damage, and the store still opens.
        if finish_erase(&entries, record.span, record.prefix_crc)? == Erase::DamageKept {
            tracing::error!(error = %damage_kept(record.span), "redaction");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
