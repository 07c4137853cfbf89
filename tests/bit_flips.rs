//! One flipped bit anywhere in a stopped ledger's data directory: in every
//! file and every region of each (headers, records, frame headers,
//! checksums, padding, indexes, key-table slots, commit-ring copies,
//! sled's files), a deterministic sample of positions per region, and
//! every bit of a record's length word and every byte of a key-table slot.
//! (Every bit of whole records, slots, table headers and ring slots is
//! swept by the unit tests of `store::damage`, `store::key_table` and
//! `store::commit_ring`, without a reopen per flip.) For each flip, on a
//! fresh copy of the stopped ledger's directory:
//!
//! - the ledger refuses to open (serve refuses to start), or `openexec
//!   audit` names the damage (a finding or a warning), or every answer a
//!   reader can get is the one it got before the flip;
//! - whatever happened, no done nonce can be claimed again and no consumed
//!   approval can be admitted again (the reservation is refused, or fails).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openexec::core::canonical::{commitment, to_canonical_bytes};
use openexec::core::entry::{ApprovalKind, ApprovalSummary, EntryDraft, Outcome, ReplayOf};
use openexec::core::hash::{leaf_hash, Hash};
use openexec::core::receipt::{salt_to_base64, Content, Salts};
use openexec::ledger::audit::{audit, AuditOptions};
use openexec::ledger::{Ledger, LedgerConfig};
use openexec::store::{
    nonce_key, Completion, PendingNonce, Reservation, ReservationRequest, Store,
};

const TENANT: &str = "acme";

/// What the ledger was built with: the nonces it completed and the
/// approvals it consumed (one of them held in sled for good, by an
/// attempt recorded `interrupted`), and the nonce and approval of one
/// reservation left in flight (in `reservations.log`).
struct Built {
    done_nonces: Vec<String>,
    consumed: Vec<ApprovalSummary>,
}

/// The reservation `build` leaves in flight: its nonce and approval id.
const IN_FLIGHT: (&str, &str) = ("nonce-in-flight", "ap-in-flight");

fn approval(id: &str) -> ApprovalSummary {
    ApprovalSummary {
        kind: ApprovalKind::OpenexecV2,
        id: Some(id.into()),
        key_id: Some("7ca80d6b1daf9812".into()),
        expires_at: Some("2026-11-22T00:04:51Z".into()),
    }
}

/// A draft with real commitments to `payload` and `result`, and its content.
fn attempt(
    n: u64,
    nonce: &str,
    outcome: Outcome,
    approval: ApprovalSummary,
    result: Option<serde_json::Value>,
) -> (EntryDraft, Content) {
    let payload = serde_json::json!({"name": "visits", "n": n, "text": "é ✓"});
    let (payload_salt, result_salt) = ([n as u8; 32], [n as u8 ^ 0xff; 32]);
    let draft = EntryDraft {
        exec_id: format!("00000000-0000-4000-8000-{n:012}"),
        tenant: TENANT.into(),
        action: "counter".into(),
        nonce: nonce.into(),
        request_hash: Hash::sha256(format!("request {n}").as_bytes()),
        payload_commitment: commitment(&payload_salt, &to_canonical_bytes(&payload).unwrap()),
        result_commitment: result
            .as_ref()
            .map(|r| commitment(&result_salt, &to_canonical_bytes(r).unwrap())),
        approval,
        reason: match outcome {
            Outcome::Executed => "ok",
            Outcome::Interrupted => "interrupted",
            Outcome::Replayed => "replay_of_executed",
            _ => "approval_reused",
        }
        .into(),
        outcome,
        replay_of: None,
        effects: None,
        registry: None,
        principal: None,
    };
    let content = Content {
        payload,
        salts: Salts {
            payload: salt_to_base64(&payload_salt),
            result: result.as_ref().map(|_| salt_to_base64(&result_salt)),
        },
        result,
    };
    (draft, content)
}

/// A replay of entry 1 (`nonce-1`'s execution), as the service writes it:
/// entry 1's exec_id, request hash and commitments, naming it by index and
/// leaf hash.
fn replay_of_entry_1(ledger: &Ledger) -> (EntryDraft, Content) {
    let result = Some(serde_json::json!({"counter": 1}));
    let (mut draft, content) = attempt(1, "nonce-1", Outcome::Executed, approval("ap-1"), result);
    let (bytes, _) = ledger.store().unwrap().entry(1).unwrap().unwrap();
    draft.outcome = Outcome::Replayed;
    draft.reason = "replay_of_executed".into();
    draft.replay_of = Some(ReplayOf {
        index: 1,
        leaf_hash: leaf_hash(&bytes),
    });
    (draft, content)
}

/// Builds the ledger: executions completing their nonces (reserved or
/// claimed, with and without kept content, most consuming an approval),
/// replays and rejections (completing nothing), and one attempt recorded
/// `interrupted` whose approval stays held in sled for good.
fn build(data: &Path) -> Built {
    let ledger = common::open(data);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut built = Built {
        done_nonces: Vec::new(),
        consumed: Vec::new(),
    };
    for n in 0..24u64 {
        let nonce = format!("nonce-{n}");
        let key = nonce_key(TENANT, &nonce);
        let summary = if n % 3 == 0 {
            ApprovalSummary::none()
        } else {
            approval(&format!("ap-{n}"))
        };
        let result = Some(serde_json::json!({"counter": n}));
        let (draft, content) = match n % 8 {
            6 => replay_of_entry_1(&ledger),
            7 => attempt(n, &nonce, Outcome::Rejected, summary.clone(), None),
            _ => attempt(n, &nonce, Outcome::Executed, summary.clone(), result),
        };
        // A replay keeps no content of its own.
        let content = (n % 2 == 0 && n % 8 != 6).then_some(content);
        let completion = match n % 8 {
            6 | 7 => None,
            1 | 4 => {
                let record = PendingNonce {
                    request_hash: draft.request_hash,
                    exec_id: draft.exec_id.clone(),
                    approval_key: summary.consume_key(TENANT),
                    action: draft.action.clone(),
                    tenant: TENANT.into(),
                    nonce: nonce.clone(),
                    effects: openexec::core::entry::Effects::AtMostOnce,
                    principal: None,
                };
                let reserved = runtime
                    .block_on(ledger.reserve(key.clone(), record))
                    .unwrap();
                assert_eq!(reserved, Reservation::Reserved);
                ledger.store().unwrap().increment_counter("visits").unwrap();
                Some(Completion::reserved(key))
            }
            _ => Some(Completion::claimed(key)),
        };
        if completion.is_some() {
            built.done_nonces.push(nonce);
            if summary.consume_key(TENANT).is_some() {
                built.consumed.push(summary);
            }
        }
        ledger
            .append_completing_blocking(draft, content, completion)
            .unwrap();
    }
    // An attempt whose process stopped after its reservation: recorded
    // `interrupted`, naming no approval; its approval stays held in sled.
    let held = approval("ap-held");
    let key = nonce_key(TENANT, "nonce-held");
    let record = PendingNonce {
        request_hash: Hash::sha256(b"held"),
        exec_id: "00000000-0000-4000-8000-999999999999".into(),
        approval_key: held.consume_key(TENANT),
        action: "counter".into(),
        tenant: TENANT.into(),
        nonce: "nonce-held".into(),
        effects: openexec::core::entry::Effects::AtMostOnce,
        principal: None,
    };
    let reserved = runtime
        .block_on(ledger.reserve(key.clone(), record))
        .unwrap();
    assert_eq!(reserved, Reservation::Reserved);
    let (draft, _) = attempt(
        99,
        "nonce-held",
        Outcome::Interrupted,
        ApprovalSummary::none(),
        None,
    );
    ledger
        .append_completing_blocking(draft, None, Some(Completion::reserved(key)))
        .unwrap();
    built.done_nonces.push("nonce-held".into());
    built.consumed.push(held);
    // A reservation still in flight when the ledger stops: neither its
    // nonce nor its approval may be admitted again.
    let (nonce, id) = IN_FLIGHT;
    let in_flight = approval(id);
    let record = PendingNonce {
        request_hash: Hash::sha256(b"in flight"),
        exec_id: "00000000-0000-4000-8000-888888888888".into(),
        approval_key: in_flight.consume_key(TENANT),
        action: "counter".into(),
        tenant: TENANT.into(),
        nonce: nonce.into(),
        effects: openexec::core::entry::Effects::AtMostOnce,
        principal: None,
    };
    let reserved = runtime
        .block_on(ledger.reserve(nonce_key(TENANT, nonce), record))
        .unwrap();
    assert_eq!(reserved, Reservation::Reserved);
    built.done_nonces.push(nonce.into());
    built.consumed.push(in_flight);
    ledger.shutdown();
    drop(ledger);
    built
}

/// Every answer a reader of the store can get, as text.
fn view(store: &Store, built: &Built) -> Vec<String> {
    let mut out = Vec::new();
    let head = store.head().unwrap().unwrap();
    out.push(format!("{head:?} {:?}", store.latest_checkpoint()));
    for i in 0..head.size {
        out.push(format!(
            "{i} {:?} {:?} {:?}",
            store.entry(i),
            store.content(i),
            store.completes_nonce(i)
        ));
        if let Ok(Some((bytes, _))) = store.entry(i) {
            if let Some(id) = openexec::core::entry::indexed_exec_id(&bytes) {
                out.push(format!("{id} {:?}", store.index_of_exec_id(&id)));
            }
        }
    }
    let hashes = tlog_tiles::stored_hash_count(head.size);
    out.extend((0..hashes).map(|i| format!("h{i} {:?}", store.stored_hash(i))));
    for nonce in &built.done_nonces {
        out.push(format!(
            "{nonce} {:?}",
            store.done_nonce(&nonce_key(TENANT, nonce))
        ));
    }
    for summary in &built.consumed {
        let key = summary.consume_key(TENANT).unwrap();
        out.push(format!(
            "{key} {:?} {:?}",
            store.approval_consumer(&key),
            store.approval_used(&key)
        ));
    }
    out.push(format!("{:?}", store.pending_reservations()));
    out.push(format!("{:?}", store.counter("visits")));
    out.extend(store.checkpoints().map(|c| format!("{c:?}")));
    out
}

/// Whether any done nonce, or any consumed approval on a fresh nonce, can
/// be claimed (or reserved) again: what would run a handler again.
fn anything_admitted_again(store: &Store, built: &Built) -> Option<String> {
    let fresh = |nonce: &str, approval: Option<String>| PendingNonce {
        request_hash: Hash::sha256(b"again"),
        exec_id: "again".into(),
        approval_key: approval,
        action: "counter".into(),
        tenant: TENANT.into(),
        nonce: nonce.into(),
        effects: openexec::core::entry::Effects::AtMostOnce,
        principal: None,
    };
    let mut attempts: Vec<(String, PendingNonce)> = built
        .done_nonces
        .iter()
        .map(|n| (n.clone(), fresh(n, None)))
        .collect();
    for (n, summary) in built.consumed.iter().enumerate() {
        let nonce = format!("fresh-{n}");
        attempts.push((nonce.clone(), fresh(&nonce, summary.consume_key(TENANT))));
    }
    for (nonce, record) in &attempts {
        let key = nonce_key(TENANT, nonce);
        let request = ReservationRequest { key: &key, record };
        let claimed = store.claim(&[request]);
        let written = store.write_cycle(None, &[request]).map(|w| w.reserved);
        for answers in [claimed, written] {
            if let Ok([Ok(Reservation::Reserved)]) = answers.as_deref() {
                return Some(format!(
                    "{nonce} (approval {:?}) was admitted again",
                    record.approval_key
                ));
            }
        }
    }
    None
}

/// How one flip ended.
#[derive(Debug, Default)]
struct Tally {
    refused: u64,
    named: u64,
    unobservable: u64,
    /// Why the ledger refused to open, shortened.
    refusals: Vec<String>,
}

/// Flips `bit` of byte `at` of `file` in a fresh copy of `pristine` and
/// checks the rules in the module docs.
fn trial(
    pristine: &Path,
    built: &Built,
    before: &[String],
    file: &str,
    at: u64,
    bit: u8,
    tally: &mut Tally,
) {
    let copy = tempfile::tempdir().unwrap();
    let data = copy.path().join("data");
    common::copy_dir(pristine, &data);
    flip(&data.join(file), at, bit);
    let opened = std::panic::catch_unwind(|| {
        let mut config = LedgerConfig::new(&data);
        config.checkpoint_memo = Some(data.join("memo.checkpoint"));
        Ledger::open(&config)
    });
    let ledger = match opened {
        Ok(Ok(ledger)) => ledger,
        refused => {
            tally.refused += 1;
            let reason = match refused {
                Ok(Err(e)) => e.to_string(),
                _ => "a panic while opening".into(),
            };
            // Without the directory and numbers, so that alike refusals
            // read alike.
            let reason = reason.replace(&data.display().to_string(), "<data>");
            let reason: String = reason
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .take(100)
                .collect();
            tally.refusals.push(reason);
            return;
        }
    };
    let store = ledger.store().unwrap();
    let report = audit(
        store,
        AuditOptions {
            rebuild: false,
            progress_every: 0,
        },
    );
    let named = match &report {
        Ok(r) => r.first_bad.is_some() || !r.warnings.is_empty(),
        Err(_) => true,
    };
    let after = view(store, built);
    if let Some(problem) = anything_admitted_again(store, built) {
        panic!("{file} byte {at} bit {bit}: {problem} (audit: {report:?})");
    }
    if named {
        tally.named += 1;
    } else if after == before {
        tally.unobservable += 1;
    } else {
        let first = before.iter().zip(&after).find(|(b, a)| b != a);
        panic!(
            "{file} byte {at} bit {bit}: the audit names nothing, yet a reader sees {first:?} \
             (views of {} and {} lines)",
            before.len(),
            after.len()
        );
    }
    ledger.shutdown();
}

fn flip(path: &Path, at: u64, bit: u8) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    byte[0] ^= 0x80 >> bit;
    file.write_all_at(&byte, at).unwrap();
}

/// Byte positions of a region `start..end`: its first and last byte and
/// `samples` spread between, each with a bit chosen by its position.
fn sample(start: u64, end: u64, samples: u64) -> Vec<(u64, u8)> {
    if end <= start {
        return Vec::new();
    }
    let len = end - start;
    let mut at: Vec<u64> = (0..samples)
        .map(|k| start + k * len / samples.max(1))
        .collect();
    at.push(end - 1);
    at.dedup();
    at.into_iter()
        .map(|a| (a, ((a * 5 + 3) % 8) as u8))
        .collect()
}

/// Every bit of `start..end`.
fn every_bit(start: u64, end: u64) -> Vec<(u64, u8)> {
    (start..end)
        .flat_map(|a| (0..8).map(move |b| (a, b)))
        .collect()
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// The flips to try: (file in the data directory, byte, bit).
fn flips(data: &Path) -> Vec<(String, u64, u8)> {
    let db = data.join("db");
    let mut out: Vec<(String, u64, u8)> = Vec::new();
    let mut add = |file: &str, positions: Vec<(u64, u8)>| {
        out.extend(positions.into_iter().map(|(a, b)| (file.to_owned(), a, b)));
    };
    // entries.bin, record by record: the length word (every bit of the
    // first two records'), the signature, the entry frame's header, the
    // frame, the content frame, the CRC.
    let idx = std::fs::read(db.join("entries.idx")).unwrap();
    let ends: Vec<u64> = (0..idx.len() / 8).map(|i| be_u64(&idx, i * 8)).collect();
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        if i == 0 {
            add("db/entries.bin", every_bit(start, start + 4));
        }
        if i % 3 == 0 {
            add("db/entries.bin", sample(start, start + 4, 1));
            add("db/entries.bin", sample(start + 4, start + 68, 1));
            add("db/entries.bin", sample(start + 68, start + 80, 2));
            add("db/entries.bin", sample(end - 60, end - 4, 1));
            add("db/entries.bin", sample(end - 4, end, 1));
        }
        start = end;
    }
    add("db/entries.idx", sample(0, idx.len() as u64, 10));
    let hashes = std::fs::metadata(db.join("hashes.bin")).unwrap().len();
    add("db/hashes.bin", sample(0, hashes, 10));
    // Key tables: every bit of the header's start (magic, sizes) in one,
    // the rest of each header sampled; one occupied slot bit by bit in
    // nonces.tab; occupied and empty slots sampled in all three.
    for table in ["exec_ids.tab", "nonces.tab", "approvals.tab"] {
        let file = format!("db/{table}");
        let bytes = std::fs::read(db.join(table)).unwrap();
        add(&file, sample(0, 44, 12));
        add(&file, sample(44, 4096, 3));
        let occupied: Vec<u64> = (4096..bytes.len() as u64)
            .step_by(16)
            .filter(|&s| bytes[s as usize..s as usize + 16].iter().any(|&b| b != 0))
            .collect();
        if table == "nonces.tab" {
            let slot = occupied[0];
            add(&file, (0..16).map(|b| (slot + b, (b % 8) as u8)).collect());
        }
        for &slot in occupied.iter().step_by(7) {
            add(&file, sample(slot, slot + 16, 1));
        }
        add(&file, sample(4096, bytes.len() as u64, 8));
    }
    // The commit ring: each slot's two copies and its padding.
    let ring = std::fs::read(db.join("commits.ring")).unwrap();
    for slot in (0..ring.len() as u64).step_by(4096) {
        add("db/commits.ring", sample(slot, slot + 160, 3));
        add("db/commits.ring", sample(slot + 160, slot + 2048, 1));
        add("db/commits.ring", sample(slot + 2048, slot + 2208, 3));
        add("db/commits.ring", sample(slot + 2208, slot + 4096, 1));
    }
    // The reservation journal: its one frame (both copies) and the zeros
    // written ahead after it.
    let journal = std::fs::metadata(db.join("reservations.log"))
        .unwrap()
        .len();
    add("db/reservations.log", sample(0, 400, 24));
    add("db/reservations.log", sample(400, journal, 4));
    // The log key and the checkpoint memo.
    for file in ["log.key", "memo.checkpoint"] {
        let len = std::fs::metadata(data.join(file)).unwrap().len();
        add(file, sample(0, len, 3));
    }
    // sled's files: its log where it holds data, its snapshot, its config.
    for entry in std::fs::read_dir(&db).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_sled = name == "db" || name == "conf" || name.starts_with("snap.");
        if !is_sled || !entry.file_type().unwrap().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let used = bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |p| p as u64 + 1);
        add(
            &format!("db/{name}"),
            sample(0, used, if name == "db" { 32 } else { 6 }),
        );
    }
    out
}

#[test]
fn no_single_bit_flip_goes_unnoticed_or_runs_anything_twice() {
    let root = tempfile::tempdir().unwrap();
    let pristine: PathBuf = root.path().join("data");
    let built = build(&pristine);
    let before = {
        let ledger = common::open(&pristine);
        let view = view(ledger.store().unwrap(), &built);
        assert!(anything_admitted_again(ledger.store().unwrap(), &built).is_none());
        let report = audit(
            ledger.store().unwrap(),
            AuditOptions {
                rebuild: false,
                progress_every: 0,
            },
        )
        .unwrap();
        assert_eq!((report.first_bad, report.warnings), (None, Vec::new()));
        view
    };
    let flips = flips(&pristine);
    // Two at a time: each flip opens a copy of the directory.
    let tallies: Vec<BTreeMap<String, Tally>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|worker| {
                let (pristine, built, before, flips) = (&pristine, &built, &before, &flips);
                scope.spawn(move || {
                    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
                    for (file, at, bit) in flips.iter().skip(worker).step_by(2) {
                        let tally = tallies.entry(file.clone()).or_default();
                        trial(pristine, built, before, file, *at, *bit, tally);
                    }
                    tallies
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut total = BTreeMap::<String, Tally>::new();
    for (file, tally) in tallies.into_iter().flatten() {
        let sum = total.entry(file).or_default();
        sum.refused += tally.refused;
        sum.named += tally.named;
        sum.unobservable += tally.unobservable;
        sum.refusals.extend(tally.refusals);
    }
    for (file, tally) in &total {
        eprintln!(
            "{file}: {} refused at open, {} named by the audit, {} unobservable",
            tally.refused, tally.named, tally.unobservable
        );
        for reason in tally
            .refusals
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            eprintln!("    refused: {reason}");
        }
    }
    let tried: u64 = total
        .values()
        .map(|t| t.refused + t.named + t.unobservable)
        .sum();
    assert_eq!(tried, flips.len() as u64);
    // The files that decide: a flip there is always refused or named.
    for file in [
        "db/entries.bin",
        "db/nonces.tab",
        "db/approvals.tab",
        "db/exec_ids.tab",
    ] {
        assert_eq!(total[file].unobservable, 0, "{file}");
    }
}

/// The byte offsets of the occupied slots of a key table.
fn occupied_slots(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    (4096..bytes.len() as u64)
        .step_by(16)
        .filter(|&s| bytes[s as usize..s as usize + 16].iter().any(|&b| b != 0))
        .collect()
}

#[test]
fn a_server_whose_done_nonce_slot_has_a_flipped_bit_refuses_the_nonce_and_is_not_ready() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut s = common::server::start_in(&data, &[]).unwrap();
    let done =
        serde_json::json!({"action": "counter", "payload": {"name": "c"}, "nonce": "done-1"});
    let (status, first) = s.execute(&done);
    assert_eq!(
        (status, &first["result"]["value"]),
        (200, &serde_json::json!(1))
    );
    s.stop();
    let table = data.join("db/nonces.tab");
    let slots = occupied_slots(&table);
    assert_eq!(slots.len(), 1);
    // A bit of the slot's fingerprint: without the slot's check the
    // lookup missed, and the nonce ran again.
    flip(&table, slots[0] + 2, 4);
    let mut s = common::server::start_in(&data, &[]).unwrap();
    let (status, again) = s.execute(&done);
    assert_eq!(status, 503, "{again}");
    assert_eq!(again["code"], "ledger_unavailable");
    let (status, ready) = s.get_json("/ready");
    assert_eq!(
        (status, &ready["code"]),
        (503, &serde_json::json!("ledger_damaged")),
        "{ready}"
    );
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("openexec_store_damaged_reads_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l == "openexec_ready 0"),
        "{metrics}"
    );
    // The counter did not move.
    let (_, other) = s.execute(
        &serde_json::json!({"action": "counter", "payload": {"name": "c"}, "nonce": "fresh-1"}),
    );
    assert_eq!(other["result"]["value"], 2, "{other}");
    s.stop();
    // The next start indexes the table again from entries.bin: the nonce
    // is replayed, and the service is ready.
    let s = common::server::start_in(&data, &[]).unwrap();
    let (status, replay) = s.execute(&done);
    assert_eq!(
        (status, replay["replayed"].as_bool()),
        (200, Some(true)),
        "{replay}"
    );
    assert_eq!(replay["result"]["value"], 1);
    assert_eq!(s.get_json("/ready").0, 200);
}
