//! SHA-256 values and the RFC 6962 leaf and node hashes.
//!
//! [`Hash`](struct@Hash) is the one 32-byte digest type of the crate. Its text form is
//! standard padded base64 (as in C2SP checkpoints), decoded strictly.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Size of a SHA-256 digest in bytes.
pub const HASH_LEN: usize = 32;

/// A SHA-256 digest: a leaf hash, an interior node hash, a tree root or a
/// content commitment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash([u8; HASH_LEN]);

/// A text or byte form that is not a 32-byte hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Not valid standard (padded) base64.
    #[error("hash is not valid standard base64")]
    Base64,
    /// Valid encoding, but not 32 bytes.
    #[error("hash must be {HASH_LEN} bytes, got {0}")]
    Length(usize),
}

impl Hash {
    /// Wraps 32 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// Takes a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashError> {
        let array: [u8; HASH_LEN] = bytes
            .try_into()
            .map_err(|_| HashError::Length(bytes.len()))?;
        Ok(Self(array))
    }

    /// Parses standard padded base64; any other encoding is refused.
    pub fn from_base64(text: &str) -> Result<Self, HashError> {
        let bytes = STANDARD.decode(text).map_err(|_| HashError::Base64)?;
        Self::from_slice(&bytes)
    }

    /// The raw digest.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Standard padded base64, the form used in every ledger format.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// SHA-256 of `data`, with no prefix.
    #[must_use]
    pub fn sha256(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_base64())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

impl From<tlog_tiles::Hash> for Hash {
    fn from(h: tlog_tiles::Hash) -> Self {
        Self(h.0)
    }
}

impl From<Hash> for tlog_tiles::Hash {
    fn from(h: Hash) -> Self {
        tlog_tiles::Hash(h.0)
    }
}

/// RFC 6962 §2.1 leaf hash: `SHA-256(0x00 ‖ data)`.
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    tlog_tiles::record_hash(data).into()
}

/// RFC 6962 §2.1 interior node hash: `SHA-256(0x01 ‖ left ‖ right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    tlog_tiles::node_hash((*left).into(), (*right).into()).into()
}

/// RFC 6962 §2.1 hash of the empty tree: `SHA-256("")`.
#[must_use]
pub fn empty_tree_hash() -> Hash {
    tlog_tiles::EMPTY_HASH.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tree_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(empty_tree_hash().as_bytes()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_prefixes() {
        // Known answers computed with `printf '\x00abc' | sha256sum` and
        // the concatenation of two leaf hashes after 0x01.
        let leaf = leaf_hash(b"abc");
        let mut pre = vec![0u8];
        pre.extend_from_slice(b"abc");
        assert_eq!(leaf, Hash::sha256(&pre));
        let mut node_in = vec![1u8];
        node_in.extend_from_slice(leaf.as_bytes());
        node_in.extend_from_slice(leaf.as_bytes());
        assert_eq!(node_hash(&leaf, &leaf), Hash::sha256(&node_in));
    }

    #[test]
    fn base64_is_strict() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        // Missing padding, whitespace and wrong length are refused.
        let text = h.to_base64();
        assert_eq!(
            Hash::from_base64(text.trim_end_matches('=')),
            Err(HashError::Base64)
        );
        assert_eq!(
            Hash::from_base64(&format!(" {text}")),
            Err(HashError::Base64)
        );
        assert_eq!(Hash::from_base64("AAAA"), Err(HashError::Length(3)));
        let longer = STANDARD.encode([7u8; 33]);
        assert_eq!(Hash::from_base64(&longer), Err(HashError::Length(33)));
        // In JSON, escaped or not, borrowed or not.
        let json = format!("[\"{text}\",\"{}\"]", text.replace('/', "\\/"));
        let parsed: Vec<Hash> = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, vec![h, h]);
        let parsed: Vec<Hash> = serde_json::from_reader(json.as_bytes()).unwrap();
        assert_eq!(parsed, vec![h, h]);
        assert!(serde_json::from_str::<Hash>("\"AAAA\"").is_err());
        assert!(serde_json::from_str::<Hash>("7").is_err());
    }
}
