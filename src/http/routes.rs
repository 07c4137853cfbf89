//! Route handlers. Each is a few lines: extract, call, serialize.

use actix_web::http::header::{self, ContentType};
use actix_web::middleware::{from_fn, Compress, Condition};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{json, Value};

use utoipa::{IntoParams, OpenApi as _};

use super::access::{self, Access};
use super::openapi::{
    ApiDoc, ConsistencyResponse, CosignaturesResponse, EntriesResponse, EntryResponse, ErrorBody,
    ExecuteBody, ExecuteResponse, HandlersResponse, HealthResponse, InclusionResponse,
    ReadyResponse, ReceiptDoc, RootResponse, VerifyBody, VerifyResponse, VersionResponse,
};
use super::{ApiError, AppState};
use crate::auth::{Principal, Role};
use crate::core::pyjson::{dumps_sorted, Separators};
use crate::core::receipt::{verify_receipt, Content, Receipt};
use crate::exec::{legacy_receipt_hash_of_text, Mode};

const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Most entries one `GET /ledger/entries` returns.
const MAX_ENTRIES_PAGE: u64 = 1000;

/// Every route: path, method and who may call it when authentication is
/// on ([`Access`]); docs/API.md's route table is this one. `configure`
/// pairs each row with its handler, in this order.
pub const ROUTES: [(&str, &str, Access); 23] = [
    ("/", "GET", Access::Public),
    ("/health", "GET", Access::Public),
    ("/ready", "GET", Access::Public),
    ("/version", "GET", Access::Public),
    ("/handlers", "GET", Access::Public),
    ("/metrics", "GET", Access::AuditorOrAdmin),
    ("/openapi.json", "GET", Access::Public),
    ("/execute", "POST", Access::Agent),
    ("/mcp", "POST", Access::Agent),
    ("/receipts/verify", "POST", Access::Public),
    ("/receipts/{exec_id}", "GET", Access::OwnerOrAuditor),
    ("/ledger/checkpoint", "GET", Access::Public),
    ("/ledger/cosignatures", "POST", Access::Public),
    ("/ledger/key", "GET", Access::Public),
    ("/ledger/entries", "GET", Access::Public),
    ("/ledger/entries/{index}", "GET", Access::Public),
    ("/ledger/proof/inclusion", "GET", Access::Public),
    ("/ledger/proof/consistency", "GET", Access::Public),
    ("/ui", "GET", Access::Public),
    ("/ui/{asset}", "GET", Access::Public),
    // C2SP tlog-tiles: the same data as `/ledger/…`, so the same access.
    // The bundles' row comes first: routes match in this order, and
    // `/tile/{level}/…` would take `entries` for a level.
    ("/checkpoint", "GET", Access::Public),
    ("/tile/entries/{index}*", "GET", Access::Public),
    ("/tile/{level}/{index}*", "GET", Access::Public),
];

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|e, _| ApiError::bad_query(e.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default().error_handler(|e, _| ApiError::bad_query(e.to_string()).into()),
    )
    .app_data(
        // JSON bodies other than /execute (which reads its own): receipts
        // are a few KiB; refuse anything larger than an /execute body.
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|e, _| ApiError::new(422, "invalid_json", e.to_string()).into()),
    );
    let handlers = [
        web::get().to(root),
        web::get().to(health),
        web::get().to(ready),
        web::get().to(version),
        web::get().to(handlers),
        web::get().to(metrics),
        web::get().to(openapi),
        web::post().to(execute),
        web::post().to(mcp),
        web::post().to(verify),
        web::get().to(receipt),
        web::get().to(checkpoint),
        web::post().to(cosignatures),
        web::get().to(key),
        web::get().to(entries),
        web::get().to(entry),
        web::get().to(inclusion),
        web::get().to(consistency),
        web::get().to(super::ui::page),
        web::get().to(super::ui::asset),
        web::get().to(super::tiles::checkpoint),
        web::get().to(super::tiles::entry_bundle),
        web::get().to(super::tiles::hash_tile),
    ];
    for (index, ((path, method, access), route)) in ROUTES.into_iter().zip(handlers).enumerate() {
        // A known path with another method is a JSON 405 naming the allowed
        // method (RFC 9110 requires `Allow`), not an empty one.
        cfg.service(
            web::resource(path)
                .route(route)
                .default_service(web::to(move || async move {
                    let body = json!({ "detail": "Method not allowed on this path", "code": "method_not_allowed" });
                    let mut answer = HttpResponse::MethodNotAllowed();
                    answer.insert_header((header::ALLOW, method));
                    if path.starts_with("/ui") {
                        for h in super::ui::secure_headers() {
                            answer.insert_header(h);
                        }
                    }
                    answer.json(body)
                }))
                .wrap(from_fn(move |req, next| access::authorize(access, req, next)))
                // Entry bundles are compressed when the client asks
                // (`Accept-Encoding`), as tlog-tiles recommends (JSON text:
                // a third of the bytes); hash tiles are random bytes, which
                // compression only grows.
                .wrap(Condition::new(
                    path.starts_with("/tile/entries/"),
                    Compress::default(),
                ))
                .wrap_fn(move |req, srv| super::timing::route(index, req, srv)),
        );
    }
    cfg.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::new(404, "not_found", "No such route"))
    }));
}

#[utoipa::path(get, path = "/", responses((status = 200, description = "Service banner", body = RootResponse)))]
pub(super) async fn root() -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({ "service": "OpenExec", "status": "running", "version": SERVICE_VERSION }))
}

#[utoipa::path(get, path = "/health", responses((status = 200, description = "Mode, restriction and ledger head", body = HealthResponse)))]
pub(super) async fn health(state: web::Data<AppState>) -> HttpResponse {
    let policy = state.boundary.policy();
    let ledger = state.boundary.ledger();
    let head = ledger.head();
    let mut body = json!({
        "status": "healthy",
        "exec_mode": policy.mode.as_str(),
        "signature_verification": if policy.mode == Mode::Clawshield { "enabled" } else { "disabled" },
        "restriction": if policy.allow_list.is_some() { "restricted" } else { "open" },
        "ledger": { "size": head.size, "root": head.root.to_base64(), "origin": ledger.verifier().name() },
        "checkpoint": ledger.latest_checkpoint(),
    });
    if let Value::Object(map) = &mut body {
        match &policy.allow_list {
            Some(list) => {
                map.insert("allow_list".into(), json!(list));
            }
            None => {
                map.insert(
                    "warning".into(),
                    json!("No execution allow-list configured"),
                );
            }
        }
    }
    HttpResponse::Ok().json(body)
}

#[utoipa::path(get, path = "/ready", responses((status = 200, description = "Store readable", body = ReadyResponse), (status = 503, description = "Writer stopped after a storage failure, store files found damaged, or store not readable", body = ErrorBody)))]
pub(super) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ledger = state.boundary.ledger();
    if !ledger.is_writable() {
        return Err(ApiError::new(
            503,
            "not_ready",
            "The ledger writer has stopped",
        ));
    }
    if let Some(damage) = ledger.damage() {
        return Err(ApiError::new(
            503,
            "ledger_damaged",
            format!("The ledger's files are damaged ({damage}); stop the service and run openexec audit"),
        ));
    }
    if ledger.readable() {
        Ok(HttpResponse::Ok().json(json!({ "ready": true })))
    } else {
        Err(ApiError::new(503, "not_ready", "The store is not readable"))
    }
}

#[utoipa::path(get, path = "/version", responses((status = 200, description = "Version and server time", body = VersionResponse)))]
pub(super) async fn version() -> HttpResponse {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    HttpResponse::Ok().json(json!({ "version": SERVICE_VERSION, "timestamp": now }))
}

#[utoipa::path(get, path = "/handlers", responses((status = 200, description = "The sealed handler registry: its fingerprint, and each action's effects class, deadline and JSON Schemas", body = HandlersResponse)))]
pub(super) async fn handlers(state: web::Data<AppState>) -> HttpResponse {
    let registry = state.boundary.registry();
    let mut body = serde_json::to_value(registry.info()).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        map.insert(
            "fingerprint".into(),
            json!(registry.fingerprint().to_string()),
        );
    }
    HttpResponse::Ok().json(body)
}

#[utoipa::path(get, path = "/metrics", security(("bearer" = [])), responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"), (status = 401, description = "Authentication is on, and no valid credentials were given (one body whatever the reason)", body = ErrorBody), (status = 403, description = "Authentication is on, and the credentials' role is not auditor or admin", body = ErrorBody)))]
pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = state.boundary.metrics_text();
    text.push_str(&state.refusals.render());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

/// Reads the body within the configured limit (413 past it, or at once
/// when `Content-Length` announces more) and time (408 past
/// [`super::REQUEST_BODY_TIMEOUT`]), and requires a JSON content type when
/// one is given (415 otherwise; a missing one is accepted as JSON).
#[utoipa::path(post, path = "/execute", request_body = ExecuteBody, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "The nonce, for a body without one (a bare value, or a structured-field string in double quotes); with a body nonce it must be equal (else 422 idempotency_key_mismatch)")),
    responses(
    (status = 200, description = "Executed, or a replay of an execution", body = ExecuteResponse, headers(("Idempotent-Replayed" = String, description = "`true` on a replay of a recorded attempt"))),
    (status = 400, description = "Unknown action or invalid payload (recorded)", body = ExecuteResponse),
    (status = 401, description = "Authentication is on, and no valid credentials were given (not recorded; one body whatever the reason)", body = ErrorBody),
    (status = 403, description = "Not allowed (the service's or the credential's allow-list) or approval refused (recorded); or, authentication on, a role other than agent (code forbidden, not recorded)", body = ExecuteResponse),
    (status = 408, description = "Body not received in time (not recorded)", body = ErrorBody),
    (status = 409, description = "Nonce in flight (recorded); `Retry-After` gives the seconds to wait", body = ExecuteResponse, headers(("Retry-After" = u64, description = "Seconds to wait before retrying with the same nonce"))),
    (status = 413, description = "Body too large (not recorded)", body = ErrorBody),
    (status = 415, description = "Not JSON (not recorded)", body = ErrorBody),
    (status = 422, description = "Malformed request, or an Idempotency-Key that differs from the body's nonce (code idempotency_key_mismatch) (not recorded); or nonce conflict / malformed approval (recorded)", body = ErrorBody),
    (status = 429, description = "Rejection or replay past the per-client or the global rate limit (not recorded); `Retry-After` gives the seconds to wait", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    (status = 500, description = "Handler failed (recorded), or a contained internal error (code internal_panic: recorded as far as the attempt got)", body = ExecuteResponse),
    (status = 503, description = "Ledger unavailable", body = ErrorBody)))]
pub(super) async fn execute(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_json(&req)?;
    let limit = state.boundary.policy().limits.max_body_bytes;
    let body = read_body(&req, &mut payload, limit).await?;
    let body = super::idempotency::with_key(&req, body)?;
    let address = req.peer_addr().map(|a| a.ip());
    let principal = caller(&req);
    // Once its body is read, the attempt runs to its entry in a task of its
    // own: a client that disconnects drops this future, never the attempt
    // half-way (a reservation left pending, a handler's result lost).
    let boundary = std::sync::Arc::clone(&state.boundary);
    let attempt = actix_web::rt::spawn(tracing::Instrument::instrument(
        async move { boundary.execute(&body, address, principal.as_ref()).await },
        crate::instruments::current_span(),
    ));
    let Ok(response) = attempt.await else {
        return Err(ApiError::new(
            500,
            "internal_panic",
            "Internal error while handling this attempt",
        ));
    };
    super::timing::note_outcome(&response);
    let status = actix_web::http::StatusCode::from_u16(response.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut answer = HttpResponse::build(status);
    super::idempotency::headers(&mut answer, &response);
    Ok(answer.json(response.body))
}

/// Refuses a body whose `Content-Type` is given and is not JSON (415; a
/// missing one is accepted as JSON).
pub(super) fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::new(
                415,
                "unsupported_media_type",
                "Content-Type must be application/json",
            ));
        }
    }
    Ok(())
}

/// One MCP message ([`super::mcp`]): a JSON-RPC response, or `202` for a
/// notification.
#[utoipa::path(post, path = "/mcp", request_body(content = Object, description = "One JSON-RPC message of the Model Context Protocol (2026-07-28, or 2025 revisions after an `initialize` without session): `server/discover`, `initialize`, `ping`, `tools/list`, `tools/call`, or a notification", content_type = "application/json"), security(("bearer" = [])), params(
    ("MCP-Protocol-Version" = Option<String>, Header, description = "The protocol revision; must equal `_meta[\"io.modelcontextprotocol/protocolVersion\"]` when the request carries one"),
    ("Mcp-Method" = Option<String>, Header, description = "The JSON-RPC method; must equal the body's (required with a 2026-07-28 `_meta`)"),
    ("Mcp-Name" = Option<String>, Header, description = "The tool of a `tools/call`; must equal `params.name` (required with a 2026-07-28 `_meta`)")),
    responses(
    (status = 200, description = "JSON-RPC response: a result, or (`tools/call`) a tool result whose `structuredContent` is the `/execute` answer with its receipt", body = Object),
    (status = 202, description = "A notification: accepted, no body"),
    (status = 400, description = "JSON-RPC error: parse error, invalid request or parameters, an unknown tool (recorded, its `/execute` answer in `error.data`), a routing header that disagrees with the body (-32020), an unsupported revision (-32022)", body = Object),
    (status = 401, description = "Authentication is on, and no valid credentials were given", body = ErrorBody),
    (status = 403, description = "An `Origin` header that is not a loopback origin (JSON-RPC error); or, authentication on, a role other than agent (code forbidden)", body = Object),
    (status = 404, description = "JSON-RPC error: method not found", body = Object),
    (status = 408, description = "Body not received in time", body = ErrorBody),
    (status = 413, description = "Body too large", body = ErrorBody),
    (status = 415, description = "Not JSON", body = ErrorBody),
    (status = 429, description = "JSON-RPC error: a rejection or replay past the rate limits (not recorded); `Retry-After` gives the seconds to wait", body = Object),
    (status = 503, description = "JSON-RPC error: the ledger could not record the attempt", body = Object)))]
pub(super) async fn mcp(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    super::mcp::post(state, req, payload).await
}

#[derive(Deserialize)]
pub(super) struct VerifyRequest {
    exec_id: Option<String>,
    result: Option<Value>,
    receipt: Value,
}

/// The original triple (legacy hash, checked against the ledger) or a full
/// receipt (checked cryptographically and against the ledger).
#[utoipa::path(post, path = "/receipts/verify", request_body = VerifyBody, responses((status = 200, description = "Verdict", body = VerifyResponse), (status = 422, description = "Malformed body", body = ErrorBody)))]
pub(super) async fn verify(
    state: web::Data<AppState>,
    body: web::Json<VerifyRequest>,
) -> HttpResponse {
    let ledger = state.boundary.ledger();
    let outcome = match &body.receipt {
        Value::String(hash) => {
            verify_legacy(&state, body.exec_id.as_deref(), body.result.as_ref(), hash)
        }
        other => match serde_json::from_value::<Receipt>(other.clone()) {
            Err(e) => Err(format!("receipt has the wrong shape: {e}")),
            Ok(receipt) => verify_receipt(&receipt, ledger.verifier(), None)
                .map_err(|e| e.to_string())
                .and_then(|v| match ledger.entry(v.entry.index) {
                    Ok((bytes, _)) if bytes == receipt.entry.as_bytes() => Ok(()),
                    _ => Err("the entry is not in this ledger".into()),
                }),
        },
    };
    match outcome {
        Ok(()) => HttpResponse::Ok().json(json!({ "valid": true })),
        Err(detail) => HttpResponse::Ok().json(json!({ "valid": false, "detail": detail })),
    }
}

fn verify_legacy(
    state: &AppState,
    exec_id: Option<&str>,
    result: Option<&Value>,
    hash: &str,
) -> Result<(), String> {
    let exec_id = exec_id.ok_or("exec_id is required")?;
    // The original took `result` as the Python JSON text; accept that, or the object.
    let text = match result {
        Some(Value::String(s)) => s.clone(),
        Some(v) => dumps_sorted(v, Separators::Default),
        None => return Err("result is required".into()),
    };
    if legacy_receipt_hash_of_text(exec_id, &text) != hash {
        return Err("hash does not match exec_id and result".into());
    }
    let ledger = state.boundary.ledger();
    let index = ledger
        .index_of_exec_id(exec_id)
        .ok()
        .flatten()
        .ok_or("no such execution in the ledger")?;
    let content = ledger
        .content(index)
        .ok()
        .flatten()
        .ok_or("the ledger holds no cleartext result to compare")?;
    let content: Content =
        serde_json::from_slice(&content).map_err(|_| "stored content unreadable")?;
    match content.result {
        Some(stored) if dumps_sorted(&stored, Separators::Default) == text => Ok(()),
        _ => Err("result differs from the recorded result".into()),
    }
}

#[utoipa::path(get, path = "/receipts/{exec_id}", params(("exec_id" = String, Path, description = "Execution id")), security(("bearer" = [])), responses((status = 200, description = "Receipt with a fresh inclusion proof", body = ReceiptDoc), (status = 401, description = "Authentication is on, and no valid credentials were given (one body whatever the reason)", body = ErrorBody), (status = 404, description = "Unknown exec_id, or (to an agent) another tenant's", body = ErrorBody)))]
pub(super) async fn receipt(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let exec_id = path.into_inner();
    let receipt = off_worker(&state, move |l| l.receipt_for_exec_id(&exec_id))
        .await?
        .map_err(|e| match e {
            crate::ledger::LedgerError::NotFound => ApiError::not_found("Execution"),
            other => other.into(),
        })?;
    // An agent reads its own tenant's receipts only; another tenant's is
    // answered exactly as a missing one, so that existence does not leak.
    if let Some(principal) = caller(&req).filter(|p| p.role == Role::Agent) {
        let tenant = crate::core::entry::Entry::from_canonical_bytes(receipt.entry.as_bytes())
            .map(|e| e.tenant);
        if tenant.as_deref() != Ok(principal.tenant.as_str()) {
            return Err(ApiError::not_found("Execution"));
        }
    }
    Ok(HttpResponse::Ok().json(receipt))
}

/// Runs a ledger read on the blocking pool: on PostgreSQL it waits for
/// the database, which must not hold up an HTTP worker meanwhile.
async fn off_worker<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&crate::ledger::Ledger) -> Result<T, crate::ledger::LedgerError> + Send + 'static,
) -> Result<Result<T, crate::ledger::LedgerError>, ApiError> {
    let ledger = std::sync::Arc::clone(state.boundary.ledger());
    web::block(move || read(&ledger))
        .await
        .map_err(|_| ApiError::new(503, "ledger_unavailable", "The ledger is unavailable"))
}

/// The principal `access::authorize` admitted the request as, if any.
pub(super) fn caller(req: &HttpRequest) -> Option<Principal> {
    use actix_web::HttpMessage as _;
    req.extensions().get::<Principal>().cloned()
}

#[utoipa::path(get, path = "/ledger/checkpoint", responses((status = 200, description = "The published C2SP checkpoint (the latest, advanced at most once per publish interval) with the witness cosignatures stored for it", body = String, content_type = "text/plain"), (status = 503, description = "Storage unavailable", body = ErrorBody)))]
pub(super) async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body(state.boundary.ledger().published_checkpoint()?))
}

/// Largest cosigned checkpoint note accepted (a checkpoint with a hundred
/// signature lines is about 12 KiB).
const MAX_COSIGNED_NOTE: usize = 64 * 1024;

#[utoipa::path(post, path = "/ledger/cosignatures", request_body(content = String, description = "One of this log's checkpoints (with the log's signature) followed by cosignature lines from trusted witnesses", content_type = "text/plain"), responses((status = 200, description = "Cosignatures verified and stored", body = CosignaturesResponse), (status = 400, description = "Not a checkpoint note", body = ErrorBody), (status = 403, description = "Not this log's signature, or no valid cosignature from a trusted witness", body = ErrorBody), (status = 409, description = "Signed with this log's key but not this log's tree (split view)", body = ErrorBody), (status = 413, description = "Body too large", body = ErrorBody), (status = 503, description = "Storage unavailable", body = ErrorBody)))]
pub(super) async fn cosignatures(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let note = read_body(&req, &mut payload, MAX_COSIGNED_NOTE).await?;
    let ledger = state.boundary.ledger().clone();
    let accepted = web::block(move || ledger.add_cosignatures(&note))
        .await
        .map_err(|_| ApiError::new(503, "ledger_unavailable", "The ledger is unavailable"))?
        .map_err(cosign_error)?;
    tracing::info!(tree_size = accepted.tree_size, witnesses = ?accepted.witnesses, "cosignatures stored");
    Ok(HttpResponse::Ok().json(CosignaturesResponse {
        tree_size: accepted.tree_size,
        witnesses: accepted.witnesses,
        cosignatures: accepted.cosignatures,
    }))
}

fn cosign_error(e: crate::ledger::CosignError) -> ApiError {
    use crate::ledger::CosignError as E;
    let detail = e.to_string();
    match e {
        E::Malformed(_) => ApiError::new(400, "malformed_checkpoint", detail),
        E::NotThisLog(_) => ApiError::new(403, "not_this_log", detail),
        E::NoTrustedCosignature => ApiError::new(403, "untrusted_witness", detail),
        E::BadCosignature => ApiError::new(403, "bad_cosignature", detail),
        E::NotOurTree(_) => ApiError::new(409, "not_this_tree", detail),
        E::Store(inner) => crate::ledger::LedgerError::from(inner).into(),
        E::Ledger(inner) => inner.into(),
    }
}

/// Reads a request body of at most `limit` bytes: 413 when it is announced
/// or turns out larger (the rest is never read; the connection is closed
/// after the answer), 408 once `super::REQUEST_BODY_TIMEOUT` has passed
/// (the body stream then fails with `TimedOut`, see `super::bounded_bodies`).
pub(super) async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "body_too_large",
            format!("Request body exceeds {limit} bytes"),
        )
    };
    // actix has already refused a malformed Content-Length.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ApiError::new(408, "body_timeout", io.to_string())
            }
            other => ApiError::new(400, "bad_body", format!("Could not read the body: {other}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[utoipa::path(get, path = "/ledger/key", responses((status = 200, description = "Log verifier key (signed-note vkey)", body = String, content_type = "text/plain")))]
pub(super) async fn key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body(state.boundary.ledger().verifier().vkey() + "\n")
}

fn entry_json(state: &AppState, index: u64) -> Result<Value, ApiError> {
    let (bytes, sig) = state.boundary.ledger().entry(index)?;
    let signature =
        crate::core::signing::signature_to_base64(&ed25519_dalek::Signature::from_bytes(&sig));
    Ok(
        json!({ "index": index, "entry": String::from_utf8_lossy(&bytes), "entry_signature": signature }),
    )
}

#[utoipa::path(get, path = "/ledger/entries/{index}", params(("index" = u64, Path, description = "Entry index")), responses((status = 200, description = "Entry", body = EntryResponse), (status = 400, description = "Bad index", body = ErrorBody), (status = 404, description = "No such entry", body = ErrorBody)))]
pub(super) async fn entry(
    state: web::Data<AppState>,
    path: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(entry_json(&state, *path)?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Range {
    start: u64,
    end: u64,
}

/// Entries `[start, end)`, at most [`MAX_ENTRIES_PAGE`] at a time.
#[utoipa::path(get, path = "/ledger/entries", params(Range), responses((status = 200, description = "Entries [start, end), at most 1000", body = EntriesResponse), (status = 400, description = "Bad range", body = ErrorBody)))]
pub(super) async fn entries(
    state: web::Data<AppState>,
    q: web::Query<Range>,
) -> Result<HttpResponse, ApiError> {
    let size = state.boundary.ledger().head().size;
    if q.start > q.end || q.end > size {
        return Err(ApiError::bad_query(format!("need start <= end <= {size}")));
    }
    if q.end - q.start > MAX_ENTRIES_PAGE {
        return Err(ApiError::bad_query(format!(
            "at most {MAX_ENTRIES_PAGE} entries per request"
        )));
    }
    let list = (q.start..q.end)
        .map(|i| entry_json(&state, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(json!({ "entries": list })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct InclusionQuery {
    index: u64,
    tree_size: Option<u64>,
}

#[utoipa::path(get, path = "/ledger/proof/inclusion", params(InclusionQuery), responses((status = 200, description = "Inclusion proof", body = InclusionResponse), (status = 400, description = "Bad query", body = ErrorBody), (status = 404, description = "Beyond the head", body = ErrorBody)))]
pub(super) async fn inclusion(
    state: web::Data<AppState>,
    q: web::Query<InclusionQuery>,
) -> Result<HttpResponse, ApiError> {
    let tree_size = q
        .tree_size
        .unwrap_or_else(|| state.boundary.ledger().head().size);
    let index = q.index;
    let hashes = off_worker(&state, move |l| l.inclusion_proof(index, tree_size)).await??;
    Ok(HttpResponse::Ok()
        .json(json!({ "index": q.index, "tree_size": tree_size, "hashes": hashes })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

#[utoipa::path(get, path = "/ledger/proof/consistency", params(ConsistencyQuery), responses((status = 200, description = "Consistency proof", body = ConsistencyResponse), (status = 400, description = "Bad query", body = ErrorBody), (status = 404, description = "Beyond the head", body = ErrorBody)))]
pub(super) async fn consistency(
    state: web::Data<AppState>,
    q: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    let to = q.to.unwrap_or_else(|| state.boundary.ledger().head().size);
    let from = q.from;
    let hashes = off_worker(&state, move |l| l.consistency_proof(from, to)).await??;
    Ok(HttpResponse::Ok().json(json!({ "from": q.from, "to": to, "hashes": hashes })))
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This OpenAPI 3 document", body = Object)))]
pub(super) async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
