//! What a successor log takes over from the store of the log it retires
//! (see `crate::ledger::predecessor`): the approvals consumed for good
//! and the named counters. Done nonces and the approvals entries name are
//! read from the entries themselves.

use super::{Store, StoreError};

impl Store {
    /// The consume keys of sled's `approvals` tree: approvals consumed for
    /// good by attempts whose entries do not name them.
    pub fn approvals_consumed_for_good(&self) -> Result<Vec<String>, StoreError> {
        self.inner
            .approvals
            .iter()
            .keys()
            .map(|key| {
                String::from_utf8(key?.to_vec())
                    .map_err(|_| StoreError::Corrupt("an approval key in sled".into()))
            })
            .collect()
    }

    /// Every named counter and its value.
    pub fn counter_values(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.counters.values()
    }

    /// Raises counter `name` to `value`, durable with the next writer
    /// cycle that has entries (as an increment is).
    pub fn carry_counter(&self, name: &str, value: u64) -> Result<(), StoreError> {
        self.inner.counters.raise_to(name, value, |record| {
            self.inner.lock_staged()?.push((String::new(), record));
            Ok(())
        })
    }
}
