//! The successor's data directory in `openexec rotate`: inspected before
//! anything changes, marked while the rotation runs, unmarked at its end.

use std::ffi::OsString;
use std::path::Path;

use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::Entry;
use crate::core::rotation::{
    log_end_draft, log_start_commitment, Predecessor, Successor, LOG_START_ACTION,
};
use crate::core::signing::LogSigner;
use crate::ledger::predecessor::{write_file, PENDING_FILE};
use crate::ledger::{Ledger, LedgerConfig};

/// The log key's file name in a data directory.
const KEY_FILE: &str = "log.key";

/// Checks that `dir` may receive the successor of `old` named `origin`,
/// changing nothing: it is absent or empty, or it holds this rotation's
/// successor (its key, marked for `old` while `old` is not yet retired;
/// once `old` is retired, the key its `log_end` entry names, with no
/// entry or a first entry that is the matching `log_start`). Returns the
/// successor's log size.
pub(super) fn inspect(dir: &Path, old: &Ledger, origin: &str) -> Result<u64, String> {
    let names = listing(dir)?;
    let refuse = |why: String| {
        Err(format!(
            "{}: {why}; nothing was changed (give an absent or empty directory, or the one of this rotation)",
            dir.display()
        ))
    };
    let retired_end = old.is_retired().then(|| last_entry(old)).transpose()?;
    if names.is_empty() {
        if retired_end.is_some() {
            return Err(format!(
                "the log is already retired for another successor than the one to create in {}",
                dir.display()
            ));
        }
        return Ok(0);
    }
    let Ok(text) = std::fs::read_to_string(dir.join(KEY_FILE)) else {
        return refuse("it holds files but no log key".into());
    };
    let signer = LogSigner::from_private_key_text(&text).map_err(|e| format!("{KEY_FILE}: {e}"))?;
    if signer.name() != origin {
        return refuse(format!(
            "its log key is for origin {:?}, not {origin:?}",
            signer.name()
        ));
    }
    match &retired_end {
        Some(end) => {
            let named = log_end_draft(&Successor::of(&signer.verifier()), end.exec_id.clone())
                .map_err(|e| e.to_string())?;
            if named.payload_commitment != end.payload_commitment {
                return Err(format!(
                    "the log is already retired for another successor than {origin} ({})",
                    dir.display()
                ));
            }
        }
        None => {
            let marker = std::fs::read_to_string(dir.join(PENDING_FILE)).unwrap_or_default();
            if marker.trim() != old.verifier().vkey() {
                return refuse(
                    "it holds a log key but no unfinished rotation of this log (another log's directory?)".into(),
                );
            }
        }
    }
    if !dir.join("db").exists() {
        return Ok(0);
    }
    let mut config = LedgerConfig::new(dir);
    config.origin = origin.to_owned();
    let new =
        Ledger::open_for_rotation(&config).map_err(|e| format!("opening the successor: {e}"))?;
    let size = new.head().size;
    let first = match size {
        0 => None,
        _ => Some(
            new.entry(0)
                .map_err(|e| e.to_string())
                .and_then(|(b, _)| Entry::from_canonical_bytes(&b).map_err(|e| e.to_string()))?,
        ),
    };
    new.shutdown();
    drop(new);
    let Some(first) = first else {
        return Ok(0);
    };
    let link = match old.is_retired() {
        true => log_start_commitment(&final_predecessor(old)?).map_err(|e| e.to_string())?,
        false => return refuse("it holds a log with entries".into()),
    };
    if first.action != LOG_START_ACTION || first.payload_commitment != link {
        return refuse("it holds another log".into());
    }
    Ok(size)
}

/// Creates `dir` durably and, while its log is empty, marks it as the
/// successor of `old` under rotation (`serve` refuses a marked directory).
pub(super) fn prepare(dir: &Path, old: &Ledger, size: u64) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("creating {}: {e}", dir.display());
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(fail)?;
        // The directory entry itself must survive a crash.
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        std::fs::File::open(parent)
            .and_then(|f| f.sync_all())
            .map_err(fail)?;
    }
    if size == 0 {
        let vkey = old.verifier().vkey() + "\n";
        write_file(dir, &dir.join(PENDING_FILE), vkey.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Removes the marker: the successor may start.
pub(super) fn finish(dir: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("removing {}: {e}", dir.join(PENDING_FILE).display());
    match std::fs::remove_file(dir.join(PENDING_FILE)) {
        Ok(()) => std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(fail),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

/// The names in `dir` (none when it is absent).
fn listing(dir: &Path) -> Result<Vec<OsString>, String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("reading {}: {e}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("reading {}: {e}", dir.display())),
    }
}

/// The last entry of `ledger`.
fn last_entry(ledger: &Ledger) -> Result<Entry, String> {
    let last = ledger.head().size.saturating_sub(1);
    let (bytes, _) = ledger.entry(last).map_err(|e| e.to_string())?;
    Entry::from_canonical_bytes(&bytes).map_err(|e| e.to_string())
}

/// The predecessor a retired log's successor names: its key and final
/// checkpoint.
fn final_predecessor(old: &Ledger) -> Result<Predecessor, String> {
    let last = old.head().size.saturating_sub(1);
    let receipt = old.receipt(last).map_err(|e| e.to_string())?;
    let checkpoint = SignedCheckpoint::open(receipt.checkpoint.as_bytes(), old.verifier())
        .map_err(|e| format!("the final checkpoint: {e}"))?;
    Ok(Predecessor::of(old.verifier(), &checkpoint))
}
