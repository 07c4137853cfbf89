//! How much the ledger can grow without approvals, on a real server: a
//! replay keeps no content whatever the request's size, and replays and
//! rejections from many source addresses together are recorded no faster
//! than the global limit allows; the rest are answered 429 with
//! `Retry-After`, not recorded, and counted in `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use common::server::{start, TestServer};
use openexec::core::canonical::to_canonical_bytes;
use openexec::core::entry::Outcome;
use openexec::core::hash::{leaf_hash, Hash};
use openexec::core::receipt::{opens_commitment, verify_receipt, Receipt};

/// Most bytes one replay or rejection adds to `entries.bin`, `entries.idx`
/// and `hashes.bin` together, as SECURITY.md states it (§3).
const MAX_BYTES_PER_UNRUN_ENTRY: u64 = 1024;

/// The log's files that grow with each entry.
fn log_bytes(s: &TestServer) -> u64 {
    ["entries.bin", "entries.idx", "hashes.bin"]
        .iter()
        .map(|f| std::fs::metadata(s.data.join("db").join(f)).map_or(0, |m| m.len()))
        .sum()
}

fn entries_bin(s: &TestServer) -> u64 {
    std::fs::metadata(s.data.join("db").join("entries.bin"))
        .unwrap()
        .len()
}

/// `len` characters no compressor shrinks much (base64 of a hash chain).
fn incompressible(len: usize) -> String {
    let mut out = String::new();
    let mut h = Hash::sha256(b"seed");
    while out.len() < len {
        h = Hash::sha256(h.as_bytes());
        out.push_str(&STANDARD.encode(h.as_bytes()));
    }
    out.truncate(len);
    out
}

fn ledger_size(s: &TestServer) -> u64 {
    s.get_json("/health").1["ledger"]["size"].as_u64().unwrap()
}

#[test]
fn a_replay_of_a_large_request_adds_a_few_hundred_bytes_and_answers_the_original_result() {
    let mut s = start(&[]);
    let payload = json!({"blob": incompressible(48_000)});
    let body = json!({"action": "echo", "payload": payload, "nonce": "large-1"});
    let before = entries_bin(&s);
    let (status, first) = s.execute(&body);
    assert_eq!(status, 200, "{first}");
    let original_bytes = entries_bin(&s) - before;
    // The original keeps its payload and result (echo: the payload again),
    // at least the payload's 48,000 base64 characters at 6 bits each.
    assert!(
        original_bytes > 36_000,
        "the original added {original_bytes} bytes"
    );

    let verifier = s.verifier();
    let first_receipt: Receipt = serde_json::from_value(first["receipt"].clone()).unwrap();
    let original = verify_receipt(&first_receipt, &verifier, None).unwrap();
    let (log_before, entries_before) = (log_bytes(&s), entries_bin(&s));
    const REPLAYS: u64 = 40;
    for _ in 0..REPLAYS {
        let (status, again) = s.execute(&body);
        assert_eq!(
            (status, again["outcome"].as_str()),
            (200, Some("replayed")),
            "{again}"
        );
        // The original's answer, read from the original's content.
        for field in ["id", "exec_id", "result", "receipt_hash"] {
            assert_eq!(again[field], first[field], "{field}");
        }
        // Its receipt proves the replay entry, which names the original
        // and repeats its commitments; the salts kept with the original
        // open them.
        let receipt: Receipt = serde_json::from_value(again["receipt"].clone()).unwrap();
        let replay = verify_receipt(&receipt, &verifier, None).unwrap().entry;
        assert_eq!(replay.outcome, Outcome::Replayed);
        let of = replay.replay_of.expect("a replay names its original");
        assert_eq!(
            (of.index, of.leaf_hash),
            (original.entry.index, original.leaf_hash)
        );
        assert_eq!(replay.payload_commitment, original.entry.payload_commitment);
        assert_eq!(replay.result_commitment, original.entry.result_commitment);
        let salts = receipt.salts.expect("the original's salts");
        let canonical = to_canonical_bytes(&payload).unwrap();
        assert!(opens_commitment(
            &replay.payload_commitment,
            &salts.payload,
            &canonical
        ));
    }
    let per_replay = (entries_bin(&s) - entries_before) / REPLAYS;
    let per_replay_all = (log_bytes(&s) - log_before) / REPLAYS;
    eprintln!(
        "the original added {original_bytes} bytes to entries.bin; a replay {per_replay} \
         (with entries.idx and hashes.bin, {per_replay_all})"
    );
    assert!(
        per_replay_all <= MAX_BYTES_PER_UNRUN_ENTRY / 2,
        "a replay of a 48 KB request added {per_replay_all} bytes"
    );
    s.stop();
    let store = openexec::store::Store::open(&openexec::store::StoreConfig::new(s.data.join("db")))
        .unwrap();
    assert_eq!(common::full_audit(&store), None);
    assert_eq!(
        leaf_hash(&store.entry(original.entry.index).unwrap().unwrap().0),
        original.leaf_hash
    );
}

/// One HTTP/1.1 `POST /execute` from `source`, on its own connection.
async fn post_from(source: IpAddr, server: SocketAddr, body: &Value) -> (u16, Option<u64>, Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST /execute HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let retry_after = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().parse().unwrap())
    });
    (
        status,
        retry_after,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// What a flood from many addresses got.
struct Flood {
    recorded: u64,
    limited: u64,
    elapsed: Duration,
}

/// Sends `per_address` replays and as many rejections from each of
/// `addresses` loopback addresses (127.0.0.2 on), concurrently, and checks
/// every answer: a recorded replay or rejection, or 429 with `Retry-After`
/// and not recorded.
fn flood(s: &TestServer, addresses: u8, per_address: usize) -> Flood {
    let (status, _) = s.execute(&json!({"action": "echo", "payload": {"m": 1}, "nonce": "f-1"}));
    assert_eq!(status, 200);
    let size_before = ledger_size(s);
    let server: SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let answers: Vec<(u16, Option<u64>, Value)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..addresses)
            .map(|a| {
                tokio::spawn(async move {
                    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + a));
                    let mut got = Vec::new();
                    for i in 0..per_address {
                        let replay = json!({"action": "echo", "payload": {"m": 1}, "nonce": "f-1"});
                        let reject = json!({"action": "nope", "nonce": format!("r-{a}-{i}")});
                        got.push(post_from(source, server, &replay).await);
                        got.push(post_from(source, server, &reject).await);
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    let mut recorded = 0;
    let mut limited = 0;
    for (status, retry_after, body) in &answers {
        match (status, body["outcome"].as_str()) {
            (200, Some("replayed")) | (400, Some("rejected")) => {
                assert!(body["receipt"].is_object(), "{body}");
                recorded += 1;
            }
            (429, _) => {
                assert_eq!(body["code"], "rate_limited", "{body}");
                assert!(body.get("receipt").is_none(), "{body}");
                let secs = retry_after.expect("429 with Retry-After");
                assert!((1..=60).contains(&secs), "Retry-After: {secs}");
                limited += 1;
            }
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    assert_eq!(
        ledger_size(s) - size_before,
        recorded,
        "every answer but 429 was recorded, and no 429 was"
    );
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains(&format!("openexec_rate_limited_total {limited}\n")),
        "{metrics}"
    );
    Flood {
        recorded,
        limited,
        elapsed,
    }
}

/// The limit per address alone would let all 1,000 through (each address
/// sends 20, under its burst of 1,000); the global bucket records its burst
/// and its rate, however many addresses share it.
#[test]
fn replays_and_rejections_from_many_addresses_are_held_to_the_global_bound() {
    let s = start(&[
        ("OPENEXEC_REJECT_RATE", "1000"),
        ("OPENEXEC_REJECT_BURST", "1000"),
        ("OPENEXEC_REJECT_GLOBAL_RATE", "5"),
        ("OPENEXEC_REJECT_GLOBAL_BURST", "40"),
    ]);
    let f = flood(&s, 50, 10);
    let bound = 40 + (5.0 * f.elapsed.as_secs_f64()).ceil() as u64;
    eprintln!(
        "{} recorded, {} limited in {:?} (bound {bound})",
        f.recorded, f.limited, f.elapsed
    );
    assert_eq!(f.recorded + f.limited, 1000);
    assert!(f.recorded >= 40, "the burst is recorded: {}", f.recorded);
    assert!(
        f.recorded <= bound,
        "{} recorded, bound {bound}",
        f.recorded
    );
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains(&format!(
            "openexec_rate_limited_global_total {}\n",
            f.limited
        )),
        "every refusal was the global bucket's: {metrics}"
    );
}

/// At the default settings (per address 20/s, burst 200; global 50/s,
/// burst 500), 3,000 replays and rejections from 50 addresses record at
/// most the global burst plus the global rate over the time they took.
#[test]
fn at_the_default_settings_many_addresses_record_at_most_the_global_bound() {
    let s = start(&[]);
    let f = flood(&s, 50, 30);
    let bound = 500 + (50.0 * f.elapsed.as_secs_f64()).ceil() as u64;
    eprintln!(
        "{} recorded, {} limited in {:?} (bound {bound})",
        f.recorded, f.limited, f.elapsed
    );
    assert_eq!(f.recorded + f.limited, 3000);
    assert!(
        f.recorded <= bound,
        "{} recorded, bound {bound}",
        f.recorded
    );
    assert!(f.limited > 0);
}
