//! Shared test fixtures: ledgers in temporary directories, sample drafts,
//! and a real server process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants
#![allow(dead_code)]

pub mod admin;
pub mod crash;
pub mod in_process;
pub mod server;
pub mod wire;

use openexec::core::entry::{ApprovalSummary, EntryDraft, Outcome};
use openexec::core::hash::Hash;
use openexec::ledger::{Ledger, LedgerConfig};

/// A draft whose every field depends on `n`.
pub fn draft(n: u64) -> EntryDraft {
    EntryDraft {
        exec_id: format!("exec-{n}"),
        tenant: "tenant-001".into(),
        action: "echo".into(),
        nonce: format!("nonce-{n}"),
        request_hash: Hash::sha256(format!("request {n}").as_bytes()),
        payload_commitment: Hash::sha256(format!("payload {n}").as_bytes()),
        result_commitment: Some(Hash::sha256(format!("result {n}").as_bytes())),
        approval: ApprovalSummary::none(),
        outcome: Outcome::Executed,
        reason: "ok".into(),
        replay_of: None,
        effects: None,
        registry: None,
        principal: None,
    }
}

/// Opens a ledger in `dir` with default settings.
pub fn open(dir: &std::path::Path) -> Ledger {
    let mut config = LedgerConfig::new(dir);
    // Keep the checkpoint memo inside the temporary directory.
    config.checkpoint_memo = Some(dir.join("memo.checkpoint"));
    Ledger::open(&config).expect("open ledger")
}

/// A boundary over a ledger in `dir` with the built-in handlers, for
/// tests that drive the pipeline without HTTP: `mode` and `approvals` as
/// given, content kept, default limits, no rejection rate limits.
pub fn boundary(
    dir: &std::path::Path,
    mode: openexec::exec::Mode,
    approvals: openexec::core::approval::ApprovalPolicy,
) -> openexec::exec::Boundary {
    let registry = openexec::action::Registry::builtin().expect("the built-in registry");
    boundary_with(dir, mode, approvals, registry)
}

/// [`boundary`] with the actions of `registry`.
pub fn boundary_with(
    dir: &std::path::Path,
    mode: openexec::exec::Mode,
    approvals: openexec::core::approval::ApprovalPolicy,
    registry: openexec::action::Registry,
) -> openexec::exec::Boundary {
    let policy = openexec::exec::Policy {
        mode,
        approvals,
        allow_list: None,
        store_content: true,
        limits: openexec::core::request::Limits::default(),
        reject_rate: 0.0,
        reject_burst: 1,
        reject_global_rate: 0.0,
        reject_global_burst: 1,
    };
    openexec::exec::Boundary::new(std::sync::Arc::new(open(dir)), registry, policy)
        .expect("a handler runtime")
}

/// Approvals that trust no key (for demo mode).
pub fn no_approvals() -> openexec::core::approval::ApprovalPolicy {
    openexec::core::approval::ApprovalPolicy {
        keys: vec![],
        tenant: None,
        max_lifetime: chrono::Duration::hours(1),
        skew: chrono::Duration::seconds(30),
    }
}

/// Path of the built `openexec` binary.
pub fn binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_openexec"))
}

/// A full audit (with the rs_merkle rebuild, no progress output): the first
/// problem found, if any.
pub fn full_audit(store: &openexec::store::Store) -> Option<openexec::ledger::audit::AuditFinding> {
    let options = openexec::ledger::audit::AuditOptions {
        rebuild: true,
        progress_every: 0,
    };
    openexec::ledger::audit::audit(store, options)
        .expect("audit runs")
        .first_bad
}

/// Copies a directory tree (the data directory of a stopped server).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
