//! Answering an attempt whose nonce is already done: a replay of the same
//! request (the original's outcome and result, recorded as `replayed`), or
//! a conflict.

use serde_json::{json, Value};

use super::{
    answered_status, storage_unavailable, Attempt, Boundary, Decision, Original, Response,
};
use crate::core::entry::{Entry, Outcome, ReplayOf};
use crate::core::hash::{leaf_hash, Hash};
use crate::core::receipt::Content;

impl Boundary {
    /// The refusal of an attempt whose nonce a log this one continues
    /// completed, or whose approval one consumed: a rotation never
    /// re-opens either (`crate::ledger::predecessor`). `None` for a log
    /// without predecessors, and for anything they never saw.
    pub(super) fn carried_over(&self, attempt: &Attempt) -> Option<Decision> {
        let index = self.ledger.predecessor()?;
        if let Some(done) = index.done_nonce(&attempt.tenant, &attempt.request.nonce) {
            let at = format!(
                "entry {} of the predecessor log {}",
                done.index, done.origin
            );
            return Some(if done.request_hash == attempt.request_hash {
                Decision::reject(
                    409,
                    "nonce_done_in_predecessor",
                    format!(
                        "Nonce already completed ({}) by {at}; it is not run again",
                        done.outcome
                    ),
                )
            } else {
                Decision::reject(
                    422,
                    "nonce_conflict",
                    format!("Nonce already used for a different request by {at}"),
                )
            });
        }
        let key = attempt.approval.consume_key(&attempt.tenant)?;
        let origin = index.approval_consumer(&key)?;
        let e = crate::core::approval::ApprovalError::Reused;
        Some(Decision::reject(
            403,
            e.code(),
            format!("{e} (consumed in the predecessor log {origin})"),
        ))
    }

    /// A nonce whose attempt is done, its entry at `index`: a replay of the
    /// same request, or a conflict.
    pub(super) async fn replay(&self, mut attempt: Attempt, index: u64) -> Response {
        let (original, leaf) = match self.entry_completing(index, &attempt) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(exec_id = %attempt.exec_id, index, error = %e, "the entry of a done nonce cannot be read");
                return storage_unavailable();
            }
        };
        if original.request_hash != attempt.request_hash {
            return self
                .finish(
                    attempt,
                    Decision::reject(
                        422,
                        "nonce_conflict",
                        "Nonce already used for a different request",
                    ),
                    None,
                )
                .await;
        }
        let erased = match self.ledger.redaction_of(index) {
            Ok(erased) => erased,
            Err(e) => {
                tracing::error!(index, error = %e, "the redaction record of a done nonce's entry cannot be read");
                return storage_unavailable();
            }
        };
        let result = match self.original_result(index) {
            // Redacted: whatever a read racing the erase found is not served.
            Ok(_) if erased.is_some() => None,
            Ok(result) => result,
            Err(e) => {
                tracing::error!(exec_id = %attempt.exec_id, index, error = %e, "the content of a done nonce's entry cannot be read");
                return storage_unavailable();
            }
        };
        let status = answered_status(original.outcome, &original.reason);
        let decision = Decision {
            outcome: Outcome::Replayed,
            reason: format!("replay_of_{}", original.outcome),
            status,
            detail: (status != 200)
                .then(|| "Replay of an attempt that did not succeed; it is not re-run".to_owned()),
            result,
            result_bytes: None,
        };
        // The replay entry carries the original exec_id (it is not indexed
        // under it, so lookups still find the original), and the response
        // names the original execution, as the original service did. It
        // names the original entry and repeats its commitments instead of
        // keeping the payload and result again.
        attempt.exec_id = original.exec_id;
        attempt.original = Some(Original {
            at: ReplayOf {
                index,
                leaf_hash: leaf,
            },
            payload_commitment: original.payload_commitment,
            result_commitment: original.result_commitment,
        });
        let mut response = self.finish(attempt, decision, None).await;
        if let Value::Object(map) = &mut response.body {
            if map.get("outcome") == Some(&json!("replayed")) {
                map.insert("original_outcome".into(), json!(original.outcome));
                // The result is not absent by chance: an operator erased it.
                if let Some(record) = erased {
                    map.insert("content".into(), json!("erased"));
                    map.insert(
                        "redaction".into(),
                        json!({"index": record.index, "reason": record.reason}),
                    );
                }
            }
        }
        response
    }

    /// The entry a done nonce names, which must hold that nonce, and its
    /// leaf hash.
    fn entry_completing(&self, index: u64, attempt: &Attempt) -> Result<(Entry, Hash), String> {
        let (bytes, _) = self.ledger.entry(index).map_err(|e| e.to_string())?;
        let entry = Entry::from_canonical_bytes(&bytes).map_err(|e| e.to_string())?;
        if entry.nonce != attempt.request.nonce.as_str() || entry.tenant != attempt.tenant {
            return Err("it holds another nonce".into());
        }
        Ok((entry, leaf_hash(&bytes)))
    }

    /// The original attempt's kept result: none when no content is kept;
    /// an error when it cannot be read (a replay is then refused, never
    /// answered without the result it had).
    fn original_result(&self, index: u64) -> Result<Option<Value>, crate::ledger::LedgerError> {
        let Some(bytes) = self.ledger.content(index)? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<Content>(&bytes)
            .ok()
            .and_then(|c| c.result))
    }
}
