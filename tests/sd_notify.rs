//! systemd readiness: a real `openexec serve` with `NOTIFY_SOCKET` set
//! sends `READY=1` once it answers `/ready`, and `STOPPING=1` when SIGTERM
//! starts its drain, to a socket file or to an abstract socket name.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::server::{start, TestServer};

/// The next datagram on `socket`, as text; panics after 30 s.
fn receive(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within 30 s");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// The assignments of one notification, one per line.
fn assignments(message: &str) -> Vec<&str> {
    message.lines().collect()
}

/// Checks the whole exchange with a server started with `NOTIFY_SOCKET`
/// set to `notify_socket`, whose supervisor end is `socket`.
fn ready_then_stopping(socket: &UnixDatagram, mut server: TestServer) {
    let ready = receive(socket);
    let lines = assignments(&ready);
    assert_eq!(lines.first(), Some(&"READY=1"), "{ready:?}");
    assert_eq!(
        lines.get(1).copied(),
        Some(format!("STATUS=listening on {}", server.base).as_str()),
        "{ready:?}"
    );
    // Ready means answered: the listener is bound and the ledger open.
    let (status, body) = server.get_json("/ready");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    // Nothing else is sent while it serves.
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(socket.recv(&mut buf).is_err(), "an unexpected notification");

    server.stop();
    assert_eq!(assignments(&receive(socket)), ["STOPPING=1"]);
}

#[test]
fn a_notify_socket_file_hears_ready_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let server = start(&[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    ready_then_stopping(&socket, server);
}

#[test]
fn an_abstract_notify_socket_hears_ready_then_stopping() {
    use std::os::linux::net::SocketAddrExt as _;
    // Unique per run: the abstract namespace is shared by the whole
    // network namespace and leaves no file to clean up.
    let name = format!(
        "openexec-test-notify-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let socket = UnixDatagram::bind_addr(&address).unwrap();
    let server = start(&[("NOTIFY_SOCKET", &format!("@{name}"))]);
    ready_then_stopping(&socket, server);
}

#[test]
fn an_unreachable_notify_socket_is_logged_and_the_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-supervisor-here");
    let mut server = start(&[("NOTIFY_SOCKET", missing.to_str().unwrap())]);
    assert_eq!(server.get_json("/ready").0, 200);
    server.stop();
    let log = std::fs::read_to_string(server.data.with_extension("stderr.log")).unwrap();
    assert!(log.contains("sd_notify failed"), "{log}");
}
