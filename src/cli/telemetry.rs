//! Logging on stderr, as text or as JSON lines (`--log-format`), with the
//! filter of `RUST_LOG` (default `info`); and, opt-in, traces exported over
//! OTLP/HTTP (`--otlp-endpoint`).
//!
//! Each recorded attempt is one line at `debug` under the target
//! `openexec::request` (`RUST_LOG=info,openexec::request=debug`), with
//! the fields `exec_id`, `nonce`, `tenant`, `principal` (when
//! authenticated), `action`, `outcome`, `reason`, `status` and `index`.
//!
//! Traces are on only with an endpoint: then, and only then, an
//! OpenTelemetry layer is installed and spans are made
//! ([`crate::instruments::traces_on`]). Spans go in batches, from a
//! thread of the SDK's, as protobuf over HTTP through `ureq`; `RUST_LOG`
//! does not filter them. The standard `OTEL_EXPORTER_OTLP_*` variables
//! other than the endpoint (headers, timeout) and `OTEL_BSP_*` apply.

use std::io::Read as _;

use clap::{Args, ValueEnum};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{filter, EnvFilter, Layer as _};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal only).
    #[default]
    Text,
    /// One JSON object per line, the event's fields at its top level, for
    /// log shippers.
    Json,
}

/// Logging options, shared by the commands that run a service.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log lines as `text` or `json` (one object per line, on stderr).
    #[arg(long, env = "OPENEXEC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export traces to this OTLP/HTTP collector (`http://host:4318`;
    /// `/v1/traces` is added unless the URL ends with it). Unset: no
    /// traces.
    #[arg(long, env = "OPENEXEC_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl TelemetryArgs {
    /// The options of a command that takes none: from the environment.
    #[must_use]
    pub fn from_env() -> Self {
        let log_format = std::env::var("OPENEXEC_LOG_FORMAT")
            .ok()
            .and_then(|v| LogFormat::from_str(&v, true).ok())
            .unwrap_or_default();
        Self {
            log_format,
            otlp_endpoint: None,
        }
    }
}

/// The installed telemetry: dropping it sends the spans still queued.
#[must_use = "dropping it ends the export of traces"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("openexec: sending the last traces: {e}");
            }
        }
    }
}

/// Installs the process's subscriber (a second call changes nothing), and
/// the trace exporter when an endpoint is given.
pub fn init(args: &TelemetryArgs) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = match args.log_format {
        LogFormat::Text => {
            // Colours only on a terminal; log files and pipes get plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none();
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
                .boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = args
        .otlp_endpoint
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(tracer_provider)
        .transpose()?;
    // Spans of this crate only, whatever RUST_LOG says; started when their
    // first child is made or they close, not when entered, so that an MCP
    // request's `_meta.traceparent`, read inside its span, can still be
    // its parent.
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("openexec"))
            .with_context_activation(false)
            .with_filter(filter::Targets::new().with_target("openexec", tracing::Level::INFO))
    });
    let installed = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(traces)
        .try_init();
    if installed.is_ok() && provider.is_some() {
        crate::instruments::enable_traces();
    }
    Ok(Telemetry { traces: provider })
}

/// The URL spans are posted to: `endpoint`, with `/v1/traces` added
/// unless it ends with it.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    // The exporter posts through the build's `ureq`, which has no TLS
    // client: an `https://` collector would drop every span unseen.
    if !endpoint.starts_with("http://") {
        return Err(format!(
            "--otlp-endpoint {endpoint:?}: only http:// collectors are supported (send to a local collector or agent that forwards over TLS)"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(UreqClient(
            ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(10))
                .build(),
        ))
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .build()
        .map_err(|e| format!("the OTLP exporter for {endpoint}: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("openexec")
                .build(),
        )
        .build())
}

/// The exporter's HTTP client: `ureq`, blocking, which the SDK's export
/// thread allows (it blocks on each export), instead of a second HTTP
/// stack.
#[derive(Debug)]
struct UreqClient(ureq::Agent);

/// Most bytes of a collector's answer read (it is a short status).
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for UreqClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut call = self
            .0
            .request(parts.method.as_str(), &parts.uri.to_string());
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                call = call.set(name.as_str(), value);
            }
        }
        let answer = match call.send_bytes(&body) {
            Ok(answer) | Err(ureq::Error::Status(_, answer)) => answer,
            Err(e) => return Err(Box::new(e)),
        };
        let status = answer.status();
        let mut bytes = Vec::new();
        answer
            .into_reader()
            .take(MAX_ANSWER_BYTES)
            .read_to_end(&mut bytes)?;
        Ok(http::Response::builder()
            .status(status)
            .body(bytes::Bytes::from(bytes))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn an_endpoint_the_exporter_cannot_reach_is_refused_at_start() {
        for endpoint in ["https://c:4318", "c:4318", "grpc://c:4317"] {
            let refused = tracer_provider(endpoint).err().unwrap();
            assert!(refused.contains("only http://"), "{refused}");
        }
    }
}
