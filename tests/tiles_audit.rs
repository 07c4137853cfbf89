//! `openexec audit --url`: a running log audited through its C2SP tiles
//! alone, by the real binary over real HTTP — as served, through a
//! tampering proxy on loopback (which alters the bytes of chosen tiles in
//! flight), and against a `--state` file holding an earlier checkpoint of
//! the same tree, of a fork signed with the same key, of a larger tree, or
//! of another log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::server::{self, TestServer};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// One run of `openexec audit --url`: exit code, stdout, stderr.
fn audit(url: &str, vkey: &str, state: Option<&Path>, extra: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(common::binary());
    cmd.env_clear().args(["audit", "--url", url, "--key", vkey]);
    if let Some(state) = state {
        cmd.arg("--state").arg(state);
    }
    let out = cmd.args(extra).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Grows the log to `target` entries, `tag` making its requests its own.
/// Entry `i` is request `i`, but every seventh request repeats an earlier
/// one, three entries back or (from entry 261) 261 back, in an earlier
/// level-0 tile: the log holds replays of both kinds.
fn grow_to(s: &TestServer, target: u64, tag: &str) {
    let have = s.ledger_size();
    for i in have..target {
        let n = match (i % 7, (i / 7) % 2) {
            (6, 1) if i >= 261 => i - 261,
            (6, _) => i - 3,
            _ => i,
        };
        let body = json!({"action": "echo", "payload": {"i": n}, "nonce": format!("{tag}-{n}")});
        let (status, r) = s.execute(&body);
        assert_eq!(status, 200, "{r}");
    }
    assert_eq!(s.ledger_size(), target);
}

fn leaf_hash(data: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0])
        .chain_update(data)
        .finalize()
        .into()
}

/// The proxy's rule: given a request path and the upstream's status and
/// body, what to answer instead.
type Rule = Box<dyn Fn(&str, u16, &mut Vec<u8>) -> u16 + Send>;

/// The `Accept-Encoding` of each bundle request a proxy saw.
type Asked = Arc<Mutex<Vec<String>>>;

/// A loopback HTTP proxy in front of `upstream` that applies `rule` to
/// every response (one request per connection, `Connection: close`), and
/// gzips every entry bundle without being asked (`Content-Encoding:
/// gzip`, which tlog-tiles allows a log to do). Also returns the
/// `Accept-Encoding` of each bundle request it saw.
fn proxy(upstream: &str) -> (String, Arc<Mutex<Rule>>, Asked) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(Box::new(|_, s, _| s)));
    let asked: Asked = Arc::default();
    let (upstream, shared, seen) = (upstream.to_owned(), Arc::clone(&rule), Arc::clone(&asked));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut accept = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("accept-encoding") {
                        accept = value.trim().to_owned();
                    }
                }
            }
            let path = first.split(' ').nth(1).unwrap_or("/").to_owned();
            let (mut status, mut body) = match ureq::get(&format!("{upstream}{path}")).call() {
                Ok(r) | Err(ureq::Error::Status(_, r)) => {
                    let status = r.status();
                    let mut body = Vec::new();
                    r.into_reader().read_to_end(&mut body).unwrap();
                    (status, body)
                }
                Err(_) => (502, Vec::new()),
            };
            status = (shared.lock().unwrap())(&path, status, &mut body);
            let mut encoding = "";
            if path.starts_with("/tile/entries/") && status == 200 {
                seen.lock().unwrap().push(accept);
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&body).unwrap();
                body = gz.finish().unwrap();
                encoding = "Content-Encoding: gzip\r\n";
            }
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{encoding}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    (base, rule, asked)
}

fn set(rule: &Arc<Mutex<Rule>>, f: impl Fn(&str, u16, &mut Vec<u8>) -> u16 + Send + 'static) {
    *rule.lock().unwrap() = Box::new(f);
}

#[test]
fn a_live_log_audits_through_its_tiles_and_stays_consistent_across_runs() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("audit.checkpoint");

    grow_to(&s, 300, "a");
    let (code, out, err) = audit(&s.base, &vkey, Some(&state), &["--progress-every", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    // 300 entries: level-0 tiles 000 and 001.p/44, level-1 tile 000.p/1.
    assert!(
        out.starts_with("OK: 300 entries of openexec.local/log verified through 3 hash tiles and 2 entry bundles"),
        "{out}"
    );
    assert!(out.contains("42 replays checked"), "{out}");
    assert!(!out.contains("consistent with"), "{out}");
    assert!(err.contains("audit: 256/300 entries checked"), "{err}");
    let first_note = std::fs::read_to_string(&state).unwrap();
    assert_eq!(first_note, s.get("/checkpoint").1);

    // The log grows past two full tiles: the new tree must extend the one
    // in the state file, and its checkpoint replaces it.
    grow_to(&s, 600, "a");
    let (code, out, err) = audit(&s.base, &vkey, Some(&state), &[]);
    assert_eq!(code, 0, "{out}{err}");
    // Level 0: 000, 001, 002.p/88; level 1: 000.p/2.
    assert!(out.contains("600 entries"), "{out}");
    assert!(
        out.contains("through 4 hash tiles and 3 entry bundles"),
        "{out}"
    );
    assert!(out.contains("(85 replays checked)"), "{out}");
    assert!(
        out.contains("consistent with the earlier checkpoint of 300 entries"),
        "{out}"
    );
    let second_note = std::fs::read_to_string(&state).unwrap();
    assert_ne!(second_note, first_note);
    assert!(
        second_note.starts_with("openexec.local/log\n600\n"),
        "{second_note}"
    );

    // The same tree again is consistent with itself.
    let (code, out, _) = audit(&s.base, &vkey, Some(&state), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("consistent with the earlier checkpoint of 600 entries"),
        "{out}"
    );

    // The key may be given as a file, as `openexec verify --key` takes it.
    let key_file = dir.path().join("log.vkey");
    std::fs::write(&key_file, format!("{vkey}\n")).unwrap();
    let (code, out, _) = audit(&s.base, key_file.to_str().unwrap(), None, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn tiles_altered_in_flight_are_refused_with_a_finding() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    grow_to(&s, 600, "t");
    let (base, rule, asked) = proxy(&s.base);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (code, out, _) = audit(&base, &vkey, Some(&state), &[]);
    assert_eq!(code, 0, "the proxy passes bytes unchanged: {out}");
    // Three bundles, and the earlier ones again for replays 261 entries
    // back: each asked for gzip and read gzipped.
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.len() > 3 && asked.iter().all(|a| a == "gzip"),
        "{asked:?}"
    );
    let saved = std::fs::read(&state).unwrap();

    let cases: Vec<(&str, Rule, &str)> = vec![
        (
            "one bit of a level-0 hash",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/tile/0/001" {
                    b[32 * 9] ^= 1;
                }
                st
            }),
            "entry 265: its bytes hash to",
        ),
        (
            "one byte of an entry",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/tile/entries/002.p/88" {
                    // The first entry's first member name: `{"action"…`.
                    assert_eq!(&b[2..4], b"{\"");
                    b[4] ^= 0x20;
                }
                st
            }),
            "entry 512: its bytes hash to",
        ),
        (
            "one bit of a level-1 hash",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/tile/1/000.p/2" {
                    b[32 + 17] ^= 0x80;
                }
                st
            }),
            "tile/1/000.p/2: hash 1 is",
        ),
        (
            "an entry rewritten, its level-0 hash to match",
            rewrite_entry(&s.base, 10),
            "entry 11: hash chain broken",
        ),
        (
            "the last entry rewritten, its level-0 hash to match",
            rewrite_entry(&s.base, 599),
            "the tiles of the tree of 600 entries give root",
        ),
        (
            "tile 0 rewritten only when read again for a replay",
            only_when_read_again(rewrite_entry(&s.base, 10)),
            "tile/0/000 read again is not the tile audited",
        ),
        (
            "a missing tile",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/tile/entries/001" {
                    b.clear();
                    return 404;
                }
                st
            }),
            "/tile/entries/001: 404",
        ),
        (
            "a hash tile longer than any tile",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/tile/0/000" {
                    b.extend_from_slice(&[0; 32]);
                }
                st
            }),
            "/tile/0/000: more than 8192 bytes",
        ),
        (
            "a partial tile one hash short",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/tile/0/002.p/88" {
                    b.truncate(b.len() - 32);
                }
                st
            }),
            "tile/0/002.p/88: 2784 bytes, where a tile of width 88 holds 2816 bytes",
        ),
        (
            "a partial tile one hash long: past what its width allows",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/tile/0/002.p/88" {
                    b.extend_from_slice(&[0; 32]);
                }
                st
            }),
            "/tile/0/002.p/88: more than 2816 bytes",
        ),
        (
            "a partial bundle longer than its 88 entries can be, once gunzipped",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/tile/entries/002.p/88" {
                    b.resize(88 * 65_537 + 1, 0);
                }
                st
            }),
            "/tile/entries/002.p/88: more than 5767256 bytes",
        ),
        (
            "a checkpoint with its size changed",
            Box::new(|p: &str, st, b: &mut Vec<u8>| {
                if p == "/checkpoint" {
                    let text = String::from_utf8(b.clone()).unwrap();
                    *b = text.replacen("\n600\n", "\n599\n", 1).into_bytes();
                }
                st
            }),
            "/checkpoint: checkpoint signature is invalid",
        ),
    ];
    for (what, r, expect) in cases {
        *rule.lock().unwrap() = r;
        let (code, out, err) = audit(&base, &vkey, Some(&state), &[]);
        assert_eq!(code, 1, "{what}: {out}{err}");
        assert!(
            out.starts_with("FAILED: ") && out.contains(expect),
            "{what}: {out}"
        );
        assert_eq!(std::fs::read(&state).unwrap(), saved, "{what}: state kept");
    }
    // A failing upstream is a network error, not a finding.
    set(&rule, |p, st, _| if p == "/tile/0/000" { 503 } else { st });
    let (code, out, _) = audit(&base, &vkey, Some(&state), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("ERROR: GET "), "{out}");
    set(&rule, |_, st, _| st);
    assert_eq!(audit(&base, &vkey, Some(&state), &[]).0, 0);
}

/// A rule that changes entry `k`'s nonce in its bundle and puts the new
/// leaf hash in its level-0 tile: the entry and its tile agree, so only
/// what lies above them (the next entry's `prev`, the tiles above, the
/// root) shows it.
fn rewrite_entry(upstream: &str, k: u64) -> Rule {
    let upstream = upstream.to_owned();
    let tile = k / 256;
    let width = (600 - tile * 256).min(256);
    let suffix = if width == 256 {
        String::new()
    } else {
        format!(".p/{width}")
    };
    let bundle_path = format!("/tile/entries/{tile:03}{suffix}");
    let tile_path = format!("/tile/0/{tile:03}{suffix}");
    Box::new(move |path: &str, status, body: &mut Vec<u8>| {
        if path != bundle_path && path != tile_path {
            return status;
        }
        // Both are rewritten from the bundle the upstream serves.
        let mut bundle = Vec::new();
        ureq::get(&format!("{upstream}{bundle_path}"))
            .call()
            .unwrap()
            .into_reader()
            .read_to_end(&mut bundle)
            .unwrap();
        let mut at = 0;
        for _ in 0..k % 256 {
            at += 2 + usize::from(u16::from_be_bytes([bundle[at], bundle[at + 1]]));
        }
        let len = usize::from(u16::from_be_bytes([bundle[at], bundle[at + 1]]));
        let entry = &mut bundle[at + 2..at + 2 + len];
        let text = String::from_utf8(entry.to_vec()).unwrap();
        let from = format!("\"nonce\":\"t-{k}\"");
        let to = from.replacen("t-", "t~", 1);
        let changed = text.replacen(&from, &to, 1);
        assert_ne!(text, changed, "{text}");
        entry.copy_from_slice(changed.as_bytes());
        if path == bundle_path {
            *body = bundle;
        } else {
            let i = usize::try_from(k % 256).unwrap() * 32;
            body[i..i + 32].copy_from_slice(&leaf_hash(changed.as_bytes()));
        }
        status
    })
}

/// `rule`, applied to a path from its second request on.
fn only_when_read_again(rule: Rule) -> Rule {
    let seen = Mutex::new(std::collections::HashMap::<String, u32>::new());
    Box::new(move |path: &str, status, body: &mut Vec<u8>| {
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(path.to_owned()).or_default();
        *n += 1;
        if *n > 1 {
            rule(path, status, body)
        } else {
            status
        }
    })
}

/// A state file from another tree is refused, and kept: a fork signed
/// with the same key (same size or smaller), a larger tree (a rollback),
/// another log's checkpoint.
#[test]
fn a_state_from_a_fork_a_larger_tree_or_another_log_is_refused() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    grow_to(&s, 300, "main");
    // A second log with the same key and origin, and other entries.
    let dir = tempfile::tempdir().unwrap();
    let key = s.data.join("log.key");
    assert!(key.exists(), "{}", key.display());
    let fork = server::start_in(
        &dir.path().join("fork"),
        &[("OPENEXEC_LOG_KEY", key.to_str().unwrap())],
    )
    .unwrap();
    assert_eq!(fork.get("/ledger/key").1, vkey);
    let state = dir.path().join("state");
    for (size, expect) in [
        (1, "not consistent: the earlier checkpoint of 1 entries"),
        (299, "not consistent: the earlier checkpoint of 299 entries"),
        (300, "not consistent: the earlier checkpoint of 300 entries"),
        (
            301,
            "rollback: an earlier checkpoint has 301 entries, the current one 300",
        ),
    ] {
        grow_to(&fork, size, "fork");
        let note = fork.get("/checkpoint").1;
        std::fs::write(&state, &note).unwrap();
        let (code, out, err) = audit(&s.base, &vkey, Some(&state), &[]);
        assert_eq!(code, 1, "{size}: {out}{err}");
        assert!(
            out.starts_with("FAILED: ") && out.contains(expect),
            "{size}: {out}"
        );
        assert_eq!(std::fs::read_to_string(&state).unwrap(), note, "kept");
    }
    // Another log's checkpoint does not open with this key: the state file
    // is not this log's.
    let other = server::start(&[]);
    std::fs::write(&state, other.get("/checkpoint").1).unwrap();
    let (code, out, _) = audit(&s.base, &vkey, Some(&state), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("does not hold a checkpoint of this log"),
        "{out}"
    );
    // The fork, audited on its own, verifies: it is a log, just not this one.
    let (code, out, _) = audit(&fork.base, &vkey, None, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn usage_and_network_errors_exit_2() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    let (code, out, _) = audit("https://127.0.0.1:1", &vkey, None, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("http://"), "{out}");
    let (code, out, _) = audit(&s.base, "not-a-key+zz", None, &[]);
    assert_eq!(code, 2, "{out}");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, out, _) = audit(&format!("http://{closed}"), &vkey, None, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("ERROR: GET "), "{out}");
    let out = Command::new(common::binary())
        .env_clear()
        .args(["audit", "--url", &s.base])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // The wrong log's key: the checkpoint does not verify, a finding.
    let other = server::start(&[]);
    let (code, out, _) = audit(&s.base, &other.get("/ledger/key").1, None, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("/checkpoint: "), "{out}");
}

/// tlog-tiles lets a log delete a partial tile once the full tile exists:
/// the audit then cuts the partial tile it needs from the full one. Here
/// a proxy serves the checkpoint of 300 entries while the log holds 600,
/// and answers 404 for every partial level-0 tile and bundle.
#[test]
fn a_partial_tile_the_log_dropped_is_read_from_its_full_tile() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    grow_to(&s, 300, "p");
    let note = s.get("/checkpoint").1;
    grow_to(&s, 600, "p");
    let (base, rule, _) = proxy(&s.base);
    let dropped = |p: &str| {
        (p.starts_with("/tile/0/") || p.starts_with("/tile/entries/")) && p.contains(".p/")
    };
    let old = note.clone();
    set(&rule, move |p, st, b| {
        if p == "/checkpoint" {
            *b = old.clone().into_bytes();
        } else if dropped(p) {
            b.clear();
            return 404;
        }
        st
    });
    let (code, out, err) = audit(&base, &vkey, None, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK: 300 entries"), "{out}");
    // Without the full tile either, the tile is missing: a finding.
    set(&rule, move |p, st, b| {
        if p == "/checkpoint" {
            *b = note.clone().into_bytes();
        } else if dropped(p) || p == "/tile/0/001" {
            b.clear();
            return 404;
        }
        st
    });
    let (code, out, _) = audit(&base, &vkey, None, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("/tile/0/001.p/44: 404"), "{out}");
}

/// The files in `dir` by name, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// An audit that verified an older tree, finishing after another audit
/// saved a newer checkpoint, keeps the newer one and exits 2. The proxy
/// holds the slow audit at its first tile until the fast one is done.
#[test]
fn a_slow_audit_does_not_overwrite_a_newer_checkpoint_saved_meanwhile() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    grow_to(&s, 300, "slow");
    assert_eq!(audit(&s.base, &vkey, Some(&state), &[]).0, 0);
    grow_to(&s, 600, "slow");
    let (base, rule, _) = proxy(&s.base);
    let reached = Arc::new(AtomicBool::new(false));
    let go = Arc::new(AtomicBool::new(false));
    let (r, g) = (Arc::clone(&reached), Arc::clone(&go));
    set(&rule, move |p, st, _| {
        if p == "/tile/0/000" {
            r.store(true, Ordering::SeqCst);
            while !g.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        st
    });
    let slow = {
        let (base, vkey, state) = (base.clone(), vkey.clone(), state.clone());
        std::thread::spawn(move || audit(&base, &vkey, Some(&state), &[]))
    };
    let start = std::time::Instant::now();
    while !reached.load(Ordering::SeqCst) {
        assert!(start.elapsed().as_secs() < 120, "the slow audit never came");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The slow audit has the checkpoint of 600 entries; the log grows and
    // a fast audit saves the checkpoint of 700.
    grow_to(&s, 700, "slow");
    let (code, out, err) = audit(&s.base, &vkey, Some(&state), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK: 700 entries"), "{out}");
    let newest = s.get("/checkpoint").1;
    assert_eq!(std::fs::read_to_string(&state).unwrap(), newest);
    go.store(true, Ordering::SeqCst);
    let (code, out, err) = slow.join().unwrap();
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.starts_with("ERROR: the log verifies, but ")
            && out.contains("changed while this audit ran")
            && out.contains("run the audit again"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), newest, "kept");
    // Run again, it checks the tree against the newer checkpoint.
    let (code, out, _) = audit(&base, &vkey, Some(&state), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("consistent with the earlier checkpoint of 700 entries"),
        "{out}"
    );
    assert_eq!(
        names_in(dir.path()),
        ["state", "state.lock"],
        "no temporary file left"
    );
}

/// Audits run at once against one state file while the log grows: each
/// ends OK or asks to be run again, and the state holds the newest
/// checkpoint any of them verified, whole.
#[test]
fn concurrent_audits_share_a_state_file() {
    let s = server::start(&[]);
    let vkey = s.get("/ledger/key").1;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    grow_to(&s, 300, "c");
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let (base, vkey, state) = (s.base.clone(), vkey.clone(), state.clone());
            let run = std::thread::spawn(move || audit(&base, &vkey, Some(&state), &[]));
            grow_to(&s, 300 + 40 * (i + 1), "c");
            run
        })
        .collect();
    let mut verified = Vec::new();
    for run in runs {
        let (code, out, err) = run.join().unwrap();
        match code {
            0 => verified.push(
                out.strip_prefix("OK: ")
                    .and_then(|o| o.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("{out}")),
            ),
            2 => assert!(out.contains("run the audit again"), "{out}{err}"),
            _ => panic!("exit {code}: {out}{err}"),
        }
    }
    let newest = *verified.iter().max().expect("the first to save succeeds");
    let note = std::fs::read_to_string(&state).unwrap();
    assert!(
        note.starts_with(&format!("openexec.local/log\n{newest}\n")),
        "{verified:?}: {note}"
    );
    assert_eq!(
        names_in(dir.path()),
        ["state", "state.lock"],
        "no temporary file left"
    );
    // The state opens and the log is consistent with it.
    let (code, out, _) = audit(&s.base, &vkey, Some(&state), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "consistent with the earlier checkpoint of {newest} entries"
        )),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        s.get("/checkpoint").1
    );
}
