//! MCP wire shapes (revision 2026-07-28, and the 2025 handshake), as serde
//! types: JSON-RPC envelopes, error codes, `_meta` keys and the results
//! this server sends. Written from the specification's schema; only the
//! fields OpenExec sends or reads.

use serde::Serialize;
use serde_json::{Map, Value};

/// The revision with per-request `_meta` and no session.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Revisions reached through the `initialize` handshake, oldest first.
pub const HANDSHAKE_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

/// `_meta` keys of the specification.
pub mod meta {
    /// The request's protocol revision.
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The server's name and version, on results.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// OpenExec: the nonce of a `tools/call`.
    pub const NONCE: &str = "dev.openexec/nonce";
    /// OpenExec: the approval artifact of a `tools/call`.
    pub const APPROVAL: &str = "dev.openexec/approval";
    /// OpenExec: the HTTP status `/execute` answers the same attempt with.
    pub const STATUS: &str = "dev.openexec/status";
    /// OpenExec: what an approval must name (on `input_required`).
    pub const REQUEST: &str = "dev.openexec/request";
}

/// HTTP headers of the streamable HTTP transport.
pub mod header {
    /// The request's protocol revision.
    pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
    /// The JSON-RPC method.
    pub const METHOD: &str = "mcp-method";
    /// The tool name of a `tools/call`.
    pub const NAME: &str = "mcp-name";
}

/// A JSON-RPC error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub i64);

impl Code {
    /// The body is not JSON.
    pub const PARSE_ERROR: Self = Self(-32700);
    /// Not a JSON-RPC request.
    pub const INVALID_REQUEST: Self = Self(-32600);
    /// No such method.
    pub const METHOD_NOT_FOUND: Self = Self(-32601);
    /// Bad parameters, or an unknown tool.
    pub const INVALID_PARAMS: Self = Self(-32602);
    /// The server failed.
    pub const INTERNAL: Self = Self(-32603);
    /// OpenExec: refused by a rate limit (not recorded).
    pub const RATE_LIMITED: Self = Self(-32000);
    /// A routing header disagrees with the body.
    pub const HEADER_MISMATCH: Self = Self(-32020);
    /// A protocol revision this server does not speak.
    pub const UNSUPPORTED_VERSION: Self = Self(-32022);

    /// The HTTP status of an answer carrying this error.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self.0 {
            -32601 => 404,
            -32000 => 429,
            -32603 => 503,
            _ => 400,
        }
    }
}

/// A JSON-RPC error: code, message, optional data.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The code.
    pub code: Code,
    /// For people.
    pub message: String,
    /// For programs.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error with `data`.
    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Invalid parameters.
    pub fn params(message: impl Into<String>) -> Self {
        Self::new(Code::INVALID_PARAMS, message)
    }

    /// A routing header that disagrees with the body.
    pub fn mismatch(message: impl Into<String>) -> Self {
        Self::new(Code::HEADER_MISMATCH, message)
    }
}

/// The response envelope of a request `id` answered with `result`.
#[must_use]
pub fn success(id: &Value, result: Value) -> Value {
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// The response envelope of a request `id` (null when unknown) answered
/// with an error.
#[must_use]
pub fn failure(id: &Value, e: &RpcError) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), Value::from(e.code.0));
    error.insert("message".into(), Value::from(e.message.clone()));
    if let Some(data) = &e.data {
        error.insert("data".into(), data.clone());
    }
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

/// `Implementation`: who answers.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// `openexec`.
    pub name: &'static str,
    /// The service's version.
    pub version: &'static str,
}

/// The server's single identity.
pub const SERVER_INFO: ServerInfo = ServerInfo {
    name: "openexec",
    version: env!("CARGO_PKG_VERSION"),
};

/// `ToolAnnotations`: hints derived from the effects class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    /// The handler's title.
    pub title: String,
    /// Effects `none`.
    pub read_only_hint: bool,
    /// As the handler declares; false when read-only.
    pub destructive_hint: bool,
    /// Effects `idempotent-downstream`.
    pub idempotent_hint: bool,
}

/// `Tool`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The action's name.
    pub name: String,
    /// Its title.
    pub title: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of the arguments (the handler's payload).
    pub input_schema: Value,
    /// JSON Schema of `structuredContent` (the `/execute` answer, the
    /// handler's output under `result`).
    pub output_schema: Value,
    /// Hints.
    pub annotations: Annotations,
    /// `dev.openexec/effects` and `dev.openexec/deadlineMs`.
    #[serde(rename = "_meta")]
    pub meta: Value,
}

/// The answer to a `tools/call` that got as far as the boundary.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// `complete`.
    pub result_type: &'static str,
    /// One text block with the JSON of `structured_content`.
    pub content: Vec<Value>,
    /// The `/execute` answer, receipt included.
    pub structured_content: Value,
    /// A rejected or failed attempt (or the replay of a failed one).
    pub is_error: bool,
    /// Server info and the attempt's HTTP status.
    #[serde(rename = "_meta")]
    pub meta: Value,
}
