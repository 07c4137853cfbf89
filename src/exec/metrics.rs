//! Counters and gauges for `GET /metrics` (Prometheus text format, rendered
//! by hand: they are one boundary's), followed by the process's histograms
//! ([`crate::instruments`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus::Histogram;

use super::Stage;
use crate::core::entry::Outcome;
use crate::ledger::Ledger;

/// Attempts by outcome and reason, and the handler histogram of each
/// registered action.
#[derive(Default)]
pub struct Metrics {
    /// `openexec_handler_duration_seconds{action}`, resolved when the
    /// boundary starts (the registry is sealed): a lookup, no label built,
    /// per run.
    handlers: HashMap<String, Histogram>,
    /// By outcome, then reason: a recorded attempt whose pair was seen
    /// before finds its count by borrowed keys, without an allocation.
    attempts: Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>,
    rate_limited: std::sync::atomic::AtomicU64,
    rate_limited_globally: std::sync::atomic::AtomicU64,
    /// Panics contained on the `/execute` path, by [`Stage`].
    panics: [std::sync::atomic::AtomicU64; Stage::ALL.len()],
}

impl Metrics {
    /// Counters at zero, and a handler histogram for each of `actions`.
    pub fn new<'a>(actions: impl Iterator<Item = &'a str>) -> Self {
        let handlers = crate::instruments::get().map_or_else(HashMap::new, |i| {
            actions
                .map(|a| (a.to_owned(), i.handlers.with_label_values(&[a])))
                .collect()
        });
        Self {
            handlers,
            ..Self::default()
        }
    }

    /// Records one run of `action`'s handler.
    pub fn handler_ran(&self, action: &str, took: Duration) {
        if let Some(h) = self.handlers.get(action) {
            h.observe(took.as_secs_f64());
        }
    }

    /// Counts one recorded attempt.
    pub fn record(&self, outcome: Outcome, reason: &str) {
        let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let reasons = attempts.entry(outcome.as_str()).or_default();
        match reasons.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                reasons.insert(reason.to_owned(), 1);
            }
        }
    }

    /// Counts one rejected or replayed attempt refused by the rate limit
    /// (not recorded).
    pub fn record_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one of those refused by the global limit.
    pub fn record_rate_limited_globally(&self) {
        self.rate_limited_globally.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one panic contained at `stage`.
    pub fn record_panic(&self, stage: Stage) {
        self.panics[stage as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus exposition text.
    pub fn render(&self, ledger: &Ledger) -> String {
        let mut out = String::new();
        out.push_str("# HELP openexec_attempts_total Attempts recorded in the ledger, by outcome and reason.\n");
        out.push_str("# TYPE openexec_attempts_total counter\n");
        let attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        for (outcome, reasons) in attempts.iter() {
            for (reason, n) in reasons {
                let _ = writeln!(
                    out,
                    "openexec_attempts_total{{outcome=\"{outcome}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        drop(attempts);
        out.push_str("# HELP openexec_panics_total Panics contained on the /execute path, by stage (answered 500 internal_panic).\n");
        out.push_str("# TYPE openexec_panics_total counter\n");
        for stage in Stage::ALL {
            let n = self.panics[stage as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "openexec_panics_total{{stage=\"{}\"}} {n}",
                stage.as_str()
            );
        }
        let ready = ledger.is_writable() && ledger.damage().is_none() && ledger.readable();
        out.push_str("# HELP openexec_ready Whether GET /ready answers 200 (1) or 503 (0).\n# TYPE openexec_ready gauge\n");
        let _ = writeln!(out, "openexec_ready {}", u8::from(ready));
        if let Some(lag) = ledger.witness_lag() {
            out.push_str("# HELP openexec_witness_lag_entries Entries appended since the newest checkpoint a trusted witness cosigned.\n# TYPE openexec_witness_lag_entries gauge\n");
            let _ = writeln!(out, "openexec_witness_lag_entries {lag}");
        }
        let stats = ledger.stats();
        let batches = stats.batches.load(Ordering::Relaxed);
        let entries = stats.entries.load(Ordering::Relaxed);
        let nanos = stats.commit_nanos.load(Ordering::Relaxed);
        let gauges = [
            (
                "openexec_ledger_size",
                "Entries in the ledger.",
                "gauge",
                ledger.head().size.to_string(),
            ),
            (
                "openexec_batches_total",
                "Sequencer batches committed.",
                "counter",
                batches.to_string(),
            ),
            (
                "openexec_batch_entries_total",
                "Entries committed through batches.",
                "counter",
                entries.to_string(),
            ),
            (
                "openexec_batch_max_entries",
                "Largest batch so far.",
                "gauge",
                stats.max_batch.load(Ordering::Relaxed).to_string(),
            ),
            (
                "openexec_commit_seconds_total",
                "Time in batch write + fdatasync.",
                "counter",
                format!("{:.6}", nanos as f64 / 1e9),
            ),
            (
                "openexec_store_damaged_reads_total",
                "Reads of stored bytes that failed their check (refused; see the log).",
                "counter",
                ledger.damage_count().to_string(),
            ),
            (
                "openexec_rate_limited_total",
                "Rejected and replayed attempts refused by a rate limit (429, not recorded).",
                "counter",
                self.rate_limited.load(Ordering::Relaxed).to_string(),
            ),
            (
                "openexec_rate_limited_global_total",
                "Of those, the ones refused by the global rate limit.",
                "counter",
                self.rate_limited_globally
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
        ];
        for (name, help, kind, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        if let Some(i) = crate::instruments::get() {
            i.render(&mut out);
        }
        out
    }
}
