//! Redaction: erasing the kept cleartext content (payload, result, salts)
//! of a committed entry, recorded first as a `redacted` entry of the log
//! itself, so that erasing always leaves a trace and breaks no proof (the
//! entry keeps only salted commitments to its content).
//!
//! Order: the store's record (durable) → the redaction entry (through the
//! sequencer: signed, chained, in the next checkpoint; durable) → the
//! record names the entry, and the content is erased in place (durable).
//! See [`crate::store::RedactionRecord`] for what a crash at each point
//! leaves and how the next open completes it. On PostgreSQL the entry and
//! the erase commit in one transaction ([`Ledger::redact`]).

use serde::Serialize;

use super::backend::{Backend, Embedded};
use super::{Appended, Ledger, LedgerError};
use crate::core::entry::{ApprovalSummary, Entry, EntryDraft, Outcome, RedactionReason, ReplayOf};
use crate::core::hash::leaf_hash;
use crate::core::receipt::Receipt;
use crate::store::{Store, StoreError};

/// The entry a redaction names: by index, or by the exec_id it is indexed
/// under (an attempt's own entry, never a replay's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedactTarget {
    /// Entry `index`.
    Index(u64),
    /// The entry of this exec_id.
    ExecId(String),
}

/// A redaction done, or found already done.
#[derive(Debug, Clone, Serialize)]
pub struct Redaction {
    /// The redacted entry's index.
    pub redacted_index: u64,
    /// The redacted entry's exec_id (the redaction entry carries it too).
    pub exec_id: String,
    /// The index of the `redacted` entry that records the redaction.
    pub redaction_index: u64,
    /// The reason code it records.
    pub reason: String,
    /// `false` when this call erased the content; `true` when an earlier
    /// redaction had (nothing was erased or recorded again).
    pub already_redacted: bool,
    /// A fresh receipt of the redaction entry.
    pub receipt: Receipt,
}

/// The redaction of an entry, as a replay of it reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactionNote {
    /// The `redacted` entry's index.
    pub index: u64,
    /// Its reason code.
    pub reason: String,
}

/// Why a redaction was refused.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// No committed entry has that index or exec_id.
    #[error("no committed entry has {0}")]
    NotFound(String),
    /// The reason is not one of the redaction reasons.
    #[error(
        "unknown redaction reason {0:?}: give one of personal_data, leaked_secret, legal, other"
    )]
    BadReason(String),
    /// The entry is a replay: its content is kept with the entry it
    /// replays.
    #[error("entry {index} is a replay of entry {original}, which keeps the content: redact entry {original}")]
    Replay {
        /// The replay's index.
        index: u64,
        /// The entry it replays.
        original: u64,
    },
    /// The entry keeps no content (a rejection, an interruption, a
    /// redaction, or content not kept), and no redaction of it is recorded.
    #[error("entry {index} ({outcome}) keeps no content to erase")]
    NoContent {
        /// Its index.
        index: u64,
        /// Its outcome.
        outcome: Outcome,
    },
    /// The log is retired: it takes no entry, so no redaction can be
    /// recorded, and content is never erased without its record.
    #[error("entry {index} is in a retired log, which takes no redaction entry: its content cannot be erased in place (docs/OPERATIONS.md, \"Rotating the log key\")")]
    Retired {
        /// The entry's index.
        index: u64,
    },
    /// Storage or the writer failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<StoreError> for RedactError {
    fn from(e: StoreError) -> Self {
        Self::Ledger(e.into())
    }
}

impl Ledger {
    /// Erases the kept content of `target` for `reason` (a
    /// [`RedactionReason`] code), recording the redaction as an entry
    /// first; or, when it was redacted already, says by which entry.
    /// Redactions run one at a time.
    pub async fn redact(
        &self,
        target: RedactTarget,
        reason: &str,
    ) -> Result<Redaction, RedactError> {
        let reason = RedactionReason::parse(reason)
            .ok_or_else(|| RedactError::BadReason(reason.to_owned()))?;
        let e = match &self.backend {
            Backend::Embedded(e) => e,
            Backend::Postgres(pg) => return self.redact_postgres(pg, &target, reason).await,
        };
        let _one_at_a_time = e.redacting.lock().await;
        let (index, bytes, entry) = self.target_entry(&target)?;
        if let Some(done) = self.earlier_redaction(e, index, &entry)? {
            return Ok(done);
        }
        refuse_replay(index, &entry)?;
        // Refused before any record: a record without its entry would
        // stay pending for good.
        if self.is_retired() {
            return Err(RedactError::Retired { index });
        }
        if e.store.begin_redaction(index, reason.as_str())?.is_none() {
            return Err(RedactError::NoContent {
                index,
                outcome: entry.outcome,
            });
        }
        let draft = redaction_draft(&entry, leaf_hash(&bytes), reason);
        // On failure, whether the entry reached the log is unknown: the
        // record stays, and the next open (or redaction of this entry)
        // decides from the log.
        let appended = self.append_async(draft, None).await?;
        e.store.finish_redaction(index, appended.entry.index)?;
        Ok(erased(index, entry, appended, reason))
    }

    /// [`Self::redact`] in a task of its own, which the caller awaits: a
    /// caller that goes away (a dropped future, a closed connection) does
    /// not stop the redaction between its entry's append and the erase,
    /// which would leave the content on disk until the next open.
    pub async fn redact_detached(
        self: std::sync::Arc<Self>,
        target: RedactTarget,
        reason: String,
    ) -> Result<Redaction, RedactError> {
        tokio::spawn(async move { self.redact(target, &reason).await })
            .await
            .map_err(|e| {
                RedactError::Ledger(LedgerError::Unavailable(format!(
                    "the redaction task stopped: {e}"
                )))
            })?
    }

    /// On PostgreSQL: the entry's content is set to NULL, and the
    /// redaction's row inserted, in the transaction of the batch that
    /// commits the redaction entry (`pg::write`); the row's primary key
    /// refuses a second redaction of one entry, by any node.
    async fn redact_postgres(
        &self,
        pg: &crate::pg::PgLog,
        target: &RedactTarget,
        reason: RedactionReason,
    ) -> Result<Redaction, RedactError> {
        let (index, bytes, entry) = self.target_entry(target)?;
        let earlier = |pg: &crate::pg::PgLog| -> Result<Option<Redaction>, RedactError> {
            let Some((at, recorded)) = pg.redaction(index)? else {
                return Ok(None);
            };
            Ok(Some(Redaction {
                redacted_index: index,
                exec_id: entry.exec_id.clone(),
                redaction_index: at,
                reason: recorded,
                already_redacted: true,
                receipt: self.receipt(at)?,
            }))
        };
        if let Some(done) = earlier(pg)? {
            return Ok(done);
        }
        refuse_replay(index, &entry)?;
        if pg.content(index)?.is_none() {
            return Err(RedactError::NoContent {
                index,
                outcome: entry.outcome,
            });
        }
        let draft = redaction_draft(&entry, leaf_hash(&bytes), reason);
        let appended = match self.append_async(draft, None).await {
            Ok(appended) => appended,
            // Another node's redaction of this entry committed first.
            Err(err) => return earlier(pg)?.ok_or(RedactError::Ledger(err)),
        };
        Ok(erased(index, entry, appended, reason))
    }

    /// The committed entry a redaction names: its index, bytes and entry.
    fn target_entry(&self, target: &RedactTarget) -> Result<(u64, Vec<u8>, Entry), RedactError> {
        let index = self.resolve(target)?;
        if index >= self.head().size {
            return Err(RedactError::NotFound(format!("index {index}")));
        }
        let (bytes, _) = self.entry(index).map_err(|err| match err {
            LedgerError::NotFound => RedactError::NotFound(format!("index {index}")),
            other => other.into(),
        })?;
        let entry = Entry::from_canonical_bytes(&bytes).map_err(LedgerError::from)?;
        Ok((index, bytes, entry))
    }

    /// The redaction of entry `index`, if it was redacted (its entry
    /// committed).
    pub fn redaction_of(&self, index: u64) -> Result<Option<RedactionNote>, LedgerError> {
        Ok(match &self.backend {
            Backend::Embedded(e) => e.store.redaction(index)?.and_then(|r| {
                r.entry.map(|at| RedactionNote {
                    index: at,
                    reason: r.reason,
                })
            }),
            Backend::Postgres(pg) => pg
                .redaction(index)?
                .map(|(at, reason)| RedactionNote { index: at, reason }),
        })
    }

    fn resolve(&self, target: &RedactTarget) -> Result<u64, RedactError> {
        match target {
            RedactTarget::Index(index) => Ok(*index),
            RedactTarget::ExecId(exec_id) => self
                .index_of_exec_id(exec_id)?
                .ok_or_else(|| RedactError::NotFound(format!("exec_id {exec_id:?}"))),
        }
    }

    /// A redaction of entry `index` recorded before, finished here if a
    /// failure stopped it after its entry was committed; `None` (and the
    /// record forgotten) if its entry never was.
    fn earlier_redaction(
        &self,
        e: &Embedded,
        index: u64,
        entry: &Entry,
    ) -> Result<Option<Redaction>, RedactError> {
        let Some(record) = e.store.redaction(index)? else {
            return Ok(None);
        };
        let at = match record.entry {
            Some(at) => at,
            None => match find_redaction_entry(&e.store, index, record.from_size)? {
                Some(at) => at,
                None => {
                    e.store.forget_redaction(index)?;
                    return Ok(None);
                }
            },
        };
        e.store.finish_redaction(index, at)?;
        Ok(Some(Redaction {
            redacted_index: index,
            exec_id: entry.exec_id.clone(),
            redaction_index: at,
            reason: record.reason,
            already_redacted: true,
            receipt: self.receipt(at)?,
        }))
    }
}

/// The `redacted` entry of `entry` (whose leaf hash is `leaf`): it carries
/// the entry's exec_id, tenant, action, nonce, request hash and
/// commitments, so that it names exactly what was erased, and keeps no
/// content.
fn redaction_draft(
    entry: &Entry,
    leaf: crate::core::hash::Hash,
    reason: RedactionReason,
) -> EntryDraft {
    EntryDraft {
        exec_id: entry.exec_id.clone(),
        tenant: entry.tenant.clone(),
        action: entry.action.clone(),
        nonce: entry.nonce.clone(),
        request_hash: entry.request_hash,
        payload_commitment: entry.payload_commitment,
        result_commitment: entry.result_commitment,
        approval: ApprovalSummary::none(),
        outcome: Outcome::Redacted,
        reason: reason.as_str().to_owned(),
        replay_of: Some(ReplayOf {
            index: entry.index,
            leaf_hash: leaf,
        }),
        effects: None,
        registry: None,
        principal: None,
    }
}

/// The index of the committed `redacted` entry naming entry `index`,
/// looked for from `from` (the log's size when the redaction began) to the
/// committed head.
fn find_redaction_entry(store: &Store, index: u64, from: u64) -> Result<Option<u64>, RedactError> {
    let size = store.head()?.map_or(0, |h| h.size);
    for at in from..size {
        let Some((bytes, _)) = store.entry(at)? else {
            break;
        };
        let entry = Entry::from_canonical_bytes(&bytes).map_err(LedgerError::from)?;
        if entry.redacts.is_some_and(|r| r.index == index) {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// At open, before the writer starts: completes every redaction whose
/// entry was committed and forgets those whose entry never was (the
/// store already completed every erase whose record names its entry).
pub(super) fn settle_at_open(store: &Store) -> Result<(), LedgerError> {
    for (index, record) in store.redactions()? {
        if record.entry.is_some() {
            continue;
        }
        match find_redaction_entry(store, index, record.from_size) {
            Ok(Some(at)) => store.finish_redaction(index, at)?,
            Ok(None) => store.forget_redaction(index)?,
            Err(RedactError::Ledger(e)) => return Err(e),
            Err(other) => return Err(LedgerError::Config(other.to_string())),
        }
    }
    Ok(())
}

/// A replay holds no content of its own: the entry to redact is the one
/// it replays, which the refusal names.
fn refuse_replay(index: u64, entry: &Entry) -> Result<(), RedactError> {
    match &entry.replay_of {
        Some(original) => Err(RedactError::Replay {
            index,
            original: original.index,
        }),
        None => Ok(()),
    }
}

/// The answer to a redaction just recorded by `appended`, logged once.
fn erased(index: u64, entry: Entry, appended: Appended, reason: RedactionReason) -> Redaction {
    tracing::info!(
        redacted = index,
        exec_id = %entry.exec_id,
        redaction = appended.entry.index,
        reason = reason.as_str(),
        "content erased"
    );
    Redaction {
        redacted_index: index,
        exec_id: entry.exec_id,
        redaction_index: appended.entry.index,
        reason: reason.as_str().to_owned(),
        already_redacted: false,
        receipt: appended.receipt,
    }
}

#[cfg(test)]
mod tests;
