//! `openexec bench`: a load generator for a running service. Each of
//! `--connections` threads sends `POST /execute` with a unique nonce, back
//! to back, for `--duration` seconds; the command prints executions per
//! second, latency percentiles and errors, and exits 1 on any non-2xx
//! answer or transport error. Each thread keeps its connection alive
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
    /// Action to execute (`echo` by default; its payload is `{"msg": "bench"}`).
    #[arg(long, default_value = "echo")]
    pub action: String,
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
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let run_id = format!("{}-{}", std::process::id(), started.elapsed().as_nanos());
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.connections.max(1))
            .map(|t| {
                let (url, action, run_id) = (&args.url, &args.action, &run_id);
                scope.spawn(move || load(url, action, &format!("bench-{run_id}-{t}"), deadline))
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
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((latencies.len() as f64) * p).ceil() as usize;
        latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1e3
    };
    println!(
        "connections={} executions={} seconds={elapsed:.1} executions_per_second={:.0} p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} errors={errors}",
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
fn load(url: &str, action: &str, prefix: &str, deadline: Instant) -> Tally {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let endpoint = format!("{url}/execute");
    let mut tally = Tally::default();
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        i += 1;
        let body = json!({ "action": action, "payload": { "msg": "bench" }, "nonce": format!("{prefix}-{i}") });
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

fn note_error(tally: &mut Tally, what: String) {
    tally.errors += 1;
    tally.first_error.get_or_insert(what);
}
