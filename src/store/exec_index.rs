//! The exec_id → entry index map, kept in hash buckets of the sled tree
//! `exec_ids` rather than one key per exec_id.
//!
//! sled keeps per-page state in memory for every page of every tree, and a
//! leaf page holds at most 16 keys: one key per exec_id made sled's memory
//! and start-up grow with the log (about 330 MB at 10M entries). A bucket
//! per 20 bits of SHA-256(exec_id) bounds the number of keys at 2^20; each
//! bucket's value lists its exec_ids with their indexes (about ten per
//! bucket at 10M entries, a few hundred bytes).
//!
//! Bucket value: repeated `u16` exec_id length (BE) ‖ exec_id (UTF-8) ‖
//! `u64` index (BE), in insertion order. Pure functions: no I/O here.

use sha2::{Digest, Sha256};

use super::StoreError;

/// Bits of SHA-256(exec_id) that name its bucket.
const BUCKET_BITS: u32 = 20;

/// The sled key of `exec_id`'s bucket.
pub(super) fn bucket_key(exec_id: &str) -> [u8; 4] {
    let digest = Sha256::digest(exec_id.as_bytes());
    let prefix = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (prefix >> (32 - BUCKET_BITS)).to_be_bytes()
}

/// The index recorded for `exec_id` in a bucket's value.
pub(super) fn lookup(bucket: &[u8], exec_id: &str) -> Result<Option<u64>, StoreError> {
    for item in Items(bucket) {
        let (id, index) = item?;
        if id == exec_id.as_bytes() {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// A bucket's value with `additions` recorded (an exec_id already present
/// gets the new index, as a map insert would).
pub(super) fn with_added(
    bucket: Option<&[u8]>,
    additions: &[(&str, u64)],
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(bucket.map_or(0, <[u8]>::len) + additions.len() * 48);
    for item in Items(bucket.unwrap_or_default()) {
        let (id, index) = item?;
        if !additions.iter().any(|(a, _)| a.as_bytes() == id) {
            push(&mut out, id, index)?;
        }
    }
    for (id, index) in additions {
        push(&mut out, id.as_bytes(), *index)?;
    }
    // About 4,000 exec_ids per bucket (billions of entries) before this
    // refuses a value sled would otherwise put in an unsynced blob file.
    super::check_len(out.len())?;
    Ok(out)
}

fn push(out: &mut Vec<u8>, id: &[u8], index: u64) -> Result<(), StoreError> {
    let len = u16::try_from(id.len()).map_err(|_| StoreError::TooLarge(id.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&index.to_be_bytes());
    Ok(())
}

/// The (exec_id, index) items of a bucket value.
struct Items<'a>(&'a [u8]);

impl<'a> Iterator for Items<'a> {
    type Item = Result<(&'a [u8], u64), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let corrupt = || StoreError::Corrupt("exec_id bucket".into());
        let parsed = (|| {
            let len = usize::from(u16::from_be_bytes(self.0.get(..2)?.try_into().ok()?));
            let id = self.0.get(2..2 + len)?;
            let index = u64::from_be_bytes(self.0.get(2 + len..10 + len)?.try_into().ok()?);
            Some((id, index, 10 + len))
        })();
        match parsed {
            Some((id, index, used)) => {
                self.0 = &self.0[used..];
                Some(Ok((id, index)))
            }
            None => {
                self.0 = &[];
                Some(Err(corrupt()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_exec_ids_are_found_and_others_are_not() {
        let one = with_added(None, &[("a", 1), ("bb", 2)]).unwrap();
        let two = with_added(Some(&one), &[("ccc", 3), ("a", 7)]).unwrap();
        assert_eq!(lookup(&two, "a").unwrap(), Some(7));
        assert_eq!(lookup(&two, "bb").unwrap(), Some(2));
        assert_eq!(lookup(&two, "ccc").unwrap(), Some(3));
        assert_eq!(lookup(&two, "b").unwrap(), None);
        assert_eq!(lookup(&[], "a").unwrap(), None);
    }

    #[test]
    fn a_truncated_bucket_is_corrupt_not_empty() {
        let one = with_added(None, &[("exec-1", 1)]).unwrap();
        assert!(lookup(&one[..one.len() - 1], "exec-1").is_err());
        assert!(with_added(Some(&one[..3]), &[("x", 2)]).is_err());
    }

    #[test]
    fn buckets_spread_and_stay_in_range() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..10_000 {
            let key = u32::from_be_bytes(bucket_key(&format!("exec-{n}")));
            assert!(key < 1 << BUCKET_BITS);
            seen.insert(key);
        }
        assert!(seen.len() > 9_900, "{} distinct buckets", seen.len());
    }
}
