//! Ledger benchmarks (criterion).
//!
//! Groups (filter with `cargo bench --bench ledger -- <group>`):
//!
//! - `appends` — durable appends per second through the sequencer with 1,
//!   64 and 1024 concurrent callers (threads appending in a loop). One
//!   criterion iteration is one append by *each* caller, so the reported
//!   throughput (elements/s) is durable appends per second. After each
//!   caller count the bench prints the sequencer's own counters: batches,
//!   mean batch size, batches/s, mean commit (write + fdatasync) time.
//! - `proofs` — inclusion-proof generation, consistency-proof generation,
//!   full receipt generation, and verification of inclusion proofs and
//!   receipts, on a ledger prebuilt once per run to `OPENEXEC_BENCH_ENTRIES`
//!   entries (default 100 000; 2 000 in `--test` mode) with many threads.
//! - `core` — pure-core micro-benches: entry canonicalization, entry
//!   signing, entry-signature verification, checkpoint signing, and
//!   `verify_receipt`.
//!
//! Environment:
//!
//! - `OPENEXEC_BENCH_ENTRIES` — size of the prebuilt ledger of `proofs`.
//! - `OPENEXEC_BENCH_LEDGER_DIR` — use (and keep) this ledger directory for
//!   `proofs` instead of a temporary one; it is topped up to
//!   `OPENEXEC_BENCH_ENTRIES` entries if smaller, so an existing 1M-entry
//!   ledger (e.g. built by `openexec ledger-load`) is measured as is.
//! - `OPENEXEC_BENCH_DIR` — parent directory of the temporary ledgers
//!   (default: the system temp dir; it must be on the disk you want to
//!   measure, since every append is fdatasync'd).
//!
//! `cargo bench --bench ledger -- --test` runs every benchmark once (smoke).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // criterion_main! generates an undocumented main

use std::path::{Path, PathBuf};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput,
};

use openexec::core::checkpoint::SignedCheckpoint;
use openexec::core::entry::{ApprovalSummary, Entry, EntryDraft, Outcome};
use openexec::core::hash::{leaf_hash, Hash};
use openexec::core::proof::{verify_inclusion, LeafIndex, TreeSize};
use openexec::core::receipt::{verify_receipt, Receipt};
use openexec::core::signing::{signature_from_base64, LogSigner};
use openexec::ledger::{Ledger, LedgerConfig};

/// Caller counts of the `appends` group.
const CALLERS: [usize; 3] = [1, 64, 1024];

/// Stack of each appending thread: they only format a draft and wait.
const CALLER_STACK: usize = 256 << 10;

fn smoke_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn draft(tag: &str, n: u64) -> EntryDraft {
    EntryDraft {
        exec_id: format!("bench-{tag}-{n}"),
        tenant: "tenant-001".into(),
        action: "echo".into(),
        nonce: format!("nonce-{tag}-{n}"),
        request_hash: Hash::sha256(format!("request {tag} {n}").as_bytes()),
        payload_commitment: Hash::sha256(format!("payload {tag} {n}").as_bytes()),
        result_commitment: Some(Hash::sha256(format!("result {tag} {n}").as_bytes())),
        approval: ApprovalSummary::none(),
        outcome: Outcome::Executed,
        reason: "ok".into(),
        replay_of: None,
        effects: Some(openexec::core::entry::Effects::None),
        registry: Some(Hash::sha256(b"registry")),
        principal: None,
    }
}

fn temp_parent() -> PathBuf {
    std::env::var_os("OPENEXEC_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

/// Runs `threads` callers, each appending `per_thread` entries; returns the
/// wall time from the moment all callers are ready until the last append
/// is acknowledged (durable).
fn append_concurrently(ledger: &Ledger, threads: usize, per_thread: u64, tag: &str) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let barrier = &barrier;
            let tag = format!("{tag}-{t}");
            let handle = std::thread::Builder::new()
                .stack_size(CALLER_STACK)
                .spawn_scoped(scope, move || {
                    let drafts: Vec<EntryDraft> = (0..per_thread).map(|i| draft(&tag, i)).collect();
                    barrier.wait();
                    for d in drafts {
                        ledger.append(d, None).expect("append");
                    }
                })
                .expect("spawn caller");
            handles.push(handle);
        }
        barrier.wait();
        let started = Instant::now();
        for h in handles {
            h.join().expect("caller panicked");
        }
        started.elapsed()
    })
}

/// A ledger in a fresh temporary directory (removed on drop).
struct TempLedger {
    ledger: Ledger,
    _dir: tempfile::TempDir,
}

fn temp_ledger() -> TempLedger {
    let dir = tempfile::Builder::new()
        .prefix("openexec-bench-")
        .tempdir_in(temp_parent())
        .expect("temp dir");
    let ledger = Ledger::open(&LedgerConfig::new(dir.path())).expect("open ledger");
    TempLedger { ledger, _dir: dir }
}

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("appends");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for callers in CALLERS {
        group.throughput(Throughput::Elements(callers as u64));
        // One ledger per caller count, created only if this bench is selected.
        let cell: OnceLock<TempLedger> = OnceLock::new();
        let mut round = 0u64;
        group.bench_function(format!("durable/{callers}_callers"), |b| {
            let ledger = &cell.get_or_init(temp_ledger).ledger;
            b.iter_custom(|iters| {
                round += 1;
                append_concurrently(ledger, callers, iters, &format!("c{callers}-r{round}"))
            });
        });
        if let Some(t) = cell.get() {
            report_stats(callers, &t.ledger);
        }
    }
    group.finish();
}

/// Prints the sequencer counters accumulated over warm-up and measurement.
fn report_stats(callers: usize, ledger: &Ledger) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = ledger.stats();
    let batches = s.batches.load(Relaxed);
    let entries = s.entries.load(Relaxed);
    let commit_ns = s.commit_nanos.load(Relaxed);
    if batches == 0 {
        return;
    }
    let commit_s = commit_ns as f64 / 1e9;
    eprintln!(
        "appends/{callers}_callers sequencer: {entries} entries in {batches} batches, mean batch {:.1}, max batch {}, \
         mean commit+fdatasync {:.3} ms, commit-bound ceiling {:.0} batches/s",
        entries as f64 / batches as f64,
        s.max_batch.load(Relaxed),
        commit_s * 1e3 / batches as f64,
        batches as f64 / commit_s,
    );
}

/// The ledger of the `proofs` group, built once per run.
struct Prebuilt {
    ledger: Ledger,
    size: u64,
    _dir: Option<tempfile::TempDir>,
}

fn prebuilt() -> &'static Prebuilt {
    static CELL: OnceLock<Prebuilt> = OnceLock::new();
    CELL.get_or_init(|| {
        let target: u64 = std::env::var("OPENEXEC_BENCH_ENTRIES")
            .ok()
            .and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or(if smoke_mode() { 2_000 } else { 100_000 });
        let (path, dir) = match std::env::var_os("OPENEXEC_BENCH_LEDGER_DIR") {
            Some(p) => (PathBuf::from(p), None),
            None => {
                let d = tempfile::Builder::new()
                    .prefix("openexec-bench-proofs-")
                    .tempdir_in(temp_parent())
                    .expect("temp dir");
                (d.path().to_path_buf(), Some(d))
            }
        };
        let ledger = open_or_build(&path, target);
        let size = ledger.head().size;
        Prebuilt {
            ledger,
            size,
            _dir: dir,
        }
    })
}

fn open_or_build(path: &Path, target: u64) -> Ledger {
    let ledger = Ledger::open(&LedgerConfig::new(path)).expect("open ledger");
    let have = ledger.head().size;
    if have < target {
        let missing = target - have;
        let threads: u64 = 256.min(missing).max(1);
        let per_thread = missing.div_ceil(threads);
        eprintln!(
            "proofs: building ledger {} from {have} to ~{} entries ({threads} threads)",
            path.display(),
            have + per_thread * threads
        );
        let took = append_concurrently(
            &ledger,
            threads as usize,
            per_thread,
            &format!("prebuild-{have}"),
        );
        eprintln!(
            "proofs: built in {:.1}s ({:.0} appends/s)",
            took.as_secs_f64(),
            (per_thread * threads) as f64 / took.as_secs_f64()
        );
    } else {
        eprintln!(
            "proofs: using existing ledger {} with {have} entries",
            path.display()
        );
    }
    ledger
}

/// Deterministic xorshift indices spread over the tree.
struct Indices(u64);

impl Indices {
    fn next_below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn proofs(c: &mut Criterion) {
    let mut group = c.benchmark_group("proofs");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    group.bench_function("inclusion_proof/random_leaf", |b| {
        let p = prebuilt();
        let mut rng = Indices(0x9e37_79b9_7f4a_7c15);
        b.iter(|| {
            let i = rng.next_below(p.size);
            black_box(p.ledger.inclusion_proof(i, p.size).expect("proof"))
        });
    });

    group.bench_function("inclusion_proof/last_leaf", |b| {
        let p = prebuilt();
        b.iter(|| black_box(p.ledger.inclusion_proof(p.size - 1, p.size).expect("proof")));
    });

    group.bench_function("consistency_proof/random_old_size", |b| {
        let p = prebuilt();
        let mut rng = Indices(0x2545_f491_4f6c_dd1d);
        b.iter(|| {
            let old = 1 + rng.next_below(p.size);
            black_box(p.ledger.consistency_proof(old, p.size).expect("proof"))
        });
    });

    group.bench_function("receipt/random_leaf", |b| {
        let p = prebuilt();
        let mut rng = Indices(0xdead_beef_cafe_f00d);
        b.iter(|| {
            let i = rng.next_below(p.size);
            black_box(p.ledger.receipt(i).expect("receipt"))
        });
    });

    // Verification inputs: 256 receipts at random leaves of the full tree.
    let inputs: OnceLock<Vec<(Receipt, Hash, Hash)>> = OnceLock::new();
    let get_inputs = || {
        inputs.get_or_init(|| {
            let p = prebuilt();
            let mut rng = Indices(0x0123_4567_89ab_cdef);
            let root = p.ledger.head().root;
            let receipts: Vec<_> = (0..256)
                .map(|_| {
                    let r = p.ledger.receipt(rng.next_below(p.size)).expect("receipt");
                    let leaf = leaf_hash(r.entry.as_bytes());
                    (r, leaf, root)
                })
                .collect();
            let r = &receipts[0].0;
            eprintln!(
                "proofs: tree size {}, inclusion proof of leaf {} has {} hashes ({} bytes raw), receipt JSON {} bytes",
                r.inclusion_proof.tree_size,
                r.leaf_index,
                r.inclusion_proof.hashes.len(),
                r.inclusion_proof.hashes.len() * 32,
                serde_json::to_string(r).expect("json").len()
            );
            receipts
        })
    };

    group.bench_function("verify_inclusion", |b| {
        let inputs = get_inputs();
        let mut k = 0usize;
        b.iter(|| {
            let (r, leaf, root) = &inputs[k % inputs.len()];
            k += 1;
            verify_inclusion(
                &r.inclusion_proof.hashes,
                LeafIndex(r.leaf_index),
                TreeSize(r.inclusion_proof.tree_size),
                leaf,
                root,
            )
            .expect("verifies");
        });
    });

    group.bench_function("verify_receipt", |b| {
        let inputs = get_inputs();
        let verifier = prebuilt().ledger.verifier().clone();
        let mut k = 0usize;
        b.iter(|| {
            let (r, _, _) = &inputs[k % inputs.len()];
            k += 1;
            black_box(verify_receipt(r, &verifier, None).expect("verifies"))
        });
    });
    group.finish();
}

fn sample_entry(index: u64) -> Entry {
    let time = Utc
        .with_ymd_and_hms(2025, 1, 2, 3, 4, 5)
        .single()
        .expect("time");
    Entry::from_draft(
        draft("core", index),
        "openexec.local/log",
        index,
        Hash::sha256(b"prev"),
        time,
    )
}

fn core(c: &mut Criterion) {
    let signer = LogSigner::from_seed("openexec.local/log", [7u8; 32]).expect("signer");
    let verifier = signer.verifier();
    let entry = sample_entry(123_456);
    let bytes = entry.to_canonical_bytes().expect("canonical");

    let mut group = c.benchmark_group("core");
    group.sample_size(50);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));

    group.bench_function("entry_canonicalize", |b| {
        b.iter(|| black_box(black_box(&entry).to_canonical_bytes().expect("canonical")));
    });
    group.bench_function("entry_from_draft_and_canonicalize", |b| {
        let time = Utc::now();
        b.iter_batched(
            || draft("core", 1),
            |d| {
                let e = Entry::from_draft(d, "openexec.local/log", 1, Hash::sha256(b"prev"), time);
                black_box(e.to_canonical_bytes().expect("canonical"))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("entry_parse_strict", |b| {
        b.iter(|| black_box(Entry::from_canonical_bytes(black_box(&bytes)).expect("parse")));
    });
    group.bench_function("leaf_hash", |b| {
        b.iter(|| black_box(leaf_hash(black_box(&bytes))))
    });
    group.bench_function("entry_sign_ed25519", |b| {
        b.iter(|| black_box(signer.sign_entry(black_box(&bytes))));
    });
    let sig = signer.sign_entry(&bytes);
    group.bench_function("entry_verify_ed25519", |b| {
        b.iter(|| assert!(verifier.verify_entry(black_box(&bytes), &sig)));
    });
    group.bench_function("checkpoint_sign", |b| {
        let root = Hash::sha256(b"root");
        let mut size = 1_000_000u64;
        b.iter(|| {
            size += 1;
            black_box(SignedCheckpoint::sign(&signer, size, root).expect("sign"))
        });
    });
    group.bench_function("checkpoint_open", |b| {
        let cp = SignedCheckpoint::sign(&signer, 1_000_000, Hash::sha256(b"root")).expect("sign");
        let text = cp.note_text().as_bytes().to_vec();
        b.iter(|| black_box(SignedCheckpoint::open(black_box(&text), &verifier).expect("open")));
    });

    // verify_receipt on a receipt from a small real ledger (proof of ~10 hashes).
    let receipt_cell: OnceLock<(Receipt, openexec::core::signing::LogVerifier, TempLedger)> =
        OnceLock::new();
    group.bench_function("verify_receipt_1k_tree", |b| {
        let (receipt, verifier, _) = receipt_cell.get_or_init(|| {
            let t = temp_ledger();
            append_concurrently(&t.ledger, 50, 20, "core-receipt");
            let size = t.ledger.head().size;
            let r = t.ledger.receipt(size / 3).expect("receipt");
            assert!(signature_from_base64(&r.entry_signature).is_some());
            let v = t.ledger.verifier().clone();
            (r, v, t)
        });
        b.iter(|| black_box(verify_receipt(black_box(receipt), verifier, None).expect("verifies")));
    });
    group.finish();
}

/// One bearer-token authentication: a valid token among 1,000 principals,
/// and a wrong secret (`openexec::auth`).
fn auth(c: &mut Criterion) {
    use openexec::auth::{Authenticator, NewToken, Role, TokenSet, TokenStore, FILE_NAME};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut set = TokenSet::default();
    let mut header = String::new();
    for i in 0..1000 {
        let new = NewToken {
            role: Role::Agent,
            tenant: format!("t{i}"),
            actions: None,
            label: None,
            expires_at: None,
        };
        let (token, _) = set.mint(new, Utc::now()).expect("mint");
        header = format!("Bearer {}", token.reveal());
    }
    std::fs::write(dir.path().join(FILE_NAME), set.to_json().expect("json")).expect("write");
    let store = TokenStore::open(dir.path()).expect("store");
    let auth = Authenticator::new(std::sync::Arc::new(store));
    let wrong = format!("{}A", &header[..header.len() - 1]);
    let now = Utc::now();
    let mut group = c.benchmark_group("auth");
    group.sample_size(50);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("authenticate_valid_of_1000", |b| {
        b.iter(|| {
            black_box(
                auth.authenticate(Some(black_box(header.as_bytes())), now)
                    .is_ok(),
            )
        });
    });
    group.bench_function("authenticate_wrong_secret", |b| {
        b.iter(|| {
            black_box(
                auth.authenticate(Some(black_box(wrong.as_bytes())), now)
                    .is_err(),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, core, auth, proofs, appends);
criterion_main!(benches);
