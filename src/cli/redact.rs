//! `openexec redact`: asks a running service, through its admin socket,
//! to erase an entry's kept content and record why.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

/// Arguments of `openexec redact`.
#[derive(Debug, Args)]
pub struct RedactArgs {
    /// The running service's admin socket (`serve --admin-socket`).
    #[arg(long, env = "OPENEXEC_ADMIN_SOCKET")]
    pub admin_socket: PathBuf,
    /// The exec_id of the attempt whose content to erase.
    #[arg(long, conflicts_with = "index", required_unless_present = "index")]
    pub exec_id: Option<String>,
    /// The index of the entry whose content to erase.
    #[arg(long)]
    pub index: Option<u64>,
    /// Why: personal_data, leaked_secret, legal or other.
    #[arg(long)]
    pub reason: String,
}

/// How long the service may take to record and erase.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Sends the redaction; prints the service's JSON answer (stdout on
/// success, stderr with the refusal's detail otherwise).
#[must_use]
pub fn run(args: &RedactArgs) -> ExitCode {
    let body = match (&args.exec_id, args.index) {
        (Some(exec_id), _) => json!({"exec_id": exec_id, "reason": args.reason}),
        (None, Some(index)) => json!({"index": index, "reason": args.reason}),
        (None, None) => json!({"reason": args.reason}),
    };
    match post(&args.admin_socket, "/admin/redact", &body.to_string()) {
        Ok((200, body)) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or(body);
            eprintln!("openexec: redaction refused ({status}): {detail}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "openexec: admin socket {}: {e}",
                args.admin_socket.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// One HTTP/1.1 POST over the Unix socket at `socket`: the status and body.
fn post(socket: &Path, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    parse_response(&answer)
}

fn parse_response(answer: &[u8]) -> std::io::Result<(u16, String)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(at) = response
        .parse(answer)
        .map_err(|e| bad(&format!("not an HTTP response: {e}")))?
    else {
        return Err(bad("the answer ends inside its headers"));
    };
    let status = response.code.ok_or_else(|| bad("no status"))?;
    Ok((status, String::from_utf8_lossy(&answer[at..]).into_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn responses_give_their_status_and_body() {
        let (status, body) =
            super::parse_response(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}")
                .unwrap();
        assert_eq!((status, body.as_str()), (404, "{}"));
        assert!(super::parse_response(b"HTTP/1.1 200 OK\r\ncontent-").is_err());
        assert!(super::parse_response(b"garbage\r\n\r\n").is_err());
    }
}
