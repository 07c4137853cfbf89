//! Durability, proven with real processes: an append acknowledged to a
//! caller survives `kill -9`, and (under strace) no receipt is written out
//! before the fdatasync of the batch that holds its entry.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use openexec::core::receipt::{verify_receipt, Receipt, TrustedCheckpoint};

fn load_command(dir: &std::path::Path, count: u32, threads: u32) -> Command {
    let mut cmd = Command::new(common::binary());
    cmd.args(["ledger-load", "--print-receipts", "--data"])
        .arg(dir)
        .args([
            "--count",
            &count.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

#[test]
fn acknowledged_appends_survive_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    for round in 0..3 {
        let mut child = load_command(&dir, 1_000_000, 8).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut acked: Vec<Receipt> = Vec::new();
        // Let it run until a few hundred receipts are out, then SIGKILL.
        while acked.len() < 300 + round * 100 {
            let line = lines.next().expect("child ended early").unwrap();
            acked.push(serde_json::from_str(&line).unwrap());
        }
        child.kill().unwrap(); // SIGKILL
                               // Whatever else it acknowledged before dying counts too.
        for line in lines {
            let Ok(line) = line else { break };
            if let Ok(r) = serde_json::from_str(&line) {
                acked.push(r);
            }
        }
        child.wait().unwrap();

        let ledger = common::open(&dir);
        let head = ledger.head();
        let latest = ledger.latest_checkpoint();
        for receipt in &acked {
            assert!(
                receipt.leaf_index < head.size,
                "acknowledged entry {} lost",
                receipt.leaf_index
            );
            let (bytes, _) = ledger.entry(receipt.leaf_index).unwrap();
            assert_eq!(
                bytes,
                receipt.entry.as_bytes(),
                "entry {} changed",
                receipt.leaf_index
            );
            // The checkpoint the client saw is a prefix of the new head: no fork.
            let proof = ledger
                .consistency_proof(receipt.inclusion_proof.tree_size, head.size)
                .unwrap();
            let trusted = TrustedCheckpoint {
                checkpoint: latest.as_bytes(),
                consistency_proof: &proof,
            };
            verify_receipt(receipt, ledger.verifier(), Some(&trusted)).unwrap();
        }
    }
    let status = Command::new(common::binary())
        .arg("audit")
        .arg("--data")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}

/// Runs the load under `strace -f` and checks, in syscall order, that the
/// receipt of batch number b is written only after at least b + 2
/// fdatasync calls have returned (two happen when a new log is created:
/// one for its metadata, one for the genesis checkpoint).
#[test]
fn no_receipt_is_written_before_its_batch_is_fdatasynced() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let data = dir.path().join("data");
    let output = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fdatasync,write",
            "-e",
            "write=1",
            "-s",
            "0",
            "-o",
        ])
        .arg(&trace)
        .arg(common::binary())
        .args([
            "ledger-load",
            "--print-receipts",
            "--count",
            "40",
            "--threads",
            "6",
            "--data",
        ])
        .arg(&data)
        .output()
        .expect("strace must be installed (the test script installs it)");
    assert!(output.status.success());
    let receipts: Vec<Receipt> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(receipts.len(), 240);
    // Batch ordinal of each tree size: sizes in increasing order are batches 1, 2, ...
    let mut sizes: Vec<u64> = receipts
        .iter()
        .map(|r| r.inclusion_proof.tree_size)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let ordinal = |size: u64| sizes.iter().position(|&s| s == size).unwrap() + 1;

    // Replay the trace in order: count completed fdatasyncs, and note the
    // count at each write to stdout (one write per receipt line).
    let trace = std::fs::read_to_string(&trace).unwrap();
    let mut synced = 0usize;
    let mut synced_at_write = Vec::new();
    for line in trace.lines() {
        if line.contains("fdatasync") && line.trim_end().ends_with("= 0") {
            synced += 1;
        } else if line.contains("write(1,") {
            // The syscall's entry (complete or "unfinished") marks when the
            // receipt left the process.
            synced_at_write.push(synced);
        }
    }
    assert_eq!(
        synced_at_write.len(),
        receipts.len(),
        "one write per receipt line"
    );
    // stdout lines are in write order, so receipt k was written when
    // synced_at_write[k] fdatasyncs had completed.
    for (k, receipt) in receipts.iter().enumerate() {
        let batch = ordinal(receipt.inclusion_proof.tree_size);
        assert!(
            synced_at_write[k] >= batch + 2,
            "receipt of batch {batch} written after only {} fdatasyncs",
            synced_at_write[k]
        );
    }
}
