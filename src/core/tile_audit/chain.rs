//! What the entry bundles show of each OpenExec entry, read in order: its
//! canonical form, its place (index, origin, the hash chain of `prev`) and,
//! for a replay, the entry it names. Entry signatures are not in the
//! bundles; the log's signature over the checkpoint covers every entry
//! through the root.

use crate::core::entry::{Entry, ReplayOf, GENESIS_PREV};
use crate::core::hash::Hash;
use crate::core::rotation::{after_log_end, check_link_place, is_log_end};

/// The entries read so far: where the next one must stand.
#[derive(Debug, Clone)]
pub struct EntryChain {
    origin: String,
    next_index: u64,
    prev: Hash,
    replays: u64,
    /// The index of the executed `log_end` entry read, if any: the log is
    /// sealed there.
    sealed_at: Option<u64>,
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
            sealed_at: None,
        }
    }

    /// Replays seen so far.
    #[must_use]
    pub const fn replays(&self) -> u64 {
        self.replays
    }

    /// Checks the next entry (its bytes and leaf hash): canonical, of this
    /// log, at its index, chained to the previous leaf, not after an
    /// executed `log_end` entry, and a link entry only where the log writes
    /// one ([`check_link_place`]). A replay is
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
        if let Some(end) = self.sealed_at {
            return Err(after_log_end(end));
        }
        check_link_place(&entry)?;
        if is_log_end(&entry) {
            self.sealed_at = Some(index);
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
    replay_repeats(replay, of, &original)
}

/// A replay is of the same nonce and request as the entry it names
/// (`original`), and repeats its exec_id, commitments and outcome; the
/// finding names the first difference. Shared by the tile audit and the
/// audit of a stopped ledger.
pub fn replay_repeats(replay: &Entry, of: ReplayOf, original: &Entry) -> Result<(), String> {
    let problem = |what: &str| Err(format!("replays entry {}, {what}", of.index));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may panic on broken invariants

    use super::*;
    use crate::core::entry::tests::sample_draft;
    use crate::core::entry::EntryDraft;
    use crate::core::hash::leaf_hash;
    use crate::core::rotation::{log_end_draft, log_start_draft, Predecessor, Successor};

    /// Reads `drafts` as the entries of one log, in order, through the
    /// chain check; the first problem with its index.
    fn read(drafts: Vec<EntryDraft>) -> Result<(), (u64, String)> {
        let time = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut chain = EntryChain::new("x/log");
        let mut prev = GENESIS_PREV;
        for (index, draft) in (0u64..).zip(drafts) {
            let entry = Entry::from_draft(draft, "x/log", index, prev, time);
            let bytes = entry.to_canonical_bytes().unwrap();
            prev = leaf_hash(&bytes);
            chain.next(&bytes, prev).map_err(|e| (index, e))?;
        }
        Ok(())
    }

    fn end() -> EntryDraft {
        let successor = Successor {
            origin: "x/log-g2".into(),
            vkey: "x/log-g2+00000000+AAAA".into(),
        };
        log_end_draft(&successor, "end".into()).unwrap()
    }

    fn start() -> EntryDraft {
        let predecessor = Predecessor {
            checkpoint: Hash::sha256(b"c"),
            origin: "x/log-g1".into(),
            root: Hash::sha256(b"r"),
            size: 3,
            vkey: "x/log-g1+00000000+AAAA".into(),
        };
        log_start_draft(&predecessor, "start".into()).unwrap()
    }

    #[test]
    fn the_seal_holds_link_entries_in_their_places() {
        assert!(read(vec![start(), sample_draft(1), end()]).is_ok());
        let (at, why) = read(vec![sample_draft(1), end(), sample_draft(2)]).unwrap_err();
        assert_eq!(at, 2);
        assert!(
            why.contains("follows the executed log_end entry 1"),
            "{why}"
        );
        let (at, why) = read(vec![sample_draft(1), start()]).unwrap_err();
        assert_eq!(at, 1);
        assert!(why.contains("only at index 0"), "{why}");
        let mut other = sample_draft(1);
        other.action = "openexec/other".into();
        let (at, why) = read(vec![other]).unwrap_err();
        assert_eq!(at, 0);
        assert!(why.contains("openexec/other"), "{why}");
    }
}
