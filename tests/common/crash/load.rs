//! The load of the crash test: clients that send `POST /execute` until
//! told to stop (fresh nonces, concurrent duplicates, retries of lost
//! answers, replays), and a watcher that polls the published checkpoint.
//! Every answer is kept as a [`Reply`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use openexec::core::receipt::Receipt;
use serde_json::{json, Value};

use super::Rng;
use crate::common::server::agent;

/// What a client learnt from one `/execute`.
#[derive(Debug)]
pub enum Reply {
    /// A response that carried a receipt.
    Acked(Box<Ack>),
    /// A response without a receipt (never expected here).
    Bare { status: u16, body: String },
    /// Transport error: the outcome is unknown. `refused` = the connection
    /// was never made (the server was already gone).
    Unknown { refused: bool },
}

#[derive(Debug)]
pub struct Ack {
    pub status: u16,
    pub outcome: String,
    pub code: Option<String>,
    pub original_outcome: Option<String>,
    pub exec_id: String,
    pub value: Option<u64>,
    /// What an `echo` answered (`result.echo.n`).
    pub echoed: Option<String>,
    pub receipt: Receipt,
}

#[derive(Debug)]
pub struct Sent {
    pub nonce: String,
    pub cycle: usize,
    pub reply: Reply,
}

pub fn counter_body(name: &str, nonce: &str) -> String {
    json!({"action": "counter", "payload": {"name": name}, "nonce": nonce}).to_string()
}

/// Whether a load nonce is sent as `echo` (its last byte odd: half of them).
pub fn is_echo(nonce: &str) -> bool {
    nonce.bytes().last().is_some_and(|b| b % 2 == 1)
}

/// The one body a load nonce is ever sent with.
pub fn body_for(nonce: &str) -> String {
    if is_echo(nonce) {
        json!({"action": "echo", "payload": {"n": nonce}, "nonce": nonce}).to_string()
    } else {
        counter_body(nonce, nonce)
    }
}

pub fn execute(agent: &ureq::Agent, base: &str, body: &str) -> Reply {
    let result = agent
        .post(&format!("{base}/execute"))
        .set("Content-Type", "application/json")
        .send_string(body);
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            return Reply::Unknown {
                refused: t.kind() == ureq::ErrorKind::ConnectionFailed,
            }
        }
    };
    let status = response.status();
    let Ok(text) = response.into_string() else {
        return Reply::Unknown { refused: false };
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let Some(receipt) = body.get("receipt").filter(|r| !r.is_null()) else {
        return Reply::Bare { status, body: text };
    };
    let receipt: Receipt = match serde_json::from_value(receipt.clone()) {
        Ok(r) => r,
        Err(e) => panic!("unparsable receipt ({e}) in {status} {text}"),
    };
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    Reply::Acked(Box::new(Ack {
        status,
        outcome: s("outcome").unwrap_or_default(),
        code: s("code"),
        original_outcome: s("original_outcome"),
        exec_id: s("exec_id").unwrap_or_default(),
        value: body
            .get("result")
            .and_then(|r| r.get("value"))
            .and_then(Value::as_u64),
        echoed: body
            .get("result")
            .and_then(|r| r.get("echo"))
            .and_then(|e| e.get("n"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        receipt,
    }))
}

/// Nonces the clients of one cycle may resend.
pub struct Pools {
    /// Nonces whose answer was lost in an earlier cycle (a retry after a crash).
    pub lost: Vec<String>,
    /// Nonces acknowledged in an earlier cycle (a plain retry: a replay).
    pub acked: Vec<String>,
    /// Nonces just created by some client, resent by others at once
    /// (concurrent duplicates).
    pub hot: Mutex<Vec<String>>,
}

/// One load client: requests (`body_for`: counter name == nonce, or echo) until
/// `stop`. Mix: 45 % fresh nonces, 20 % concurrent duplicates, 12 % retries
/// of lost nonces, 8 % replays of acknowledged ones, 15 % immediate re-sends
/// of this client's last nonce.
pub fn client(
    base: &str,
    id: u64,
    cycle: usize,
    seed: u64,
    stop: &AtomicBool,
    pools: &Pools,
) -> Vec<Sent> {
    let agent = agent();
    let mut rng = Rng::new(seed ^ ((cycle as u64) << 32) ^ (id << 8) ^ 0xC11E);
    let mut sent = Vec::new();
    let mut last: Option<String> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.below(100);
        let nonce = if roll < 12 && !pools.lost.is_empty() {
            rng.pick(&pools.lost).clone()
        } else if roll < 20 && !pools.acked.is_empty() {
            rng.pick(&pools.acked).clone()
        } else if roll < 35 && last.is_some() {
            last.clone().unwrap_or_default()
        } else if roll < 55 {
            let mut hot = pools.hot.lock().unwrap();
            if hot.is_empty() || rng.below(4) == 0 {
                i += 1;
                let n = format!("h{cycle}-{id}-{i}");
                hot.push(n.clone());
                n
            } else {
                let recent = &hot[hot.len().saturating_sub(3)..];
                rng.pick(recent).clone()
            }
        } else {
            i += 1;
            format!("n{cycle}-{id}-{i}")
        };
        let reply = execute(&agent, base, &body_for(&nonce));
        let refused = matches!(reply, Reply::Unknown { refused: true });
        last = Some(nonce.clone());
        sent.push(Sent {
            nonce,
            cycle,
            reply,
        });
        if refused {
            // The server is gone; do not spin until the harness notices.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sent
}

/// Polls `GET /ledger/checkpoint` until `stop`; returns every distinct
/// text in the order seen.
pub fn watcher(base: &str, stop: &AtomicBool) -> Vec<String> {
    let agent = agent();
    let mut seen: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(r) = agent.get(&format!("{base}/ledger/checkpoint")).call() {
            if let Ok(text) = r.into_string() {
                if seen.last() != Some(&text) {
                    seen.push(text);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    seen
}
