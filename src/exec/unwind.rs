//! Panic containment on the `/execute` path.
//!
//! Nothing on the path is meant to panic: inputs are parsed strictly, time
//! arithmetic is checked, handlers' own panics are caught where they run.
//! This is the defence in depth for the rest. [`Boundary::execute`] polls
//! the whole pipeline inside [`CatchUnwind`]; the pipeline notes in a
//! [`Progress`], kept outside the future that a panic unwinds, how far the
//! attempt got. After a panic the boundary reads it and leaves the ledger
//! as it would be had the attempt ended there:
//!
//! - nothing parsed yet: nothing to record;
//! - parsed, nonce not won (or an effect-free handler's result not yet
//!   handed to the writer): recorded `rejected`, reason `internal_panic`;
//!   nothing took effect and the nonce stays free;
//! - nonce reserved, the entry completing it not yet handed to the writer:
//!   recorded `interrupted`, reason `internal_panic`, completing the
//!   reservation (the handler may or may not have run; it never runs
//!   again), so a panicking attempt never leaves its nonce in flight;
//! - the attempt's entry already handed to the writer: the writer records
//!   it; nothing more is appended (a second entry could complete one nonce
//!   twice).
//!
//! The answer is `500 {detail, code: "internal_panic"}` (with the receipt
//! of the entry recorded for it, if one was) and the panic is counted in
//! `/metrics` by [`Stage`]. This relies on the default `panic = "unwind"`.
//!
//! [`Boundary::execute`]: super::Boundary::execute

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use serde_json::{json, Value};

use super::{Boundary, Response};
use crate::core::canonical::commitment;
use crate::core::entry::{ApprovalSummary, Effects, EntryDraft, Outcome};
use crate::core::hash::Hash;
use crate::store::PendingNonce;

/// The code of the answer to an attempt stopped by a panic, and the
/// reason its entry records.
pub const INTERNAL_PANIC: &str = "internal_panic";

/// Where on the `/execute` path an attempt is; the label of
/// `openexec_panics_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Reading the body.
    Parse = 0,
    /// Allow-list, registry, approval, payload check.
    Authorize = 1,
    /// Reserving the nonce (a handler with effects), up to the handler.
    Reserve = 2,
    /// Inside the handler (caught where it runs: recorded `failed`).
    Handler = 3,
    /// Drafting the entry and handing it to the writer.
    Record = 4,
    /// Building the answer once the entry is durable.
    Respond = 5,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Self; 6] = [
        Self::Parse,
        Self::Authorize,
        Self::Reserve,
        Self::Handler,
        Self::Record,
        Self::Respond,
    ];

    /// The metric label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Authorize => "authorize",
            Self::Reserve => "reserve",
            Self::Handler => "handler",
            Self::Record => "record",
            Self::Respond => "respond",
        }
    }

    fn from_u8(n: u8) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| *s as u8 == n)
            .unwrap_or(Self::Parse)
    }
}

/// What an entry for an attempt needs, once it has parsed.
#[derive(Debug, Clone)]
pub(super) struct AttemptRecord {
    pub(super) exec_id: String,
    pub(super) tenant: String,
    pub(super) action: String,
    pub(super) nonce: String,
    pub(super) request_hash: Hash,
    pub(super) approval: ApprovalSummary,
    /// The effects class of the handler its nonce is reserved for, once
    /// reserved.
    pub(super) effects: Option<Effects>,
    /// The id of the principal that made it.
    pub(super) principal: Option<String>,
}

impl AttemptRecord {
    /// The attempt that held a reservation left pending by a previous
    /// process (the record names the approval's key, not its summary).
    pub(super) fn of_pending(record: &PendingNonce) -> Self {
        Self {
            exec_id: record.exec_id.clone(),
            tenant: record.tenant.clone(),
            action: record.action.clone(),
            nonce: record.nonce.clone(),
            request_hash: record.request_hash,
            approval: ApprovalSummary::none(),
            effects: Some(record.effects),
            principal: record.principal.clone(),
        }
    }

    /// Its entry when nothing of its content is trusted or known (stopped
    /// by a panic, or found pending at start-up): it commits to empty
    /// content under the all-zero salt. `registry` is the fingerprint of
    /// the registry recording it.
    pub(super) fn draft_without_content(
        &self,
        outcome: Outcome,
        reason: &str,
        registry: Hash,
    ) -> EntryDraft {
        EntryDraft {
            exec_id: self.exec_id.clone(),
            tenant: self.tenant.clone(),
            action: self.action.clone(),
            nonce: self.nonce.clone(),
            request_hash: self.request_hash,
            payload_commitment: commitment(&[0; 32], b""),
            result_commitment: None,
            approval: self.approval.clone(),
            outcome,
            reason: reason.into(),
            replay_of: None,
            // A rejection names none: no nonce was reserved for it.
            effects: self.effects.filter(|_| outcome != Outcome::Rejected),
            registry: Some(registry),
            principal: self.principal.clone(),
        }
    }
}

/// What is left to record for an attempt stopped by a panic.
pub(super) enum Unrecorded {
    /// Nothing: the body had not parsed.
    NotParsed,
    /// Nothing: an entry of the attempt was handed to the writer.
    HandedOver,
    /// The attempt, which holds no reservation.
    Attempt(AttemptRecord),
    /// The attempt and the nonce key it reserved (its record names the
    /// effects class).
    Reservation(AttemptRecord, Vec<u8>),
}

/// How far one attempt got: written by the pipeline, read after a panic.
#[derive(Debug, Default)]
pub(super) struct Progress {
    stage: AtomicU8,
    attempt: Mutex<Option<AttemptRecord>>,
    /// The nonce key reserved for the attempt, until an entry completing it
    /// is handed to the writer.
    reserved: Mutex<Option<Vec<u8>>>,
    /// An entry of this attempt is with the writer.
    handed_over: AtomicBool,
}

impl Progress {
    pub(super) fn enter(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }

    pub(super) fn stage(&self) -> Stage {
        Stage::from_u8(self.stage.load(Ordering::Relaxed))
    }

    /// The attempt has parsed.
    pub(super) fn parsed(&self, record: AttemptRecord) {
        *lock(&self.attempt) = Some(record);
    }

    /// The nonce `key` is reserved (durably) for the attempt, whose
    /// verified approval the reservation holds, for a handler of class
    /// `effects`.
    pub(super) fn reserved(&self, key: Vec<u8>, approval: &ApprovalSummary, effects: Effects) {
        if let Some(record) = lock(&self.attempt).as_mut() {
            record.approval = approval.clone();
            record.effects = Some(effects);
        }
        *lock(&self.reserved) = Some(key);
    }

    /// An entry of the attempt (completing its reservation, if it holds
    /// one) is about to be handed to the writer.
    pub(super) fn handing_over(&self) {
        self.handed_over.store(true, Ordering::SeqCst);
        lock(&self.reserved).take();
    }

    /// The writer appended nothing for the attempt after all (its nonce
    /// was not won).
    pub(super) fn not_appended(&self) {
        self.handed_over.store(false, Ordering::SeqCst);
    }

    /// What a panic leaves to record.
    pub(super) fn unrecorded(&self) -> Unrecorded {
        let Some(record) = lock(&self.attempt).clone() else {
            return Unrecorded::NotParsed;
        };
        if self.handed_over.load(Ordering::SeqCst) {
            return Unrecorded::HandedOver;
        }
        match lock(&self.reserved).take() {
            Some(key) => Unrecorded::Reservation(record, key),
            None => Unrecorded::Attempt(record),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Boundary {
    /// Counts the panic that stopped an attempt, records the attempt as far
    /// as it got (see the module doc) and answers 500.
    pub(super) async fn contain_panic(
        &self,
        progress: &Progress,
        message: &str,
        client: Option<super::ratelimit::Client>,
    ) -> Response {
        let stage = progress.stage();
        self.metrics.record_panic(stage);
        tracing::error!(
            stage = stage.as_str(),
            panic = message,
            "a panic on the /execute path was contained"
        );
        let (record, outcome, completion) = match progress.unrecorded() {
            Unrecorded::NotParsed => {
                return panic_answer("nothing of it was recorded or run");
            }
            Unrecorded::HandedOver => {
                return panic_answer(
                    "its entry was handed to the ledger; a retry with the same nonce finds it",
                );
            }
            Unrecorded::Attempt(record) => {
                // A rejection like any other: held to the same limits, so
                // that a request that panics cannot grow the ledger faster.
                if self.take_recording_token(client).is_err() {
                    return panic_answer(
                        "it was not recorded: the rejection rate limit is reached",
                    );
                }
                (record, Outcome::Rejected, None)
            }
            Unrecorded::Reservation(record, key) => {
                let completion = super::resolution(record.effects, key);
                (record, Outcome::Interrupted, Some(completion))
            }
        };
        let draft =
            record.draft_without_content(outcome, INTERNAL_PANIC, self.registry.fingerprint().0);
        let append = self.ledger.append_completing(draft, None, completion);
        match CatchUnwind::new(append).await {
            Ok(Ok(appended)) => {
                self.metrics.record(outcome, INTERNAL_PANIC);
                let detail = if outcome == Outcome::Interrupted {
                    "Internal error while handling this attempt; it is recorded as interrupted and is never run again"
                } else {
                    "Internal error while handling this attempt; it is recorded as rejected and its nonce is free"
                };
                let receipt = serde_json::to_value(&appended.receipt).unwrap_or(Value::Null);
                Response {
                    status: 500,
                    body: json!({
                        "id": record.exec_id,
                        "exec_id": record.exec_id,
                        "action": record.action,
                        "outcome": outcome,
                        "replayed": false,
                        "approved": false,
                        "receipt": receipt,
                        "detail": detail,
                        "code": INTERNAL_PANIC,
                    }),
                    retry_after: None,
                }
            }
            Ok(Err(e)) => {
                tracing::error!(exec_id = %record.exec_id, error = %e, "an attempt stopped by a panic could not be recorded");
                panic_answer("it could not be recorded; a nonce it reserved is recorded as interrupted at the next start")
            }
            Err(_) => {
                tracing::error!(exec_id = %record.exec_id, "recording an attempt stopped by a panic panicked");
                panic_answer("it could not be recorded; a nonce it reserved is recorded as interrupted at the next start")
            }
        }
    }
}

/// `500 {detail, code: "internal_panic"}` without a receipt.
fn panic_answer(what_happened: &str) -> Response {
    Response {
        status: 500,
        body: json!({
            "detail": format!("Internal error while handling this attempt; {what_happened}"),
            "code": INTERNAL_PANIC,
        }),
        retry_after: None,
    }
}

/// A future that answers `Err` with the panic's payload if polling its
/// inner future panics (which is then never polled again).
pub(super) struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    pub(super) fn new(future: F) -> Self {
        Self(Box::pin(future))
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The message of a panic payload, for the log.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A test hook: a panic armed at one stage, fired once. Unarmed (always,
/// outside tests) it costs one atomic load per stage.
#[derive(Debug, Default)]
pub(super) struct PanicHook(AtomicU8);

impl PanicHook {
    pub(super) fn arm(&self, stage: Stage) {
        self.0.store(stage as u8 + 1, Ordering::SeqCst);
    }

    /// Panics if armed at `stage` (and disarms).
    pub(super) fn fire(&self, stage: Stage) {
        let armed = stage as u8 + 1;
        if self.0.load(Ordering::Relaxed) == armed
            && self
                .0
                .compare_exchange(armed, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            panic!("panic injected at stage {}", stage.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_future_answers_err_and_others_their_output() {
        let ok = CatchUnwind::new(async { 7 });
        let bad = CatchUnwind::new(async {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            7
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(rt.block_on(ok).ok(), Some(7));
        let payload = rt.block_on(bad).err();
        assert_eq!(payload.as_deref().map(panic_message), Some("boom"));
    }

    #[test]
    fn progress_tells_what_is_left_to_record() {
        let record = AttemptRecord {
            exec_id: "e".into(),
            tenant: String::new(),
            action: "echo".into(),
            nonce: "n".into(),
            request_hash: Hash::sha256(b"r"),
            approval: ApprovalSummary::none(),
            effects: None,
            principal: None,
        };
        let p = Progress::default();
        assert!(matches!(p.unrecorded(), Unrecorded::NotParsed));
        p.parsed(record);
        assert!(matches!(p.unrecorded(), Unrecorded::Attempt(_)));
        p.handing_over();
        assert!(matches!(p.unrecorded(), Unrecorded::HandedOver));
        p.not_appended();
        p.reserved(b"k".to_vec(), &ApprovalSummary::none(), Effects::AtMostOnce);
        assert!(matches!(p.unrecorded(), Unrecorded::Reservation(_, k) if k == b"k"));
        // Once an entry completing it is handed over, the reservation is
        // the writer's to complete.
        p.reserved(b"k".to_vec(), &ApprovalSummary::none(), Effects::AtMostOnce);
        p.handing_over();
        assert!(matches!(p.unrecorded(), Unrecorded::HandedOver));
    }
}
