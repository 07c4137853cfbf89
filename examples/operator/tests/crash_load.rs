//! `transfer` (idempotent downstream) under concurrent load, the operator
//! killed with SIGKILL at random moments and restarted on the same data
//! directory, cycle after cycle. Clients send 1-cent transfers from alice
//! to bob, each under its own nonce, and retry a nonce until it is
//! answered `executed` (or a replay of an execution): after a kill, an
//! attempt cut off mid-handler is recorded `interrupted` without
//! completing its nonce, and the retry runs the handler again with the
//! same idempotency key.
//!
//! At the end: bob holds exactly one cent per nonce, alice the rest, the
//! bank recorded one transfer per nonce, and the ledger one `executed`
//! entry per nonce — never two, however often a crash cut an attempt off.
//!
//! Knobs: `OPERATOR_CRASH_CYCLES` (3), `OPERATOR_CRASH_SEED` (from the clock;
//! printed), `OPERATOR_CRASH_CLIENTS` (4).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{agent, transfer, Operator, Site};
use serde_json::Value;

/// New transfers stop here, below alice's 10,000 cents.
const MAX_TRANSFERS: u64 = 9_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift64*), so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// What one attempt at a nonce got.
enum Answer {
    /// 200: executed now, or a replay of the execution.
    Done,
    /// No answer (the process died), or an answer that says "try again":
    /// 409 in flight (a retry raced its own cut-off attempt), 503.
    Again,
}

fn attempt(base: &str, nonce: &str) -> Answer {
    let sent = agent()
        .post(&format!("{base}/execute"))
        .send_json(transfer(nonce, "alice", "bob", 1));
    let (status, body) = match sent {
        Ok(r) => (r.status(), r.into_json::<Value>().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json::<Value>().unwrap_or(Value::Null)),
        Err(_) => return Answer::Again,
    };
    match status {
        200 => {
            let executed = body["outcome"] == "executed"
                || (body["outcome"] == "replayed" && body["original_outcome"] == "executed");
            assert!(executed, "nonce {nonce}: 200 but {body}");
            Answer::Done
        }
        409 | 503 => Answer::Again,
        _ => panic!("nonce {nonce}: unexpected answer {status} {body}"),
    }
}

/// The nonces each client has yet to see executed, and those it has.
#[derive(Default)]
struct Book {
    open: BTreeSet<String>,
    done: BTreeSet<String>,
}

/// Runs `clients` load clients against `base` until `stop`; new nonces are
/// numbered from `next`.
fn load(base: &str, clients: u64, books: &[Mutex<Book>], next: &AtomicU64, stop: &AtomicBool) {
    std::thread::scope(|scope| {
        for (c, book) in books.iter().enumerate().take(clients as usize) {
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let retry = book.lock().unwrap().open.iter().next().cloned();
                    let nonce = match retry {
                        Some(nonce) => nonce,
                        // Alice's 10,000 cents bound the transfers.
                        None if next.load(Ordering::SeqCst) >= MAX_TRANSFERS => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        None => {
                            let n = next.fetch_add(1, Ordering::SeqCst);
                            let nonce = format!("t{c}-{n}");
                            book.lock().unwrap().open.insert(nonce.clone());
                            nonce
                        }
                    };
                    match attempt(base, &nonce) {
                        Answer::Done => {
                            let mut b = book.lock().unwrap();
                            b.open.remove(&nonce);
                            b.done.insert(nonce);
                        }
                        Answer::Again => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
    });
}

/// Every entry of the running operator's ledger, page by page.
fn all_entries(op: &Operator) -> Vec<Value> {
    let (_, health) = op.get("/health");
    let size = health["ledger"]["size"].as_u64().unwrap();
    let mut entries = Vec::new();
    let mut start = 0;
    while start < size {
        let end = size.min(start + 1000);
        let (status, page) = op.get(&format!("/ledger/entries?start={start}&end={end}"));
        assert_eq!(status, 200, "{page}");
        for e in page["entries"].as_array().unwrap() {
            entries.push(serde_json::from_str(e["entry"].as_str().unwrap()).unwrap());
        }
        start = end;
    }
    entries
}

#[test]
fn transfers_under_load_and_kill_9_are_applied_exactly_once_each() {
    let cycles = env_u64("OPERATOR_CRASH_CYCLES", 3);
    let clients = env_u64("OPERATOR_CRASH_CLIENTS", 4);
    let seed = env_u64(
        "OPERATOR_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    eprintln!("crash_load: seed {seed} (OPERATOR_CRASH_SEED), {cycles} cycles, {clients} clients");
    let mut rng = Rng(seed);
    let site = Site::new();
    let books: Vec<Mutex<Book>> = (0..clients).map(|_| Mutex::default()).collect();
    let next = AtomicU64::new(0);

    for _ in 0..cycles {
        let op = site.start("");
        let stop = Arc::new(AtomicBool::new(false));
        let base = op.base.clone();
        let killer = {
            let stop = Arc::clone(&stop);
            let after = Duration::from_millis(300 + rng.below(1200));
            std::thread::spawn(move || {
                std::thread::sleep(after);
                stop.store(true, Ordering::SeqCst);
                op.kill9();
            })
        };
        load(&base, clients, &books, &next, &stop);
        killer.join().unwrap();
    }

    // The last start: every open nonce is retried until it executes.
    let op = site.start("");
    for book in &books {
        let open: Vec<String> = book.lock().unwrap().open.iter().cloned().collect();
        for nonce in open {
            let mut tries = 0;
            while matches!(attempt(&op.base, &nonce), Answer::Again) {
                tries += 1;
                assert!(tries < 200, "nonce {nonce} never executes");
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut b = book.lock().unwrap();
            b.open.remove(&nonce);
            b.done.insert(nonce);
        }
    }
    let done: BTreeSet<String> = books
        .iter()
        .flat_map(|b| b.lock().unwrap().done.clone())
        .collect();

    // The ledger: one `executed` entry per nonce; the cut-off attempts are
    // `interrupted` entries that completed nothing.
    let mut executed: BTreeMap<String, u32> = BTreeMap::new();
    let mut interrupted = 0;
    for e in all_entries(&op) {
        if e["action"] != "transfer" {
            continue;
        }
        match e["outcome"].as_str() {
            Some("executed") => {
                *executed
                    .entry(e["nonce"].as_str().unwrap().to_owned())
                    .or_default() += 1
            }
            Some("interrupted") => {
                assert_eq!(e["effects"], "idempotent-downstream", "{e}");
                interrupted += 1;
            }
            _ => {}
        }
    }
    op.stop();
    assert_eq!(executed.keys().cloned().collect::<BTreeSet<_>>(), done);
    assert!(executed.values().all(|&n| n == 1), "a nonce executed twice");

    // The bank: each nonce's transfer applied once.
    let bank = site.bank();
    let n = done.len() as u64;
    assert_eq!(bank.balance("bob").unwrap(), Some(n));
    assert_eq!(bank.balance("alice").unwrap(), Some(10_000 - n));
    assert_eq!(bank.transfer_count(), done.len());
    eprintln!(
        "crash_load: {n} transfers executed once each; {interrupted} attempts cut off by a kill"
    );
    assert!(n > 0);
}
