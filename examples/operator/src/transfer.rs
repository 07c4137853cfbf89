//! `transfer`: moves an amount between two accounts of the bank, applied
//! once downstream per idempotency key.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use openexec::action::{Action, ActionError, Context, Effects};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bank::{is_account_name, Bank, Order, Outcome};
use crate::stall::{self, Phase};

/// The action: a bank opened at its first transfer (so that subcommands
/// other than `serve` never open it) and seeded then.
pub struct Transfer {
    bank: Arc<LazyBank>,
}

struct LazyBank {
    path: PathBuf,
    seed: Vec<(String, u64)>,
    open: Mutex<Option<Bank>>,
}

impl LazyBank {
    /// The bank, opened and seeded on first use (blocking).
    fn get(&self) -> Result<Bank, ActionError> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| ActionError::new("bank handle poisoned"))?;
        if let Some(bank) = open.as_ref() {
            return Ok(bank.clone());
        }
        let bank = Bank::open(&self.path).map_err(|e| ActionError::new(e.to_string()))?;
        bank.seed(&self.seed)
            .map_err(|e| ActionError::new(e.to_string()))?;
        *open = Some(bank.clone());
        Ok(bank)
    }
}

impl Transfer {
    /// Transfers in the bank at `path`, whose missing `seed` accounts are
    /// created when it is first opened.
    #[must_use]
    pub fn new(path: PathBuf, seed: Vec<(String, u64)>) -> Self {
        Self {
            bank: Arc::new(LazyBank {
                path,
                seed,
                open: Mutex::new(None),
            }),
        }
    }
}

/// `transfer`'s payload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferOrder {
    /// The account debited: 1-64 characters of `[A-Za-z0-9_.-]`.
    pub from: String,
    /// The account credited, another one.
    pub to: String,
    /// The amount in cents, more than 0.
    pub amount_cents: u64,
}

/// `transfer`'s result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Transferred {
    /// The transfer's id in the bank: the attempt's idempotency key.
    pub transfer_id: String,
    /// Balance of `from` right after the transfer, in cents.
    pub from_balance: u64,
    /// Balance of `to` right after the transfer, in cents.
    pub to_balance: u64,
    /// True when the bank had already applied this key (an earlier run of
    /// the handler for the same request, cut off before it was recorded).
    pub already_applied: bool,
}

impl Action for Transfer {
    const NAME: &'static str = "transfer";
    const EFFECTS: Effects = Effects::IdempotentDownstream;
    const TITLE: &'static str = "Transfer money";
    const DESCRIPTION: &'static str = "Moves amount_cents from one account to another; the bank applies it once per idempotency key, however often the handler runs for the request.";
    type Payload = TransferOrder;
    type Output = Transferred;

    fn check(&self, order: &TransferOrder) -> Result<(), String> {
        for name in [&order.from, &order.to] {
            if !is_account_name(name) {
                return Err(format!("'{}' is not an account name", name.escape_debug()));
            }
        }
        if order.from == order.to {
            return Err("from and to are the same account".into());
        }
        if order.amount_cents == 0 {
            return Err("amount_cents must be more than 0".into());
        }
        Ok(())
    }

    async fn run(&self, ctx: Context, order: TransferOrder) -> Result<Transferred, ActionError> {
        stall::point(Self::NAME, Phase::Before).await;
        let key = ctx.idempotency_key().as_str().to_owned();
        let order = Order {
            from: order.from,
            to: order.to,
            amount_cents: order.amount_cents,
        };
        let bank = Arc::clone(&self.bank);
        let id = key.clone();
        let applied = ctx
            .blocking(move || {
                bank.get()?
                    .apply(&id, &order)
                    .map_err(|e| ActionError::new(e.to_string()))
            })
            .await??;
        stall::point(Self::NAME, Phase::After).await;
        match applied.record.outcome {
            Outcome::Applied {
                from_balance,
                to_balance,
            } => Ok(Transferred {
                transfer_id: key,
                from_balance,
                to_balance,
                already_applied: applied.already_applied,
            }),
            Outcome::Refused { reason } => Err(ActionError::new(reason)),
        }
    }
}
