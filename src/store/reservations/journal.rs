//! The reservation journal (`reservations.log`): where a reservation is
//! made durable before its handler runs, and a counter's increment before
//! the entry that records it ([`crate::store::counters`]). Append-only
//! frames, one per writer cycle that reserved or incremented anything,
//! each checkable on its own; a reservation leaves it by compaction once
//! the entry that resolves it is durable (an entry never writes here: see
//! "Nonces" in [`crate::store`]); a counter's newest record stays.
//!
//! # Frame (all integers big-endian)
//!
//! A frame is its records written twice, in two copies back to back, so
//! that a frame one of whose copies was damaged after it was written
//! still holds its reservations (as a commit-ring slot holds its commit
//! twice). A copy:
//!
//! | bytes      | field                                                    |
//! |------------|----------------------------------------------------------|
//! | 0..8       | magic `OXRESERV`                                         |
//! | 8          | which copy: 0, then 1                                    |
//! | 9..13      | `n`: length of the records (`u32`, at most [`MAX_FRAME`]) |
//! | 13..13+n   | records, each: key length (`u32`) ‖ key ‖ record length (`u32`) ‖ record: a nonce key and its pending record ([`super::encode_pending`]), or a counter's (key tagged `0xFF`, see [`crate::store::counters`]) |
//! | 13+n..17+n | CRC-32 (IEEE) of bytes 0..13+n                           |
//!
//! # Torn and damaged frames
//!
//! Frames are written by one thread, in turn, each only after the one
//! before it is durable (`fdatasync` returned; after a failed write or
//! sync the journal takes no more frames until the store is opened again).
//! So a crash can leave only the *last* frame torn. At open a frame is
//! read from whichever copy checks; a frame neither of whose copies
//! checks, with nothing valid after it, is torn and cut off (its
//! reservations were never made durable, so nobody acted on them). One
//! with a valid frame after it was durable once and is damaged in both
//! copies: the open refuses ([`Damaged`]) rather than forget a
//! reservation whose handler may have run. (Both copies of the last frame
//! damaged reads as a torn write: nothing written after it tells them
//! apart.)
//!
//! # Compaction
//!
//! The journal keeps, in memory, the records it holds whose resolving
//! entry is not yet durable (a writer cycle's worth per reservation in
//! flight) and each counter's newest record (its attempt's exec_id is
//! empty: nothing resolves it). When the file passes [`COMPACT_AT`] bytes and
//! [`COMPACT_RATIO`] times those records' bytes, it writes them as one
//! frame to `reservations.log.new`, fdatasyncs it, renames it over the
//! journal and fsyncs the directory — between two frames, under the
//! journal's lock, so no frame is ever half in the old file. A crash
//! leaves either file whole; a leftover `.new` file is removed at open. A
//! compaction that fails leaves the journal refusing every later frame
//! until the store is opened again (past the rename, the file it would
//! append to is no longer the journal).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{decode_pending, PendingNonce};
use crate::store::{sync_dir, Damaged, StoreError};

/// The journal's file name in the store directory.
pub(crate) const FILE: &str = "reservations.log";
/// Where compaction writes before its rename.
const NEW_FILE: &str = "reservations.log.new";
const MAGIC: &[u8; 8] = b"OXRESERV";
/// Magic, copy number and records length.
const PREFIX_LEN: usize = MAGIC.len() + 1 + 4;
const CRC_LEN: usize = 4;
/// The most bytes of records one frame holds.
pub(crate) const MAX_FRAME: usize = 64 << 20;
/// Compaction waits until the file holds at least this many bytes...
pub(crate) const COMPACT_AT: u64 = 1 << 20;
/// ...and this many times the bytes of the records still needed.
const COMPACT_RATIO: u64 = 4;
/// The file is written with zeros this far ahead of its frames, in steps
/// of this size: a frame then overwrites bytes already in the file, and
/// its `fdatasync` has no file size to commit (measured: an appending
/// `fdatasync` took ~3 times as long under load).
const PREALLOCATE: u64 = 1 << 20;

/// One journal record: a nonce key and its pending record's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalRecord {
    pub(crate) key: Vec<u8>,
    pub(crate) record: Vec<u8>,
}

impl JournalRecord {
    fn encoded_len(&self) -> usize {
        8 + self.key.len() + self.record.len()
    }
}

/// The bytes of one frame holding `records`: both copies.
pub(crate) fn encode_frame(records: &[JournalRecord]) -> Result<Vec<u8>, StoreError> {
    let body: usize = records.iter().map(JournalRecord::encoded_len).sum();
    if body > MAX_FRAME {
        return Err(StoreError::TooLarge(body));
    }
    let copy_len = PREFIX_LEN + body + CRC_LEN;
    let mut out = Vec::with_capacity(2 * copy_len);
    out.extend_from_slice(MAGIC);
    out.push(0);
    out.extend_from_slice(&len_u32(body)?.to_be_bytes());
    for r in records {
        out.extend_from_slice(&len_u32(r.key.len())?.to_be_bytes());
        out.extend_from_slice(&r.key);
        out.extend_from_slice(&len_u32(r.record.len())?.to_be_bytes());
        out.extend_from_slice(&r.record);
    }
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out.extend_from_within(..copy_len);
    out[copy_len + MAGIC.len()] = 1;
    let crc = crc32fast::hash(&out[copy_len..2 * copy_len - CRC_LEN]);
    out[2 * copy_len - CRC_LEN..].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn len_u32(len: usize) -> Result<u32, StoreError> {
    u32::try_from(len).map_err(|_| StoreError::TooLarge(len))
}

/// One copy of a frame, as read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Copy {
    /// 0 or 1.
    pub(crate) which: u8,
    pub(crate) records: Vec<JournalRecord>,
    /// Its length in bytes (the frame's is twice that).
    pub(crate) len: usize,
}

/// The copy at the start of `bytes`, if one is there whole and checks.
pub(crate) fn decode_copy(bytes: &[u8]) -> Option<Copy> {
    if bytes.len() < PREFIX_LEN + CRC_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let which = bytes[MAGIC.len()];
    let body = u32::from_be_bytes(bytes[MAGIC.len() + 1..PREFIX_LEN].try_into().ok()?) as usize;
    if which > 1 || body > MAX_FRAME || bytes.len() < PREFIX_LEN + body + CRC_LEN {
        return None;
    }
    let end = PREFIX_LEN + body;
    let crc = u32::from_be_bytes(bytes[end..end + CRC_LEN].try_into().ok()?);
    if crc32fast::hash(&bytes[..end]) != crc {
        return None;
    }
    let mut rest = &bytes[PREFIX_LEN..end];
    let mut records = Vec::new();
    while !rest.is_empty() {
        let key = take_prefixed(&mut rest)?;
        let record = take_prefixed(&mut rest)?;
        records.push(JournalRecord { key, record });
    }
    Some(Copy {
        which,
        records,
        len: end + CRC_LEN,
    })
}

fn take_prefixed(rest: &mut &[u8]) -> Option<Vec<u8>> {
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let value = rest.get(4..4 + len)?.to_vec();
    *rest = &rest[4 + len..];
    Some(value)
}

/// What [`scan`] found in a journal's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Every record of every frame read, in file order.
    pub(crate) records: Vec<JournalRecord>,
    /// Where the frames read end (a torn last frame starts here).
    pub(crate) end: u64,
    /// Whether a frame was read from its second copy (the first failed
    /// its check): the file is then rewritten at open.
    pub(crate) repaired: bool,
    /// Whether every byte after `end` is zero (written ahead, see
    /// [`PREALLOCATE`]).
    pub(crate) zeros_after: bool,
}

/// Reads a journal's frames (see "Torn and damaged frames").
pub(crate) fn scan(bytes: &[u8]) -> Result<Scanned, Damaged> {
    let mut out = Scanned {
        records: Vec::new(),
        end: 0,
        repaired: false,
        zeros_after: false,
    };
    let mut at = 0;
    while at < bytes.len() {
        if let Some(first) = decode_copy(&bytes[at..]).filter(|c| c.which == 0) {
            // The second copy adds nothing; it may be torn (a crash before
            // the frame's sync) or damaged: then the file is rewritten.
            let second = at + first.len;
            out.repaired |= decode_copy(&bytes[second..])
                .is_none_or(|c| c.which != 1 || c.records != first.records);
            at = (second + first.len).min(bytes.len());
            out.records.extend(first.records);
            out.end = at as u64;
            continue;
        }
        match next_valid_copy(bytes, at + 1) {
            Some((next, second)) if second.which == 1 && next == at + second.len => {
                out.records.extend(second.records);
                out.repaired = true;
                at = next + second.len;
                out.end = at as u64;
            }
            Some((next, _)) => {
                return Err(Damaged::new(
                    FILE,
                    at as u64,
                    format!(
                        "both copies of a reservation frame fail their check, before the valid \
                         frame at byte {next}; it held reservations made durable, which cannot \
                         be forgotten (restore the directory from a copy)"
                    ),
                ));
            }
            None => break,
        }
    }
    out.zeros_after = bytes[at..].iter().all(|&b| b == 0);
    Ok(out)
}

/// The first copy that checks at or after `from`, and where it starts.
fn next_valid_copy(bytes: &[u8], from: usize) -> Option<(usize, Copy)> {
    (from..bytes.len().saturating_sub(MAGIC.len() - 1))
        .filter(|&at| &bytes[at..at + MAGIC.len()] == MAGIC)
        .find_map(|at| decode_copy(&bytes[at..]).map(|c| (at, c)))
}

/// A reservation's nonce key and its attempt's exec_id.
pub(crate) type Attempt = (Vec<u8>, String);

/// The journal file and the records in it still needed.
pub(crate) struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: File,
    /// Where the frames end.
    len: u64,
    /// The file's length: zeros from `len` on.
    allocated: u64,
    /// The records the file holds whose resolving entry is not durable
    /// yet, by nonce key and the exec_id of the attempt that reserved (a
    /// nonce released and reserved again has a new exec_id).
    needed: HashMap<Attempt, JournalRecord>,
    needed_bytes: u64,
    /// Why the journal takes no more frames, once a write or sync failed.
    broken: Option<String>,
}

impl Journal {
    /// Reads the journal in `dir` (none: empty). A leftover compaction
    /// file is removed; nothing else is written.
    pub(crate) fn read(dir: &Path) -> Result<Scanned, StoreError> {
        remove_if_present(&dir.join(NEW_FILE))?;
        let bytes = match std::fs::read(dir.join(FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(scan(&bytes)?)
    }

    /// Opens the journal in `dir` holding `live` (the records read from it
    /// that are still in flight, see "Nonces" in [`crate::store`]): the
    /// file is rewritten to hold those alone when it holds anything else
    /// (resolved records, a torn tail, or no file yet).
    pub(crate) fn open(
        dir: &Path,
        scanned: &Scanned,
        live: Vec<(Attempt, JournalRecord)>,
    ) -> Result<Self, StoreError> {
        let path = dir.join(FILE);
        let whole = scanned.zeros_after
            && !scanned.repaired
            && scanned.records.len() == live.len()
            && path.exists();
        let needed_bytes = live.iter().map(|(_, r)| r.encoded_len() as u64).sum();
        let needed: HashMap<Attempt, JournalRecord> = live.into_iter().collect();
        let (file, len, allocated) = if whole {
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let allocated = file.metadata()?.len();
            (file, scanned.end, allocated)
        } else {
            write_compacted(dir, needed.values())?
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                file,
                len,
                allocated,
                needed,
                needed_bytes,
                broken: None,
            }),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Corrupt("reservation journal lock poisoned".into()))
    }

    /// Appends one frame of `records` (each with its attempt's exec_id)
    /// and makes it durable. A failure leaves the journal refusing every
    /// later frame (the file's tail is then unknown; see "Torn and damaged
    /// frames").
    pub(crate) fn append(&self, records: Vec<(String, JournalRecord)>) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if let Some(why) = &state.broken {
            return Err(StoreError::Corrupt(format!(
                "the reservation journal takes no more reservations until the store is \
                 opened again: {why}"
            )));
        }
        if records.is_empty() {
            return Ok(());
        }
        let frame = encode_frame(&records.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>())?;
        let end = state.len + frame.len() as u64;
        let ahead = end
            .next_multiple_of(PREALLOCATE)
            .saturating_sub(state.allocated);
        let written = state
            .file
            .write_all_at(&zeros(ahead), state.allocated)
            .and_then(|()| state.file.write_all_at(&frame, state.len))
            .and_then(|()| {
                crate::instruments::timed_sync(crate::instruments::SyncedFile::Journal, || {
                    state.file.sync_data()
                })
            });
        if let Err(e) = written {
            state.broken = Some(e.to_string());
            return Err(e.into());
        }
        state.len = end;
        state.allocated += ahead;
        for (exec_id, record) in records {
            state.needed_bytes += record.encoded_len() as u64;
            let attempt = (record.key.clone(), exec_id);
            if let Some(old) = state.needed.insert(attempt, record) {
                state.needed_bytes -= old.encoded_len() as u64;
            }
        }
        Ok(())
    }

    /// Forgets the records of attempts whose resolving entries are now
    /// durable, and compacts the file when it is due (see "Compaction").
    pub(crate) fn resolved(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        for attempt in attempts {
            if let Some(old) = state.needed.remove(attempt) {
                state.needed_bytes -= old.encoded_len() as u64;
            }
        }
        if state.broken.is_some()
            || state.len < COMPACT_AT
            || state.len < COMPACT_RATIO.saturating_mul(state.needed_bytes)
        {
            return Ok(());
        }
        let (file, len, allocated) = compact(&self.dir, &mut state)?;
        state.file = file;
        state.len = len;
        state.allocated = allocated;
        if state.needed.capacity() > 4 * state.needed.len().max(64) {
            state.needed.shrink_to_fit();
        }
        Ok(())
    }

    /// Rewrites the file to hold only the records still needed, if it
    /// holds more (at a clean close, so that the next open looks up no
    /// resolved reservation).
    pub(crate) fn compact_now(&self) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.broken.is_some() || state.len == encoded_len(state.needed.values()) {
            return Ok(());
        }
        let (file, len, allocated) = compact(&self.dir, &mut state)?;
        state.file = file;
        state.len = len;
        state.allocated = allocated;
        Ok(())
    }

    /// Where the file's frames end.
    #[cfg(test)]
    pub(crate) fn len(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.len)
    }

    /// The file's length (zeros written ahead included).
    pub(crate) fn len_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.allocated)
    }
}

/// [`write_compacted`] of the records `state` still needs. A failure
/// leaves the journal refusing every later frame: past the rename, the
/// file `state` appends to is no longer the journal, and before it the
/// failure is an I/O error all the same (fail closed; the next open reads
/// whichever file is the journal).
fn compact(dir: &Path, state: &mut State) -> Result<(File, u64, u64), StoreError> {
    write_compacted(dir, state.needed.values()).inspect_err(|e| {
        state.broken = Some(format!("compaction failed: {e}"));
    })
}

/// The length of the one frame holding `records` (none: 0).
fn encoded_len<'a>(records: impl ExactSizeIterator<Item = &'a JournalRecord>) -> u64 {
    if records.len() == 0 {
        return 0;
    }
    let body: usize = records.map(JournalRecord::encoded_len).sum();
    2 * (PREFIX_LEN + body + CRC_LEN) as u64
}

/// Writes `records` as the whole journal, in nonce-key order, and zeros
/// after them to the next [`PREALLOCATE`] step, crash-safely (see
/// "Compaction"): the file, where its frame ends, and its length.
pub(crate) fn write_compacted<'a>(
    dir: &Path,
    records: impl Iterator<Item = &'a JournalRecord>,
) -> Result<(File, u64, u64), StoreError> {
    let mut records: Vec<JournalRecord> = records.cloned().collect();
    records.sort_by(|a, b| a.key.cmp(&b.key));
    let mut bytes = if records.is_empty() {
        Vec::new()
    } else {
        encode_frame(&records)?
    };
    let len = bytes.len() as u64;
    let allocated = len.max(1).next_multiple_of(PREALLOCATE);
    bytes.resize(
        usize::try_from(allocated).map_err(|_| StoreError::TooLarge(bytes.len()))?,
        0,
    );
    let new = dir.join(NEW_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&new)?;
    file.write_all_at(&bytes, 0)?;
    file.sync_data()?;
    std::fs::rename(&new, dir.join(FILE))?;
    sync_dir(dir)?;
    Ok((file, len, allocated))
}

/// `n` zero bytes.
fn zeros(n: u64) -> Vec<u8> {
    vec![0; usize::try_from(n).unwrap_or(0)]
}

/// Creates an empty journal in `dir` if there is none (a new store; the
/// caller makes the directory entry durable).
pub(crate) fn create_empty(dir: &Path) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(FILE))?;
    file.sync_all()?;
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A record's pending nonce, or the damage of a frame that checked but
/// holds a record this code did not write.
pub(crate) fn pending_of(record: &JournalRecord) -> Result<PendingNonce, StoreError> {
    decode_pending(&record.record)
}

#[cfg(test)]
mod tests;
