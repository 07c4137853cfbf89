//! The handler API: how an operator adds an action.
//!
//! An action is a type implementing [`Action`]: a name, an effects class,
//! a typed payload (serde) with its JSON Schema (schemars), a pure
//! [`Action::check`] run before the nonce is reserved, and an async
//! [`Action::run`]. The operator's own binary registers its actions in a
//! [`RegistryBuilder`], seals it, and hands the [`Registry`] to
//! [`crate::cli::main`], which then offers every `openexec` subcommand.
//! Nothing is loaded, evaluated or registered at run time.
//!
//! ```no_run
//! use openexec::action::{Action, ActionError, Context, Effects, Registry};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! struct Greet;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Who { name: String }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Greeting { text: String }
//!
//! impl Action for Greet {
//!     const NAME: &'static str = "greet";
//!     const EFFECTS: Effects = Effects::None;
//!     type Payload = Who;
//!     type Output = Greeting;
//!
//!     async fn run(&self, _ctx: Context, who: Who) -> Result<Greeting, ActionError> {
//!         Ok(Greeting { text: format!("hello, {}", who.name) })
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let registry = Registry::builder("greeter", "1.0.0").register(Greet).build();
//!     match registry {
//!         Ok(registry) => openexec::cli::main(registry),
//!         Err(e) => { eprintln!("{e}"); std::process::ExitCode::FAILURE }
//!     }
//! }
//! ```
//!
//! Where handlers run: a handler's future runs on the boundary's handler
//! runtime, never on an HTTP worker, so a handler that blocks stalls other
//! handlers at worst, never the service's other routes (a handler that
//! calls blocking code should still hand it to [`Context::blocking`]) —
//! unless it declares [`Action::INLINE`], which only a handler that never
//! blocks may do. A handler past its deadline ([`Action::DEADLINE`])
//! is dropped at its next await and recorded `failed` with reason
//! `deadline_exceeded`; one that panics is recorded `failed` with reason
//! `handler_panic`.

mod builtin;
mod context;
mod registry;

use std::future::Future;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::core::entry::Effects;
pub use context::{Context, Counters, IdempotencyKey};
pub(crate) use registry::Decoded;
pub use registry::{
    Binary, Fingerprint, Handler, HandlerInfo, Registry, RegistryBuilder, RegistryError,
    RegistryInfo,
};

/// One action an agent may request.
///
/// The constants describe it; they are part of the registry's
/// [`Fingerprint`], so changing one (or the payload or output schema)
/// changes the fingerprint that every later ledger entry records.
pub trait Action: Send + Sync + 'static {
    /// The action's name in requests: 1–64 characters of `[A-Za-z0-9_.-]`.
    const NAME: &'static str;
    /// What running it may change besides its result. A handler that
    /// touches anything outside its result must not say [`Effects::None`].
    const EFFECTS: Effects;
    /// The handler's own version; bump it when its behaviour changes.
    const VERSION: &'static str = "1";
    /// A short human title (MCP `title`); the name when empty.
    const TITLE: &'static str = "";
    /// What it does, for agents and auditors.
    const DESCRIPTION: &'static str = "";
    /// Whether running it may destroy or overwrite something (MCP
    /// `destructiveHint`), as opposed to only adding. Meaningful for a
    /// handler with effects; `true` unless the handler says otherwise, the
    /// MCP default, so that a client asks before calling it.
    const DESTRUCTIVE: bool = true;
    /// How long [`Action::run`] may take before it is cancelled.
    const DEADLINE: Duration = Duration::from_secs(30);
    /// `true` only for a handler that never blocks and finishes in
    /// microseconds (no I/O, no long computation): it then runs on the HTTP
    /// worker that received the request, which saves the hand-off to the
    /// handler runtime (about 15 µs of CPU per request on the reference
    /// machine, docs/PERFORMANCE.md). Its deadline still applies at its
    /// awaits and a panic is still its own failure; a handler that blocks
    /// while `INLINE` stalls that worker's other requests.
    const INLINE: bool = false;

    /// The request's `payload`, decoded by serde: a payload that does not
    /// decode is refused `invalid_payload` before the nonce is reserved.
    /// Fields the type does not name are ignored unless it says
    /// `#[serde(deny_unknown_fields)]`.
    type Payload: DeserializeOwned + JsonSchema + Send + 'static;
    /// The result, answered to the client and committed in the entry.
    type Output: Serialize + JsonSchema + Send + 'static;

    /// Validates a decoded payload before anything is reserved; pure (no
    /// I/O, no clock). An `Err` is a rejection (`invalid_payload`, its text
    /// the detail) and leaves the nonce free for a corrected retry.
    fn check(&self, payload: &Self::Payload) -> Result<(), String> {
        let _ = payload;
        Ok(())
    }

    /// Runs the action. For a handler with effects it runs only once the
    /// nonce's reservation is durable, and at most once per nonce
    /// ([`Effects::AtMostOnce`]) or once per nonce and idempotency key
    /// downstream ([`Effects::IdempotentDownstream`]). An `Err` is recorded
    /// `failed` with reason `handler_error`.
    fn run(
        &self,
        ctx: Context,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Self::Output, ActionError>> + Send;
}

/// A handler's failure: recorded `failed`, its message the response's
/// detail (it is not written to the ledger, whose entry keeps the reason
/// code `handler_error` only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActionError(pub String);

impl ActionError {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<String> for ActionError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for ActionError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}
