//! `openexec approve` and `openexec approver-keygen`: for operators who are
//! their own approver, and for tests. Mints v1 (ClawShield) or v2 artifacts
//! from an Ed25519 PKCS#8 PEM private key.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use serde_json::Value;

use crate::core::approval::{mint_v1, mint_v2};
use crate::core::canonical::request_hash;

/// Artifact kind.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// ClawShield v1 (binds action and payload, not the nonce).
    V1,
    /// OpenExec v2 (binds action, payload, nonce and tenant).
    V2,
}

/// Arguments of `openexec approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Approver private key (PKCS#8 PEM file).
    #[arg(long)]
    pub key: PathBuf,
    /// Artifact kind.
    #[arg(long, value_enum, default_value = "v2")]
    pub kind: Kind,
    /// Action to approve.
    #[arg(long)]
    pub action: String,
    /// Payload JSON object.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// Nonce (v2 binds it; v1 ignores it).
    #[arg(long, default_value = "")]
    pub nonce: String,
    /// Tenant.
    #[arg(long, env = "CLAWSHIELD_TENANT_ID", default_value = "")]
    pub tenant: String,
    /// Approval id (default: a random UUID).
    #[arg(long)]
    pub approval_id: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 300, allow_hyphen_values = true)]
    pub ttl: i64,
}

/// Arguments of `openexec approver-keygen`.
#[derive(Debug, Args)]
pub struct ApproverKeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, mode 0600, never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

/// Prints the artifact JSON.
#[must_use]
pub fn approve(args: &ApproveArgs) -> ExitCode {
    match mint(args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn mint(args: &ApproveArgs) -> Result<String, String> {
    let pem = std::fs::read_to_string(&args.key)
        .map_err(|e| format!("reading {}: {e}", args.key.display()))?;
    let key = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| format!("not an Ed25519 PKCS#8 private key: {e}"))?;
    let payload: Value =
        serde_json::from_str(&args.payload).map_err(|e| format!("--payload: {e}"))?;
    // The service refuses such a payload (422 inexact_number): no approval
    // for it could ever be used.
    check_payload_numbers(&args.payload)?;
    let id = args
        .approval_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let now = chrono::Utc::now();
    let ttl = chrono::Duration::try_seconds(args.ttl)
        .filter(|ttl| now.checked_add_signed(*ttl).is_some())
        .ok_or_else(|| {
            format!(
                "--ttl {}: the expiry would be outside the times chrono holds",
                args.ttl
            )
        })?;
    let artifact = match args.kind {
        Kind::V1 => serde_json::to_string(&mint_v1(
            &key,
            &id,
            &args.tenant,
            &args.action,
            &payload,
            now,
            ttl,
        )),
        Kind::V2 => {
            let rh = request_hash(&args.action, &payload, &args.nonce, &args.tenant)
                .map_err(|e| e.to_string())?;
            serde_json::to_string(
                &mint_v2(&key, &id, &args.tenant, &rh, now, ttl).map_err(|e| e.to_string())?,
            )
        }
    };
    artifact.map_err(|e| e.to_string())
}

fn check_payload_numbers(payload: &str) -> Result<(), String> {
    crate::core::ijson::check_numbers(payload.as_bytes()).map_err(|e| format!("--payload: {e}"))
}

/// Writes a new approver private key and prints its public key PEM.
#[must_use]
pub fn approver_keygen(args: &ApproverKeygenArgs) -> ExitCode {
    let key = SigningKey::generate(&mut OsRng);
    // PKCS#8 v1 (RFC 5208, no embedded public key): the form OpenSSL and
    // Python's `cryptography` load, unlike dalek's default v2 encoding.
    let v1 = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let written = v1
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| e.to_string())
        .and_then(|pem| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&args.out)
                .map_err(|e| e.to_string())?;
            f.write_all(pem.as_bytes()).map_err(|e| e.to_string())
        })
        .and_then(|()| {
            key.verifying_key()
                .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| e.to_string())
        });
    match written {
        Ok(public) => {
            print!("{public}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
