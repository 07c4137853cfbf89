//! Steps 8–9 of the pipeline: recording an attempt (a rejection or a
//! replay only within the limits on recording them), drafting its entry,
//! and answering it once the entry is durable. Every attempt that ends
//! without a panic has its entry drafted and its answer built here (a
//! contained panic is handled by `unwind`), so a receipt comes from one
//! place and only from an entry already written.

use std::time::Instant;

use rand_core::{OsRng, RngCore as _};
use serde_json::{json, Value};
use tracing::Instrument as _;

use super::{
    ratelimit, storage_unavailable, Attempt, Boundary, Decision, Original, Response, Stage,
};
use crate::core::canonical::{commitment, to_canonical_bytes};
use crate::core::entry::{EntryDraft, Outcome};
use crate::core::hash::Hash;
use crate::core::pyjson::{dumps_sorted, Separators};
use crate::core::receipt::{salt_to_base64, Content, Salts};
use crate::instruments::step;
use crate::ledger::Appended;
use crate::store::Completion;

impl Boundary {
    /// The entry of an attempt that ended with `decision`, and the content
    /// kept beside it.
    pub(super) fn draft(
        &self,
        attempt: &Attempt,
        decision: &Decision,
    ) -> Result<(EntryDraft, Option<Content>), String> {
        if let (Outcome::Replayed, Some(original)) = (decision.outcome, &attempt.original) {
            return Ok((
                replay_draft(attempt, decision, original, self.registry.fingerprint().0),
                None,
            ));
        }
        let payload_bytes =
            to_canonical_bytes(&attempt.request.payload).map_err(|e| e.to_string())?;
        let result_bytes = decision.result_bytes.as_ref();
        let (payload_salt, result_salt) = (random_salt(), random_salt());
        let draft = EntryDraft {
            exec_id: attempt.exec_id.clone(),
            tenant: attempt.tenant.clone(),
            action: attempt.request.action.as_str().to_owned(),
            nonce: attempt.request.nonce.as_str().to_owned(),
            request_hash: attempt.request_hash,
            payload_commitment: commitment(&payload_salt, &payload_bytes),
            result_commitment: result_bytes.map(|b| commitment(&result_salt, b)),
            approval: attempt.approval.clone(),
            outcome: decision.outcome,
            reason: decision.reason.clone(),
            replay_of: None,
            // Only an attempt that ran its handler names its class.
            effects: attempt
                .effects
                .filter(|_| matches!(decision.outcome, Outcome::Executed | Outcome::Failed)),
            registry: Some(self.registry.fingerprint().0),
            principal: attempt.principal_id(),
        };
        // Only an attempt that ran its handler keeps its content: a
        // rejection ran nothing, and would keep whatever an unapproved
        // client sent (its request hash names the request).
        let ran = matches!(decision.outcome, Outcome::Executed | Outcome::Failed);
        let content = (self.policy.store_content && ran).then(|| Content {
            payload: attempt.request.payload.clone(),
            result: decision.result.clone(),
            salts: Salts {
                payload: salt_to_base64(&payload_salt),
                result: result_bytes.map(|_| salt_to_base64(&result_salt)),
            },
        });
        Ok((draft, content))
    }

    /// Records the attempt and builds the response.
    pub(super) async fn finish(
        &self,
        attempt: Attempt,
        decision: Decision,
        completion: Option<Completion>,
    ) -> Response {
        if matches!(decision.outcome, Outcome::Rejected | Outcome::Replayed) {
            if let Err(limited) = self.take_recording_token(attempt.client) {
                // Over the limit: answered, but not recorded (growth bound).
                return Response::rate_limited(limited);
            }
        }
        attempt.progress.enter(Stage::Record);
        self.panic_hook.fire(Stage::Record);
        let (draft, content) = match self.draft(&attempt, &decision) {
            Ok(v) => v,
            Err(e) => return Response::error(422, "invalid_payload", e),
        };
        let appended = match self.ledger.queue_append(draft, content, completion) {
            Ok(queued) => {
                attempt.progress.handing_over();
                let waiting = Instant::now();
                let appended = self.ledger.appended(queued);
                let appended = appended.instrument(step("record")).await;
                if appended.is_ok() {
                    crate::instruments::writer_waited(waiting);
                }
                appended
            }
            Err(e) => Err(e),
        };
        match appended {
            Ok(appended) => self.recorded(&attempt, &decision, &appended),
            Err(e) => {
                tracing::error!(exec_id = %attempt.exec_id, error = %e, "attempt could not be recorded");
                storage_unavailable()
            }
        }
    }

    /// Takes the right to record one rejection or replay from `client`
    /// (per-client and global limits), counting a refusal in `/metrics`.
    pub(super) fn take_recording_token(
        &self,
        client: Option<ratelimit::Client>,
    ) -> Result<(), ratelimit::Limited> {
        self.reject_limiter
            .try_take(client, std::time::Instant::now())
            .inspect_err(|limited| {
                self.metrics.record_rate_limited();
                if limited.scope == ratelimit::Scope::Global {
                    self.metrics.record_rate_limited_globally();
                }
            })
    }

    /// An attempt whose entry is durable: counted, logged, answered.
    pub(super) fn recorded(
        &self,
        attempt: &Attempt,
        decision: &Decision,
        appended: &Appended,
    ) -> Response {
        attempt.progress.enter(Stage::Respond);
        self.metrics.record(decision.outcome, &decision.reason);
        self.panic_hook.fire(Stage::Respond);
        tracing::debug!(
            target: "openexec::request",
            exec_id = %attempt.exec_id,
            nonce = attempt.request.nonce.as_str(),
            tenant = attempt.tenant.as_str(),
            principal = attempt.principal.as_ref().map(|p| tracing::field::display(&p.id)),
            action = %attempt.request.action,
            outcome = %decision.outcome,
            reason = %decision.reason,
            status = decision.status,
            index = appended.entry.index,
            "attempt recorded"
        );
        respond(attempt, decision, appended)
    }
}

/// A replay's entry: it names the entry it replays and repeats that
/// entry's commitments, whose content is kept there, so that it keeps no
/// content of its own and costs the same few hundred bytes whatever the
/// request's size.
fn replay_draft(
    attempt: &Attempt,
    decision: &Decision,
    original: &Original,
    registry: Hash,
) -> EntryDraft {
    EntryDraft {
        exec_id: attempt.exec_id.clone(),
        tenant: attempt.tenant.clone(),
        action: attempt.request.action.as_str().to_owned(),
        nonce: attempt.request.nonce.as_str().to_owned(),
        request_hash: attempt.request_hash,
        payload_commitment: original.payload_commitment,
        result_commitment: original.result_commitment,
        approval: attempt.approval.clone(),
        outcome: decision.outcome,
        reason: decision.reason.clone(),
        replay_of: Some(original.at),
        effects: None,
        registry: Some(registry),
        principal: attempt.principal_id(),
    }
}

fn random_salt() -> [u8; 32] {
    let mut salt = [0u8; 32];
    OsRng.fill_bytes(&mut salt);
    salt
}

/// The original service's receipt: `hex(SHA-256(exec_id ":" json.dumps(result, sort_keys=True)))`.
#[must_use]
pub fn legacy_receipt_hash(exec_id: &str, result: &Value) -> String {
    legacy_receipt_hash_of_text(exec_id, &dumps_sorted(result, Separators::Default))
}

/// Same, over a result already rendered as Python JSON text.
#[must_use]
pub fn legacy_receipt_hash_of_text(exec_id: &str, result_json: &str) -> String {
    hex::encode(Hash::sha256(format!("{exec_id}:{result_json}").as_bytes()).as_bytes())
}

pub(super) fn respond(attempt: &Attempt, decision: &Decision, appended: &Appended) -> Response {
    let receipt = serde_json::to_value(&appended.receipt).unwrap_or(Value::Null);
    let mut body = json!({
        "id": attempt.exec_id,
        "exec_id": attempt.exec_id,
        "action": attempt.request.action.as_str(),
        "outcome": decision.outcome,
        "replayed": decision.outcome == Outcome::Replayed,
        "approved": decision.outcome == Outcome::Executed || (decision.outcome == Outcome::Replayed && decision.status == 200),
        "receipt": receipt,
    });
    if let Value::Object(map) = &mut body {
        if let Some(result) = &decision.result {
            map.insert("result".into(), result.clone());
            map.insert(
                "receipt_hash".into(),
                json!(legacy_receipt_hash(&attempt.exec_id, result)),
            );
        }
        if let Some(detail) = &decision.detail {
            map.insert("detail".into(), json!(detail));
            map.insert("code".into(), json!(decision.reason));
        }
    }
    Response {
        status: decision.status,
        body,
        retry_after: None,
    }
}
