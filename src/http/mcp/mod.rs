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

/// Browser origins allowed besides the loopback ones
/// (`--mcp-allowed-origins`): each `scheme://host[:port]`, compared in its
/// serialized form (default ports dropped, host lowercased).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// Parses a list of origins; an entry that is not one is refused with
    /// a line naming it.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut origins = Vec::new();
        for text in list.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            // An origin has no path: not even the "/" that parsing adds.
            let origin = url::Url::parse(text)
                .ok()
                .filter(|_| !text.ends_with('/'))
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .filter(|u| u.path() == "/" && u.query().is_none() && u.fragment().is_none())
                .map(|u| u.origin().ascii_serialization())
                .ok_or_else(|| {
                    format!("OPENEXEC_MCP_ALLOWED_ORIGINS: {text:?} is not an origin (scheme://host[:port], http or https, nothing after)")
                })?;
            origins.push(origin);
        }
        Ok(Self(origins))
    }

    /// Whether a request with this `Origin` header may call.
    fn admit(&self, origin: &str) -> bool {
        if loopback_origin(origin) {
            return true;
        }
        url::Url::parse(origin)
            .map(|u| u.origin().ascii_serialization())
            .is_ok_and(|o| self.0.contains(&o))
    }
}

/// Handles one POST: Origin, body, message, answer.
pub(super) async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        if !state.mcp_origins.admit(origin.to_str().unwrap_or("")) {
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
    if let Some(traceparent) = message["params"]["_meta"]["traceparent"].as_str() {
        super::timing::adopt_traceparent(traceparent);
    }
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
    #![allow(clippy::unwrap_used)]
    use super::{loopback_origin, AllowedOrigins};

    #[test]
    fn configured_origins_are_allowed_exactly() {
        let list = [
            "https://App.example".to_owned(),
            "http://ui.example:8080".to_owned(),
        ];
        let allowed = AllowedOrigins::parse(&list).unwrap();
        assert!(allowed.admit("https://app.example"));
        assert!(allowed.admit("https://app.example:443"));
        assert!(allowed.admit("http://ui.example:8080"));
        assert!(allowed.admit("http://localhost:1"));
        assert!(!allowed.admit("http://app.example"));
        assert!(!allowed.admit("http://ui.example"));
        assert!(!allowed.admit("https://app.example.evil"));
        for bad in [
            "app.example",
            "https://app.example/path",
            "ftp://x",
            "https://app.example/",
            "null",
        ] {
            assert!(AllowedOrigins::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

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
