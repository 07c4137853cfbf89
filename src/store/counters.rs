//! Named `u64` counters (the state of the built-in `counter` action, and
//! of any handler that uses `Context::counters`), kept in memory and made
//! durable in the reservation journal ([`super::reservations::journal`]).
//!
//! An increment changes the value in memory and stages a journal record
//! holding the counter's new value; the next cycle's sync appends it with
//! that cycle's reservations, in the same frame and `fdatasync`, before
//! the cycle's batch commits. A handler increments before its entry is
//! queued, so the increment is durable before the entry that records it
//! (see "Durability" in [`super`]). The journal keeps the newest record of
//! each counter through compaction, so the file always holds every value.
//!
//! Why not sled (where counters were before): each increment then cost a
//! sled flush and an `fdatasync` of sled's log per cycle, and woke sled's
//! I/O threads — more than the rest of the cycle's work together.
//!
//! # Record
//!
//! Key: [`KEY_TAG`] ‖ the counter's name (UTF-8, 1 to [`MAX_NAME_LEN`]
//! bytes); value: the counter's value, `u64` big-endian. A nonce key
//! starts with a tenant's UTF-8 bytes, which never hold `0xFF`, so the
//! tag tells the two kinds of record apart.
//!
//! At open the values are sled's `counters` tree (a format-2 store kept
//! them there; nothing writes that tree now, nor clears it, so a counter
//! never incremented since stays readable from it) overlaid with the
//! journal's counter records in file order. Only counters with a journal
//! record are kept in the journal: a name of that tree that this build
//! would refuse (an earlier build took any name) is read, never written.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::reservations::journal::JournalRecord;
use super::StoreError;

/// The first byte of a counter record's key.
pub(crate) const KEY_TAG: u8 = 0xFF;
/// The longest counter name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The most distinct counters a store keeps (each costs memory for the
/// life of the process and a record in every compacted journal).
pub const MAX_COUNTERS: usize = 100_000;

/// The counters' values, by name.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    values: Mutex<HashMap<String, u64>>,
}

/// Whether a journal record is a counter's.
pub(crate) fn is_counter_record(record: &JournalRecord) -> bool {
    record.key.first() == Some(&KEY_TAG)
}

/// The record that makes `value` the durable value of `name`.
fn record_of(name: &str, value: u64) -> JournalRecord {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(KEY_TAG);
    key.extend_from_slice(name.as_bytes());
    JournalRecord {
        key,
        record: value.to_be_bytes().to_vec(),
    }
}

/// A counter record's name and value; `Corrupt` for one this code did not
/// write.
fn decode(record: &JournalRecord) -> Result<(String, u64), StoreError> {
    let corrupt = || StoreError::Corrupt("a counter record of the reservation journal".into());
    let name = record
        .key
        .strip_prefix(&[KEY_TAG])
        .and_then(|n| std::str::from_utf8(n).ok())
        .filter(|n| valid_name(n))
        .ok_or_else(corrupt)?;
    let value: [u8; 8] = record.record.as_slice().try_into().map_err(|_| corrupt())?;
    Ok((name.to_owned(), u64::from_be_bytes(value)))
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
}

impl Counters {
    /// The counters of sled's `counters` tree overlaid with the journal's
    /// counter `records` (in file order: the later wins), and the newest
    /// of those records for each counter (what the journal keeps).
    pub(crate) fn load<'a>(
        tree: &sled::Tree,
        records: impl Iterator<Item = &'a JournalRecord>,
    ) -> Result<(Self, Vec<JournalRecord>), StoreError> {
        let mut values = HashMap::new();
        for item in tree.iter() {
            let (name, value) = item?;
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| StoreError::Corrupt("a counter's name in sled".into()))?;
            let value: [u8; 8] = value
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("a counter's value in sled".into()))?;
            values.insert(name, u64::from_be_bytes(value));
        }
        let mut newest = HashMap::new();
        for record in records {
            let (name, value) = decode(record)?;
            values.insert(name.clone(), value);
            newest.insert(name, record.clone());
        }
        let counters = Self {
            values: Mutex::new(values),
        };
        Ok((counters, newest.into_values().collect()))
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, u64>>, StoreError> {
        self.values
            .lock()
            .map_err(|_| StoreError::Corrupt("counters lock poisoned".into()))
    }

    /// Adds one to `name` and returns the new value, handing `stage` the
    /// journal record that makes it durable. `stage` runs under the
    /// counters' lock, so records are staged in the order of their values
    /// (the journal's later record wins at open); a failed `stage` leaves
    /// the value as it was.
    pub(crate) fn increment(
        &self,
        name: &str,
        stage: impl FnOnce(JournalRecord) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        if !valid_name(name) {
            return Err(StoreError::Counter(format!(
                "a counter's name is 1 to {MAX_NAME_LEN} bytes"
            )));
        }
        let mut values = self.lock()?;
        if values.len() >= MAX_COUNTERS && !values.contains_key(name) {
            return Err(StoreError::Counter(format!(
                "the store keeps at most {MAX_COUNTERS} counters"
            )));
        }
        let value = values.get(name).copied().unwrap_or(0).saturating_add(1);
        stage(record_of(name, value))?;
        values.insert(name.to_owned(), value);
        Ok(value)
    }

    /// `name`'s value (0 if it was never incremented).
    pub(crate) fn get(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.lock()?.get(name).copied().unwrap_or(0))
    }

    /// Every counter and its value, by name.
    pub(crate) fn values(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut all: Vec<(String, u64)> =
            self.lock()?.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort();
        Ok(all)
    }

    /// Raises `name` to `value` (a counter carried over from a retired
    /// log), handing `stage` the journal record as [`Self::increment`]
    /// does; a counter already at or above `value` is left as it is.
    pub(crate) fn raise_to(
        &self,
        name: &str,
        value: u64,
        stage: impl FnOnce(JournalRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if !valid_name(name) {
            return Err(StoreError::Counter(format!(
                "a counter's name is 1 to {MAX_NAME_LEN} bytes"
            )));
        }
        let mut values = self.lock()?;
        if values.get(name).copied().unwrap_or(0) >= value {
            return Ok(());
        }
        if values.len() >= MAX_COUNTERS && !values.contains_key(name) {
            return Err(StoreError::Counter(format!(
                "the store keeps at most {MAX_COUNTERS} counters"
            )));
        }
        stage(record_of(name, value))?;
        values.insert(name.to_owned(), value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("counters").unwrap()
    }

    #[test]
    fn records_round_trip_and_are_told_from_nonce_keys() {
        let r = record_of("visits", 7);
        assert!(is_counter_record(&r));
        assert_eq!(decode(&r).unwrap(), ("visits".to_owned(), 7));
        let nonce = JournalRecord {
            key: crate::core::entry::nonce_key("tenant", "n-1"),
            record: vec![0; 8],
        };
        assert!(!is_counter_record(&nonce));
        // A tenant is UTF-8, which never holds 0xFF.
        assert!(!crate::core::entry::nonce_key("ÿ", "n").contains(&KEY_TAG));
    }

    #[test]
    fn the_journal_overlays_sled_and_the_later_record_wins() {
        let tree = empty_tree();
        tree.insert("old", &5u64.to_be_bytes()).unwrap();
        tree.insert("moved", &1u64.to_be_bytes()).unwrap();
        let records = [record_of("moved", 2), record_of("moved", 3)];
        let (c, newest) = Counters::load(&tree, records.iter()).unwrap();
        assert_eq!(
            newest,
            vec![record_of("moved", 3)],
            "sled's counters stay in sled"
        );
        assert_eq!(c.get("old").unwrap(), 5);
        assert_eq!(c.get("moved").unwrap(), 3);
        assert_eq!(c.get("never").unwrap(), 0);
        let mut staged = Vec::new();
        let value = c
            .increment("old", |r| {
                staged.push(r);
                Ok(())
            })
            .unwrap();
        assert_eq!(value, 6);
        assert_eq!(decode(&staged[0]).unwrap(), ("old".to_owned(), 6));
        // A failed stage changes nothing.
        let failed = c.increment("old", |_| Err(StoreError::Corrupt("full".into())));
        assert!(failed.is_err());
        assert_eq!(c.get("old").unwrap(), 6);
    }

    fn bump(c: &Counters, name: &str) -> Result<u64, StoreError> {
        c.increment(name, |_| Ok(()))
    }

    #[test]
    fn names_and_the_number_of_counters_are_bounded() {
        let (c, _) = Counters::load(&empty_tree(), std::iter::empty()).unwrap();
        assert!(matches!(bump(&c, ""), Err(StoreError::Counter(_))));
        assert!(matches!(
            bump(&c, &"x".repeat(MAX_NAME_LEN + 1)),
            Err(StoreError::Counter(_))
        ));
        bump(&c, &"x".repeat(MAX_NAME_LEN)).unwrap();
        for i in 1..MAX_COUNTERS {
            bump(&c, &i.to_string()).unwrap();
        }
        assert!(matches!(bump(&c, "one more"), Err(StoreError::Counter(_))));
        // An existing counter still counts.
        assert_eq!(bump(&c, "1").unwrap(), 2);
    }

    #[test]
    fn a_name_of_sleds_tree_this_build_refuses_is_read_and_never_journaled() {
        let tree = empty_tree();
        let long = "n".repeat(MAX_NAME_LEN + 1);
        tree.insert(long.as_bytes(), &7u64.to_be_bytes()).unwrap();
        let (c, newest) = Counters::load(&tree, std::iter::empty()).unwrap();
        assert!(newest.is_empty());
        assert_eq!(c.get(&long).unwrap(), 7);
        assert!(matches!(bump(&c, &long), Err(StoreError::Counter(_))));
    }

    #[test]
    fn damaged_records_are_refused() {
        let mut bad_value = record_of("a", 1);
        bad_value.record.pop();
        let mut bad_name = record_of("a", 1);
        bad_name.key.push(0xFF);
        for r in [bad_value, bad_name] {
            assert!(matches!(decode(&r), Err(StoreError::Corrupt(_))));
        }
    }
}
