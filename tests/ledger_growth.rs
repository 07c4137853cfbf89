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
/// and `hashes.bin` together, as SECURITY.md states it (§3): the longest
/// entry text, uncompressed, and the record's framing, index slot and
/// stored hashes.
const MAX_BYTES_PER_UNRUN_ENTRY: u64 = 4096;

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
        per_replay_all <= 512,
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

/// Most bytes of an entry's text for an attempt that ran nothing, with
/// every string at its bound (SECURITY.md §3): what the log key name adds
/// beyond the default origin's comes on top.
const MAX_UNRUN_ENTRY_TEXT: usize = 3_200;

/// A string of `len` bytes that JSON escapes at 6 bytes each.
fn escaped_6x(len: usize) -> String {
    (0..len).map(|i| char::from(1 + (i % 31) as u8)).collect()
}

/// An entry's text with every string at its bound: a tenant and an
/// approval id and expiry of 128 bytes, a nonce of 128 characters, all
/// escaped at their worst (6 bytes for a control character, 2 for `"`), an
/// action of 64, the longest reason a replay or rejection records, the
/// default origin, and the largest index.
#[test]
fn the_longest_entry_of_an_attempt_that_ran_nothing_is_bounded() {
    use openexec::core::approval::MAX_ARTIFACT_FIELD_BYTES;
    use openexec::core::entry::{
        ApprovalKind, ApprovalSummary, Entry, EntryDraft, ReplayOf, MAX_INDEX,
    };
    let longest = escaped_6x(MAX_ARTIFACT_FIELD_BYTES);
    let draft = EntryDraft {
        exec_id: uuid_like(),
        tenant: longest.clone(),
        action: "a".repeat(64),
        nonce: "\"".repeat(128),
        request_hash: Hash::sha256(b"r"),
        payload_commitment: Hash::sha256(b"p"),
        result_commitment: Some(Hash::sha256(b"q")),
        approval: ApprovalSummary {
            kind: ApprovalKind::ClawshieldV1,
            id: Some(longest.clone()),
            key_id: Some("0123456789abcdef".into()),
            expires_at: Some(longest),
        },
        outcome: Outcome::Replayed,
        // The longest reason code there is.
        reason: "r".repeat(64),
        replay_of: Some(ReplayOf {
            index: MAX_INDEX - 1,
            leaf_hash: Hash::sha256(b"l"),
        }),
        // A replay names no effects class; every entry names its registry.
        effects: None,
        registry: Some(Hash::sha256(b"f")),
        principal: None,
    };
    let entry = Entry::from_draft(
        draft,
        openexec::ledger::DEFAULT_ORIGIN,
        MAX_INDEX,
        Hash::sha256(b"prev"),
        chrono::Utc::now(),
    );
    let len = entry.to_canonical_bytes().unwrap().len();
    eprintln!("the longest entry of an attempt that ran nothing: {len} bytes");
    assert!(len <= MAX_UNRUN_ENTRY_TEXT, "{len}");
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".into()
}

/// An artifact field longer than 128 bytes is malformed: the attempt is a
/// recorded rejection that keeps none of it, not even a claimed tenant.
/// A configured tenant longer than that refuses to start.
#[test]
fn an_artifacts_overlong_fields_are_refused_and_not_recorded() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    let s = start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem),
    ]);
    let verifier = s.verifier();
    let long = "t".repeat(129);
    let v2 = json!({"format": "openexec-approval/v2", "approval_id": "a", "tenant": long,
        "request_hash": "", "key_id": "", "issued_at": "", "expires_at": ""});
    let v1 = json!({"approval_id": "a", "tenant_id": long, "action_hash": "",
        "issued_at": "", "expires_at": "", "signature": ""});
    for (i, art) in [v2, v1].into_iter().enumerate() {
        let (status, r) = s.execute(
            &json!({"action": "echo", "payload": {}, "nonce": format!("o-{i}"), "approval_artifact": art}),
        );
        assert_eq!(
            (status, r["code"].as_str()),
            (422, Some("approval_malformed")),
            "{r}"
        );
        assert!(
            r["detail"]
                .as_str()
                .unwrap()
                .contains("longer than 128 bytes"),
            "{r}"
        );
        let receipt: Receipt = serde_json::from_value(r["receipt"].clone()).unwrap();
        let entry = verify_receipt(&receipt, &verifier, None).unwrap().entry;
        assert_eq!(entry.tenant, "");
    }
    let stderr = common::server::refuses(&[("CLAWSHIELD_TENANT_ID", &long)]);
    assert!(
        stderr.contains("CLAWSHIELD_TENANT_ID is longer than 128 bytes"),
        "{stderr}"
    );
}

/// Rejections and replays with every field an attempt controls at its
/// longest, a near-limit payload in every rejection, and the longest
/// approval id in every replay, cost at most [`MAX_BYTES_PER_UNRUN_ENTRY`]
/// each: a rejection keeps no content either.
#[test]
fn the_longest_rejections_and_replays_stay_within_the_stated_bytes() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let pem = {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        key.verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap()
    };
    // No configured tenant: an artifact's claimed tenant is recorded, even
    // on a rejection.
    let s = start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem),
        ("OPENEXEC_REJECT_RATE", "0"),
        ("OPENEXEC_REJECT_GLOBAL_RATE", "0"),
    ]);
    let tenant = escaped_6x(128);
    // Nonces of 128 characters that JSON escapes (`"`, `\`) and that differ.
    let nonce = |i: usize| format!("{}{i:06}", "\"\\".repeat(61));
    assert_eq!(nonce(0).len(), 128);
    let payload = json!({"x": 1});
    let rh =
        openexec::core::canonical::request_hash("sha256", &payload, &nonce(0), &tenant).unwrap();
    let approval = openexec::core::approval::mint_v2(
        &key,
        &escaped_6x(128),
        &tenant,
        &rh,
        chrono::Utc::now(),
        chrono::Duration::seconds(600),
    )
    .unwrap();
    let original = json!({"action": "sha256", "payload": payload, "nonce": nonce(0),
        "approval_artifact": approval});
    let (status, r) = s.execute(&original);
    assert_eq!(status, 200, "{r}");
    // A payload near the body limit: a rejection keeps none of it.
    let blob = incompressible(60_000);
    let action = "a".repeat(64);
    let before = log_bytes(&s);
    const N: usize = 60;
    for i in 1..=N {
        // An unknown action of 64 characters under the long tenant, then a
        // replay of the original.
        let unknown = json!({"action": action, "payload": {"blob": blob, "i": i},
            "nonce": nonce(i), "approval_artifact": {"format": "openexec-approval/v2",
            "approval_id": "x", "tenant": tenant, "request_hash": "", "key_id": "",
            "issued_at": "", "expires_at": ""}});
        let (status, r) = s.execute(&unknown);
        assert_eq!(
            (status, r["code"].as_str()),
            (400, Some("unknown_action")),
            "{r}"
        );
        assert!(
            r["receipt"]["salts"].is_null(),
            "a rejection keeps no content"
        );
        let (status, r) = s.execute(&original);
        assert_eq!(
            (status, r["outcome"].as_str()),
            (200, Some("replayed")),
            "{r}"
        );
    }
    let per_entry = (log_bytes(&s) - before) / (2 * N as u64);
    eprintln!("the longest rejections and replays cost {per_entry} bytes each");
    assert!(
        per_entry <= MAX_BYTES_PER_UNRUN_ENTRY,
        "{per_entry} bytes per entry"
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
