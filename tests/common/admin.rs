//! A client of the admin socket (`openexec serve --admin-socket`) for
//! tests: one `POST /admin/redact` per connection, over a raw Unix stream.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::Value;

/// One `POST /admin/redact` with `body`: the status and the JSON body
/// (`Null` when the body is not JSON).
pub fn redact(socket: &Path, body: &str) -> (u16, Value) {
    let mut stream = UnixStream::connect(socket).unwrap();
    write!(
        stream,
        "POST /admin/redact HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
