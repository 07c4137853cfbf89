//! Full re-verification of a ledger in a data directory.
//!
//! The audit trusts nothing the writer computed: it re-reads every entry,
//! re-derives the hash chain, every leaf hash, every stored Merkle hash,
//! every signature, and the root of every stored checkpoint, and names the
//! first bad index. As an independent cross-check it also rebuilds the
//! whole tree from the raw leaf hashes with `rs_merkle` (a different Merkle
//! implementation from the `tlog_tiles` code that wrote the log) and
//! compares the head root. Each entry whose record says it completed its
//! nonce must be the entry the done-nonce table answers for that nonce —
//! so no nonce was completed twice, and replays would find that entry —
//! and, if it names an approval, the entry the consumed-approval table
//! answers for that approval — so no approval was consumed twice. Each
//! replay must name, by index and leaf hash, an earlier entry that
//! completed the same nonce for the same request, and repeat its exec_id,
//! commitments and outcome.
//!
//! Every stored byte a reader uses is checked: each record of
//! `entries.bin` by its CRC (reading it), through `entries.idx` (which must
//! say where it ends); its kept content, which must open the entry's
//! salted commitments; its completion flag, which only an attempt that ran
//! or was interrupted may carry; its exec_id, which `exec_ids.tab` must
//! find; every stored hash; every slot of the three key tables; the commit
//! ring's slots. Damage to a derived file that the audit's own open
//! repaired, and a commit-ring slot one of whose two copies is damaged,
//! are reported as warnings.
//!
//! rs_merkle keeps every level of a tree in memory,
//! so the rebuild runs it over chunks of [`REBUILD_CHUNK`] leaves (a perfect
//! subtree each, ~20 MB: rs_merkle keeps about 320 bytes per leaf) and
//! then once more over the chunk roots: RFC
//! 6962's left-heavy split never cuts a perfect subtree of that size, so
//! the result is the same root in bounded memory, however long the log.
//! It can be turned off with `--no-rebuild`.
//!
//! The audit opens the store directly, so the service must be stopped.

use std::io::Write;

use rs_merkle::{Hasher, MerkleTree};

use super::LedgerError;
use crate::core::canonical::to_canonical_bytes;
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::{indexed_exec_id, nonce_key, Entry, Outcome, GENESIS_PREV};
use crate::core::hash::{empty_tree_hash, leaf_hash, node_hash, Hash};
use crate::core::proof::{tree_root, TreeSize};
use crate::core::receipt::{opens_commitment, Content};
use crate::core::signing::LogVerifier;
use crate::core::tile_audit::chain::replay_repeats;
use crate::store::{Store, StoreHashReader};

mod redaction;

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
    /// Damage that changes no answer: repaired by opening the store, or
    /// a commit-ring slot still held by its other copy.
    pub warnings: Vec<String>,
    /// Which handler registries wrote the entries checked: one span per
    /// run of entries recording the same fingerprint, in log order.
    pub registries: Vec<RegistrySpan>,
}

/// A run of consecutive entries written under one handler registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySpan {
    /// The fingerprint the entries record (`None`: they record none).
    pub fingerprint: Option<Hash>,
    /// The first entry's index.
    pub first: u64,
    /// The last entry's index.
    pub last: u64,
}

/// Extends the last span with entry `index`, or starts a new one.
pub(crate) fn note_registry(spans: &mut Vec<RegistrySpan>, index: u64, fingerprint: Option<Hash>) {
    match spans.last_mut() {
        Some(span) if span.fingerprint == fingerprint && span.last + 1 == index => {
            span.last = index;
        }
        _ => spans.push(RegistrySpan {
            fingerprint,
            first: index,
            last: index,
        }),
    }
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
    /// A file of the store, at this byte.
    File(&'static str, u64),
}

impl std::fmt::Display for AuditFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Location::Entry(i) => write!(f, "entry {i}: {}", self.problem),
            Location::Checkpoint(s) => write!(f, "checkpoint of size {s}: {}", self.problem),
            Location::Head => write!(f, "head: {}", self.problem),
            Location::File(file, at) => write!(f, "{file} at byte {at}: {}", self.problem),
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

/// Leaves per rs_merkle rebuild chunk (a power of two).
pub const REBUILD_CHUNK: usize = 1 << 16;

/// The independent rebuild: rs_merkle over each chunk of leaves, then over
/// the chunk roots. Holds at most one chunk of leaves.
struct ChunkedRebuild {
    chunk_len: usize,
    leaves: Vec<[u8; 32]>,
    chunk_roots: Vec<[u8; 32]>,
}

impl ChunkedRebuild {
    fn new(chunk_len: usize) -> Self {
        Self {
            chunk_len,
            leaves: Vec::new(),
            chunk_roots: Vec::new(),
        }
    }

    fn push(&mut self, leaf: Hash) {
        self.leaves.push(*leaf.as_bytes());
        if self.leaves.len() == self.chunk_len {
            self.close_chunk();
        }
    }

    fn close_chunk(&mut self) {
        if let Some(root) = MerkleTree::<Rfc6962>::from_leaves(&self.leaves).root() {
            self.chunk_roots.push(root);
        }
        self.leaves.clear();
    }

    fn root(mut self) -> Hash {
        if !self.leaves.is_empty() {
            self.close_chunk();
        }
        MerkleTree::<Rfc6962>::from_leaves(&self.chunk_roots)
            .root()
            .map_or(empty_tree_hash(), Hash::from_bytes)
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
        warnings: store.repairs(),
        registries: Vec::new(),
    };
    report.warnings.extend(redaction::unsettled(store)?);
    if let Some(finding) = check_files(store, &mut report.warnings)? {
        report.first_bad = Some(finding);
        return Ok(report);
    }
    let mut rebuild = options.rebuild.then(|| ChunkedRebuild::new(REBUILD_CHUNK));
    let mut prev = GENESIS_PREV;
    let mut start = 0;
    while start < head.size {
        let end = head.size.min(start + AUDIT_BLOCK);
        for (index, checked) in
            (start..end).zip(check_block(store, &verifier, start..end, head.size))
        {
            let registry = checked.as_ref().ok().and_then(|c| c.registry);
            match checked.and_then(|c| c.follows(&prev)) {
                Ok(leaf) => {
                    note_registry(&mut report.registries, index, registry);
                    prev = leaf;
                    if let Some(rebuild) = rebuild.as_mut() {
                        rebuild.push(leaf);
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
        start = end;
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
    if let Some(rebuild) = rebuild {
        if rebuild.root() != head.root {
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
/// Entries checked per block: each block's entries are checked on every
/// core at once, then chained in order.
const AUDIT_BLOCK: u64 = 8192;

/// What an entry's own checks found; the chain check needs its
/// predecessor and happens in order ([`EntryCheck::follows`]).
struct EntryCheck {
    /// The `prev` the entry records.
    recorded_prev: Hash,
    /// The registry fingerprint it records.
    registry: Option<Hash>,
    leaf: Hash,
    /// Signature and stored hashes, reported after the chain check so the
    /// first problem named is the same as a sequential audit's.
    rest: Result<(), String>,
}

impl EntryCheck {
    /// The leaf hash, if the entry chains to `prev` and passed its checks.
    fn follows(self, prev: &Hash) -> Result<Hash, String> {
        if self.recorded_prev != *prev {
            return Err("hash chain broken: prev is not the previous leaf hash".into());
        }
        self.rest.map(|()| self.leaf)
    }
}

/// Checks the entries of `range` on every core (each entry alone), in order.
fn check_block(
    store: &Store,
    verifier: &LogVerifier,
    range: std::ops::Range<u64>,
    size: u64,
) -> Vec<Result<EntryCheck, String>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let per_thread = (range.end - range.start).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = (range.start..range.end)
            .step_by(usize::try_from(per_thread).unwrap_or(usize::MAX))
            .map(|from| {
                let to = range.end.min(from + per_thread);
                scope.spawn(move || {
                    (from..to)
                        .map(|index| check_entry(store, verifier, index, size))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|_| vec![Err("audit thread panicked".into())])
            })
            .collect()
    })
}

/// Checks the key tables' slots and the commit ring: the first damaged
/// slot of a key table is a finding; a ring slot that is not two equal
/// sound copies is a warning (a crash tears the one being written; one
/// damaged copy leaves the other).
fn check_files(
    store: &Store,
    warnings: &mut Vec<String>,
) -> Result<Option<AuditFinding>, LedgerError> {
    for (file, damaged) in store.first_damaged_slots()? {
        if let Some(at) = damaged {
            return Ok(Some(AuditFinding {
                at: Location::File(file, at),
                problem: "a key-table slot fails its check".into(),
            }));
        }
    }
    for (slot, held) in store.unsound_ring_slots()? {
        warnings.push(if held {
            format!("commits.ring slot {slot}: one copy is damaged; the other holds its commit")
        } else {
            format!(
                "commits.ring slot {slot} holds no commit that checks: torn by a crash while \
                 it was written, or damaged"
            )
        });
    }
    Ok(None)
}

/// Checks entry `index` by itself: present, canonical, index, origin,
/// signature, stored Merkle hashes, kept content, exec_id lookup, (if it
/// completed its nonce) that it may and that the done-nonce table answers
/// it for that nonce, (for a replay) the entry it replays, and (for a link
/// entry) its place: an executed `log_end` entry is the last of the `size`
/// entries, since a retired log takes no entry.
fn check_entry(
    store: &Store,
    verifier: &LogVerifier,
    index: u64,
    size: u64,
) -> Result<EntryCheck, String> {
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
    let leaf = leaf_hash(&bytes);
    let rest = if verifier.verify_entry(&bytes, &ed25519_dalek::Signature::from_bytes(&sig)) {
        check_stored_hashes(store, index, leaf)
            .and_then(|()| check_content(store, index, &entry))
            .and_then(|()| check_exec_id(store, &bytes))
            .and_then(|()| check_completion(store, index, &entry))
            .and_then(|()| check_replay(store, &entry))
            .and_then(|()| redaction::check_redaction(store, &entry))
            .and_then(|()| check_seal(index, size, &entry))
    } else {
        Err("entry signature is invalid".into())
    };
    Ok(EntryCheck {
        recorded_prev: entry.prev,
        registry: entry.registry,
        leaf,
        rest,
    })
}

/// A link entry stands where the log writes it; nothing follows an
/// executed `log_end` entry (the `log_end` entry is the one named).
fn check_seal(index: u64, size: u64, entry: &Entry) -> Result<(), String> {
    crate::core::rotation::check_link_place(entry)?;
    if crate::core::rotation::is_log_end(entry) && index.saturating_add(1) < size {
        return Err(format!(
            "an executed log_end entry with {} entries after it: a retired log takes no entry",
            size - index - 1
        ));
    }
    Ok(())
}

/// A completing entry is the one its nonce's done record leads to, and
/// the one its approval's consumed record leads to: two entries completing
/// one nonce, or consuming one approval, cannot both be.
fn check_completion(store: &Store, index: u64, entry: &Entry) -> Result<(), String> {
    if !store.completes_nonce(index).map_err(|e| e.to_string())? {
        return Ok(());
    }
    if !matches!(
        entry.outcome,
        Outcome::Executed | Outcome::Failed | Outcome::Interrupted
    ) {
        return Err(format!(
            "its record says it completed its nonce, but a {} attempt never does",
            entry.outcome.as_str()
        ));
    }
    let key = nonce_key(&entry.tenant, &entry.nonce);
    match store.done_nonce(&key).map_err(|e| e.to_string())? {
        Some(done) if done == index => {}
        found => {
            return Err(format!(
                "completes nonce {:?} of tenant {:?}, whose done record is {}: a nonce \
                 completed twice, or nonces.tab is damaged",
                entry.nonce,
                entry.tenant,
                entry_or_missing(found)
            ))
        }
    }
    let Some(approval) = entry.approval.consume_key(&entry.tenant) else {
        return Ok(());
    };
    match store
        .approval_consumer(&approval)
        .map_err(|e| e.to_string())?
    {
        Some(consumer) if consumer == index => Ok(()),
        found => Err(format!(
            "consumes approval {:?}, whose consumed record is {}: an approval consumed \
             twice, or approvals.tab is damaged",
            entry.approval.id.as_deref().unwrap_or_default(),
            entry_or_missing(found)
        )),
    }
}

/// A replay names the entry that completed its nonce, by index and leaf
/// hash, for the same request, and repeats that entry's exec_id and
/// commitments (the decoder has checked that it names an earlier entry).
fn check_replay(store: &Store, replay: &Entry) -> Result<(), String> {
    let Some(of) = replay.replay_of else {
        return Ok(());
    };
    let problem = |what: &str| Err(format!("replays entry {}, {what}", of.index));
    let Some((bytes, _)) = store.entry(of.index).map_err(|e| e.to_string())? else {
        return problem("which is missing");
    };
    if leaf_hash(&bytes) != of.leaf_hash {
        return problem("whose leaf hash is not the one it names");
    }
    let original = Entry::from_canonical_bytes(&bytes).map_err(|e| e.to_string())?;
    if !store.completes_nonce(of.index).map_err(|e| e.to_string())? {
        return problem("which did not complete a nonce");
    }
    replay_repeats(replay, of, &original)
}

/// The content kept beside the entry, if any, is what its salted
/// commitments commit to, stored as the ledger writes it.
/// Erased content must be the work of a recorded redaction.
fn check_content(store: &Store, index: u64, entry: &Entry) -> Result<(), String> {
    match store.content(index).map_err(|e| e.to_string())? {
        Some(bytes) => content_opens(entry, &bytes),
        None if store.content_erased(index).map_err(|e| e.to_string())? => {
            redaction::check_erased(store, index)
        }
        None => Ok(()),
    }
}

/// Kept content `bytes` is what the entry's salted commitments commit to,
/// stored as the ledger writes it.
pub(crate) fn content_opens(entry: &Entry, bytes: &[u8]) -> Result<(), String> {
    let content: Content = serde_json::from_slice(bytes)
        .map_err(|e| format!("its kept content does not parse: {e}"))?;
    if serde_json::to_vec(&content).ok().as_deref() != Some(bytes) {
        return Err("its kept content is not as the ledger writes it".into());
    }
    let canonical = |value: &serde_json::Value| to_canonical_bytes(value).unwrap_or_default();
    if !opens_commitment(
        &entry.payload_commitment,
        &content.salts.payload,
        &canonical(&content.payload),
    ) {
        return Err("its kept payload does not open its payload commitment".into());
    }
    let result_opens = match (
        &entry.result_commitment,
        &content.result,
        &content.salts.result,
    ) {
        (Some(expected), Some(result), Some(salt)) => {
            opens_commitment(expected, salt, &canonical(result))
        }
        (None, None, None) => true,
        _ => false,
    };
    if !result_opens {
        return Err("its kept result does not open its result commitment".into());
    }
    Ok(())
}

/// `exec_ids.tab` finds an entry of the exec_id the entry is indexed under.
fn check_exec_id(store: &Store, bytes: &[u8]) -> Result<(), String> {
    let Some(exec_id) = indexed_exec_id(bytes) else {
        return Ok(());
    };
    match store.index_of_exec_id(&exec_id) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!(
            "exec_ids.tab does not find its exec_id {exec_id:?}: the table is damaged"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn entry_or_missing(index: Option<u64>) -> String {
    index.map_or("missing".to_string(), |i| format!("entry {i}"))
}

/// The stored Merkle hashes that leaf `index` added are the ones it implies.
fn check_stored_hashes(store: &Store, index: u64, leaf: Hash) -> Result<(), String> {
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
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::proof::reference;

    #[test]
    fn an_entry_after_an_executed_log_end_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::ledger::LedgerConfig::new(dir.path());
        config.checkpoint_memo = Some(dir.path().join("memo"));
        let ledger = crate::ledger::Ledger::open(&config).unwrap();
        let draft = crate::core::entry::tests::sample_draft;
        let successor = crate::core::rotation::Successor {
            origin: "x/log-g2".into(),
            vkey: "x/log-g2+00000000+AAAA".into(),
        };
        let end = crate::core::rotation::log_end_draft(&successor, "end".into()).unwrap();
        ledger.append(draft(1), None).unwrap();
        ledger.append(end, None).unwrap();
        let options = || AuditOptions {
            rebuild: false,
            progress_every: 0,
        };
        let clean = audit(ledger.store().unwrap(), options()).unwrap();
        assert!(clean.first_bad.is_none(), "{:?}", clean.first_bad);
        // Retirement is read at open: this session still appends.
        ledger.append(draft(2), None).unwrap();
        let report = audit(ledger.store().unwrap(), options()).unwrap();
        let bad = report.first_bad.unwrap();
        assert!(matches!(bad.at, Location::Entry(1)), "{bad}");
        assert!(bad.problem.contains("1 entries after it"), "{bad}");
    }

    #[test]
    fn chunked_rebuild_equals_the_rfc6962_root_for_every_size() {
        // Small chunks exercise every way a size can straddle chunks.
        for chunk in [1, 2, 4, 8] {
            for n in 0..70u8 {
                let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&[i])).collect();
                let mut rebuild = ChunkedRebuild::new(chunk);
                for leaf in &leaves {
                    rebuild.push(*leaf);
                }
                assert_eq!(
                    rebuild.root(),
                    reference::root(&leaves),
                    "chunk {chunk}, size {n}"
                );
            }
        }
    }
}
