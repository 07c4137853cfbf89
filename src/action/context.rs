//! What a running handler is told about its attempt, and what it may use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ActionError, Effects};
use crate::core::hash::Hash;
use crate::ledger::Ledger;

/// The attempt a handler runs for.
#[derive(Clone)]
pub struct Context {
    pub(crate) exec_id: String,
    pub(crate) nonce: String,
    pub(crate) tenant: String,
    pub(crate) deadline: Instant,
    pub(crate) effects: Effects,
    pub(crate) idempotency_key: IdempotencyKey,
    pub(crate) counters: Counters,
}

impl Context {
    /// The attempt's exec_id (the ledger entry's and the response's).
    #[must_use]
    pub fn exec_id(&self) -> &str {
        &self.exec_id
    }

    /// The client's nonce.
    #[must_use]
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The attempt's tenant ("" when none is configured).
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// When the handler is cancelled.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline (zero once past it), e.g. as the
    /// timeout of a downstream call.
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The handler's effects class.
    #[must_use]
    pub fn effects(&self) -> Effects {
        self.effects
    }

    /// A key derived from the request alone (tenant, action, payload and
    /// nonce, through the request hash): the same for every retry of the
    /// same request, different for any other. A handler with
    /// [`Effects::IdempotentDownstream`] forwards it to the system it
    /// calls (e.g. as an `Idempotency-Key` header), which applies the
    /// call once however often the handler runs for that request.
    #[must_use]
    pub fn idempotency_key(&self) -> &IdempotencyKey {
        &self.idempotency_key
    }

    /// Named counters kept in OpenExec's store (the `counter` demo).
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Runs blocking code (a synchronous client, file I/O) on a thread
    /// meant for it, so that the handler runtime's threads keep running
    /// other handlers. A panic in `f` is the handler's panic.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ActionError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match tokio::task::spawn_blocking(f).await {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(ActionError::new(format!("blocking task cancelled: {e}"))),
        }
    }
}

/// A request's idempotency key: 64 lowercase hex digits,
/// SHA-256(`openexec/idempotency-key/v1` ‖ 0x0A ‖ request hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of the request whose canonical request hash is `request_hash`.
    #[must_use]
    pub fn of_request(request_hash: &Hash) -> Self {
        let mut input = b"openexec/idempotency-key/v1\n".to_vec();
        input.extend_from_slice(request_hash.as_bytes());
        Self(hex::encode(Hash::sha256(&input).as_bytes()))
    }

    /// The key's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Named `u64` counters in OpenExec's store (names of 1 to 64 bytes, at
/// most 100,000 counters; an increment touches only memory, so it may run
/// in an `INLINE` action). An increment is durable
/// before the entry of the attempt that made it is acknowledged.
#[derive(Clone)]
pub struct Counters(pub(crate) Arc<Ledger>);

impl Counters {
    /// Adds one to the counter `name` and returns its new value.
    pub fn increment(&self, name: &str) -> Result<u64, ActionError> {
        self.0.increment_counter(name).map_err(counter_store_error)
    }

    /// The counter's current value (0 if it was never incremented).
    pub fn get(&self, name: &str) -> Result<u64, ActionError> {
        self.0.counter(name).map_err(counter_store_error)
    }
}

/// A failure behind a counter: a refused increment (a name out of bounds,
/// too many counters) says why; any other failure is logged and answered
/// without its internal detail.
fn counter_store_error(e: crate::ledger::LedgerError) -> ActionError {
    if let crate::ledger::LedgerError::Store(crate::store::StoreError::Counter(why)) = e {
        return ActionError::new(why);
    }
    tracing::error!(error = %e, "counter store failure");
    ActionError::new("the counter store is unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_follow_the_request_hash() {
        let a = IdempotencyKey::of_request(&Hash::sha256(b"a"));
        assert_eq!(a, IdempotencyKey::of_request(&Hash::sha256(b"a")));
        assert_ne!(a, IdempotencyKey::of_request(&Hash::sha256(b"b")));
        assert_eq!(a.as_str().len(), 64);
        assert!(a
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
