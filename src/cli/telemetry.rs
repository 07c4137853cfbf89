//! Logging on stderr, as text or as JSON lines (`--log-format`), with the
//! filter of `RUST_LOG` (default `info`).
//!
//! Each recorded attempt is one line at `debug` under the target
//! `openexec::request` (`RUST_LOG=info,openexec::request=debug`), with
//! the fields `exec_id`, `nonce`, `tenant`, `principal` (when
//! authenticated), `action`, `outcome`, `reason`, `status` and `index`.

use clap::{Args, ValueEnum};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

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
}

impl TelemetryArgs {
    /// The options of a command that takes none: from the environment.
    #[must_use]
    pub fn from_env() -> Self {
        let log_format = std::env::var("OPENEXEC_LOG_FORMAT")
            .ok()
            .and_then(|v| LogFormat::from_str(&v, true).ok())
            .unwrap_or_default();
        Self { log_format }
    }
}

/// Installs the process's subscriber (a second call changes nothing).
pub fn init(args: &TelemetryArgs) {
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
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .try_init();
}
