//! `openexec serve` over TLS, with certificates made here: HTTPS for a
//! client that trusts the CA, nothing for a plain-HTTP client; client
//! certificates signed by the client CA authenticate the principal bound
//! to them (`openexec token bind-cert`), others fail the handshake; files
//! that are not a certificate and key refuse the start; the public-bind
//! rule with and without TLS and principals; a handshake that never
//! completes is dropped after the head timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::server::{start_in, TestServer};
use openexec::auth::{self, NewToken, Role};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};

/// A certificate with its key.
struct Issued {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Issued {
    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.serialize_der().into())
    }
}

fn new_ca(name: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Issued { cert, key }
}

fn leaf(names: &[&str], usage: ExtendedKeyUsagePurpose, by: &Issued) -> Issued {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.extended_key_usages = vec![usage];
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let cert = params.signed_by(&key, &by.cert, &by.key).unwrap();
    Issued { cert, key }
}

/// The certificates of a test: a CA, a server certificate it signed, a
/// client certificate it signed and one a stranger CA signed; the CA's,
/// the server's and the clients' PEM files in `dir`.
struct Pki {
    ca: Issued,
    client: Issued,
    stranger: Issued,
    ca_pem: PathBuf,
    cert_pem: PathBuf,
    key_pem: PathBuf,
    client_pem: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ca = new_ca("openexec test CA");
    let server = leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &ca,
    );
    let client = leaf(&["agent-one"], ExtendedKeyUsagePurpose::ClientAuth, &ca);
    let stranger_ca = new_ca("stranger CA");
    let stranger = leaf(
        &["agent-one"],
        ExtendedKeyUsagePurpose::ClientAuth,
        &stranger_ca,
    );
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca_pem: write("ca.pem", ca.cert.pem()),
        cert_pem: write("server.pem", server.cert.pem()),
        key_pem: write("server.key", server.key.serialize_pem()),
        client_pem: write("client.pem", client.cert.pem()),
        ca,
        client,
        stranger,
    }
}

/// Starts a TLS server (with the client CA when `mtls`) on `data`.
fn start_tls(
    pki: &Pki,
    data: &Path,
    mtls: bool,
    extra: &[(&str, &str)],
) -> Result<TestServer, String> {
    let (cert, key, ca) = (
        pki.cert_pem.to_str().unwrap(),
        pki.key_pem.to_str().unwrap(),
        pki.ca_pem.to_str().unwrap(),
    );
    let mut env = vec![("OPENEXEC_TLS_CERT", cert), ("OPENEXEC_TLS_KEY", key)];
    if mtls {
        env.push(("OPENEXEC_TLS_CLIENT_CA", ca));
    }
    env.extend_from_slice(extra);
    start_in(data, &env)
}

fn port(s: &TestServer) -> u16 {
    s.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// One HTTPS request (`Connection: close`) trusting `pki`'s CA, with the
/// client certificate `client` if any: status and body, or the error.
fn https(
    pki: &Pki,
    port: u16,
    client: Option<&Issued>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der()).unwrap();
    let provider = Arc::new(openexec::http::tls::provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(vec![c.der()], c.key_der())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes())
        .and_then(|()| tls.write_all(body.as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    if let Err(e) = tls.read_to_end(&mut answer) {
        // A peer that closes without close_notify, after a whole answer.
        if e.kind() != std::io::ErrorKind::UnexpectedEof || answer.is_empty() {
            return Err(e.to_string());
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no answer head")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    ))
}

/// A principal of tenant `acme` of role agent: (id, token).
fn agent(data: &Path) -> (String, String) {
    std::fs::create_dir_all(data).unwrap();
    let new = NewToken {
        role: Role::Agent,
        tenant: "acme".to_owned(),
        actions: None,
        label: None,
        expires_at: None,
    };
    let (token, record) = auth::store::create(data, new, chrono::Utc::now()).unwrap();
    (record.id.to_string(), token.reveal().to_owned())
}

fn stop(mut s: TestServer) {
    s.stop();
}

#[test]
fn https_serves_a_client_that_trusts_the_ca_and_not_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let s = start_tls(&pki, &dir.path().join("data"), false, &[]).unwrap();
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let port = port(&s);
    let (status, health) = https(&pki, port, None, "GET", "/health", &[], None).unwrap();
    assert_eq!(status, 200, "{health}");
    let (status, r) = https(
        &pki,
        port,
        None,
        "POST",
        "/execute",
        &[],
        Some(&json!({"action": "echo", "payload": {"n": 1}, "nonce": "tls-1"})),
    )
    .unwrap();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"], json!({"echo": {"n": 1}}), "{r}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    stop(s);
}

#[test]
fn a_client_certificate_signed_by_the_ca_authenticates_its_principal() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = dir.path().join("data");
    let (id, token) = agent(&data);
    let bound = Command::new(common::binary())
        .args(["token", "bind-cert", &id, "--cert"])
        .arg(&pki.client_pem)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(bound.status.success(), "{bound:?}");
    let fingerprint = auth::CertFingerprint::of(&pki.client.der()).to_string();
    assert!(
        String::from_utf8_lossy(&bound.stdout).contains(&fingerprint),
        "{bound:?}"
    );

    let s = start_tls(&pki, &data, true, &[]).unwrap();
    let port = port(&s);
    let execute = |client: Option<&Issued>, headers: &[(&str, &str)], nonce: &str| {
        https(
            &pki,
            port,
            client,
            "POST",
            "/execute",
            headers,
            Some(&json!({"action": "echo", "payload": {}, "nonce": nonce})),
        )
    };
    // The certificate alone: the principal bound to it.
    let (status, r) = execute(Some(&pki.client), &[], "cert-1").unwrap();
    assert_eq!(status, 200, "{r}");
    let entry: Value = serde_json::from_str(r["receipt"]["entry"].as_str().unwrap()).unwrap();
    assert!(entry.to_string().contains(&id), "{entry}");
    // No certificate, no token: 401; a token still works without one.
    let (status, _) = execute(None, &[], "none").unwrap();
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let (status, r) = execute(None, &[("Authorization", &bearer)], "token-1").unwrap();
    assert_eq!(status, 200, "{r}");
    // A token, when present, decides, certificate or not.
    let (status, _) = execute(
        Some(&pki.client),
        &[("Authorization", "Bearer oex1_wrong")],
        "wrong",
    )
    .unwrap();
    assert_eq!(status, 401);
    // A certificate the CA did not sign fails the handshake.
    let refused = execute(Some(&pki.stranger), &[], "stranger");
    assert!(refused.is_err(), "{refused:?}");
    // Revoking the principal revokes its certificate too.
    auth::store::revoke(&data, id.parse().unwrap(), chrono::Utc::now()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _) = execute(Some(&pki.client), &[], "cert-2").unwrap();
    assert_eq!(status, 401);
    stop(s);
}

#[test]
fn a_verified_certificate_bound_to_no_principal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = dir.path().join("data");
    agent(&data);
    let s = start_tls(&pki, &data, true, &[]).unwrap();
    let (status, _) = https(
        &pki,
        port(&s),
        Some(&pki.client),
        "POST",
        "/execute",
        &[],
        Some(&json!({"action": "echo", "payload": {}, "nonce": "n"})),
    )
    .unwrap();
    assert_eq!(status, 401);
    stop(s);
}

#[test]
fn files_that_are_not_a_certificate_and_key_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not PEM\n").unwrap();
    let junk = junk.to_str().unwrap();
    let cases: [(&str, &str, &str); 3] = [
        (junk, pki.key_pem.to_str().unwrap(), junk),
        (pki.cert_pem.to_str().unwrap(), junk, junk),
        (
            pki.cert_pem.to_str().unwrap(),
            "/nonexistent/server.key",
            "/nonexistent/server.key",
        ),
    ];
    for (i, (cert, key, named)) in cases.into_iter().enumerate() {
        let stderr = start_in(
            &dir.path().join(format!("data{i}")),
            &[("OPENEXEC_TLS_CERT", cert), ("OPENEXEC_TLS_KEY", key)],
        )
        .err()
        .expect("refused");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }
    // A key that is not the certificate's names both files.
    let other = KeyPair::generate().unwrap();
    let other_path = dir.path().join("other.key");
    std::fs::write(&other_path, other.serialize_pem()).unwrap();
    let stderr = start_in(
        &dir.path().join("data-other"),
        &[
            ("OPENEXEC_TLS_CERT", pki.cert_pem.to_str().unwrap()),
            ("OPENEXEC_TLS_KEY", other_path.to_str().unwrap()),
        ],
    )
    .err()
    .expect("refused");
    assert!(stderr.contains("other.key"), "{stderr}");
}

#[test]
fn a_public_bind_needs_tls_and_principals_or_the_override() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let public = [("OPENEXEC_BIND", "0.0.0.0:0")];
    // TLS without principals: refused, naming authentication.
    let stderr = start_tls(&pki, &dir.path().join("a"), false, &public)
        .err()
        .expect("refused");
    assert!(stderr.contains("without authentication"), "{stderr}");
    // Principals without TLS: refused, naming TLS.
    let data = dir.path().join("b");
    agent(&data);
    let stderr = start_in(&data, &public).err().expect("refused");
    assert!(stderr.contains("without TLS"), "{stderr}");
    // Both: it starts, no override needed.
    let s = start_tls(&pki, &data, false, &public).unwrap();
    assert!(s.base.starts_with("https://0.0.0.0:"), "{}", s.base);
    stop(s);
    // The override still starts a plain service without principals.
    let s = start_in(
        &dir.path().join("c"),
        &[
            ("OPENEXEC_BIND", "0.0.0.0:0"),
            ("OPENEXEC_ALLOW_PUBLIC_BIND", "true"),
        ],
    )
    .unwrap();
    assert!(s.base.starts_with("http://0.0.0.0:"), "{}", s.base);
    stop(s);
}

#[test]
fn a_client_that_never_completes_its_handshake_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let s = start_tls(&pki, &dir.path().join("data"), false, &[]).unwrap();
    let mut silent = TcpStream::connect(("127.0.0.1", port(&s))).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let began = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = silent.read_to_end(&mut answer);
    let waited = began.elapsed();
    // Closed by the server (EOF or reset), after the head timeout (5 s),
    // well before the client's own 20 s.
    let _ = read;
    assert!(waited >= Duration::from_secs(4), "{waited:?}");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    assert!(answer.is_empty(), "{answer:?}");
    stop(s);
}
