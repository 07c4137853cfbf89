//! Hostile connections against the real server: oversized bodies that are
//! refused without being buffered whole, slow clients (stalled or trickled
//! heads and bodies, 50 held open at once) that are cut off in bounded time
//! without slowing anyone else down, kept-alive connections, and malformed
//! HTTP framing refused by the HTTP layer. None of the hostile requests is
//! recorded.
//!
//! Requests are written by hand on a `std::net::TcpStream`
//! (`common::wire`) so that every byte, and every pause, is under the
//! test's control.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use common::server::start;
use common::wire::{
    chunked, closed_within, exchange, head, read_reply, trickle_head, Framing, JSON,
};

/// The server's head timeout (`client_request_timeout`, src/http/mod.rs).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The server's keep-alive idle timeout (src/http/mod.rs).
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(5);
/// The server's deadline for a request body (src/http/mod.rs).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server lingers, discarding input, before it closes a
/// connection whose body it did not read (`client_disconnect_timeout`).
const LINGER: Duration = Duration::from_secs(1);
/// Scheduling slack on a loaded test machine.
const SLACK: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------
// Oversized bodies are not buffered whole.

/// Announces a 10 MB body, sends 100 KB of it and then nothing: the 413
/// must come anyway, so the server cannot be waiting for (or holding) the
/// rest. Then the connection is closed, not drained.
#[test]
fn an_oversized_body_is_refused_after_the_limit_without_waiting_for_the_rest() {
    let s = start(&[]);
    for framing in [Framing::Length, Framing::Chunked] {
        let before = s.ledger_size();
        let mut stream = TcpStream::connect(s.addr()).unwrap();
        stream.write_all(&head(JSON, framing, 10 << 20)).unwrap();
        let prefix = [
            &b"{\"action\":\"echo\",\"nonce\":\"big\",\"payload\":{\"x\":\""[..],
            &[b'y'; 100_000],
        ]
        .concat();
        let sent = match framing {
            Framing::Length => prefix,
            Framing::Chunked => {
                let mut c = chunked(&prefix);
                c.truncate(c.len() - 5); // no last chunk: more is "coming"
                c
            }
        };
        let _ = stream.write_all(&sent);
        let start = Instant::now();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let r = read_reply(&mut stream).expect("a reply");
        assert_eq!(r.status, 413, "{framing:?}");
        assert_eq!(r.json()["code"], "body_too_large");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{framing:?}: {:?}",
            start.elapsed()
        );
        assert_eq!(
            r.header("connection").as_deref(),
            Some("close"),
            "{framing:?}"
        );
        let closed = closed_within(&mut stream, start, LINGER + SLACK);
        assert!(closed.is_some(), "{framing:?}: connection still open");
        assert_eq!(s.ledger_size(), before);
    }
}

// ---------------------------------------------------------------------------
// Slow clients.

fn slow_body(addr: SocketAddr, framing: Framing) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut bytes = head(JSON, framing, 1000);
    if framing == Framing::Chunked {
        bytes.extend_from_slice(b"a\r\n");
    }
    bytes.extend_from_slice(br#"{"action":"#);
    stream.write_all(&bytes).unwrap();
    stream
}

fn partial_head(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        .unwrap();
    stream
}

/// A body that stalls after a few bytes is answered `408 body_timeout`
/// (JSON) once the body deadline passes, and its connection is closed.
#[test]
fn a_stalled_body_gets_408_and_is_closed() {
    let s = start(&[]);
    for framing in [Framing::Length, Framing::Chunked] {
        let before = s.ledger_size();
        let start = Instant::now();
        let mut stream = slow_body(s.addr(), framing);
        stream.set_read_timeout(Some(BODY_TIMEOUT + SLACK)).unwrap();
        let r = read_reply(&mut stream).expect("a reply");
        let elapsed = start.elapsed();
        assert_eq!(r.status, 408, "{framing:?}: {r:?}");
        assert_eq!(r.json()["code"], "body_timeout", "{framing:?}");
        assert!(r.json()["detail"].is_string());
        assert!(
            elapsed >= BODY_TIMEOUT - Duration::from_millis(500),
            "{elapsed:?}"
        );
        assert!(elapsed <= BODY_TIMEOUT + SLACK, "{elapsed:?}");
        let closed = closed_within(&mut stream, start, BODY_TIMEOUT + LINGER + SLACK);
        assert!(closed.is_some(), "{framing:?}: connection still open");
        assert_eq!(s.ledger_size(), before);
    }
}

/// A body trickled a byte at a time never completes: the total body time
/// is bounded, not the time between bytes, and the connection is closed
/// rather than drained while the client keeps trickling.
#[test]
fn a_trickled_body_gets_408_and_is_closed() {
    let s = start(&[]);
    let addr = s.addr();
    let results: Vec<_> = [Framing::Length, Framing::Chunked]
        .into_iter()
        .map(|framing| {
            thread::spawn(move || {
                let start = Instant::now();
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(&head(JSON, framing, 60_000)).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let trickle = thread::spawn(move || {
                    // Until the server hangs up, or a cap well past every deadline.
                    while start.elapsed() < Duration::from_secs(40) {
                        let piece: &[u8] = match framing {
                            Framing::Length => b" ",
                            Framing::Chunked => b"1\r\n \r\n",
                        };
                        if writer.write_all(piece).is_err() {
                            return;
                        }
                        thread::sleep(Duration::from_millis(100));
                    }
                });
                stream.set_read_timeout(Some(BODY_TIMEOUT + SLACK)).unwrap();
                let r = read_reply(&mut stream);
                let replied = start.elapsed();
                let closed = closed_within(&mut stream, start, BODY_TIMEOUT + LINGER + SLACK);
                let _ = stream.shutdown(Shutdown::Both);
                trickle.join().unwrap();
                (framing, r, replied, closed)
            })
        })
        .collect();
    for handle in results {
        let (framing, r, replied, closed) = handle.join().unwrap();
        let r = r.expect("a reply");
        assert_eq!(r.status, 408, "{framing:?}: {r:?}");
        assert_eq!(r.json()["code"], "body_timeout", "{framing:?}");
        assert!(replied <= BODY_TIMEOUT + SLACK, "{framing:?}: {replied:?}");
        assert!(
            closed.is_some(),
            "{framing:?}: connection still open (drained?)"
        );
    }
    assert_eq!(s.ledger_size(), 0);
}

/// A request head that never completes is cut off by the head timeout
/// (actix answers a bare `408` — the request never reached the
/// application, so there is no JSON body — and closes); so is a head
/// trickled a byte at a time, and a connection that sends nothing.
#[test]
fn an_incomplete_head_is_closed_by_the_head_timeout() {
    let s = start(&[]);
    let addr = s.addr();
    let start = Instant::now();
    let mut partial = partial_head(addr);
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut trickled = TcpStream::connect(addr).unwrap();
    let trickle = trickle_head(trickled.try_clone().unwrap(), 200);
    let deadline = HEAD_TIMEOUT + LINGER + SLACK;
    partial.set_read_timeout(Some(deadline)).unwrap();
    if let Some(r) = read_reply(&mut partial) {
        assert_eq!(r.status, 408, "{r:?}");
    }
    for (name, stream) in [
        ("partial", &mut partial),
        ("silent", &mut silent),
        ("trickled", &mut trickled),
    ] {
        let closed = closed_within(stream, start, deadline);
        assert!(
            closed.is_some(),
            "{name} head: connection still open after {deadline:?}"
        );
    }
    let _ = trickled.shutdown(Shutdown::Both);
    trickle.join().unwrap();
    assert_eq!(s.ledger_size(), 0);
}

/// 50 slow connections (stalled bodies and stalled heads) held open do not
/// slow down anyone else, and all of them are closed in bounded time.
#[test]
fn fifty_slow_connections_do_not_starve_other_clients() {
    let s = start(&[]);
    let addr = s.addr();
    let start = Instant::now();
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|i| match i % 3 {
            0 => slow_body(addr, Framing::Length),
            1 => slow_body(addr, Framing::Chunked),
            _ => partial_head(addr),
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    // Everyone else is still answered promptly, writes included.
    for i in 0..5 {
        let t = Instant::now();
        assert_eq!(s.get("/health").0, 200);
        let (status, r) =
            s.execute(&json!({"action": "echo", "nonce": format!("fast-{i}"), "payload": {}}));
        assert_eq!(status, 200, "{r}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "request {i} took {:?} with 50 slow connections open",
            t.elapsed()
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        start.elapsed() < HEAD_TIMEOUT,
        "the slow connections were supposed to be still open"
    );
    let deadline = BODY_TIMEOUT + LINGER + SLACK;
    for (i, stream) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(stream, start, deadline).is_some(),
            "slow connection {i} still open after {deadline:?}"
        );
    }
    assert_eq!(s.ledger_size(), 5);
    assert_eq!(s.get("/ready").0, 200);
}

/// A second request head trickled on a kept-alive connection (which
/// actix's own head timeout, applied to a connection's first request only,
/// would not bound) is cut off by the head deadline of every request
/// (src/http/conn.rs).
#[test]
fn a_second_head_trickled_on_a_kept_alive_connection_is_closed() {
    let s = start(&[]);
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let r = read_reply(&mut stream).expect("reply");
    assert_eq!(r.status, 200);
    let start = Instant::now();
    let trickle = trickle_head(stream.try_clone().unwrap(), 300);
    let deadline = HEAD_TIMEOUT + LINGER + SLACK;
    assert!(
        closed_within(&mut stream, start, deadline).is_some(),
        "second head trickled on a kept-alive connection: still open after {deadline:?}"
    );
    let _ = stream.shutdown(Shutdown::Both);
    trickle.join().unwrap();
}

/// Keep-alive works: one connection carries several requests, a stalled
/// second head is closed by the head deadline, and an idle connection is
/// closed after the keep-alive timeout.
#[test]
fn a_kept_alive_connection_serves_several_requests_and_is_closed_when_idle_or_stalled() {
    let s = start(&[]);
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for i in 0..3 {
        let body = format!(r#"{{"action":"echo","payload":{{"i":{i}}},"nonce":"ka-{i}"}}"#);
        let request = format!(
            "POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let r = read_reply(&mut stream).expect("reply on the kept-alive connection");
        assert_eq!(r.status, 200, "request {i}: {r:?}");
    }
    assert_eq!(s.ledger_size(), 3);
    // A stalled second head (a few bytes, then nothing).
    stream.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
    let start = Instant::now();
    let deadline = HEAD_TIMEOUT + LINGER + SLACK;
    assert!(
        closed_within(&mut stream, start, deadline).is_some(),
        "stalled second head: still open after {deadline:?}"
    );
    // An idle kept-alive connection.
    let mut idle = TcpStream::connect(s.addr()).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_reply(&mut idle).expect("reply").status, 200);
    let start = Instant::now();
    let deadline = KEEP_ALIVE_IDLE + LINGER + SLACK;
    assert!(
        closed_within(&mut idle, start, deadline).is_some(),
        "idle kept-alive connection: still open after {deadline:?}"
    );
}

/// Malformed HTTP framing is refused by actix's HTTP/1 decoder with a
/// bare `400` or `431` (no JSON body: the request never reaches the application),
/// except where the head was already complete and the application answers
/// in JSON; nothing is recorded either way.
#[test]
fn malformed_framing_is_refused_by_the_http_layer() {
    let s = start(&[]);
    let addr = s.addr();
    let body = br#"{"action":"echo","nonce":"frame","payload":{}}"#.to_vec();
    let post_head = "POST /execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n";
    let many_headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    // (name, request, status, JSON code if the application answered)
    let requests: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "Content-Length and Transfer-Encoding both",
            [
                format!(
                    "{post_head}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
                &chunked(&body),
            ]
            .concat(),
            400,
            None,
        ),
        (
            "Content-Length not a number",
            [
                format!("{post_head}Content-Length: 1e3\r\n\r\n").as_bytes(),
                &body,
            ]
            .concat(),
            400,
            None,
        ),
        (
            "negative Content-Length",
            [
                format!("{post_head}Content-Length: -1\r\n\r\n").as_bytes(),
                &body,
            ]
            .concat(),
            400,
            None,
        ),
        (
            "two different Content-Lengths",
            [
                format!(
                    "{post_head}Content-Length: {}\r\nContent-Length: 5\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
                &body,
            ]
            .concat(),
            400,
            None,
        ),
        (
            "Content-Length beyond u64",
            [
                format!("{post_head}Content-Length: 99999999999999999999999\r\n\r\n").as_bytes(),
                &body,
            ]
            .concat(),
            400,
            None,
        ),
        (
            "bad chunk size (after a complete head: the application answers)",
            [
                format!("{post_head}Transfer-Encoding: chunked\r\n\r\nzz\r\n").as_bytes(),
                &body,
                b"\r\n0\r\n\r\n",
            ]
            .concat(),
            400,
            Some("bad_body"),
        ),
        (
            "a 100 KB header (under actix's 128 KiB head limit): reaches the application",
            format!(
                "{post_head}X-Big: {}\r\nContent-Length: 0\r\n\r\n",
                "a".repeat(100_000)
            )
            .into_bytes(),
            422,
            Some("invalid_json"),
        ),
        (
            "a 200 KB header",
            format!(
                "{post_head}X-Big: {}\r\nContent-Length: 0\r\n\r\n",
                "a".repeat(200_000)
            )
            .into_bytes(),
            431,
            None,
        ),
        (
            "100 headers (actix allows 96)",
            format!("{post_head}{many_headers}Content-Length: 0\r\n\r\n").into_bytes(),
            431,
            None,
        ),
        (
            "NUL byte in the request line",
            [b"POST /exe\0cute HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}".as_slice()]
                .concat(),
            400,
            None,
        ),
    ];
    for (name, request, status, code) in requests {
        let r = exchange(addr, request);
        eprintln!(
            "{name}: {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.status, status, "{name}: {r:?}");
        match code {
            Some(code) => assert_eq!(r.json()["code"], code, "{name}"),
            None => assert!(r.body.is_empty(), "{name}: {r:?}"),
        }
    }
    assert_eq!(s.ledger_size(), 0);
    assert_eq!(s.get("/ready").0, 200);
}
