//! The handler API as a service runs it: the registry served and recorded,
//! effects classes in entries, deadlines, panics, blocking handlers and
//! idempotency keys — over HTTP, against the real server on a loopback
//! port (the `openexec` binary for the built-in actions, `http::run` in
//! this process for actions defined here).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openexec::action::{Action, ActionError, Context, Effects, Registry};
use openexec::core::canonical::to_canonical_bytes;
use openexec::core::entry::Entry;
use openexec::core::hash::Hash;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use common::server;

/// The entry at `index` of a running server, decoded.
fn entry_at(s: &server::TestServer, index: u64) -> Entry {
    let (status, body) = s.get_json(&format!("/ledger/entries/{index}"));
    assert_eq!(status, 200, "{body}");
    decode_entry(&body)
}

/// The entry of a `GET /ledger/entries/{index}` answer.
fn decode_entry(body: &Value) -> Entry {
    let text = body["entry"].as_str().unwrap_or_else(|| panic!("{body}"));
    Entry::from_canonical_bytes(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn the_registry_is_served_with_its_fingerprint_and_every_entry_records_it() {
    let s = server::start(&[]);
    let (status, handlers) = s.get_json("/handlers");
    assert_eq!(status, 200);
    let names: Vec<&str> = handlers["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["add", "counter", "echo", "sha256"]);
    let counter = &handlers["handlers"][1];
    assert_eq!(counter["effects"], "at-most-once");
    assert_eq!(
        counter["input_schema"]["properties"]["name"]["type"],
        "string"
    );
    assert_eq!(handlers["handlers"][2]["effects"], "none");
    // The fingerprint is SHA-256 of the RFC 8785 bytes of the rest.
    let fingerprint = handlers["fingerprint"].as_str().unwrap().to_owned();
    let mut described = handlers.clone();
    described.as_object_mut().unwrap().remove("fingerprint");
    let bytes = to_canonical_bytes(&described).unwrap();
    assert_eq!(fingerprint, Hash::sha256(&bytes).to_base64());

    let (status, _) = s.execute(&json!({"action": "echo", "payload": {"m": 1}, "nonce": "h-1"}));
    assert_eq!(status, 200);
    let (status, _) =
        s.execute(&json!({"action": "counter", "payload": {"name": "c"}, "nonce": "h-2"}));
    assert_eq!(status, 200);
    let (status, _) = s.execute(&json!({"action": "nope", "payload": {}, "nonce": "h-3"}));
    assert_eq!(status, 400);
    let (status, _) = s.execute(&json!({"action": "echo", "payload": {"m": 1}, "nonce": "h-1"}));
    assert_eq!(status, 200);

    let entries: Vec<Entry> = (0..4).map(|i| entry_at(&s, i)).collect();
    for e in &entries {
        assert_eq!(e.registry.map(|h| h.to_base64()), Some(fingerprint.clone()));
    }
    assert_eq!(entries[0].effects, Some(Effects::None));
    assert_eq!(entries[1].effects, Some(Effects::AtMostOnce));
    // A rejection and a replay ran no handler: no class.
    assert_eq!(entries[2].effects, None);
    assert_eq!(entries[3].effects, None);

    // `openexec verify` names them for a receipt; `openexec audit` names
    // the registry that wrote each run of entries.
    let (_, receipt) = s.get_json(&format!("/receipts/{}", entries[1].exec_id));
    let dir = tempfile::tempdir().unwrap();
    let (receipt_file, key_file) = (dir.path().join("r.json"), dir.path().join("log.vkey"));
    std::fs::write(&receipt_file, receipt.to_string()).unwrap();
    std::fs::write(&key_file, s.get("/ledger/key").1).unwrap();
    let verify = std::process::Command::new(common::binary())
        .args(["verify", "--key"])
        .arg(&key_file)
        .arg(&receipt_file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "effects at-most-once, handler registry {fingerprint}"
        )),
        "{said}"
    );
    let mut s = s;
    s.stop();
    let audit = std::process::Command::new(common::binary())
        .args(["audit", "--data"])
        .arg(&s.data)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.status.success(), "{said}");
    assert!(
        said.contains(&format!("registry {fingerprint}: entries 0..=3")),
        "{said}"
    );
}

// ---- actions defined here, served by `http::run` in this process ----

#[derive(Deserialize, JsonSchema)]
struct Empty {}

#[derive(Serialize, JsonSchema)]
struct Key {
    key: String,
    exec_id: String,
}

impl Key {
    /// What the context tells the handler of its attempt.
    fn of(ctx: &Context) -> Self {
        Self {
            key: ctx.idempotency_key().to_string(),
            exec_id: ctx.exec_id().to_owned(),
        }
    }
}

/// Waits far past its deadline.
struct Sleepy;
impl Action for Sleepy {
    const NAME: &'static str = "sleepy";
    const EFFECTS: Effects = Effects::AtMostOnce;
    const DEADLINE: Duration = Duration::from_millis(200);
    type Payload = Empty;
    type Output = Key;
    async fn run(&self, _: Context, _: Empty) -> Result<Key, ActionError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Err("woke up".into())
    }
}

static PANICS: AtomicBool = AtomicBool::new(true);

/// Panics while `PANICS` is set; runs on the HTTP worker (`INLINE`), where
/// its panic must be contained as well as on the handler runtime.
struct Panicky;
impl Action for Panicky {
    const NAME: &'static str = "panicky";
    const INLINE: bool = true;
    const EFFECTS: Effects = Effects::None;
    type Payload = Empty;
    type Output = Key;
    async fn run(&self, ctx: Context, _: Empty) -> Result<Key, ActionError> {
        assert!(!PANICS.load(Ordering::SeqCst), "a handler's own panic");
        Ok(Key::of(&ctx))
    }
}

static BLOCKING: AtomicBool = AtomicBool::new(false);
static UNBLOCK: AtomicBool = AtomicBool::new(false);

/// Blocks its thread (as a synchronous client would) until `UNBLOCK`.
struct Blocker;
impl Action for Blocker {
    const NAME: &'static str = "blocker";
    const EFFECTS: Effects = Effects::AtMostOnce;
    type Payload = Empty;
    type Output = Key;
    async fn run(&self, ctx: Context, _: Empty) -> Result<Key, ActionError> {
        BLOCKING.store(true, Ordering::SeqCst);
        while !UNBLOCK.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Key::of(&ctx))
    }
}

/// Returns its idempotency key: idempotent downstream.
struct Keyed;
#[derive(Deserialize, JsonSchema)]
struct Amount {
    amount: u64,
}
impl Action for Keyed {
    const NAME: &'static str = "keyed";
    const EFFECTS: Effects = Effects::IdempotentDownstream;
    type Payload = Amount;
    type Output = Key;
    fn check(&self, p: &Amount) -> Result<(), String> {
        if p.amount == 0 {
            return Err("amount must be positive".into());
        }
        Ok(())
    }
    async fn run(&self, ctx: Context, _: Amount) -> Result<Key, ActionError> {
        Ok(Key::of(&ctx))
    }
}

/// Takes its time: long enough for its client to hang up.
struct Slow;
impl Action for Slow {
    const NAME: &'static str = "slow";
    const EFFECTS: Effects = Effects::AtMostOnce;
    type Payload = Empty;
    type Output = Key;
    async fn run(&self, ctx: Context, _: Empty) -> Result<Key, ActionError> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(Key::of(&ctx))
    }
}

/// Returns a result past the bound on recorded results.
struct Huge;
impl Action for Huge {
    const NAME: &'static str = "huge";
    const EFFECTS: Effects = Effects::AtMostOnce;
    type Payload = Empty;
    type Output = String;
    async fn run(&self, _: Context, _: Empty) -> Result<String, ActionError> {
        Ok("x".repeat(openexec::exec::MAX_RESULT_BYTES + 1))
    }
}

/// A server of this process with the actions above, one HTTP worker.
struct InProcess(common::in_process::InProcess);

impl InProcess {
    fn start() -> Self {
        let registry = Registry::builder("handlers-test", "0.0.1")
            .register(Sleepy)
            .register(Panicky)
            .register(Blocker)
            .register(Keyed)
            .register(Slow)
            .register(Huge)
            .build()
            .unwrap();
        Self(common::in_process::InProcess::start(registry, 1))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let request = server::agent().request(method, &format!("{}{path}", self.0.base));
        let response = server::send(request, body);
        let status = response.status();
        (status, response.into_json().unwrap_or(Value::Null))
    }

    fn execute(&self, action: &str, payload: Value, nonce: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/execute",
            Some(&json!({"action": action, "payload": payload, "nonce": nonce})),
        )
    }

    fn entry(&self, index: u64) -> Entry {
        let (_, body) = self.call("GET", &format!("/ledger/entries/{index}"), None);
        decode_entry(&body)
    }
}

#[test]
fn operator_actions_run_under_deadlines_panics_and_blocking_without_losing_an_attempt() {
    let s = InProcess::start();

    // Past its deadline: cancelled, recorded failed, never re-run.
    let (status, body) = s.execute("sleepy", json!({}), "d-1");
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], "deadline_exceeded");
    let e = s.entry(0);
    assert_eq!(
        (e.outcome.as_str(), e.reason.as_str()),
        ("failed", "deadline_exceeded")
    );
    assert_eq!(e.effects, Some(Effects::AtMostOnce));
    let (status, body) = s.execute("sleepy", json!({}), "d-1");
    assert_eq!(
        (status, body["replayed"].clone()),
        (504, json!(true)),
        "{body}"
    );

    // A handler's panic: recorded failed, and the service goes on.
    let (status, body) = s.execute("panicky", json!({}), "p-1");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["code"], "handler_panic");
    assert_eq!(s.entry(2).reason, "handler_panic");
    PANICS.store(false, Ordering::SeqCst);
    let (status, _) = s.execute("panicky", json!({}), "p-2");
    assert_eq!(status, 200);

    // A handler that blocks its thread does not stall the HTTP worker (the
    // server has one): health, reads and other actions answer meanwhile.
    let blocked = {
        let base = s.0.base.clone();
        std::thread::spawn(move || {
            let r = server::agent()
                .post(&format!("{base}/execute"))
                .send_json(json!({"action": "blocker", "payload": {}, "nonce": "b-1"}));
            r.map(|r| r.status()).unwrap_or(0)
        })
    };
    while !BLOCKING.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.call("GET", "/health", None).0, 200);
    assert_eq!(s.execute("keyed", json!({"amount": 1}), "k-0").0, 200);
    assert!(
        !blocked.is_finished(),
        "the blocker returned before it was let go"
    );
    UNBLOCK.store(true, Ordering::SeqCst);
    assert_eq!(blocked.join().unwrap(), 200);
}

#[test]
fn the_idempotency_key_names_the_request_and_a_failed_check_reserves_nothing() {
    let s = InProcess::start();
    // A payload the check refuses: 400, and the nonce stays free.
    let (status, body) = s.execute("keyed", json!({"amount": 0}), "i-1");
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("invalid_payload"))
    );
    // A payload that does not decode: refused the same way.
    let (status, body) = s.execute("keyed", json!({"amount": "x"}), "i-1");
    assert_eq!(
        (status, body["code"].clone()),
        (400, json!("invalid_payload"))
    );
    let (status, first) = s.execute("keyed", json!({"amount": 5}), "i-1");
    assert_eq!(status, 200, "{first}");
    let key = first["result"]["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64);
    assert_eq!(s.entry(2).effects, Some(Effects::IdempotentDownstream));
    // Its replay repeats it; another nonce or payload is another request.
    let (_, again) = s.execute("keyed", json!({"amount": 5}), "i-1");
    assert_eq!(again["result"]["key"], key.as_str());
    let (_, other) = s.execute("keyed", json!({"amount": 5}), "i-2");
    assert_ne!(other["result"]["key"], key.as_str());
    let (_, more) = s.execute("keyed", json!({"amount": 6}), "i-3");
    assert_ne!(more["result"]["key"], other["result"]["key"]);
}

#[test]
fn a_client_that_hangs_up_mid_handler_leaves_a_recorded_attempt_not_a_nonce_in_flight() {
    use std::io::Write as _;
    let s = InProcess::start();
    let body = json!({"action": "slow", "payload": {}, "nonce": "gone-1"}).to_string();
    let addr = s.0.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Hang up hard (RST), as a client that dies does.
    rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO)).unwrap();
    drop(stream);
    // The attempt still ends in its entry; the retry is its replay.
    let mut answer = (0, Value::Null);
    for _ in 0..100 {
        answer = s.execute("slow", json!({}), "gone-1");
        if answer.0 != 409 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = answer;
    assert_eq!(
        (status, body["outcome"].clone()),
        (200, json!("replayed")),
        "{body}"
    );
    let (_, health) = s.call("GET", "/health", None);
    let size = health["ledger"]["size"].as_u64().unwrap();
    let executed = (0..size)
        .map(|i| s.entry(i))
        .filter(|e| e.outcome.as_str() == "executed")
        .count();
    assert_eq!(executed, 1);
}

#[test]
fn a_result_past_the_bound_is_recorded_failed_and_its_nonce_is_done() {
    let s = InProcess::start();
    let (status, body) = s.execute("huge", json!({}), "big-1");
    assert_eq!(
        (status, body["code"].clone()),
        (500, json!("result_too_large")),
        "{body}"
    );
    let e = s.entry(0);
    assert_eq!(
        (e.outcome.as_str(), e.reason.as_str()),
        ("failed", "result_too_large")
    );
    // Its nonce is done, not left in flight: the retry is a replay.
    let (status, body) = s.execute("huge", json!({}), "big-1");
    assert_eq!(
        (status, body["replayed"].clone()),
        (500, json!(true)),
        "{body}"
    );
}
