//! The built-in handlers and the static registry, sealed at start.
//!
//! Handlers are plain functions chosen by name from a table built once;
//! nothing is loaded, evaluated or registered at run time. Each handler has
//! a `check` (pure payload validation, run *before* the nonce is reserved,
//! so a bad payload is a rejection and the nonce stays free for a corrected
//! retry) and a `run` (the action, run at most once per nonce), and says
//! whether `run` has effects beyond its result ([`Effects`]): only a
//! handler without any may be computed before its nonce is won.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::core::canonical::to_canonical_bytes;
use crate::core::hash::Hash;
use crate::store::Store;

/// What a handler may touch.
pub struct HandlerContext<'a> {
    /// The store, for handlers with persistent state (`counter`).
    pub store: &'a Store,
}

/// Validates a payload before anything is reserved.
pub type CheckFn = fn(&Value) -> Result<(), String>;
/// Runs the action; an `Err` is recorded as `failed`.
pub type RunFn = fn(&HandlerContext<'_>, &Value) -> Result<Value, String>;

/// Whether running a handler changes anything besides producing its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effects {
    /// None: the result is a function of the payload, and the handler
    /// touches nothing else. Such a handler may be computed before its
    /// nonce is reserved; if the nonce is not won, the result is thrown
    /// away and nothing happened. Its attempt then needs one durable
    /// writer cycle instead of two ([`crate::ledger::Ledger::reserve_and_append`]).
    None,
    /// Some (state, money, mail): the handler runs only once its nonce's
    /// reservation is durable, and at most once per nonce.
    Some,
}

/// One registered handler.
#[derive(Clone, Copy)]
pub struct Handler {
    /// Payload validation.
    pub check: CheckFn,
    /// The action.
    pub run: RunFn,
    /// What running it changes; a handler that touches anything outside
    /// its result must say [`Effects::Some`].
    pub effects: Effects,
}

/// The sealed registry: built once, read-only afterwards.
pub struct Registry {
    handlers: BTreeMap<&'static str, Handler>,
}

impl Registry {
    /// The built-in demo handlers: `echo`, `add`, `sha256`, `counter`.
    #[must_use]
    pub fn builtin() -> Self {
        let mut handlers = BTreeMap::new();
        handlers.insert(
            "echo",
            Handler {
                check: accept_any,
                run: echo,
                effects: Effects::None,
            },
        );
        handlers.insert(
            "add",
            Handler {
                check: check_add,
                run: add,
                effects: Effects::None,
            },
        );
        handlers.insert(
            "sha256",
            Handler {
                check: accept_any,
                run: sha256,
                effects: Effects::None,
            },
        );
        handlers.insert(
            "counter",
            Handler {
                check: check_counter,
                run: counter,
                effects: Effects::Some,
            },
        );
        Self { handlers }
    }

    /// The handler for `action`.
    #[must_use]
    pub fn get(&self, action: &str) -> Option<Handler> {
        self.handlers.get(action).copied()
    }

    /// Registered action names.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }
}

#[allow(clippy::unnecessary_wraps)]
fn accept_any(_: &Value) -> Result<(), String> {
    Ok(())
}

#[allow(clippy::unnecessary_wraps)]
fn echo(_: &HandlerContext<'_>, payload: &Value) -> Result<Value, String> {
    Ok(json!({ "echo": payload }))
}

/// `a` and `b` must be numbers when present (missing counts as 0).
fn check_add(payload: &Value) -> Result<(), String> {
    for field in ["a", "b"] {
        match payload.get(field) {
            None | Some(Value::Number(_)) => {}
            Some(_) => {
                return Err(format!(
                    "add takes numbers only: '{field}' must be a number"
                ))
            }
        }
    }
    Ok(())
}

fn add(_: &HandlerContext<'_>, payload: &Value) -> Result<Value, String> {
    let num = |f: &str| payload.get(f).cloned().unwrap_or(json!(0));
    let (a, b) = (num("a"), num("b"));
    let sum = match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x
            .checked_add(y)
            .map(Value::from)
            .ok_or("integer overflow")?,
        _ => {
            let (x, y) = (
                a.as_f64().ok_or("a is not a number")?,
                b.as_f64().ok_or("b is not a number")?,
            );
            serde_json::Number::from_f64(x + y)
                .map(Value::Number)
                .ok_or("sum is not finite")?
        }
    };
    Ok(json!({ "sum": sum }))
}

fn sha256(_: &HandlerContext<'_>, payload: &Value) -> Result<Value, String> {
    let bytes = to_canonical_bytes(payload).map_err(|e| e.to_string())?;
    Ok(json!({ "sha256": hex::encode(Hash::sha256(&bytes).as_bytes()) }))
}

/// `{"name": "<1-64 chars>"}`.
fn check_counter(payload: &Value) -> Result<(), String> {
    match payload.get("name").and_then(Value::as_str) {
        Some(name) if (1..=64).contains(&name.len()) => Ok(()),
        _ => Err("counter takes {\"name\": \"<1-64 characters>\"}".into()),
    }
}

fn counter(ctx: &HandlerContext<'_>, payload: &Value) -> Result<Value, String> {
    let name = payload
        .get("name")
        .and_then(Value::as_str)
        .ok_or("missing name")?;
    let value = ctx
        .store
        .increment_counter(name)
        .map_err(|e| e.to_string())?;
    Ok(json!({ "name": name, "value": value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_checks_types() {
        assert!(check_add(&json!({"a": 1, "b": 2.5})).is_ok());
        assert!(check_add(&json!({"a": "x", "b": "y"})).is_err());
        assert!(check_add(&json!({})).is_ok());
    }

    #[test]
    fn counter_checks_name() {
        assert!(check_counter(&json!({"name": "c"})).is_ok());
        assert!(check_counter(&json!({})).is_err());
        assert!(check_counter(&json!({"name": ""})).is_err());
    }
}
