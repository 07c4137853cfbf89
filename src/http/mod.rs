//! The HTTP shell: routes, thin handlers, one error mapping.
//!
//! Handlers here translate HTTP to calls on [`crate::exec::Boundary`] and
//! [`crate::ledger::Ledger`] and back; they hold no policy and no format
//! logic. [`configure`] is shared by `openexec serve` and the tests, which
//! start the real server on `127.0.0.1:0` with [`run`].
//!
//! # Slow and hostile clients
//!
//! Every phase of a connection is bounded in time, so a client that sends
//! slowly or not at all holds a connection (a file descriptor and at most
//! one body's worth of memory) for seconds, never indefinitely:
//!
//! - with TLS on ([`tls`]), the handshake must complete within
//!   [`REQUEST_HEAD_TIMEOUT`] of the connection being accepted (the
//!   connection is dropped);
//! - the request head must arrive within [`REQUEST_HEAD_TIMEOUT`] of the
//!   connection being accepted, or of its handshake with TLS (actix
//!   answers a bare `408` and closes);
//! - a request body must arrive within [`REQUEST_BODY_TIMEOUT`] of its head
//!   (enforced by [`bounded_bodies`]; `/execute` answers `408 body_timeout`);
//! - every later request head on a kept-alive connection must arrive
//!   within [`REQUEST_HEAD_TIMEOUT`] of its first byte too: actix applies
//!   its head timeout to a connection's *first* request only, so the
//!   connection's I/O is wrapped ([`conn::BoundedHeads`]) to bound the
//!   others (the connection is dropped, without a `408`);
//! - a kept-alive connection idle for [`KEEP_ALIVE_IDLE`] between requests
//!   is closed;
//! - after a response to a request whose body was not read to its end (a
//!   `413`, `415`, `408`, ...), the connection is closed after lingering
//!   [`CLIENT_DISCONNECT_TIMEOUT`], rather than the rest of the body being
//!   read and discarded for as long as the client cares to send it.

pub mod access;
pub mod admin;
mod conn;
mod error;
mod idempotency;
mod mcp;
pub mod openapi;
mod routes;
mod tiles;
mod timing;
pub mod tls;
mod ui;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive};
use actix_service::{fn_service, map_config, IntoServiceFactory as _, ServiceFactoryExt as _};
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::AppConfig;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::rt::net::TcpStream;
use actix_web::rt::time::{sleep, Sleep};
use actix_web::web::Bytes;
use actix_web::{web, App, HttpMessage as _};
use futures_util::Stream;

pub use error::ApiError;
pub use mcp::AllowedOrigins;
pub use routes::ROUTES;

use crate::auth::Authenticator;
use crate::exec::Boundary;

/// Longest time from accepting a connection to having read its request
/// head (actix `client_request_timeout`). Heads are at most a few hundred
/// bytes; 5 s (actix's default, made explicit) is ample on any link.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest time a kept-alive connection may sit idle between a response
/// and the first byte of its next request. Short, because an idle
/// connection holds a file descriptor; clients that pause longer simply
/// reconnect.
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(5);

/// Longest time from a request's head to the last byte of its body. The
/// largest body `/execute` accepts is 64 KiB: 10 s allows a 52 kbit/s
/// link, while a client that trickles or stalls is cut off.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection closed by the server lingers, reading and
/// discarding what the client still sends so that it can read the
/// response instead of getting a reset (actix `client_disconnect_timeout`;
/// actix's default, made explicit).
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Shared state of every request.
pub struct AppState {
    /// The execution boundary (and through it, the ledger).
    pub boundary: Arc<Boundary>,
    /// Who is calling ([`access`] decides what each route admits).
    pub auth: Authenticator,
    /// Requests refused before their route, by reason.
    refusals: access::Refusals,
    /// Browser origins `/mcp` admits besides the loopback ones.
    mcp_origins: AllowedOrigins,
}

impl AppState {
    /// The state of a service over `boundary` authenticating with `auth`
    /// (with no principals configured, authentication is off).
    #[must_use]
    pub fn new(boundary: Arc<Boundary>, auth: Authenticator) -> Self {
        Self {
            boundary,
            auth,
            refusals: access::Refusals::default(),
            mcp_origins: AllowedOrigins::default(),
        }
    }

    /// The same state, `/mcp` also admitting browser pages of `origins`.
    #[must_use]
    pub fn with_mcp_origins(mut self, origins: AllowedOrigins) -> Self {
        self.mcp_origins = origins;
        self
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}

/// Serves plain HTTP on `listener` until `stop` resolves ([`run_tls`]
/// without TLS).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    workers: usize,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_tls(listener, state, workers, None, stop).await
}

/// Serves on `listener` until `stop` resolves, then drains in-flight
/// requests (up to 10 s) and returns. It installs no signal handlers of
/// its own: the caller passes a future that it made before announcing the
/// server (`cli::signals`). The caller then shuts the ledger down, which
/// commits every queued append before the process exits.
///
/// With `tls`, every connection is a TLS handshake first (bounded by
/// [`REQUEST_HEAD_TIMEOUT`]), and a verified client certificate is put in
/// its requests' connection data ([`tls::PeerCert`]).
///
/// Assembled from actix-http rather than `HttpServer` only so that each
/// accepted stream can be wrapped in [`conn::BoundedHeads`]; the timeouts
/// are the ones `HttpServer` would be given.
pub async fn run_tls(
    listener: TcpListener,
    state: Arc<AppState>,
    workers: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let data = web::Data::from(state);
    let local = listener.local_addr()?;
    let builder = actix_web::dev::Server::build();
    let draining = builder.graceful_shutdown_signal();
    builder
        .workers(workers.max(1))
        .shutdown_timeout(10)
        .shutdown_signal(stop)
        .listen("openexec-http", listener, move || {
            let data = data.clone();
            let draining = draining.clone();
            let acceptor = acceptor.clone();
            let app = move || {
                App::new()
                    .app_data(data.clone())
                    .configure(configure)
                    .wrap_fn(bounded_bodies)
                    .wrap_fn(timing::observe)
            };
            let http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let signal = draining.clone();
                    async move { signal.notified().await }
                })
                .keep_alive(KeepAlive::Timeout(KEEP_ALIVE_IDLE))
                .client_request_timeout(REQUEST_HEAD_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .local_addr(local)
                .on_connect_ext(|io: &conn::BoundedHeads<tls::Stream>, data| {
                    if let Some(cert) = io.get_ref().peer_cert() {
                        data.insert(cert);
                    }
                })
                .h1(map_config(app().into_factory(), |()| AppConfig::default()));
            fn_service(move |io: TcpStream| {
                let acceptor = acceptor.clone();
                async move {
                    let peer = io.peer_addr().ok();
                    let stream = tls::Stream::accept(acceptor, io, REQUEST_HEAD_TIMEOUT)
                        .await
                        .map_err(DispatchError::Io)?;
                    Ok::<_, DispatchError>((
                        conn::BoundedHeads::new(stream, REQUEST_HEAD_TIMEOUT),
                        peer,
                    ))
                }
            })
            .and_then(http)
        })?
        .run()
        .await
}

/// Middleware: gives the handler a body that fails with
/// `PayloadError::Io(TimedOut)` once [`REQUEST_BODY_TIMEOUT`] has passed,
/// and keeps the connection's body alive until the response has been
/// written, so that actix closes a connection whose body was not read to
/// its end instead of draining it.
fn bounded_bodies<S, B>(
    mut req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<HoldingBody<B>>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + Unpin,
{
    let body = Rc::new(RefCell::new(req.take_payload()));
    let bounded: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(DeadlineBody {
            body: Rc::clone(&body),
            deadline: Box::pin(sleep(REQUEST_BODY_TIMEOUT)),
            expired: false,
        });
    req.set_payload(Payload::from(bounded));
    let response = srv.call(req);
    async move {
        let response = response.await?;
        Ok(response.map_body(move |_, inner| HoldingBody {
            inner,
            _request_body: body,
        }))
    }
}

/// A request body cut off at a deadline.
struct DeadlineBody {
    body: Rc<RefCell<Payload>>,
    deadline: Pin<Box<Sleep>>,
    expired: bool,
}

impl Stream for DeadlineBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut *this.body.borrow_mut()).poll_next(cx) {
            return Poll::Ready(item);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the request body was not received within {} seconds",
                    REQUEST_BODY_TIMEOUT.as_secs()
                ),
            )))));
        }
        Poll::Pending
    }
}

/// A response body that keeps the request's body alive until it has been
/// sent. Actix then sees an unfinished request body that is still wanted
/// and closes the connection after the response (lingering for
/// [`CLIENT_DISCONNECT_TIMEOUT`]); had the request body been dropped, it
/// would instead read and discard the rest of a chunked body for as long
/// as the client kept sending it.
struct HoldingBody<B> {
    inner: B,
    _request_body: Rc<RefCell<Payload>>,
}

impl<B: MessageBody + Unpin> MessageBody for HoldingBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}
