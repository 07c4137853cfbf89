//! `openexec token create|list|revoke|bind-cert`: thin shells over
//! `auth::store`.
//!
//! `create` prints the token on stdout, one line and nothing else, so that
//! `TOKEN=$(openexec token create ...)` captures it; everything else goes
//! to stderr. No command ever prints a secret or its hash again.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};

use crate::auth::{self, NewToken, PrincipalId, Role, TokenRecord};

/// Arguments of `openexec token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// Subcommands of `openexec token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a principal and print its bearer token (shown once).
    Create(CreateArgs),
    /// List the principals (never a secret or its hash).
    List(DataArgs),
    /// Revoke a principal's token (a running service sees it within ~1 s).
    Revoke(RevokeArgs),
    /// Bind a TLS client certificate to a principal: a client presenting it, verified against `serve --tls-client-ca`, is that principal without a token.
    BindCert(BindCertArgs),
}

/// Where the principals are: the service's data directory.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data directory (the service's; `principals.json` is kept in it). Default: the directory of `--db-url`, else ./openexec-data.
    #[arg(long, env = "OPENEXEC_DATA_DIR")]
    pub data: Option<PathBuf>,
    /// Storage of the service, as `openexec serve` takes it: `sled://PATH` or a path.
    #[arg(long, env = "OPENEXEC_DB_URL")]
    pub db_url: Option<String>,
}

/// Arguments of `openexec token create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Where the principals are.
    #[command(flatten)]
    pub data: DataArgs,
    /// `agent`, `auditor` or `admin`.
    #[arg(long)]
    pub role: Role,
    /// The tenant the principal acts for.
    #[arg(long)]
    pub tenant: String,
    /// Comma-separated actions the principal may run, narrower than the service's allow-list (unset: the service's).
    #[arg(long)]
    pub actions: Option<String>,
    /// Free text: who or what holds the token.
    #[arg(long)]
    pub label: Option<String>,
    /// Lifetime: a number and a unit, `s`, `m`, `h` or `d` (`30d`, `12h`, `3600s`). Unset: no expiry.
    #[arg(long, value_parser = parse_lifetime)]
    pub expires_in: Option<chrono::Duration>,
}

/// Arguments of `openexec token revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Where the principals are.
    #[command(flatten)]
    pub data: DataArgs,
    /// The principal's id (16 hex characters, as `token list` shows it).
    pub id: PrincipalId,
}

/// Arguments of `openexec token bind-cert`.
#[derive(Debug, Args)]
pub struct BindCertArgs {
    /// Where the principals are.
    #[command(flatten)]
    pub data: DataArgs,
    /// The principal's id (16 hex characters, as `token list` shows it).
    pub id: PrincipalId,
    /// PEM file of the client certificate (its first certificate is bound).
    #[arg(long)]
    pub cert: PathBuf,
}

/// Runs `openexec token ...`.
#[must_use]
pub fn run(args: &TokenArgs) -> ExitCode {
    let result = match &args.command {
        TokenCommand::Create(create) => run_create(create),
        TokenCommand::List(data) => run_list(data),
        TokenCommand::Revoke(revoke) => run_revoke(revoke),
        TokenCommand::BindCert(bind) => run_bind_cert(bind),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openexec token: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_create(args: &CreateArgs) -> Result<(), String> {
    let dir = args.data.dir()?;
    let now = Utc::now();
    let tenant = args.tenant.trim();
    if tenant.is_empty() {
        return Err("--tenant is empty".to_owned());
    }
    let actions = args.actions.as_deref().map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    if actions.as_ref().is_some_and(Vec::is_empty) {
        return Err(
            "--actions names no action (leave it out for the service's allow-list)".to_owned(),
        );
    }
    let expires_at = match args.expires_in {
        None => None,
        Some(lifetime) => Some(
            now.checked_add_signed(lifetime)
                .ok_or("--expires-in is too long")?,
        ),
    };
    let new = NewToken {
        role: args.role,
        tenant: tenant.to_owned(),
        actions,
        label: args
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
        expires_at,
    };
    let (token, record) = auth::store::create(&dir, new, now).map_err(|e| e.to_string())?;
    println!("{}", token.reveal());
    eprintln!(
        "created principal {} ({}, tenant {:?}, expires {}); the token above is shown only now: \
         it is kept in {} as a SHA-256 hash",
        record.id,
        record.role,
        record.tenant,
        time_or(record.expires_at, "never"),
        dir.join(auth::FILE_NAME).display(),
    );
    Ok(())
}

fn run_list(args: &DataArgs) -> Result<(), String> {
    let path = args.dir()?.join(auth::FILE_NAME);
    let set = auth::store::load(&path).map_err(|e| e.to_string())?;
    println!("id\trole\ttenant\tactions\tlabel\tcreated\texpires\trevoked\tcert");
    for record in set.records() {
        println!("{}", list_line(record));
    }
    if set.is_empty() {
        eprintln!(
            "no principals in {} (authentication is off)",
            path.display()
        );
    }
    Ok(())
}

fn run_revoke(args: &RevokeArgs) -> Result<(), String> {
    let dir = args.data.dir()?;
    let record = auth::store::revoke(&dir, args.id, Utc::now()).map_err(|e| e.to_string())?;
    println!(
        "revoked {} at {}",
        record.id,
        time_or(record.revoked_at, "-")
    );
    Ok(())
}

fn run_bind_cert(args: &BindCertArgs) -> Result<(), String> {
    let dir = args.data.dir()?;
    let certs = crate::http::tls::read_certs(&args.cert)?;
    let first = certs
        .first()
        .ok_or_else(|| format!("{}: no certificate", args.cert.display()))?;
    let cert = auth::CertFingerprint::of(first);
    let record = auth::store::bind_cert(&dir, args.id, cert).map_err(|e| e.to_string())?;
    println!("bound certificate sha256 {cert} to principal {}", record.id);
    Ok(())
}

impl DataArgs {
    /// `--data`, else the directory `--db-url` names, else `openexec-data`.
    fn dir(&self) -> Result<PathBuf, String> {
        if let Some(data) = self.data.as_ref().filter(|d| !d.as_os_str().is_empty()) {
            return Ok(data.clone());
        }
        match self.db_url.as_deref().filter(|url| !url.trim().is_empty()) {
            None => Ok(PathBuf::from("openexec-data")),
            Some(url) => super::serve::embedded_data_dir(url.trim()).ok_or_else(|| {
                format!("unsupported OPENEXEC_DB_URL {url:?} (only sled://PATH or a path)")
            }),
        }
    }
}

/// One tab-separated line of `token list`: never the secret's hash.
fn list_line(record: &TokenRecord) -> String {
    let actions = record
        .actions
        .as_ref()
        .map_or_else(|| "*".to_owned(), |list| list.join(","));
    [
        record.id.to_string(),
        record.role.to_string(),
        one_line(&record.tenant),
        one_line(&actions),
        one_line(record.label.as_deref().unwrap_or("-")),
        time_or(Some(record.created_at), "-"),
        time_or(record.expires_at, "never"),
        time_or(record.revoked_at, "-"),
        record
            .cert_sha256
            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
    ]
    .join("\t")
}

/// `text` with tabs and line breaks shown escaped, so a line stays a row.
fn one_line(text: &str) -> String {
    text.replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn time_or(time: Option<DateTime<Utc>>, none: &str) -> String {
    time.map_or_else(
        || none.to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// Parses `30d`, `12h`, `15m`, `3600s` (a positive whole number and a
/// unit).
fn parse_lifetime(text: &str) -> Result<chrono::Duration, String> {
    let bad = || format!("{text:?}: expected a number and s, m, h or d (30d, 12h, 3600s)");
    let unit_at = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = (
        text.get(..unit_at).ok_or_else(bad)?,
        text.get(unit_at..).ok_or_else(bad)?,
    );
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let seconds = n.checked_mul(seconds_per).ok_or_else(bad)?;
    if seconds == 0 {
        return Err(format!("{text:?}: the lifetime must be positive"));
    }
    chrono::Duration::try_seconds(seconds).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_with_their_units() {
        assert_eq!(parse_lifetime("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_lifetime("12h").unwrap(), chrono::Duration::hours(12));
        assert_eq!(
            parse_lifetime("15m").unwrap(),
            chrono::Duration::minutes(15)
        );
        assert_eq!(
            parse_lifetime("3600s").unwrap(),
            chrono::Duration::seconds(3600)
        );
        for bad in [
            "",
            "d",
            "0s",
            "-1d",
            "1w",
            "1.5h",
            "h1",
            "99999999999999999999d",
            "1é",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_data_directory_comes_from_data_then_db_url() {
        let args = |data: Option<&str>, db_url: Option<&str>| DataArgs {
            data: data.map(PathBuf::from),
            db_url: db_url.map(str::to_owned),
        };
        assert_eq!(
            args(None, None).dir().unwrap(),
            PathBuf::from("openexec-data")
        );
        assert_eq!(
            args(None, Some("sled://x/y")).dir().unwrap(),
            PathBuf::from("x/y")
        );
        assert_eq!(
            args(Some("d"), Some("sled://x")).dir().unwrap(),
            PathBuf::from("d")
        );
        assert!(args(None, Some("postgres://h/db")).dir().is_err());
    }
}
