//! `tools/call`: the same attempt as `POST /execute`, its nonce and
//! approval taken from `_meta`, its approval asked for with an
//! `input_required` answer in clawshield mode.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::state::{self, Round};
use super::tools::{allowed, server_meta};
use super::wire::{meta, CallToolResult, Code, RpcError};
use crate::action::Effects;
use crate::auth::Principal;
use crate::core::canonical::request_hash;
use crate::core::request::parse_execute;
use crate::exec::{Boundary, Mode, Rejection, Response};

/// The elicitation key of the approval request, and its form field.
const APPROVAL_INPUT: &str = "approval";
const APPROVAL_FIELD: &str = "approval_artifact";

/// Who calls, from where.
pub struct Caller {
    /// The authenticated principal, if any.
    pub principal: Option<Principal>,
    /// The peer address (rate limits of callers without a principal).
    pub address: Option<IpAddr>,
}

/// What `tools/call` answers: a result, or a JSON-RPC error.
pub type Answer = Result<Value, RpcError>;

/// The parts of a `tools/call` that the boundary needs.
struct Call {
    name: String,
    arguments: Value,
    nonce: Option<String>,
    approval: Option<Value>,
    /// The sealed round of an earlier `input_required`, opened.
    round: Option<Round>,
    /// Whether the client answered an earlier `input_required`.
    answered: bool,
}

/// Runs one `tools/call`. Only a 2026-07-28 request (`modern`) is asked
/// for a missing approval with `input_required`, which 2025 clients do not
/// know: theirs runs without one (recorded `approval_missing`, whose
/// detail says where the artifact goes).
pub async fn call(
    boundary: &Arc<Boundary>,
    caller: &Caller,
    params: &Map<String, Value>,
    modern: bool,
) -> Answer {
    let call = parse(params)?;
    let handler = boundary.registry().get(&call.name).cloned();
    let policy = boundary.policy();
    let permitted = allowed(policy, caller.principal.as_ref(), &call.name);
    let nonce = match (&call.nonce, &call.round) {
        (Some(n), Some(r)) if *n != r.nonce => {
            return Err(RpcError::params(
                "_meta[\"dev.openexec/nonce\"] differs from the nonce of requestState",
            ))
        }
        (Some(n), _) => Some(n.clone()),
        (None, Some(r)) => Some(r.nonce.clone()),
        (None, None) => None,
    };
    let needs_nonce = handler
        .as_ref()
        .is_some_and(|h| h.effects() != Effects::None);
    let (nonce, preset) = match nonce {
        Some(n) => (n, None),
        None if needs_nonce && permitted => (minted(), Some(nonce_required())),
        None => (minted(), None),
    };
    let body = execute_body(&call, &nonce)?;
    let asks_approval = modern
        && policy.mode == Mode::Clawshield
        && handler.is_some()
        && permitted
        && preset.is_none()
        && call.approval.is_none()
        && !call.answered;
    if asks_approval || call.round.is_some() {
        let round = bind_round(boundary, caller, &body, call.round.as_ref())?;
        if asks_approval {
            return Ok(input_required(&round));
        }
    }
    let response = run(boundary, caller, body, preset).await?;
    answer(response, handler.is_some())
}

fn parse(params: &Map<String, Value>) -> Result<Call, RpcError> {
    let name = match params.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(RpcError::params("params.name must be a string")),
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(RpcError::params("params.arguments must be an object")),
    };
    let meta = match params.get("_meta") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(RpcError::params("params._meta must be an object")),
    };
    let nonce = match meta.get(meta::NONCE) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(RpcError::params(
                "_meta[\"dev.openexec/nonce\"] must be a string",
            ))
        }
    };
    let mut approval = artifact(meta.get(meta::APPROVAL), "_meta[\"dev.openexec/approval\"]")?;
    let answered = params.get("inputResponses").is_some_and(|v| !v.is_null());
    if approval.is_none() {
        approval = from_input_responses(params.get("inputResponses"))?;
    }
    let round = match params.get("requestState") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            state::open(s, chrono::Utc::now().timestamp())
                .map_err(|e| RpcError::params(e.to_string()))?,
        ),
        Some(_) => return Err(RpcError::params("params.requestState must be a string")),
    };
    Ok(Call {
        name,
        arguments,
        nonce,
        approval,
        round,
        answered,
    })
}

/// An approval artifact: an object, or a string holding one (form fields
/// are strings).
fn artifact(value: Option<&Value>, what: &str) -> Result<Option<Value>, RpcError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            _ => Err(RpcError::params(format!(
                "{what} must be an approval artifact: a JSON object, or a string holding one"
            ))),
        },
        Some(_) => Err(RpcError::params(format!("{what} must be an object"))),
    }
}

/// The artifact a client's elicitation answer carries: none when it
/// declined or cancelled (the attempt is then recorded without one).
fn from_input_responses(responses: Option<&Value>) -> Result<Option<Value>, RpcError> {
    let Some(response) = responses.and_then(|r| r.get(APPROVAL_INPUT)) else {
        return Ok(None);
    };
    if response.get("action").and_then(Value::as_str) != Some("accept") {
        return Ok(None);
    }
    artifact(
        response.get("content").and_then(|c| c.get(APPROVAL_FIELD)),
        "inputResponses.approval.content.approval_artifact",
    )
}

/// A nonce for a call without one.
fn minted() -> String {
    format!("mcp-{}", uuid::Uuid::new_v4())
}

fn nonce_required() -> Rejection {
    Rejection {
        status: 422,
        code: "nonce_required",
        detail: "This tool has effects: send a nonce in _meta[\"dev.openexec/nonce\"], and the same nonce when retrying the call".into(),
    }
}

/// The `/execute` body of the call.
fn execute_body(call: &Call, nonce: &str) -> Result<Vec<u8>, RpcError> {
    let mut body = json!({ "action": call.name, "payload": call.arguments, "nonce": nonce });
    if let (Value::Object(map), Some(a)) = (&mut body, &call.approval) {
        map.insert("approval_artifact".into(), a.clone());
    }
    serde_json::to_vec(&body).map_err(|e| RpcError::params(e.to_string()))
}

/// The round this call is: what an approval must bind. A call that
/// repeats a sealed round must be the call that round was sealed for.
fn bind_round(
    boundary: &Boundary,
    caller: &Caller,
    body: &[u8],
    sealed: Option<&Round>,
) -> Result<Round, RpcError> {
    let request = parse_execute(body, &boundary.policy().limits)
        .map_err(|e| RpcError::params(e.detail.clone()).with_data(json!({"code": e.code})))?;
    let tenant = match (sealed, &caller.principal) {
        (Some(r), _) => r.tenant.clone(),
        (None, Some(p)) => p.tenant.clone(),
        (None, None) => boundary
            .policy()
            .approvals
            .tenant
            .clone()
            .unwrap_or_default(),
    };
    let hash = request_hash(&request.action, &request.payload, &request.nonce, &tenant)
        .map_err(|e| RpcError::params(e.to_string()))?
        .to_base64();
    let round = Round {
        action: request.action.as_str().to_owned(),
        request_hash: hash,
        nonce: request.nonce.as_str().to_owned(),
        tenant,
        expires: chrono::Utc::now().timestamp() + state::LIFETIME_SECS,
    };
    match sealed {
        Some(r) if r.action != round.action || r.request_hash != round.request_hash => Err(
            RpcError::params("This call differs from the one requestState was issued for"),
        ),
        _ => Ok(round),
    }
}

/// The `input_required` answer asking for an approval of `round`.
fn input_required(round: &Round) -> Value {
    let message = format!(
        "Approval needed to run {} — an OpenExec v2 approval artifact (JSON) for action {}, request hash {}, nonce {}, tenant {:?}",
        round.action, round.action, round.request_hash, round.nonce, round.tenant
    );
    let mut result_meta = server_meta();
    result_meta.insert(
        meta::REQUEST.into(),
        json!({"action": round.action, "request_hash": round.request_hash, "nonce": round.nonce, "tenant": round.tenant}),
    );
    json!({
        "resultType": "input_required",
        "inputRequests": {
            APPROVAL_INPUT: {
                "method": "elicitation/create",
                "params": {
                    "mode": "form",
                    "message": message,
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            APPROVAL_FIELD: {
                                "type": "string",
                                "title": "Approval artifact",
                                "description": "The JSON text of an OpenExec v2 approval of this exact request (openexec approve)",
                            }
                        },
                        "required": [APPROVAL_FIELD],
                    },
                },
            }
        },
        "requestState": state::seal(round),
        "_meta": result_meta,
    })
}

/// The attempt, run to its entry in a task of its own (as `/execute`
/// does: a client that disconnects never cuts an attempt half-way).
async fn run(
    boundary: &Arc<Boundary>,
    caller: &Caller,
    body: Vec<u8>,
    preset: Option<Rejection>,
) -> Result<Response, RpcError> {
    let boundary = Arc::clone(boundary);
    let principal = caller.principal.clone();
    let address = caller.address;
    actix_web::rt::spawn(tracing::Instrument::instrument(
        async move {
            boundary
                .execute_or_reject(&body, address, principal.as_ref(), preset)
                .await
        },
        crate::instruments::current_span(),
    ))
    .await
    .inspect(super::super::timing::note_outcome)
    .map_err(|_| RpcError::new(Code::INTERNAL, "Internal error while handling this attempt"))
}

/// The boundary's answer as a tool result (recorded attempts), or as a
/// JSON-RPC error (an unknown tool, recorded; refusals before recording).
fn answer(response: Response, known_tool: bool) -> Answer {
    let recorded = response.body.get("outcome").is_some();
    if !recorded {
        let code = match response.status {
            429 => Code::RATE_LIMITED,
            500..=599 => Code::INTERNAL,
            _ => Code::INVALID_PARAMS,
        };
        let detail = response
            .body
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("Refused");
        let mut data = response.body.clone();
        if let (Value::Object(map), Some(secs)) = (&mut data, response.retry_after) {
            map.insert("retry_after".into(), json!(secs));
        }
        return Err(RpcError::new(code, detail).with_data(data));
    }
    if !known_tool {
        let detail = response
            .body
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("Unknown tool");
        return Err(RpcError::params(detail.to_owned()).with_data(response.body));
    }
    let outcome = response.body.get("outcome").and_then(Value::as_str);
    let is_error =
        matches!(outcome, Some("rejected" | "failed" | "interrupted")) || response.status != 200;
    let mut result_meta = server_meta();
    result_meta.insert(meta::STATUS.into(), json!(response.status));
    let result = CallToolResult {
        result_type: "complete",
        content: vec![json!({"type": "text", "text": response.body.to_string()})],
        structured_content: response.body,
        is_error,
        meta: Value::Object(result_meta),
    };
    serde_json::to_value(result).map_err(|e| RpcError::new(Code::INTERNAL, e.to_string()))
}
