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
use crate::core::rotation::{self, RotationRecord};
use crate::core::signing::LogVerifier;
use crate::core::tlog_proof;

/// Arguments of `openexec verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The log's verifier key (`<name>+<id>+<key>`), or a file holding it.
    /// Give it once per log (`--log-key OLD --log-key NEW` across a
    /// rotation): each receipt is checked with the key named by its origin.
    #[arg(long, alias = "log-key", required_unless_present = "policy")]
    pub key: Vec<String>,
    /// A C2SP tlog-policy file (logs, witnesses, groups, quorum): the
    /// receipt's log must be listed, and the witness quorum must be met by
    /// the receipt's checkpoint or by `--checkpoint`.
    #[arg(long, conflicts_with = "key")]
    pub policy: Option<PathBuf>,
    /// Receipt files: receipt JSON, a `/execute` response holding one,
    /// c2sp.org/tlog-proof@v1 text, or JSON Lines of receipts/responses
    /// (one per line, for verifying many at once).
    #[arg(required_unless_present = "chain")]
    pub receipts: Vec<PathBuf>,
    /// A rotation record (`rotation-in.json` or `rotation-out.json`,
    /// written by `openexec rotate`): checks that the retired log's final
    /// checkpoint ends with an entry naming the successor's key, that the
    /// successor's entry 0 commits to that checkpoint, and that the
    /// record's members say the same. Needs both logs' keys (or a policy
    /// listing both).
    #[arg(long)]
    pub chain: Option<PathBuf>,
    /// A later checkpoint you trust (signed note file). Unless it is the
    /// receipt's own tree size, also add `--consistency`.
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

/// One receipt's text and where it came from. It is parsed only when it
/// is checked, on the core that checks it, so that many receipts are never
/// all held parsed at once (a parsed receipt is larger than its line).
struct Source<'a> {
    /// The file's name as given.
    file: &'a str,
    /// The line, for JSON Lines; `None` when the file is one receipt.
    line: Option<usize>,
    text: &'a str,
}

impl Source<'_> {
    fn place(&self) -> String {
        match self.line {
            Some(n) => format!("{}:{n}", self.file),
            None => self.file.to_owned(),
        }
    }
}

/// Why one receipt failed.
enum Failed {
    /// Its text is not a receipt in any accepted form.
    Unreadable(String),
    /// It was read, and did not verify.
    Invalid(String),
}

fn verify(args: &VerifyArgs) -> Result<String, String> {
    // The receipts are read before the keys are parsed, so an unreadable
    // file is named first, as the Python and browser verifiers name it.
    let files = read_all(&args.receipts)?;
    let keys = Keys::of(args)?;
    let chain = args
        .chain
        .as_ref()
        .map(|path| verify_chain(path, &keys))
        .transpose()?;
    if args.receipts.is_empty() {
        return chain.ok_or_else(|| "give receipts or --chain".into());
    }
    let receipts = verify_receipts(args, &keys, &files)?;
    Ok(match chain {
        Some(line) => format!("{line}; {receipts}"),
        None => receipts,
    })
}

/// The keys given: a policy, or verifier keys (each receipt checked with
/// the one of its origin).
enum Keys {
    Policy(Box<Policy>),
    Logs(Vec<LogVerifier>),
}

impl Keys {
    fn of(args: &VerifyArgs) -> Result<Self, String> {
        if let Some(path) = &args.policy {
            let policy = Policy::parse(&read(path)?).map_err(|e| format!("policy: {e}"))?;
            return Ok(Self::Policy(Box::new(policy)));
        }
        if args.key.is_empty() {
            return Err("give --key or --policy".into());
        }
        args.key
            .iter()
            .map(|k| {
                LogVerifier::from_vkey(&read_key(k)?).map_err(|e| format!("verifier key: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()
            .map(Self::Logs)
    }

    /// The key of the log named `origin`.
    fn log_for(&self, origin: &str) -> Option<&LogVerifier> {
        match self {
            Self::Policy(p) => p.log_for(origin),
            Self::Logs(logs) => logs.iter().find(|l| l.name() == origin),
        }
    }
}

/// The origin a receipt's entry names (unchecked: it only picks the key).
fn origin_of(receipt: &Receipt) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(&receipt.entry).ok()?;
    value.get("origin")?.as_str().map(str::to_owned)
}

/// `--chain`: the rotation record checked with both logs' keys.
fn verify_chain(path: &PathBuf, keys: &Keys) -> Result<String, String> {
    let record: RotationRecord = serde_json::from_str(&read(path)?)
        .map_err(|e| format!("{}: not a rotation record: {e}", path.display()))?;
    let key = |receipt: &Receipt, which: &str| {
        let origin = origin_of(receipt).unwrap_or_default();
        keys.log_for(&origin)
            .ok_or_else(|| format!("chain: no key given for the {which} log {origin:?}"))
    };
    let old = key(&record.log_end, "retired")?;
    let new = key(&record.log_start, "successor")?;
    let ok = rotation::verify_chain(&record, old, new).map_err(|e| format!("chain: {e}"))?;
    Ok(format!(
        "chain: {} ends at tree size {} naming {}, whose entry 0 commits to that final checkpoint",
        ok.final_checkpoint.origin(),
        ok.final_checkpoint.size(),
        ok.successor_checkpoint.origin()
    ))
}

fn verify_receipts(
    args: &VerifyArgs,
    keys: &Keys,
    files: &[(String, String)],
) -> Result<String, String> {
    let sources = sources(files);
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
            format!("{e} (the trusted checkpoint is for another tree size: add --consistency)")
        } else {
            e.to_string()
        }
    };
    // Many receipts print only their failures and a count: no success line
    // is built for them.
    let one = sources.len() == 1;
    let success = |v: &VerifiedReceipt, met: Option<&PolicyOk>| {
        if one {
            describe(v, trusted.is_some(), met)
        } else {
            String::new()
        }
    };
    let results: Vec<Result<String, Failed>> = match keys {
        Keys::Policy(policy) => on_every_core(&sources, |part| {
            check_each(part, |receipt| {
                verify_receipt_with_policy(receipt, policy, trusted.as_ref())
                    .map(|(v, met)| success(&v, Some(&met)))
                    .map_err(|e| match e {
                        PolicyReceiptError::Receipt(inner) => explain(inner),
                        other => other.to_string(),
                    })
            })
        }),
        Keys::Logs(logs) => on_every_core(&sources, |part| {
            // One verifier per key per core: it remembers the checkpoints
            // it has verified, which many receipts share.
            let mut verifiers: Vec<ReceiptVerifier<'_>> = logs
                .iter()
                .map(|log| ReceiptVerifier::new(log, trusted.as_ref()))
                .collect();
            check_each(part, |receipt| {
                let origin = origin_of(receipt);
                let at = logs
                    .iter()
                    .position(|l| Some(l.name()) == origin.as_deref())
                    .unwrap_or(0);
                verifiers
                    .get_mut(at)
                    .ok_or_else(|| "no verifier key".to_owned())?
                    .verify(receipt)
                    .map(|v| success(&v, None))
                    .map_err(explain)
            })
        }),
    };
    summarize(&sources, results)
}

/// Parses and checks each source in turn; a parsed receipt is dropped as
/// soon as it is checked.
fn check_each(
    sources: &[Source<'_>],
    mut check: impl FnMut(&Receipt) -> Result<String, String>,
) -> Vec<Result<String, Failed>> {
    sources
        .iter()
        .map(|s| {
            let receipt = parse_receipt(s.text).map_err(Failed::Unreadable)?;
            check(&receipt).map_err(Failed::Invalid)
        })
        .collect()
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

/// One receipt: its own line (an unreadable one names its file). Several:
/// a line per failure, each naming its place, then a count.
fn summarize(
    sources: &[Source<'_>],
    results: Vec<Result<String, Failed>>,
) -> Result<String, String> {
    if let ([source], [result]) = (sources, results.as_slice()) {
        return match result {
            Ok(line) => Ok(line.clone()),
            Err(Failed::Unreadable(e)) => Err(format!("{}: {e}", source.place())),
            Err(Failed::Invalid(e)) => Err(e.clone()),
        };
    }
    if sources.is_empty() {
        return Err("no receipt in the files given".into());
    }
    let failures: Vec<String> = sources
        .iter()
        .zip(results)
        .filter_map(|(s, r)| match r {
            Ok(_) => None,
            Err(Failed::Unreadable(e) | Failed::Invalid(e)) => Some(format!("{}: {e}", s.place())),
        })
        .collect();
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    if failures.is_empty() {
        Ok(format!("{} receipts verified", sources.len()))
    } else {
        Err(format!(
            "{} of {} receipts failed",
            failures.len(),
            sources.len()
        ))
    }
}

/// The success line of one receipt.
fn describe(verified: &VerifiedReceipt, trusted: bool, quorum: Option<&PolicyOk>) -> String {
    let e = &verified.entry;
    let replay = e
        .replay_of
        .map(|r| format!(", a replay of entry {}", r.index))
        .or_else(|| {
            e.redacts
                .map(|r| format!(", a redaction of entry {}", r.index))
        })
        .unwrap_or_default();
    let effects = e
        .effects
        .map(|c| format!(", effects {c}"))
        .unwrap_or_default();
    let registry = e
        .registry
        .map(|h| format!(", handler registry {h}"))
        .unwrap_or_default();
    let mut line = format!(
        "entry {} ({} {} {}{replay}{effects}{registry}) is in {} at tree size {}",
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

/// Each file's name and text.
fn read_all(paths: &[PathBuf]) -> Result<Vec<(String, String)>, String> {
    paths
        .iter()
        .map(|p| Ok((p.display().to_string(), read(p)?)))
        .collect()
}

/// The receipts of the files: a file that is one receipt (JSON, an
/// `/execute` response, tlog-proof text) is one source, any other file is
/// JSON Lines — a source per non-empty line.
fn sources(files: &[(String, String)]) -> Vec<Source<'_>> {
    let mut all = Vec::new();
    for (name, text) in files {
        let whole = text.starts_with(tlog_proof::HEADER)
            || serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
        if whole {
            all.push(Source {
                file: name,
                line: None,
                text,
            });
            continue;
        }
        all.extend(
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(i, line)| Source {
                    file: name,
                    line: Some(i + 1),
                    text: line,
                }),
        );
    }
    all
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
