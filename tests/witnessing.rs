//! Witnessing with real processes on loopback: one `openexec serve` and
//! three `openexec witness` processes, each with its own state directory.
//!
//! - the witnesses converge on the published checkpoint and the log stores
//!   their cosignatures; a refreshed receipt carries them;
//! - `openexec verify --policy` with a 2-of-3 quorum accepts that receipt,
//!   refuses the uncosigned one (unless given a cosigned later checkpoint
//!   and a consistency proof), and refuses a checkpoint only one witness
//!   cosigned;
//! - a split view (a second log with the same key on a copy of the data
//!   directory, appending other entries) is caught by a witness that
//!   follows both: exit code 3 and evidence holding both signed checkpoints;
//! - a witness restarted on its state directory resumes from it: shown a
//!   rolled-back copy of the log, it refuses (it remembers the larger tree);
//! - the C2SP `POST /add-checkpoint` endpoint answers with the spec's
//!   status codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::server::{start, start_in, TestServer};
use openexec::core::checkpoint::SignedCheckpoint;
use openexec::core::cosignature::{count_cosignatures, WitnessVerifier};
use openexec::core::hash::Hash;
use openexec::core::witness::AddCheckpoint;

/// A running `openexec witness`; killed on drop.
struct WitnessProcess {
    child: Child,
    base: String,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openexec(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run openexec");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates the witness key in `dir` and returns its vkey.
fn witness_key(dir: &Path, name: &str) -> String {
    let (code, out, err) = openexec(&[
        "witness",
        "--data",
        dir.to_str().unwrap(),
        "--name",
        name,
        "--print-key",
    ]);
    assert_eq!(code, 0, "{err}");
    out.trim().to_owned()
}

fn start_witness(dir: &Path, extra: &[&str]) -> WitnessProcess {
    let log = std::fs::File::create(dir.with_extension("stderr.log")).unwrap();
    let mut child = Command::new(common::binary())
        .args([
            "witness",
            "--data",
            dir.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .args(["--interval-ms", "100"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn witness");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("openexec witness listening on ")
        .unwrap_or_else(|| panic!("witness did not start: {line:?}"))
        .to_owned();
    WitnessProcess { child, base }
}

/// `openexec witness --once` on `dir`, following each (URL, VKEY).
fn witness_once(dir: &Path, logs: &[(&str, &str)]) -> (i32, String, String) {
    let mut args = vec!["witness", "--data", dir.to_str().unwrap(), "--once"];
    for (url, vkey) in logs {
        args.extend(["--log", url, vkey]);
    }
    openexec(&args)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn verify(args: &[&str]) -> (i32, String) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let (code, out, err) = openexec(&all);
    (code, format!("{out}{err}"))
}

fn execute(s: &TestServer, nonce: &str) -> Value {
    let (status, body) =
        s.execute(&json!({"action": "echo", "payload": {"n": nonce}, "nonce": nonce}));
    assert_eq!(status, 200, "{body}");
    body
}

fn published(s: &TestServer) -> String {
    s.get("/ledger/checkpoint").1
}

fn post_text(url: &str, body: &[u8]) -> (u16, String, String) {
    let result = ureq::post(url)
        .set("Content-Type", "text/plain")
        .send_bytes(body);
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = response.status();
    let content_type = response.content_type().to_owned();
    (status, content_type, response.into_string().unwrap())
}

struct Setup {
    tmp: tempfile::TempDir,
    witness_dirs: Vec<PathBuf>,
    witness_vkeys: Vec<String>,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let witness_dirs: Vec<PathBuf> =
            (1..=3).map(|i| tmp.path().join(format!("w{i}"))).collect();
        let witness_vkeys = witness_dirs
            .iter()
            .enumerate()
            .map(|(i, d)| witness_key(d, &format!("w{}.witness.example", i + 1)))
            .collect();
        Self {
            tmp,
            witness_dirs,
            witness_vkeys,
        }
    }

    fn log_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OPENEXEC_WITNESS_KEYS", self.witness_vkeys.join(",")),
            ("OPENEXEC_PUBLISH_INTERVAL_MS", "300".into()),
        ]
    }

    fn policy(&self, log_vkey: &str, group: &str) -> PathBuf {
        let mut text = format!("# 2-of-3 test policy\nlog {log_vkey}\n");
        for (i, vkey) in self.witness_vkeys.iter().enumerate() {
            text.push_str(&format!("witness W{} {vkey}\n", i + 1));
        }
        text.push_str(group);
        write(
            self.tmp.path(),
            &format!("policy-{}.txt", text.len()),
            &text,
        )
    }
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn three_witnesses_a_quorum_a_split_view_and_a_restart() {
    let setup = Setup::new();
    let env = setup.log_env();
    let data = setup.tmp.path().join("log");
    let mut log = start_in(&data, &env_refs(&env)).unwrap();
    let log_vkey = log.verifier().vkey();
    let first = execute(&log, "q-1");
    for i in 2..=10 {
        execute(&log, &format!("q-{i}"));
    }

    // Three witnesses converge on the published checkpoint.
    let witnesses: Vec<WitnessProcess> = setup
        .witness_dirs
        .iter()
        .map(|d| start_witness(d, &["--log", &log.base, &log_vkey]))
        .collect();
    wait_until("three cosignatures on the published checkpoint", || {
        count_cosignatures(&published(&log)) == 3
    });
    let cosigned = published(&log);
    assert_eq!(
        SignedCheckpoint::open(cosigned.as_bytes(), &log.verifier())
            .unwrap()
            .size(),
        10
    );

    // 2-of-3: the refreshed receipt passes, the original (uncosigned) fails
    // unless a cosigned later checkpoint and a consistency proof are given.
    let two_of_three = setup.policy(&log_vkey, "group G 2 W1 W2 W3\nquorum G\n");
    let dir = setup.tmp.path();
    let original = write(dir, "original.json", &first.to_string());
    let (_, refreshed) = log.get(&format!("/receipts/{}", first["exec_id"].as_str().unwrap()));
    let refreshed = write(dir, "refreshed.json", &refreshed);
    let policy = two_of_three.to_str().unwrap();
    let (code, out) = verify(&["--policy", policy, refreshed.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("policy quorum met at tree size 10"), "{out}");
    let (code, out) = verify(&["--policy", policy, original.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("quorum not met"), "{out}");
    let later = write(dir, "cosigned.note", &cosigned);
    let (_, proof) = log.get(&format!(
        "/ledger/proof/consistency?from={}&to=10",
        first["receipt"]["inclusion_proof"]["tree_size"]
    ));
    let proof = write(dir, "proof.json", &proof);
    let (code, out) = verify(&[
        "--policy",
        policy,
        original.to_str().unwrap(),
        "--checkpoint",
        later.to_str().unwrap(),
        "--consistency",
        proof.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    // A quorum that needs a fourth, unknown witness is not met.
    let fourth = witness_key(&dir.join("w4"), "w4.witness.example");
    let four = setup.policy(
        &log_vkey,
        &format!("witness W4 {fourth}\ngroup G all W1 W2 W3 W4\nquorum G\n"),
    );
    let (code, out) = verify(&[
        "--policy",
        four.to_str().unwrap(),
        refreshed.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");

    // Only witness 1 keeps running: new checkpoints get one cosignature,
    // which a 2-of-3 policy refuses and a "W1" policy accepts.
    let mut witnesses = witnesses.into_iter();
    let w1 = witnesses.next().unwrap();
    drop(witnesses); // kills w2 and w3
    let late = execute(&log, "q-11");
    wait_until("w1's cosignature at size 11", || {
        let note = published(&log);
        note.starts_with(&format!("{}\n11\n", log.verifier().name()))
            && count_cosignatures(&note) == 1
    });
    let (_, late_receipt) = log.get(&format!("/receipts/{}", late["exec_id"].as_str().unwrap()));
    let late_receipt = write(dir, "late.json", &late_receipt);
    let (code, out) = verify(&["--policy", policy, late_receipt.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let just_w1 = setup.policy(&log_vkey, "quorum W1\n");
    let (code, out) = verify(&[
        "--policy",
        just_w1.to_str().unwrap(),
        late_receipt.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    drop(w1);

    // A split view: stop the log, copy its data directory, and run both
    // copies with the same key, appending different entries.
    let rolled_back = setup.tmp.path().join("log-at-11");
    log.stop();
    common::copy_dir(&data, &rolled_back);
    let fork_dir = setup.tmp.path().join("fork");
    common::copy_dir(&data, &fork_dir);
    let log = start_in(&data, &env_refs(&env)).unwrap();
    // Cosignatures survive a restart: the refreshed receipt still proves
    // against the checkpoint all three witnesses cosigned.
    let (_, again) = log.get_json(&format!("/receipts/{}", first["exec_id"].as_str().unwrap()));
    assert_eq!(
        count_cosignatures(again["checkpoint"].as_str().unwrap()),
        3,
        "{again}"
    );
    let fork = start_in(&fork_dir, &env_refs(&env)).unwrap();
    for i in 0..3 {
        execute(&log, &format!("main-{i}"));
    }
    for i in 0..5 {
        execute(&fork, &format!("fork-{i}"));
    }
    let (code, out, err) = witness_once(
        &setup.witness_dirs[0],
        &[(&log.base, &log_vkey), (&fork.base, &log_vkey)],
    );
    assert_eq!(code, 3, "a split view is misbehaviour: {out}{err}");
    assert!(
        out.contains(&format!("cosigned {} at size 14", log.base)),
        "{out}"
    );
    assert!(out.contains(&format!("refused {}", fork.base)), "{out}");
    let evidence = only_file(&setup.witness_dirs[0].join("evidence"));
    let text = std::fs::read_to_string(&evidence).unwrap();
    assert!(text.contains("kind: fork_inconsistent"), "{text}");
    let body = |s: &TestServer| {
        SignedCheckpoint::open(published(s).as_bytes(), &s.verifier())
            .unwrap()
            .body()
            .to_owned()
    };
    assert!(
        text.contains(&body(&log)),
        "the cosigned checkpoint is kept"
    );
    assert!(
        text.contains(&body(&fork)),
        "the refused checkpoint is kept"
    );

    // The fork's checkpoint is refused by the log too (not its tree).
    let mut forged = published(&fork);
    forged.push_str(
        &openexec::core::cosignature::WitnessSigner::from_private_key_text(
            &std::fs::read_to_string(setup.witness_dirs[0].join("witness.key")).unwrap(),
        )
        .unwrap()
        .cosign(
            SignedCheckpoint::open(forged.as_bytes(), &log.verifier())
                .unwrap()
                .body()
                .as_bytes(),
            1,
        )
        .unwrap(),
    );
    let (status, body) = log.post_raw("/ledger/cosignatures", "text/plain", forged.as_bytes());
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "not_this_tree");

    // Witness 2 was stopped at size 11. Restarted on its state, it resumes
    // from there: shown the main log it cosigns 11 → 14 (a consistency
    // proof from its persisted size), shown the rolled-back copy (size 11
    // < 14) it refuses.
    let (code, out, err) = witness_once(&setup.witness_dirs[1], &[(&log.base, &log_vkey)]);
    assert_eq!(code, 0, "{out}{err}");
    drop(log);
    drop(fork);
    let old = start_in(&rolled_back, &env_refs(&env)).unwrap();
    let (code, out, err) = witness_once(&setup.witness_dirs[1], &[(&old.base, &log_vkey)]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("rollback"), "{out}");
    let evidence = only_file(&setup.witness_dirs[1].join("evidence"));
    assert!(std::fs::read_to_string(evidence)
        .unwrap()
        .contains("kind: rollback"));
}

fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

/// The tlog-witness endpoint, pushed to by hand with the log's own
/// checkpoints and proofs.
#[test]
fn add_checkpoint_speaks_the_c2sp_status_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let log = start(&[]);
    let log_vkey = log.verifier().vkey();
    for i in 0..4 {
        execute(&log, &format!("p-{i}"));
    }
    let at_4 = published(&log);
    let witness_dir = tmp.path().join("w");
    let key =
        WitnessVerifier::from_vkey(&witness_key(&witness_dir, "push.witness.example")).unwrap();
    let witness = start_witness(&witness_dir, &["--accept", &log_vkey]);
    let url = format!("{}/add-checkpoint", witness.base);
    let request = |old: u64, proof: Vec<Hash>, note: &str| {
        AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: note.as_bytes().to_vec(),
        }
        .to_bytes()
    };

    // First checkpoint: old 0, no proof → 200 and a cosignature that verifies.
    let (status, _, line) = post_text(&url, &request(0, vec![], &at_4));
    assert_eq!(status, 200, "{line}");
    let cosigned = format!("{at_4}{line}");
    let sigs = openexec::core::cosignature::verified_cosignatures(
        cosigned.as_bytes(),
        &log.verifier(),
        &[key],
    )
    .unwrap();
    assert_eq!(sigs.len(), 1);

    for i in 4..7 {
        execute(&log, &format!("p-{i}"));
    }
    let at_7 = published(&log);
    let (_, proof) = log.get_json("/ledger/proof/consistency?from=4&to=7");
    let proof: Vec<Hash> = serde_json::from_value(proof["hashes"].clone()).unwrap();

    // 409 with the latest size when `old` is stale.
    let (status, content_type, body) = post_text(&url, &request(0, vec![], &at_7));
    assert_eq!(
        (status, content_type.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "4\n")
    );
    // 400 when old > size, 400 for garbage.
    assert_eq!(post_text(&url, &request(9, vec![], &at_7)).0, 400);
    assert_eq!(post_text(&url, b"hello\n").0, 400);
    // 422 for a proof that does not connect 4 to 7.
    let mut bad = proof.clone();
    bad[0] = Hash::sha256(b"not a node");
    assert_eq!(post_text(&url, &request(4, bad, &at_7)).0, 422);
    // 404 for an unknown log, 403 for a wrong signature.
    let other = start(&[("OPENEXEC_ORIGIN", "other.example/log")]);
    assert_eq!(
        post_text(&url, &request(0, vec![], &published(&other))).0,
        404
    );
    let tampered = at_7.replacen("\n7\n", "\n8\n", 1);
    assert_eq!(
        post_text(&url, &request(4, proof.clone(), &tampered)).0,
        403
    );
    // The right proof: 200.
    let (status, _, line) = post_text(&url, &request(4, proof, &at_7));
    assert_eq!(status, 200, "{line}");
    // Nothing refused above was misbehaviour except the bad proof.
    let evidence: Vec<_> = std::fs::read_dir(witness_dir.join("evidence"))
        .unwrap()
        .collect();
    assert_eq!(evidence.len(), 1);
}

/// Under strace: the witness's new state is written (fsync of the temporary
/// file), renamed into place and its directory fsynced before the
/// cosignature leaves the process (the `POST /ledger/cosignatures`).
#[test]
fn the_state_is_durable_before_the_cosignature_is_released() {
    let tmp = tempfile::tempdir().unwrap();
    let witness_dir = tmp.path().join("w");
    let vkey = witness_key(&witness_dir, "traced.witness.example");
    let log = start(&[("OPENEXEC_WITNESS_KEYS", vkey.as_str())]);
    execute(&log, "traced-1");
    let trace = tmp.path().join("trace");
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fsync,rename,renameat,renameat2,write,writev,sendto",
        ])
        .args(["-s", "40", "-o"])
        .arg(&trace)
        .arg(common::binary())
        .args(["witness", "--data", witness_dir.to_str().unwrap(), "--once"])
        .args(["--log", &log.base, &log.verifier().vkey()])
        .env("RUST_LOG", "warn")
        .status()
        .expect("strace must be installed (the test script installs it)");
    assert!(status.success());
    assert_eq!(
        count_cosignatures(&published(&log)),
        1,
        "the cosignature reached the log"
    );
    let trace = std::fs::read_to_string(trace).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    let find = |what: &dyn Fn(&str) -> bool| lines.iter().position(|l| what(l));
    let ok = |l: &str| l.trim_end().ends_with("= 0");
    let rename = find(&|l| l.contains("rename") && l.contains("state/") && ok(l))
        .expect("the state file is renamed into place");
    let post =
        find(&|l| l.contains("POST /ledger/cosignatures")).expect("the cosignature is posted");
    let fsyncs: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("fsync(") && ok(lines[i]))
        .collect();
    assert!(
        fsyncs.iter().any(|&i| i < rename),
        "the temporary file is fsynced before the rename"
    );
    assert!(
        fsyncs.iter().any(|&i| rename < i && i < post),
        "the directory is fsynced after the rename and before the post"
    );
    assert!(rename < post);
}

/// The published checkpoint advances at most once per publish interval
/// (so that witnesses polling at different moments cosign the same tree),
/// while every response still carries its own batch's checkpoint.
#[test]
fn the_published_checkpoint_advances_at_most_once_per_interval() {
    let size_of = |s: &TestServer, note: &str| {
        SignedCheckpoint::open(note.as_bytes(), &s.verifier())
            .unwrap()
            .size()
    };
    let slow = start(&[("OPENEXEC_PUBLISH_INTERVAL_MS", "60000")]);
    execute(&slow, "pub-1");
    let first = size_of(&slow, &published(&slow));
    assert_eq!(first, 1);
    let later = execute(&slow, "pub-2");
    assert_eq!(
        size_of(&slow, later["receipt"]["checkpoint"].as_str().unwrap()),
        2
    );
    assert_eq!(
        size_of(&slow, &published(&slow)),
        1,
        "held within the interval"
    );
    // With interval 0 (the test harness default) it is always the latest.
    let eager = start(&[]);
    execute(&eager, "pub-1");
    execute(&eager, "pub-2");
    assert_eq!(size_of(&eager, &published(&eager)), 2);
}

/// As for `serve` (`tests/http_lifecycle.rs`): a SIGTERM sent as soon as
/// the witness has printed its listening line stops it cleanly, instead of
/// killing it unclean or being lost.
#[test]
fn a_witness_stopped_right_after_its_listening_line_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let log_vkey = openexec::core::signing::LogSigner::from_seed("log.example/sigterm", [7; 32])
        .unwrap()
        .verifier()
        .vkey();
    for round in 0..10 {
        let dir = tmp.path().join(format!("w-{round}"));
        witness_key(&dir, "w.example/sigterm");
        let mut witness = start_witness(&dir, &["--accept", &log_vkey]);
        common::server::terminate(&mut witness.child);
    }
}

/// The log never waits on a witness: with witnesses configured and none of
/// them running, every execution is answered with its receipt, and the
/// published checkpoint simply carries no cosignature.
#[test]
fn the_log_answers_while_every_witness_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let keys: Vec<String> = ["down-1.witness.example", "down-2.witness.example"]
        .iter()
        .map(|name| witness_key(&tmp.path().join(name), name))
        .collect();
    let log = start(&[("OPENEXEC_WITNESS_KEYS", keys.join(",").as_str())]);
    for n in 0..20 {
        let body = execute(&log, &format!("unwitnessed-{n}"));
        assert_eq!(body["outcome"], "executed", "{body}");
        assert!(body["receipt"]["checkpoint"].is_string(), "{body}");
    }
    assert_eq!(log.ledger_size(), 20);
    assert_eq!(count_cosignatures(&published(&log)), 0);
    // No checkpoint cosigned: every entry is behind the witnesses.
    let (_, metrics) = log.get("/metrics");
    assert!(
        metrics.contains("\nopenexec_witness_lag_entries 20\n"),
        "{metrics}"
    );
}
