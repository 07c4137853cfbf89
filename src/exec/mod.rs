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

mod authorize;
mod handler_runtime;
pub mod metrics;
pub mod ratelimit;
mod record;
mod replay;
mod run;
mod unwind;

pub use record::{legacy_receipt_hash, legacy_receipt_hash_of_text};
pub use run::MAX_RESULT_BYTES;
pub use unwind::Stage;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::action::Registry;
use crate::auth::Principal;
use crate::core::approval::{ApprovalPolicy, Artifact};
use crate::core::canonical::request_hash;
use crate::core::entry::{ApprovalSummary, Effects, Outcome, ReplayOf};
use crate::core::hash::Hash;
use crate::core::request::{parse_execute, ExecuteRequest, Limits};
use crate::ledger::{Ledger, LedgerError};
use crate::store::Completion;
use handler_runtime::HandlerRuntime;
use metrics::Metrics;

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
    /// input of its commitment, computed once by [`run::executed`]); `None` for
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
