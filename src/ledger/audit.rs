//! Full re-verification of a ledger in a data directory.
//!
//! The audit trusts nothing the writer computed: it re-reads every entry,
//! re-derives the hash chain, every leaf hash, every stored Merkle hash,
//! every signature, and the root of every stored checkpoint, and names the
//! first bad index. As an independent cross-check it also rebuilds the
//! whole tree from the raw leaf hashes with `rs_merkle` (a different Merkle
//! implementation from the `tlog_tiles` code that wrote the log) and
//! compares the head root. That rebuild holds every leaf and every level of
//! the tree in memory (rs_merkle keeps them all: about 320 bytes per entry
//! measured at 1M entries, docs/PERFORMANCE.md); it is the one O(n)-memory step in the project and can be turned
//! off with `--no-rebuild`.
//!
//! The audit opens the store directly, so the service must be stopped.

use std::io::Write;

use rs_merkle::{Hasher, MerkleTree};

use super::LedgerError;
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::{Entry, GENESIS_PREV};
use crate::core::hash::{empty_tree_hash, leaf_hash, node_hash, Hash};
use crate::core::proof::{tree_root, TreeSize};
use crate::core::signing::LogVerifier;
use crate::store::{Store, StoreHashReader};

/// What the audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Whether the rs_merkle rebuild ran and agreed.
    pub rebuilt: bool,
    /// The first problem, if any: (index or size, what is wrong).
    pub first_bad: Option<AuditFinding>,
}

/// One problem found by the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFinding {
    /// Where: an entry index, or a checkpoint's tree size.
    pub at: Location,
    /// What is wrong.
    pub problem: String,
}

/// Where a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Entry at this index.
    Entry(u64),
    /// Checkpoint of this tree size.
    Checkpoint(u64),
    /// The head record.
    Head,
}

impl std::fmt::Display for AuditFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Location::Entry(i) => write!(f, "entry {i}: {}", self.problem),
            Location::Checkpoint(s) => write!(f, "checkpoint of size {s}: {}", self.problem),
            Location::Head => write!(f, "head: {}", self.problem),
        }
    }
}

/// Audit options.
#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    /// Rebuild the tree with rs_merkle and compare roots.
    pub rebuild: bool,
    /// Print progress to stderr every this many entries (0: never).
    pub progress_every: u64,
}

/// The RFC 6962 hasher for rs_merkle: `hash` is the leaf hash, and
/// `concat_and_hash` the node hash; an unpaired node is promoted, which is
/// what RFC 6962's left-heavy split gives too.
#[derive(Clone)]
struct Rfc6962;

impl Hasher for Rfc6962 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        *leaf_hash(data).as_bytes()
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(r) => *node_hash(&Hash::from_bytes(*left), &Hash::from_bytes(*r)).as_bytes(),
            None => *left,
        }
    }
}

/// Audits the store against the log's verifier key.
pub fn audit(store: &Store, options: AuditOptions) -> Result<AuditReport, LedgerError> {
    let vkey = store
        .meta("vkey")?
        .ok_or_else(|| LedgerError::Config("no log in this directory".into()))?;
    let verifier = LogVerifier::from_vkey(&String::from_utf8_lossy(&vkey))?;
    let head = store
        .head()?
        .ok_or_else(|| LedgerError::Config("no head record".into()))?;
    let mut report = AuditReport {
        entries: 0,
        checkpoints: 0,
        rebuilt: false,
        first_bad: None,
    };
    let mut leaves = Vec::new();
    let mut prev = GENESIS_PREV;
    for index in 0..head.size {
        match check_entry(store, &verifier, index, &prev) {
            Ok(leaf) => {
                prev = leaf;
                if options.rebuild {
                    leaves.push(*leaf.as_bytes());
                }
            }
            Err(problem) => {
                report.first_bad = Some(AuditFinding {
                    at: Location::Entry(index),
                    problem,
                });
                return Ok(report);
            }
        }
        report.entries += 1;
        if options.progress_every > 0 && (index + 1) % options.progress_every == 0 {
            let _ = writeln!(
                std::io::stderr(),
                "audit: {} / {} entries",
                index + 1,
                head.size
            );
        }
    }
    if prev != head.last_leaf {
        report.first_bad = Some(AuditFinding {
            at: Location::Head,
            problem: "last leaf hash differs".into(),
        });
        return Ok(report);
    }
    // Checkpoints up to the head read at the start: a live log keeps adding
    // newer ones while the audit runs.
    for item in store.checkpoints_up_to(head.size) {
        let (size, note) = item?;
        if let Err(problem) = check_checkpoint(store, &verifier, size, &note, head.size) {
            report.first_bad = Some(AuditFinding {
                at: Location::Checkpoint(size),
                problem,
            });
            return Ok(report);
        }
        report.checkpoints += 1;
    }
    if let Some((size, _)) = store.latest_checkpoint()? {
        let head_unchanged = store.head()?.is_some_and(|h| h.size == head.size);
        if size > head.size && head_unchanged {
            report.first_bad = Some(AuditFinding {
                at: Location::Checkpoint(size),
                problem: "beyond the head".into(),
            });
            return Ok(report);
        }
    }
    let head_root = tree_root(&StoreHashReader(store), TreeSize(head.size))?;
    if head_root != head.root {
        report.first_bad = Some(AuditFinding {
            at: Location::Head,
            problem: "head root differs from the stored tree".into(),
        });
        return Ok(report);
    }
    if options.rebuild {
        let rebuilt = if leaves.is_empty() {
            empty_tree_hash()
        } else {
            MerkleTree::<Rfc6962>::from_leaves(&leaves)
                .root()
                .map_or(empty_tree_hash(), Hash::from_bytes)
        };
        if rebuilt != head.root {
            report.first_bad = Some(AuditFinding {
                at: Location::Head,
                problem: "independent rs_merkle rebuild gives another root".into(),
            });
            return Ok(report);
        }
        report.rebuilt = true;
    }
    Ok(report)
}

/// Checks entry `index`; returns its leaf hash.
fn check_entry(
    store: &Store,
    verifier: &LogVerifier,
    index: u64,
    prev: &Hash,
) -> Result<Hash, String> {
    let (bytes, sig) = store
        .entry(index)
        .map_err(|e| e.to_string())?
        .ok_or("missing")?;
    let entry = Entry::from_canonical_bytes(&bytes).map_err(|e| e.to_string())?;
    if entry.index != index {
        return Err(format!("records index {}", entry.index));
    }
    if entry.origin != verifier.name() {
        return Err(format!("records origin {:?}", entry.origin));
    }
    if entry.prev != *prev {
        return Err("hash chain broken: prev is not the previous leaf hash".into());
    }
    if !verifier.verify_entry(&bytes, &ed25519_dalek::Signature::from_bytes(&sig)) {
        return Err("entry signature is invalid".into());
    }
    let leaf = leaf_hash(&bytes);
    let expected =
        tlog_tiles::stored_hashes_for_record_hash(index, leaf.into(), &StoreHashReader(store))
            .map_err(|e| format!("stored hashes: {e}"))?;
    let first = tlog_tiles::stored_hash_index(0, index);
    for (at, want) in (first..).zip(expected) {
        let got = store.stored_hash(at).map_err(|e| e.to_string())?;
        if got != Some(Hash::from(want)) {
            return Err(format!("stored Merkle hash {at} is wrong"));
        }
    }
    Ok(leaf)
}

fn check_checkpoint(
    store: &Store,
    verifier: &LogVerifier,
    size: u64,
    note: &str,
    head_size: u64,
) -> Result<(), String> {
    let cp = SignedCheckpoint::open(note.as_bytes(), verifier).map_err(|e| e.to_string())?;
    if cp.size() != size {
        return Err(format!("stored under size {size} but says {}", cp.size()));
    }
    if size > head_size {
        return Err("beyond the head".into());
    }
    let root = tree_root(&StoreHashReader(store), TreeSize(size)).map_err(|e| e.to_string())?;
    if root != cp.root() {
        return Err("root differs from the stored tree".into());
    }
    Ok(())
}
