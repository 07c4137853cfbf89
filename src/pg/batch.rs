//! One batch, decided and laid out in memory while its transaction holds
//! the head lock: which claims and reservations win (against the rows
//! committed so far and the earlier requests of the batch), which entries
//! resolve which reservations, then positions, chain, stored hashes, root,
//! signatures and the checkpoint. Nothing here talks to the database.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::tree::{decode_frontier, encode_frontier, HashMapReader};
use super::writer::PgWork;
use super::PgError;
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::{Entry, EntryDraft};
use crate::core::hash::{leaf_hash, Hash};
use crate::core::proof::{tree_root, TreeSize};
use crate::core::receipt::Salts;
use crate::core::signing::LogSigner;
use crate::store::{Completion, Head, Held, PendingNonce, Reservation};

/// A nonce's row as the batch found it.
#[derive(Debug, Clone)]
pub(super) struct NonceRow {
    /// The entry that completed it, if done.
    pub(super) done: Option<u64>,
    /// The node holding it in flight.
    pub(super) owner: Option<String>,
    /// Whether that node's lease has run out.
    pub(super) expired: bool,
    pub(super) pending: PendingNonce,
}

/// What the batch found committed, under the head lock.
pub(super) struct Found {
    pub(super) head: Head,
    pub(super) frontier: Vec<u8>,
    pub(super) time: DateTime<Utc>,
    pub(super) nonces: HashMap<Vec<u8>, NonceRow>,
    pub(super) approvals: HashSet<String>,
    /// The batch's exec_ids that committed entries already carry.
    pub(super) recorded: HashSet<String>,
}

/// The fate of one queued request in this batch.
#[derive(Debug)]
pub(super) enum Decided {
    /// It is (or carries) the batch's entry at this position.
    Entry(usize),
    /// A reservation's answer (`Reserved`: its row is inserted).
    Reservation(Reservation),
    /// A claim not won: nothing appended.
    NotReserved(Reservation),
    /// Refused alone, with why.
    Refused(String),
}

/// What an entry does to its nonce.
#[derive(Debug, Clone)]
pub(super) enum Effect {
    None,
    /// This node's reservation, which a survivor already resolved (this
    /// node was cut off past its lease): the entry is recorded and
    /// resolves nothing.
    Late,
    /// A claim won in this batch: insert its row done, its approval consumed.
    Claim {
        key: Vec<u8>,
        record: PendingNonce,
    },
    /// A reservation completed: its row done; its approval consumed by the
    /// entry if the entry names it, else for good.
    Complete {
        key: Vec<u8>,
        approval: Option<String>,
    },
    /// A reservation released: its row and held approval deleted.
    Release {
        key: Vec<u8>,
        approval: Option<String>,
    },
}

/// An entry to lay out.
pub(super) struct Draft<'a> {
    pub(super) draft: &'a EntryDraft,
    pub(super) content: Option<&'a [u8]>,
    pub(super) effect: Effect,
    /// Whether its exec_id goes in the unique index: not for a replay
    /// (which repeats its original's), nor for a late entry whose exec_id
    /// the survivor's entry already carries.
    pub(super) indexed: bool,
}

/// The decisions of a batch.
#[derive(Default)]
pub(super) struct Decisions<'a> {
    pub(super) fates: Vec<Decided>,
    pub(super) drafts: Vec<Draft<'a>>,
    /// Reservations won: their rows are inserted, owned by this node.
    pub(super) reserved: Vec<(Vec<u8>, PendingNonce)>,
}

/// The reservations this node made and has not resolved: (nonce key,
/// exec_id).
pub(super) type Mine = HashSet<(Vec<u8>, String)>;

/// Decides every request of `work` against `found`. Every problem found
/// here refuses its request alone, so that the batch's writes do not
/// break a constraint the database would refuse the whole batch for.
pub(super) fn decide<'a>(
    work: &'a [PgWork],
    found: &Found,
    node: &str,
    mine: &Mine,
) -> Decisions<'a> {
    let mut out = Decisions::default();
    let mut ids = ExecIds {
        recorded: &found.recorded,
        batch: HashSet::new(),
    };
    let mut taken: HashMap<&[u8], &PendingNonce> = HashMap::new();
    let mut approvals: HashSet<&str> = HashSet::new();
    let mut resolved: HashSet<&[u8]> = HashSet::new();
    // What refuses a claim or reservation, if anything: its nonce done or
    // in flight (in the database or earlier in the batch), or its
    // approval held or consumed.
    let refusal = |key: &[u8],
                   record: &PendingNonce,
                   taken: &HashMap<&[u8], &PendingNonce>,
                   approvals: &HashSet<&str>| {
        if let Some(row) = found.nonces.get(key) {
            return Some(match row.done {
                Some(index) => Reservation::Done { index },
                None => Reservation::InFlight(row.pending.clone()),
            });
        }
        if let Some(holder) = taken.get(key) {
            return Some(Reservation::InFlight((*holder).clone()));
        }
        record
            .approval_key
            .as_deref()
            .filter(|ak| approvals.contains(ak) || found.approvals.contains(*ak))
            .map(|_| Reservation::ApprovalUsed)
    };
    for w in work {
        let fate = match w {
            PgWork::Claim(c) if ids.taken(&c.draft) => {
                Decided::Refused(DUPLICATE_EXEC_ID.to_owned())
            }
            PgWork::Claim(c) => match refusal(&c.key, &c.record, &taken, &approvals) {
                Some(r) => Decided::NotReserved(r),
                None => {
                    ids.record(&c.draft);
                    taken.insert(&c.key, &c.record);
                    approvals.extend(c.record.approval_key.as_deref());
                    push_draft(
                        &mut out,
                        found,
                        &c.draft,
                        c.content.as_ref().map(|(b, _)| b.as_slice()),
                        Effect::Claim {
                            key: c.key.clone(),
                            record: c.record.clone(),
                        },
                        true,
                    )
                }
            },
            PgWork::Reserve(r) => match refusal(&r.key, &r.record, &taken, &approvals) {
                Some(answer) => Decided::Reservation(answer),
                None => {
                    taken.insert(&r.key, &r.record);
                    approvals.extend(r.record.approval_key.as_deref());
                    out.reserved.push((r.key.clone(), r.record.clone()));
                    Decided::Reservation(Reservation::Reserved)
                }
            },
            PgWork::Append(a) => {
                let effect = match &a.completion {
                    None => Ok(Effect::None),
                    Some(c) if !resolved.insert(&c.key) => {
                        Err("the nonce is resolved twice in one batch".to_owned())
                    }
                    Some(c) => resolve(c, &a.draft.exec_id, found, node, mine),
                };
                let effect = effect.and_then(|e| Ok((ids.index(&a.draft, &e)?, e)));
                match effect {
                    Ok((indexed, effect)) => push_draft(
                        &mut out,
                        found,
                        &a.draft,
                        a.content.as_ref().map(|(b, _)| b.as_slice()),
                        effect,
                        indexed,
                    ),
                    Err(why) => Decided::Refused(why),
                }
            }
        };
        out.fates.push(fate);
    }
    out
}

const DUPLICATE_EXEC_ID: &str = "an entry with this exec_id is already recorded";

/// The exec_ids the unique index holds: committed, and laid out earlier in
/// the batch.
struct ExecIds<'f, 'a> {
    recorded: &'f HashSet<String>,
    batch: HashSet<&'a str>,
}

impl<'a> ExecIds<'_, 'a> {
    /// Whether `draft`'s exec_id would go in the index and is taken.
    fn taken(&self, draft: &EntryDraft) -> bool {
        crate::core::entry::is_indexed(draft.outcome)
            && (self.recorded.contains(&draft.exec_id)
                || self.batch.contains(draft.exec_id.as_str()))
    }

    fn record(&mut self, draft: &'a EntryDraft) {
        if crate::core::entry::is_indexed(draft.outcome) {
            self.batch.insert(&draft.exec_id);
        }
    }

    /// Whether `draft`'s exec_id goes in the index: a late entry of this
    /// node's whose exec_id the survivor's entry carries is recorded
    /// unindexed; any other entry whose exec_id is taken is refused.
    fn index(&mut self, draft: &'a EntryDraft, effect: &Effect) -> Result<bool, String> {
        if !self.taken(draft) {
            self.record(draft);
            return Ok(crate::core::entry::is_indexed(draft.outcome));
        }
        match effect {
            Effect::Late => Ok(false),
            _ => Err(DUPLICATE_EXEC_ID.to_owned()),
        }
    }
}

/// What an entry with `exec_id` that resolves the reservation `c` does to
/// it. A reservation of this node's for this exec_id that a survivor
/// already resolved (this node was cut off past its lease) is recorded
/// without resolving it; one of another node is resolved only once that
/// node's lease has run out, and only while still in flight for this
/// exec_id (a newer reservation of the same nonce is not this entry's).
fn resolve(
    c: &Completion,
    exec_id: &str,
    found: &Found,
    node: &str,
    mine: &Mine,
) -> Result<Effect, String> {
    let in_flight = found
        .nonces
        .get(&c.key)
        .filter(|row| row.done.is_none() && row.pending.exec_id == exec_id);
    let Some(row) = in_flight else {
        return if mine.contains(&(c.key.clone(), exec_id.to_owned())) {
            Ok(Effect::Late)
        } else {
            Err("the reservation is already resolved".to_owned())
        };
    };
    let ours = row.owner.as_deref() == Some(node);
    if !ours && !row.expired {
        return Err("the reservation is held by a live node".to_owned());
    }
    let key = c.key.clone();
    let approval = row.pending.approval_key.clone();
    Ok(match c.held {
        Held::Released => Effect::Release { key, approval },
        Held::Reserved | Held::Claimed => Effect::Complete { key, approval },
    })
}

/// Queues a draft, unless it replays an entry the log does not have.
fn push_draft<'a>(
    out: &mut Decisions<'a>,
    found: &Found,
    draft: &'a EntryDraft,
    content: Option<&'a [u8]>,
    effect: Effect,
    indexed: bool,
) -> Decided {
    if draft.replay_of.is_some_and(|r| r.index >= found.head.size) {
        return Decided::Refused("invalid entry field `replay_of`".to_owned());
    }
    out.drafts.push(Draft {
        draft,
        content,
        effect,
        indexed,
    });
    Decided::Entry(out.drafts.len() - 1)
}

/// One entry laid out.
pub(super) struct LaidEntry {
    pub(super) entry: Entry,
    pub(super) bytes: Vec<u8>,
    pub(super) signature: [u8; 64],
    /// Its stored hashes, concatenated.
    pub(super) hashes: Vec<u8>,
    pub(super) completes: bool,
}

/// A batch laid out: its entries, the stored hashes it knows (the old
/// frontier and every new one), the new head and its signed checkpoint.
pub(super) struct Layout {
    pub(super) entries: Vec<LaidEntry>,
    pub(super) known: HashMap<u64, Hash>,
    pub(super) head: Head,
    pub(super) frontier: Vec<u8>,
    pub(super) checkpoint: String,
}

/// Lays out the drafts after `found.head`.
pub(super) fn lay_out(
    drafts: &[Draft<'_>],
    found: &Found,
    signer: &LogSigner,
) -> Result<Layout, PgError> {
    let corrupt = |what: String| PgError::Corrupt(what);
    let mut reader = HashMapReader(
        decode_frontier(found.head.size, &found.frontier)
            .ok_or_else(|| corrupt("the head's frontier does not match its size".into()))?,
    );
    let mut entries = Vec::with_capacity(drafts.len());
    let mut prev = found.head.last_leaf;
    let mut index = found.head.size;
    for d in drafts {
        let entry = Entry::from_draft(d.draft.clone(), signer.name(), index, prev, found.time);
        let bytes = entry
            .to_canonical_bytes()
            .map_err(|e| corrupt(format!("entry {index}: {e}")))?;
        let leaf = leaf_hash(&bytes);
        let stored = tlog_tiles::stored_hashes_for_record_hash(index, leaf.into(), &reader)
            .map_err(|e| corrupt(format!("stored hashes of {index}: {e}")))?;
        let mut hashes = Vec::with_capacity(stored.len() * 32);
        for (i, h) in (tlog_tiles::stored_hash_index(0, index)..).zip(stored) {
            let h = Hash::from(h);
            hashes.extend_from_slice(h.as_bytes());
            reader.0.insert(i, h);
        }
        let signature = signer.sign_entry(&bytes).to_bytes();
        let completes = matches!(d.effect, Effect::Claim { .. } | Effect::Complete { .. });
        entries.push(LaidEntry {
            entry,
            bytes,
            signature,
            hashes,
            completes,
        });
        prev = leaf;
        index += 1;
    }
    let root = tree_root(&reader, TreeSize(index)).map_err(|e| corrupt(format!("root: {e}")))?;
    let frontier = encode_frontier(index, &reader.0)
        .ok_or_else(|| corrupt("the new frontier is incomplete".into()))?;
    let checkpoint = SignedCheckpoint::sign(signer, index, root)
        .map_err(|e| corrupt(format!("signing the checkpoint: {e}")))?;
    Ok(Layout {
        entries,
        known: reader.0,
        head: Head {
            size: index,
            root,
            last_leaf: prev,
        },
        frontier,
        checkpoint: checkpoint.note_text().to_owned(),
    })
}

/// Salts kept in stored content.
pub(super) fn salts_in(content: &[u8]) -> Option<Salts> {
    serde_json::from_slice::<crate::core::receipt::Content>(content)
        .ok()
        .map(|c| c.salts)
}
