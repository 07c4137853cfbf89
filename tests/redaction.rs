//! Redaction on a real server: an operator erases an entry's payload and
//! result through the admin socket; the bytes leave every file of the data
//! directory, the redaction is an entry of the log, every receipt still
//! verifies, replays say the content was erased, and the audit accepts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::server::{self, TestServer};
use serde_json::{json, Value};

/// Distinctive strings the test looks for byte by byte (neither a UUID nor
/// base64 of 32 bytes, which the store's tokens would rewrite).
const SECRET: &str = "sk-live-Q9vZ7rW2pX4mN8kT-correct-horse-battery";
const CARD: &str = "4929-7310-5562-0093/exp-11-29/cvv-913";

/// Every file under `dir` (recursively) and its bytes, as text where they
/// are UTF-8 (any other byte becomes U+FFFD, which neither makes nor breaks
/// a match of an ASCII needle; std's substring search is fast in a debug
/// build, a byte-window loop is not).
fn every_file(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let bytes = std::fs::read(entry.path()).unwrap();
                files.push((entry.path(), String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    files
}

/// The files of `files` whose bytes hold `needle` (ASCII).
fn holding(files: &[(PathBuf, String)], needle: &str) -> Vec<PathBuf> {
    assert!(needle.is_ascii());
    files
        .iter()
        .filter(|(_, text)| text.contains(needle))
        .map(|(path, _)| path.clone())
        .collect()
}

/// The files under `dir` whose bytes hold `needle` (ASCII).
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    holding(&every_file(dir), needle)
}

/// One request over the admin socket: status and JSON body.
fn admin(socket: &Path, body: &str) -> (u16, Value) {
    common::admin::redact(socket, body)
}

fn openexec(args: &[&str]) -> Output {
    Command::new(common::binary()).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `openexec verify` on `receipts` (JSON values) with the log's key.
fn verifies(s: &TestServer, dir: &Path, receipts: &[&Value]) {
    let (_, vkey) = s.get("/ledger/key");
    let key = dir.join("log.vkey");
    std::fs::write(&key, vkey).unwrap();
    let file = dir.join("receipts.jsonl");
    let lines: Vec<String> = receipts.iter().map(|r| r.to_string()).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = openexec(&[
        "verify",
        "--key",
        key.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

fn start(data: &Path, socket: &Path) -> TestServer {
    server::start_in(data, &[("OPENEXEC_ADMIN_SOCKET", socket.to_str().unwrap())])
        .expect("server starts")
}

fn entry_of(receipt: &Value) -> Value {
    serde_json::from_str(receipt["entry"].as_str().unwrap()).unwrap()
}

#[test]
fn redaction_erases_the_bytes_records_itself_and_breaks_no_proof() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let socket = dir.path().join("admin.sock");
    let mut s = start(&data, &socket);
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let request = json!({"action": "echo", "nonce": "secret-1",
        "payload": {"note": SECRET, "card": CARD}});
    let (status, first) = s.execute(&request);
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["result"]["echo"]["note"], SECRET,
        "the result holds the secret too"
    );
    let exec_id = first["exec_id"].as_str().unwrap().to_owned();
    let keep =
        json!({"action": "echo", "nonce": "kept-1", "payload": {"note": "kept-note-xyzzy-31337"}});
    assert_eq!(s.execute(&keep).0, 200);
    for needle in [SECRET, CARD] {
        assert!(
            !files_holding(&data, needle).is_empty(),
            "{needle} is stored before the redaction (else this test could not fail)"
        );
    }

    // Not on the public listener.
    for path in ["/admin/redact", "/admin", "/admin/anything"] {
        let (status, _) = s.post_json(path, &json!({"exec_id": exec_id, "reason": "legal"}));
        assert_eq!(status, 404, "{path}");
        assert_eq!(s.get(path).0, 404, "{path}");
    }

    // Refusals: clear JSON errors, nothing recorded.
    let size = s.ledger_size();
    let (status, body) = admin(
        &socket,
        &json!({"exec_id": exec_id, "reason": "because"}).to_string(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_reason")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("personal_data"),
        "{body}"
    );
    let (status, body) = admin(
        &socket,
        &json!({"exec_id": "no-such-id", "reason": "legal"}).to_string(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = admin(
        &socket,
        &json!({"index": 999, "reason": "legal"}).to_string(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = admin(
        &socket,
        &json!({"index": 0, "exec_id": exec_id, "reason": "legal"}).to_string(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_target")),
        "{body}"
    );
    let (status, body) = admin(&socket, "{not json");
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_body")),
        "{body}"
    );
    let out = openexec(&[
        "redact",
        "--admin-socket",
        socket.to_str().unwrap(),
        "--exec-id",
        &exec_id,
        "--reason",
        "whim",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown redaction reason"),
        "{}",
        text(&out)
    );
    assert_eq!(s.ledger_size(), size, "a refusal records nothing");

    // The redaction, through the CLI.
    let out = openexec(&[
        "redact",
        "--admin-socket",
        socket.to_str().unwrap(),
        "--exec-id",
        &exec_id,
        "--reason",
        "leaked_secret",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["redacted_index"], 0);
    assert_eq!(done["exec_id"], exec_id.as_str());
    assert_eq!(done["reason"], "leaked_secret");
    assert_eq!(done["already_redacted"], false);
    let redaction_index = done["redaction_index"].as_u64().unwrap();
    assert_eq!(redaction_index, size);
    let entry = entry_of(&done["receipt"]);
    assert_eq!(entry["outcome"], "redacted");
    assert_eq!(entry["reason"], "leaked_secret");
    assert_eq!(entry["redacts"]["index"], 0);
    assert_eq!(entry["exec_id"], exec_id.as_str());
    assert_eq!(
        entry["payload_commitment"],
        entry_of(&first["receipt"])["payload_commitment"]
    );
    assert_eq!(
        entry["result_commitment"],
        entry_of(&first["receipt"])["result_commitment"]
    );

    for needle in [SECRET, CARD] {
        assert_eq!(
            files_holding(&data, needle),
            Vec::<PathBuf>::new(),
            "{needle} is gone from every file"
        );
    }
    let (_, kept) = s.execute(&keep);
    assert_eq!(kept["outcome"], "replayed");
    assert_eq!(
        kept["result"]["echo"]["note"], "kept-note-xyzzy-31337",
        "another entry's content stays: {kept}"
    );

    // Every receipt still verifies: the one handed out before (with its
    // salts), a fresh one (without: nothing left to open), the redaction's.
    let (status, fresh) = s.get_json(&format!("/receipts/{exec_id}"));
    assert_eq!(status, 200);
    assert!(fresh.get("salts").is_none(), "{fresh}");
    assert!(first["receipt"].get("salts").is_some());
    verifies(
        &s,
        dir.path(),
        &[&first["receipt"], &fresh, &done["receipt"]],
    );

    // A replay: replayed, the recorded outcome, and the content erased.
    let (status, replay) = s.execute(&request);
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay["outcome"], "replayed");
    assert_eq!(replay["original_outcome"], "executed");
    assert_eq!(replay["exec_id"], exec_id.as_str());
    assert_eq!(replay["content"], "erased");
    assert_eq!(replay["redaction"]["index"], redaction_index);
    assert_eq!(replay["redaction"]["reason"], "leaked_secret");
    assert!(replay.get("result").is_none(), "{replay}");
    verifies(&s, dir.path(), &[&replay["receipt"]]);

    // Again: answered from the record, nothing erased or recorded again.
    let size = s.ledger_size();
    let (status, again) = admin(&socket, &json!({"index": 0, "reason": "legal"}).to_string());
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["already_redacted"], true);
    assert_eq!(again["redaction_index"], redaction_index);
    assert_eq!(again["reason"], "leaked_secret", "the recorded reason");
    assert_eq!(s.ledger_size(), size);
    // Nothing to erase in a replay, nor in the redaction entry itself.
    let (status, body) = admin(
        &socket,
        &json!({"index": size - 1, "reason": "legal"}).to_string(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("replay_entry")),
        "{body}"
    );
    let (status, body) = admin(
        &socket,
        &json!({"index": redaction_index, "reason": "legal"}).to_string(),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("no_content")),
        "{body}"
    );

    s.stop();
    assert!(!socket.exists(), "the socket is removed at a clean stop");
    let out = openexec(&["audit", "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    // A restart keeps it erased.
    let s = start(&data, &socket);
    let (status, replay) = s.execute(&request);
    assert_eq!(status, 200);
    assert_eq!(replay["content"], "erased");
    assert!(replay.get("result").is_none());
    let (_, fresh) = s.get_json(&format!("/receipts/{exec_id}"));
    verifies(&s, dir.path(), &[&fresh, &first["receipt"]]);
    for needle in [SECRET, CARD] {
        assert!(files_holding(&data, needle).is_empty(), "{needle}");
    }
}

/// A secret of 40 pseudo-random letters and digits, different for each
/// `i`: no run of it long enough for zstd to match occurs in an entry, so
/// a stored copy holds it byte for byte.
fn random_secret(i: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (0..40)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(ALNUM[(x % 62) as usize])
        })
        .collect()
}

/// [`admin`] without panicking on a server that is gone.
fn try_admin(socket: &Path, body: &str) -> std::io::Result<(u16, Value)> {
    let mut stream = UnixStream::connect(socket)?;
    write!(
        stream,
        "POST /admin/redact HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// Every `redacted` entry of the log: the index of the entry it redacts,
/// once per redaction.
fn redactions_in_log(s: &TestServer) -> Vec<u64> {
    let size = s.ledger_size();
    let mut found = Vec::new();
    for start in (0..size).step_by(1000) {
        let end = (start + 1000).min(size);
        let (status, page) = s.get_json(&format!("/ledger/entries?start={start}&end={end}"));
        assert_eq!(status, 200);
        for e in page["entries"].as_array().unwrap() {
            let entry: Value = serde_json::from_str(e["entry"].as_str().unwrap()).unwrap();
            if entry["outcome"] == "redacted" {
                found.push(entry["redacts"]["index"].as_u64().unwrap());
            }
        }
    }
    found
}

#[test]
fn kill_9_during_redactions_under_load_leaves_each_one_whole_or_absent() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let socket = dir.path().join("admin.sock");
    let mut s = start(&data, &socket);
    let secret = random_secret;
    let mut targets = Vec::new();
    for i in 0..40 {
        let (status, body) = s.execute(&json!({"action": "echo", "nonce": format!("r-{i}"),
            "payload": {"note": secret(i)}}));
        assert_eq!(status, 200, "{body}");
        let index = body["receipt"]["leaf_index"].as_u64().unwrap();
        targets.push((i, body["exec_id"].as_str().unwrap().to_owned(), index));
    }
    // zstd may code a record's literals with Huffman codes; the check is
    // on the secrets stored byte for byte (nearly all), found here first.
    let files = every_file(&data);
    targets.retain(|(i, ..)| !holding(&files, &secret(*i)).is_empty());
    assert!(
        targets.len() >= 30,
        "{} secrets stored in the clear",
        targets.len()
    );
    let mut acknowledged = std::collections::HashSet::new();
    let began = std::time::Instant::now();
    for round in 0..5u64 {
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (stop, base) = (Arc::clone(&stop), s.base.clone());
            std::thread::spawn(move || {
                let agent = server::agent();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = agent.post(&format!("{base}/execute")).send_json(
                        json!({"action": "echo", "nonce": format!("load-{round}-{n}"), "payload": {"n": n}}),
                    );
                    n += 1;
                }
            })
        };
        let redactor = {
            let socket = socket.clone();
            let pending: Vec<_> = targets
                .iter()
                .filter(|(i, ..)| !acknowledged.contains(i))
                .cloned()
                .collect();
            std::thread::spawn(move || {
                let mut done = Vec::new();
                for (i, exec_id, _) in pending {
                    let body = json!({"exec_id": exec_id, "reason": "personal_data"}).to_string();
                    match try_admin(&socket, &body) {
                        Ok((200, _)) => done.push(i),
                        _ => break,
                    }
                }
                done
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(60 + 50 * round));
        s.child.kill().unwrap();
        s.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap();
        acknowledged.extend(redactor.join().unwrap());
        s = start(&data, &socket);
        let logged = redactions_in_log(&s);
        let files = every_file(&data);
        eprintln!(
            "round {round}: {} redactions acknowledged, {} in the log, {} entries, {:?}",
            acknowledged.len(),
            logged.len(),
            s.ledger_size(),
            began.elapsed()
        );
        for (i, _, index) in &targets {
            let times = logged.iter().filter(|&&r| r == *index).count();
            assert!(
                times <= 1,
                "round {round}: entry {index} redacted {times} times"
            );
            let erased = holding(&files, &secret(*i)).is_empty();
            assert_eq!(
                erased,
                times == 1,
                "round {round}: entry {index} erased: {erased}, redaction entries: {times}"
            );
            if acknowledged.contains(i) {
                assert!(
                    erased,
                    "round {round}: an acknowledged redaction of entry {index} is lost"
                );
            }
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "some redactions were acknowledged"
    );
    s.stop();
    let out = openexec(&["audit", "--data", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A retired log takes no redaction entry: the admin socket refuses up
/// front (409 `log_retired`), records nothing, erases nothing, and says
/// the same again.
#[test]
fn a_retired_log_refuses_a_redaction_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let socket = dir.path().join("admin.sock");
    let mut s = start(&data, &socket);
    let request = json!({"action": "echo", "nonce": "retired-1", "payload": {"note": SECRET}});
    assert_eq!(s.execute(&request).0, 200);
    s.stop();
    let out = openexec(&[
        "rotate",
        "--data-dir",
        data.to_str().unwrap(),
        "--new-data-dir",
        dir.path().join("next").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let mut s = start(&data, &socket);
    for _ in 0..2 {
        let (status, body) = admin(&socket, r#"{"index": 0, "reason": "personal_data"}"#);
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("log_retired")),
            "{body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains("retired log"),
            "{body}"
        );
    }
    s.stop();
    assert!(!files_holding(&data, SECRET).is_empty(), "nothing erased");
    let audit = openexec(&["audit", "--data", data.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(audit.status.success(), "{text}");
    assert!(!text.contains("redaction"), "no pending redaction: {text}");
}

/// Whether this test process runs as root (it owns what it creates).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid() == 0
}

#[test]
fn another_user_is_refused_even_through_a_widened_socket() {
    use std::os::unix::process::CommandExt as _;
    if !running_as_root() || Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: needs root (to connect as another user) and curl");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let socket = dir.path().join("admin.sock");
    let _s = start(&data, &socket);
    // The service's own user gets past the check (to a 404: no entry 99).
    let (status, body) = admin(&socket, r#"{"index": 99, "reason": "legal"}"#);
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    // Widened by mistake: the mode no longer keeps others out.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("curl")
        .args(["-s", "--unix-socket", socket.to_str().unwrap()])
        .args([
            "-H",
            "Content-Type: application/json",
            "-w",
            "\n%{http_code}",
        ])
        .args(["-d", r#"{"index": 99, "reason": "legal"}"#])
        .arg("http://x/admin/redact")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "403", "{text}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], "forbidden_peer", "{body}");
}
