//! Compression of entry bytes in `entries.bin`: zstd with a raw-content
//! dictionary, namely the store's first entry.
//!
//! Entries are a few hundred bytes of canonical JSON that share their keys,
//! their origin and much of their shape; alone, each compresses poorly,
//! but against an earlier entry most of it becomes back-references. Using
//! the store's own first entry as the dictionary needs no training, no
//! dictionary file shipped with the binary, and never changes for a store:
//! it is committed in sled's `meta` (`entries_dict`) with the first batch.
//!
//! A record's frames are [`super::tokens`]-rewritten before compression
//! (base64 hashes and UUIDs as raw bytes) and compressed against the
//! dictionary rewritten the same way, followed by the keys every content
//! frame holds ([`CONTENT_KEYS`]).
//!
//! This module never decides what an entry is; a record that does not
//! decompress is reported as corrupt, never guessed at.

use std::sync::Mutex;

use zstd::bulk::{Compressor, Decompressor};

use super::tokens::{detokenize, tokenize};
use super::{StoreError, MAX_VALUE_LEN};

/// zstd level: 3 is zstd's default; higher levels gain little on records
/// this small and cost the writer time.
const LEVEL: i32 = 3;

/// Appended to the tokenized dictionary: the text a content frame
/// (payload, result and salts, `core::receipt::Content`) always holds, which
/// the first entry does not. Part of the format: records were compressed
/// against it, so it never changes (content frames 130 → 111 bytes on HTTP
/// echo records).
const CONTENT_KEYS: &[u8] = br#"{"payload":{},"result":{},"salts":{"payload":"","result":""}}"#;

/// A store's entry codec.
pub(super) struct Codec {
    /// The store's dictionary, as committed.
    dictionary: Vec<u8>,
    compressor: Mutex<Compressor<'static>>,
    /// Decompressors with the tokenized dictionary loaded, reused across
    /// reads (loading digests the dictionary).
    decompressors: Pool,
}

/// Decompressors over one dictionary.
struct Pool {
    dictionary: Vec<u8>,
    idle: Mutex<Vec<Decompressor<'static>>>,
}

impl Codec {
    /// A codec over `dictionary` (the store's committed one, as committed).
    pub(super) fn new(dictionary: Vec<u8>) -> Result<Self, StoreError> {
        let mut tokenized = tokenize(&dictionary);
        tokenized.extend_from_slice(CONTENT_KEYS);
        let mut compressor = Compressor::with_dictionary(LEVEL, &tokenized)?;
        // A 4-byte checksum per record: damage on disk fails the read
        // instead of yielding other bytes.
        compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
        // Literals stored as they are: once tokenized, a record's literals
        // are mostly raw hash and UUID bytes, which Huffman coding does not
        // shrink, and building its table per ~400-byte record was ~3% of
        // the server's CPU (`HUF_buildCTable`). 389 instead of 388 bytes
        // per echo record. Any zstd decoder reads either.
        compressor.set_parameter(zstd::zstd_safe::CParameter::LiteralCompressionMode(
            zstd::zstd_safe::ParamSwitch::Disable,
        ))?;
        Ok(Self {
            dictionary,
            decompressors: Pool::new(tokenized),
            compressor: Mutex::new(compressor),
        })
    }

    /// The dictionary (to commit with the first batch).
    pub(super) fn dictionary(&self) -> &[u8] {
        &self.dictionary
    }

    /// Appends the compressed form of `bytes` to `out`.
    pub(super) fn compress_into(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), StoreError> {
        let compressed = self
            .compressor
            .lock()
            .map_err(|_| StoreError::Corrupt("entry compressor poisoned".into()))?
            .compress(&tokenize(bytes))?;
        out.extend_from_slice(&compressed);
        Ok(())
    }

    /// The bytes of a compressed frame.
    pub(super) fn decompress(&self, body: &[u8]) -> Result<Vec<u8>, StoreError> {
        // An escaped byte takes two: a value's tokens may be up to twice
        // as long as the value.
        detokenize(&self.decompressors.decompress(body, 2 * MAX_VALUE_LEN)?)
    }
}

impl Pool {
    fn new(dictionary: Vec<u8>) -> Self {
        Self {
            dictionary,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The frame's bytes, if at most `capacity`.
    fn decompress(&self, body: &[u8], capacity: usize) -> Result<Vec<u8>, StoreError> {
        let pooled = self
            .idle
            .lock()
            .map_err(|_| StoreError::Corrupt("entry decompressors poisoned".into()))?
            .pop();
        let mut decompressor = match pooled {
            Some(d) => d,
            None => Decompressor::with_dictionary(&self.dictionary)?,
        };
        let bytes = decompressor
            .decompress(body, capacity)
            .map_err(|e| StoreError::Corrupt(format!("an entry record does not decompress: {e}")));
        if let Ok(mut pool) = self.idle.lock() {
            pool.push(decompressor);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &[u8] = br#"{"action":"echo","approval":{"kind":"none"},"exec_id":"a-1","index":0,"origin":"example.org/log","outcome":"executed"}"#;

    #[test]
    fn round_trips_and_shrinks_entries_like_the_dictionary() {
        let codec = Codec::new(FIRST.to_vec()).unwrap();
        let next = br#"{"action":"echo","approval":{"kind":"none"},"exec_id":"a-2","index":1,"origin":"example.org/log","outcome":"rejected"}"#;
        let mut body = Vec::new();
        codec.compress_into(next, &mut body).unwrap();
        assert!(body.len() * 3 < next.len(), "{} bytes", body.len());
        assert_eq!(codec.decompress(&body).unwrap(), next);
        // Reads reuse pooled decompressors.
        assert_eq!(codec.decompress(&body).unwrap(), next);
    }

    #[test]
    fn a_largest_value_of_marker_bytes_round_trips() {
        let codec = Codec::new(FIRST.to_vec()).unwrap();
        let value = vec![0x01; MAX_VALUE_LEN];
        let mut body = Vec::new();
        codec.compress_into(&value, &mut body).unwrap();
        assert_eq!(codec.decompress(&body).unwrap(), value);
    }

    #[test]
    fn another_dictionary_or_damaged_bytes_fail_the_read() {
        let codec = Codec::new(FIRST.to_vec()).unwrap();
        let mut body = Vec::new();
        codec.compress_into(FIRST, &mut body).unwrap();
        let other = Codec::new(b"{\"something\":\"else entirely\"}".to_vec()).unwrap();
        assert!(other.decompress(&body).is_err());
        for at in [body.len() / 2, body.len() - 1] {
            let mut damaged = body.clone();
            damaged[at] ^= 0x01;
            assert!(codec.decompress(&damaged).is_err(), "flip at {at}");
        }
    }
}
