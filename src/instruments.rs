//! The histograms of `GET /metrics`: request duration, batch size, batch
//! write and `fdatasync` time, handler run time, time waiting for the
//! writer.
//!
//! They are process-wide (one Prometheus target is one process), so that
//! the store's `fdatasync` calls and the ledger's writer threads record
//! without a handle threaded through every layer. Every series a request
//! records into is resolved once — per route and outcome on first use, per
//! action when the boundary starts — and recording is then three atomic
//! additions: no label strings are built and nothing is allocated per
//! request. The counters and gauges that belong to one boundary stay in
//! [`crate::exec::metrics`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus::core::Collector as _;
use prometheus::{Histogram, HistogramOpts, HistogramVec};

/// Request and handler durations: half a millisecond to ten seconds.
const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Disk and writer times: a tenth of a millisecond to two and a half
/// seconds (a disk slower than that is already an incident).
const DISK_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Entries per batch: powers of two up to the largest batch (1024).
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A file whose `fdatasync` is timed: the label `file` of
/// `openexec_fdatasync_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncedFile {
    /// `entries.bin`, the entry records (every batch).
    Entries,
    /// The reservation journal (every cycle with reservations or counters).
    Journal,
    /// The commit ring (every batch that commits there).
    Ring,
    /// sled's log (a batch that commits through sled).
    Sled,
    /// A key table (`nonces.tab`, `exec_ids.tab`, …), synced behind the
    /// writer.
    KeyTable,
}

impl SyncedFile {
    /// Every file, in label order.
    pub const ALL: [Self; 5] = [
        Self::Entries,
        Self::Journal,
        Self::Ring,
        Self::Sled,
        Self::KeyTable,
    ];

    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Entries => "entries",
            Self::Journal => "journal",
            Self::Ring => "ring",
            Self::Sled => "sled",
            Self::KeyTable => "key_table",
        }
    }
}

/// Every histogram, registered once.
pub struct Instruments {
    /// `openexec_http_request_duration_seconds{route, outcome}`.
    pub http_requests: HistogramVec,
    /// `openexec_handler_duration_seconds{action}`.
    pub handlers: HistogramVec,
    batch_entries: Histogram,
    batch_write: Histogram,
    fdatasync: [Histogram; SyncedFile::ALL.len()],
    fdatasync_vec: HistogramVec,
    writer_wait: Histogram,
}

static INSTRUMENTS: LazyLock<Result<Instruments, prometheus::Error>> =
    LazyLock::new(Instruments::register);

/// The process's histograms; `None` only if their definitions are invalid,
/// which the tests rule out (recording is then skipped, never a panic).
#[must_use]
pub fn get() -> Option<&'static Instruments> {
    INSTRUMENTS.as_ref().ok()
}

fn opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(buckets.to_vec())
}

impl Instruments {
    fn register() -> Result<Self, prometheus::Error> {
        let fdatasync_vec = HistogramVec::new(
            opts(
                "openexec_fdatasync_seconds",
                "Time of one fdatasync, by file.",
                &DISK_BUCKETS,
            ),
            &["file"],
        )?;
        let fdatasync = SyncedFile::ALL.map(|f| fdatasync_vec.with_label_values(&[f.as_str()]));
        Ok(Self {
            http_requests: HistogramVec::new(
                opts(
                    "openexec_http_request_duration_seconds",
                    "Time from a request's arrival to its response, by route pattern and outcome (the recorded outcome on /execute and /mcp tools/call, else the status class).",
                    &REQUEST_BUCKETS,
                ),
                &["route", "outcome"],
            )?,
            handlers: HistogramVec::new(
                opts(
                    "openexec_handler_duration_seconds",
                    "Time a handler ran, by action (to its result, failure or deadline).",
                    &REQUEST_BUCKETS,
                ),
                &["action"],
            )?,
            batch_entries: Histogram::with_opts(opts(
                "openexec_batch_size_entries",
                "Entries per committed batch.",
                &BATCH_BUCKETS,
            ))?,
            batch_write: Histogram::with_opts(opts(
                "openexec_batch_write_seconds",
                "Time the writer's cycle took to sign, lay out and write one batch's records, entries.bin's fdatasync included (before the commit's sync).",
                &DISK_BUCKETS,
            ))?,
            fdatasync,
            fdatasync_vec,
            writer_wait: Histogram::with_opts(opts(
                "openexec_writer_wait_seconds",
                "Time an attempt waited for the writer to make its entry durable.",
                &DISK_BUCKETS,
            ))?,
        })
    }

    /// The exposition text of every histogram.
    pub fn render(&self, out: &mut String) {
        let mut families = Vec::new();
        families.extend(self.http_requests.collect());
        families.extend(self.handlers.collect());
        families.extend(self.batch_entries.collect());
        families.extend(self.batch_write.collect());
        families.extend(self.fdatasync_vec.collect());
        families.extend(self.writer_wait.collect());
        // A vector with no series yet (no request made) is a family the
        // encoder refuses.
        families.retain(|f| !f.get_metric().is_empty());
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&families, out) {
            tracing::warn!(error = %e, "could not render the histograms");
        }
    }
}

/// Whether traces are exported (`--otlp-endpoint`): off, no span is
/// made at all.
static TRACES: AtomicBool = AtomicBool::new(false);

/// Turns span making on, once the exporter is installed.
pub fn enable_traces() {
    TRACES.store(true, Ordering::Relaxed);
}

/// Whether spans are made.
#[must_use]
pub fn traces_on() -> bool {
    TRACES.load(Ordering::Relaxed)
}

/// A span for one step of a request (a child of the current span), or
/// the disabled span when traces are off: instrumenting a future with it
/// then costs a branch.
#[must_use]
pub fn step(name: &'static str) -> tracing::Span {
    if traces_on() {
        tracing::info_span!("step", otel.name = name)
    } else {
        tracing::Span::none()
    }
}

/// The current span, to hand to the writer's threads with a request's
/// work (traces on); else the disabled span.
#[must_use]
pub fn current_span() -> tracing::Span {
    if traces_on() {
        tracing::Span::current()
    } else {
        tracing::Span::none()
    }
}

/// The enabled spans among `spans` (none, without allocating, when traces
/// are off).
pub fn carried<'a>(spans: impl Iterator<Item = &'a tracing::Span>) -> Vec<tracing::Span> {
    if !traces_on() {
        return Vec::new();
    }
    spans.filter(|s| !s.is_none()).cloned().collect()
}

/// A writer's step shared by the requests whose spans are `parents`: one
/// child span `name` of each (a span has one parent), open until dropped,
/// with the batch's entry count.
#[must_use]
pub fn children(
    parents: &[tracing::Span],
    name: &'static str,
    entries: usize,
) -> Vec<tracing::Span> {
    parents
        .iter()
        .map(|p| tracing::info_span!(parent: p, "step", otel.name = name, openexec.batch_entries = entries))
        .collect()
}

/// Runs `sync`, one `fdatasync` of `file` (or sled's flush and sync),
/// and records its time.
pub fn timed_sync<T, E>(file: SyncedFile, sync: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let started = Instant::now();
    let synced = sync();
    synced_since(file, started);
    synced
}

/// Records one `fdatasync` of `file` begun at `started`.
pub fn synced_since(file: SyncedFile, started: Instant) {
    if let Some(i) = get() {
        i.fdatasync[file as usize].observe(started.elapsed().as_secs_f64());
    }
}

/// Records the time the writer's cycle took to sign, lay out and write one
/// batch's records (the commit's sync follows on the syncer's thread).
pub fn batch_written(write: Duration) {
    if let Some(i) = get() {
        i.batch_write.observe(write.as_secs_f64());
    }
}

/// Records one committed batch of `entries` entries.
pub fn batch_committed(entries: u64) {
    if let Some(i) = get() {
        // Exact below 2^53 entries.
        #[allow(clippy::cast_precision_loss)]
        i.batch_entries.observe(entries as f64);
    }
}

/// Records the time an attempt waited for its entry to be durable.
pub fn writer_waited(started: Instant) {
    if let Some(i) = get() {
        i.writer_wait.observe(started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_histogram_registers_and_renders_with_its_buckets() {
        let i = get().expect("valid definitions");
        synced_since(SyncedFile::Journal, Instant::now());
        batch_committed(3);
        batch_written(Duration::from_millis(1));
        let mut text = String::new();
        i.render(&mut text);
        assert!(text.contains("openexec_fdatasync_seconds_bucket{file=\"journal\",le=\"0.0001\"}"));
        assert!(text.contains("openexec_batch_size_entries_bucket{le=\"4\"} "));
        assert!(text.contains("# TYPE openexec_batch_write_seconds histogram"));
    }
}
