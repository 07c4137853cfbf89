//! `GET /metrics` of a real server under concurrent load, parsed with a
//! Prometheus text-format parser: every histogram's buckets are
//! cumulative in every scrape, and the counts equal the requests made, per
//! route and outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use prometheus_parse::{HistogramCount, Scrape, Value};
use serde_json::json;

use common::server::{start, TestServer};

const CLIENTS: usize = 6;
const EXECUTED: usize = 20;
const REPLAYED: usize = 4;
const REJECTED: usize = 3;
const HEALTH: usize = 2;
const UNKNOWN_PATHS: usize = 1;
const MCP_CALLS: usize = 2;

fn scrape(server: &TestServer) -> Scrape {
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200, "{text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text")
}

fn labels_match(sample: &prometheus_parse::Sample, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
}

/// The buckets of histogram `name` with `labels`.
fn buckets<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> &'a [HistogramCount] {
    scrape
        .samples
        .iter()
        .find_map(|s| match &s.value {
            Value::Histogram(b) if s.metric == name && labels_match(s, labels) => {
                Some(b.as_slice())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no histogram {name} {labels:?}"))
}

/// The value of the plain sample `name` with `labels` (a histogram's
/// `_count` and `_sum` parse as untyped samples).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find_map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)
                if s.metric == name && labels_match(s, labels) =>
            {
                Some(v)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// Every histogram's buckets rise with `le` and end at `+Inf` with its
/// `_count`; returns how many histograms were checked.
fn assert_cumulative(scrape: &Scrape) -> usize {
    let mut checked = 0;
    for sample in &scrape.samples {
        let Value::Histogram(buckets) = &sample.value else {
            continue;
        };
        let mut sorted = buckets.clone();
        sorted.sort_by(|a, b| a.less_than.total_cmp(&b.less_than));
        for pair in sorted.windows(2) {
            assert!(
                pair[0].count <= pair[1].count,
                "{} {:?}: bucket le={} has {} > le={} has {}",
                sample.metric,
                sample.labels,
                pair[0].less_than,
                pair[0].count,
                pair[1].less_than,
                pair[1].count
            );
        }
        let last = sorted.last().expect("buckets");
        assert!(last.less_than.is_infinite());
        let labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let count = value(scrape, &format!("{}_count", sample.metric), &labels);
        assert!(
            (last.count - count).abs() < f64::EPSILON,
            "{} {:?}: +Inf {} != _count {count}",
            sample.metric,
            sample.labels,
            last.count
        );
        checked += 1;
    }
    checked
}

fn one_client(server: &TestServer, client: usize) {
    for i in 0..EXECUTED {
        let (status, body) = server.execute(
            &json!({"action": "echo", "payload": {"i": i}, "nonce": format!("c{client}-{i}")}),
        );
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..REPLAYED {
        let (status, body) = server.execute(
            &json!({"action": "echo", "payload": {"i": 0}, "nonce": format!("c{client}-0")}),
        );
        assert_eq!((status, body["outcome"].as_str()), (200, Some("replayed")));
    }
    for i in 0..REJECTED {
        let (status, body) = server.execute(
            &json!({"action": "no_such_action", "payload": {}, "nonce": format!("r{client}-{i}")}),
        );
        assert_eq!((status, body["outcome"].as_str()), (400, Some("rejected")));
    }
    for _ in 0..HEALTH {
        assert_eq!(server.get("/health").0, 200);
    }
    for i in 0..MCP_CALLS {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"i": i},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "dev.openexec/nonce": format!("m{client}-{i}"),
        }}});
        let response = common::server::agent()
            .post(&server.url("/mcp"))
            .set("Accept", "application/json, text/event-stream")
            .set("MCP-Protocol-Version", "2026-07-28")
            .set("Mcp-Method", "tools/call")
            .set("Mcp-Name", "echo")
            .send_json(call)
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for _ in 0..UNKNOWN_PATHS {
        assert_eq!(server.get(&format!("/no/such/path/{client}")).0, 404);
    }
}

#[test]
fn histograms_stay_cumulative_under_load_and_count_every_request_by_route_and_outcome() {
    let server = start(&[]);
    let done = std::sync::atomic::AtomicBool::new(false);
    let scrapes_during_load = std::thread::scope(|s| {
        let scraper = s.spawn(|| {
            let mut scrapes = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(assert_cumulative(&scrape(&server)) > 0);
                scrapes += 1;
            }
            scrapes
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let server = &server;
                s.spawn(move || one_client(server, c))
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        scraper.join().unwrap()
    });
    assert!(scrapes_during_load > 0);

    let last = scrape(&server);
    assert_cumulative(&last);
    let http = "openexec_http_request_duration_seconds_count";
    let count = |route, outcome| value(&last, http, &[("route", route), ("outcome", outcome)]);
    let per = |n: usize| (CLIENTS * n) as f64;
    assert_eq!(count("/execute", "executed"), per(EXECUTED));
    assert_eq!(count("/execute", "replayed"), per(REPLAYED));
    assert_eq!(count("/execute", "rejected"), per(REJECTED));
    assert_eq!(count("/health", "2xx"), per(HEALTH));
    assert_eq!(count("other", "4xx"), per(UNKNOWN_PATHS));
    assert_eq!(count("/mcp", "executed"), per(MCP_CALLS));
    // This scrape is counted once it is answered: the ones before it.
    assert_eq!(count("/metrics", "2xx"), scrapes_during_load as f64);
    let buckets = buckets(
        &last,
        "openexec_http_request_duration_seconds",
        &[("route", "/execute"), ("outcome", "executed")],
    );
    assert!(buckets.iter().any(|b| b.less_than == 0.0005));

    // Every recorded attempt is an entry of a committed batch, and waited
    // for the writer once.
    let entries = per(EXECUTED + REPLAYED + REJECTED + MCP_CALLS);
    assert_eq!(
        value(&last, "openexec_batch_size_entries_sum", &[]),
        entries
    );
    let batches = value(&last, "openexec_batch_size_entries_count", &[]);
    assert!(batches > 0.0);
    assert_eq!(batches, value(&last, "openexec_batches_total", &[]));
    assert_eq!(
        value(&last, "openexec_batch_write_seconds_count", &[]),
        batches
    );
    assert_eq!(
        value(&last, "openexec_writer_wait_seconds_count", &[]),
        entries
    );
    // `echo` has no effects: it runs before its nonce is claimed, so a
    // replay runs it too (and drops the result).
    assert_eq!(
        value(
            &last,
            "openexec_handler_duration_seconds_count",
            &[("action", "echo")]
        ),
        per(EXECUTED + REPLAYED + MCP_CALLS)
    );
    // Every batch syncs entries.bin once.
    assert_eq!(
        value(
            &last,
            "openexec_fdatasync_seconds_count",
            &[("file", "entries")]
        ),
        batches
    );
    assert!(buckets_of_every_file_are_present(&last));
    assert_eq!(value(&last, "openexec_ready", &[]), 1.0);
    // The counters keep their names.
    assert_eq!(
        value(
            &last,
            "openexec_attempts_total",
            &[("outcome", "executed"), ("reason", "ok")]
        ),
        per(EXECUTED + MCP_CALLS)
    );
}

fn buckets_of_every_file_are_present(scrape: &Scrape) -> bool {
    ["entries", "journal", "ring", "sled", "key_table"]
        .iter()
        .all(|file| !buckets(scrape, "openexec_fdatasync_seconds", &[("file", file)]).is_empty())
}
