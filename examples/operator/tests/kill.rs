//! kill -9 in the middle of a handler, at the stall points of the test
//! hook (`OPERATOR_STALL`), then a restart on the same data directory and
//! the client's retry of the same request:
//! - `send_email` (at most once) is recorded `interrupted` and never run
//!   again: one message if it was cut off after writing it, none before;
//! - `transfer` (idempotent downstream) is recorded `interrupted`, and the
//!   retry runs it again with the same idempotency key: the bank applies
//!   it exactly once either way.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use common::{email, transfer, Operator, Site};
use serde_json::Value;

/// The one entry of `nonce` after the restart: `interrupted`, with the
/// handler's effects class; its receipt is served. Returns its exec_id.
fn interrupted_entry(op: &Operator, nonce: &str, effects: &str) -> String {
    let entries = op.entries_of(nonce);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(
        (entry["outcome"].as_str(), entry["effects"].as_str()),
        (Some("interrupted"), Some(effects)),
        "{entry}"
    );
    let exec_id = entry["exec_id"].as_str().unwrap().to_owned();
    let (status, receipt) = op.get(&format!("/receipts/{exec_id}"));
    assert_eq!(status, 200, "{receipt}");
    exec_id
}

/// The retry of an at-most-once request cut off by a crash: answered as a
/// replay of the interrupted attempt, not run.
fn assert_replay_of_interrupted(op: &Operator, request: &Value, exec_id: &str) {
    let (status, r) = op.execute(request);
    assert_eq!(
        (
            status,
            r["replayed"].as_bool(),
            r["original_outcome"].as_str(),
            r["exec_id"].as_str()
        ),
        (500, Some(true), Some("interrupted"), Some(exec_id)),
        "{r}"
    );
}

#[test]
fn send_email_killed_after_writing_is_interrupted_and_never_sent_again() {
    let site = Site::new();
    let op = site.start("send_email:after");
    let request = email("mail-k1", "alice@example.org");
    let client = op.execute_in_background(&request);
    op.wait_for_stall("send_email", "after");
    assert_eq!(site.messages().len(), 1);
    op.kill9();
    client.join().unwrap();

    let op = site.start("");
    let exec_id = interrupted_entry(&op, "mail-k1", "at-most-once");
    assert_replay_of_interrupted(&op, &request, &exec_id);
    assert_replay_of_interrupted(&op, &request, &exec_id);
    assert_eq!(site.messages().len(), 1, "the message was sent once");
}

#[test]
fn send_email_killed_before_writing_is_interrupted_and_never_sent() {
    let site = Site::new();
    let op = site.start("send_email:before");
    let request = email("mail-k2", "alice@example.org");
    let client = op.execute_in_background(&request);
    op.wait_for_stall("send_email", "before");
    op.kill9();
    client.join().unwrap();

    let op = site.start("");
    let exec_id = interrupted_entry(&op, "mail-k2", "at-most-once");
    assert_replay_of_interrupted(&op, &request, &exec_id);
    assert_eq!(site.messages().len(), 0, "the message was never sent");
}

/// Kills `transfer` of 2500 from alice to bob at `phase`, restarts, and
/// retries: the retry runs the handler again and is answered `executed`;
/// the bank holds one transfer. Returns the retry's result.
fn transfer_killed_then_retried(phase: &str) -> Value {
    let site = Site::new();
    let op = site.start(&format!("transfer:{phase}"));
    let nonce = format!("pay-{phase}");
    let request = transfer(&nonce, "alice", "bob", 2500);
    let client = op.execute_in_background(&request);
    op.wait_for_stall("transfer", phase);
    op.kill9();
    client.join().unwrap();
    {
        // What the crash left downstream: applied, or not yet.
        let bank = site.bank();
        let applied = usize::from(phase == "after");
        assert_eq!(bank.transfer_count(), applied);
    }

    let op = site.start("");
    let interrupted = interrupted_entry(&op, &nonce, "idempotent-downstream");
    let (status, r) = op.execute(&request);
    assert_eq!(
        (status, r["outcome"].as_str(), r["replayed"].as_bool()),
        (200, Some("executed"), Some(false)),
        "the retry runs the handler again (an idempotent-downstream reservation \
         cut off by a crash is let go at restart: Completion::released): {r}"
    );
    assert_ne!(r["exec_id"].as_str(), Some(interrupted.as_str()));
    let result = r["result"].clone();
    assert_eq!(
        (&result["from_balance"], &result["to_balance"]),
        (&7500.into(), &2500.into())
    );
    // Once executed, the nonce is done: a further retry is a replay.
    let (status, again) = op.execute(&request);
    assert_eq!(
        (status, again["replayed"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    assert_eq!(again["result"], result);
    let outcomes: Vec<Value> = op
        .entries_of(&nonce)
        .iter()
        .map(|e| e["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["interrupted", "executed", "replayed"]);

    op.stop();
    let bank = site.bank();
    assert_eq!(bank.transfer_count(), 1, "applied exactly once");
    assert_eq!(bank.balance("alice").unwrap(), Some(7500));
    assert_eq!(bank.balance("bob").unwrap(), Some(2500));
    let key = result["transfer_id"].as_str().unwrap();
    assert!(
        bank.transfer(key).unwrap().is_some(),
        "the bank knows the retry's key"
    );
    result
}

#[test]
fn transfer_killed_after_applying_is_applied_once_after_the_retry() {
    let result = transfer_killed_then_retried("after");
    // The retry carried the same idempotency key: the bank had applied it.
    assert_eq!(result["already_applied"], true);
}

#[test]
fn transfer_killed_before_applying_is_applied_once_after_the_retry() {
    let result = transfer_killed_then_retried("before");
    assert_eq!(result["already_applied"], false);
}
