//! Logs and traces of a real server: with `--log-format json` every stderr
//! line is a JSON object, and each recorded attempt has a line whose fields
//! are the attempt's exec_id, nonce, tenant, principal, action and outcome;
//! with an OTLP endpoint, an in-test OTLP/HTTP receiver gets each request's
//! span, in the trace its `traceparent` names, with its steps as children.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use chrono::Utc;
use openexec::auth::{self, NewToken, Role};
use serde_json::{json, Value};

use common::server::{self, start_in};

/// The JSON lines a stopped server wrote on stderr.
fn json_lines(data: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(data.with_extension("stderr.log")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

#[test]
fn json_logs_carry_each_attempts_exec_id_nonce_tenant_principal_action_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (token, record) = auth::store::create(
        &data,
        NewToken {
            role: Role::Agent,
            tenant: "acme".into(),
            actions: None,
            label: None,
            expires_at: None,
        },
        Utc::now(),
    )
    .unwrap();
    let mut s = start_in(
        &data,
        &[
            ("RUST_LOG", "info,openexec::request=debug"),
            ("OPENEXEC_LOG_FORMAT", "json"),
        ],
    )
    .unwrap();
    let mut answers = Vec::new();
    for (action, nonce) in [("echo", "log-nonce-1"), ("no_such_action", "log-nonce-2")] {
        let response = server::send(
            server::agent()
                .post(&s.url("/execute"))
                .set("Authorization", &format!("Bearer {}", token.reveal())),
            Some(&json!({"action": action, "payload": {"n": 1}, "nonce": nonce})),
        );
        let body: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
        answers.push((action, nonce, body));
    }
    s.stop();

    let lines = json_lines(&data);
    assert!(lines
        .iter()
        .any(|l| l["message"] == "openexec listening" && l["level"] == "INFO"));
    for (action, nonce, body) in answers {
        let exec_id = body["exec_id"].as_str().expect("exec_id");
        let line = lines
            .iter()
            .find(|l| l["exec_id"] == exec_id)
            .unwrap_or_else(|| panic!("no line for {exec_id} in {lines:#?}"));
        assert_eq!(line["target"], "openexec::request");
        assert_eq!(line["nonce"], nonce);
        assert_eq!(line["tenant"], "acme");
        assert_eq!(line["principal"], record.id.to_string());
        assert_eq!(line["action"], action);
        assert_eq!(line["outcome"], body["outcome"]);
        assert!(line["timestamp"].is_string());
    }
}

/// A span as the test reads it.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
}

/// An OTLP/HTTP receiver on a loopback port: accepts `POST /v1/traces`
/// (protobuf), answers 200, keeps every span.
struct Receiver {
    url: String,
    spans: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = std::sync::Arc::clone(&spans);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let kept = std::sync::Arc::clone(&kept);
                std::thread::spawn(move || serve_otlp(stream, &kept));
            }
        });
        Self { url, spans }
    }

    /// The spans of trace `trace_id`, once `wanted` of them have come (at
    /// most 20 s).
    fn trace(&self, trace_id: &str, wanted: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let spans: Vec<Received> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            if spans.len() >= wanted || std::time::Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// One connection's requests (kept alive), each decoded into `kept`.
fn serve_otlp(stream: std::net::TcpStream, kept: &std::sync::Mutex<Vec<Received>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    use std::io::{BufRead as _, Read as _, Write as _};

    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("POST /v1/traces "), "{head}");
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        let spans = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| Received {
                trace_id: hex::encode(&s.trace_id),
                span_id: hex::encode(&s.span_id),
                parent: hex::encode(&s.parent_span_id),
                name: s.name.clone(),
            });
        kept.lock().unwrap().extend(spans);
        writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    }
}

/// The one span named `name` among `spans`.
fn named<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "{name} in {spans:#?}");
    found[0]
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";
const MCP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[test]
fn a_request_with_a_traceparent_is_one_span_of_that_trace_with_its_steps_as_children() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = start_in(
        &data,
        &[
            ("OPENEXEC_OTLP_ENDPOINT", receiver.url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .unwrap();
    // `counter` has effects: its nonce is reserved before it runs.
    let response = server::send(
        server::agent()
            .post(&s.url("/execute"))
            .set("traceparent", &format!("00-{TRACE}-{CALLER_SPAN}-01")),
        Some(&json!({"action": "counter", "payload": {"name": "t"}, "nonce": "trace-1"})),
    );
    assert_eq!(response.status(), 200);
    // Over MCP, the parent comes from `_meta.traceparent`.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": "echo", "arguments": {"x": 1},
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "dev.openexec/nonce": "trace-2",
        "traceparent": format!("00-{MCP_TRACE}-{CALLER_SPAN}-01"),
    }}});
    let response = server::agent()
        .post(&s.url("/mcp"))
        .set("Accept", "application/json, text/event-stream")
        .set("MCP-Protocol-Version", "2026-07-28")
        .set("Mcp-Method", "tools/call")
        .set("Mcp-Name", "echo")
        .send_json(call)
        .unwrap();
    assert_eq!(response.status(), 200);
    // A request without a traceparent is a trace of its own.
    assert_eq!(s.get("/health").0, 200);

    let spans = receiver.trace(TRACE, 6);
    let request = named(&spans, "request");
    assert_eq!(request.parent, CALLER_SPAN);
    for step in ["reservation", "handler", "record", "batch", "sync"] {
        assert_eq!(named(&spans, step).parent, request.span_id, "{step}");
    }
    let spans = receiver.trace(MCP_TRACE, 5);
    let request = named(&spans, "request");
    assert_eq!(request.parent, CALLER_SPAN);
    for step in ["handler", "record", "batch", "sync"] {
        assert_eq!(named(&spans, step).parent, request.span_id, "{step}");
    }
    s.stop();
}
