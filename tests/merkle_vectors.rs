//! RFC 6962 / RFC 9162 Merkle proof vectors.
//!
//! The data files under `tests/vectors/merkle/` are produced by
//! `tests/vectors/gen_merkle_vectors.py` (Python stdlib only, two independent
//! models of RFC 6962 §2.1). Regenerate with
//! `python3 tests/vectors/gen_merkle_vectors.py` and update the expected
//! counts below if the generator changes.
//!
//! Every case carries `valid`; a valid case must verify and an invalid case
//! must be rejected. A panic inside the verifier counts as a failure of that
//! case (it is caught so that all failing descriptions are reported at once).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;

use openexec::core::hash::{leaf_hash, Hash};
use openexec::core::proof::{verify_consistency, verify_inclusion, LeafIndex, TreeSize};

/// Expected number of cases in each file. An empty or truncated file fails.
const INCLUSION_CASES: usize = 1036;
const INCLUSION_VALID: usize = 358;
const CONSISTENCY_CASES: usize = 905;
const CONSISTENCY_VALID: usize = 301;
const LEAF_CASES: usize = 19;

#[derive(Debug, Deserialize)]
struct InclusionCase {
    desc: String,
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: String,
    proof: Vec<String>,
    root: String,
    valid: bool,
}

#[derive(Debug, Deserialize)]
struct ConsistencyCase {
    desc: String,
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Vec<String>,
    valid: bool,
}

#[derive(Debug, Deserialize)]
struct LeafCase {
    desc: String,
    data: String,
    leaf_hash: String,
}

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
        .join("merkle")
        .join(name)
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let path = vector_path(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    };
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("cannot parse {}: {e}", path.display()),
    }
}

/// Decodes a standard-base64 32-byte hash independently of `Hash::from_base64`.
fn hash(b64: &str, desc: &str) -> Hash {
    let bytes = match STANDARD.decode(b64) {
        Ok(b) => b,
        Err(e) => panic!("[{desc}] bad base64 {b64:?}: {e}"),
    };
    let arr: [u8; 32] = match bytes.try_into() {
        Ok(a) => a,
        Err(v) => panic!("[{desc}] hash {b64:?} has {} bytes, want 32", v.len()),
    };
    Hash::from_bytes(arr)
}

fn hashes(list: &[String], desc: &str) -> Vec<Hash> {
    list.iter().map(|h| hash(h, desc)).collect()
}

enum Outcome {
    Accepted,
    Rejected(String),
    Panicked,
}

/// Runs `f`, catching a panic so one bad case does not hide the others.
fn run<E: std::fmt::Debug>(f: impl FnOnce() -> Result<(), E>) -> Outcome {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Outcome::Accepted,
        Ok(Err(e)) => Outcome::Rejected(format!("{e:?}")),
        Err(_) => Outcome::Panicked,
    }
}

fn report(kind: &str, failures: &[String], total: usize) {
    if !failures.is_empty() {
        let shown: Vec<&str> = failures.iter().take(60).map(String::as_str).collect();
        panic!(
            "{kind}: {} of {total} cases disagree with the vectors:\n  {}{}",
            failures.len(),
            shown.join("\n  "),
            if failures.len() > shown.len() {
                "\n  ..."
            } else {
                ""
            }
        );
    }
}

#[test]
fn inclusion_vectors() {
    let cases: Vec<InclusionCase> = load("inclusion.json");
    assert_eq!(cases.len(), INCLUSION_CASES, "inclusion.json case count");
    assert_eq!(
        cases.iter().filter(|c| c.valid).count(),
        INCLUSION_VALID,
        "inclusion.json valid-case count"
    );

    let mut failures = Vec::new();
    for c in &cases {
        let leaf = hash(&c.leaf_hash, &c.desc);
        let root = hash(&c.root, &c.desc);
        let proof = hashes(&c.proof, &c.desc);
        let got = run(|| {
            verify_inclusion(
                &proof,
                LeafIndex(c.leaf_index),
                TreeSize(c.tree_size),
                &leaf,
                &root,
            )
        });
        match (c.valid, got) {
            (true, Outcome::Rejected(e)) => failures.push(format!(
                "{} (index {}, size {}): valid proof rejected: {e}",
                c.desc, c.leaf_index, c.tree_size
            )),
            (false, Outcome::Accepted) => failures.push(format!(
                "{} (index {}, size {}): invalid proof accepted",
                c.desc, c.leaf_index, c.tree_size
            )),
            (_, Outcome::Panicked) => failures.push(format!(
                "{} (index {}, size {}): verifier panicked",
                c.desc, c.leaf_index, c.tree_size
            )),
            (true, Outcome::Accepted) | (false, Outcome::Rejected(_)) => {}
        }
    }
    report("inclusion", &failures, cases.len());
}

#[test]
fn consistency_vectors() {
    let cases: Vec<ConsistencyCase> = load("consistency.json");
    assert_eq!(
        cases.len(),
        CONSISTENCY_CASES,
        "consistency.json case count"
    );
    assert_eq!(
        cases.iter().filter(|c| c.valid).count(),
        CONSISTENCY_VALID,
        "consistency.json valid-case count"
    );

    let mut failures = Vec::new();
    for c in &cases {
        let root1 = hash(&c.root1, &c.desc);
        let root2 = hash(&c.root2, &c.desc);
        let proof = hashes(&c.proof, &c.desc);
        let got = run(|| {
            verify_consistency(&proof, TreeSize(c.size1), TreeSize(c.size2), &root1, &root2)
        });
        match (c.valid, got) {
            (true, Outcome::Rejected(e)) => failures.push(format!(
                "{} ({} -> {}): valid proof rejected: {e}",
                c.desc, c.size1, c.size2
            )),
            (false, Outcome::Accepted) => failures.push(format!(
                "{} ({} -> {}): invalid proof accepted",
                c.desc, c.size1, c.size2
            )),
            (_, Outcome::Panicked) => failures.push(format!(
                "{} ({} -> {}): verifier panicked",
                c.desc, c.size1, c.size2
            )),
            (true, Outcome::Accepted) | (false, Outcome::Rejected(_)) => {}
        }
    }
    report("consistency", &failures, cases.len());
}

#[test]
fn leaf_hash_vectors() {
    let cases: Vec<LeafCase> = load("leaves.json");
    assert_eq!(cases.len(), LEAF_CASES, "leaves.json case count");
    let mut failures = Vec::new();
    for c in &cases {
        let data = match STANDARD.decode(&c.data) {
            Ok(d) => d,
            Err(e) => panic!("[{}] bad base64 data: {e}", c.desc),
        };
        let want = hash(&c.leaf_hash, &c.desc);
        if leaf_hash(&data).as_bytes() != want.as_bytes() {
            failures.push(format!("{}: leaf_hash mismatch", c.desc));
        }
    }
    report("leaf_hash", &failures, cases.len());
}

/// `Hash::from_base64` must agree with plain base64 decoding on every hash
/// that appears in the vectors.
#[test]
fn hash_from_base64_agrees() {
    let inc: Vec<InclusionCase> = load("inclusion.json");
    let con: Vec<ConsistencyCase> = load("consistency.json");
    let mut all: Vec<(&str, &str)> = Vec::new();
    for c in &inc {
        all.push((&c.desc, &c.leaf_hash));
        all.push((&c.desc, &c.root));
        all.extend(c.proof.iter().map(|p| (c.desc.as_str(), p.as_str())));
    }
    for c in &con {
        all.push((&c.desc, &c.root1));
        all.push((&c.desc, &c.root2));
        all.extend(c.proof.iter().map(|p| (c.desc.as_str(), p.as_str())));
    }
    assert!(all.len() > 1000, "too few hashes loaded: {}", all.len());
    for (desc, s) in all {
        match Hash::from_base64(s) {
            Ok(h) => assert_eq!(h.as_bytes(), hash(s, desc).as_bytes(), "[{desc}] {s}"),
            Err(e) => panic!("[{desc}] Hash::from_base64({s:?}) failed: {e:?}"),
        }
    }
}
