//! A minimal HTTP/1.1 client on a raw `std::net::TcpStream`, for tests that
//! need every byte under their control: content type or none, chunked
//! framing, invalid UTF-8, a head or body that stalls or trickles.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The content type of a JSON request.
pub const JSON: Option<&str> = Some("application/json");

/// A response as read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The status line and headers, as text.
    pub headers: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
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
pub enum Framing {
    /// `Content-Length: <actual length>`.
    Length,
    /// `Transfer-Encoding: chunked`, in 8 KiB chunks.
    Chunked,
}

/// The request head of `POST /execute`.
pub fn head(content_type: Option<&str>, framing: Framing, len: usize) -> Vec<u8> {
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

pub fn chunked(body: &[u8]) -> Vec<u8> {
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
pub fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
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
pub fn exchange(addr: SocketAddr, request: Vec<u8>) -> Reply {
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

pub fn post(addr: SocketAddr, content_type: Option<&str>, framing: Framing, body: &[u8]) -> Reply {
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
pub fn trickle_head(mut writer: TcpStream, padding: usize) -> thread::JoinHandle<bool> {
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
pub fn closed_within(
    stream: &mut TcpStream,
    start: Instant,
    deadline: Duration,
) -> Option<Duration> {
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
