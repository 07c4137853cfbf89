//! `openexec witness`: load or create the witness key, open its state,
//! follow the configured logs and serve `POST /add-checkpoint`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rand_core::{OsRng, RngCore as _};

use super::signals::StopSignals;
use crate::core::cosignature::WitnessSigner;
use crate::core::signing::LogVerifier;
use crate::ledger::keyfile::write_secret;
use crate::witness::follow::{FollowError, Follower, Pulled};
use crate::witness::{Witness, WitnessedLog};

/// Default witness name (its key name) when its key is created.
const DEFAULT_NAME: &str = "openexec-witness";

/// How long one HTTP exchange with a log may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `openexec witness`.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    /// State directory: key (`witness.key`, 0600), cosigned state, evidence.
    #[arg(
        long,
        env = "OPENEXEC_WITNESS_DATA",
        default_value = "openexec-witness"
    )]
    pub data: PathBuf,
    /// Witness name (key name), used when the key is created; must match an existing key.
    #[arg(long, env = "OPENEXEC_WITNESS_NAME")]
    pub name: Option<String>,
    /// A log to follow: its base URL and its verifier key. Repeat for more
    /// logs; give the same key with several URLs to watch mirrors of one log.
    #[arg(long = "log", num_args = 2, value_names = ["URL", "VKEY"])]
    pub log: Vec<String>,
    /// A log accepted through `POST /add-checkpoint` only (its verifier key; repeatable).
    #[arg(long = "accept", value_name = "VKEY")]
    pub accept: Vec<String>,
    /// Listen address for `POST /add-checkpoint` (`off`: pull only).
    #[arg(long, env = "OPENEXEC_WITNESS_BIND", default_value = "127.0.0.1:7380")]
    pub bind: String,
    /// Milliseconds between two pulls of each followed log.
    #[arg(long, env = "OPENEXEC_WITNESS_INTERVAL_MS", default_value_t = 1000)]
    pub interval_ms: u64,
    /// Pull each followed log once and exit: 0 if every round cosigned,
    /// 1 if one failed, 3 if a log misbehaved (evidence kept).
    #[arg(long)]
    pub once: bool,
    /// Create the key if needed, print the witness verifier key, and exit.
    #[arg(long)]
    pub print_key: bool,
}

/// Exit code when a log was caught misbehaving.
const EXIT_MISBEHAVIOUR: u8 = 3;

/// Runs the witness.
#[must_use]
pub fn run(args: &WitnessArgs) -> ExitCode {
    let _telemetry = super::telemetry::init(&super::telemetry::TelemetryArgs::from_env());
    match start(args) {
        Ok(code) => code,
        Err(line) => {
            eprintln!("openexec witness: {line}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: &WitnessArgs) -> Result<ExitCode, String> {
    let signer = load_or_create_key(&args.data, args.name.as_deref())?;
    if args.print_key {
        println!("{}", signer.verifier().vkey());
        return Ok(ExitCode::SUCCESS);
    }
    let logs = parse_logs(&args.log, &args.accept)?;
    if logs.is_empty() {
        return Err("no log configured (--log URL VKEY or --accept VKEY)".into());
    }
    let vkey = signer.verifier().vkey();
    let witness = Arc::new(Witness::open(&args.data, signer, logs).map_err(|e| e.to_string())?);
    tracing::info!(%vkey, data = %args.data.display(), "openexec witness started");
    let followers = followers(&witness);
    if args.once {
        return Ok(run_once(followers));
    }
    let interval = Duration::from_millis(args.interval_ms.max(10));
    for follower in followers {
        std::thread::Builder::new()
            .name("openexec-follow".into())
            .spawn(move || follow_forever(follower, interval))
            .map_err(|e| format!("starting a follower: {e}"))?;
    }
    serve(&witness, &args.bind)?;
    Ok(ExitCode::SUCCESS)
}

/// Serves add-checkpoint until SIGINT/SIGTERM (or parks forever when `off`).
fn serve(witness: &Arc<Witness>, bind: &str) -> Result<(), String> {
    if bind == "off" {
        println!("openexec witness following (no add-checkpoint listener)");
        loop {
            std::thread::park();
        }
    }
    let listener = TcpListener::bind(bind).map_err(|e| format!("binding {bind}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let system = actix_web::rt::System::new();
    // Listen before announcing: a stop sent right after the line is kept.
    let stop = system
        .block_on(async { StopSignals::listen() })
        .map_err(|e| format!("listening for stop signals: {e}"))?;
    // One line on stdout that scripts and tests can wait for.
    println!("openexec witness listening on http://{addr}");
    system
        .block_on(async {
            crate::witness::server::build(witness.clone(), listener, stop.received())?.await
        })
        .map_err(|e| e.to_string())
}

fn followers(witness: &Arc<Witness>) -> Vec<Follower> {
    witness
        .logs()
        .flat_map(|log| {
            log.urls
                .iter()
                .map(|url| Follower::new(witness.clone(), log.clone(), url.clone(), HTTP_TIMEOUT))
        })
        .collect()
}

fn run_once(followers: Vec<Follower>) -> ExitCode {
    let mut worst = 0u8;
    for mut follower in followers {
        match follower.pull_once() {
            Ok(Pulled::Cosigned(size) | Pulled::Unchanged(size)) => {
                println!("cosigned {} at size {size}", follower.url());
            }
            Err(e) => {
                println!("refused {}: {e}", follower.url());
                worst = worst.max(if e.is_misbehaviour() {
                    EXIT_MISBEHAVIOUR
                } else {
                    1
                });
            }
        }
    }
    ExitCode::from(worst)
}

fn follow_forever(mut follower: Follower, interval: Duration) {
    loop {
        match follower.pull_once() {
            Ok(Pulled::Cosigned(size)) => {
                tracing::info!(url = follower.url(), size, "cosigned");
            }
            Ok(Pulled::Unchanged(_)) => {}
            Err(e @ FollowError::Witness(_)) if e.is_misbehaviour() => {
                // Already logged at error level with the evidence path.
                tracing::warn!(url = follower.url(), "not cosigning: {e}");
            }
            Err(e) => tracing::warn!(url = follower.url(), "round failed: {e}"),
        }
        std::thread::sleep(interval);
    }
}

/// `--log URL VKEY` pairs and `--accept VKEY`s, merged by key.
fn parse_logs(pairs: &[String], accept: &[String]) -> Result<Vec<WitnessedLog>, String> {
    let mut by_key: HashMap<String, WitnessedLog> = HashMap::new();
    let mut add = |vkey: &str, url: Option<&str>| -> Result<(), String> {
        let key = LogVerifier::from_vkey(vkey).map_err(|e| format!("log key {vkey:?}: {e}"))?;
        let log = by_key.entry(key.vkey()).or_insert_with(|| WitnessedLog {
            key,
            urls: Vec::new(),
        });
        log.urls.extend(url.map(str::to_owned));
        Ok(())
    };
    for pair in pairs.chunks(2) {
        let [url, vkey] = pair else {
            return Err("--log needs a URL and a verifier key".into());
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "--log {url:?}: not an http(s) URL (give URL first, then the key)"
            ));
        }
        add(vkey, Some(url))?;
    }
    for vkey in accept {
        add(vkey, None)?;
    }
    Ok(by_key.into_values().collect())
}

/// Loads `<data>/witness.key`, or creates it named `name` (default
/// [`DEFAULT_NAME`]). A `name` that differs from an existing key's is refused.
fn load_or_create_key(data: &Path, name: Option<&str>) -> Result<WitnessSigner, String> {
    let path = data.join("witness.key");
    let signer = match std::fs::read_to_string(&path) {
        Ok(text) => WitnessSigner::from_private_key_text(&text)
            .map_err(|e| format!("witness key {}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            let signer = WitnessSigner::from_seed(name.unwrap_or(DEFAULT_NAME), seed)
                .map_err(|e| format!("witness name: {e}"))?;
            write_secret(&path, signer.private_key_text().as_bytes())
                .map_err(|e| format!("creating witness key {}: {e}", path.display()))?;
            signer
        }
        Err(e) => return Err(format!("reading witness key {}: {e}", path.display())),
    };
    match name {
        Some(name) if name != signer.name() => Err(format!(
            "witness key {} is named {:?}, not {name:?}",
            path.display(),
            signer.name()
        )),
        _ => Ok(signer),
    }
}
