//! A real `openexec serve` process on a loopback port, with its own data
//! directory, and a small blocking HTTP client for tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// How long [`TestServer::stop`] waits for the process to exit: the
/// server's own drain limit (10 s) with room for a loaded machine.
pub const STOP_LIMIT: Duration = Duration::from_secs(30);

/// A running server; killed on drop.
pub struct TestServer {
    pub child: Child,
    pub base: String,
    pub data: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// Starts `openexec serve` with extra environment variables, in a fresh
/// data directory.
pub fn start(env: &[(&str, &str)]) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = start_in(&data, env).expect("server starts");
    server._dir = Some(dir);
    server
}

/// Starts a server on an existing data directory; `Err(stderr)` if it
/// refuses to start.
pub fn start_in(data: &std::path::Path, env: &[(&str, &str)]) -> Result<TestServer, String> {
    std::fs::create_dir_all(data).expect("data dir");
    // stderr goes to a file: an unread pipe could fill and block the server.
    let log_path = data.with_extension("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = Command::new(super::binary());
    cmd.arg("serve")
        .env_clear()
        .env("OPENEXEC_BIND", "127.0.0.1:0")
        .env("OPENEXEC_DB_URL", format!("sled://{}", data.display()))
        .env("OPENEXEC_WORKERS", "2")
        // Tests read back the checkpoint they just grew; the witness tests
        // set their own interval.
        .env("OPENEXEC_PUBLISH_INTERVAL_MS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn openexec");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read stdout");
    let Some(url) = line.trim().strip_prefix("openexec listening on ") else {
        let _ = child.wait();
        return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
    };
    Ok(TestServer {
        child,
        base: url.to_owned(),
        data: data.to_owned(),
        _dir: None,
    })
}

/// Runs `openexec serve` expecting it to refuse to start; returns stderr.
pub fn refuses(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    match start_in(&dir.path().join("data"), env) {
        Ok(mut s) => {
            let _ = s.child.kill();
            panic!("server started but should have refused");
        }
        Err(stderr) => stderr,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .strip_prefix("http://")
            .expect("http base")
            .parse()
            .expect("socket address")
    }

    /// The ledger's size, from `/health`.
    pub fn ledger_size(&self) -> u64 {
        let (status, health) = self.get_json("/health");
        assert_eq!(status, 200);
        health["ledger"]["size"].as_u64().expect("ledger.size")
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        into_parts(agent().get(&self.url(path)).call())
    }

    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get(path);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, "application/json", body.to_string().as_bytes())
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        let (status, text) = into_parts(
            agent()
                .post(&self.url(path))
                .set("Content-Type", content_type)
                .send_bytes(body),
        );
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn execute(&self, body: &Value) -> (u16, Value) {
        self.post_json("/execute", body)
    }

    /// The log's verifier key, from `/ledger/key`.
    pub fn verifier(&self) -> openexec::core::signing::LogVerifier {
        let (_, text) = self.get("/ledger/key");
        openexec::core::signing::LogVerifier::from_vkey(text.trim()).expect("vkey")
    }

    /// Sends SIGTERM and waits for a clean exit; see [`terminate`].
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client with a 30 s timeout per request.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// Sends `request` with `body` as JSON (or no body) and returns the
/// response, whatever its status; panics on a transport error.
pub fn send(request: ureq::Request, body: Option<&Value>) -> ureq::Response {
    let what = format!("{} {}", request.method(), request.url());
    let answer = match body {
        Some(b) => request.send_json(b.clone()),
        None => request.call(),
    };
    match answer {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn into_parts(result: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Sends SIGTERM to `child` and waits for a clean exit (status 0). Panics
/// if the process dies otherwise, or (after a SIGKILL) if it is still
/// running [`STOP_LIMIT`] later, so that a server that ignores the signal
/// fails its test instead of hanging it.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = std::time::Instant::now() + STOP_LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(
                status.success(),
                "the server did not stop cleanly: {status}"
            );
            return;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server was still running {STOP_LIMIT:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
