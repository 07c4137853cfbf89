//! The log's private key file: created once with mode 0600, then only read.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rand_core::{OsRng, RngCore as _};

use super::LedgerError;
use crate::core::signing::LogSigner;

/// Loads the key at `path`, or creates it for `origin` if it does not exist.
/// A key made for another origin is refused.
pub fn load_or_create(path: &Path, origin: &str) -> Result<LogSigner, LedgerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let signer = LogSigner::from_private_key_text(&text)
                .map_err(|e| LedgerError::Config(format!("log key {}: {e}", path.display())))?;
            if signer.name() != origin {
                return Err(LedgerError::Config(format!(
                    "log key {} is for origin {:?}, but the configured origin is {:?}",
                    path.display(),
                    signer.name(),
                    origin
                )));
            }
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path, origin),
        Err(e) => Err(LedgerError::Config(format!(
            "reading log key {}: {e}",
            path.display()
        ))),
    }
}

/// Generates a new key for `origin` and writes it to `path` (mode 0600,
/// never overwriting an existing file).
pub fn create(path: &Path, origin: &str) -> Result<LogSigner, LedgerError> {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let signer = LogSigner::from_seed(origin, seed)
        .map_err(|e| LedgerError::Config(format!("origin: {e}")))?;
    write_secret(path, signer.private_key_text().as_bytes())
        .map_err(|e| LedgerError::Config(format!("creating log key {}: {e}", path.display())))?;
    Ok(signer)
}

/// Writes a new secret file: mode 0600, never overwriting an existing file,
/// synced together with its directory before returning.
pub fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
