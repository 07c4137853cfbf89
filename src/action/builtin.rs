//! The demo actions of the `openexec` binary, written with the same API
//! as an operator's: `echo`, `add` and `sha256` (no effects) and `counter`
//! (at most once, its counts in OpenExec's store).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::{Action, ActionError, Context, Effects, RegistryBuilder};
use crate::core::canonical::to_canonical_bytes;
use crate::core::hash::Hash;

/// Registers the four demo actions.
pub(super) fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .register(Echo)
        .register(Add)
        .register(Sha256)
        .register(Counter)
}

/// Any JSON object.
type Object = Map<String, Value>;

/// Returns its payload.
struct Echo;

/// `echo`'s result.
#[derive(Serialize, JsonSchema)]
struct Echoed {
    /// The payload as received.
    echo: Object,
}

impl Action for Echo {
    const INLINE: bool = true;
    const NAME: &'static str = "echo";
    const EFFECTS: Effects = Effects::None;
    const DESCRIPTION: &'static str = "Returns its payload.";
    type Payload = Object;
    type Output = Echoed;

    async fn run(&self, _: Context, payload: Object) -> Result<Echoed, ActionError> {
        Ok(Echoed { echo: payload })
    }
}

/// Adds two numbers.
struct Add;

/// `add`'s payload: a missing (or null) operand counts as 0.
#[derive(Deserialize, JsonSchema)]
struct Operands {
    /// First operand.
    a: Option<Number>,
    /// Second operand.
    b: Option<Number>,
}

/// `add`'s result.
#[derive(Serialize, JsonSchema)]
struct Sum {
    /// `a + b`: an integer when both are integers (refused on overflow),
    /// else a double.
    sum: Number,
}

impl Action for Add {
    const INLINE: bool = true;
    const NAME: &'static str = "add";
    const EFFECTS: Effects = Effects::None;
    const DESCRIPTION: &'static str = "Adds two numbers a and b.";
    type Payload = Operands;
    type Output = Sum;

    async fn run(&self, _: Context, p: Operands) -> Result<Sum, ActionError> {
        let zero = Number::from(0);
        let (a, b) = (p.a.unwrap_or_else(|| zero.clone()), p.b.unwrap_or(zero));
        let sum = match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => Number::from(x.checked_add(y).ok_or("integer overflow")?),
            _ => {
                let (x, y) = (
                    a.as_f64().ok_or("a is not a number")?,
                    b.as_f64().ok_or("b is not a number")?,
                );
                Number::from_f64(x + y).ok_or("sum is not finite")?
            }
        };
        Ok(Sum { sum })
    }
}

/// Hashes its payload.
struct Sha256;

/// `sha256`'s result.
#[derive(Serialize, JsonSchema)]
struct Digest {
    /// Lowercase hex SHA-256 of the payload's RFC 8785 bytes.
    sha256: String,
}

impl Action for Sha256 {
    const INLINE: bool = true;
    const NAME: &'static str = "sha256";
    const EFFECTS: Effects = Effects::None;
    const DESCRIPTION: &'static str = "SHA-256 of the payload's RFC 8785 (JCS) bytes.";
    type Payload = Object;
    type Output = Digest;

    async fn run(&self, _: Context, payload: Object) -> Result<Digest, ActionError> {
        let bytes = to_canonical_bytes(&payload).map_err(|e| e.to_string())?;
        Ok(Digest {
            sha256: hex::encode(Hash::sha256(&bytes).as_bytes()),
        })
    }
}

/// Adds one to a named counter: an action with effects, at most once.
struct Counter;

/// `counter`'s payload.
#[derive(Deserialize, JsonSchema)]
struct CounterName {
    /// The counter's name, 1-64 bytes.
    name: String,
}

/// `counter`'s result.
#[derive(Serialize, JsonSchema)]
struct CounterValue {
    /// The counter's name.
    name: String,
    /// Its value after this increment.
    value: u64,
}

impl Action for Counter {
    // An increment touches only memory (see `Counters`): it never blocks.
    const INLINE: bool = true;
    const NAME: &'static str = "counter";
    const EFFECTS: Effects = Effects::AtMostOnce;
    const DESCRIPTION: &'static str =
        "Adds one to the named counter and returns its new value; runs at most once per nonce.";
    type Payload = CounterName;
    type Output = CounterValue;

    fn check(&self, p: &CounterName) -> Result<(), String> {
        if (1..=64).contains(&p.name.len()) {
            Ok(())
        } else {
            Err("counter takes {\"name\": \"<1-64 characters>\"}".into())
        }
    }

    async fn run(&self, ctx: Context, p: CounterName) -> Result<CounterValue, ActionError> {
        let value = ctx.counters().increment(&p.name)?;
        Ok(CounterValue {
            name: p.name,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check<A: Action>(action: &A, payload: Value) -> Result<(), String> {
        let decoded = A::Payload::deserialize(&payload).map_err(|e| e.to_string())?;
        action.check(&decoded)
    }

    #[test]
    fn add_takes_numbers_only() {
        assert!(check(&Add, json!({"a": 1, "b": 2.5})).is_ok());
        assert!(check(&Add, json!({"a": "x", "b": "y"})).is_err());
        assert!(check(&Add, json!({})).is_ok());
    }

    #[test]
    fn counter_names_are_1_to_64_bytes() {
        assert!(check(&Counter, json!({"name": "c"})).is_ok());
        assert!(check(&Counter, json!({})).is_err());
        assert!(check(&Counter, json!({"name": ""})).is_err());
        assert!(check(&Counter, json!({"name": "x".repeat(65)})).is_err());
    }
}
