//! The "downstream system" of `transfer`: accounts in an embedded sled
//! database that applies each transfer once per idempotency key, the way a
//! payment API does.
//!
//! Two trees: `accounts` (name → balance in cents, 8 bytes big-endian) and
//! `transfers` (idempotency key → the JSON [`TransferRecord`] of what the
//! first request with that key did). [`Bank::apply`] is one sled
//! transaction over both, followed by a flush: once it returns, the
//! balances and the record are on disk together, or neither is.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional as _;

/// What can go wrong talking to the bank (never a business refusal: those
/// are recorded, see [`Outcome::Refused`]).
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The database failed.
    #[error("bank storage: {0}")]
    Storage(#[from] sled::Error),
    /// A stored value does not decode.
    #[error("bank record unreadable: {0}")]
    Corrupt(String),
    /// The key was used before for a different transfer.
    #[error("idempotency key {0} was used for a different transfer")]
    KeyReused(String),
}

impl From<TransactionError<BankError>> for BankError {
    fn from(e: TransactionError<BankError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => Self::Storage(e),
        }
    }
}

/// A transfer as requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The account debited.
    pub from: String,
    /// The account credited.
    pub to: String,
    /// The amount in cents.
    pub amount_cents: u64,
}

/// What the bank did with an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Applied: the balances right after it.
    Applied {
        /// Balance of `from` after the debit.
        from_balance: u64,
        /// Balance of `to` after the credit.
        to_balance: u64,
    },
    /// Refused (unknown account, insufficient funds); nothing moved.
    Refused {
        /// Why.
        reason: String,
    },
}

/// The record kept under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// The order the key was first used for.
    pub order: Order,
    /// What the bank did.
    pub outcome: Outcome,
}

/// The answer of [`Bank::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The record under the key.
    pub record: TransferRecord,
    /// True when the key had been seen before and nothing was done now.
    pub already_applied: bool,
}

/// The bank: a handle on its database (cheap to clone).
#[derive(Clone)]
pub struct Bank {
    db: sled::Db,
    accounts: sled::Tree,
    transfers: sled::Tree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<BankError>>;

impl Bank {
    /// Opens (or creates) the bank at `path`. sled locks the directory:
    /// one process at a time.
    pub fn open(path: &Path) -> Result<Self, BankError> {
        let db = sled::open(path)?;
        Ok(Self {
            accounts: db.open_tree("accounts")?,
            transfers: db.open_tree("transfers")?,
            db,
        })
    }

    /// Creates each account that does not exist yet with its balance;
    /// existing accounts keep theirs (seeding again after a restart
    /// changes nothing).
    pub fn seed(&self, accounts: &[(String, u64)]) -> Result<(), BankError> {
        for (name, cents) in accounts {
            // Result of compare_and_swap: Err(_) means the account exists.
            let _ = self.accounts.compare_and_swap(
                name.as_bytes(),
                None::<&[u8]>,
                Some(&cents.to_be_bytes()[..]),
            )?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// Applies `order` once for `key`: if the key was seen before, returns
    /// what was recorded then (and refuses a different order under it);
    /// else checks the accounts and funds, debits, credits and records
    /// the key with its outcome, in one transaction, then flushes.
    pub fn apply(&self, key: &str, order: &Order) -> Result<Applied, BankError> {
        let applied = (&self.accounts, &self.transfers)
            .transaction(|(accounts, transfers)| apply_once(accounts, transfers, key, order))?;
        self.db.flush()?;
        if applied.record.order != *order {
            return Err(BankError::KeyReused(key.to_owned()));
        }
        Ok(applied)
    }

    /// An account's balance; `None` if there is no such account.
    pub fn balance(&self, account: &str) -> Result<Option<u64>, BankError> {
        self.accounts
            .get(account.as_bytes())?
            .map(|v| decode_cents(&v).map_err(BankError::Corrupt))
            .transpose()
    }

    /// The record under an idempotency key.
    pub fn transfer(&self, key: &str) -> Result<Option<TransferRecord>, BankError> {
        self.transfers
            .get(key.as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| BankError::Corrupt(e.to_string())))
            .transpose()
    }

    /// How many idempotency keys the bank has seen.
    #[must_use]
    pub fn transfer_count(&self) -> usize {
        self.transfers.len()
    }
}

/// The body of [`Bank::apply`]'s transaction (sled may run it again on a
/// conflict, so it only reads and writes through the transaction).
fn apply_once(
    accounts: &TransactionalTree,
    transfers: &TransactionalTree,
    key: &str,
    order: &Order,
) -> TxResult<Applied> {
    if let Some(seen) = transfers.get(key.as_bytes())? {
        let record = serde_json::from_slice(&seen).map_err(|e| abort_corrupt(e.to_string()))?;
        return Ok(Applied {
            record,
            already_applied: true,
        });
    }
    let outcome = match move_funds(accounts, order)? {
        Ok((from_balance, to_balance)) => Outcome::Applied {
            from_balance,
            to_balance,
        },
        Err(reason) => Outcome::Refused { reason },
    };
    let record = TransferRecord {
        order: order.clone(),
        outcome,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| abort_corrupt(e.to_string()))?;
    transfers.insert(key.as_bytes(), bytes)?;
    Ok(Applied {
        record,
        already_applied: false,
    })
}

/// Debits and credits, or says why not (`Ok(Err(reason))`, nothing moved).
fn move_funds(accounts: &TransactionalTree, order: &Order) -> TxResult<Result<(u64, u64), String>> {
    let (Some(from), Some(to)) = (
        read_cents(accounts, &order.from)?,
        read_cents(accounts, &order.to)?,
    ) else {
        return Ok(Err("unknown account".into()));
    };
    let Some(from_balance) = from.checked_sub(order.amount_cents) else {
        return Ok(Err(format!(
            "insufficient funds: {} has {from} cents, {} requested",
            order.from, order.amount_cents
        )));
    };
    let Some(to_balance) = to.checked_add(order.amount_cents) else {
        return Ok(Err("the credit would overflow".into()));
    };
    accounts.insert(order.from.as_bytes(), &from_balance.to_be_bytes()[..])?;
    accounts.insert(order.to.as_bytes(), &to_balance.to_be_bytes()[..])?;
    Ok(Ok((from_balance, to_balance)))
}

fn read_cents(
    accounts: &TransactionalTree,
    name: &str,
) -> Result<Option<u64>, UnabortableTransactionError> {
    match accounts.get(name.as_bytes())? {
        None => Ok(None),
        // A malformed balance reads as no account: the transfer is refused.
        Some(v) => Ok(decode_cents(&v).ok()),
    }
}

fn decode_cents(bytes: &[u8]) -> Result<u64, String> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| format!("a balance of {} bytes", bytes.len()))
}

fn abort_corrupt(detail: String) -> ConflictableTransactionError<BankError> {
    ConflictableTransactionError::Abort(BankError::Corrupt(detail))
}

/// Parses `alice=10000,bob=0` (names as in [`is_account_name`], cents as
/// `u64`); an empty text is no account.
pub fn parse_seed(text: &str) -> Result<Vec<(String, u64)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, cents) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not NAME=CENTS"))?;
            if !is_account_name(name) {
                return Err(format!("'{name}' is not an account name"));
            }
            let cents = cents
                .parse::<u64>()
                .map_err(|_| format!("'{cents}' is not an amount in cents"))?;
            Ok((name.to_owned(), cents))
        })
        .collect()
}

/// An account name: 1-64 characters of `[A-Za-z0-9_.-]`.
#[must_use]
pub fn is_account_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn order(amount_cents: u64) -> Order {
        Order {
            from: "alice".into(),
            to: "bob".into(),
            amount_cents,
        }
    }

    fn bank(dir: &Path) -> Bank {
        let bank = Bank::open(&dir.join("bank")).unwrap();
        bank.seed(&parse_seed("alice=1000, bob=0").unwrap())
            .unwrap();
        bank
    }

    #[test]
    fn a_key_applies_once_and_answers_its_record_again() {
        let dir = tempfile::tempdir().unwrap();
        let bank = bank(dir.path());
        let first = bank.apply("k1", &order(300)).unwrap();
        assert!(!first.already_applied);
        let again = bank.apply("k1", &order(300)).unwrap();
        assert!(again.already_applied);
        assert_eq!(first.record, again.record);
        assert_eq!(bank.balance("alice").unwrap(), Some(700));
        assert_eq!(bank.balance("bob").unwrap(), Some(300));
        assert!(matches!(
            bank.apply("k1", &order(1)),
            Err(BankError::KeyReused(_))
        ));
    }

    #[test]
    fn refusals_move_nothing_and_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let bank = bank(dir.path());
        let poor = bank.apply("k", &order(5000)).unwrap();
        assert!(matches!(poor.record.outcome, Outcome::Refused { .. }));
        let unknown = Order {
            to: "carol".into(),
            ..order(1)
        };
        let refused = bank.apply("k2", &unknown).unwrap();
        assert!(matches!(refused.record.outcome, Outcome::Refused { .. }));
        assert_eq!(bank.balance("alice").unwrap(), Some(1000));
        assert_eq!(bank.transfer_count(), 2);
        // Seeding again keeps the balances.
        bank.apply("k3", &order(10)).unwrap();
        bank.seed(&parse_seed("alice=1000").unwrap()).unwrap();
        assert_eq!(bank.balance("alice").unwrap(), Some(990));
    }

    #[test]
    fn seeds_are_name_equals_cents() {
        assert_eq!(parse_seed("").unwrap(), vec![]);
        assert_eq!(
            parse_seed("a=1,b_2=0").unwrap(),
            vec![("a".into(), 1), ("b_2".into(), 0)]
        );
        assert!(parse_seed("a").is_err());
        assert!(parse_seed("a=-1").is_err());
        assert!(parse_seed("a b=1").is_err());
    }
}
