//! Redactions on a ledger in a temporary directory: refusals, the answer
//! to a second redaction, and what an open settles after a crash.

use serde_json::json;

use super::*;
use crate::core::hash::Hash;
use crate::core::receipt::{Content, Salts};
use crate::ledger::LedgerConfig;

fn open(dir: &std::path::Path) -> Ledger {
    let mut config = LedgerConfig::new(dir);
    config.checkpoint_memo = Some(dir.join("memo.checkpoint"));
    Ledger::open(&config).unwrap()
}

fn draft(n: u64, outcome: Outcome) -> EntryDraft {
    EntryDraft {
        exec_id: format!("exec-{n}"),
        tenant: "t".into(),
        action: "echo".into(),
        nonce: format!("nonce-{n}"),
        request_hash: Hash::sha256(format!("request {n}").as_bytes()),
        payload_commitment: Hash::sha256(format!("payload {n}").as_bytes()),
        result_commitment: Some(Hash::sha256(format!("result {n}").as_bytes())),
        approval: ApprovalSummary::none(),
        outcome,
        reason: if outcome == Outcome::Executed {
            "ok"
        } else {
            "approval_expired"
        }
        .into(),
        replay_of: None,
        effects: None,
        registry: None,
        principal: None,
    }
}

fn content(n: u64) -> Content {
    Content {
        payload: json!({"secret": format!("payload-{n}")}),
        result: Some(json!({"secret": format!("result-{n}")})),
        salts: Salts {
            payload: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            result: None,
        },
    }
}

/// Entries 0 to 2 executed with content, entry 3 rejected without.
fn filled(ledger: &Ledger) {
    for n in 0..3 {
        ledger
            .append(draft(n, Outcome::Executed), Some(content(n)))
            .unwrap();
    }
    ledger.append(draft(3, Outcome::Rejected), None).unwrap();
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn redactions_are_refused_clearly_and_answered_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    filled(&ledger);
    let redact = |target, reason| block_on(ledger.redact(target, reason));
    assert!(matches!(
        redact(RedactTarget::Index(1), "nope"),
        Err(RedactError::BadReason(_))
    ));
    assert!(matches!(
        redact(RedactTarget::Index(9), "legal"),
        Err(RedactError::NotFound(_))
    ));
    assert!(matches!(
        redact(RedactTarget::ExecId("exec-9".into()), "legal"),
        Err(RedactError::NotFound(_))
    ));
    assert!(matches!(
        redact(RedactTarget::Index(3), "legal"),
        Err(RedactError::NoContent {
            index: 3,
            outcome: Outcome::Rejected
        })
    ));
    assert_eq!(ledger.head().size, 4, "refusals record nothing");
    let done = redact(RedactTarget::ExecId("exec-1".into()), "personal_data").unwrap();
    assert_eq!((done.redacted_index, done.redaction_index), (1, 4));
    assert!(!done.already_redacted);
    assert_eq!(ledger.content(1).unwrap(), None);
    assert!(ledger.content(0).unwrap().is_some());
    let again = redact(RedactTarget::Index(1), "other").unwrap();
    assert!(again.already_redacted);
    assert_eq!(
        (again.redaction_index, again.reason.as_str()),
        (4, "personal_data")
    );
    assert_eq!(ledger.head().size, 5, "nothing recorded again");
    assert!(matches!(
        redact(RedactTarget::Index(4), "legal"),
        Err(RedactError::NoContent {
            index: 4,
            outcome: Outcome::Redacted
        })
    ));
    let (bytes, _) = ledger.entry(4).unwrap();
    let entry = Entry::from_canonical_bytes(&bytes).unwrap();
    assert_eq!(entry.redacts.map(|r| r.index), Some(1));
    assert_eq!(entry.exec_id, "exec-1");
}

#[test]
fn an_open_completes_a_committed_redaction_and_forgets_an_unrecorded_one() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    filled(&ledger);
    let store = ledger.store().unwrap().clone();
    // Entry 0: its redaction entry committed, then a crash before the erase.
    store.begin_redaction(0, "legal").unwrap().unwrap();
    let (bytes, _) = ledger.entry(0).unwrap();
    let entry = Entry::from_canonical_bytes(&bytes).unwrap();
    let appended = ledger
        .append(
            redaction_draft(&entry, leaf_hash(&bytes), RedactionReason::Legal),
            None,
        )
        .unwrap();
    // Entry 2: begun, its entry never queued.
    store.begin_redaction(2, "other").unwrap().unwrap();
    ledger.shutdown();
    drop((ledger, store));
    let ledger = open(dir.path());
    assert_eq!(ledger.content(0).unwrap(), None, "erased at open");
    assert_eq!(
        ledger.redaction_of(0).unwrap().map(|r| r.index),
        Some(appended.entry.index)
    );
    assert!(
        ledger.content(2).unwrap().is_some(),
        "nothing recorded, nothing erased"
    );
    assert_eq!(ledger.redaction_of(2).unwrap(), None);
    assert_eq!(
        ledger.store().unwrap().redaction(2).unwrap(),
        None,
        "forgotten"
    );
}

#[test]
fn a_retired_log_refuses_a_redaction_before_any_record() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    filled(&ledger);
    let successor = crate::core::rotation::Successor {
        origin: "next/log".into(),
        vkey: "next/log+00000000+AAAA".into(),
    };
    let end = crate::core::rotation::log_end_draft(&successor, "end".into()).unwrap();
    ledger.append(end, None).unwrap();
    ledger.shutdown();
    drop(ledger);
    let ledger = open(dir.path());
    assert!(ledger.is_retired());
    let result = block_on(ledger.redact(RedactTarget::Index(1), "legal"));
    assert!(
        matches!(result, Err(RedactError::Retired { index: 1 })),
        "{result:?}"
    );
    let store = ledger.store().unwrap();
    assert!(store.redactions().unwrap().is_empty());
    assert!(ledger.content(1).unwrap().is_some(), "content kept");
}

#[test]
fn a_redaction_whose_caller_goes_away_is_finished_all_the_same() {
    use futures_util::FutureExt as _;
    let dir = tempfile::tempdir().unwrap();
    let ledger = std::sync::Arc::new(open(dir.path()));
    filled(&ledger);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Polled once, then dropped: the caller is gone.
        let redaction = ledger
            .clone()
            .redact_detached(RedactTarget::Index(1), "legal".into());
        assert!(redaction.now_or_never().is_none());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while ledger.redaction_of(1).unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "never finished");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let store = ledger.store().unwrap();
    assert_eq!(store.content(1).unwrap(), None, "erased on disk");
    assert!(store.content(0).unwrap().is_some());
}

#[test]
fn no_salts_or_content_are_served_while_a_redaction_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    filled(&ledger);
    assert!(ledger.receipt(0).unwrap().salts.is_some());
    // Begun, its entry not yet committed: the content is still on disk.
    let store = ledger.store().unwrap().clone();
    store.begin_redaction(0, "legal").unwrap().unwrap();
    assert!(store.content(0).unwrap().is_some());
    assert_eq!(ledger.content(0).unwrap(), None);
    assert_eq!(ledger.receipt(0).unwrap().salts, None);
    assert!(ledger.receipt(1).unwrap().salts.is_some());
}

#[test]
fn the_audit_finds_content_erased_without_a_redaction() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    filled(&ledger);
    // Entries 0 and 1 redacted; entry 2 keeps its content (which, made
    // up here, does not open its commitments: the audit's first finding).
    for index in [0, 1] {
        block_on(ledger.redact(RedactTarget::Index(index), "legal")).unwrap();
    }
    let store = ledger.store().unwrap().clone();
    let audit = |store: &Store| {
        crate::ledger::audit::audit(
            store,
            crate::ledger::audit::AuditOptions {
                rebuild: false,
                progress_every: 0,
            },
        )
        .unwrap()
        .first_bad
    };
    let before = audit(&store).unwrap();
    assert!(
        matches!(before.at, crate::ledger::audit::Location::Entry(2))
            && before.problem.contains("does not open"),
        "the redactions' erases are clean: {before:?}"
    );
    assert!(store.content_erased(0).unwrap());
    assert!(!store.content_erased(3).unwrap(), "entry 3 never kept any");
    assert!(store.erase_content(2).unwrap());
    let finding = audit(&store).unwrap();
    assert!(matches!(
        finding.at,
        crate::ledger::audit::Location::Entry(2)
    ));
    assert!(
        finding.problem.contains("no redaction of it is recorded"),
        "{}",
        finding.problem
    );
}
