//! Steps 6–7 of the pipeline: the nonce reservation and the single run of
//! the handler, in the order its effects class asks for (reserved first
//! for a handler with effects; computed first, then reserved and recorded
//! in one durable cycle, for one without), the decision its result makes
//! (within [`MAX_RESULT_BYTES`]), and the answer to an attempt whose nonce
//! it did not win. Kept apart because this is where the
//! at-most-once guarantee is kept: no handler with effects runs without a
//! durable reservation, and no result of a nonce not won is recorded.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tracing::Instrument as _;

use super::handler_runtime::Ran;
use super::{storage_unavailable, Attempt, Boundary, Decision, Response, Stage};
use crate::action::{Context, Counters, Decoded, Handler, IdempotencyKey};
use crate::core::approval::ApprovalError;
use crate::core::canonical::{canonical_value_of, to_canonical_bytes};
use crate::core::entry::Outcome;
use crate::instruments::step;
use crate::ledger::Recorded;
use crate::store::{nonce_key, Completion, PendingNonce, Reservation};

impl Boundary {
    /// Steps 6–9.
    pub(super) async fn reserve_and_run(
        &self,
        mut attempt: Attempt,
        handler: Handler,
        payload: Decoded,
    ) -> Response {
        if let Some(refusal) = self.carried_over(&attempt) {
            return self.finish(attempt, refusal, None).await;
        }
        let effects = handler.effects();
        attempt.effects = Some(effects);
        attempt.progress.enter(Stage::Reserve);
        let key = nonce_key(&attempt.tenant, &attempt.request.nonce);
        let record = PendingNonce {
            request_hash: attempt.request_hash,
            exec_id: attempt.exec_id.clone(),
            // The key of the approval the entry will record (see
            // `ApprovalSummary::consume_key`).
            approval_key: attempt.approval.consume_key(&attempt.tenant),
            action: attempt.request.action.as_str().to_owned(),
            tenant: attempt.tenant.clone(),
            nonce: attempt.request.nonce.as_str().to_owned(),
            effects,
            principal: attempt.principal_id(),
        };
        if !effects.needs_reservation() {
            return self
                .compute_then_record(attempt, handler, payload, key, record)
                .await;
        }
        // Durable before the handler runs: the ledger's writer answers only
        // after the fdatasync it shares with the other reservations and
        // entries queued at the same time.
        let reserved = self.ledger.reserve(key.clone(), record);
        match reserved.instrument(step("reservation")).await {
            Ok(Reservation::Reserved) => {
                attempt
                    .progress
                    .reserved(key.clone(), &attempt.approval, effects);
                self.panic_hook.fire(Stage::Reserve);
                let decision = self.run_handler(&handler, &attempt, payload).await;
                self.finish(attempt, decision, Some(Completion::reserved(key)))
                    .await
            }
            Ok(other) => self.not_reserved(attempt, other).await,
            Err(e) => {
                tracing::error!(exec_id = %attempt.exec_id, error = %e, "nonce reservation failed");
                storage_unavailable()
            }
        }
    }

    /// Steps 6–9 for a handler without effects: its result is computed
    /// first, then the writer reserves the nonce and, if it is won,
    /// records the entry in the same durable cycle. If the nonce is not
    /// won the result is dropped — nothing happened — and the attempt is
    /// answered as [`Self::reserve_and_run`] would have answered it.
    async fn compute_then_record(
        &self,
        attempt: Attempt,
        handler: Handler,
        payload: Decoded,
        key: Vec<u8>,
        record: PendingNonce,
    ) -> Response {
        let decision = self.run_handler(&handler, &attempt, payload).await;
        attempt.progress.enter(Stage::Record);
        self.panic_hook.fire(Stage::Record);
        let (draft, content) = match self.draft(&attempt, &decision) {
            Ok(v) => v,
            Err(e) => return Response::error(422, "invalid_payload", e),
        };
        let recorded = match self
            .ledger
            .queue_reserve_and_append(key, record, draft, content)
        {
            Ok(queued) => {
                attempt.progress.handing_over();
                let waiting = Instant::now();
                let recorded = self.ledger.reserved_and_appended(queued);
                let recorded = recorded.instrument(step("record")).await;
                // Only a wait that ended with the entry durable: a nonce
                // not won is recorded (as a replay, say) by a later wait.
                if let Ok(Recorded::Appended(_)) = recorded {
                    crate::instruments::writer_waited(waiting);
                }
                recorded
            }
            Err(e) => Err(e),
        };
        match recorded {
            Ok(Recorded::Appended(appended)) => self.recorded(&attempt, &decision, &appended),
            Ok(Recorded::NotReserved(other)) => {
                attempt.progress.not_appended();
                self.not_reserved(attempt, other).await
            }
            Err(e) => {
                tracing::error!(exec_id = %attempt.exec_id, error = %e, "nonce reservation and record failed");
                storage_unavailable()
            }
        }
    }

    /// An attempt whose nonce was not reserved for it.
    async fn not_reserved(&self, attempt: Attempt, reservation: Reservation) -> Response {
        match reservation {
            Reservation::ApprovalUsed => {
                let e = ApprovalError::Reused;
                self.finish(
                    attempt,
                    Decision::reject(403, e.code(), e.to_string()),
                    None,
                )
                .await
            }
            Reservation::InFlight(_) => self.nonce_in_flight(attempt).await,
            Reservation::Done { index } => self.replay(attempt, index).await,
            // Not an answer the writer gives for a nonce it did not
            // reserve; refused rather than run without a reservation.
            Reservation::Reserved => {
                tracing::error!(exec_id = %attempt.exec_id, "a reserved nonce was answered as not reserved");
                storage_unavailable()
            }
        }
    }

    /// Runs the handler once on the handler runtime, within its deadline
    /// (a panic is its failure, never the worker's).
    async fn run_handler(
        &self,
        handler: &Handler,
        attempt: &Attempt,
        payload: Decoded,
    ) -> Decision {
        attempt.progress.enter(Stage::Handler);
        let ctx = Context {
            exec_id: attempt.exec_id.clone(),
            nonce: attempt.request.nonce.as_str().to_owned(),
            tenant: attempt.tenant.clone(),
            deadline: Instant::now() + handler.deadline(),
            effects: handler.effects(),
            idempotency_key: IdempotencyKey::of_request(&attempt.request_hash),
            counters: Counters(Arc::clone(&self.ledger)),
        };
        let hook = Arc::clone(&self.panic_hook);
        let run = handler.run(ctx, payload);
        let started = Instant::now();
        let ran = self
            .handlers
            .run(handler.deadline(), handler.inline(), async move {
                hook.fire(Stage::Handler);
                run.await
            })
            .instrument(step("handler"))
            .await;
        // A cancelled handler never started: it has no run time.
        if !matches!(ran, Ran::Cancelled) {
            self.metrics
                .handler_ran(attempt.request.action.as_str(), started.elapsed());
        }
        match ran {
            // The result is answered, stored and committed as the value its
            // canonical bytes read back to (I-JSON, as payloads are), so
            // that its commitment opens to exactly what the client got.
            Ran::Returned(Ok(result)) => executed(&result),
            Ran::Returned(Err(e)) => {
                Decision::failed(500, "handler_error", format!("Handler failed: {e}"))
            }
            Ran::Panicked => {
                self.metrics.record_panic(Stage::Handler);
                Decision::failed(500, "handler_panic", "Handler failed: it panicked")
            }
            Ran::PastDeadline => Decision::failed(
                504,
                "deadline_exceeded",
                format!(
                    "Handler did not finish within its deadline of {} ms; it was cancelled at its next await (work it handed to a blocking thread may still complete) and is not run again",
                    handler.deadline().as_millis()
                ),
            ),
            Ran::Cancelled => Decision::failed(
                503,
                "handler_cancelled",
                "Handler was cancelled: the service is shutting down",
            ),
        }
    }

    /// A nonce held by an attempt still in flight.
    async fn nonce_in_flight(&self, attempt: Attempt) -> Response {
        let decision = Decision::reject(
            409,
            "nonce_in_flight",
            "A request with this nonce is still in flight",
        );
        self.finish(attempt, decision, None).await
    }
}

/// The most bytes a handler's result may take in its canonical form: with
/// the payload (at most the body limit, 64 KiB) and the salts, the content
/// an entry keeps stays below the store's value limit, so a result is
/// never what makes its attempt unrecordable.
pub const MAX_RESULT_BYTES: usize = 128 * 1024;

/// The decision for a handler that returned `result`: executed with the
/// value its canonical bytes read back to, or failed when it has no
/// canonical form or is larger than [`MAX_RESULT_BYTES`].
fn executed(result: &Value) -> Decision {
    let canonical = to_canonical_bytes(result).and_then(|bytes| {
        if bytes.len() > MAX_RESULT_BYTES {
            return Ok(Err(bytes.len()));
        }
        canonical_value_of(&bytes).map(|value| Ok((value, bytes)))
    });
    match canonical {
        Ok(Ok((result, bytes))) => Decision {
            outcome: Outcome::Executed,
            reason: "ok".into(),
            status: 200,
            detail: None,
            result: Some(result),
            result_bytes: Some(bytes),
        },
        Ok(Err(len)) => Decision::failed(
            500,
            "result_too_large",
            format!("Handler result is {len} bytes in canonical form; at most {MAX_RESULT_BYTES} are recorded"),
        ),
        Err(e) => Decision::failed(
            500,
            "result_not_canonical",
            format!("Handler result cannot be canonicalized: {e}"),
        ),
    }
}
