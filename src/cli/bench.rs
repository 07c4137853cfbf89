//! `openexec bench`: a load generator for a running service. Each of
//! `--connections` threads sends `POST /execute` with a unique nonce, back
//! to back, for `--duration` seconds; the command prints executions per
//! second, latency percentiles and errors, and exits 1 on any non-2xx
//! answer or transport error. With `--mode receipts` the threads instead
//! fetch `GET /receipts/{exec_id}` for exec_ids sampled at random over the
//! whole ledger (read through `GET /ledger/entries/{index}` first), so the
//! proofs are of old and new entries alike. Each thread keeps its connection alive
//! between requests and reconnects cleanly when the server closes it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

/// Arguments of `openexec bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    pub url: String,
    /// Concurrent connections (one thread each).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Action to execute (`echo` by default).
    #[arg(long, default_value = "echo")]
    pub action: String,
    /// The payload sent with each execution (JSON), e.g. `{"name": "b"}`
    /// for `counter`, a handler with effects.
    #[arg(long, default_value = r#"{"msg": "bench"}"#, value_parser = parse_payload)]
    pub payload: serde_json::Value,
    /// What to load: `execute` (POST /execute) or `receipts` (GET /receipts/{exec_id}).
    #[arg(long, value_enum, default_value_t = Mode::Execute)]
    pub mode: Mode,
    /// In `receipts` mode: how many entries to sample (their exec_ids are fetched in turn).
    #[arg(long, default_value_t = 1000)]
    pub sample: usize,
}

/// What `openexec bench` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `POST /execute` with a unique nonce per request.
    Execute,
    /// `GET /receipts/{exec_id}` over exec_ids sampled from the ledger.
    Receipts,
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs the load and prints one summary line.
#[must_use]
pub fn run(args: &BenchArgs) -> ExitCode {
    let exec_ids = match args.mode {
        Mode::Execute => Vec::new(),
        Mode::Receipts => match sample_exec_ids(&args.url, args.sample) {
            Ok(ids) => ids,
            Err(e) => {
                eprintln!("error: sampling exec_ids: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let run_id = format!("{}-{}", std::process::id(), started.elapsed().as_nanos());
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.connections.max(1))
            .map(|t| {
                let (url, run_id, ids) = (&args.url, &run_id, &exec_ids);
                let request = (args.action.as_str(), &args.payload);
                scope.spawn(move || match args.mode {
                    Mode::Execute => load(url, request, &format!("bench-{run_id}-{t}"), deadline),
                    Mode::Receipts => fetch_receipts(url, ids, t, deadline),
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let label = match args.mode {
        Mode::Execute => "executions",
        Mode::Receipts => "receipts",
    };
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((latencies.len() as f64) * p).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1e3
    };
    println!(
        "connections={} {label}={} seconds={elapsed:.1} {label}_per_second={:.0} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} errors={errors}",
        args.connections,
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(0.999),
    );
    if let Some(first) = tallies.iter().find_map(|t| t.first_error.clone()) {
        eprintln!("first error: {first}");
    }
    if errors == 0 && !latencies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One connection's loop: a fresh nonce per request until the deadline.
fn load(
    url: &str,
    (action, payload): (&str, &serde_json::Value),
    prefix: &str,
    deadline: Instant,
) -> Tally {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let endpoint = format!("{url}/execute");
    let mut tally = Tally::default();
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        i += 1;
        let body =
            json!({ "action": action, "payload": payload, "nonce": format!("{prefix}-{i}") });
        let sent = Instant::now();
        match agent.post(&endpoint).send_json(body) {
            Ok(r) if (200..300).contains(&r.status()) => {
                // Read the whole body (the receipt) as a client would.
                let _ = r.into_string();
                tally.latencies.push(sent.elapsed());
            }
            Ok(r) => note_error(&mut tally, format!("status {}", r.status())),
            Err(ureq::Error::Status(code, r)) => {
                note_error(
                    &mut tally,
                    format!("status {code}: {}", r.into_string().unwrap_or_default()),
                );
            }
            Err(e) => note_error(&mut tally, e.to_string()),
        }
    }
    tally
}

/// `--payload`: JSON text.
fn parse_payload(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

/// `sample` exec_ids of entries at random indices of the current ledger.
fn sample_exec_ids(url: &str, sample: usize) -> Result<Vec<String>, String> {
    use rand_core::RngCore as _;

    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let note = agent
        .get(&format!("{url}/ledger/checkpoint"))
        .call()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|e| e.to_string())?;
    let size: u64 = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or("checkpoint without a size")?;
    if size == 0 {
        return Err("the ledger is empty".into());
    }
    (0..sample.max(1))
        .map(|_| {
            let index = rand_core::OsRng.next_u64() % size;
            let entry: serde_json::Value = agent
                .get(&format!("{url}/ledger/entries/{index}"))
                .call()
                .map_err(|e| e.to_string())?
                .into_json()
                .map_err(|e| e.to_string())?;
            let bytes = entry["entry"].as_str().ok_or("entry without bytes")?;
            let parsed: serde_json::Value =
                serde_json::from_str(bytes).map_err(|e| e.to_string())?;
            parsed["exec_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("entry {index} without an exec_id"))
        })
        .collect()
}

/// One connection's loop in `receipts` mode: thread `t` walks the sample
/// from its own offset until the deadline.
fn fetch_receipts(url: &str, exec_ids: &[String], t: usize, deadline: Instant) -> Tally {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut tally = Tally::default();
    for id in exec_ids.iter().cycle().skip(t) {
        if Instant::now() >= deadline {
            break;
        }
        let sent = Instant::now();
        match agent.get(&format!("{url}/receipts/{id}")).call() {
            Ok(r) => {
                let _ = r.into_string();
                tally.latencies.push(sent.elapsed());
            }
            Err(e) => note_error(&mut tally, e.to_string()),
        }
    }
    tally
}

fn note_error(tally: &mut Tally, what: String) {
    tally.errors += 1;
    tally.first_error.get_or_insert(what);
}
