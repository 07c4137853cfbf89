//! The execution boundary: the pipeline of one `/execute` request.
//!
//! Order (each step can end the attempt; every step after parsing is
//! recorded in the ledger):
//!
//! 1. parse within limits (refused here → not recorded, 413/415/422);
//! 2. effective tenant (an authenticated caller's is its principal's) and
//!    canonical request hash;
//! 3. allow-lists, the service's then the principal's (403), registered
//!    action (400);
//! 4. approval (clawshield mode: 403, or 422 if malformed);
//! 5. payload check of the handler (400);
//! 6. nonce reservation, atomic with the approval's single use, then made
//!    durable — in flight (409), conflicting request (422), replay
//!    (original outcome, `replayed: true`), used approval (403);
//! 7. the handler, at most once per nonce (a panic is caught → `failed`);
//! 8. record: the sequencer appends the entry and finalizes the nonce in
//!    one durable batch (a rejection or replay past the per-client or the
//!    global rate limit is answered 429 instead and not recorded; a replay
//!    names its original entry and keeps no content); 9. respond with the
//!    receipt.
//!
//! A handler without effects ([`Effects::None`]: `echo`, `add`,
//! `sha256`) takes 7 before 6: its result is computed first, and the
//! writer reserves the nonce and records the entry in one durable cycle
//! (6 and 8 together), or — nonce not won — appends nothing, the result
//! is dropped, and the attempt is answered as in 6.
//!
//! This module never answers with a receipt before the attempt's entry is
//! durable, never runs a handler with effects without a durable
//! reservation, and never records or returns the result of an attempt
//! that did not win its nonce. A panic anywhere on the path is contained
//! and answered `500 internal_panic`, and the attempt is recorded as far as
//! it got (`unwind`).

mod handler_runtime;
pub mod metrics;
pub mod ratelimit;
mod record;
mod replay;
mod unwind;

pub use record::{legacy_receipt_hash, legacy_receipt_hash_of_text};
pub use unwind::Stage;

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument as _;

use chrono::Utc;
use serde_json::{json, Value};

use crate::action::Decoded;
use crate::action::{Context, Counters, Handler, IdempotencyKey, Registry};
use crate::auth::Principal;
use crate::core::approval::{
    self, ApprovalError, ApprovalPolicy, Artifact, RequestRef, VerifiedApproval,
};
use crate::core::canonical::{canonical_value_of, request_hash, to_canonical_bytes};
use crate::core::entry::{ApprovalSummary, Effects, Outcome, ReplayOf};
use crate::core::hash::Hash;
use crate::core::request::{parse_execute, ExecuteRequest, Limits};
use crate::instruments::step;
use crate::ledger::{Appended, Ledger, LedgerError, Recorded};
use crate::store::{nonce_key, Completion, PendingNonce, Reservation};
use handler_runtime::{HandlerRuntime, Ran};
use metrics::Metrics;
use record::respond;

/// Execution mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every registered, allowed action runs without an approval.
    Demo,
    /// Every action needs a valid approval artifact.
    Clawshield,
}

impl Mode {
    /// The configuration spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Demo => "demo",
            Self::Clawshield => "clawshield",
        }
    }
}

/// The boundary's policy, fixed at start.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Mode.
    pub mode: Mode,
    /// Approval rules (keys, tenant, lifetime, skew).
    pub approvals: ApprovalPolicy,
    /// Allowed actions; `None` means every registered action.
    pub allow_list: Option<Vec<String>>,
    /// Keep cleartext payloads and results beside the entries of attempts
    /// that ran a handler.
    pub store_content: bool,
    /// Request limits.
    pub limits: Limits,
    /// Rejected and replayed attempts recorded per client per second (0:
    /// no limit).
    pub reject_rate: f64,
    /// Burst of rejected and replayed attempts per client.
    pub reject_burst: u32,
    /// Rejected and replayed attempts recorded per second from all clients
    /// together (0: no limit).
    pub reject_global_rate: f64,
    /// Burst of rejected and replayed attempts from all clients together.
    pub reject_global_burst: u32,
}

/// An HTTP-agnostic response: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Seconds for a `Retry-After` header, when the answer is `429`.
    pub retry_after: Option<u64>,
}

impl Response {
    /// `{detail, code}` with a status.
    #[must_use]
    pub fn error(status: u16, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "detail": detail.into(), "code": code }),
            retry_after: None,
        }
    }

    /// `429 rate_limited`, with `Retry-After`: an attempt past the limits
    /// on recording rejections and replays ([`ratelimit`]).
    #[must_use]
    pub fn rate_limited(limited: ratelimit::Limited) -> Self {
        let whose = match limited.scope {
            ratelimit::Scope::Client => " from this client",
            ratelimit::Scope::Global => "",
        };
        Self {
            retry_after: Some(limited.retry_after_secs),
            ..Self::error(
                429,
                "rate_limited",
                format!("Too many rejected or replayed attempts{whose}; this one was not recorded"),
            )
        }
    }
}

/// A refusal decided in front of the boundary, recorded as a rejection
/// with this status and reason ([`Boundary::execute_or_reject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status of the answer.
    pub status: u16,
    /// The entry's reason and the answer's `code`.
    pub code: &'static str,
    /// The answer's `detail`.
    pub detail: String,
}

/// The boundary.
pub struct Boundary {
    ledger: Arc<Ledger>,
    registry: Registry,
    policy: Policy,
    metrics: Metrics,
    reject_limiter: ratelimit::RejectLimiter,
    panic_hook: Arc<unwind::PanicHook>,
    handlers: HandlerRuntime,
}

/// One attempt, as far as it got.
struct Attempt {
    exec_id: String,
    /// The client (its principal, else its address), for the limit on
    /// recording rejections and replays.
    client: Option<ratelimit::Client>,
    /// The authenticated caller, if any: its tenant is the attempt's, its
    /// allow-list narrows the service's, its id is in the entry.
    principal: Option<Principal>,
    request: ExecuteRequest,
    tenant: String,
    request_hash: Hash,
    approval: ApprovalSummary,
    /// For a replay: the entry it replays, whose commitments it repeats.
    original: Option<Original>,
    /// The effects class of the handler it ran or reserved its nonce for.
    effects: Option<Effects>,
    /// How far it got, read if a panic stops it ([`unwind`]).
    progress: Arc<unwind::Progress>,
}

impl Attempt {
    /// The text of its principal's id, as its entry records it.
    fn principal_id(&self) -> Option<String> {
        self.principal.as_ref().map(|p| p.id.to_string())
    }
}

/// What [`Boundary::authorize`] lets through.
struct Authorized {
    handler: Handler,
    approval: Option<VerifiedApproval>,
    /// The payload, decoded by the handler's check.
    payload: Decoded,
}

/// The entry a replay repeats, as its replay entry names it.
struct Original {
    at: ReplayOf,
    payload_commitment: Hash,
    result_commitment: Option<Hash>,
}

/// How an attempt ended, before it is recorded.
struct Decision {
    outcome: Outcome,
    reason: String,
    status: u16,
    detail: Option<String>,
    result: Option<Value>,
    /// The canonical bytes of `result` when the handler produced it (the
    /// input of its commitment, computed once by [`executed`]); `None` for
    /// a replay, whose entry repeats its original's commitment.
    result_bytes: Option<Vec<u8>>,
}

impl Decision {
    /// A handler that ran and failed.
    fn failed(status: u16, reason: &str, detail: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Failed,
            reason: reason.to_owned(),
            status,
            detail: Some(detail.into()),
            result: None,
            result_bytes: None,
        }
    }

    fn reject(status: u16, code: &str, detail: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Rejected,
            reason: code.to_owned(),
            status,
            detail: Some(detail.into()),
            result: None,
            result_bytes: None,
        }
    }
}

impl Boundary {
    /// A boundary over an open ledger. Its handlers run on a runtime of
    /// its own (`exec::handler_runtime`).
    pub fn new(ledger: Arc<Ledger>, registry: Registry, policy: Policy) -> std::io::Result<Self> {
        let reject_limiter = ratelimit::RejectLimiter::new(ratelimit::RateLimits {
            client_rate: policy.reject_rate,
            client_burst: policy.reject_burst,
            global_rate: policy.reject_global_rate,
            global_burst: policy.reject_global_burst,
        });
        let metrics = Metrics::new(registry.names());
        Ok(Self {
            ledger,
            registry,
            policy,
            metrics,
            reject_limiter,
            panic_hook: Arc::default(),
            handlers: HandlerRuntime::start()?,
        })
    }

    /// The sealed handler registry.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Test hook: the next attempt to reach `stage` panics there, once.
    #[doc(hidden)]
    pub fn inject_panic(&self, stage: Stage) {
        self.panic_hook.arm(stage);
    }

    /// The ledger.
    #[must_use]
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Metrics text.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.ledger)
    }

    /// Records every reservation left pending by a previous process as an
    /// `interrupted` entry. Such nonces are never re-run. Call before serving.
    pub fn recover_interrupted(&self) -> Result<usize, LedgerError> {
        let pending = self.ledger.pending_reservations()?;
        let count = pending.len();
        for (key, record) in pending {
            let draft = unwind::AttemptRecord::of_pending(&record).draft_without_content(
                Outcome::Interrupted,
                "interrupted_at_restart",
                self.registry.fingerprint().0,
            );
            let completion = resolution(Some(record.effects), key);
            self.ledger
                .append_completing_blocking(draft, None, Some(completion))?;
            self.metrics
                .record(Outcome::Interrupted, "interrupted_at_restart");
        }
        Ok(count)
    }

    /// Runs one `/execute` body through the pipeline for `principal`, the
    /// authenticated caller (`None`: no credentials; the configured tenant
    /// applies). `address` is the peer address, used only for the limit on
    /// recording rejected and replayed attempts of a caller without a
    /// principal (a principal has one bucket, whatever its address, and
    /// shares its tenant's).
    pub async fn execute(
        &self,
        body: &[u8],
        address: Option<std::net::IpAddr>,
        principal: Option<&Principal>,
    ) -> Response {
        self.execute_or_reject(body, address, principal, None).await
    }

    /// [`Self::execute`], or — with `preset` — the same attempt parsed,
    /// recorded and answered as that rejection instead of being authorized
    /// and run: how a protocol layer in front of `/execute` (MCP
    /// `tools/call` without a nonce) has its own refusals recorded like the
    /// boundary's.
    pub async fn execute_or_reject(
        &self,
        body: &[u8],
        address: Option<std::net::IpAddr>,
        principal: Option<&Principal>,
        preset: Option<Rejection>,
    ) -> Response {
        let client = principal
            .map(|p| ratelimit::Client::Principal(p.id, ratelimit::tenant_key(&p.tenant)))
            .or(address.map(ratelimit::Client::Address));
        let progress = Arc::new(unwind::Progress::default());
        let pipeline = self.run_attempt(body, client, principal, preset, Arc::clone(&progress));
        match unwind::CatchUnwind::new(pipeline).await {
            Ok(response) => response,
            Err(payload) => {
                let message = unwind::panic_message(payload.as_ref()).to_owned();
                drop(payload);
                self.contain_panic(&progress, &message, client).await
            }
        }
    }

    /// The pipeline of [`Self::execute`], noting its progress.
    async fn run_attempt(
        &self,
        body: &[u8],
        client: Option<ratelimit::Client>,
        principal: Option<&Principal>,
        preset: Option<Rejection>,
        progress: Arc<unwind::Progress>,
    ) -> Response {
        self.panic_hook.fire(Stage::Parse);
        if self.ledger.is_retired() {
            // Nothing can be recorded: the log's last entry names its successor.
            return Response::error(
                410,
                "log_retired",
                "This log is retired (rotated); send requests to its successor",
            );
        }
        let request = match parse_execute(body, &self.policy.limits) {
            Ok(r) => r,
            Err(e) => return Response::error(e.status, e.code, e.detail),
        };
        let artifact = request.approval_artifact.as_ref().map(Artifact::from_value);
        let tenant = match principal {
            Some(p) => p.tenant.clone(),
            None => self.effective_tenant(artifact.as_ref().and_then(|a| a.as_ref().ok())),
        };
        let request_hash =
            match request_hash(&request.action, &request.payload, &request.nonce, &tenant) {
                Ok(h) => h,
                Err(e) => return Response::error(422, "invalid_payload", e.to_string()),
            };
        let mut attempt = Attempt {
            exec_id: uuid::Uuid::new_v4().to_string(),
            client,
            principal: principal.cloned(),
            request,
            tenant,
            request_hash,
            approval: ApprovalSummary::none(),
            original: None,
            effects: None,
            progress,
        };
        attempt.progress.parsed(unwind::AttemptRecord {
            exec_id: attempt.exec_id.clone(),
            tenant: attempt.tenant.clone(),
            action: attempt.request.action.as_str().to_owned(),
            nonce: attempt.request.nonce.as_str().to_owned(),
            request_hash: attempt.request_hash,
            approval: ApprovalSummary::none(),
            effects: None,
            principal: attempt.principal_id(),
        });
        attempt.progress.enter(Stage::Authorize);
        if let Some(r) = preset {
            let decision = Decision::reject(r.status, r.code, r.detail);
            return self.finish(attempt, decision, None).await;
        }
        let authorized = match self.authorize(&attempt, artifact) {
            Ok(v) => v,
            Err(decision) => return self.finish(attempt, decision, None).await,
        };
        if let Some(v) = authorized.approval {
            attempt.approval = v.summary;
        }
        self.reserve_and_run(attempt, authorized.handler, authorized.payload)
            .await
    }

    /// The tenant of an attempt without a principal: the configured
    /// tenant, else (clawshield mode) the artifact's, else "".
    fn effective_tenant(&self, artifact: Option<&Artifact>) -> String {
        // An artifact's tenant only counts where artifacts are verified.
        let from_artifact = artifact.filter(|_| self.policy.mode == Mode::Clawshield);
        self.policy
            .approvals
            .tenant
            .clone()
            .or_else(|| from_artifact.map(|a| a.tenant().to_owned()))
            .unwrap_or_default()
    }

    /// The tenant an approval must name: the principal's, else the
    /// configured one (none: a v2 approval's own tenant is in its request
    /// hash; a v1 approval is refused).
    fn pinned_tenant<'a>(&'a self, attempt: &'a Attempt) -> Option<&'a str> {
        match &attempt.principal {
            Some(_) => Some(attempt.tenant.as_str()),
            None => self.policy.approvals.tenant.as_deref(),
        }
    }

    /// Steps 3–5: allow-list, registry, approval, payload check. Returns the
    /// registered handler that step 7 runs, with the payload it decoded.
    fn authorize(
        &self,
        attempt: &Attempt,
        artifact: Option<Result<Artifact, ApprovalError>>,
    ) -> Result<Authorized, Decision> {
        self.panic_hook.fire(Stage::Authorize);
        let action = &attempt.request.action;
        if let Some(list) = &self.policy.allow_list {
            if !list.iter().any(|a| a.as_str() == action.as_str()) {
                return Err(Decision::reject(
                    403,
                    "action_not_allowed",
                    format!("Action '{action}' is not in the execution allow-list"),
                ));
            }
        }
        if let Some(principal) = attempt.principal.as_ref() {
            if !principal.allows_action(action.as_str()) {
                return Err(Decision::reject(
                    403,
                    "action_not_allowed",
                    format!("Action '{action}' is not in this credential's allow-list"),
                ));
            }
        }
        let handler = self.registry.get(action).cloned().ok_or_else(|| {
            Decision::reject(400, "unknown_action", format!("Unknown action: {action}"))
        })?;
        let verified = match self.policy.mode {
            Mode::Demo => None,
            Mode::Clawshield => {
                let artifact = artifact
                    .ok_or(ApprovalError::Missing)
                    .and_then(|a| a)
                    .map_err(approval_rejection)?;
                let request = RequestRef {
                    action,
                    payload: &attempt.request.payload_as_sent,
                    request_hash: &attempt.request_hash,
                    tenant: self.pinned_tenant(attempt),
                };
                Some(
                    approval::verify(&artifact, request, &self.policy.approvals, Utc::now())
                        .map_err(approval_rejection)?,
                )
            }
        };
        let payload = handler
            .check(&attempt.request.payload)
            .map_err(|msg| Decision::reject(400, "invalid_payload", msg))?;
        Ok(Authorized {
            handler,
            approval: verified,
            payload,
        })
    }

    /// Steps 6–9.
    async fn reserve_and_run(
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

    /// Records the attempt and builds the response.
    async fn finish(
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
    fn take_recording_token(
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
    fn recorded(&self, attempt: &Attempt, decision: &Decision, appended: &Appended) -> Response {
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

fn approval_rejection(e: ApprovalError) -> Decision {
    let status = if matches!(e, ApprovalError::Malformed(_)) {
        422
    } else {
        403
    };
    Decision::reject(status, e.code(), e.to_string())
}

/// The HTTP status an attempt that completed a nonce was answered with,
/// which its replays repeat: only `executed` (200), `failed` (500, or 504
/// past the handler's deadline, 503 when shutdown cancelled it) and
/// `interrupted` (500) complete one ([`Boundary::run_handler`],
/// [`Boundary::recover_interrupted`]).
fn answered_status(outcome: Outcome, reason: &str) -> u16 {
    match (outcome, reason) {
        (Outcome::Executed, _) => 200,
        (Outcome::Failed, "deadline_exceeded") => 504,
        (Outcome::Failed, "handler_cancelled") => 503,
        _ => 500,
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

/// The completion of a reservation whose attempt was cut off (a crash or a
/// contained panic) and is recorded `interrupted`: at most once, the nonce
/// is done for good; idempotent downstream, the reservation is let go so
/// that the client's retry runs the handler again with the same
/// idempotency key.
fn resolution(effects: Option<Effects>, key: Vec<u8>) -> Completion {
    match effects {
        Some(Effects::IdempotentDownstream) => Completion::released(key),
        _ => Completion::reserved(key),
    }
}

/// 503 without internal detail (the cause is logged, not sent).
fn storage_unavailable() -> Response {
    Response::error(503, "ledger_unavailable", "The ledger could not record this attempt; it was not executed or its outcome will be recorded as interrupted")
}
