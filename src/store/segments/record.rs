//! One `entries.bin` record: its length word and flags, how its
//! signature, entry frame and content frame are laid out, and its CRC.
//! Byte layout only; the file I/O is [`super::Segments`]'s.
//!
//! A record ends in a CRC-32 of all its bytes before it, length word and
//! flags included: a record read with any one to 32 adjacent bits changed
//! fails its check, whatever they held (the completion flag, a length, a
//! frame, the signature), and is never read as another record.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::super::codec::Codec;
use super::super::StoreError;

/// Bytes before the signature in an `entries.bin` record.
pub(super) const LEN_PREFIX: u64 = 4;
/// Set in a record's length word when the record carries a content frame.
pub(super) const CONTENT_FLAG: u32 = 1 << 31;
/// Set in every record's length word: its frames were rewritten by
/// [`super::super::tokens`] before compression. A record without it is corrupt.
pub(super) const TOKENS_FLAG: u32 = 1 << 30;
/// Set in a record's length word when its entry completed the entry's
/// nonce (the store's `nonces.tab` takes only such entries).
pub(super) const COMPLETES_FLAG: u32 = 1 << 29;
/// The flag bits of a length word.
pub(super) const FLAGS: u32 = CONTENT_FLAG | TOKENS_FLAG | COMPLETES_FLAG;
/// Signature bytes in a record.
pub(super) const SIG_LEN: usize = 64;
/// Bytes of the CRC that ends a record.
pub(super) const CRC_LEN: usize = 4;
/// What one record holds.
pub(super) struct RecordParts<'a> {
    pub(super) signature: &'a [u8; 64],
    /// The entry's bytes.
    pub(super) bytes: &'a [u8],
    /// Its cleartext content, if kept.
    pub(super) content: Option<&'a [u8]>,
    /// Whether the entry completed its nonce ([`COMPLETES_FLAG`]).
    pub(super) completes: bool,
}

/// Appends one record to `out` — length ‖ signature ‖ compressed bytes, or
/// with content: flagged length ‖ signature ‖ entry frame length ‖ entry
/// frame ‖ content frame; then the CRC — and returns its length.
pub(super) fn append_record(
    codec: &Codec,
    parts: &RecordParts<'_>,
    out: &mut Vec<u8>,
) -> Result<u64, StoreError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(parts.signature);
    let flag = match parts.content {
        None => {
            codec.compress_into(parts.bytes, out)?;
            0
        }
        Some(content) => {
            let frame_at = out.len();
            out.extend_from_slice(&[0; 4]);
            codec.compress_into(parts.bytes, out)?;
            let frame_len = word(out.len() - frame_at - 4)?;
            out[frame_at..frame_at + 4].copy_from_slice(&frame_len.to_be_bytes());
            codec.compress_into(content, out)?;
            CONTENT_FLAG
        }
    };
    let completes = if parts.completes { COMPLETES_FLAG } else { 0 };
    let len = word(out.len() + CRC_LEN - at - 4)?;
    out[at..at + 4].copy_from_slice(&(len | flag | completes | TOKENS_FLAG).to_be_bytes());
    let crc = crc32fast::hash(&out[at..]);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(LEN_PREFIX + u64::from(len))
}

/// Whether `record` (a whole record, length word to CRC) checks.
pub(super) fn crc_checks(record: &[u8]) -> bool {
    record.len() >= CRC_LEN && {
        let (covered, crc) = record.split_at(record.len() - CRC_LEN);
        crc32fast::hash(covered).to_be_bytes() == crc
    }
}

/// The CRC bytes of a record whose bytes before its CRC are `covered`.
pub(super) fn crc_of(covered: &[u8]) -> [u8; CRC_LEN] {
    crc32fast::hash(covered).to_be_bytes()
}

/// A record length, which must leave the [`FLAGS`] free.
pub(super) fn word(len: usize) -> Result<u32, StoreError> {
    u32::try_from(len)
        .ok()
        .filter(|l| l & FLAGS == 0)
        .ok_or(StoreError::TooLarge(len))
}

/// A flagged record's body (after the signature): its entry frame and
/// content frame (`None` once erased).
pub(super) fn split_content(mut body: Vec<u8>) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let frame_len = usize::try_from(u32::from_be_bytes(body.get(..4)?.try_into().ok()?)).ok()?;
    let content = body.split_off(4usize.checked_add(frame_len).filter(|&e| e <= body.len())?);
    body.drain(..4);
    Some((body, Some(content).filter(|frame| !is_erased(frame))))
}

/// Whether a content frame was erased ([`super::erase`]).
pub(super) fn is_erased(frame: &[u8]) -> bool {
    frame.iter().all(|&b| b == 0)
}

/// One `entries.bin` record, its frames still compressed.
pub(super) struct Record {
    pub(super) signature: [u8; 64],
    pub(super) entry: Vec<u8>,
    /// The content frame, unless the record has none or it was erased.
    pub(super) content: Option<Vec<u8>>,
    /// Whether the record has a content frame and it was erased (zeros).
    pub(super) erased: bool,
    /// Whether its entry completed its nonce ([`COMPLETES_FLAG`]).
    pub(super) completes: bool,
    /// Where the record starts in the file.
    pub(super) start: u64,
    /// Where the record ends in the file.
    pub(super) end: u64,
}

impl Record {
    pub(super) fn entry_bytes(&self, codec: &Codec) -> Result<Vec<u8>, StoreError> {
        codec.decompress(&self.entry)
    }

    pub(super) fn content_bytes(&self, codec: &Codec) -> Result<Option<Vec<u8>>, StoreError> {
        self.content
            .as_ref()
            .map(|frame| codec.decompress(frame))
            .transpose()
    }
}

/// The record at `start` of `entries` (which must lie wholly before
/// `limit` and check, its CRC), still compressed; damage as a value (what
/// failed).
pub(super) fn parse(
    entries: &File,
    start: u64,
    limit: u64,
) -> Result<Result<Record, &'static str>, StoreError> {
    let past_the_end = "a record runs past the end of the file";
    let mut prefix = [0u8; 4];
    if start + LEN_PREFIX > limit {
        return Ok(Err("a record starts past the committed end"));
    }
    if !read_within(entries, &mut prefix, start)? {
        return Ok(Err(past_the_end));
    }
    let word = u32::from_be_bytes(prefix);
    let len = u64::from(word & !FLAGS);
    if len < (SIG_LEN + CRC_LEN) as u64 || start + LEN_PREFIX + len > limit {
        return Ok(Err("a record's length is out of bounds"));
    }
    let Ok(total) = usize::try_from(LEN_PREFIX + len) else {
        return Ok(Err("a record's length is out of bounds"));
    };
    let mut record = vec![0u8; total];
    record[..4].copy_from_slice(&prefix);
    if !read_within(entries, &mut record[4..], start + LEN_PREFIX)? {
        return Ok(Err(past_the_end));
    }
    if !crc_checks(&record) {
        return Ok(Err("a record fails its CRC"));
    }
    if word & TOKENS_FLAG == 0 {
        return Ok(Err("a record without the tokens flag"));
    }
    record.truncate(total - CRC_LEN);
    let body = record.split_off(4 + SIG_LEN);
    let Ok(signature) = <[u8; 64]>::try_from(&record[4..]) else {
        return Ok(Err("a record's signature is cut"));
    };
    let (entry, content) = if word & CONTENT_FLAG == 0 {
        (body, None)
    } else {
        match split_content(body) {
            Some(frames) => frames,
            None => return Ok(Err("the entry frame's length is out of bounds")),
        }
    };
    let erased = word & CONTENT_FLAG != 0 && content.is_none();
    Ok(Ok(Record {
        signature,
        entry,
        content,
        erased,
        completes: word & COMPLETES_FLAG != 0,
        start,
        end: start + LEN_PREFIX + len,
    }))
}

/// Reads `buf.len()` bytes at `at`; `false` when the file ends first.
fn read_within(file: &File, buf: &mut [u8], at: u64) -> Result<bool, StoreError> {
    match file.read_exact_at(buf, at) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e.into()),
    }
}
