//! Support for the PostgreSQL tests: the database they run against (read
//! from `OPENEXEC_TEST_DB_URL`, which `scripts/pg-throwaway` prints; a
//! test fails, never skips, without it), a fresh database per test, real
//! `openexec serve` nodes pointed at it, and checks over what they wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use openexec::core::checkpoint::SignedCheckpoint;
use openexec::core::hash::Hash;
use openexec::core::proof::{verify_consistency, TreeSize};
use openexec::core::signing::LogVerifier;
use serde_json::Value;

/// The test cluster's URL; a clear failure when it is not given.
pub fn test_db_url() -> String {
    match std::env::var("OPENEXEC_TEST_DB_URL") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "OPENEXEC_TEST_DB_URL is not set: the PostgreSQL tests need a database they may create \
             databases in. Start a throwaway one with\n  export OPENEXEC_TEST_DB_URL=$(scripts/pg-throwaway)\n\
             and stop it with\n  scripts/pg-throwaway stop \"$OPENEXEC_TEST_DB_URL\""
        ),
    }
}

/// Runs SQL statements on `url` and returns the rows of the last one.
pub fn sql(url: &str, statements: &[&str]) -> Vec<tokio_postgres::Row> {
    let url = url.to_owned();
    let statements: Vec<String> = statements.iter().map(|s| (*s).to_owned()).collect();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
            tokio::spawn(connection);
            let mut rows = Vec::new();
            for s in &statements {
                rows = client
                    .query(s.as_str(), &[])
                    .await
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            rows
        })
}

/// The URL of a new, empty database on the test cluster.
pub fn fresh_database(name: &str) -> String {
    let url = test_db_url();
    let db = format!("oe_{name}_{}", std::process::id());
    sql(
        &url,
        &[
            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            &format!("CREATE DATABASE {db}"),
        ],
    );
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{db}")
}

/// The name of the database of `url`.
pub fn database_of(url: &str) -> String {
    url.rsplit_once('/').expect("a database").1.to_owned()
}

/// A new log key file in `dir`.
pub fn keygen(dir: &Path) -> PathBuf {
    let path = dir.join("log.key");
    let out = Command::new(binary())
        .args(["keygen", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "keygen: {out:?}");
    path
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openexec"))
}

/// An `openexec serve` node on the database; killed when dropped.
pub struct Node {
    pub child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
}

/// Starts a node on `db_url` with the key file `key`; `Err(stderr)` if it
/// refuses to start.
pub fn try_start(db_url: &str, key: &Path, env: &[(&str, &str)]) -> Result<Node, String> {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("OPENEXEC_DB_URL", db_url)
        .env("OPENEXEC_LOG_KEY", key)
        .env("OPENEXEC_BIND", "127.0.0.1:0")
        .env("OPENEXEC_WORKERS", "2")
        .env("OPENEXEC_PUBLISH_INTERVAL_MS", "0")
        .env("OPENEXEC_REJECT_RATE", "0")
        .env("OPENEXEC_REJECT_GLOBAL_RATE", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(url) = line.trim().strip_prefix("openexec listening on ") else {
        let _ = child.wait();
        return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
    };
    Ok(Node {
        child,
        base: url.to_owned(),
        dir,
    })
}

pub fn start(db_url: &str, key: &Path) -> Node {
    try_start(db_url, key, &[]).unwrap_or_else(|stderr| panic!("node did not start: {stderr}"))
}

impl Node {
    /// `POST /execute`: status and body; `None` if the node did not answer.
    pub fn try_execute(&self, body: &Value) -> Option<(u16, Value)> {
        let answer = agent()
            .post(&format!("{}/execute", self.base))
            .send_json(body.clone());
        let response = match answer {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(_) => return None,
        };
        let status = response.status();
        Some((status, response.into_json().unwrap_or(Value::Null)))
    }

    pub fn execute(&self, body: &Value) -> (u16, Value) {
        self.try_execute(body).expect("the node answers")
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = match agent().get(&format!("{}{path}", self.base)).call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn vkey(&self) -> String {
        match self.get("/ledger/key").1 {
            Value::String(s) => s.trim().to_owned(),
            other => panic!("vkey: {other}"),
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build()
}

/// Every response's receipt verifies offline with `openexec verify`.
pub fn verify_all(vkey: &str, responses: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("receipts.jsonl");
    let lines: Vec<String> = responses.iter().map(Value::to_string).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = Command::new(binary())
        .args(["verify", "--key", vkey])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openexec verify: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if responses.len() > 1 {
        assert!(
            stdout.contains(&format!("{} receipts verified", responses.len())),
            "{stdout}"
        );
    }
}

/// `openexec audit --db-url`: whether it found the log sound, and what it
/// printed.
pub fn audit(db_url: &str) -> (bool, String) {
    let out = Command::new(binary())
        .args(["audit", "--db-url", db_url])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The (size, root) of a signed checkpoint note of this log.
pub fn tree_of(note: &str, verifier: &LogVerifier) -> (u64, Hash) {
    let c = SignedCheckpoint::open(note.as_bytes(), verifier).expect("a checkpoint of this log");
    (c.size(), c.root())
}

/// Every tree seen is consistent with every later one: one root per size,
/// and a consistency proof, served by `node`, from each size to the next.
pub fn assert_consistent(node: &Node, trees: &[(u64, Hash)]) {
    let mut by_size = std::collections::BTreeMap::new();
    for (size, root) in trees {
        if let Some(other) = by_size.insert(*size, *root) {
            assert_eq!(other, *root, "two roots for size {size}: a fork");
        }
    }
    let sizes: Vec<(u64, Hash)> = by_size.into_iter().collect();
    for pair in sizes.windows(2) {
        let ((old, old_root), (new, new_root)) = (pair[0], pair[1]);
        if old == 0 {
            continue;
        }
        let (status, proof) = node.get(&format!("/ledger/proof/consistency?from={old}&to={new}"));
        assert_eq!(status, 200, "{proof}");
        let hashes: Vec<Hash> = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
            .collect();
        verify_consistency(&hashes, TreeSize(old), TreeSize(new), &old_root, &new_root)
            .unwrap_or_else(|e| panic!("tree {old} is not a prefix of tree {new}: {e}"));
    }
}

/// The log's entries in the database, by index: (index, entry JSON).
pub fn entries(db_url: &str) -> Vec<(i64, Value)> {
    sql(
        db_url,
        &["SELECT idx, record FROM openexec_entries ORDER BY idx"],
    )
    .iter()
    .map(|r| {
        let record: Vec<u8> = r.get(1);
        (r.get(0), serde_json::from_slice(&record).unwrap())
    })
    .collect()
}

/// Indexes 0..n, each once, and the head at n.
pub fn assert_contiguous(db_url: &str, entries: &[(i64, Value)]) {
    for (i, (idx, entry)) in entries.iter().enumerate() {
        assert_eq!(*idx, i64::try_from(i).unwrap(), "a gap in the indexes");
        assert_eq!(entry["index"].as_i64(), Some(*idx));
    }
    let head: i64 = sql(db_url, &["SELECT size FROM openexec_head"])[0].get(0);
    assert_eq!(head, i64::try_from(entries.len()).unwrap());
}

/// No nonce ran (or may have run) twice: at most one entry per tenant and
/// nonce whose outcome is executed, failed or interrupted.
pub fn assert_each_nonce_ran_once(entries: &[(i64, Value)]) {
    let mut ran = std::collections::HashMap::new();
    for (idx, e) in entries {
        let outcome = e["outcome"].as_str().unwrap();
        if ["executed", "failed", "interrupted"].contains(&outcome) {
            let key = (e["tenant"].to_string(), e["nonce"].to_string());
            if let Some(first) = ran.insert(key.clone(), *idx) {
                panic!("nonce {key:?} ran at {first} and again at {idx}");
            }
        }
    }
}
