//! `openexec verify`: offline receipt verification. Pure: reads files, calls
//! [`crate::core::receipt::ReceiptVerifier`] (or, with a policy,
//! [`crate::core::policy::verify_receipt_with_policy`]), prints one line
//! per receipt that fails and one summary line, exits 0 or 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::core::hash::Hash;
use crate::core::policy::{verify_receipt_with_policy, Policy, PolicyOk, PolicyReceiptError};
use crate::core::receipt::{
    Receipt, ReceiptError, ReceiptVerifier, TrustedCheckpoint, VerifiedReceipt,
};
use crate::core::signing::LogVerifier;
use crate::core::tlog_proof;

/// Arguments of `openexec verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The log's verifier key (`<name>+<id>+<key>`), or a file holding it.
    #[arg(long, required_unless_present = "policy")]
    pub key: Option<String>,
    /// A C2SP tlog-policy file (logs, witnesses, groups, quorum): the
    /// receipt's log must be listed, and the witness quorum must be met by
    /// the receipt's checkpoint or by `--checkpoint`.
    #[arg(long, conflicts_with = "key")]
    pub policy: Option<PathBuf>,
    /// Receipt files: receipt JSON, a `/execute` response holding one,
    /// c2sp.org/tlog-proof@v1 text, or JSON Lines of receipts/responses
    /// (one per line, for verifying many at once).
    #[arg(required = true)]
    pub receipts: Vec<PathBuf>,
    /// A later checkpoint you trust (signed note file). Unless it is the
    /// receipt's own tree size, also pass `--consistency`.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Consistency proof from the receipt's tree to `--checkpoint`: a file
    /// with one base64 hash per line, or the JSON served by
    /// `/ledger/proof/consistency`.
    #[arg(long)]
    pub consistency: Option<PathBuf>,
}

/// Runs the verification and prints the result.
#[must_use]
pub fn run(args: &VerifyArgs) -> ExitCode {
    match verify(args) {
        Ok(line) => {
            println!("OK: {line}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            println!("FAILED: {line}");
            ExitCode::FAILURE
        }
    }
}

/// One receipt read from a file, with where it came from.
struct Loaded {
    place: String,
    receipt: Receipt,
}

fn verify(args: &VerifyArgs) -> Result<String, String> {
    let receipts = load_all(&args.receipts)?;
    let checkpoint = args.checkpoint.as_ref().map(read).transpose()?;
    let proof = args
        .consistency
        .as_ref()
        .map(|p| read(p).and_then(|t| parse_hash_list(&t)))
        .transpose()?;
    let trusted = checkpoint.as_ref().map(|c| TrustedCheckpoint {
        checkpoint: c.as_bytes(),
        consistency_proof: proof.as_deref().unwrap_or(&[]),
    });
    let explain = |e: ReceiptError| {
        if matches!(e, ReceiptError::Consistency(_)) && proof.is_none() {
            format!("{e} (the trusted checkpoint is for another tree size: pass --consistency)")
        } else {
            e.to_string()
        }
    };
    let results: Vec<Result<String, String>> = match (&args.policy, &args.key) {
        (Some(path), _) => {
            let policy = Policy::parse(&read(path)?).map_err(|e| format!("policy: {e}"))?;
            receipts
                .iter()
                .map(|l| {
                    verify_receipt_with_policy(&l.receipt, &policy, trusted.as_ref())
                        .map(|(v, met)| describe(&v, trusted.is_some(), Some(&met)))
                        .map_err(|e| match e {
                            PolicyReceiptError::Receipt(inner) => explain(inner),
                            other => other.to_string(),
                        })
                })
                .collect()
        }
        (None, Some(key)) => {
            let log = LogVerifier::from_vkey(&read_key(key)?)
                .map_err(|e| format!("verifier key: {e}"))?;
            // Many receipts print only their failures and a count: no
            // success line is built for them.
            let one = receipts.len() == 1;
            on_every_core(&receipts, |part| {
                let mut verifier = ReceiptVerifier::new(&log, trusted.as_ref());
                part.iter()
                    .map(|l| {
                        verifier
                            .verify(&l.receipt)
                            .map(|v| {
                                if one {
                                    describe(&v, trusted.is_some(), None)
                                } else {
                                    String::new()
                                }
                            })
                            .map_err(explain)
                    })
                    .collect()
            })
        }
        (None, None) => return Err("give --key or --policy".into()),
    };
    summarize(&receipts, results)
}

/// Runs `check` over contiguous parts of `items`, one per core, and returns
/// the results in the order of `items`.
fn on_every_core<T: Sync, R: Send>(items: &[T], check: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let part = items.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(part)
            .map(|chunk| scope.spawn(|| check(chunk)))
            .collect();
        handles
            .into_iter()
            // Verification never panics; if it did, fail loudly rather than
            // report fewer results.
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// One receipt: its own line. Several: a line per failure, then a count.
fn summarize(receipts: &[Loaded], results: Vec<Result<String, String>>) -> Result<String, String> {
    if results.len() == 1 {
        return results
            .into_iter()
            .next()
            .unwrap_or_else(|| Err("no receipt".into()));
    }
    let failures: Vec<String> = receipts
        .iter()
        .zip(results)
        .filter_map(|(l, r)| r.err().map(|e| format!("{}: {e}", l.place)))
        .collect();
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    if failures.is_empty() {
        Ok(format!("{} receipts verified", receipts.len()))
    } else {
        Err(format!(
            "{} of {} receipts failed",
            failures.len(),
            receipts.len()
        ))
    }
}

/// The success line of one receipt.
fn describe(verified: &VerifiedReceipt, trusted: bool, quorum: Option<&PolicyOk>) -> String {
    let e = &verified.entry;
    let mut line = format!(
        "entry {} ({} {} {}) is in {} at tree size {}",
        e.index,
        e.action,
        e.outcome,
        e.exec_id,
        e.origin,
        verified.checkpoint.size()
    );
    if trusted {
        line.push_str(", consistent with the trusted checkpoint");
    }
    if let Some(met) = quorum {
        let by = if met.witnesses.is_empty() {
            "no witness needed".to_owned()
        } else {
            met.witnesses.join(", ")
        };
        line.push_str(&format!(
            "; policy quorum met at tree size {} (cosigned by {by})",
            met.checkpoint.size()
        ));
    }
    line
}

fn load_all(paths: &[PathBuf]) -> Result<Vec<Loaded>, String> {
    let mut all = Vec::new();
    for path in paths {
        let text = read(path)?;
        all.extend(parse_receipts(&text, &path.display().to_string())?);
    }
    Ok(all)
}

/// One receipt (JSON, `/execute` response, tlog-proof), or JSON Lines of them.
fn parse_receipts(text: &str, name: &str) -> Result<Vec<Loaded>, String> {
    let single = |receipt| {
        Ok(vec![Loaded {
            place: name.to_owned(),
            receipt,
        }])
    };
    if text.starts_with(tlog_proof::HEADER) {
        return single(tlog_proof::import(text).map_err(|e| format!("{name}: {e}"))?);
    }
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        return single(parse_receipt(text).map_err(|e| format!("{name}: {e}"))?);
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let place = format!("{name}:{}", i + 1);
            let receipt = parse_receipt(line).map_err(|e| format!("{place}: {e}"))?;
            Ok(Loaded { place, receipt })
        })
        .collect()
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// `--key` is either the key itself or a path to a file holding it.
fn read_key(arg: &str) -> Result<String, String> {
    if arg.contains('+') {
        return Ok(arg.to_owned());
    }
    read(&PathBuf::from(arg)).map(|t| t.trim().to_owned())
}

/// Accepts a bare receipt, any JSON object with a `receipt` field holding
/// one (an `/execute` response), or tlog-proof text.
pub(crate) fn parse_receipt(text: &str) -> Result<Receipt, String> {
    if text.starts_with(tlog_proof::HEADER) {
        return tlog_proof::import(text).map_err(|e| e.to_string());
    }
    // A bare receipt parses directly (the common case when checking many).
    if let Ok(receipt) = serde_json::from_str::<Receipt>(text) {
        return Ok(receipt);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("receipt is not JSON: {e}"))?;
    let inner = value
        .get("receipt")
        .filter(|r| r.is_object())
        .cloned()
        .unwrap_or(value);
    serde_json::from_value(inner).map_err(|e| format!("receipt has the wrong shape: {e}"))
}

fn parse_hash_list(text: &str) -> Result<Vec<Hash>, String> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let hashes = value.get("hashes").cloned().unwrap_or(value);
        return serde_json::from_value(hashes).map_err(|e| format!("consistency proof: {e}"));
    }
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| Hash::from_base64(l).map_err(|e| format!("consistency proof: {e}")))
        .collect()
}
