//! Start-up and shutdown: attempts interrupted by a crash are recorded as
//! `interrupted` and never re-run; SIGTERM drains in-flight requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use openexec::core::entry::{Entry, Outcome};
use openexec::core::receipt::{verify_receipt, Receipt};
use openexec::store::{nonce_key, PendingNonce, Reservation, Store, StoreConfig};
use serde_json::json;

use common::server::start_in;

#[test]
fn a_reservation_left_pending_by_a_crash_becomes_interrupted_and_is_never_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = start_in(&data, &[]).unwrap();
    s.stop();
    // Simulate a crash between reservation and recording: the reservation
    // is on disk, the handler may have run, nothing was recorded.
    let request = json!({"action": "counter", "payload": {"name": "crash"}, "nonce": "crash-1"});
    let request_hash =
        openexec::core::canonical::request_hash("counter", &request["payload"], "crash-1", "")
            .unwrap();
    {
        let store = Store::open(&StoreConfig::new(data.join("db"))).unwrap();
        let record = PendingNonce {
            request_hash,
            exec_id: "exec-crashed".into(),
            approval_key: None,
            action: "counter".into(),
            tenant: String::new(),
            nonce: "crash-1".into(),
            effects: openexec::core::entry::Effects::AtMostOnce,
            // The reservation's principal is the interrupted entry's.
            principal: Some("00c0ffee00c0ffee".into()),
        };
        assert_eq!(
            store
                .reserve(&nonce_key("", "crash-1"), &record, None)
                .unwrap(),
            Reservation::Reserved
        );
        store.sync_reservations().unwrap();
    }
    let s = start_in(&data, &[]).unwrap();
    let (_, entry) = s.get_json("/ledger/entries/0");
    let entry = Entry::from_canonical_bytes(entry["entry"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(
        (entry.outcome, entry.exec_id.as_str(), entry.request_hash),
        (Outcome::Interrupted, "exec-crashed", request_hash)
    );
    assert_eq!(entry.principal.as_deref(), Some("00c0ffee00c0ffee"));
    assert_eq!(
        entry.effects,
        Some(openexec::core::entry::Effects::AtMostOnce)
    );
    // The same request is a replay of the interrupted attempt: not re-run.
    let (status, r) = s.execute(&request);
    assert_eq!(
        (
            status,
            r["replayed"].as_bool(),
            r["original_outcome"].as_str()
        ),
        (500, Some(true), Some("interrupted"))
    );
    // The counter never moved.
    let (_, r) =
        s.execute(&json!({"action": "counter", "payload": {"name": "crash"}, "nonce": "crash-2"}));
    assert_eq!(r["result"]["value"], 1);
}

#[test]
fn sigterm_drains_in_flight_requests_and_every_answered_entry_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = start_in(&data, &[]).unwrap();
    let base = s.base.clone();
    let answered: Vec<Receipt> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|t| {
                let base = base.clone();
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(std::time::Duration::from_secs(20))
                        .build();
                    let mut got = Vec::new();
                    for i in 0..200 {
                        let body = json!({"action": "echo", "nonce": format!("t{t}-{i}")});
                        match agent.post(&format!("{base}/execute")).send_json(body) {
                            Ok(r) => got.push(
                                serde_json::from_value(
                                    r.into_json::<serde_json::Value>().unwrap()["receipt"].clone(),
                                )
                                .unwrap(),
                            ),
                            Err(_) => break, // the server stopped accepting
                        }
                    }
                    got
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.stop(); // SIGTERM, then wait for the process to exit
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(!answered.is_empty());
    let s = start_in(&data, &[]).unwrap();
    let verifier = s.verifier();
    let (_, health) = s.get_json("/health");
    let size = health["ledger"]["size"].as_u64().unwrap();
    for receipt in &answered {
        verify_receipt(receipt, &verifier, None).unwrap();
        assert!(receipt.leaf_index < size);
        let (_, e) = s.get_json(&format!("/ledger/entries/{}", receipt.leaf_index));
        assert_eq!(e["entry"].as_str().unwrap(), receipt.entry);
    }
}

/// A supervisor (or test) may stop the server as soon as it has printed
/// its listening line. actix installs its signal handlers only after its
/// workers have started, and such a SIGTERM would then kill the process
/// without a clean close (no handler yet) or be lost (handler installed,
/// listener not yet subscribed: the server keeps running); the server
/// listens for signals itself before it prints the line
/// (src/cli/signals.rs). Repeated because the window is a race.
#[test]
fn a_sigterm_right_after_the_listening_line_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let mut s = start_in(&dir.path().join(format!("data-{round}")), &[]).unwrap();
        s.stop(); // asserts a clean exit within the limit
    }
}

#[test]
fn a_rolled_back_data_directory_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let mut s = start_in(&data, &[]).unwrap();
    for i in 0..3 {
        s.execute(&json!({"action": "echo", "nonce": format!("rb-{i}")}));
    }
    s.stop();
    common::copy_dir(&data, &backup);
    let mut s = start_in(&data, &[]).unwrap();
    for i in 3..6 {
        s.execute(&json!({"action": "echo", "nonce": format!("rb-{i}")}));
    }
    s.stop();
    // Roll the data directory back to the older copy.
    std::fs::remove_dir_all(&data).unwrap();
    common::copy_dir(&backup, &data);
    let stderr = match start_in(&data, &[]) {
        Ok(_) => panic!("a rolled-back data directory must not start"),
        Err(stderr) => stderr,
    };
    assert!(
        stderr.contains("it was rolled back; refusing to sign a contradicting checkpoint"),
        "{stderr}"
    );
    // With the memo deliberately removed, the operator can start it again.
    std::fs::remove_file(dir.path().join("data.checkpoint")).unwrap();
    assert!(start_in(&data, &[]).is_ok());
}

#[test]
fn a_done_nonce_is_replayed_from_its_entry_and_never_from_another_nonces() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = start_in(&data, &[]).unwrap();
    let first = json!({"action": "counter", "payload": {"name": "done"}, "nonce": "done-1"});
    let other = json!({"action": "echo", "payload": {"x": 1}, "nonce": "done-2"});
    let (status, r) = s.execute(&first);
    assert_eq!((status, &r["result"]["value"]), (200, &json!(1)));
    let (status, _) = s.execute(&other);
    assert_eq!(status, 200);
    // A replay reads outcome, request hash and exec_id from the entry the
    // done record names.
    let (status, again) = s.execute(&first);
    assert_eq!(
        (status, again["replayed"].as_bool(), &again["exec_id"]),
        (200, Some(true), &r["exec_id"])
    );
    s.stop();
    // A slot of the done-nonce table that points the first nonce at the
    // other nonce's entry changes nothing: a candidate counts only if its
    // entry completed this nonce (the unit tests in store::reservations
    // try slots that are the only candidate).
    {
        let store = Store::open(&StoreConfig::new(data.join("db"))).unwrap();
        store
            .tamper_raw("nonces.tab", &nonce_key("", "done-1"), &1u64.to_be_bytes())
            .unwrap();
    }
    let s = start_in(&data, &[]).unwrap();
    let (status, again) = s.execute(&first);
    assert_eq!(
        (status, again["replayed"].as_bool(), &again["exec_id"]),
        (200, Some(true), &r["exec_id"]),
        "{again}"
    );
    // Not run again: the counter is where the first execution left it.
    let (_, r) =
        s.execute(&json!({"action": "counter", "payload": {"name": "done"}, "nonce": "done-3"}));
    assert_eq!(r["result"]["value"], 2);
}
