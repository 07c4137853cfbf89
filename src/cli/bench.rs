//! `openexec bench`: a load generator for a running service. Each of
//! `--connections` connections sends `POST /execute` with a unique nonce,
//! back to back, for `--duration` seconds; the command prints executions
//! per second, latency percentiles and errors, and exits 1 on any non-2xx
//! answer or transport error. With `--mode receipts` the connections
//! instead fetch `GET /receipts/{exec_id}` for exec_ids sampled at random
//! over the whole ledger (read through `GET /ledger/entries/{index}`
//! first), so the proofs are of old and new entries alike. With
//! `--approver-key` each execution carries a v2 approval of exactly that
//! request, minted by the load generator, to load a `clawshield` service.
//!
//! The connections are tasks on a small tokio runtime (one thread per
//! core), each a kept-alive HTTP/1.1 connection that sends one request,
//! reads the whole answer (head parsed by `httparse`, body by its
//! `Content-Length`) and sends the next: the load generator shares the
//! machine with the server, and a thread per connection costs 41 µs of
//! CPU per request, four times this, mostly switching between 64 threads.
//! A connection the server closes is opened again; the request it carried
//! counts as an error (it is not sent twice: a `POST /execute` may have
//! run).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use serde_json::json;

use crate::core::approval::mint_v2;
use crate::core::canonical::request_hash;

/// Arguments of `openexec bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    pub url: String,
    /// Concurrent connections (tasks on a runtime with a thread per core).
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
    /// An approver's private key (PKCS#8 PEM file, as `approver-keygen`
    /// writes): each execution then carries its own v2 approval, minted
    /// here, for a service in `clawshield` mode that trusts the key.
    #[arg(long = "approver-key")]
    pub approver_key: Option<std::path::PathBuf>,
    /// The tenant the approvals name (the service's `CLAWSHIELD_TENANT_ID`,
    /// or the tenant of `--token`'s principal).
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// A bearer token (`openexec token create`) sent with every request,
    /// for a service with authentication on.
    #[arg(long, env = "OPENEXEC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
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
    let target = match Target::parse(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --url: {e}");
            return ExitCode::FAILURE;
        }
    };
    let approver = match args.approver_key.as_deref().map(read_approver).transpose() {
        Ok(key) => key.map(|key| Approver {
            key: std::sync::Arc::new(key),
            tenant: args.tenant.clone(),
        }),
        Err(e) => {
            eprintln!("error: --approver-key: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the load generator's runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let run_id = format!("{}-{}", std::process::id(), started.elapsed().as_nanos());
    let tallies: Vec<Tally> = runtime.block_on(async {
        let exec_ids = std::sync::Arc::new(exec_ids);
        let tasks: Vec<_> = (0..args.connections.max(1))
            .map(|t| {
                let request = Request::new(
                    args,
                    &target,
                    format!("bench-{run_id}-{t}"),
                    &exec_ids,
                    approver.clone(),
                    t,
                );
                tokio::spawn(drive(target.address.clone(), request, deadline))
            })
            .collect();
        let mut tallies = Vec::with_capacity(tasks.len());
        for task in tasks {
            if let Ok(tally) = task.await {
                tallies.push(tally);
            }
        }
        tallies
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

/// Where the service listens.
struct Target {
    /// `host:port`, to connect to.
    address: String,
    /// The `Host` header.
    host: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        if url.scheme() != "http" {
            return Err(format!("{url}: only http:// is supported"));
        }
        let host = url.host_str().ok_or("no host")?.to_owned();
        let port = url.port_or_known_default().ok_or("no port")?;
        Ok(Self {
            address: format!("{host}:{port}"),
            host: format!("{host}:{port}"),
        })
    }
}

/// What one connection sends: each request's bytes, made on demand.
enum Request {
    /// `POST /execute` with the nonce `{prefix}-{i}` for the i-th request.
    Execute {
        head: String,
        action: String,
        payload: serde_json::Value,
        prefix: String,
        approver: Option<Approver>,
    },
    /// `GET /receipts/{id}`, walking the sample from this connection's offset.
    Receipt {
        host: String,
        /// `Authorization: Bearer …\r\n`, or nothing.
        authorization: String,
        exec_ids: std::sync::Arc<Vec<String>>,
        offset: usize,
    },
}

impl Request {
    fn new(
        args: &BenchArgs,
        target: &Target,
        prefix: String,
        exec_ids: &std::sync::Arc<Vec<String>>,
        approver: Option<Approver>,
        connection: usize,
    ) -> Self {
        let authorization = args
            .token
            .as_deref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        match args.mode {
            Mode::Execute => Self::Execute {
                head: format!(
                    "POST /execute HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{authorization}",
                    target.host
                ),
                action: args.action.clone(),
                payload: args.payload.clone(),
                prefix,
                approver,
            },
            Mode::Receipts => Self::Receipt {
                host: target.host.clone(),
                authorization,
                exec_ids: std::sync::Arc::clone(exec_ids),
                offset: connection,
            },
        }
    }

    /// The bytes of the i-th request.
    fn bytes(&self, i: u64) -> Vec<u8> {
        match self {
            Self::Execute {
                head,
                action,
                payload,
                prefix,
                approver,
            } => {
                let nonce = format!("{prefix}-{i}");
                let mut body = json!({ "action": action, "payload": payload, "nonce": nonce });
                if let Some(approver) = approver {
                    body["approval_artifact"] = approver.approve(action, payload, &nonce);
                }
                let body = body.to_string();
                format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
            }
            Self::Receipt {
                host,
                authorization,
                exec_ids,
                offset,
            } => {
                let at = (offset + usize::try_from(i).unwrap_or(0)) % exec_ids.len().max(1);
                let id = exec_ids.get(at).map_or("", String::as_str);
                format!("GET /receipts/{id} HTTP/1.1\r\nHost: {host}\r\n{authorization}\r\n")
                    .into_bytes()
            }
        }
    }
}

/// Mints a v2 approval for each execution (`--approver-key`).
#[derive(Clone)]
struct Approver {
    key: std::sync::Arc<ed25519_dalek::SigningKey>,
    tenant: String,
}

impl Approver {
    /// A v2 approval of exactly this request, with the nonce as its id;
    /// `null` (which the service refuses, counted as an error) if the
    /// request cannot be hashed.
    fn approve(&self, action: &str, payload: &serde_json::Value, nonce: &str) -> serde_json::Value {
        let minted = request_hash(action, payload, nonce, &self.tenant)
            .map_err(|e| e.to_string())
            .and_then(|rh| {
                mint_v2(
                    &self.key,
                    nonce,
                    &self.tenant,
                    &rh,
                    chrono::Utc::now(),
                    chrono::Duration::seconds(APPROVAL_TTL_SECS),
                )
                .map_err(|e| e.to_string())
            });
        minted
            .ok()
            .and_then(|a| serde_json::to_value(a).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Lifetime of the approvals `bench` mints, each just before it is sent:
/// ample for any queue, and within the service's default maximum (1 h).
const APPROVAL_TTL_SECS: i64 = 300;

fn read_approver(path: &std::path::Path) -> Result<ed25519_dalek::SigningKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| format!("not an Ed25519 PKCS#8 private key: {e}"))
}

/// One connection's loop: request after request until the deadline.
async fn drive(address: String, request: Request, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<tokio::net::TcpStream> = None;
    let mut buffer = Vec::with_capacity(16 * 1024);
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        i += 1;
        let stream = match &mut connection {
            Some(s) => s,
            None => match tokio::net::TcpStream::connect(&address).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    connection.insert(s)
                }
                Err(e) => {
                    note_error(&mut tally, format!("connecting to {address}: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match exchange(stream, &request.bytes(i), &mut buffer).await {
            Ok(status) if (200..300).contains(&status) => tally.latencies.push(sent.elapsed()),
            Ok(status) => note_error(
                &mut tally,
                format!("status {status}: {}", String::from_utf8_lossy(&buffer)),
            ),
            Err(e) => {
                connection = None;
                note_error(&mut tally, e);
            }
        }
    }
    tally
}

/// Sends one request and reads its whole answer; returns the status, with
/// the body left in `buffer`.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> Result<u16, String> {
    use tokio::io::AsyncWriteExt as _;

    stream
        .write_all(request)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    buffer.clear();
    let (status, body_at, length) = loop {
        read_more(stream, buffer, "before answering").await?;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buffer) {
            Ok(httparse::Status::Complete(body_at)) => {
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or("an answer without Content-Length")?;
                break (response.code.unwrap_or(0), body_at, length);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("unreadable answer: {e}")),
        }
    };
    while buffer.len() < body_at + length {
        read_more(stream, buffer, "mid-answer").await?;
    }
    buffer.drain(..body_at);
    Ok(status)
}

/// Reads what has arrived onto `buffer`; a closed connection is an error
/// (`when` says at which point of the answer).
async fn read_more(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
    when: &str,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt as _;

    match stream.read_buf(buffer).await {
        Ok(0) => Err(format!("the server closed the connection {when}")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading: {e}")),
    }
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

fn note_error(tally: &mut Tally, what: String) {
    tally.errors += 1;
    tally.first_error.get_or_insert(what);
}
