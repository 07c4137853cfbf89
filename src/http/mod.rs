//! The HTTP shell: routes, thin handlers, one error mapping.
//!
//! Handlers here translate HTTP to calls on [`crate::exec::Boundary`] and
//! [`crate::ledger::Ledger`] and back; they hold no policy and no format
//! logic. [`configure`] is shared by `openexec serve` and the tests, which
//! start the real server on `127.0.0.1:0` with [`run`].

mod error;
pub mod openapi;
mod routes;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};

pub use error::ApiError;

use crate::exec::Boundary;

/// Shared state of every request.
pub struct AppState {
    /// The execution boundary (and through it, the ledger).
    pub boundary: Arc<Boundary>,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}

/// Serves on `listener` until SIGINT/SIGTERM (actix drains in-flight
/// requests on either), then returns. The caller then shuts the ledger
/// down, which commits every queued append before the process exits.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    workers: usize,
) -> std::io::Result<()> {
    let data = web::Data::from(state);
    HttpServer::new(move || App::new().app_data(data.clone()).configure(configure))
        .workers(workers.max(1))
        .shutdown_timeout(10)
        .listen(listener)?
        .run()
        .await
}
