//! An example OpenExec operator: its own actions with real, local
//! effects, registered beside the built-in demo actions.
//!
//! - `send_email` ([`Effects::AtMostOnce`](openexec::action::Effects)):
//!   writes an RFC 5322 message into a Maildir outbox.
//! - `transfer` ([`Effects::IdempotentDownstream`](openexec::action::Effects)):
//!   moves money in an embedded bank that applies each idempotency key once.
//!
//! Configuration is read from the environment ([`Config::from_env`]).

pub mod bank;
pub mod email;
pub mod send_email;
pub mod stall;
pub mod transfer;

use std::path::PathBuf;

use openexec::action::Registry;

/// The operator's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `OPERATOR_MAILDIR`: the outbox (default `./outbox`).
    pub maildir: PathBuf,
    /// `OPERATOR_MAIL_FROM`: the sender of every message.
    pub mail_from: String,
    /// `OPERATOR_BANK_DB`: the bank's sled directory (default `./bank`).
    pub bank_db: PathBuf,
    /// `OPERATOR_BANK_SEED`: accounts created at the bank's first open if
    /// missing, `NAME=CENTS,...` (default none).
    pub bank_seed: Vec<(String, u64)>,
}

/// The default sender.
pub const DEFAULT_FROM: &str = "openexec-operator@localhost.localdomain";

impl Config {
    /// Reads the `OPERATOR_*` variables.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let seed = var("OPERATOR_BANK_SEED").unwrap_or_default();
        Ok(Self {
            maildir: var("OPERATOR_MAILDIR").map_or_else(|| "outbox".into(), PathBuf::from),
            mail_from: var("OPERATOR_MAIL_FROM").unwrap_or_else(|| DEFAULT_FROM.to_owned()),
            bank_db: var("OPERATOR_BANK_DB").map_or_else(|| "bank".into(), PathBuf::from),
            bank_seed: bank::parse_seed(&seed).map_err(|e| format!("OPERATOR_BANK_SEED: {e}"))?,
        })
    }

    /// The sealed registry: `send_email`, `transfer` and the demo actions.
    pub fn registry(self) -> Result<Registry, String> {
        Registry::builder(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
            .register(send_email::SendEmail::new(self.mail_from, self.maildir)?)
            .register(transfer::Transfer::new(self.bank_db, self.bank_seed))
            .with_builtins()
            .build()
            .map_err(|e| e.to_string())
    }
}
