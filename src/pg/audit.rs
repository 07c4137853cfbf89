//! `openexec audit --db-url postgres://…`: the log in the database checked
//! from its rows alone, each entry read once, in O(log n) memory for the
//! tree (the stored hashes are recomputed from a frontier, as the writer
//! does):
//! each entry canonical, at its index, of this origin, signed, chained to
//! the one before, its stored hashes and kept content what they must be,
//! its exec_id indexed as the ledger indexes it (NULL for a replay, and for
//! a late entry whose exec_id an earlier one carries), a replay naming the entry
//! it repeats; every checkpoint signed and of the tree at its size; the
//! head the tree's, its checkpoint (the one nodes serve) signed and of the
//! head's size and root; and nonces and approvals each completed or consumed by
//! the one entry that says so.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::{Client, Row};

use super::reads::{hash_of, index_param, size_of};
use super::tree::{decode_frontier, encode_frontier, HashMapReader};
use super::PgError;
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::{indexed_exec_id, nonce_key, Entry, Outcome, GENESIS_PREV};
use crate::core::hash::{leaf_hash, Hash};
use crate::core::proof::{tree_root, TreeSize};
use crate::core::signing::LogVerifier;
use crate::ledger::audit::{note_registry, AuditFinding, AuditReport, Location};
use crate::ledger::LedgerError;

/// Entries read per query.
const PAGE: i64 = 4096;

/// Audits the log in the database at `url`.
pub fn audit(url: &str) -> Result<AuditReport, LedgerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = super::connect(url).await?;
        Audit::new(&client).await?.run().await
    })
}

struct Audit<'a> {
    client: &'a Client,
    verifier: LogVerifier,
    head: crate::store::Head,
    frontier: Vec<u8>,
    /// The head row's checkpoint: what every node serves.
    head_checkpoint: String,
    /// Checkpoints up to the head, by size.
    checkpoints: BTreeMap<u64, String>,
    report: AuditReport,
    /// Completing entries: nonce key → index, approval key → index.
    completed: HashMap<Vec<u8>, u64>,
    consumed: HashMap<String, u64>,
}

type Finding = (Location, String);

impl<'a> Audit<'a> {
    async fn new(client: &'a Client) -> Result<Self, LedgerError> {
        let head = client
            .query_one(
                "SELECT vkey, size, root, last_leaf, frontier, checkpoint FROM openexec_head WHERE id = 0",
                &[],
            )
            .await
            .map_err(PgError::from)?;
        let vkey: String = head.try_get(0).map_err(PgError::from)?;
        let size = size_of(&head, 1)?;
        let checkpoints = client
            .query(
                "SELECT size, note FROM openexec_checkpoints WHERE size <= $1 ORDER BY size",
                &[&index_param(size)?],
            )
            .await
            .map_err(PgError::from)?
            .iter()
            .map(|r| Ok((size_of(r, 0)?, r.try_get(1)?)))
            .collect::<Result<_, PgError>>()?;
        Ok(Self {
            client,
            verifier: LogVerifier::from_vkey(&vkey)?,
            head: crate::store::Head {
                size,
                root: hash_of(&head, 2)?,
                last_leaf: hash_of(&head, 3)?,
            },
            frontier: head.try_get(4).map_err(PgError::from)?,
            head_checkpoint: head.try_get(5).map_err(PgError::from)?,
            checkpoints,
            report: AuditReport {
                entries: 0,
                checkpoints: 0,
                rebuilt: false,
                first_bad: None,
                warnings: Vec::new(),
                registries: Vec::new(),
            },
            completed: HashMap::new(),
            consumed: HashMap::new(),
        })
    }

    /// An entry's exec_id is indexed unless it is a replay's, or a late
    /// entry's whose exec_id an earlier entry (the survivor's) carries.
    async fn check_exec_id(
        &self,
        index: u64,
        stored: Option<String>,
        bytes: &[u8],
    ) -> Result<Result<(), String>, LedgerError> {
        let expected = indexed_exec_id(bytes);
        if stored == expected {
            return Ok(Ok(()));
        }
        let Some(exec_id) = expected.filter(|_| stored.is_none()) else {
            return Ok(Err(
                "its exec_id is not indexed as the ledger indexes it".into()
            ));
        };
        let earlier = self
            .client
            .query_opt(
                "SELECT idx FROM openexec_entries WHERE exec_id = $1 AND idx < $2",
                &[&exec_id, &index_param(index)?],
            )
            .await
            .map_err(PgError::from)?;
        Ok(match earlier {
            Some(_) => Ok(()),
            None => Err("its exec_id is not indexed as the ledger indexes it".into()),
        })
    }

    async fn run(mut self) -> Result<AuditReport, LedgerError> {
        if let Err((at, problem)) = self.check().await? {
            self.report.first_bad = Some(AuditFinding { at, problem });
        }
        Ok(self.report)
    }

    async fn check(&mut self) -> Result<Result<(), Finding>, LedgerError> {
        let mut tree = HashMapReader(HashMap::new());
        let mut prev = GENESIS_PREV;
        if let Err(f) = self.check_checkpoint(0, &tree) {
            return Ok(Err(f));
        }
        let mut next = 0u64;
        while next < self.head.size {
            let rows = self
                .client
                .query(
                    "SELECT idx, record, signature, hashes, exec_id, completes, content \
                     FROM openexec_entries WHERE idx >= $1 ORDER BY idx LIMIT $2",
                    &[&index_param(next)?, &PAGE],
                )
                .await
                .map_err(PgError::from)?;
            if rows.is_empty() {
                return Ok(Err((Location::Entry(next), "missing".into())));
            }
            for row in &rows {
                let index = size_of(row, 0)?;
                if index != next {
                    return Ok(Err((Location::Entry(next), "missing".into())));
                }
                match self.check_entry(row, index, &prev, &mut tree).await? {
                    Ok(leaf) => prev = leaf,
                    Err(problem) => return Ok(Err((Location::Entry(index), problem))),
                }
                self.report.entries += 1;
                next += 1;
                if let Err(f) = self.check_checkpoint(next, &tree) {
                    return Ok(Err(f));
                }
            }
        }
        Ok(self.check_head(prev, &tree).and(self.check_nonces().await?))
    }

    /// One entry, given the leaf before it; extends `tree`.
    async fn check_entry(
        &mut self,
        row: &Row,
        index: u64,
        prev: &Hash,
        tree: &mut HashMapReader,
    ) -> Result<Result<Hash, String>, LedgerError> {
        let bytes: Vec<u8> = row.try_get(1).map_err(PgError::from)?;
        let entry = match Entry::from_canonical_bytes(&bytes) {
            Ok(e) => e,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let signature: Vec<u8> = row.try_get(2).map_err(PgError::from)?;
        let signature = <[u8; 64]>::try_from(signature.as_slice()).ok();
        let signed = signature.is_some_and(|s| {
            self.verifier
                .verify_entry(&bytes, &ed25519_dalek::Signature::from_bytes(&s))
        });
        let leaf = leaf_hash(&bytes);
        let problem = if entry.index != index {
            Some(format!("records index {}", entry.index))
        } else if entry.origin != self.verifier.name() {
            Some(format!("records origin {:?}", entry.origin))
        } else if entry.prev != *prev {
            Some("hash chain broken: prev is not the previous leaf hash".into())
        } else if !signed {
            Some("entry signature is invalid".into())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Ok(Err(problem));
        }
        let stored = tlog_tiles::stored_hashes_for_record_hash(index, leaf.into(), &*tree)
            .map_err(|e| PgError::Corrupt(format!("stored hashes of {index}: {e}")))?;
        let mut expected = Vec::with_capacity(stored.len() * 32);
        for (i, h) in (tlog_tiles::stored_hash_index(0, index)..).zip(stored) {
            expected.extend_from_slice(Hash::from(h).as_bytes());
            tree.0.insert(i, Hash::from(h));
        }
        // Keep the frontier only: what the next entries and roots need.
        tree.0 = decode_frontier(
            index + 1,
            &encode_frontier(index + 1, &tree.0).unwrap_or_default(),
        )
        .unwrap_or_default();
        let hashes: Vec<u8> = row.try_get(3).map_err(PgError::from)?;
        if hashes != expected {
            return Ok(Err("stored Merkle hashes differ from the entry's".into()));
        }
        let exec_id: Option<String> = row.try_get(4).map_err(PgError::from)?;
        if let Err(problem) = self.check_exec_id(index, exec_id, &bytes).await? {
            return Ok(Err(problem));
        }
        let content: Option<Vec<u8>> = row.try_get(6).map_err(PgError::from)?;
        if let Some(Err(problem)) = content
            .as_deref()
            .map(|c| crate::ledger::audit::content_opens(&entry, c))
        {
            return Ok(Err(problem));
        }
        let completes: bool = row.try_get(5).map_err(PgError::from)?;
        if let Err(problem) = self.note_completion(index, &entry, completes) {
            return Ok(Err(problem));
        }
        if let Err(problem) = self.check_replay(&entry).await? {
            return Ok(Err(problem));
        }
        if let Err(problem) = self.check_redaction(&entry).await? {
            return Ok(Err(problem));
        }
        note_registry(&mut self.report.registries, index, entry.registry);
        Ok(Ok(leaf))
    }

    fn note_completion(
        &mut self,
        index: u64,
        entry: &Entry,
        completes: bool,
    ) -> Result<(), String> {
        if !completes {
            return Ok(());
        }
        if !matches!(
            entry.outcome,
            Outcome::Executed | Outcome::Failed | Outcome::Interrupted
        ) {
            return Err(format!(
                "its row says it completed its nonce, but a {} attempt never does",
                entry.outcome.as_str()
            ));
        }
        if let Some(first) = self
            .completed
            .insert(nonce_key(&entry.tenant, &entry.nonce), index)
        {
            return Err(format!(
                "completes nonce {:?}, completed by entry {first} already",
                entry.nonce
            ));
        }
        if let Some(ak) = entry.approval.consume_key(&entry.tenant) {
            if let Some(first) = self.consumed.insert(ak, index) {
                return Err(format!(
                    "consumes an approval entry {first} consumed already"
                ));
            }
        }
        Ok(())
    }

    /// A replay names the completing entry of its nonce and repeats it.
    async fn check_replay(&self, replay: &Entry) -> Result<Result<(), String>, LedgerError> {
        let Some(of) = replay.replay_of else {
            return Ok(Ok(()));
        };
        let original = self
            .client
            .query_opt(
                "SELECT record, completes FROM openexec_entries WHERE idx = $1",
                &[&index_param(of.index)?],
            )
            .await
            .map_err(PgError::from)?;
        let Some(original) = original else {
            return Ok(Err(format!("replays entry {}, which is missing", of.index)));
        };
        let bytes: Vec<u8> = original.try_get(0).map_err(PgError::from)?;
        let completes: bool = original.try_get(1).map_err(PgError::from)?;
        let same = Entry::from_canonical_bytes(&bytes).ok().is_some_and(|o| {
            leaf_hash(&bytes) == of.leaf_hash
                && completes
                && (&o.tenant, &o.nonce, &o.exec_id)
                    == (&replay.tenant, &replay.nonce, &replay.exec_id)
                && o.request_hash == replay.request_hash
                && o.payload_commitment == replay.payload_commitment
                && o.result_commitment == replay.result_commitment
        });
        Ok(if same {
            Ok(())
        } else {
            Err(format!(
                "replays entry {}, but does not repeat it",
                of.index
            ))
        })
    }

    /// A `redacted` entry names an `executed` or `failed` entry by leaf
    /// hash, repeats its exec_id, request and commitments, and that
    /// entry's content is NULL (set in the redaction's transaction).
    async fn check_redaction(&self, redaction: &Entry) -> Result<Result<(), String>, LedgerError> {
        let Some(of) = redaction.redacts else {
            return Ok(Ok(()));
        };
        let target = self
            .client
            .query_opt(
                "SELECT record, content IS NULL FROM openexec_entries WHERE idx = $1",
                &[&index_param(of.index)?],
            )
            .await
            .map_err(PgError::from)?;
        let Some(target) = target else {
            return Ok(Err(format!("redacts entry {}, which is missing", of.index)));
        };
        let bytes: Vec<u8> = target.try_get(0).map_err(PgError::from)?;
        let erased: bool = target.try_get(1).map_err(PgError::from)?;
        let same = Entry::from_canonical_bytes(&bytes).ok().is_some_and(|t| {
            leaf_hash(&bytes) == of.leaf_hash
                && matches!(t.outcome, Outcome::Executed | Outcome::Failed)
                && (&t.tenant, &t.nonce, &t.exec_id, &t.action)
                    == (
                        &redaction.tenant,
                        &redaction.nonce,
                        &redaction.exec_id,
                        &redaction.action,
                    )
                && t.request_hash == redaction.request_hash
                && t.payload_commitment == redaction.payload_commitment
                && t.result_commitment == redaction.result_commitment
        });
        Ok(match (same, erased) {
            (true, true) => Ok(()),
            (false, _) => Err(format!(
                "redacts entry {}, but does not repeat it",
                of.index
            )),
            (true, false) => Err(format!(
                "redacts entry {}, whose content is still kept",
                of.index
            )),
        })
    }

    /// The checkpoint of `size`, if one is kept: signed, of this tree.
    fn check_checkpoint(&mut self, size: u64, tree: &HashMapReader) -> Result<(), Finding> {
        let Some(note) = self.checkpoints.get(&size) else {
            return Ok(());
        };
        let at = Location::Checkpoint(size);
        let checkpoint = SignedCheckpoint::open(note.as_bytes(), &self.verifier)
            .map_err(|e| (at, e.to_string()))?;
        let root = tree_root(tree, TreeSize(size)).map_err(|e| (at, e.to_string()))?;
        if checkpoint.size() != size || checkpoint.root() != root {
            return Err((at, "not the tree of that size".into()));
        }
        self.report.checkpoints += 1;
        Ok(())
    }

    fn check_head(&self, prev: Hash, tree: &HashMapReader) -> Result<(), Finding> {
        let root = tree_root(tree, TreeSize(self.head.size))
            .map_err(|e| (Location::Head, e.to_string()))?;
        let frontier = encode_frontier(self.head.size, &tree.0);
        if root != self.head.root
            || prev != self.head.last_leaf
            || frontier.as_ref() != Some(&self.frontier)
        {
            return Err((
                Location::Head,
                "the head row is not the tree of its entries".into(),
            ));
        }
        let served = SignedCheckpoint::open(self.head_checkpoint.as_bytes(), &self.verifier)
            .map_err(|e| (Location::Head, format!("the head row's checkpoint: {e}")))?;
        if served.size() != self.head.size || served.root() != root {
            return Err((
                Location::Head,
                "the head row's checkpoint is not of the head's size and root".into(),
            ));
        }
        Ok(())
    }

    /// Every done nonce and consumed approval row names the entry that
    /// completed or consumed it, and every completing entry has its row.
    async fn check_nonces(&self) -> Result<Result<(), Finding>, LedgerError> {
        let size = index_param(self.head.size)?;
        let nonces = self
            .client
            .query(
                "SELECT nonce_key, entry_idx FROM openexec_nonces WHERE entry_idx IS NOT NULL AND entry_idx < $1",
                &[&size],
            )
            .await
            .map_err(PgError::from)?;
        let mut done = 0;
        for row in &nonces {
            let key: Vec<u8> = row.try_get(0).map_err(PgError::from)?;
            let index = size_of(row, 1)?;
            if self.completed.get(&key) != Some(&index) {
                return Ok(Err((
                    Location::Entry(index),
                    "a done nonce's row names an entry that does not complete it".into(),
                )));
            }
            done += 1;
        }
        if done != self.completed.len() {
            return Ok(Err((
                Location::Head,
                format!(
                    "{} completing entries, {done} done nonce rows",
                    self.completed.len()
                ),
            )));
        }
        let approvals = self
            .client
            .query(
                "SELECT consume_key, entry_idx FROM openexec_approvals WHERE entry_idx IS NOT NULL AND entry_idx < $1",
                &[&size],
            )
            .await
            .map_err(PgError::from)?;
        for row in &approvals {
            let key: String = row.try_get(0).map_err(PgError::from)?;
            let index = size_of(row, 1)?;
            if self.consumed.get(&key) != Some(&index) {
                return Ok(Err((
                    Location::Entry(index),
                    "a consumed approval's row names an entry that does not consume it".into(),
                )));
            }
        }
        if approvals.len() != self.consumed.len() {
            return Ok(Err((
                Location::Head,
                format!(
                    "{} entries consume an approval, {} approval rows name one",
                    self.consumed.len(),
                    approvals.len()
                ),
            )));
        }
        Ok(Ok(()))
    }
}
