//! Hostile HTTP input against the real server: a table of bodies and
//! headers, each with the status and code it must get and whether it is
//! RECORDED in the ledger or REFUSED BEFORE RECORDING (SECURITY.md §3); and
//! slow clients, which must be cut off in bounded time without slowing
//! anyone else down.
//!
//! Requests are written by hand on a `std::net::TcpStream` so that every
//! byte (content type or none, chunked framing, invalid UTF-8, a body that
//! stalls) is under the test's control. Whatever reaches the application
//! must be answered with a 4xx and a JSON `{detail, code}` body — never a
//! 5xx, a panic or a hang. The rows that are not 4xx are listed as such:
//! successes, and one documented handler failure (`add` overflowing to
//! infinity, recorded as `failed`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use openexec::core::receipt::{verify_receipt, Receipt};
use serde_json::{json, Value};

use common::server::{start, TestServer};

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
/// Default body limit.
const LIMIT: usize = 65_536;

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client on a raw socket.

fn addr(s: &TestServer) -> SocketAddr {
    s.base
        .strip_prefix("http://")
        .expect("http base")
        .parse()
        .expect("socket address")
}

/// A response as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length: <actual length>`.
    Length,
    /// `Transfer-Encoding: chunked`, in 8 KiB chunks.
    Chunked,
}

/// The request head of `POST /execute`.
fn head(content_type: Option<&str>, framing: Framing, len: usize) -> Vec<u8> {
    let mut h = String::from("POST /execute HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        h.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    match framing {
        Framing::Length => h.push_str(&format!("Content-Length: {len}\r\n")),
        Framing::Chunked => h.push_str("Transfer-Encoding: chunked\r\n"),
    }
    h.push_str("\r\n");
    h.into_bytes()
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 1000 + 16);
    for chunk in body.chunks(8192) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Reads one response: the head, then `Content-Length` bytes of body (or
/// up to EOF without one). `None` if the connection ends before a status
/// line arrives.
fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => {
                return (!buf.is_empty()).then(|| parse_head(&buf, buf.len(), Vec::new()));
            }
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let mut body = buf[head_end + 4..].to_vec();
    let reply = parse_head(&buf, head_end, Vec::new());
    let want = reply
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    while want.is_none_or(|w| body.len() < w) {
        match stream.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&tmp[..n]),
        }
    }
    Some(Reply { body, ..reply })
}

fn parse_head(buf: &[u8], end: usize, body: Vec<u8>) -> Reply {
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    Reply {
        status,
        headers: text,
        body,
    }
}

/// Sends `request` from a writer thread while reading the reply, so that a
/// server that answers before it has read everything (413) is seen doing
/// so, and a server that stops reading cannot deadlock the test.
fn exchange(addr: SocketAddr, request: Vec<u8>) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let reply = read_reply(&mut stream).expect("a response before the connection closed");
    let _ = stream.shutdown(Shutdown::Both);
    sender.join().unwrap();
    reply
}

fn post(addr: SocketAddr, content_type: Option<&str>, framing: Framing, body: &[u8]) -> Reply {
    let mut request = head(content_type, framing, body.len());
    match framing {
        Framing::Length => request.extend_from_slice(body),
        Framing::Chunked => request.extend_from_slice(&chunked(body)),
    }
    exchange(addr, request)
}

/// Writes a request head one byte every 100 ms (ending in `padding` bytes
/// of one header value, never the blank line) from a thread; the thread
/// returns `true` if the server hung up on it.
fn trickle_head(mut writer: TcpStream, padding: usize) -> thread::JoinHandle<bool> {
    thread::spawn(move || {
        let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        for b in head.iter().chain(std::iter::repeat_n(&b'a', padding)) {
            if writer.write_all(&[*b]).is_err() {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    })
}

/// Reads until the peer closes (EOF or reset) or `deadline` passes;
/// `Some(elapsed since start)` if it closed in time.
fn closed_within(stream: &mut TcpStream, start: Instant, deadline: Duration) -> Option<Duration> {
    let mut tmp = [0u8; 4096];
    loop {
        let left = deadline.checked_sub(start.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        match stream.read(&mut tmp) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if start.elapsed() >= deadline {
                    return None;
                }
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

fn ledger_size(s: &TestServer) -> u64 {
    let (status, health) = s.get_json("/health");
    assert_eq!(status, 200);
    health["ledger"]["size"].as_u64().expect("ledger.size")
}

// ---------------------------------------------------------------------------
// The table.

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// A ledger entry is appended and the response carries its receipt.
    Recorded,
    /// Answered `{detail, code}` with nothing appended.
    Refused,
}
use Fate::{Recorded, Refused};

struct Case {
    name: String,
    content_type: Option<&'static str>,
    framing: Framing,
    body: Vec<u8>,
    status: u16,
    /// The response `code`; `None` for a success (which has none).
    code: Option<&'static str>,
    fate: Fate,
}

const JSON: Option<&str> = Some("application/json");

fn case(
    name: impl Into<String>,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: Option<&'static str>,
    fate: Fate,
) -> Case {
    Case {
        name: name.into(),
        content_type: JSON,
        framing: Framing::Length,
        body: body.into(),
        status,
        code,
        fate,
    }
}

/// `{"action": ACTION, "nonce": NONCE, "payload": PAYLOAD}` from raw JSON
/// fragments, so that any bytes at all can be put in each slot.
fn req(action: &str, nonce: &str, payload: &str) -> Vec<u8> {
    format!(r#"{{"action":{action},"nonce":{nonce},"payload":{payload}}}"#).into_bytes()
}

fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// A payload object with as many distinct keys as fit in a request of
/// `max_total` bytes (shortest keys first: 1 byte each, then 2, ...).
fn many_keys(nonce: &str, max_total: usize) -> (Vec<u8>, usize) {
    let alphabet: Vec<char> = (0x21u8..0x7f)
        .filter(|b| !matches!(b, b'"' | b'\\'))
        .map(char::from)
        .collect();
    let frame = req(r#""echo""#, &format!("\"{nonce}\""), "{}").len();
    let mut payload = String::from("{");
    let mut n = 0usize;
    'fill: for len in 1.. {
        let mut digits = vec![0usize; len];
        loop {
            let key: String = digits.iter().map(|&d| alphabet[d]).collect();
            let entry = format!("\"{key}\":0,");
            if frame + payload.len() + entry.len() - 1 > max_total {
                break 'fill;
            }
            payload.push_str(&entry);
            n += 1;
            // Next key of this length, like an odometer.
            let mut i = len;
            loop {
                if i == 0 {
                    continue 'fill;
                }
                i -= 1;
                digits[i] += 1;
                if digits[i] < alphabet.len() {
                    break;
                }
                digits[i] = 0;
            }
        }
    }
    payload.pop();
    payload.push('}');
    let body = req(r#""echo""#, &format!("\"{nonce}\""), &payload);
    assert!(body.len() <= max_total);
    (body, n)
}

#[allow(clippy::too_many_lines)] // it is a table
fn cases() -> Vec<Case> {
    let echo = r#""echo""#;
    let ok = |name: &str, nonce: &str, payload: &str| {
        case(
            name,
            req(echo, &format!("\"{nonce}\""), payload),
            200,
            None,
            Recorded,
        )
    };
    let mut t = vec![
        // --- baseline
        ok("well-formed echo (baseline)", "t-base", r#"{"msg":"hi"}"#),
        // --- sizes
        case(
            "body one byte over the limit (65537, Content-Length)",
            {
                let mut b = req(
                    echo,
                    "\"t-413\"",
                    &format!("{{\"x\":\"{}\"}}", "y".repeat(LIMIT)),
                );
                b.truncate(LIMIT - 2);
                b.extend_from_slice(b"\"}");
                b.push(b'}');
                assert_eq!(b.len(), LIMIT + 1);
                b
            },
            413,
            Some("body_too_large"),
            Refused,
        ),
        case(
            "body exactly at the limit (65536)",
            {
                let frame = req(echo, "\"t-at-limit\"", r#"{"x":""}"#).len();
                let b = req(
                    echo,
                    "\"t-at-limit\"",
                    &format!("{{\"x\":\"{}\"}}", "y".repeat(LIMIT - frame)),
                );
                assert_eq!(b.len(), LIMIT);
                b
            },
            200,
            None,
            Recorded,
        ),
        case(
            "10 MB body (Content-Length)",
            req(
                echo,
                "\"t-10mb\"",
                &format!("{{\"x\":\"{}\"}}", "y".repeat(10 << 20)),
            ),
            413,
            Some("body_too_large"),
            Refused,
        ),
        Case {
            framing: Framing::Chunked,
            ..case(
                "10 MB body (chunked, no length announced)",
                req(
                    echo,
                    "\"t-10mb-c\"",
                    &format!("{{\"x\":\"{}\"}}", "y".repeat(10 << 20)),
                ),
                413,
                Some("body_too_large"),
                Refused,
            )
        },
        Case {
            framing: Framing::Chunked,
            ..ok("small body, chunked", "t-chunked", r#"{"msg":"chunks"}"#)
        },
        case("empty body", "", 422, Some("invalid_json"), Refused),
        case(
            "whitespace-only body",
            "  \r\n\t ",
            422,
            Some("invalid_json"),
            Refused,
        ),
        // --- not an object
        case(
            "body is a JSON array",
            "[]",
            422,
            Some("invalid_body"),
            Refused,
        ),
        case(
            "body is a JSON number",
            "5",
            422,
            Some("invalid_body"),
            Refused,
        ),
        case(
            "body is a JSON string",
            "\"echo\"",
            422,
            Some("invalid_body"),
            Refused,
        ),
        case(
            "body is JSON null",
            "null",
            422,
            Some("invalid_body"),
            Refused,
        ),
        case(
            "body is two JSON objects",
            r#"{"action":"echo","nonce":"a"}{}"#,
            422,
            Some("invalid_json"),
            Refused,
        ),
        // --- nesting
        ok(
            "nesting exactly 32 levels (31 in payload)",
            "t-depth32",
            &nested("{\"a\":", "}", 30, "[1]"),
        ),
        case(
            "nested objects, 40 levels in payload",
            req(echo, "\"t\"", &nested("{\"a\":", "}", 40, "1")),
            422,
            Some("too_deep"),
            Refused,
        ),
        case(
            "nested arrays, 40 levels in payload",
            req(echo, "\"t\"", &nested("[", "]", 40, "1")),
            422,
            Some("too_deep"),
            Refused,
        ),
        case(
            "60 000 unclosed '[' (body within the limit)",
            format!(
                r#"{{"action":"echo","nonce":"t","payload":{}"#,
                "[".repeat(60_000)
            ),
            422,
            Some("too_deep"),
            Refused,
        ),
        case(
            "nested objects, 40 levels inside a payload string",
            req(
                echo,
                "\"t\"",
                &serde_json::to_string(&nested("{\"a\":", "}", 40, "1")).unwrap(),
            ),
            422,
            Some("too_deep"),
            Refused,
        ),
        case(
            "nested arrays, 40 levels inside a payload string",
            req(
                echo,
                "\"t\"",
                &serde_json::to_string(&format!("{{\"a\":{}}}", nested("[", "]", 40, "1")))
                    .unwrap(),
            ),
            422,
            Some("too_deep"),
            Refused,
        ),
        ok(
            "brackets inside strings do not count as nesting",
            "t-brackets",
            &format!(r#"{{"s":"{}"}}"#, "[{".repeat(500)),
        ),
        // --- invalid UTF-8 and odd encodings
        case(
            "invalid UTF-8 (0xff) in a payload string",
            [
                &b"{\"action\":\"echo\",\"nonce\":\"t\",\"payload\":{\"m\":\""[..],
                b"\xff\xfe",
                b"\"}}",
            ]
            .concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "invalid UTF-8 (0xff) in the action",
            [&b"{\"action\":\"ec\xffho\",\"nonce\":\"t\"}"[..]].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "overlong UTF-8 '/' (C0 AF) in the nonce",
            [&b"{\"action\":\"echo\",\"nonce\":\"a\xc0\xafb\"}"[..]].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "overlong UTF-8 NUL (C0 80) in the payload",
            [&b"{\"action\":\"echo\",\"nonce\":\"t\",\"payload\":{\"m\":\"\xc0\x80\"}}"[..]]
                .concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "CESU-8 surrogate bytes (ED A0 80) in the payload",
            [&b"{\"action\":\"echo\",\"nonce\":\"t\",\"payload\":{\"m\":\"\xed\xa0\x80\"}}"[..]]
                .concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "UTF-8 BOM before the body (refused: RFC 8259 §8.1 lets us)",
            [&b"\xef\xbb\xbf"[..], &req(echo, "\"t-bom\"", "{}")].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "UTF-16LE body",
            "{\"action\":\"echo\",\"nonce\":\"t\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        // --- odd Unicode in action, nonce and payload
        case(
            "U+202E (RTL override) in the action",
            req("\"ec\u{202e}ho\"", "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "U+202E escaped in the action",
            req(r#""ec\u202eho""#, "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "U+202E in the nonce",
            req(echo, "\"n\u{202e}1\"", "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        ok(
            "U+202E in the payload (kept, hashed, echoed)",
            "t-rtl",
            "{\"m\":\"abc\u{202e}def\"}",
        ),
        case(
            "escaped NUL in the action",
            req(r#""echo\u0000""#, "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "escaped NUL in the nonce",
            req(echo, r#""n\u0000""#, "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        ok(
            "escaped NUL in a payload key and value",
            "t-nul",
            r#"{"k\u0000":"v\u0000"}"#,
        ),
        case(
            "raw NUL byte inside a string",
            [&b"{\"action\":\"echo\",\"nonce\":\"t\",\"payload\":{\"m\":\"a\0b\"}}"[..]].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "raw NUL byte after the body",
            [&req(echo, "\"t\"", "{}")[..], b"\0"].concat(),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "zero-width joiner in the action",
            req("\"ec\u{200d}ho\"", "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "zero-width joiner in the nonce",
            req(echo, "\"n\u{200d}1\"", "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        ok(
            "zero-width joiner in the payload",
            "t-zwj",
            "{\"m\":\"\u{1f468}\u{200d}\u{1f469}\"}",
        ),
        case(
            "lone high surrogate escape \\ud800 in the payload",
            req(echo, "\"t\"", r#"{"m":"\ud800"}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "lone low surrogate escape \\udc00 in the payload",
            req(echo, "\"t\"", r#"{"m":"\udc00x"}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "lone surrogate escape in the action",
            req(r#""\ud800""#, "\"t\"", "{}"),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "lone surrogate escape in the nonce",
            req(echo, r#""\ud800""#, "{}"),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "lone surrogate escape in a key",
            req(echo, "\"t\"", r#"{"\udfff":1}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        ok(
            "valid surrogate pair escape in the payload",
            "t-pair",
            r#"{"m":"\ud83d\ude00"}"#,
        ),
        case(
            "non-ASCII letter in the action (e with acute)",
            req("\"\u{e9}cho\"", "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "space in the nonce",
            req(echo, "\"a b\"", "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        // --- duplicate keys (serde_json alone would keep the last one)
        case(
            "\"action\" twice at the top level",
            r#"{"action":"sha256","nonce":"t-dup1","action":"echo"}"#,
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "\"nonce\" twice at the top level",
            r#"{"action":"echo","nonce":"t-dup2","nonce":"t-dup3"}"#,
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "\"payload\" twice at the top level",
            r#"{"action":"echo","nonce":"t-dup4","payload":{},"payload":{"a":1}}"#,
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key inside the payload",
            req(echo, "\"t-dup5\"", r#"{"a":1,"b":2,"a":3}"#),
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key deep inside the payload",
            req(echo, "\"t-dup6\"", r#"{"x":[{"y":{"a":1,"a":1}}]}"#),
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key spelled differently (\"a\" and \"\\u0061\")",
            req(echo, "\"t-dup7\"", r#"{"a":1,"\u0061":2}"#),
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key inside a payload string",
            req(echo, "\"t-dup8\"", r#""{\"a\":1,\"a\":2}""#),
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key inside approval_artifact",
            r#"{"action":"echo","nonce":"t-dup9","approval_artifact":{"approval_id":"a","approval_id":"b"}}"#,
            422,
            Some("duplicate_key"),
            Refused,
        ),
        ok(
            "same key in sibling objects is not a duplicate",
            "t-siblings",
            r#"{"a":{"k":1},"b":{"k":1}}"#,
        ),
        // --- numbers
        case(
            "1e400 in the payload (out of f64 range)",
            req(echo, "\"t\"", r#"{"n":1e400}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "-1e400 in the payload",
            req(echo, "\"t\"", r#"{"n":-1e400}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "a 400-digit integer in the payload",
            req(echo, "\"t\"", &format!(r#"{{"n":{}}}"#, "9".repeat(400))),
            422,
            Some("invalid_json"),
            Refused,
        ),
        ok(
            "2^64 as JCS writes it (becomes the float 1.8446744073709552e19)",
            "t-2p64",
            r#"{"n":18446744073709552000}"#,
        ),
        case(
            "2^64 in full (its canonical form is another number: not I-JSON)",
            req(echo, "\"t-2p64-full\"", r#"{"n":18446744073709551616}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "u64::MAX in the payload (no double holds it: not I-JSON)",
            req(echo, "\"t-u64max\"", r#"{"n":18446744073709551615}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "-2^63-1 in the payload (not I-JSON)",
            req(echo, "\"t-m2p63\"", r#"{"n":-9223372036854775809}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "2^53+1 in the payload (not I-JSON)",
            req(echo, "\"t-2p53\"", r#"{"n":9007199254740993}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "2^53+1 in a payload string (not I-JSON)",
            req(echo, "\"t-2p53s\"", r#""{\"n\":9007199254740993}""#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "1e-400 in the payload (underflows to 0: not I-JSON)",
            req(echo, "\"t-tiny\"", r#"{"n":1e-400}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "-2^63 in full (its canonical form is -9223372036854776000: not I-JSON)",
            req(echo, "\"t-m2p63-full\"", r#"{"n":-9223372036854775808}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        ok(
            "-2^63 as JCS writes it (a float)",
            "t-m2p63-jcs",
            r#"{"n":-9223372036854776000}"#,
        ),
        ok(
            "largest finite floats in the payload",
            "t-fmax",
            r#"{"n":1.7976931348623157e308,"m":-1.7976931348623157e308}"#,
        ),
        ok(
            "-0.0 and 5e-324 in the payload",
            "t-odd-floats",
            r#"{"z":-0.0,"d":5e-324}"#,
        ),
        case(
            "add: 2^64 + 1 (floats)",
            req(
                r#""add""#,
                "\"t-add-big\"",
                r#"{"a":18446744073709552000,"b":1}"#,
            ),
            200,
            None,
            Recorded,
        ),
        case(
            "add: f64::MAX + f64::MAX overflows to infinity (handler error, by design)",
            req(
                r#""add""#,
                "\"t-add-inf\"",
                r#"{"a":1.7976931348623157e308,"b":1.7976931348623157e308}"#,
            ),
            500,
            Some("handler_error"),
            Recorded,
        ),
        case(
            "NaN literal",
            req(echo, "\"t\"", r#"{"n":NaN}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "Infinity literal",
            req(echo, "\"t\"", r#"{"n":Infinity}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "-Infinity literal",
            req(echo, "\"t\"", r#"{"n":-Infinity}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "leading zeros (012)",
            req(echo, "\"t\"", r#"{"n":012}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "hex number (0x10)",
            req(echo, "\"t\"", r#"{"n":0x10}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "number as the nonce",
            r#"{"action":"echo","nonce":5}"#,
            422,
            Some("invalid_field"),
            Refused,
        ),
        case(
            "number as the payload",
            req(echo, "\"t\"", "1e400"),
            422,
            Some("invalid_json"),
            Refused,
        ),
        // --- absurd lengths
        case(
            "nonce of 129 characters",
            req(echo, &format!("\"{}\"", "n".repeat(129)), "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        ok(
            "nonce of 128 characters (the maximum)",
            &"n".repeat(128),
            "{}",
        ),
        case(
            "nonce of 60 000 characters (within the body limit)",
            req(echo, &format!("\"{}\"", "n".repeat(60_000)), "{}"),
            422,
            Some("invalid_nonce"),
            Refused,
        ),
        case(
            "nonce of 100 000 characters (over the body limit)",
            req(echo, &format!("\"{}\"", "n".repeat(100_000)), "{}"),
            413,
            Some("body_too_large"),
            Refused,
        ),
        case(
            "action of 65 characters",
            req(&format!("\"{}\"", "a".repeat(65)), "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "action of 64 characters (well-formed, not registered)",
            req(&format!("\"{}\"", "a".repeat(64)), "\"t-a64\"", "{}"),
            400,
            Some("unknown_action"),
            Recorded,
        ),
        case(
            "action of 60 000 characters",
            req(&format!("\"{}\"", "a".repeat(60_000)), "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        case(
            "empty action",
            req("\"\"", "\"t\"", "{}"),
            422,
            Some("invalid_action"),
            Refused,
        ),
        ok(
            "payload key of 60 000 characters",
            "t-longkey",
            &format!(r#"{{"{}":1}}"#, "k".repeat(60_000)),
        ),
        case(
            "50 000-key payload (over the body limit)",
            {
                let keys: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":0")).collect();
                req(echo, "\"t-50k\"", &format!("{{{}}}", keys.join(",")))
            },
            413,
            Some("body_too_large"),
            Refused,
        ),
        // --- field shapes
        case(
            "missing action",
            r#"{"nonce":"t"}"#,
            422,
            Some("missing_field"),
            Refused,
        ),
        case(
            "null nonce",
            r#"{"action":"echo","nonce":null}"#,
            422,
            Some("missing_field"),
            Refused,
        ),
        case(
            "array as the action",
            r#"{"action":["echo"],"nonce":"t"}"#,
            422,
            Some("invalid_field"),
            Refused,
        ),
        case(
            "payload an array",
            req(echo, "\"t\"", "[1]"),
            422,
            Some("invalid_payload"),
            Refused,
        ),
        case(
            "payload a string holding an array",
            req(echo, "\"t\"", r#""[1]""#),
            422,
            Some("invalid_payload"),
            Refused,
        ),
        case(
            "payload a string holding invalid JSON",
            req(echo, "\"t\"", r#""{nope""#),
            422,
            Some("invalid_payload"),
            Refused,
        ),
        case(
            "approval_artifact a string",
            r#"{"action":"echo","nonce":"t","approval_artifact":"x"}"#,
            422,
            Some("invalid_approval"),
            Refused,
        ),
        case(
            "JSON with comments",
            "{\"action\":\"echo\", /* hi */ \"nonce\":\"t\"}",
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "trailing comma",
            r#"{"action":"echo","nonce":"t",}"#,
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "single-quoted strings",
            "{'action':'echo','nonce':'t'}",
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "truncated body",
            r#"{"action":"echo","nonce":"t""#,
            422,
            Some("invalid_json"),
            Refused,
        ),
    ];
    let (body, keys) = many_keys("t-manykeys", LIMIT);
    assert!(keys > 9_000, "{keys} keys");
    t.push(case(
        format!("{keys}-key payload (as many distinct keys as fit in 65536 bytes)"),
        body,
        200,
        None,
        Recorded,
    ));
    // --- content types
    let typed = |name: &str, ct: Option<&'static str>, nonce: &str, status, code, fate| Case {
        content_type: ct,
        ..case(
            name,
            req(echo, &format!("\"{nonce}\""), "{}"),
            status,
            code,
            fate,
        )
    };
    t.extend([
        typed(
            "Content-Type text/plain",
            Some("text/plain"),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case(
                "Content-Type form (urlencoded body)",
                "action=echo&nonce=t",
                415,
                Some("unsupported_media_type"),
                Refused,
            )
        },
        typed(
            "Content-Type multipart/form-data",
            Some("multipart/form-data; boundary=x"),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        typed(
            "Content-Type application/jsonx",
            Some("application/jsonx"),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        typed(
            "Content-Type empty",
            Some(""),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        typed(
            "Content-Type with a non-ASCII byte",
            Some("application/json\u{e9}"),
            "t",
            415,
            Some("unsupported_media_type"),
            Refused,
        ),
        typed(
            "Content-Type missing: accepted as JSON (docs/API.md)",
            None,
            "t-noct",
            200,
            None,
            Recorded,
        ),
        typed(
            "Content-Type APPLICATION/JSON; charset=utf-8",
            Some("APPLICATION/JSON; charset=utf-8"),
            "t-ct-upper",
            200,
            None,
            Recorded,
        ),
        typed(
            "Content-Type application/merge-patch+json",
            Some("application/merge-patch+json"),
            "t-ct-plus",
            200,
            None,
            Recorded,
        ),
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain and 10 MB: 415 before reading",
                req(
                    echo,
                    "\"t\"",
                    &format!("{{\"x\":\"{}\"}}", "y".repeat(10 << 20)),
                ),
                415,
                Some("unsupported_media_type"),
                Refused,
            )
        },
    ]);
    t
}

#[test]
fn hostile_inputs_get_their_documented_status_and_fate() {
    let s = start(&[]);
    let addr = addr(&s);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for c in cases() {
        let before = ledger_size(&s);
        let r = post(addr, c.content_type, c.framing, &c.body);
        let after = ledger_size(&s);
        let body = r.json();
        let code = body["code"].as_str().map(str::to_owned);
        let fate = match after - before {
            0 => Refused,
            1 => Recorded,
            n => panic!("{}: {n} entries appended", c.name),
        };
        let mut problems = Vec::new();
        if r.status != c.status {
            problems.push(format!("status {} (want {})", r.status, c.status));
        }
        if code.as_deref() != c.code {
            problems.push(format!("code {code:?} (want {:?})", c.code));
        }
        if fate != c.fate {
            problems.push(format!("{fate:?} (want {:?})", c.fate));
        }
        if !body.is_object() {
            problems.push(format!(
                "body is not JSON: {:?}",
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
            ));
        }
        if r.status >= 400 && !(body["detail"].is_string() && body["code"].is_string()) {
            problems.push(format!("no {{detail, code}}: {body}"));
        }
        if r.status >= 500 && c.status < 500 {
            problems.push("5xx".into());
        }
        // A recorded attempt carries a receipt for the new entry that
        // verifies offline; a refusal carries none.
        match (fate, body.get("receipt")) {
            (Recorded, Some(receipt)) => {
                let receipt: Receipt = serde_json::from_value(receipt.clone()).expect("receipt");
                let v = verify_receipt(&receipt, &s.verifier(), None).expect("receipt verifies");
                assert_eq!(v.entry.index, before, "{}", c.name);
            }
            (Recorded, None) => problems.push("recorded without a receipt".into()),
            (Refused, Some(_)) => problems.push("refused with a receipt".into()),
            (Refused, None) => {}
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", c.name, problems.join("; ")));
        }
        rows.push(format!(
            "| {} | {} | {} | {} |",
            c.name.replace('|', "\\|"),
            r.status,
            code.as_deref().unwrap_or("—"),
            match fate {
                Recorded => "recorded",
                Refused => "refused before recording",
            }
        ));
    }
    eprintln!(
        "| case | status | code | fate |\n|---|---|---|---|\n{}",
        rows.join("\n")
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // Still serving, and nothing was logged as a panic.
    assert_eq!(s.get("/ready").0, 200);
    let log = std::fs::read_to_string(s.data.with_extension("stderr.log")).unwrap_or_default();
    assert!(!log.contains("panicked"), "server log:\n{log}");
}

#[test]
fn echoed_payloads_keep_odd_unicode_and_get_numbers_in_canonical_form() {
    let s = start(&[]);
    let (status, r) = s.post_raw(
        "/execute",
        "application/json",
        "{\"action\":\"echo\",\"nonce\":\"u1\",\"payload\":{\"m\":\"a\u{202e}b\\u0000c\u{200d}\",\"n\":18446744073709552000,\"i\":-9223372036854776000,\"f\":1.0,\"z\":-0.0,\"e\":25e-1}}"
            .as_bytes(),
    );
    assert_eq!(status, 200, "{r}");
    let echo = &r["result"]["echo"];
    assert_eq!(echo["m"], json!("a\u{202e}b\u{0}c\u{200d}"));
    // The handler gets the payload read back from its canonical bytes:
    // 2^64 and -2^63 (as JCS writes them, beyond 64-bit integers) are
    // floats, 1.0 the integer 1, -0.0 the integer 0 and 25e-1 the float 2.5.
    assert_eq!(echo["n"].as_f64(), Some(18_446_744_073_709_551_616.0));
    assert!(echo["n"].is_f64());
    assert_eq!(echo["i"].as_f64(), Some(-9_223_372_036_854_775_808.0));
    assert!(echo["i"].is_f64());
    assert_eq!(echo["f"], json!(1));
    assert!(echo["f"].is_u64());
    assert_eq!(echo["z"], json!(0));
    assert!(echo["z"].is_u64());
    assert_eq!(echo["e"], json!(2.5));
}

// ---------------------------------------------------------------------------
// Oversized bodies are not buffered whole.

/// Announces a 10 MB body, sends 100 KB of it and then nothing: the 413
/// must come anyway, so the server cannot be waiting for (or holding) the
/// rest. Then the connection is closed, not drained.
#[test]
fn an_oversized_body_is_refused_after_the_limit_without_waiting_for_the_rest() {
    let s = start(&[]);
    for framing in [Framing::Length, Framing::Chunked] {
        let before = ledger_size(&s);
        let mut stream = TcpStream::connect(addr(&s)).unwrap();
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
        assert_eq!(ledger_size(&s), before);
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
        let before = ledger_size(&s);
        let start = Instant::now();
        let mut stream = slow_body(addr(&s), framing);
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
        assert_eq!(ledger_size(&s), before);
    }
}

/// A body trickled a byte at a time never completes: the total body time
/// is bounded, not the time between bytes, and the connection is closed
/// rather than drained while the client keeps trickling.
#[test]
fn a_trickled_body_gets_408_and_is_closed() {
    let s = start(&[]);
    let addr = addr(&s);
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
    assert_eq!(ledger_size(&s), 0);
}

/// A request head that never completes is cut off by the head timeout
/// (actix answers a bare `408` — the request never reached the
/// application, so there is no JSON body — and closes); so is a head
/// trickled a byte at a time, and a connection that sends nothing.
#[test]
fn an_incomplete_head_is_closed_by_the_head_timeout() {
    let s = start(&[]);
    let addr = addr(&s);
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
    assert_eq!(ledger_size(&s), 0);
}

/// 50 slow connections (stalled bodies and stalled heads) held open do not
/// slow down anyone else, and all of them are closed in bounded time.
#[test]
fn fifty_slow_connections_do_not_starve_other_clients() {
    let s = start(&[]);
    let addr = addr(&s);
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
    assert_eq!(ledger_size(&s), 5);
    assert_eq!(s.get("/ready").0, 200);
}

/// A second request head trickled on a kept-alive connection (which
/// actix's own head timeout, applied to a connection's first request only,
/// would not bound) is cut off by the head deadline of every request
/// (src/http/conn.rs).
#[test]
fn a_second_head_trickled_on_a_kept_alive_connection_is_closed() {
    let s = start(&[]);
    let mut stream = TcpStream::connect(addr(&s)).unwrap();
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
    let mut stream = TcpStream::connect(addr(&s)).unwrap();
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
    assert_eq!(ledger_size(&s), 3);
    // A stalled second head (a few bytes, then nothing).
    stream.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
    let start = Instant::now();
    let deadline = HEAD_TIMEOUT + LINGER + SLACK;
    assert!(
        closed_within(&mut stream, start, deadline).is_some(),
        "stalled second head: still open after {deadline:?}"
    );
    // An idle kept-alive connection.
    let mut idle = TcpStream::connect(addr(&s)).unwrap();
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
    let addr = addr(&s);
    let body = req(r#""echo""#, "\"frame\"", "{}");
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
    assert_eq!(ledger_size(&s), 0);
    assert_eq!(s.get("/ready").0, 200);
}
