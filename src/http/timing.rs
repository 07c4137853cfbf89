//! `openexec_http_request_duration_seconds{route, outcome}`: the time from
//! a request's arrival at the app to its response head, by route pattern
//! (a row of [`ROUTES`], or `other` for a path no route matches) and
//! outcome (the recorded outcome of an `/execute` or MCP `tools/call`
//! attempt, else the status class `1xx`…`5xx`).
//!
//! [`observe`] wraps the whole app; [`route`] wraps each route's resource
//! and names it, and the `/execute` and `/mcp` handlers name the outcome
//! ([`note_outcome`]). They hand their index to [`observe`] through
//! thread-local cells rather than the request's extensions, which would
//! allocate per request: each is set after the handler's last `await`, and
//! every layer between it and [`observe`] returns without yielding, so the
//! same poll on the same worker thread reads it — no other request runs in
//! between. The series of each route and outcome is resolved once, on first
//! use.
//!
//! With traces on ([`crate::instruments::traces_on`]), [`observe`] also
//! makes the request's span, a child of the W3C `traceparent` header's
//! span when there is one (or of an MCP request's `_meta.traceparent`,
//! [`adopt_traceparent`]); the boundary's steps are its children.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use prometheus::Histogram;
use serde_json::Value;
use tracing::field::Empty;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

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

/// Middleware of the app (`wrap_fn`: its future is not boxed): times
/// every request.
pub(super) fn observe<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let started = Instant::now();
    // A panic between a cell's set and its read below would leave it set
    // on this worker thread; cleared here, a later request can only read
    // what its own handler set.
    ROUTE.set(UNSET);
    OUTCOME.set(UNSET);
    let span = if crate::instruments::traces_on() {
        request_span(&req)
    } else {
        tracing::Span::none()
    };
    let call = span.in_scope(|| srv.call(req));
    async move {
        let answered = call.instrument(span.clone()).await;
        let route = ROUTE.replace(UNSET);
        let outcome = OUTCOME.replace(UNSET);
        let status = match &answered {
            Ok(response) => response.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        let (route, outcome) = record(route, outcome, status.as_u16(), started);
        if !span.is_none() {
            span.record("http.route", route);
            span.record("http.response.status_code", status.as_u16());
            span.record("openexec.outcome", outcome.as_str());
        }
        answered
    }
}

/// The span of one request, with the `traceparent` header's span as its
/// parent if the header is valid.
fn request_span(req: &ServiceRequest) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = req.path(),
        http.route = Empty,
        http.response.status_code = Empty,
        openexec.outcome = Empty,
    );
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&Headers(req.headers()));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// Makes `traceparent` (W3C form) the parent of the current request's
/// span, if traces are on and it is valid: an MCP request's
/// `_meta.traceparent`. Call before the request's first step.
pub(super) fn adopt_traceparent(traceparent: &str) {
    if !crate::instruments::traces_on() {
        return;
    }
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&OneHeader(traceparent));
    if parent.span().span_context().is_valid() {
        let _ = tracing::Span::current().set_parent(parent);
    }
}

/// A request's headers, for the propagator.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(actix_web::http::header::HeaderName::as_str)
            .collect()
    }
}

/// A lone `traceparent` value, for the propagator.
struct OneHeader<'a>(&'a str);

impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Middleware of the route at `index` in [`ROUTES`] (`wrap_fn`): names it.
pub(super) fn route<S, B>(
    index: usize,
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let call = srv.call(req);
    async move {
        let answered = call.await;
        ROUTE.set(u8::try_from(index).unwrap_or(UNSET));
        answered
    }
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

/// Records one request; returns its route and outcome labels.
fn record(route: u8, outcome: u8, status: u16, started: Instant) -> (&'static str, Outcome) {
    let route = usize::from(route).min(ROUTES.len());
    let outcome = Outcome::ALL
        .get(usize::from(outcome))
        .copied()
        .unwrap_or_else(|| Outcome::of_status(status));
    let name = ROUTES.get(route).map_or("other", |r| r.0);
    let Some(instruments) = crate::instruments::get() else {
        return (name, outcome);
    };
    SERIES[route][outcome as usize]
        .get_or_init(|| {
            instruments
                .http_requests
                .with_label_values(&[name, outcome.as_str()])
        })
        .observe(started.elapsed().as_secs_f64());
    (name, outcome)
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
