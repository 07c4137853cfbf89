//! Converting a store of format 1 or 2 to format 3 (`openexec migrate`),
//! offline, under sled's directory lock (a running service holds it).
//!
//! Format 1 kept each reservation in flight in sled's `pending` tree and
//! the approval it held in sled's `approvals` tree; formats 2 and 3 keep
//! them in the reservation journal ([`super::reservations::journal`]) and
//! keep in `approvals` only the approvals consumed for good. Format 3's
//! journal also holds the named counters' values
//! ([`super::counters`]; format 2 kept them in sled's `counters` tree,
//! which format 3 reads at open as their starting values, so nothing of
//! them is converted). The conversion:
//!
//! 1. copies the ring's newest head into sled when it is the newer (a ring
//!    slot records the mark of its format, which format 3 does not read);
//! 2. (format 1) writes every `pending` record to a new journal (a record
//!    of a build before effects classes has 0 where the effects code is:
//!    it becomes at-most-once, what those builds did at restart),
//!    durably; a format-2 journal is kept as it is;
//! 3. in one sled transaction: removes the `pending` records and the
//!    `approvals` records those reservations hold (each reservation's
//!    record names its approval), keeps every other `approvals` record
//!    (consumed for good), and writes the format-3 mark — last, so that a
//!    crash before it leaves a store the command converts again from the
//!    start; then flushes and fsyncs sled's log;
//! 4. empties the ring of its older-format slots and drops the `pending`
//!    tree (a rerun on a format-3 store does only this step).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use sled::transaction::Transactional;

use super::commit_ring::{CommitRing, RingCommit};
use super::reservations::journal::{self, JournalRecord};
use super::reservations::{decode_pending, encode_pending};
use super::segments::{SegmentsMark, STORE_FORMAT};
use super::{open, read_head, reservations, sync_sled, Head, StoreConfig, StoreError, META_HEAD};

/// The formats [`migrate`] converts from.
pub const FROM_FORMATS: [u64; 2] = [1, 2];

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Whether the store was already in [`STORE_FORMAT`] (only leftovers
    /// of an interrupted conversion were cleared).
    pub already: bool,
    /// The format converted from ([`STORE_FORMAT`] if `already`).
    pub from: u64,
    /// Reservations in flight moved to the journal.
    pub reservations: usize,
    /// Approvals kept in sled, consumed for good.
    pub approvals_kept: usize,
    /// Whether the commit ring's head was newer than sled's and was
    /// copied into sled.
    pub ring_promoted: bool,
}

/// Converts the store in `path` (a store directory, `<data>/db`) from
/// a format of [`FROM_FORMATS`] to [`STORE_FORMAT`]. Safe to run again after a
/// crash at any point; refuses any other format, and a directory that
/// holds no store (creating nothing).
pub fn migrate(path: &Path) -> Result<Migrated, StoreError> {
    if !path.join("db").is_file() {
        return Err(StoreError::Corrupt(format!(
            "{} holds no store (no sled log file db)",
            path.display()
        )));
    }
    let db = open::open_sled(&StoreConfig::new(path))?;
    let log_file = File::open(path.join("db"))?;
    let meta = db.open_tree("meta")?;
    let Some(mark) = meta.get(SegmentsMark::META_KEY)? else {
        return Err(StoreError::UnsupportedFormat { found: 0 });
    };
    let mut done = Migrated {
        already: true,
        from: STORE_FORMAT,
        reservations: 0,
        approvals_kept: 0,
        ring_promoted: false,
    };
    match SegmentsMark::decode(&mark) {
        Ok(_) => {}
        Err(StoreError::UnsupportedFormat { found }) if FROM_FORMATS.contains(&found) => {
            let mark = SegmentsMark::decode_as(&mark, found)?;
            done = convert(&db, &meta, path, &log_file, (mark, found))?;
        }
        Err(e) => return Err(e),
    }
    let mut older = false;
    for format in FROM_FORMATS {
        older |= CommitRing::newest_as(path, format)?.is_some();
    }
    if older {
        // A service of this format may have run since the mark was written
        // (a conversion cut off before this step): its newest ring commit
        // goes to sled before the ring is emptied.
        if let Some(newest) = CommitRing::newest_as(path, STORE_FORMAT)? {
            open::promote_if_newer(&db, &meta, &log_file, &newest)?;
        }
        CommitRing::clear(path)?;
    }
    db.drop_tree("pending")?;
    sync_sled(&db, &log_file)?;
    Ok(done)
}

/// Steps 1 to 3 of the conversion (see the module doc) of a store whose
/// mark `mark` is in format `from`.
fn convert(
    db: &sled::Db,
    meta: &sled::Tree,
    path: &Path,
    log_file: &File,
    (mark, from): (SegmentsMark, u64),
) -> Result<Migrated, StoreError> {
    let sled_size = read_head(meta)?.map_or(0, |h| h.size);
    let ring = CommitRing::newest_as(path, from)?.filter(|c| c.size() > sled_size);
    let pending = db.open_tree("pending")?;
    let approvals = db.open_tree("approvals")?;
    let checkpoints = db.open_tree("checkpoints")?;
    let mut records = Vec::new();
    // Approval key → nonce key of the reservation whose record names it.
    let mut held: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for item in pending.iter() {
        let (key, value) = item?;
        let mut value = value.to_vec();
        if value.get(1) == Some(&0) {
            value[1] = crate::core::entry::Effects::AtMostOnce.code();
        }
        let record = decode_pending(&value)?;
        if let Some(ak) = &record.approval_key {
            held.insert(ak.as_bytes().to_vec(), key.to_vec());
        }
        records.push(JournalRecord {
            key: key.to_vec(),
            record: encode_pending(&record)?,
        });
    }
    let mut in_flight = Vec::new();
    let mut kept = 0;
    for item in approvals.iter() {
        let (ak, holder) = item?;
        if held
            .get(ak.as_ref())
            .is_some_and(|k| k.as_slice() == holder.as_ref())
        {
            in_flight.push(ak);
        } else {
            kept += 1;
        }
    }
    if from == 1 {
        journal::write_compacted(path, records.iter())?;
    }
    let (head, mark) = match &ring {
        Some(c) => (Some(c.head), c.mark),
        None => (None, mark),
    };
    write_format(
        (meta, &pending, &approvals, &checkpoints),
        head,
        mark,
        ring.as_ref(),
        &in_flight,
    )?;
    sync_sled(db, log_file)?;
    Ok(Migrated {
        already: false,
        from,
        reservations: records.len(),
        approvals_kept: kept,
        ring_promoted: ring.is_some(),
    })
}

/// The transaction of step 3: the ring's head (if newer), the `pending`
/// records and held approvals removed, and the format-3 mark.
fn write_format(
    (meta, pending, approvals, checkpoints): (&sled::Tree, &sled::Tree, &sled::Tree, &sled::Tree),
    head: Option<Head>,
    mark: SegmentsMark,
    ring: Option<&RingCommit>,
    in_flight: &[sled::IVec],
) -> Result<(), StoreError> {
    let keys: Vec<sled::IVec> = pending.iter().keys().collect::<Result<_, _>>()?;
    (meta, pending, approvals, checkpoints)
        .transaction(|(tm, tp, ta, tk)| {
            for key in &keys {
                tp.remove(key)?;
            }
            for ak in in_flight {
                ta.remove(ak)?;
            }
            if let (Some(head), Some(commit)) = (head, ring) {
                tm.insert(META_HEAD, head.encode().to_vec())?;
                tk.insert(
                    commit.size().to_be_bytes().to_vec(),
                    commit.checkpoint.as_bytes(),
                )?;
            }
            tm.insert(SegmentsMark::META_KEY, mark.encode().to_vec())?;
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        })
        .map_err(reservations::tx_error)?;
    Ok(())
}

#[cfg(test)]
mod tests;
