//! `openexec serve`: read the configuration, refuse a bad one with one
//! clear line, open the ledger, record interrupted attempts, serve, and on
//! SIGTERM drain queued appends before exiting.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgAction, Args};

use super::signals::StopSignals;
use crate::action::Registry;
use crate::auth::{Authenticator, TokenStore};
use crate::core::approval::{ApprovalPolicy, ApproverKey, MAX_ARTIFACT_FIELD_BYTES};
use crate::core::cosignature::WitnessVerifier;
use crate::core::request::Limits;
use crate::exec::{Boundary, Mode, Policy};
use crate::http::AppState;
use crate::ledger::{Ledger, LedgerConfig, DEFAULT_ORIGIN};

/// Largest allowed `--max-body-bytes`. An attempt's stored content holds
/// its payload and its result (for `echo`, the payload again), and the
/// store refuses content over `store::MAX_VALUE_LEN` (200 KiB, also the
/// largest frame it decompresses); within 64 KiB content stays near
/// 130 KiB. (Content is kept in its entry's `entries.bin` record, not in
/// sled, where values this large would also risk sled's unsynced blob
/// files.)
const MAX_BODY_BYTES_LIMIT: usize = 64 * 1024;

/// The data directory of the embedded store that `url` names: `sled://PATH`
/// or a plain path (anything without a `scheme://`); `None` for another
/// scheme or an empty path.
pub(super) fn embedded_data_dir(url: &str) -> Option<PathBuf> {
    let path = match url.split_once("://") {
        Some(("sled", path)) => path,
        Some(_) => return None,
        None => url,
    };
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Arguments of `openexec serve`; every one also an environment variable.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// `demo` (no approvals needed) or `clawshield` (every action needs an approval).
    #[arg(long, env = "OPENEXEC_MODE", default_value = "demo")]
    pub mode: String,
    /// Trusted approver public key(s): PEM text (several PEM blocks for rotation) or a path to a PEM file.
    #[arg(long = "approver-key", env = "CLAWSHIELD_PUBLIC_KEY")]
    pub approver_key: Option<String>,
    /// Tenant this service runs for; approvals must name it.
    #[arg(long, env = "CLAWSHIELD_TENANT_ID")]
    pub tenant: Option<String>,
    /// Comma-separated allow-list of actions (unset: every registered action).
    #[arg(long, env = "OPENEXEC_ALLOWED_ACTIONS")]
    pub allowed_actions: Option<String>,
    /// Browser origins (`scheme://host[:port]`, comma-separated) whose pages may call `POST /mcp`, besides loopback ones; a request with any other `Origin` is refused 403.
    #[arg(
        long = "mcp-allowed-origins",
        env = "OPENEXEC_MCP_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub mcp_allowed_origins: Vec<String>,
    /// Storage: `sled://PATH` or a path (unset: ./openexec-data), or
    /// `postgres://user@host:port/db`: the log lives in that database, and
    /// every node pointed at it (with the same `--log-key` and `--origin`)
    /// serves the same log; ./openexec-data then keeps the key file's
    /// default place and the principals only.
    #[arg(long, env = "OPENEXEC_DB_URL")]
    pub db_url: Option<String>,
    /// Listen address.
    #[arg(long, env = "OPENEXEC_BIND", default_value = "127.0.0.1:5000")]
    pub bind: String,
    /// Allow binding to a non-loopback address without TLS and principals. Not needed with `--tls-cert` and at least one principal (`openexec token create`); without TLS, requests, bearer tokens and content cross the network in cleartext; without principals anyone who reaches the port may execute.
    #[arg(long, env = "OPENEXEC_ALLOW_PUBLIC_BIND")]
    pub allow_public_bind: bool,
    /// PEM file of the server's TLS certificate chain (leaf first): serve HTTPS. Needs `--tls-key`.
    #[arg(long, env = "OPENEXEC_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the server's TLS private key.
    #[arg(long, env = "OPENEXEC_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM file of the CA(s) that sign client certificates: clients may present one (optional; tokens still work), and a verified one authenticates the principal bound to it (`openexec token bind-cert`).
    #[arg(long, env = "OPENEXEC_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Log origin (checkpoint first line and key name).
    #[arg(long, env = "OPENEXEC_ORIGIN", default_value = DEFAULT_ORIGIN)]
    pub origin: String,
    /// Log signing key file (created on first start, mode 0600). Default: DATA/log.key.
    #[arg(long, env = "OPENEXEC_LOG_KEY")]
    pub log_key: Option<PathBuf>,
    /// File holding the last checkpoint this log signed, kept outside the
    /// data directory to detect a rolled-back data directory at start.
    /// Default: `<data dir>.checkpoint`.
    #[arg(long, env = "OPENEXEC_CHECKPOINT_MEMO")]
    pub checkpoint_memo: Option<PathBuf>,
    /// Keep cleartext payloads and results beside the entries of attempts
    /// that ran a handler (needed to replay results).
    #[arg(long, env = "OPENEXEC_STORE_CONTENT", default_value_t = true, action = ArgAction::Set)]
    pub store_content: bool,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "OPENEXEC_MAX_BODY_BYTES", default_value_t = 65536)]
    pub max_body_bytes: usize,
    /// Longest approval lifetime accepted, in seconds.
    #[arg(
        long,
        env = "OPENEXEC_APPROVAL_MAX_LIFETIME_SECS",
        default_value_t = 3600
    )]
    pub approval_max_lifetime_secs: i64,
    /// Allowed clock skew with approvers, in seconds.
    #[arg(long, env = "OPENEXEC_CLOCK_SKEW_SECS", default_value_t = 30)]
    pub clock_skew_secs: i64,
    /// Rejected and replayed attempts recorded per client (peer IPv4
    /// address or IPv6 /64) per second; past it, they are answered 429 and
    /// not recorded. 0 disables the limit.
    #[arg(long, env = "OPENEXEC_REJECT_RATE", default_value_t = 20.0)]
    pub reject_rate: f64,
    /// Burst of rejected and replayed attempts per client before the rate applies.
    #[arg(long, env = "OPENEXEC_REJECT_BURST", default_value_t = 200)]
    pub reject_burst: u32,
    /// Rejected and replayed attempts recorded per second from all clients
    /// together; past it, they are answered 429 and not recorded. 0
    /// disables the limit.
    #[arg(long, env = "OPENEXEC_REJECT_GLOBAL_RATE", default_value_t = 50.0)]
    pub reject_global_rate: f64,
    /// Burst of rejected and replayed attempts from all clients together.
    #[arg(long, env = "OPENEXEC_REJECT_GLOBAL_BURST", default_value_t = 500)]
    pub reject_global_burst: u32,
    /// HTTP worker threads (default: number of cores).
    #[arg(long, env = "OPENEXEC_WORKERS")]
    pub workers: Option<usize>,
    /// sled cache size in MiB.
    #[arg(long, env = "OPENEXEC_CACHE_MB", default_value_t = 64)]
    pub cache_mb: u64,
    /// Witness keys whose cosignatures this log accepts (C2SP vkeys with
    /// signature type 0x04, comma-separated; the flag may repeat).
    #[arg(
        long = "witness-key",
        env = "OPENEXEC_WITNESS_KEYS",
        value_delimiter = ','
    )]
    pub witness_keys: Vec<String>,
    /// Least milliseconds between two advances of the checkpoint published
    /// at `GET /ledger/checkpoint`, so that witnesses polling at different
    /// moments cosign the same checkpoint (0: always the latest).
    #[arg(long, env = "OPENEXEC_PUBLISH_INTERVAL_MS", default_value_t = 1000)]
    pub publish_interval_ms: u64,
    /// Unix socket (created mode 0600) serving the operator's admin API
    /// (`POST /admin/redact`, used by `openexec redact`); never on the public listener. Unset: no admin API.
    #[arg(long, env = "OPENEXEC_ADMIN_SOCKET")]
    pub admin_socket: Option<PathBuf>,
    /// Log format and traces (`cli::telemetry`).
    #[command(flatten)]
    pub telemetry: super::telemetry::TelemetryArgs,
}

/// A validated configuration.
pub struct ServeConfig {
    ledger: LedgerConfig,
    policy: Policy,
    bind: SocketAddr,
    workers: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether a non-loopback bind may go ahead without principals.
    allow_public_bind: bool,
    /// Browser origins `/mcp` admits besides the loopback ones.
    mcp_origins: crate::http::AllowedOrigins,
    /// Where the admin socket is bound, if anywhere.
    admin_socket: Option<PathBuf>,
}

impl ServeArgs {
    /// Validates everything up front; the error is one line for the operator.
    pub fn validate(&self) -> Result<ServeConfig, String> {
        let mode = match self.mode.as_str() {
            "demo" => Mode::Demo,
            "clawshield" => Mode::Clawshield,
            other => {
                return Err(format!(
                    "Unknown mode {other:?} in OPENEXEC_MODE (expected \"demo\" or \"clawshield\")"
                ))
            }
        };
        let keys = match non_empty(self.approver_key.as_deref()) {
            Some(text) => ApproverKey::parse_pem_list(&read_pem(text)?)
                .map_err(|e| format!("CLAWSHIELD_PUBLIC_KEY: {e}"))?,
            None => Vec::new(),
        };
        if mode == Mode::Clawshield && keys.is_empty() {
            return Err("CLAWSHIELD_PUBLIC_KEY not configured (clawshield mode needs at least one approver key)".into());
        }
        if self.max_body_bytes > MAX_BODY_BYTES_LIMIT {
            return Err(format!(
                "OPENEXEC_MAX_BODY_BYTES {} exceeds {MAX_BODY_BYTES_LIMIT}: larger bodies could make an attempt's stored content exceed the store's 200 KiB value limit",
                self.max_body_bytes
            ));
        }
        if non_empty(self.tenant.as_deref()).is_some_and(|t| t.len() > MAX_ARTIFACT_FIELD_BYTES) {
            return Err(format!(
                "CLAWSHIELD_TENANT_ID is longer than {MAX_ARTIFACT_FIELD_BYTES} bytes, the longest tenant an approval may name"
            ));
        }
        for (name, rate) in [
            ("OPENEXEC_REJECT_RATE", self.reject_rate),
            ("OPENEXEC_REJECT_GLOBAL_RATE", self.reject_global_rate),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(format!(
                    "{name} {rate} is not a rate: give a number of attempts per second, 0 for no limit"
                ));
            }
        }
        let bind: SocketAddr = self
            .bind
            .parse()
            .map_err(|e| format!("OPENEXEC_BIND {:?}: {e}", self.bind))?;
        let tls = self.tls()?;
        if !bind.ip().is_loopback() && !self.allow_public_bind && tls.is_none() {
            return Err(format!(
                "refusing to bind to non-loopback address {bind} without TLS: requests, bearer tokens and results would cross the network in cleartext; set --tls-cert and --tls-key (OPENEXEC_TLS_CERT, OPENEXEC_TLS_KEY) and create principals (openexec token create), or set --allow-public-bind (OPENEXEC_ALLOW_PUBLIC_BIND=true) behind a TLS-terminating proxy"
            ));
        }
        let postgres = non_empty(self.db_url.as_deref())
            .filter(|url| crate::pg::is_postgres_url(url))
            .map(str::to_owned);
        let data_dir = match non_empty(self.db_url.as_deref()) {
            None => PathBuf::from("openexec-data"),
            Some(_) if postgres.is_some() => PathBuf::from("openexec-data"),
            Some(url) => embedded_data_dir(url).ok_or_else(|| {
                format!("unsupported OPENEXEC_DB_URL {url:?} (only sled://PATH, a path or postgres://…)")
            })?,
        };
        let allow_list = non_empty(self.allowed_actions.as_deref()).map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        let policy = Policy {
            mode,
            approvals: ApprovalPolicy {
                keys,
                tenant: non_empty(self.tenant.as_deref()).map(str::to_owned),
                max_lifetime: allowance(
                    "OPENEXEC_APPROVAL_MAX_LIFETIME_SECS",
                    self.approval_max_lifetime_secs,
                )?,
                skew: allowance("OPENEXEC_CLOCK_SKEW_SECS", self.clock_skew_secs)?,
            },
            allow_list,
            store_content: self.store_content,
            reject_rate: self.reject_rate.max(0.0),
            reject_burst: self.reject_burst,
            reject_global_rate: self.reject_global_rate.max(0.0),
            reject_global_burst: self.reject_global_burst,
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                ..Limits::default()
            },
        };
        let mut ledger = LedgerConfig::new(data_dir);
        ledger.origin.clone_from(&self.origin);
        ledger.key_path.clone_from(&self.log_key);
        ledger.checkpoint_memo.clone_from(&self.checkpoint_memo);
        ledger.cache_bytes = self.cache_mb << 20;
        ledger.witness_keys = self
            .witness_keys
            .iter()
            .filter_map(|k| non_empty(Some(k)))
            .map(|k| {
                WitnessVerifier::from_vkey(k)
                    .map_err(|e| format!("OPENEXEC_WITNESS_KEYS: {k:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        ledger.publish_interval = std::time::Duration::from_millis(self.publish_interval_ms);
        ledger.db_url = postgres;
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
        Ok(ServeConfig {
            ledger,
            policy,
            bind,
            workers,
            tls,
            allow_public_bind: self.allow_public_bind,
            mcp_origins: crate::http::AllowedOrigins::parse(&self.mcp_allowed_origins)?,
            admin_socket: self
                .admin_socket
                .clone()
                .filter(|p| !p.as_os_str().is_empty()),
        })
    }

    /// The TLS configuration, if `--tls-cert` is set; one line naming the
    /// file at fault otherwise.
    fn tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        let set = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        let (cert, key, client_ca) = (
            set(&self.tls_cert),
            set(&self.tls_key),
            set(&self.tls_client_ca),
        );
        match (cert, key) {
            (None, None) if client_ca.is_some() => {
                Err("OPENEXEC_TLS_CLIENT_CA needs OPENEXEC_TLS_CERT and OPENEXEC_TLS_KEY".into())
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err("OPENEXEC_TLS_CERT needs OPENEXEC_TLS_KEY".into()),
            (None, Some(_)) => Err("OPENEXEC_TLS_KEY needs OPENEXEC_TLS_CERT".into()),
            (Some(cert), Some(key)) => {
                let files = crate::http::tls::TlsFiles {
                    cert: &cert,
                    key: &key,
                    client_ca: client_ca.as_deref(),
                };
                crate::http::tls::server_config(&files)
                    .map(Some)
                    .map_err(|e| format!("TLS: {e}"))
            }
        }
    }
}

/// A lifetime or skew allowance: non-negative seconds that chrono holds.
fn allowance(name: &str, seconds: i64) -> Result<chrono::Duration, String> {
    chrono::Duration::try_seconds(seconds)
        .filter(|_| (0..=MAX_ALLOWANCE_SECS).contains(&seconds))
        .ok_or_else(|| {
            format!("{name} {seconds}: must be a number of seconds from 0 to {MAX_ALLOWANCE_SECS}")
        })
}

/// The largest clock skew or approval lifetime `serve` accepts: 100 years.
/// Any approval time stays within the years 0000–9999 that approvals may
/// name only while these allowances are far smaller than that range.
const MAX_ALLOWANCE_SECS: i64 = 100 * 366 * 86_400;

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// PEM text itself, or a path to a file holding it.
fn read_pem(value: &str) -> Result<String, String> {
    if value.contains("-----BEGIN") {
        return Ok(value.replace("\\n", "\n"));
    }
    std::fs::read_to_string(value).map_err(|e| {
        format!("CLAWSHIELD_PUBLIC_KEY: not PEM text, and reading it as a file failed: {e}")
    })
}

/// Runs the service until SIGINT/SIGTERM.
#[must_use]
pub fn run(args: &ServeArgs, registry: Registry) -> ExitCode {
    // Kept to the end: dropping it sends the last spans.
    let _telemetry = match super::telemetry::init(&args.telemetry) {
        Ok(t) => t,
        Err(line) => {
            eprintln!("openexec: {line}");
            return ExitCode::FAILURE;
        }
    };
    let config = match args.validate() {
        Ok(c) => c,
        Err(line) => {
            eprintln!("openexec: {line}");
            return ExitCode::FAILURE;
        }
    };
    match serve(config, registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("openexec: {line}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: ServeConfig, registry: Registry) -> Result<(), String> {
    let tokens = TokenStore::open(&config.ledger.data_dir).map_err(|e| e.to_string())?;
    let auth = Authenticator::new(Arc::new(tokens));
    if !config.bind.ip().is_loopback() && !config.allow_public_bind && !auth.is_enabled() {
        return Err(format!(
            "refusing to bind to non-loopback address {} without authentication: no principals are configured, so anyone who reaches the port may execute; create one (openexec token create), or set --allow-public-bind (OPENEXEC_ALLOW_PUBLIC_BIND=true) to do it anyway",
            config.bind
        ));
    }
    let ledger = Arc::new(Ledger::open(&config.ledger).map_err(|e| e.to_string())?);
    let boundary = Arc::new(
        Boundary::new(ledger.clone(), registry, config.policy)
            .map_err(|e| format!("starting the handler runtime: {e}"))?,
    );
    let interrupted = boundary
        .recover_interrupted()
        .map_err(|e| format!("recording interrupted attempts: {e}"))?;
    let recovering = ledger
        .is_shared()
        .then(|| super::recover::spawn(boundary.clone()))
        .transpose()
        .map_err(|e| format!("starting the recovery thread: {e}"))?;
    let listener =
        TcpListener::bind(config.bind).map_err(|e| format!("binding {}: {e}", config.bind))?;
    let mut admin = config
        .admin_socket
        .as_deref()
        .map(crate::http::admin::AdminSocket::bind)
        .transpose()
        .map_err(|e| format!("binding the admin socket: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let system = actix_web::rt::System::new();
    // Listen before announcing: a stop sent right after the line is kept.
    let stop = system
        .block_on(async { StopSignals::listen() })
        .map_err(|e| format!("listening for stop signals: {e}"))?;
    tracing::info!(%addr, origin = ledger.verifier().name(), vkey = %ledger.verifier().vkey(), size = ledger.head().size, interrupted, authentication = if auth.is_enabled() { "on" } else { "off" }, tls = config.tls.is_some(), registry = %boundary.registry().fingerprint(), handlers = boundary.registry().names().collect::<Vec<_>>().join(","), "openexec listening");
    // One line on stdout that scripts and tests can wait for.
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("openexec listening on {scheme}://{addr}");
    super::sd_notify::notify(&format!("READY=1\nSTATUS=listening on {scheme}://{addr}"));
    let state = Arc::new(AppState::new(boundary, auth).with_mcp_origins(config.mcp_origins));
    let served = system.block_on(async {
        let admin_server = match admin.as_mut() {
            Some(socket) => {
                tracing::info!(path = %socket.path().display(), "admin socket listening");
                Some(socket.serve(ledger.clone())?)
            }
            None => None,
        };
        let admin_handle = admin_server.as_ref().map(actix_web::dev::Server::handle);
        if let Some(server) = admin_server {
            actix_web::rt::spawn(server);
        }
        let served =
            crate::http::run_tls(listener, state, config.workers, config.tls, stop.received())
                .await;
        if let Some(handle) = admin_handle {
            handle.stop(true).await;
        }
        served
    });
    drop(admin);
    drop(recovering);
    ledger.shutdown();
    tracing::info!(
        size = ledger.head().size,
        "openexec stopped; queued appends committed"
    );
    served.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn allowances_are_whole_seconds_up_to_a_hundred_years() {
        use super::{allowance, MAX_ALLOWANCE_SECS};
        assert_eq!(allowance("S", 0), Ok(chrono::Duration::zero()));
        assert!(allowance("S", MAX_ALLOWANCE_SECS).is_ok());
        for refused in [-1, MAX_ALLOWANCE_SECS + 1, i64::MAX] {
            let e = allowance("S", refused).unwrap_err();
            assert!(e.contains("from 0 to 3162240000"), "{e}");
        }
    }

    #[test]
    fn db_urls_name_the_embedded_store_by_sled_url_or_path() {
        use super::embedded_data_dir as dir;
        use std::path::PathBuf;
        assert_eq!(
            dir("sled:///var/lib/oe"),
            Some(PathBuf::from("/var/lib/oe"))
        );
        assert_eq!(dir("sled://rel/dir"), Some(PathBuf::from("rel/dir")));
        assert_eq!(dir("/var/lib/oe"), Some(PathBuf::from("/var/lib/oe")));
        assert_eq!(dir("data"), Some(PathBuf::from("data")));
        for refused in ["sled://", "sqlite:///openexec.db", "postgres://u@h/db", ""] {
            assert_eq!(dir(refused), None, "{refused}");
        }
    }
}
