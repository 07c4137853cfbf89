//! `openexec rotate`: retires a stopped log's key and starts its successor
//! (docs/OPERATIONS.md, "Rotating the log key").
//!
//! In order, each step durable before the next, so that a run cut off at
//! any point is completed by running the same command again:
//!
//! 1. the retired log is opened as `serve` opens it; the successor's
//!    directory is inspected and refused unless it is absent, empty, or
//!    holds this very rotation's successor (nothing is changed before);
//! 2. every reservation left in flight is recorded (`interrupted`), as at
//!    a start, and the predecessor index (every nonce and approval the
//!    retired log and its own predecessors closed) and the counters are
//!    read;
//! 3. the successor's directory is created and marked `rotation.pending`
//!    (a log with the marker does not start), and its key is created (or
//!    read back);
//! 4. the retired log's `log_end` entry naming the successor is appended
//!    (unless it is already its last entry): from then on the log is
//!    retired and no `serve` appends to it;
//! 5. the successor's `predecessor.idx`, linked to the `log_start` entry,
//!    is written (only into an empty successor, or the same bytes);
//! 6. the successor's entry 0, `log_start`, is appended, with the retired
//!    log's counters carried into its store;
//! 7. the rotation record (both receipts) is written, `rotation-out.json`
//!    into the retired log's directory and `rotation-in.json` into the
//!    successor's, and the marker is removed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::action::Registry;
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::Entry;
use crate::core::receipt::Receipt;
use crate::core::rotation::{
    log_end_draft, log_start_commitment, log_start_draft, Predecessor, RotationRecord, Successor,
    LOG_START_ACTION, ROTATION_FORMAT, ROTATION_IN_FILE, ROTATION_OUT_FILE,
};
use crate::core::signing::{LogSigner, LogVerifier};
use crate::ledger::predecessor::PredecessorIndex;
use crate::ledger::{keyfile, Ledger, LedgerConfig};

mod successor;

/// Arguments of `openexec rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Data directory of the log to retire (its service stopped).
    /// Default: the one `OPENEXEC_DB_URL` names (`sled://PATH` or a path),
    /// else ./openexec-data, as for `serve`.
    #[arg(long, env = "OPENEXEC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Its key file. Default: DATA/log.key.
    #[arg(long, env = "OPENEXEC_LOG_KEY")]
    pub log_key: Option<PathBuf>,
    /// Its checkpoint memo. Default: `<data dir>.checkpoint`.
    #[arg(long, env = "OPENEXEC_CHECKPOINT_MEMO")]
    pub checkpoint_memo: Option<PathBuf>,
    /// The service's storage URL: the data directory when it is
    /// `sled://PATH` or a path; refused when it names PostgreSQL.
    #[arg(long, env = "OPENEXEC_DB_URL")]
    pub db_url: Option<String>,
    /// Data directory of the successor log (new, or left by a run of this
    /// command that was cut off).
    #[arg(long)]
    pub new_data_dir: PathBuf,
    /// The successor's origin. Default: the retired origin with `-g2`
    /// appended, or its `-gN` suffix raised by one.
    #[arg(long)]
    pub new_origin: Option<String>,
}

/// Runs the rotation; prints what it did; exits 1 with one line on failure.
#[must_use]
pub fn run(args: &RotateArgs, registry: Registry) -> ExitCode {
    match rotate(args, registry) {
        Ok(record) => {
            println!(
                "retired {} at tree size {}",
                record.predecessor.origin, record.predecessor.size
            );
            println!("successor {}", record.successor.vkey);
            println!(
                "start it with: openexec serve --db-url {} --origin {}",
                args.new_data_dir.display(),
                record.successor.origin
            );
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("openexec rotate: {line}");
            ExitCode::FAILURE
        }
    }
}

fn rotate(args: &RotateArgs, registry: Registry) -> Result<RotationRecord, String> {
    if let Some(url) = args.db_url.as_deref().filter(|u| u.starts_with("postgres")) {
        return Err(format!(
            "{url}: the PostgreSQL backend has no rotation; rotate a log on the embedded store (sled://PATH)"
        ));
    }
    let data_dir = data_dir(args)?;
    let old_config = old_config(args, &data_dir)?;
    let old = Arc::new(Ledger::open(&old_config).map_err(|e| format!("opening the log: {e}"))?);
    let new_origin = args
        .new_origin
        .clone()
        .unwrap_or_else(|| next_origin(&old_config.origin));
    if new_origin == old_config.origin {
        return Err("the successor needs an origin of its own (--new-origin)".into());
    }
    // Every check runs before the first change: a refused rotation leaves
    // both directories as they were, and the log is never retired
    // without a successor it can be completed into.
    let new_dir = &args.new_data_dir;
    let new_size = successor::inspect(new_dir, &old, &new_origin)?;
    if !old.is_retired() {
        record_in_flight(&old, registry)?;
    }
    // log_end completes no nonce: the index built now is the final one.
    let index = PredecessorIndex::build(&old).map_err(|e| e.to_string())?;
    let counters = old
        .store()
        .map(crate::store::Store::counter_values)
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    successor::prepare(new_dir, &old, new_size)?;
    let new_key = successor_key(&new_dir.join("log.key"), &new_origin)?;
    let successor = Successor::of(&new_key.verifier());
    let log_end = log_end_receipt(&old, &successor)?;
    let last = SignedCheckpoint::open(log_end.checkpoint.as_bytes(), old.verifier())
        .map_err(|e| format!("the final checkpoint: {e}"))?;
    let predecessor = Predecessor::of(old.verifier(), &last);
    let link = log_start_commitment(&predecessor).map_err(|e| e.to_string())?;
    let index = index.linked_to(link);
    old.shutdown();
    drop(old);
    let mut new_config = LedgerConfig::new(new_dir);
    new_config.origin.clone_from(&new_origin);
    let log_start = start_successor(&new_config, &index, &counters, &predecessor)?;
    copy_principals(&data_dir, new_dir)?;
    let record = RotationRecord {
        format: ROTATION_FORMAT.into(),
        successor,
        predecessor,
        log_end,
        log_start,
    };
    let old_verifier =
        LogVerifier::from_vkey(&record.predecessor.vkey).map_err(|e| e.to_string())?;
    crate::core::rotation::verify_chain(&record, &old_verifier, &new_key.verifier())
        .map_err(|e| format!("the rotation does not verify: {e}"))?;
    let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())? + "\n";
    write_durably(&data_dir.join(ROTATION_OUT_FILE), text.as_bytes())?;
    write_durably(&new_dir.join(ROTATION_IN_FILE), text.as_bytes())?;
    successor::finish(new_dir)?;
    Ok(record)
}

/// The retired log's data directory: `--data-dir`, else the one the
/// storage URL names, else `serve`'s default.
fn data_dir(args: &RotateArgs) -> Result<PathBuf, String> {
    if let Some(dir) = &args.data_dir {
        return Ok(dir.clone());
    }
    match args.db_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => super::serve::embedded_data_dir(url).ok_or_else(|| {
            format!("unsupported OPENEXEC_DB_URL {url:?} (only sled://PATH or a path)")
        }),
        None => Ok(PathBuf::from("openexec-data")),
    }
}

/// The retired log's configuration; its origin is its key's name.
fn old_config(args: &RotateArgs, data_dir: &Path) -> Result<LedgerConfig, String> {
    let mut config = LedgerConfig::new(data_dir);
    config.key_path.clone_from(&args.log_key);
    config.checkpoint_memo.clone_from(&args.checkpoint_memo);
    let key_path = config.key_path();
    let text = std::fs::read_to_string(&key_path)
        .map_err(|e| format!("reading the log key {}: {e}", key_path.display()))?;
    let signer = LogSigner::from_private_key_text(&text)
        .map_err(|e| format!("log key {}: {e}", key_path.display()))?;
    config.origin = signer.name().to_owned();
    Ok(config)
}

/// Records the reservations a stopped service left in flight, as `serve`
/// does at start: the successor must not find one open.
fn record_in_flight(ledger: &Arc<Ledger>, registry: Registry) -> Result<(), String> {
    let policy = crate::exec::Policy {
        mode: crate::exec::Mode::Demo,
        approvals: crate::core::approval::ApprovalPolicy {
            keys: vec![],
            tenant: None,
            max_lifetime: chrono::Duration::hours(1),
            skew: chrono::Duration::seconds(30),
        },
        allow_list: None,
        store_content: true,
        limits: crate::core::request::Limits::default(),
        reject_rate: 0.0,
        reject_burst: 1,
        reject_global_rate: 0.0,
        reject_global_burst: 1,
    };
    let boundary = crate::exec::Boundary::new(ledger.clone(), registry, policy)
        .map_err(|e| format!("starting the handler runtime: {e}"))?;
    let count = boundary
        .recover_interrupted()
        .map_err(|e| format!("recording interrupted attempts: {e}"))?;
    if count > 0 {
        println!("recorded {count} reservation(s) left in flight as interrupted");
    }
    Ok(())
}

/// `origin-gN` → `origin-g(N+1)`; anything else gets `-g2`.
fn next_origin(origin: &str) -> String {
    if let Some((stem, n)) = origin.rsplit_once("-g") {
        if let Ok(n) = n.parse::<u64>() {
            if n.to_string() == origin[stem.len() + 2..] {
                return format!("{stem}-g{}", n.saturating_add(1));
            }
        }
    }
    format!("{origin}-g2")
}

/// The successor's key: created, or the one a cut-off run created.
fn successor_key(path: &Path, origin: &str) -> Result<LogSigner, String> {
    if path.exists() {
        keyfile::load_or_create(path, origin).map_err(|e| e.to_string())
    } else {
        keyfile::create(path, origin).map_err(|e| e.to_string())
    }
}

/// The receipt of the retired log's `log_end` entry naming `successor`:
/// appended now, or already its last entry. A log retired for another
/// successor is refused.
fn log_end_receipt(old: &Ledger, successor: &Successor) -> Result<Receipt, String> {
    if old.is_retired() {
        let last = old.head().size.saturating_sub(1);
        let receipt = old.receipt(last).map_err(|e| e.to_string())?;
        let entry =
            Entry::from_canonical_bytes(receipt.entry.as_bytes()).map_err(|e| e.to_string())?;
        let expected =
            log_end_draft(successor, entry.exec_id.clone()).map_err(|e| e.to_string())?;
        if entry.payload_commitment != expected.payload_commitment {
            return Err(format!(
                "the log is already retired for another successor than {}",
                successor.origin
            ));
        }
        return Ok(receipt);
    }
    let draft =
        log_end_draft(successor, uuid::Uuid::new_v4().to_string()).map_err(|e| e.to_string())?;
    old.append(draft, None)
        .map(|appended| appended.receipt)
        .map_err(|e| format!("appending the log_end entry: {e}"))
}

/// Opens the successor, writes its predecessor index and counters, and
/// returns the receipt of its `log_start` entry (appended now, or already
/// its entry 0).
fn start_successor(
    config: &LedgerConfig,
    index: &PredecessorIndex,
    counters: &[(String, u64)],
    predecessor: &Predecessor,
) -> Result<Receipt, String> {
    let new =
        Ledger::open_for_rotation(config).map_err(|e| format!("opening the successor: {e}"))?;
    index
        .write(&config.data_dir, new.head().size)
        .map_err(|e| e.to_string())?;
    if new.head().size > 0 {
        let receipt = new.receipt(0).map_err(|e| e.to_string())?;
        let entry =
            Entry::from_canonical_bytes(receipt.entry.as_bytes()).map_err(|e| e.to_string())?;
        let expected =
            log_start_draft(predecessor, entry.exec_id.clone()).map_err(|e| e.to_string())?;
        if entry.action != LOG_START_ACTION
            || entry.payload_commitment != expected.payload_commitment
        {
            return Err("the successor's data directory holds another log".into());
        }
        return Ok(receipt);
    }
    if let Some(store) = new.store() {
        for (name, value) in counters {
            store
                .carry_counter(name, *value)
                .map_err(|e| format!("carrying counter {name}: {e}"))?;
        }
    }
    let draft = log_start_draft(predecessor, uuid::Uuid::new_v4().to_string())
        .map_err(|e| e.to_string())?;
    new.append(draft, None)
        .map(|appended| appended.receipt)
        .map_err(|e| format!("appending the log_start entry: {e}"))
}

/// Copies the principals (`principals.json`, mode 0600 as `openexec
/// token` writes it), so that tokens keep working against the successor;
/// one already there is kept.
fn copy_principals(from: &Path, to: &Path) -> Result<(), String> {
    let name = crate::auth::store::FILE_NAME;
    let (source, target) = (from.join(name), to.join(name));
    if !source.exists() || target.exists() {
        return Ok(());
    }
    let bytes = std::fs::read(&source).map_err(|e| format!("reading {}: {e}", source.display()))?;
    write_durably(&target, &bytes)
}

/// Writes `path` through a synced temporary file and a synced directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    let temporary = path.with_extension("json.new");
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt as _;
        // 0600: the record is public, but principals are not.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        match path.parent() {
            Some(dir) => std::fs::File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    })();
    result.map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn successor_origins_count_generations() {
        use super::next_origin;
        assert_eq!(next_origin("openexec.local/log"), "openexec.local/log-g2");
        assert_eq!(next_origin("x-g2"), "x-g3");
        assert_eq!(next_origin("x-g09"), "x-g09-g2");
        assert_eq!(next_origin("x-g"), "x-g-g2");
    }
}
