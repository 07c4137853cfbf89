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
//! This module never decides what an entry is; a record that does not
//! decompress is reported as corrupt, never guessed at.

use std::sync::Mutex;

use zstd::bulk::{Compressor, Decompressor};

use super::{StoreError, MAX_VALUE_LEN};

/// zstd level: 3 is zstd's default; higher levels gain little on records
/// this small and cost the writer time.
const LEVEL: i32 = 3;

/// A store's entry codec.
pub(super) struct Codec {
    dictionary: Vec<u8>,
    compressor: Mutex<Compressor<'static>>,
    /// Decompressors with the dictionary loaded, reused across reads
    /// (loading digests the dictionary).
    decompressors: Mutex<Vec<Decompressor<'static>>>,
}

impl Codec {
    /// A codec over `dictionary`.
    pub(super) fn new(dictionary: Vec<u8>) -> Result<Self, StoreError> {
        let mut compressor = Compressor::with_dictionary(LEVEL, &dictionary)?;
        // A 4-byte checksum per record: damage on disk fails the read
        // instead of yielding other bytes.
        compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
        Ok(Self {
            dictionary,
            compressor: Mutex::new(compressor),
            decompressors: Mutex::new(Vec::new()),
        })
    }

    /// The dictionary (to commit with the first batch).
    pub(super) fn dictionary(&self) -> &[u8] {
        &self.dictionary
    }

    /// Appends the compressed form of `bytes` to `out`.
    pub(super) fn compress_into(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), StoreError> {
        let mut compressor = self
            .compressor
            .lock()
            .map_err(|_| StoreError::Corrupt("entry compressor poisoned".into()))?;
        out.extend_from_slice(&compressor.compress(bytes)?);
        Ok(())
    }

    /// The entry bytes of a compressed record body.
    pub(super) fn decompress(&self, body: &[u8]) -> Result<Vec<u8>, StoreError> {
        let pooled = self
            .decompressors
            .lock()
            .map_err(|_| StoreError::Corrupt("entry decompressors poisoned".into()))?
            .pop();
        let mut decompressor = match pooled {
            Some(d) => d,
            None => Decompressor::with_dictionary(&self.dictionary)?,
        };
        let bytes = decompressor
            .decompress(body, MAX_VALUE_LEN)
            .map_err(|e| StoreError::Corrupt(format!("an entry record does not decompress: {e}")));
        if let Ok(mut pool) = self.decompressors.lock() {
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
