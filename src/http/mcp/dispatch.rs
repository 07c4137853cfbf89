//! One JSON-RPC message: envelope, routing headers against the body, then
//! the method.

use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::call::{self, Caller};
use super::tools::{self, TTL_MS};
use super::wire::{self, header, meta, Code, RpcError, HANDSHAKE_VERSIONS, MODERN_VERSION};
use crate::exec::Boundary;

/// What a POST is answered with.
#[derive(Debug)]
pub enum Reply {
    /// A response envelope, with its HTTP status.
    Message(u16, Value),
    /// A notification: `202`, no body.
    Accepted,
}

impl Reply {
    fn error(id: &Value, e: &RpcError) -> Self {
        Self::Message(e.code.http_status(), wire::failure(id, e))
    }
}

/// A parsed request.
struct Request {
    id: Option<Value>,
    method: String,
    params: Map<String, Value>,
}

/// Answers one message.
pub async fn handle(
    boundary: &Arc<Boundary>,
    caller: &Caller,
    headers: &HeaderMap,
    message: Value,
) -> Reply {
    let request = match envelope(message) {
        Ok(r) => r,
        Err(e) => return Reply::error(&Value::Null, &e),
    };
    let Some(id) = request.id.clone() else {
        // Notifications (`notifications/initialized`, ...) change nothing
        // on a server without sessions.
        return Reply::Accepted;
    };
    if let Err(e) = check_headers(headers, &request) {
        return Reply::error(&id, &e);
    }
    match method(boundary, caller, &request).await {
        Ok(result) => Reply::Message(200, wire::success(&id, result)),
        Err(e) => Reply::error(&id, &e),
    }
}

fn envelope(message: Value) -> Result<Request, RpcError> {
    let Value::Object(mut map) = message else {
        return Err(RpcError::new(
            Code::INVALID_REQUEST,
            "Expected one JSON-RPC message object (batches are not supported)",
        ));
    };
    if map.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(RpcError::new(
            Code::INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
        ));
    }
    let id = match map.remove("id") {
        None => None,
        Some(v @ (Value::String(_) | Value::Number(_))) => Some(v),
        Some(_) => {
            return Err(RpcError::new(
                Code::INVALID_REQUEST,
                "id must be a string or a number",
            ))
        }
    };
    let method = match map.remove("method") {
        Some(Value::String(m)) => m,
        _ => {
            return Err(RpcError::new(
                Code::INVALID_REQUEST,
                "method must be a string",
            ))
        }
    };
    let params = match map.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => return Err(RpcError::params("params must be an object")),
    };
    Ok(Request { id, method, params })
}

/// The routing headers against the body. A request whose `_meta` names
/// a protocol revision (2026-07-28 clients) must carry
/// `MCP-Protocol-Version` and `Mcp-Method` equal to the body's, and
/// `Mcp-Name` equal to a `tools/call`'s tool; a request without (2025
/// clients, which send neither `_meta` revision nor `Mcp-Method`) is held
/// only to the headers it sends.
/// Whether the request carries a revision in `_meta` (2026-07-28).
fn modern(request: &Request) -> bool {
    request
        .params
        .get("_meta")
        .and_then(|m| m.get(meta::PROTOCOL_VERSION))
        .is_some()
}

fn check_headers(headers: &HeaderMap, request: &Request) -> Result<(), RpcError> {
    for name in [header::PROTOCOL_VERSION, header::METHOD, header::NAME] {
        if headers.get_all(name).count() > 1 {
            return Err(RpcError::mismatch(format!("{name} is sent more than once")));
        }
    }
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let version_header = text(header::PROTOCOL_VERSION);
    let version_meta = request
        .params
        .get("_meta")
        .and_then(|m| m.get(meta::PROTOCOL_VERSION));
    let modern = version_meta.is_some();
    match (version_meta, version_header) {
        (Some(v), Some(h)) if v == h => {}
        (Some(_), _) => {
            return Err(RpcError::mismatch(
                "MCP-Protocol-Version does not match _meta[\"io.modelcontextprotocol/protocolVersion\"]",
            ))
        }
        (None, Some(MODERN_VERSION)) if request.method != "initialize" => {
            return Err(RpcError::mismatch(
                "MCP-Protocol-Version names 2026-07-28, whose requests carry their revision in _meta",
            ))
        }
        (None, Some(h)) if h != MODERN_VERSION && !HANDSHAKE_VERSIONS.contains(&h) => {
            return Err(unsupported(&Value::from(h)));
        }
        (None, _) => {}
    }
    let method = text(header::METHOD);
    if (modern || method.is_some()) && method != Some(request.method.as_str()) {
        return Err(RpcError::mismatch(
            "Mcp-Method does not match the request's method",
        ));
    }
    if request.method == "tools/call" {
        let name = text(header::NAME).map(decode_header_value);
        let body = request.params.get("name").and_then(Value::as_str);
        if (modern || name.is_some()) && body.is_some() && name.flatten().as_deref() != body {
            return Err(RpcError::mismatch("Mcp-Name does not match params.name"));
        }
    }
    if let Some(v) = version_meta {
        if v != MODERN_VERSION {
            return Err(unsupported(v));
        }
    }
    Ok(())
}

/// A header value, or the text inside its `=?base64?…?=` wrapping (how
/// clients send values that are not plain printable ASCII); `None` for a
/// wrapping that does not decode.
fn decode_header_value(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        None => Some(value.to_owned()),
        Some(inner) => STANDARD
            .decode(inner)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
    }
}

fn unsupported(requested: &Value) -> RpcError {
    RpcError::new(Code::UNSUPPORTED_VERSION, "Unsupported protocol version")
        .with_data(json!({"supported": [MODERN_VERSION], "requested": requested}))
}

async fn method(boundary: &Arc<Boundary>, caller: &Caller, request: &Request) -> call::Answer {
    match request.method.as_str() {
        "server/discover" => Ok(discover()),
        "initialize" => Ok(initialize(&request.params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(list(boundary, caller)),
        "tools/call" => call::call(boundary, caller, &request.params, modern(request)).await,
        other => Err(RpcError::new(
            Code::METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    }
}

fn capabilities() -> Value {
    json!({ "tools": { "listChanged": false } })
}

const INSTRUCTIONS: &str = "OpenExec runs each tool at most once per nonce and records every call in a verifiable ledger. Send a nonce in _meta[\"dev.openexec/nonce\"] and reuse it when retrying; structuredContent holds the receipt, checkable offline with `openexec verify`.";

fn discover() -> Value {
    let mut versions: Vec<&str> = HANDSHAKE_VERSIONS.to_vec();
    versions.push(MODERN_VERSION);
    json!({
        "resultType": "complete",
        "supportedVersions": versions,
        "capabilities": capabilities(),
        "instructions": INSTRUCTIONS,
        "ttlMs": TTL_MS,
        "cacheScope": "public",
        "_meta": tools::server_meta(),
    })
}

/// The 2025 handshake, answered without a session: the client's revision
/// when this server speaks it, else the newest handshake revision.
fn initialize(params: &Map<String, Value>) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .filter(|v| HANDSHAKE_VERSIONS.contains(v))
        .unwrap_or(HANDSHAKE_VERSIONS[HANDSHAKE_VERSIONS.len() - 1]);
    json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": wire::SERVER_INFO,
        "instructions": INSTRUCTIONS,
    })
}

fn list(boundary: &Boundary, caller: &Caller) -> Value {
    let registry = boundary.registry();
    let tools = tools::list(
        registry.info().handlers.iter(),
        boundary.policy(),
        caller.principal.as_ref(),
    );
    // With credentials, each caller's list is its own.
    let scope = if caller.principal.is_some() {
        "private"
    } else {
        "public"
    };
    json!({
        "resultType": "complete",
        "tools": tools,
        "ttlMs": TTL_MS,
        "cacheScope": scope,
        "_meta": tools::server_meta(),
    })
}
