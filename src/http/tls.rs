//! TLS for `openexec serve --tls-cert --tls-key`, and client certificates
//! with `--tls-client-ca` (rustls, `ring` provider).
//!
//! Every accepted connection of a TLS service is a TLS handshake first,
//! bounded by the head timeout; the decrypted stream is then what
//! [`super::conn::BoundedHeads`] watches and actix reads.
//!
//! With a client CA, a client certificate is *optional*: a client that
//! presents none still completes the handshake and authenticates with a
//! bearer token; a client that presents one must present one the CA signed,
//! or the handshake fails. A verified certificate's SHA-256 fingerprint is
//! put in the connection's data ([`PeerCert`]), where the access check
//! maps it to the principal bound to it (`openexec token bind-cert`).

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::rt::net::TcpStream;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::auth::CertFingerprint;

/// The files of a TLS service.
#[derive(Debug, Clone)]
pub struct TlsFiles<'a> {
    /// PEM: the server's certificate chain, leaf first.
    pub cert: &'a Path,
    /// PEM: the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: &'a Path,
    /// PEM: the CA(s) that sign client certificates (`None`: client
    /// certificates are not asked for).
    pub client_ca: Option<&'a Path>,
}

/// Every certificate of the PEM file at `path`; an error naming the file
/// when it cannot be read or holds none.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The first private key of the PEM file at `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!("{}: no PEM private key in it", path.display())
        }
        e => format!("{}: {e}", path.display()),
    })
}

/// The server configuration of `files`: TLS 1.2 and 1.3, HTTP/1.1 by ALPN,
/// optional client certificates verified against the client CA. Every
/// error is one line naming the file at fault.
pub fn server_config(files: &TlsFiles<'_>) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let certs = read_certs(files.cert)?;
    let key = read_key(files.key)?;
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} and {}: not a usable certificate and key: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The `ring` crypto provider. rustls marks it deprecated for lacking
/// post-quantum key exchange; its other provider, aws-lc-rs, needs cmake
/// to build, which this project's machines do without.
#[allow(deprecated)]
#[must_use]
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The fingerprint of the client certificate a connection presented and
/// the client CA verified: connection data of the requests it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCert(pub CertFingerprint);

/// An accepted connection: plain TCP, or TLS over it.
pub(super) enum Stream {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The connection over `io`: plain without `acceptor`, else once its
    /// TLS handshake completed within `limit`.
    pub(super) async fn accept(
        acceptor: Option<TlsAcceptor>,
        io: TcpStream,
        limit: Duration,
    ) -> io::Result<Self> {
        let Some(acceptor) = acceptor else {
            return Ok(Self::Plain(io));
        };
        match actix_web::rt::time::timeout(limit, acceptor.accept(io)).await {
            Ok(Ok(tls)) => Ok(Self::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake not completed within {} seconds",
                    limit.as_secs()
                ),
            )),
        }
    }

    /// The verified client certificate's fingerprint, if the client
    /// presented one.
    pub(super) fn peer_cert(&self) -> Option<PeerCert> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(tls) => tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first)
                .map(|der| PeerCert(CertFingerprint::of(der))),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_flush(cx),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
