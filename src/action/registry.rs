//! The sealed registry: every action the service may run, fixed at start,
//! with its description and the registry's fingerprint.
//!
//! Typed actions are kept behind one object-safe trait ([`Erased`]): the
//! payload is decoded once, by the check before the nonce is reserved, and
//! the decoded value travels to the run.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{Action, ActionError, Context, Effects};
use crate::core::canonical::to_canonical_bytes;
use crate::core::hash::Hash;
use crate::core::request::is_action_name;

/// A decoded payload on its way from the check to the run.
pub(crate) type Decoded = Box<dyn Any + Send>;
/// A running handler: its result as JSON.
pub(crate) type RunFuture = Pin<Box<dyn Future<Output = Result<Value, ActionError>> + Send>>;

/// A typed action behind an object-safe interface.
trait Erased: Send + Sync {
    /// Decodes the payload and runs the action's check.
    fn check(&self, payload: &Value) -> Result<Decoded, String>;
    /// Runs the action on a payload [`Erased::check`] decoded.
    fn run(self: Arc<Self>, ctx: Context, payload: Decoded) -> RunFuture;
}

struct Typed<A>(A);

impl<A: Action> Erased for Typed<A> {
    fn check(&self, payload: &Value) -> Result<Decoded, String> {
        let decoded =
            A::Payload::deserialize(payload).map_err(|e| format!("{} payload: {e}", A::NAME))?;
        self.0.check(&decoded)?;
        Ok(Box::new(decoded))
    }

    fn run(self: Arc<Self>, ctx: Context, payload: Decoded) -> RunFuture {
        Box::pin(async move {
            let payload = payload
                .downcast::<A::Payload>()
                .map_err(|_| ActionError::new("payload decoded for another action"))?;
            let output = self.0.run(ctx, *payload).await?;
            serde_json::to_value(output)
                .map_err(|e| ActionError::new(format!("result cannot be encoded as JSON: {e}")))
        })
    }
}

use serde::Deserialize as _;

/// One registered action, as the boundary uses it.
#[derive(Clone)]
pub struct Handler {
    erased: Arc<dyn Erased>,
    info: Arc<HandlerInfo>,
    inline: bool,
}

impl Handler {
    /// Decodes and checks a payload (before anything is reserved).
    pub(crate) fn check(&self, payload: &Value) -> Result<Decoded, String> {
        self.erased.check(payload)
    }

    /// The run of a checked payload, as a future the caller may spawn.
    pub(crate) fn run(&self, ctx: Context, payload: Decoded) -> RunFuture {
        Arc::clone(&self.erased).run(ctx, payload)
    }

    /// Its effects class.
    #[must_use]
    pub fn effects(&self) -> Effects {
        self.info.effects
    }

    /// Whether it runs on the HTTP worker ([`Action::INLINE`]).
    #[must_use]
    pub fn inline(&self) -> bool {
        self.inline
    }

    /// Its deadline.
    #[must_use]
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.info.deadline_ms)
    }

    /// Its description.
    #[must_use]
    pub fn info(&self) -> &HandlerInfo {
        &self.info
    }
}

/// What the registry says of one action (`GET /handlers`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandlerInfo {
    /// The action's name.
    pub name: String,
    /// A human title.
    pub title: String,
    /// What it does.
    pub description: String,
    /// The handler's version.
    pub version: String,
    /// Its effects class.
    pub effects: Effects,
    /// Whether it may destroy or overwrite ([`Action::DESTRUCTIVE`]).
    pub destructive: bool,
    /// Its deadline in milliseconds.
    pub deadline_ms: u64,
    /// JSON Schema (draft 2020-12) of the payload.
    pub input_schema: Value,
    /// JSON Schema (draft 2020-12) of the result.
    pub output_schema: Value,
}

/// The binary that registered the actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binary {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// The registry's description, whose canonical bytes the fingerprint
/// hashes (`GET /handlers` serves it with the fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryInfo {
    /// The OpenExec library the binary was built with.
    pub openexec_version: String,
    /// The binary.
    pub binary: Binary,
    /// The actions, by name.
    pub handlers: Vec<HandlerInfo>,
}

/// SHA-256 of the RFC 8785 bytes of a [`RegistryInfo`]: which handlers, in
/// which versions, with which schemas and effects, under which binary.
/// Every ledger entry records the fingerprint of the registry that wrote
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(pub Hash);

/// Base64, as entries and every other hash on the wire write it.
impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a registry cannot be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two actions share a name.
    #[error("action '{0}' is registered twice")]
    Duplicate(String),
    /// A name requests could not carry.
    #[error("action name '{0}' is not 1-64 characters of A-Z a-z 0-9 _ . -")]
    InvalidName(String),
    /// A deadline of zero or beyond a day.
    #[error("action '{0}' has a deadline outside 1 ms ..= 24 h")]
    InvalidDeadline(String),
    /// The description cannot be canonicalized (a schema with a number
    /// RFC 8785 cannot write).
    #[error("the registry's description cannot be canonicalized: {0}")]
    NotCanonical(String),
}

/// Collects actions; [`RegistryBuilder::build`] seals them.
pub struct RegistryBuilder {
    binary: Binary,
    handlers: Vec<(Arc<dyn Erased>, HandlerInfo, bool)>,
}

impl RegistryBuilder {
    /// Adds an action.
    #[must_use]
    pub fn register<A: Action>(mut self, action: A) -> Self {
        let info = HandlerInfo {
            name: A::NAME.to_owned(),
            title: if A::TITLE.is_empty() {
                A::NAME
            } else {
                A::TITLE
            }
            .to_owned(),
            description: A::DESCRIPTION.to_owned(),
            version: A::VERSION.to_owned(),
            effects: A::EFFECTS,
            destructive: A::DESTRUCTIVE,
            deadline_ms: u64::try_from(A::DEADLINE.as_millis()).unwrap_or(u64::MAX),
            input_schema: schemars::schema_for!(A::Payload).to_value(),
            output_schema: schemars::schema_for!(A::Output).to_value(),
        };
        self.handlers
            .push((Arc::new(Typed(action)), info, A::INLINE));
        self
    }

    /// Adds the built-in demo actions: `echo`, `add`, `sha256`, `counter`.
    #[must_use]
    pub fn with_builtins(self) -> Self {
        super::builtin::register(self)
    }

    /// Seals the registry: checks names and deadlines and computes the
    /// fingerprint.
    pub fn build(self) -> Result<Registry, RegistryError> {
        let mut handlers = BTreeMap::new();
        for (erased, info, inline) in self.handlers {
            if !is_action_name(&info.name) {
                return Err(RegistryError::InvalidName(info.name));
            }
            if !(1..=86_400_000).contains(&info.deadline_ms) {
                return Err(RegistryError::InvalidDeadline(info.name));
            }
            let name = info.name.clone();
            let handler = Handler {
                erased,
                info: Arc::new(info),
                inline,
            };
            if handlers.insert(name.clone(), handler).is_some() {
                return Err(RegistryError::Duplicate(name));
            }
        }
        let info = RegistryInfo {
            openexec_version: env!("CARGO_PKG_VERSION").to_owned(),
            binary: self.binary,
            handlers: handlers.values().map(|h| (*h.info).clone()).collect(),
        };
        let bytes =
            to_canonical_bytes(&info).map_err(|e| RegistryError::NotCanonical(e.to_string()))?;
        Ok(Registry {
            handlers,
            fingerprint: Fingerprint(Hash::sha256(&bytes)),
            info,
        })
    }
}

/// The sealed registry: read-only once built.
pub struct Registry {
    handlers: BTreeMap<String, Handler>,
    fingerprint: Fingerprint,
    info: RegistryInfo,
}

impl Registry {
    /// A builder for the binary `name` at `version` (the operator's own,
    /// e.g. `env!("CARGO_PKG_NAME")`, `env!("CARGO_PKG_VERSION")`).
    #[must_use]
    pub fn builder(name: &str, version: &str) -> RegistryBuilder {
        RegistryBuilder {
            binary: Binary {
                name: name.to_owned(),
                version: version.to_owned(),
            },
            handlers: Vec::new(),
        }
    }

    /// The `openexec` binary's registry: the built-in demo actions.
    pub fn builtin() -> Result<Self, RegistryError> {
        Self::builder("openexec", env!("CARGO_PKG_VERSION"))
            .with_builtins()
            .build()
    }

    /// The handler for `action`.
    #[must_use]
    pub fn get(&self, action: &str) -> Option<&Handler> {
        self.handlers.get(action)
    }

    /// Registered action names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.handlers.keys().map(String::as_str)
    }

    /// The fingerprint every entry records.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The description the fingerprint hashes.
    #[must_use]
    pub fn info(&self) -> &RegistryInfo {
        &self.info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use schemars::JsonSchema;

    struct Named<const N: usize>;

    #[derive(serde::Deserialize, JsonSchema)]
    struct Empty {}

    /// A test action that differs from the others by name and class only.
    macro_rules! named {
        ($n:literal, $name:literal, $effects:expr) => {
            impl Action for Named<$n> {
                const NAME: &'static str = $name;
                const EFFECTS: Effects = $effects;
                type Payload = Empty;
                type Output = u8;
                async fn run(&self, _: Context, _: Empty) -> Result<u8, ActionError> {
                    Ok($n)
                }
            }
        };
    }

    named!(0, "same", Effects::None);
    named!(1, "same", Effects::AtMostOnce);
    named!(2, "bad name", Effects::None);

    #[test]
    fn names_are_unique_and_well_formed() {
        let twice = Registry::builder("t", "1")
            .register(Named::<0>)
            .register(Named::<1>)
            .build();
        assert_eq!(twice.err(), Some(RegistryError::Duplicate("same".into())));
        let bad = Registry::builder("t", "1").register(Named::<2>).build();
        assert_eq!(
            bad.err(),
            Some(RegistryError::InvalidName("bad name".into()))
        );
    }

    #[test]
    fn the_fingerprint_covers_effects_binary_and_handlers() {
        let fp = |r: Result<Registry, RegistryError>| r.map(|r| r.fingerprint());
        let a = fp(Registry::builder("t", "1").register(Named::<0>).build());
        assert_eq!(
            a,
            fp(Registry::builder("t", "1").register(Named::<0>).build())
        );
        assert_ne!(
            a,
            fp(Registry::builder("t", "1").register(Named::<1>).build())
        );
        assert_ne!(
            a,
            fp(Registry::builder("t", "2").register(Named::<0>).build())
        );
        assert_ne!(a, fp(Registry::builder("t", "1").build()));
    }

    #[test]
    fn a_payload_is_decoded_once_and_checked_before_the_run() {
        let registry = Registry::builtin().expect("builtins");
        let add = registry.get("add").expect("add");
        assert!(add.check(&serde_json::json!({"a": "x"})).is_err());
        assert!(add.check(&serde_json::json!({"a": 1, "b": 2.5})).is_ok());
        assert_eq!(
            registry.names().collect::<Vec<_>>(),
            ["add", "counter", "echo", "sha256"]
        );
    }
}
