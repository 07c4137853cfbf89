//! The one place where failures become HTTP responses: a status and a JSON
//! `{detail, code}` body. Internal error texts are not sent to clients.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::ledger::LedgerError;

/// An API error.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            detail: detail.into(),
        }
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }

    /// 400 for a bad query parameter.
    pub fn bad_query(detail: impl Into<String>) -> Self {
        Self::new(400, "invalid_query", detail)
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound => Self::not_found("Entry or tree size"),
            LedgerError::Proof(p) => Self::bad_query(p.to_string()),
            other => {
                tracing::error!(error = %other, "ledger error");
                Self::new(503, "ledger_unavailable", "The ledger is unavailable")
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({ "detail": self.detail, "code": self.code }))
    }
}
