//! The sealed registry as MCP tools: one tool per action the caller may
//! run (the service's allow-list and its credential's both apply), in
//! name order, with hints derived from the effects class.

use serde_json::{json, Map, Value};

use super::wire::{Annotations, Tool};
use crate::action::{Effects, HandlerInfo};
use crate::auth::Principal;
use crate::exec::Policy;

/// How long a client may cache `tools/list` and `server/discover`: the
/// registry is sealed for the life of the process.
pub const TTL_MS: u64 = 60 * 60 * 1000;

/// Whether the caller may run `action`: the service's allow-list, then the
/// credential's (as the boundary decides).
#[must_use]
pub fn allowed(policy: &Policy, principal: Option<&Principal>, action: &str) -> bool {
    let by_service = policy
        .allow_list
        .as_ref()
        .is_none_or(|list| list.iter().any(|a| a == action));
    by_service && principal.is_none_or(|p| p.allows_action(action))
}

/// The tools the caller may call, in name order.
pub fn list<'a>(
    handlers: impl Iterator<Item = &'a HandlerInfo>,
    policy: &Policy,
    principal: Option<&Principal>,
) -> Vec<Tool> {
    handlers
        .filter(|h| allowed(policy, principal, &h.name))
        .map(tool)
        .collect()
}

/// One action as a tool.
#[must_use]
pub fn tool(info: &HandlerInfo) -> Tool {
    let read_only = info.effects == Effects::None;
    Tool {
        name: info.name.clone(),
        title: info.title.clone(),
        description: description(info),
        input_schema: object_schema(&info.input_schema),
        output_schema: output_schema(&info.output_schema),
        annotations: Annotations {
            title: info.title.clone(),
            read_only_hint: read_only,
            destructive_hint: !read_only && info.destructive,
            idempotent_hint: info.effects == Effects::IdempotentDownstream,
        },
        meta: json!({
            "dev.openexec/effects": info.effects.as_str(),
            "dev.openexec/deadlineMs": info.deadline_ms,
        }),
    }
}

/// The handler's description, and what a call needs.
fn description(info: &HandlerInfo) -> String {
    let need = if info.effects == Effects::None {
        "A nonce in _meta[\"dev.openexec/nonce\"] is optional (the server mints one)."
    } else {
        "Needs a nonce in _meta[\"dev.openexec/nonce\"]: the call runs at most once per nonce, and a retry with the same nonce replays its outcome."
    };
    if info.description.is_empty() {
        need.to_owned()
    } else {
        format!("{} {need}", info.description)
    }
}

/// MCP requires `type: object` at the root of an input schema; a payload
/// schema that says nothing of its type (any JSON object is accepted)
/// gets it.
fn object_schema(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.entry("type").or_insert_with(|| json!("object"));
    }
    schema
}

/// The schema of `structuredContent`: the `/execute` answer, with the
/// handler's output schema under `result` (its `$defs` moved to the root,
/// where its `$ref`s point).
fn output_schema(handler_output: &Value) -> Value {
    let mut result = handler_output.clone();
    let mut defs = Value::Null;
    if let Value::Object(map) = &mut result {
        map.remove("$schema");
        defs = map.remove("$defs").unwrap_or(Value::Null);
    }
    let mut schema = json!({
        "type": "object",
        "properties": {
            "exec_id": {"type": "string"},
            "action": {"type": "string"},
            "outcome": {"type": "string", "enum": ["executed", "replayed", "failed", "rejected", "interrupted"]},
            "replayed": {"type": "boolean"},
            "approved": {"type": "boolean"},
            "result": result,
            "receipt": {"type": "object"},
            "receipt_hash": {"type": "string"},
        },
        "required": ["exec_id", "action", "outcome", "replayed", "receipt"],
    });
    if let (Value::Object(map), Value::Object(defs)) = (&mut schema, defs) {
        map.insert("$defs".into(), Value::Object(defs));
    }
    schema
}

/// The `_meta` every result carries.
#[must_use]
pub fn server_meta() -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert(
        super::wire::meta::SERVER_INFO.into(),
        serde_json::to_value(super::wire::SERVER_INFO).unwrap_or(Value::Null),
    );
    meta
}
