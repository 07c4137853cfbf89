//! `openexec keygen` and `openexec audit`: thin shells over the ledger
//! (`audit --url` over a running log's tiles: [`super::audit_url`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::ledger::audit::{audit, AuditOptions, AuditReport};
use crate::ledger::{keyfile, DEFAULT_ORIGIN};
use crate::store::{Store, StoreConfig};

/// Arguments of `openexec keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Log origin, which is also the key name.
    #[arg(long, env = "OPENEXEC_ORIGIN", default_value = DEFAULT_ORIGIN)]
    pub origin: String,
    /// Where to write the private key (mode 0600; never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `openexec audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Data directory of a stopped service.
    #[arg(long, env = "OPENEXEC_DATA_DIR", default_value = "openexec-data")]
    pub data: PathBuf,
    /// Audit the log in this PostgreSQL database (`postgres://…`) instead
    /// of a data directory; it may be live.
    #[arg(long)]
    pub db_url: Option<String>,
    /// Audit a running log through its C2SP tlog-tiles at this base URL
    /// (`http://host:port`) instead of a data directory: the checkpoint,
    /// every hash tile and every entry bundle. Exits 0 when the log
    /// verifies, 1 on a finding, 2 on a usage or network error.
    #[arg(long, conflicts_with = "db_url")]
    pub url: Option<String>,
    /// With `--url`: the log's verifier key (`<name>+<id>+<key>`), or a
    /// file holding it.
    #[arg(long, requires = "url")]
    pub key: Option<String>,
    /// With `--url`: a file keeping the last checkpoint audited. The new
    /// checkpoint must extend it (no rollback, no fork), and replaces it
    /// once the log verifies.
    #[arg(long, requires = "url")]
    pub state: Option<PathBuf>,
    /// With `--url`: print progress on stderr every this many level-0
    /// tiles (256 entries each); 0 for none.
    #[arg(long, default_value_t = 100)]
    pub progress_every: u64,
    /// Skip the independent rs_merkle rebuild (it runs over chunks of 2^16 leaves, so its memory is bounded; it costs CPU time).
    #[arg(long)]
    pub no_rebuild: bool,
}

/// Creates a key file and prints its verifier key.
#[must_use]
pub fn keygen(args: &KeygenArgs) -> ExitCode {
    match keyfile::create(&args.out, &args.origin) {
        Ok(signer) => {
            println!("{}", signer.verifier().vkey());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Audits a data directory; prints one line; exits 1 on any finding.
#[must_use]
pub fn run_audit(args: &AuditArgs) -> ExitCode {
    if let Some(url) = &args.url {
        let Some(key) = &args.key else {
            println!("ERROR: --url needs the log's verifier key: add --key");
            return ExitCode::from(2);
        };
        return super::audit_url::run(&super::audit_url::UrlAudit {
            url,
            key,
            state: args.state.as_deref(),
            progress_every: args.progress_every,
        });
    }
    if let Some(url) = &args.db_url {
        if !crate::pg::is_postgres_url(url) {
            println!(
                "FAILED: --db-url takes a postgres:// URL; audit a data directory with --data"
            );
            return ExitCode::FAILURE;
        }
        return match crate::pg::audit::audit(url) {
            Ok(report) => audit_outcome(report),
            Err(e) => {
                println!("FAILED: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let store = match Store::open(&StoreConfig::new(args.data.join("db"))) {
        Ok(s) => s,
        Err(e) => {
            println!("FAILED: cannot open {}: {e}", args.data.display());
            return ExitCode::FAILURE;
        }
    };
    let options = AuditOptions {
        rebuild: !args.no_rebuild,
        progress_every: 100_000,
    };
    match audit(&store, options) {
        Ok(report) => {
            for warning in &report.warnings {
                println!("WARNING: {warning}");
            }
            audit_outcome(report)
        }
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The audit's last line and exit code: a finding fails it; warnings
/// (damage the open repaired, a ring copy the other holds) do not.
fn audit_outcome(report: AuditReport) -> ExitCode {
    for span in &report.registries {
        let fingerprint = span
            .fingerprint
            .map_or_else(|| "none recorded".to_owned(), |h| h.to_base64());
        println!(
            "registry {fingerprint}: entries {}..={}",
            span.first, span.last
        );
    }
    match report.first_bad {
        None => {
            println!(
                "OK: {} entries, {} checkpoints verified{}",
                report.entries,
                report.checkpoints,
                if report.rebuilt {
                    ", rs_merkle rebuild agrees"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Some(finding) => {
            println!("FAILED: {finding}");
            ExitCode::FAILURE
        }
    }
}

/// Arguments of `openexec ledger-load` (hidden).
#[derive(Debug, Args)]
pub struct LedgerLoadArgs {
    /// Data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// Appends per thread.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Concurrent appending threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u64,
    /// Print every receipt as one JSON line once it is acknowledged.
    #[arg(long)]
    pub print_receipts: bool,
}

/// Appends synthetic entries straight to a ledger, without HTTP: the load
/// generator of the ledger benchmarks and the child process of the
/// kill-9 durability test. Prints each acknowledged receipt when asked.
#[must_use]
pub fn ledger_load(args: &LedgerLoadArgs) -> ExitCode {
    use std::io::Write as _;

    let ledger = match crate::ledger::Ledger::open(&crate::ledger::LedgerConfig::new(&args.data)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let out = std::sync::Mutex::new(std::io::stdout());
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..args.threads {
            let (ledger, out, failed) = (&ledger, &out, &failed);
            scope.spawn(move || {
                for i in 0..args.count {
                    let draft = crate::core::entry::EntryDraft {
                        exec_id: format!("load-{t}-{i}-{}", std::process::id()),
                        tenant: String::new(),
                        action: "load".into(),
                        nonce: format!("{t}-{i}"),
                        request_hash: crate::core::hash::Hash::sha256(
                            format!("{t}-{i}").as_bytes(),
                        ),
                        payload_commitment: crate::core::hash::Hash::sha256(b"payload"),
                        result_commitment: None,
                        approval: crate::core::entry::ApprovalSummary::none(),
                        outcome: crate::core::entry::Outcome::Executed,
                        reason: "ok".into(),
                        replay_of: None,
                        effects: None,
                        registry: None,
                        principal: None,
                    };
                    match ledger.append(draft, None) {
                        Ok(appended) if args.print_receipts => {
                            // One write per receipt line: the durability test
                            // maps stdout writes to receipts under strace.
                            let line =
                                serde_json::to_string(&appended.receipt).unwrap_or_default() + "\n";
                            let mut out = out
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            let _ = out.write_all(line.as_bytes());
                            let _ = out.flush();
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("append failed: {e}");
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            return;
                        }
                    }
                }
            });
        }
    });
    let total = args.count * args.threads;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "appended {total} entries in {secs:.3}s ({:.0}/s); head size {}",
        total as f64 / secs,
        ledger.head().size
    );
    if failed.load(std::sync::atomic::Ordering::Relaxed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
