//! `openexec migrate`: converts a stopped service's store to this build's
//! store format, offline ([`crate::store::migrate`]). Prints one line and
//! exits 0, or prints why not and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::store::migrate::migrate;
use crate::store::segments::STORE_FORMAT;

/// Arguments of `openexec migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Storage, as given to `serve`: `sled://PATH` or a path (unset:
    /// ./openexec-data).
    #[arg(long, env = "OPENEXEC_DB_URL")]
    pub db_url: Option<String>,
}

/// Converts the store; the service must be stopped (the store's lock is
/// taken, and a running service holds it).
#[must_use]
pub fn run(args: &MigrateArgs) -> ExitCode {
    let data = match data_dir(args.db_url.as_deref()) {
        Ok(data) => data,
        Err(e) => {
            println!("FAILED: {e}");
            return ExitCode::FAILURE;
        }
    };
    match migrate(&data.join("db")) {
        Ok(done) if done.already => {
            println!(
                "OK: {} is in store format {STORE_FORMAT}; nothing to convert",
                data.display()
            );
            ExitCode::SUCCESS
        }
        Ok(done) => {
            println!(
                "OK: {} converted from store format {} to {STORE_FORMAT}: {} \
                 reservations in flight moved to the reservation journal, {} approvals kept \
                 as consumed{}",
                data.display(),
                done.from,
                done.reservations,
                done.approvals_kept,
                if done.ring_promoted {
                    "; the commit ring's newer head copied into sled"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAILED: cannot convert {}: {e}", data.display());
            ExitCode::FAILURE
        }
    }
}

/// The data directory a `--db-url` names (as `serve` reads it).
fn data_dir(url: Option<&str>) -> Result<PathBuf, String> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(PathBuf::from("openexec-data"));
    };
    let path = match url.split_once("://") {
        Some(("sled", path)) => path,
        Some(_) => {
            return Err(format!(
                "unsupported --db-url {url:?} (only sled://PATH or a path)"
            ))
        }
        None => url,
    };
    if path.is_empty() {
        return Err(format!("--db-url {url:?} names no path"));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_urls_name_the_data_directory_as_serve_reads_them() {
        assert_eq!(data_dir(None), Ok(PathBuf::from("openexec-data")));
        assert_eq!(data_dir(Some("sled:///x/y")), Ok(PathBuf::from("/x/y")));
        assert_eq!(data_dir(Some("rel/dir")), Ok(PathBuf::from("rel/dir")));
        assert!(data_dir(Some("postgres://h/db")).is_err());
        assert!(data_dir(Some("sled://")).is_err());
    }
}
