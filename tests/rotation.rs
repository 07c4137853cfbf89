//! Log key rotation end to end, with real servers: clients keep sending
//! `counter` attempts (an at-most-once action) from several threads while
//! the log is stopped with SIGTERM, rotated with `openexec rotate`, and its
//! successor started; clients retry every unanswered attempt with its same
//! nonce. Then:
//!
//! - every acknowledged receipt verifies under its log's key (`openexec
//!   verify --log-key OLD --log-key NEW`, and with a policy naming both),
//!   and its entry is in its log;
//! - no nonce is executed twice across the two logs, and the counter, carried
//!   into the successor, counts each execution once;
//! - a nonce done in the retired log is refused by the successor, never run;
//! - the chain verifies (`--chain rotation-in.json`); a tampered final
//!   checkpoint, a successor receipt that is not its entry 0, or the wrong
//!   keys are refused;
//! - the retired log serves reads only; both logs audit clean; a witness
//!   that followed the retired log cosigns its final checkpoint and the
//!   successor's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::server::{start_in, terminate, TestServer};
use openexec::core::cosignature::count_cosignatures;
use openexec::core::entry::{Entry, Outcome};
use openexec::ledger::{Ledger, LedgerConfig};

const NEW_ORIGIN: &str = "rotation.test/log-g2";
const THREADS: usize = 4;

fn openexec(args: &[&str]) -> (i32, String) {
    let out = Command::new(common::binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One attempt's final answer, as its client saw it.
#[derive(Debug, Clone)]
enum Answer {
    /// 200: executed (or replayed after a lost answer), with its receipt.
    Acknowledged(Value),
    /// 409 from the successor: the retired log completed the nonce.
    DoneInPredecessor,
}

/// Where clients send: the live server's base URL, `None` while there is
/// none (between the SIGTERM and the successor's start).
type Target = Arc<Mutex<Option<String>>>;

fn post(base: &str, nonce: &str) -> Result<(u16, Value), String> {
    let body = json!({"action": "counter", "payload": {"name": "rot"}, "nonce": nonce});
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    match agent.post(&format!("{base}/execute")).send_json(&body) {
        Ok(r) => Ok((r.status(), r.into_json().map_err(|e| e.to_string())?)),
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_json().unwrap_or(Value::Null))),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends one nonce until it has a final answer, through whichever server
/// is live: a transport error, a 503 or the retired log's 410 is retried
/// with the same nonce.
fn until_answered(target: &Target, nonce: &str) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "{nonce}: no answer in 120 s");
        let base = target.lock().unwrap().clone();
        let Some(base) = base else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        match post(&base, nonce) {
            Ok((200, body)) => {
                let outcome = body["outcome"].as_str().unwrap_or_default().to_owned();
                assert!(
                    outcome == "executed" || outcome == "replayed",
                    "{nonce}: {body}"
                );
                return Answer::Acknowledged(body);
            }
            Ok((409, body)) if body["code"] == "nonce_done_in_predecessor" => {
                return Answer::DoneInPredecessor;
            }
            Ok((410 | 503, _)) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
            Ok((status, body)) => panic!("{nonce}: unexpected {status} {body}"),
        }
    }
}

/// A client thread: fresh nonces until `stop`, each until answered. Once
/// the successor answers it, it sends its last nonce the retired log
/// acknowledged again, as a client that lost that answer would.
fn client(t: usize, target: Target, stop: Arc<AtomicBool>) -> Vec<(String, Answer)> {
    let mut answers = Vec::new();
    let mut last_old: Option<String> = None;
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let nonce = format!("c{t}-{i}");
        let answer = until_answered(&target, &nonce);
        if let Answer::Acknowledged(body) = &answer {
            if origin_of(body) == NEW_ORIGIN {
                if let Some(old) = last_old.take() {
                    let again = until_answered(&target, &old);
                    assert!(
                        matches!(again, Answer::DoneInPredecessor),
                        "{old}: {again:?}"
                    );
                    answers.push((old, again));
                }
            } else {
                last_old = Some(nonce.clone());
            }
        }
        answers.push((nonce, answer));
    }
    answers
}

/// Every entry of the stopped log in `dir`.
fn entries(dir: &Path, origin: &str) -> Vec<Entry> {
    let mut config = LedgerConfig::new(dir);
    config.origin = origin.to_owned();
    let ledger = Ledger::open(&config).unwrap();
    (0..ledger.head().size)
        .map(|i| Entry::from_canonical_bytes(&ledger.entry(i).unwrap().0).unwrap())
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn witness_key(dir: &Path) -> String {
    let out = Command::new(common::binary())
        .args(["witness", "--data", dir.to_str().unwrap()])
        .args(["--name", "w.rotation.test", "--print-key"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The origin of an acknowledged answer's entry.
fn origin_of(body: &Value) -> String {
    let entry = body["receipt"]["entry"].as_str().unwrap();
    Entry::from_canonical_bytes(entry.as_bytes())
        .unwrap()
        .origin
}

fn witness_once(dir: &Path, logs: &[(&str, &str)]) -> String {
    let mut args = vec!["witness", "--data", dir.to_str().unwrap(), "--once"];
    for (url, vkey) in logs {
        args.extend(["--log", url, vkey]);
    }
    let (code, out) = openexec(&args);
    assert_eq!(code, 0, "{out}");
    out
}

fn serve(dir: &Path, origin: &str, witness: &str) -> TestServer {
    start_in(
        dir,
        &[
            ("OPENEXEC_ORIGIN", origin),
            ("OPENEXEC_WITNESS_KEYS", witness),
        ],
    )
    .unwrap()
}

#[test]
fn a_log_rotated_under_load_loses_nothing_and_reopens_no_nonce() {
    let tmp = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (tmp.path().join("old"), tmp.path().join("new"));
    let witness_dir = tmp.path().join("witness");
    let witness = witness_key(&witness_dir);
    let old_origin = "rotation.test/log";

    // Load on the old log, followed by a witness.
    let mut old = serve(&old_dir, old_origin, &witness);
    let old_vkey = old.verifier().vkey();
    let target: Target = Arc::new(Mutex::new(Some(old.base.clone())));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let (target, stop) = (target.clone(), stop.clone());
            std::thread::spawn(move || client(t, target, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    witness_once(&witness_dir, &[(&old.base, &old_vkey)]);
    std::thread::sleep(Duration::from_millis(500));

    // Stop it mid-load (clients keep trying), rotate, start the successor.
    *target.lock().unwrap() = None;
    terminate(&mut old.child);
    let (code, out) = openexec(&[
        "rotate",
        "--data-dir",
        old_dir.to_str().unwrap(),
        "--new-data-dir",
        new_dir.to_str().unwrap(),
        "--new-origin",
        NEW_ORIGIN,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("successor {NEW_ORIGIN}+")), "{out}");
    let new = serve(&new_dir, NEW_ORIGIN, &witness);
    let new_vkey = new.verifier().vkey();
    *target.lock().unwrap() = Some(new.base.clone());
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<(String, Answer)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();

    // Nonces acknowledged by the old log, sent again to the successor:
    // refused, never run (and another request under one: a conflict).
    let in_old: Vec<&str> = answers
        .iter()
        .filter_map(|(n, a)| match a {
            Answer::Acknowledged(body) if origin_of(body) == old_origin => Some(n.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        in_old.len() >= 10,
        "too little load before the rotation: {}",
        in_old.len()
    );
    for nonce in in_old.iter().step_by(in_old.len() / 5) {
        let (status, body) = post(&new.base, nonce).unwrap();
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "nonce_done_in_predecessor", "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains(old_origin),
            "{body}"
        );
        let other = json!({"action": "counter", "payload": {"name": "other"}, "nonce": nonce});
        let (status, body) = new.execute(&other);
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "nonce_conflict", "{body}");
    }
    // One more execution reads the counter: every execution in both logs,
    // counted once, plus this one.
    let (status, last) = new.execute(&json!({
        "action": "counter", "payload": {"name": "rot"}, "nonce": "last"
    }));
    assert_eq!(status, 200, "{last}");

    // The retired log serves reads only; a witness that followed it
    // cosigns its final checkpoint, and the successor's.
    let old = serve(&old_dir, old_origin, &witness);
    let (status, body) = old.execute(&json!({"action": "echo", "payload": {}, "nonce": "x"}));
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["code"], "log_retired");
    witness_once(
        &witness_dir,
        &[(&old.base, &old_vkey), (&new.base, &new_vkey)],
    );
    for server in [&old, &new] {
        let (_, note) = server.get("/ledger/checkpoint");
        assert_eq!(count_cosignatures(&note), 1, "{note}");
    }
    let final_note = old.get("/ledger/checkpoint").1;
    drop((old, new));

    // Every entry of both logs, each log audited.
    for dir in [&old_dir, &new_dir] {
        let (code, out) = openexec(&["audit", "--no-rebuild", "--data", dir.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {out}", dir.display());
    }
    let old_entries = entries(&old_dir, old_origin);
    let new_entries = entries(&new_dir, NEW_ORIGIN);
    assert_eq!(old_entries.last().unwrap().action, "openexec/log_end");
    assert_eq!(new_entries[0].action, "openexec/log_start");
    assert!(final_note.contains(&format!("\n{}\n", old_entries.len())));

    // No nonce executed twice across the boundary; the counter counted
    // each execution once.
    let mut executed: HashMap<&str, usize> = HashMap::new();
    for e in old_entries.iter().chain(&new_entries) {
        if e.action == "counter" && e.outcome == Outcome::Executed {
            *executed.entry(e.nonce.as_str()).or_default() += 1;
        }
    }
    assert!(executed.values().all(|&n| n == 1), "{executed:?}");
    let total: usize = executed.values().sum();
    assert_eq!(last["result"]["value"], json!(total), "{last}");
    // Every acknowledged nonce is executed exactly once; one the
    // successor refused was completed by the retired log (executed, or
    // interrupted if the stop cut its attempt off: never run again).
    for (nonce, answer) in &answers {
        match answer {
            Answer::Acknowledged(_) => {
                assert_eq!(executed.get(nonce.as_str()), Some(&1), "{nonce}");
            }
            Answer::DoneInPredecessor => assert!(
                old_entries.iter().any(|e| e.nonce == *nonce
                    && matches!(e.outcome, Outcome::Executed | Outcome::Interrupted)),
                "{nonce}"
            ),
        }
    }
    let refused = answers
        .iter()
        .filter(|(_, a)| matches!(a, Answer::DoneInPredecessor))
        .count();
    assert!(refused >= THREADS, "{refused}");
    println!(
        "{} answers ({} acknowledged by the retired log, {refused} refused by the successor as done), {} + {} entries",
        answers.len(),
        in_old.len(),
        old_entries.len(),
        new_entries.len()
    );

    // Every acknowledged receipt verifies under its log's key, and its
    // entry is in its log.
    // (The variants below check a sample of each log: a debug build
    // verifies a few dozen signatures a second.)
    let (mut lines, mut sample) = (String::new(), String::new());
    let mut sampled = HashMap::new();
    for (nonce, answer) in &answers {
        let Answer::Acknowledged(body) = answer else {
            continue;
        };
        let receipt = &body["receipt"];
        let entry =
            Entry::from_canonical_bytes(receipt["entry"].as_str().unwrap().as_bytes()).unwrap();
        let log = if entry.origin == old_origin {
            &old_entries
        } else {
            &new_entries
        };
        assert_eq!(log[entry.index as usize], entry, "{nonce}");
        lines.push_str(&receipt.to_string());
        lines.push('\n');
        let taken = sampled.entry(entry.origin.clone()).or_insert(0);
        if *taken < 10 {
            *taken += 1;
            sample.push_str(&receipt.to_string());
            sample.push('\n');
        }
    }
    let all = write(tmp.path(), "receipts.jsonl", &lines);
    let (code, out) = openexec(&[
        "verify",
        "--log-key",
        &old_vkey,
        "--log-key",
        &new_vkey,
        all.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{} receipts verified", lines.lines().count())),
        "{out}"
    );
    let receipts = write(tmp.path(), "sample.jsonl", &sample);
    let receipts = receipts.to_str().unwrap();
    let (code, out) = openexec(&["verify", "--log-key", &old_vkey, receipts]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("10 of 20 receipts failed"), "{out}");
    let policy = write(
        tmp.path(),
        "policy.txt",
        &format!("log {old_vkey}\nlog {new_vkey}\nquorum none\n"),
    );
    let policy = policy.to_str().unwrap();
    let (code, out) = openexec(&["verify", "--policy", policy, receipts]);
    assert_eq!(code, 0, "{out}");

    check_chain(&new_dir, &old_vkey, &new_vkey, policy, &last);
}

/// The chain verifies with both keys or the policy, and not when
/// tampered with or given the wrong keys.
fn check_chain(new_dir: &Path, old_vkey: &str, new_vkey: &str, policy: &str, later: &Value) {
    let chain = new_dir.join("rotation-in.json");
    let chain_arg = chain.to_str().unwrap();
    let (code, out) = openexec(&[
        "verify",
        "--log-key",
        old_vkey,
        "--log-key",
        new_vkey,
        "--chain",
        chain_arg,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("chain: rotation.test/log ends at tree size"),
        "{out}"
    );
    let (code, out) = openexec(&["verify", "--policy", policy, "--chain", chain_arg]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = openexec(&["verify", "--log-key", new_vkey, "--chain", chain_arg]);
    assert_eq!(code, 1, "{out}");

    let record: Value = serde_json::from_str(&std::fs::read_to_string(&chain).unwrap()).unwrap();
    let broken = |name: &str, record: &Value| {
        let path = write(new_dir.parent().unwrap(), name, &record.to_string());
        openexec(&[
            "verify",
            "--log-key",
            old_vkey,
            "--log-key",
            new_vkey,
            "--chain",
            path.to_str().unwrap(),
        ])
    };
    // A final checkpoint of another size: its signature fails.
    let mut tampered = record.clone();
    let note = tampered["log_end"]["checkpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let size = record["predecessor"]["size"].as_u64().unwrap();
    tampered["log_end"]["checkpoint"] =
        json!(note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1));
    let (code, out) = broken("tampered.json", &tampered);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("predecessor's log_end receipt"), "{out}");
    // A successor receipt that is not of its entry 0.
    let mut wrong = record.clone();
    wrong["log_start"] = later["receipt"].clone();
    let (code, out) = broken("wrong.json", &wrong);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not of its entry 0"), "{out}");
    // A record whose members say another successor than its receipts.
    let mut misleading = record.clone();
    misleading["successor"]["origin"] = json!("rotation.test/elsewhere");
    let (code, out) = broken("misleading.json", &misleading);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("successor member"), "{out}");
    // Both receipts of one log: the retired log's entry is no log_start.
    let mut swapped = record;
    swapped["log_start"] = swapped["log_end"].clone();
    let (code, out) = broken("swapped.json", &swapped);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn rotate_refuses_a_second_successor_and_postgres() {
    let tmp = tempfile::tempdir().unwrap();
    let old_dir = tmp.path().join("old");
    let mut old = start_in(&old_dir, &[]).unwrap();
    old.execute(&json!({"action": "echo", "payload": {}, "nonce": "n"}));
    old.stop();
    let (code, out) = openexec(&[
        "token",
        "create",
        "--data",
        old_dir.to_str().unwrap(),
        "--role",
        "agent",
        "--tenant",
        "t",
    ]);
    assert_eq!(code, 0, "{out}");
    let rotate = |new: &str, origin: &str| {
        openexec(&[
            "rotate",
            "--data-dir",
            old_dir.to_str().unwrap(),
            "--new-data-dir",
            tmp.path().join(new).to_str().unwrap(),
            "--new-origin",
            origin,
        ])
    };
    let (code, out) = rotate("a", "x/a");
    assert_eq!(code, 0, "{out}");
    // The principals come along, still private.
    let copied = tmp.path().join("a/principals.json");
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(old_dir.join("principals.json")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Running it again completes nothing new and agrees.
    let (code, again) = rotate("a", "x/a");
    assert_eq!(code, 0, "{again}");
    let (code, out) = rotate("b", "x/b");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("already retired for another successor"),
        "{out}"
    );
    // Cut off after the log_end (the successor's key kept, nothing else):
    // the same command completes the same rotation.
    let a = tmp.path().join("a");
    let record = std::fs::read_to_string(a.join("rotation-in.json")).unwrap();
    for name in ["db", "predecessor.idx", "rotation-in.json"] {
        let path = a.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::remove_file(tmp.path().join("a.checkpoint")).unwrap();
    let (code, out) = rotate("a", "x/a");
    assert_eq!(code, 0, "{out}");
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("rotation-in.json")).unwrap())
            .unwrap();
    let record: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(again["log_end"], record["log_end"]);
    assert_eq!(again["successor"], record["successor"]);
    assert_ne!(again["log_start"], record["log_start"]);
    let (code, out) = openexec(&[
        "verify",
        "--log-key",
        record["predecessor"]["vkey"].as_str().unwrap(),
        "--log-key",
        record["successor"]["vkey"].as_str().unwrap(),
        "--chain",
        a.join("rotation-in.json").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = openexec(&[
        "rotate",
        "--db-url",
        "postgres://u@127.0.0.1:1/db",
        "--new-data-dir",
        tmp.path().join("c").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PostgreSQL backend has no rotation"), "{out}");
}

fn approver_pem(key: &ed25519_dalek::SigningKey) -> String {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    key.verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap()
}

/// An `echo` attempt of `nonce` under a fresh v2 approval with `id`.
fn approved(key: &ed25519_dalek::SigningKey, id: &str, nonce: &str) -> Value {
    let payload = json!({"n": 1});
    let hash = openexec::core::canonical::request_hash("echo", &payload, nonce, "acme").unwrap();
    let now = chrono::Utc::now();
    let art = openexec::core::approval::mint_v2(
        key,
        id,
        "acme",
        &hash,
        now,
        chrono::Duration::seconds(120),
    )
    .unwrap();
    json!({"action": "echo", "payload": payload, "nonce": nonce, "approval_artifact": art})
}

/// Approvals and nonces stay closed across two rotations in a row: the
/// second successor's index holds the first log's too.
#[test]
fn approvals_and_nonces_stay_consumed_across_two_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[31; 32]);
    let pem = approver_pem(&key);
    let env = |origin: &'static str| {
        vec![
            ("OPENEXEC_MODE", "clawshield".to_owned()),
            ("CLAWSHIELD_PUBLIC_KEY", pem.clone()),
            ("CLAWSHIELD_TENANT_ID", "acme".to_owned()),
            ("OPENEXEC_ORIGIN", origin.to_owned()),
        ]
    };
    let start = |dir: &Path, origin: &'static str| {
        let env = env(origin);
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        start_in(dir, &refs).unwrap()
    };
    let dirs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|d| tmp.path().join(d)).collect();
    let origins = ["approvals.test/a", "approvals.test/b", "approvals.test/c"];

    let mut s = start(&dirs[0], origins[0]);
    let first = approved(&key, "id-1", "n-1");
    let (status, body) = s.execute(&first);
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("executed")),
        "{body}"
    );
    s.stop();
    for (from, to) in [(0, 1), (1, 2)] {
        let (code, out) = openexec(&[
            "rotate",
            "--data-dir",
            dirs[from].to_str().unwrap(),
            "--new-data-dir",
            dirs[to].to_str().unwrap(),
            "--new-origin",
            origins[to],
        ]);
        assert_eq!(code, 0, "{out}");
        let mut s = start(&dirs[to], origins[to]);
        // The same request: done in the first log, never run again.
        let (status, body) = s.execute(&first);
        assert_eq!(status, 409, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains(origins[0]),
            "{body}"
        );
        // Its approval id under another nonce: consumed.
        let (status, body) = s.execute(&approved(&key, "id-1", &format!("n-{to}1")));
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("approval_reused")),
            "{body}"
        );
        // A fresh approval runs, and is consumed in this log.
        let fresh = approved(&key, &format!("id-log{to}"), &format!("n-{to}2"));
        let (status, body) = s.execute(&fresh);
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("executed")),
            "{body}"
        );
        s.stop();
    }
    // The last log refuses the approval the middle log consumed, and
    // that log's nonce.
    let mut s = start(&dirs[2], origins[2]);
    let (status, body) = s.execute(&approved(&key, "id-log1", "n-x"));
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("approval_reused")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains(origins[1]),
        "{body}"
    );
    let (status, body) = s.execute(&approved(&key, "id-log1", "n-12"));
    assert_eq!(status, 409, "{body}");
    s.stop();
}

/// A rotation into another log's directory is refused before anything
/// changes: the log named to retire stays open, the other log's index
/// stays, and its predecessors' nonces stay closed. A successor whose
/// index is missing, or whose rotation is not finished, does not start.
#[test]
fn rotate_refuses_a_directory_that_is_not_its_successors() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let echo = |nonce: &str| json!({"action": "echo", "payload": {}, "nonce": nonce});
    let mut s = start_in(&a, &[("OPENEXEC_ORIGIN", "x/a")]).unwrap();
    assert_eq!(s.execute(&echo("done-in-a")).0, 200);
    s.stop();
    let mut s = start_in(&c, &[("OPENEXEC_ORIGIN", "x/c")]).unwrap();
    assert_eq!(s.execute(&echo("in-c")).0, 200);
    s.stop();
    let rotate = |from: &Path, to: &Path, origin: &str| {
        openexec(&[
            "rotate",
            "--data-dir",
            from.to_str().unwrap(),
            "--new-data-dir",
            to.to_str().unwrap(),
            "--new-origin",
            origin,
        ])
    };
    let (code, out) = rotate(&a, &b, "x/b");
    assert_eq!(code, 0, "{out}");
    assert!(a.join("rotation-out.json").exists());
    assert!(!b.join("rotation.pending").exists());
    let index = std::fs::read(b.join("predecessor.idx")).unwrap();
    let c_size = entries(&c, "x/c").len();

    // The mistake: B named as C's successor.
    let (code, out) = rotate(&c, &b, "x/b");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(std::fs::read(b.join("predecessor.idx")).unwrap(), index);
    let c_entries = entries(&c, "x/c");
    assert_eq!(c_entries.len(), c_size, "C is not retired");
    assert!(!c_entries.iter().any(|e| e.action.starts_with("openexec/")));
    // A directory with anything but this rotation's successor is refused.
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    write(&d, "notes.txt", "mine");
    let (code, out) = rotate(&c, &d, "x/d");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no log key"), "{out}");
    assert!(!d.join("log.key").exists());

    // B still starts and still refuses A's nonce.
    let mut s = start_in(&b, &[("OPENEXEC_ORIGIN", "x/b")]).unwrap();
    let (status, body) = s.execute(&echo("done-in-a"));
    assert_eq!(status, 409, "{body}");
    s.stop();
    // Without its index, B does not start.
    std::fs::rename(b.join("predecessor.idx"), tmp.path().join("idx")).unwrap();
    let err = start_in(&b, &[("OPENEXEC_ORIGIN", "x/b")]).err().unwrap();
    assert!(err.contains("predecessor.idx: missing"), "{err}");
    // Nor with the index of another rotation (its link differs).
    let (code, out) = rotate(&c, &tmp.path().join("c2"), "x/c2");
    assert_eq!(code, 0, "{out}");
    std::fs::copy(
        tmp.path().join("c2/predecessor.idx"),
        b.join("predecessor.idx"),
    )
    .unwrap();
    let err = start_in(&b, &[("OPENEXEC_ORIGIN", "x/b")]).err().unwrap();
    assert!(err.contains("another log_start entry"), "{err}");
    std::fs::rename(tmp.path().join("idx"), b.join("predecessor.idx")).unwrap();
    // Mid-rotation (marker left), the successor does not start.
    write(&b, "rotation.pending", "x\n");
    let err = start_in(&b, &[("OPENEXEC_ORIGIN", "x/b")]).err().unwrap();
    assert!(err.contains("not finished"), "{err}");
    std::fs::remove_file(b.join("rotation.pending")).unwrap();
    let s = start_in(&b, &[("OPENEXEC_ORIGIN", "x/b")]).unwrap();
    drop(s);
}
