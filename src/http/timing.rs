//! `openexec_http_request_duration_seconds{route, outcome}`: the time from
//! a request's arrival at the app to its response head, by route pattern
//! (a row of [`ROUTES`], or `other` for a path no route matches) and
//! outcome (the recorded outcome of an `/execute` or MCP `tools/call`
//! attempt, else the status class `1xx`…`5xx`).
//!
//! [`observe`] wraps the whole app; [`route`] wraps each route's resource
//! and names it, and the `/execute` and `/mcp` handlers name the outcome
//! ([`note_outcome`]). They pass their index to [`observe`] through
//! thread-local cells rather than the request's extensions, which would
//! allocate per request: each is set after the handler's last `await`, and
//! every layer between it and [`observe`] returns without yielding, so the
//! same poll on the same worker thread reads it — no other request runs in
//! between. The series of each route and outcome is resolved once, on first
//! use.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::Histogram;
use serde_json::Value;

use super::routes::ROUTES;
use crate::exec::Response;

/// No route, or no outcome, named.
const UNSET: u8 = u8::MAX;

/// The `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Executed,
    Replayed,
    Rejected,
    Failed,
    Interrupted,
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl Outcome {
    const ALL: [Self; 10] = [
        Self::Executed,
        Self::Replayed,
        Self::Rejected,
        Self::Failed,
        Self::Interrupted,
        Self::Informational,
        Self::Success,
        Self::Redirection,
        Self::ClientError,
        Self::ServerError,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Replayed => "replayed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Informational => "1xx",
            Self::Success => "2xx",
            Self::Redirection => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
        }
    }

    /// The outcome a recorded attempt's answer names.
    fn of_recorded(name: &str) -> Option<Self> {
        Self::ALL[..5].iter().copied().find(|o| o.as_str() == name)
    }

    const fn of_status(status: u16) -> Self {
        match status {
            100..=199 => Self::Informational,
            200..=299 => Self::Success,
            300..=399 => Self::Redirection,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }
}

thread_local! {
    /// The index in [`ROUTES`] of the route that answered.
    static ROUTE: Cell<u8> = const { Cell::new(UNSET) };
    /// The [`Outcome`] (its index) of the attempt answered.
    static OUTCOME: Cell<u8> = const { Cell::new(UNSET) };
}

/// One series per route (and `other`) and outcome, resolved on first use.
static SERIES: [[OnceLock<Histogram>; Outcome::ALL.len()]; ROUTES.len() + 1] =
    [const { [const { OnceLock::new() }; Outcome::ALL.len()] }; ROUTES.len() + 1];

/// Middleware of the app: times every request.
pub(super) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let answered = next.call(req).await;
    let route = ROUTE.replace(UNSET);
    let outcome = OUTCOME.replace(UNSET);
    let status = match &answered {
        Ok(response) => response.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    record(route, outcome, status.as_u16(), started);
    answered
}

/// Middleware of the route at `index` in [`ROUTES`]: names it.
pub(super) async fn route(
    index: usize,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let answered = next.call(req).await;
    ROUTE.set(u8::try_from(index).unwrap_or(UNSET));
    answered
}

/// Names the outcome of the attempt `response` answers, if it was
/// recorded. Call after the handler's last `await`.
pub(super) fn note_outcome(response: &Response) {
    let recorded = response
        .body
        .get("outcome")
        .and_then(Value::as_str)
        .and_then(Outcome::of_recorded);
    if let Some(outcome) = recorded {
        OUTCOME.set(outcome as u8);
    }
}

fn record(route: u8, outcome: u8, status: u16, started: Instant) {
    let Some(instruments) = crate::instruments::get() else {
        return;
    };
    let route = usize::from(route).min(ROUTES.len());
    let outcome = Outcome::ALL
        .get(usize::from(outcome))
        .copied()
        .unwrap_or_else(|| Outcome::of_status(status));
    let name = ROUTES.get(route).map_or("other", |r| r.0);
    SERIES[route][outcome as usize]
        .get_or_init(|| {
            instruments
                .http_requests
                .with_label_values(&[name, outcome.as_str()])
        })
        .observe(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_the_recorded_ones_or_a_status_class() {
        assert_eq!(Outcome::of_recorded("replayed"), Some(Outcome::Replayed));
        assert_eq!(Outcome::of_recorded("2xx"), None);
        assert_eq!(Outcome::of_status(429).as_str(), "4xx");
        assert_eq!(Outcome::of_status(204).as_str(), "2xx");
        assert_eq!(Outcome::of_status(503).as_str(), "5xx");
    }
}
