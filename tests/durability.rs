//! Durability, proven with real processes: an append acknowledged to a
//! caller survives `kill -9`, and (under strace) no receipt is written out
//! before the fdatasync of the batch that holds its entry.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::collections::HashMap;
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
/// receipt of batch number b is written only after b fdatasyncs of
/// `entries.bin` and at least b + 3 of the files batches commit in (sled's
/// log or the commit ring) have returned (three happen when a new log is
/// created: sled's log for the store's done-nonce mark and for the log's
/// metadata, then the commit ring for the genesis checkpoint).
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
            "-y",
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

    // Replay the trace in order: count completed fdatasyncs of the files a
    // batch commits in — sled's log, or the commit ring for a batch that
    // changes nothing else in sled — and of the entries file (`-y` names
    // each descriptor's path), and note both counts at each write to
    // stdout (one write per receipt line).
    let trace = std::fs::read_to_string(&trace).unwrap();
    let (mut commits_synced, mut entries_synced, mut ring_synced) = (0usize, 0usize, 0usize);
    let mut synced_at_write = Vec::new();
    // A syscall interrupted by another thread's shows as "<unfinished ...>"
    // and later "<... fdatasync resumed>" on the same pid, without the path.
    let mut unfinished: HashMap<&str, &str> = HashMap::new();
    for line in trace.lines() {
        let pid = line.split_whitespace().next().unwrap_or("");
        let file = if line.contains("fdatasync(") {
            let file = if line.contains("/db/db>") {
                "sled"
            } else if line.contains("/db/commits.ring>") {
                "ring"
            } else if line.contains("/db/entries.bin>") {
                "entries"
            } else {
                "other"
            };
            if line.contains("<unfinished") {
                unfinished.insert(pid, file);
                continue;
            }
            file
        } else if line.contains("fdatasync resumed>") {
            unfinished.remove(pid).unwrap_or("other")
        } else {
            if line.contains("write(1<") {
                // The syscall's entry (complete or "unfinished") marks when
                // the receipt left the process.
                synced_at_write.push((commits_synced, entries_synced));
            }
            continue;
        };
        if line.trim_end().ends_with("= 0") {
            match file {
                "sled" => commits_synced += 1,
                "ring" => {
                    commits_synced += 1;
                    ring_synced += 1;
                }
                "entries" => entries_synced += 1,
                _ => {}
            }
        }
    }
    assert_eq!(
        synced_at_write.len(),
        receipts.len(),
        "one write per receipt line"
    );
    assert!(
        ring_synced > 0,
        "batches after the first commit in the ring: the test covers that path"
    );
    // stdout lines are in write order, so receipt k was written when
    // synced_at_write[k] fdatasyncs had completed. Batch b needs b syncs of
    // the entries file and b commit syncs after the three at creation.
    for (k, receipt) in receipts.iter().enumerate() {
        let batch = ordinal(receipt.inclusion_proof.tree_size);
        let (commits, entries) = synced_at_write[k];
        assert!(
            commits >= batch + 3 && entries >= batch,
            "receipt of batch {batch} written after only {commits} commit fdatasyncs (sled's \
             log or the commit ring) and {entries} of entries.bin"
        );
    }
}
