//! `POST /mcp`: the Model Context Protocol (revision 2026-07-28, stateless
//! streamable HTTP, JSON answers only) over the same boundary as
//! `POST /execute`. Tools are the sealed registry; `tools/call` is an
//! `/execute` attempt. No session is kept: the 2025 `initialize`
//! handshake is answered without one, and the approval round trip of
//! clawshield mode carries its state, sealed, through the client
//! ([`state`]).
//!
//! - [`wire`]: the JSON-RPC and MCP shapes;
//! - [`dispatch`]: envelope, routing headers, methods;
//! - [`tools`]: the registry as tools;
//! - [`call`]: `tools/call` on the boundary;
//! - [`state`]: the sealed `requestState`.

mod call;
mod dispatch;
mod state;
mod tools;
pub mod wire;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::routes::{read_body, require_json};
use super::{ApiError, AppState};
use crate::core::request::parse_json_strict;
use wire::{Code, RpcError};

/// Handles one POST: Origin, body, message, answer.
pub(super) async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        if !loopback_origin(origin.to_str().unwrap_or("")) {
            let e = RpcError::new(Code::INVALID_REQUEST, "Origin not allowed");
            return Ok(HttpResponse::Forbidden().json(wire::failure(&Value::Null, &e)));
        }
    }
    require_json(&req)?;
    let limit = state.boundary.policy().limits.max_body_bytes;
    let body = read_body(&req, &mut payload, limit).await?;
    // The strict reading /execute applies to its body: no duplicate keys,
    // numbers an IEEE double writes back exactly.
    let message = match parse_json_strict(&body) {
        Ok(v) if crate::core::ijson::check_numbers(&body).is_ok() => v,
        Ok(_) => {
            return Ok(parse_error(
                "A number in the body is not exactly representable (I-JSON)",
            ))
        }
        Err(e) => return Ok(parse_error(&e.to_string())),
    };
    let caller = call::Caller {
        principal: super::routes::caller(&req),
        address: req.peer_addr().map(|a| a.ip()),
    };
    let reply = dispatch::handle(&state.boundary, &caller, req.headers(), message).await;
    Ok(match reply {
        dispatch::Reply::Accepted => HttpResponse::Accepted().finish(),
        dispatch::Reply::Message(status, body) => {
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::OK);
            let mut answer = HttpResponse::build(status);
            if let Some(secs) = body["error"]["data"]["retry_after"].as_u64() {
                answer.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            answer.json(body)
        }
    })
}

fn parse_error(detail: &str) -> HttpResponse {
    let e = RpcError::new(Code::PARSE_ERROR, format!("Parse error: {detail}"));
    HttpResponse::BadRequest().json(wire::failure(&Value::Null, &e))
}

/// Whether a browser page of `origin` may call: only pages served from
/// this machine's loopback names. A page of any other origin — including
/// one whose DNS name was rebound to 127.0.0.1 — is refused, which is the
/// attack the specification's Origin check is for.
fn loopback_origin(origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_origin;

    #[test]
    fn only_loopback_origins_are_allowed() {
        for ok in [
            "http://localhost:5000",
            "http://127.0.0.1",
            "https://127.8.9.1:1",
            "http://[::1]:80",
            "http://LOCALHOST",
        ] {
            assert!(loopback_origin(ok), "{ok}");
        }
        for refused in [
            "null",
            "",
            "http://evil.example",
            "http://localhost.evil.example",
            "http://10.0.0.1:5000",
            "file:///etc",
            "http://127.0.0.1.evil.example",
        ] {
            assert!(!loopback_origin(refused), "{refused}");
        }
    }
}
