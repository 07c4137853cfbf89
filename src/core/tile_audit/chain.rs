//! What the entry bundles show of each OpenExec entry, read in order: its
//! canonical form, its place (index, origin, the hash chain of `prev`) and,
//! for a replay, the entry it names. Entry signatures are not in the
//! bundles; the log's signature over the checkpoint covers every entry
//! through the root.

use crate::core::entry::{Entry, ReplayOf, GENESIS_PREV};
use crate::core::hash::Hash;

/// The entries read so far: where the next one must stand.
#[derive(Debug, Clone)]
pub struct EntryChain {
    origin: String,
    next_index: u64,
    prev: Hash,
    replays: u64,
}

impl EntryChain {
    /// A chain of the log `origin`, from entry 0.
    #[must_use]
    pub fn new(origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            next_index: 0,
            prev: GENESIS_PREV,
            replays: 0,
        }
    }

    /// Replays seen so far.
    #[must_use]
    pub const fn replays(&self) -> u64 {
        self.replays
    }

    /// Checks the next entry (its bytes and leaf hash): canonical, of this
    /// log, at its index, chained to the previous leaf. A replay is
    /// returned with the entry it names, which the caller reads (from the
    /// bundle in hand or again from the tiles) for [`check_replay`].
    pub fn next(&mut self, bytes: &[u8], leaf: Hash) -> Result<Option<(Entry, ReplayOf)>, String> {
        let index = self.next_index;
        let entry = Entry::from_canonical_bytes(bytes).map_err(|e| e.to_string())?;
        if entry.index != index {
            return Err(format!("holds index {} at position {index}", entry.index));
        }
        if entry.origin != self.origin {
            return Err(format!(
                "names origin {:?}, not the log's {:?}",
                entry.origin, self.origin
            ));
        }
        if entry.prev != self.prev {
            return Err(format!(
                "hash chain broken: prev is {}, the previous leaf hash is {}",
                entry.prev, self.prev
            ));
        }
        self.prev = leaf;
        self.next_index += 1;
        Ok(entry.replay_of.map(|of| {
            self.replays += 1;
            (entry, of)
        }))
    }
}

/// A replay names, by index and leaf hash, the entry that completed its
/// nonce for the same request, and repeats that entry's exec_id,
/// commitments and outcome. `original` is the entry at `of.index`, its
/// bytes read from tiles checked against the signed tree.
pub fn check_replay(
    replay: &Entry,
    of: ReplayOf,
    original: &[u8],
    leaf: Hash,
) -> Result<(), String> {
    let problem = |what: &str| Err(format!("replays entry {}, {what}", of.index));
    if leaf != of.leaf_hash {
        return problem("whose leaf hash is not the one it names");
    }
    let original = Entry::from_canonical_bytes(original).map_err(|e| e.to_string())?;
    if (&original.tenant, &original.nonce) != (&replay.tenant, &replay.nonce) {
        return problem("which holds another nonce");
    }
    if original.request_hash != replay.request_hash || original.action != replay.action {
        return problem("which is another request");
    }
    if original.exec_id != replay.exec_id
        || original.payload_commitment != replay.payload_commitment
        || original.result_commitment != replay.result_commitment
        || replay.reason != format!("replay_of_{}", original.outcome)
    {
        return problem("but does not repeat its exec_id, commitments and outcome");
    }
    Ok(())
}
