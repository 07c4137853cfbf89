//! The witness's HTTP face: C2SP tlog-witness `POST /add-checkpoint`.
//!
//! Status codes are the spec's: 200 with the cosignature line, 400 for a
//! malformed request or `old` beyond the checkpoint, 403 without a valid
//! log signature, 404 for an unknown log, 409 (`text/x.tlog.size` body:
//! the latest cosigned size) when `old` is not that size, 422 when the
//! checkpoint is inconsistent with what was cosigned. Other errors are JSON
//! `{detail, code}`. The handler only parses and maps; the decision is
//! [`Witness::add_checkpoint`]'s.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use super::{now_secs, Witness, WitnessError};
use crate::core::witness::{AddCheckpoint, Refusal, MAX_REQUEST_BYTES};

/// Builds the server on an already bound listener; it stops gracefully
/// when `stop` resolves (it installs no signal handlers of its own).
pub fn build(
    witness: Arc<Witness>,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::from(witness);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_REQUEST_BYTES))
            .route("/add-checkpoint", web::post().to(add_checkpoint))
            .default_service(web::to(|| async {
                error(
                    404,
                    "not_found",
                    "No such route (this witness serves POST /add-checkpoint)",
                )
            }))
    })
    .workers(2)
    // Bound slow clients: the request head must arrive within 5 s, idle
    // connections close after 5 s. Put the witness behind a proxy if it
    // faces the internet.
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(Duration::from_secs(5))
    // As `serve`: in-flight requests get 10 s to finish (actix's default
    // would be 30).
    .shutdown_timeout(10)
    .shutdown_signal(stop)
    .listen(listener)?
    .run())
}

async fn add_checkpoint(witness: web::Data<Witness>, body: web::Bytes) -> HttpResponse {
    let request = match AddCheckpoint::parse(&body) {
        Ok(request) => request,
        Err(refusal) => return refusal_response(&refusal),
    };
    let witness = witness.into_inner();
    let outcome =
        web::block(move || witness.add_checkpoint(&request, "add-checkpoint", now_secs())).await;
    match outcome {
        Ok(Ok(line)) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(line),
        Ok(Err(WitnessError::Refused(refusal))) => refusal_response(&refusal),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "add-checkpoint failed");
            error(
                500,
                "witness_state",
                "The witness could not persist its state; nothing was cosigned",
            )
        }
        Err(_) => error(503, "unavailable", "The witness is shutting down"),
    }
}

fn refusal_response(refusal: &Refusal) -> HttpResponse {
    if let Refusal::StaleOldSize { latest, .. } = refusal {
        return HttpResponse::Conflict()
            .content_type("text/x.tlog.size")
            .body(format!("{latest}\n"));
    }
    error(refusal.status(), refusal.code(), &refusal.to_string())
}

fn error(status: u16, code: &str, detail: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .json(json!({ "detail": detail, "code": code }))
}
