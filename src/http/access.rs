//! Who may call each route: every route names one [`Access`] in the route
//! table (`routes::configure`), and [`authorize`] — the one check, run
//! before the route's handler — enforces it.
//!
//! With no principals configured (`Authenticator::is_enabled` false) every
//! route is open and every request anonymous, as on a service without
//! authentication. With principals configured:
//!
//! - [`Access::Public`] routes (verification data, pure computation,
//!   self-authenticating cosignatures) ignore credentials;
//! - on the others, no credentials or refused ones answer `401
//!   {detail, code: "unauthorized"}` with `WWW-Authenticate: Bearer
//!   realm="openexec"` — one body whatever the reason, which only the
//!   refusal counter names — and a principal whose role the route does not
//!   admit answers `403 {detail, code: "forbidden"}`. Neither reaches the
//!   handler, the boundary or the ledger;
//! - a request without an `Authorization` header over a connection whose
//!   client certificate the TLS layer verified ([`super::tls::PeerCert`])
//!   is the principal bound to that certificate; a certificate bound to
//!   no principal is refused like an unknown token. A bearer token, when
//!   there is one, decides;
//! - the admitted principal is put in the request's extensions, where
//!   `/execute` and `/receipts/{exec_id}` read it.
//!
//! Refusals are counted per reason in `openexec_auth_refusals_total{code}`
//! ([`Refusals`]), never recorded one by one.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _, HttpResponse};
use serde_json::json;

use super::tls::PeerCert;
use super::AppState;
use crate::auth::{AuthError, Principal, Role};

/// The `WWW-Authenticate` value of every `401`.
pub const CHALLENGE: &str = r#"Bearer realm="openexec""#;

/// Who may call a route when authentication is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, credentials or not: verification data, pure computation,
    /// self-authenticating input.
    Public,
    /// A principal of role `agent` (it acts for its own tenant).
    Agent,
    /// Any principal; an agent is answered only about its own tenant's
    /// entries (the others are `404`, as if missing), an auditor or an
    /// admin about every tenant's.
    OwnerOrAuditor,
    /// A principal of role `auditor` or `admin`.
    AuditorOrAdmin,
}

impl Access {
    /// Whether a principal of `role` may call the route.
    #[must_use]
    pub const fn admits(self, role: Role) -> bool {
        match self {
            Self::Public | Self::OwnerOrAuditor => true,
            Self::Agent => matches!(role, Role::Agent),
            Self::AuditorOrAdmin => matches!(role, Role::Auditor | Role::Admin),
        }
    }

    /// The roles admitted, as docs/API.md's route table writes them.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Agent => "agent",
            Self::OwnerOrAuditor => "owner (agent of the tenant), auditor or admin",
            Self::AuditorOrAdmin => "auditor or admin",
        }
    }
}

/// Why a request was refused before its route: the label of
/// `openexec_auth_refusals_total`.
const REFUSAL_CODES: [&str; 7] = [
    "missing",
    "malformed",
    "unknown_id",
    "wrong_secret",
    "revoked",
    "expired",
    "forbidden",
];

/// Counts of refused requests, by reason.
#[derive(Debug, Default)]
pub struct Refusals([AtomicU64; REFUSAL_CODES.len()]);

impl Refusals {
    fn count(&self, code: &str) {
        if let Some(i) = REFUSAL_CODES.iter().position(|c| *c == code) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counter in Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# HELP openexec_auth_refusals_total Requests refused before their route: no or refused credentials (401, by reason) or a role the route does not admit (403, forbidden)\n# TYPE openexec_auth_refusals_total counter\n",
        );
        for (code, n) in REFUSAL_CODES.iter().zip(&self.0) {
            text.push_str(&format!(
                "openexec_auth_refusals_total{{code=\"{code}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        text
    }
}

/// Why [`check`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or refused ones (`401`); the reason is for the
    /// counter only.
    Unauthorized(Option<AuthError>),
    /// A principal whose role the route does not admit (`403`).
    Forbidden,
}

impl Refusal {
    /// The counter's label.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Unauthorized(None) => "missing",
            Self::Unauthorized(Some(e)) => e.code(),
            Self::Forbidden => "forbidden",
        }
    }

    /// The answer: the same for every reason of a `401`.
    #[must_use]
    pub fn response(self) -> HttpResponse {
        match self {
            Self::Unauthorized(_) => HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, CHALLENGE))
                .json(json!({ "detail": AuthError::PUBLIC_MESSAGE, "code": "unauthorized" })),
            Self::Forbidden => HttpResponse::Forbidden().json(json!({
                "detail": "These credentials do not allow this operation",
                "code": "forbidden",
            })),
        }
    }
}

/// The one decision: the principal a request may call a route of `access`
/// as (`None`: anonymous, on a public route or with authentication off),
/// or why not. The `Authorization` header decides; without one, the
/// connection's verified client certificate `peer_cert`.
pub fn check(
    state: &AppState,
    access: Access,
    authorization: Option<&[u8]>,
    peer_cert: Option<&PeerCert>,
) -> Result<Option<Principal>, Refusal> {
    if access == Access::Public || !state.auth.is_enabled() {
        return Ok(None);
    }
    let now = chrono::Utc::now();
    let principal = match (authorization, peer_cert) {
        (None, Some(PeerCert(cert))) => state.auth.authenticate_cert(cert, now).map(Some),
        _ => state.auth.authenticate(authorization, now),
    }
    .map_err(|e| Refusal::Unauthorized(Some(e)))?
    .ok_or(Refusal::Unauthorized(None))?;
    if !access.admits(principal.role) {
        return Err(Refusal::Forbidden);
    }
    Ok(Some(principal))
}

/// Middleware of a route of `access`: [`check`], then the route with the
/// principal in the request's extensions, or the refusal, counted.
pub async fn authorize(
    access: Access,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let checked = match req.app_data::<web::Data<AppState>>() {
        Some(state) => {
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            let peer_cert = req.conn_data::<PeerCert>();
            let checked = check(state, access, authorization, peer_cert);
            if let Err(refusal) = checked {
                state.refusals.count(refusal.code());
                tracing::debug!(
                    path = req.path(),
                    reason = refusal.code(),
                    "request refused before its route"
                );
            }
            checked
        }
        // Not served without state; refuse rather than guess.
        None => Err(Refusal::Unauthorized(None)),
    };
    match checked {
        Ok(principal) => {
            if let Some(principal) = principal {
                req.extensions_mut().insert(principal);
            }
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(refusal) => Ok(req.into_response(refusal.response()).map_into_right_body()),
    }
}
