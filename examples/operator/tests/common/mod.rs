//! The `openexec-operator` binary as a real process on a loopback port,
//! with its data directory, outbox and bank in one temporary directory,
//! and a small blocking HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openexec_example_operator::bank::Bank;
use openexec_example_operator::email::Maildir;
use serde_json::{json, Value};

/// The accounts every test starts with.
pub const SEED: &str = "alice=10000,bob=0";

/// Where one operator keeps everything: survives its restarts.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn outbox(&self) -> Maildir {
        Maildir::new(self.dir.path().join("outbox"))
    }

    /// The messages delivered into the outbox's `new/`.
    pub fn messages(&self) -> Vec<String> {
        self.outbox().new_messages().expect("outbox readable")
    }

    /// The bank, opened by the test (the operator must be stopped).
    pub fn bank(&self) -> Bank {
        Bank::open(&self.dir.path().join("bank")).expect("bank opens")
    }

    /// Starts `openexec-operator serve` here; `stall` is the test hook's
    /// value (`OPERATOR_STALL`), empty for none.
    pub fn start(&self, stall: &str) -> Operator {
        let stderr = self.dir.path().join(format!(
            "stderr-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_openexec-operator"))
            .arg("serve")
            .arg("--db-url")
            .arg(format!("sled://{}", self.data().display()))
            .arg("--bind")
            .arg("127.0.0.1:0")
            .env_clear()
            .env("OPENEXEC_WORKERS", "2")
            .env("OPENEXEC_PUBLISH_INTERVAL_MS", "0")
            .env("RUST_LOG", "warn")
            .env("OPERATOR_MAILDIR", self.dir.path().join("outbox"))
            .env("OPERATOR_MAIL_FROM", "ops@example.org")
            .env("OPERATOR_BANK_DB", self.dir.path().join("bank"))
            .env("OPERATOR_BANK_SEED", SEED)
            .env("OPERATOR_STALL", stall)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn openexec-operator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read stdout");
        let Some(base) = line.trim().strip_prefix("openexec listening on ") else {
            let _ = child.wait();
            panic!(
                "the operator did not start: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Operator {
            child,
            base: base.to_owned(),
            stderr,
        }
    }
}

/// A running operator; killed on drop.
pub struct Operator {
    pub child: Child,
    pub base: String,
    pub stderr: PathBuf,
}

impl Operator {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        parts(agent().get(&self.url(path)).call())
    }

    pub fn get_text(&self, path: &str) -> String {
        agent()
            .get(&self.url(path))
            .call()
            .expect("GET")
            .into_string()
            .expect("text")
    }

    pub fn execute(&self, request: &Value) -> (u16, Value) {
        execute_at(&self.base, request)
    }

    /// Sends `request` from another thread, which waits for an answer
    /// that a kill may never give.
    pub fn execute_in_background(&self, request: &Value) -> std::thread::JoinHandle<()> {
        let (base, request) = (self.base.clone(), request.clone());
        std::thread::spawn(move || {
            let _ = agent().post(&format!("{base}/execute")).send_json(request);
        })
    }

    /// Waits (up to 60 s) for the stall hook's line on stderr.
    pub fn wait_for_stall(&self, action: &str, phase: &str) {
        let line = format!("test hook: {action} stalled {phase} its effect");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .contains(&line)
        {
            assert!(Instant::now() < deadline, "no stall line '{line}'");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9, and waits for the process to be gone.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "unclean exit: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every ledger entry, decoded.
    pub fn entries(&self) -> Vec<Value> {
        let (_, health) = self.get("/health");
        let size = health["ledger"]["size"].as_u64().expect("ledger size");
        let (status, page) = self.get(&format!("/ledger/entries?start=0&end={size}"));
        assert_eq!(status, 200);
        page["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| serde_json::from_str(e["entry"].as_str().expect("entry text")).expect("JSON"))
            .collect()
    }

    /// The entries of attempts with `nonce`, in ledger order.
    pub fn entries_of(&self, nonce: &str) -> Vec<Value> {
        self.entries()
            .into_iter()
            .filter(|e| e["nonce"] == nonce)
            .collect()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

pub fn execute_at(base: &str, request: &Value) -> (u16, Value) {
    parts(agent().post(&format!("{base}/execute")).send_json(request))
}

fn parts(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let (status, response) = match result {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("transport error: {e}"),
    };
    let text = response.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A `send_email` request.
pub fn email(nonce: &str, to: &str) -> Value {
    json!({
        "action": "send_email",
        "nonce": nonce,
        "payload": {"to": to, "subject": "Quarterly report", "body": "Hello,\nthe report is attached.\n\n-- \nops"}
    })
}

/// A `transfer` request.
pub fn transfer(nonce: &str, from: &str, to: &str, amount_cents: u64) -> Value {
    json!({
        "action": "transfer",
        "nonce": nonce,
        "payload": {"from": from, "to": to, "amount_cents": amount_cents}
    })
}

/// Header fields (name, value) and body of a message file; panics unless
/// every line ends in CRLF.
pub fn parse_message(path: &Path) -> (Vec<(String, String)>, String) {
    let text = std::fs::read_to_string(path).expect("message file");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    assert!(
        !text.replace("\r\n", "").contains(['\r', '\n']),
        "a line not ended by CRLF"
    );
    assert!(body.is_empty() || body.ends_with("\r\n"));
    let headers = head
        .split("\r\n")
        .map(|line| {
            let (name, value) = line.split_once(": ").expect("Name: value");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    (headers, body.to_owned())
}
