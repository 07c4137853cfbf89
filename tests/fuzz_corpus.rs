//! Replays the committed fuzz corpora (fuzz/corpus/<target>/) through the
//! same harnesses the cargo-fuzz targets call, so every CI run re-checks
//! every input the fuzzers kept — no libFuzzer needed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use openexec::core::fuzzing;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        harness(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0, "empty corpus for {target}");
}

#[test]
fn receipt() {
    replay("receipt", fuzzing::receipt);
}

#[test]
fn checkpoint() {
    replay("checkpoint", fuzzing::checkpoint);
}

#[test]
fn entry() {
    replay("entry", fuzzing::entry);
}

#[test]
fn execute_request() {
    replay("execute_request", fuzzing::execute_request);
}

#[test]
fn approval() {
    replay("approval", fuzzing::approval);
}

#[test]
fn canonical() {
    replay("canonical", fuzzing::canonical);
}

#[test]
fn merkle() {
    replay("merkle", fuzzing::merkle);
}

#[test]
fn witness() {
    replay("witness", fuzzing::witness);
}

#[test]
fn policy() {
    replay("policy", fuzzing::policy);
}
