//! What a successor log carries over from the logs it continues: every
//! nonce they completed and every approval they consumed, so that a
//! rotation never re-opens either.
//!
//! `openexec rotate` builds the index from the retired log's entries
//! (every entry whose record completes its nonce, the approvals those
//! entries name) and sled's `approvals` tree (approvals consumed for good
//! by entries that do not name them), merged with the retired log's own
//! predecessors' index, and writes it to the successor's data directory
//! as `predecessor.idx` before the successor's first entry. The index
//! holds the payload commitment of the successor's `log_start` entry (its
//! *link*): at open, a log whose entry 0 is a `log_start` entry refuses to
//! start without an index whose link is that entry's commitment, so a
//! deleted or swapped index cannot reopen the predecessors' nonces
//! ([`check_start`]). The successor consults the index before reserving
//! any nonce: the set never changes, so a lookup before the reservation
//! decides as well as one inside it.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Ledger, LedgerError};
use crate::core::entry::{nonce_key, Entry, Outcome};
use crate::core::hash::Hash;

/// The index's file name in a successor's data directory.
pub const PREDECESSOR_FILE: &str = "predecessor.idx";
/// The marker `openexec rotate` keeps in a successor's data directory
/// until the rotation is complete; a log with it does not start.
pub const PENDING_FILE: &str = "rotation.pending";
const MAGIC: &[u8; 8] = b"OXPRED02";

/// A nonce a predecessor completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneNonce {
    /// The origin of the log holding the completing entry.
    pub origin: String,
    /// That entry's index in its log.
    pub index: u64,
    /// Its request hash (the same request, or another with this nonce).
    pub request_hash: Hash,
    /// Its outcome.
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DoneAt {
    origin: u32,
    index: u64,
    request_hash: Hash,
    outcome: Outcome,
}

/// The done nonces and consumed approvals of every predecessor, keyed by
/// the SHA-256 of the nonce key (`tenant ‖ 0x00 ‖ nonce`) and of the
/// approval consume key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PredecessorIndex {
    /// The payload commitment of the successor's `log_start` entry.
    link: Hash,
    origins: Vec<String>,
    nonces: HashMap<Hash, DoneAt>,
    approvals: HashMap<Hash, u32>,
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Config(format!("{PREDECESSOR_FILE}: {what}"))
}

const fn outcome_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Executed => 1,
        Outcome::Failed => 2,
        Outcome::Rejected => 3,
        Outcome::Replayed => 4,
        Outcome::Interrupted => 5,
        Outcome::Redacted => 6,
    }
}

const fn outcome_of(code: u8) -> Option<Outcome> {
    match code {
        1 => Some(Outcome::Executed),
        2 => Some(Outcome::Failed),
        3 => Some(Outcome::Rejected),
        4 => Some(Outcome::Replayed),
        5 => Some(Outcome::Interrupted),
        6 => Some(Outcome::Redacted),
        _ => None,
    }
}

impl PredecessorIndex {
    /// The path of the index in `data_dir`.
    #[must_use]
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(PREDECESSOR_FILE)
    }

    /// Loads the index of `data_dir`, if it has one; one that does not
    /// check is refused.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, LedgerError> {
        match std::fs::read(Self::path_in(data_dir)) {
            Ok(bytes) => Self::decode(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The predecessor entry that completed the nonce `tenant`/`nonce`.
    #[must_use]
    pub fn done_nonce(&self, tenant: &str, nonce: &str) -> Option<DoneNonce> {
        let at = self.nonces.get(&Hash::sha256(&nonce_key(tenant, nonce)))?;
        Some(DoneNonce {
            origin: self.origins.get(at.origin as usize)?.clone(),
            index: at.index,
            request_hash: at.request_hash,
            outcome: at.outcome,
        })
    }

    /// The origin of the predecessor that consumed the approval `key`.
    #[must_use]
    pub fn approval_consumer(&self, key: &str) -> Option<&str> {
        let origin = self.approvals.get(&Hash::sha256(key.as_bytes()))?;
        self.origins.get(*origin as usize).map(String::as_str)
    }

    /// The payload commitment of the `log_start` entry this index belongs
    /// to.
    #[must_use]
    pub const fn link(&self) -> Hash {
        self.link
    }

    /// This index, belonging to the `log_start` entry whose payload
    /// commitment is `link`.
    #[must_use]
    pub fn linked_to(mut self, link: Hash) -> Self {
        self.link = link;
        self
    }

    /// How many nonces and approvals it holds.
    #[must_use]
    pub fn len(&self) -> (usize, usize) {
        (self.nonces.len(), self.approvals.len())
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nonces.is_empty() && self.approvals.is_empty()
    }

    /// This index with everything `ledger` (the log being retired) holds
    /// added: its own predecessors' first, then its entries and sled's
    /// approvals consumed for good. The ledger must be idle (service
    /// stopped, in-flight reservations already recorded).
    pub fn build(ledger: &Ledger) -> Result<Self, LedgerError> {
        let store = ledger.store().ok_or_else(|| {
            LedgerError::Config("rotation needs the embedded store (not PostgreSQL)".into())
        })?;
        let mut index = ledger.predecessor().cloned().unwrap_or_default();
        let origin = u32::try_from(index.origins.len()).map_err(|_| corrupt("too many logs"))?;
        index.origins.push(ledger.verifier().name().to_owned());
        for i in 0..ledger.head().size {
            if !store.completes_nonce(i)? {
                continue;
            }
            let (bytes, _) = ledger.entry(i)?;
            let entry = Entry::from_canonical_bytes(&bytes)?;
            index.nonces.insert(
                Hash::sha256(&nonce_key(&entry.tenant, &entry.nonce)),
                DoneAt {
                    origin,
                    index: i,
                    request_hash: entry.request_hash,
                    outcome: entry.outcome,
                },
            );
            if let Some(key) = entry.approval.consume_key(&entry.tenant) {
                index.approvals.insert(Hash::sha256(key.as_bytes()), origin);
            }
        }
        for key in store.approvals_consumed_for_good()? {
            index.approvals.insert(Hash::sha256(key.as_bytes()), origin);
        }
        Ok(index)
    }

    /// The file's bytes: `OXPRED02` ‖ link ‖ origins ‖ nonces ‖
    /// approvals ‖ SHA-256 of all before it (FORMATS.md, "Log rotation").
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(self.link.as_bytes());
        out.extend_from_slice(&(self.origins.len() as u32).to_be_bytes());
        for origin in &self.origins {
            out.extend_from_slice(&(origin.len() as u32).to_be_bytes());
            out.extend_from_slice(origin.as_bytes());
        }
        let mut nonces: Vec<_> = self.nonces.iter().collect();
        nonces.sort_by_key(|(k, _)| **k);
        out.extend_from_slice(&(nonces.len() as u64).to_be_bytes());
        for (key, at) in nonces {
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&at.origin.to_be_bytes());
            out.extend_from_slice(&at.index.to_be_bytes());
            out.extend_from_slice(at.request_hash.as_bytes());
            out.push(outcome_code(at.outcome));
        }
        let mut approvals: Vec<_> = self.approvals.iter().collect();
        approvals.sort_by_key(|(k, _)| **k);
        out.extend_from_slice(&(approvals.len() as u64).to_be_bytes());
        for (key, origin) in approvals {
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&origin.to_be_bytes());
        }
        let digest = Hash::sha256(&out);
        out.extend_from_slice(digest.as_bytes());
        out
    }

    /// Reads [`Self::encode`]'s bytes, refusing any that do not check.
    pub fn decode(bytes: &[u8]) -> Result<Self, LedgerError> {
        let body_len = bytes
            .len()
            .checked_sub(32)
            .ok_or_else(|| corrupt("too short"))?;
        let (body, digest) = bytes.split_at(body_len);
        if Hash::sha256(body).as_bytes() != digest {
            return Err(corrupt("its digest does not check"));
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC {
            return Err(corrupt("not a predecessor index"));
        }
        let mut index = Self {
            link: r.hash()?,
            ..Self::default()
        };
        for _ in 0..r.u32()? {
            let len = r.u32()? as usize;
            let origin = std::str::from_utf8(r.take(len)?).map_err(|_| corrupt("an origin"))?;
            index.origins.push(origin.to_owned());
        }
        let known = |origin: u32| (origin as usize) < index.origins.len();
        for _ in 0..r.u64()? {
            let key = r.hash()?;
            let at = DoneAt {
                origin: r.u32()?,
                index: r.u64()?,
                request_hash: r.hash()?,
                outcome: outcome_of(r.take(1)?[0]).ok_or_else(|| corrupt("an outcome"))?,
            };
            if !known(at.origin) {
                return Err(corrupt("a nonce of no listed log"));
            }
            index.nonces.insert(key, at);
        }
        for _ in 0..r.u64()? {
            let key = r.hash()?;
            let origin = r.u32()?;
            if !known(origin) {
                return Err(corrupt("an approval of no listed log"));
            }
            index.approvals.insert(key, origin);
        }
        if !r.0.is_empty() {
            return Err(corrupt("bytes after its records"));
        }
        Ok(index)
    }

    /// Writes the index into `data_dir` durably (a temporary file, synced,
    /// renamed, the directory synced), unless the same bytes are there. A
    /// different index is replaced only while the log is empty: once its
    /// `log_start` entry is in, its index is fixed.
    pub fn write(&self, data_dir: &Path, log_size: u64) -> Result<(), LedgerError> {
        let bytes = self.encode();
        match std::fs::read(Self::path_in(data_dir)) {
            Ok(found) if found == bytes => return Ok(()),
            Ok(_) if log_size > 0 => {
                return Err(corrupt(
                    "the successor holds another predecessor index; refusing to replace it",
                ))
            }
            _ => {}
        }
        write_file(data_dir, &Self::path_in(data_dir), &bytes)
    }
}

/// Writes `path` in `data_dir` durably: a temporary file, synced, renamed,
/// the directory synced.
pub fn write_file(data_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    let temporary = PathBuf::from(name);
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}

/// Refuses to start a log that a rotation has not finished, or whose
/// predecessor index is missing, misplaced or of another `log_start`
/// entry: the predecessors' done nonces would be open again.
pub fn check_start(ledger: &Ledger, data_dir: &Path) -> Result<(), LedgerError> {
    if data_dir.join(PENDING_FILE).exists() {
        return Err(LedgerError::Config(format!(
            "{}: a rotation into this directory is not finished ({PENDING_FILE}); run the same openexec rotate again",
            data_dir.display()
        )));
    }
    let first = match ledger.head().size {
        0 => None,
        _ => match ledger.entry(0) {
            Ok((bytes, _)) => Some(Entry::from_canonical_bytes(&bytes)?),
            // Damage is reported as any damaged read is; the index, if
            // any, is kept.
            Err(LedgerError::Store(crate::store::StoreError::Damaged(_))) => return Ok(()),
            Err(e) => return Err(e),
        },
    };
    let starts = first
        .as_ref()
        .filter(|e| e.action == crate::core::rotation::LOG_START_ACTION);
    match (starts, ledger.predecessor()) {
        (Some(entry), Some(index)) if index.link == entry.payload_commitment => Ok(()),
        (Some(_), Some(_)) => Err(corrupt(
            "it belongs to another log_start entry than this log's entry 0; refusing to start",
        )),
        (Some(_), None) => Err(corrupt(
            "missing, and this log's entry 0 is a log_start entry: without it the predecessors' done nonces would run again; refusing to start",
        )),
        (None, Some(_)) => Err(corrupt(
            "present, but this log's entry 0 is no log_start entry; refusing to start",
        )),
        (None, None) => Ok(()),
    }
}

/// A cursor over the index's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LedgerError> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, LedgerError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, LedgerError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn hash(&mut self) -> Result<Hash, LedgerError> {
        Hash::from_slice(self.take(32)?).map_err(|_| corrupt("a hash"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PredecessorIndex {
        let mut index = PredecessorIndex {
            link: Hash::sha256(b"log_start"),
            origins: vec!["a/log".into(), "a/log-g2".into()],
            ..PredecessorIndex::default()
        };
        index.nonces.insert(
            Hash::sha256(&nonce_key("t", "n1")),
            DoneAt {
                origin: 1,
                index: 7,
                request_hash: Hash::sha256(b"r"),
                outcome: Outcome::Interrupted,
            },
        );
        index.approvals.insert(Hash::sha256(b"v2\nk\nid"), 0);
        index
    }

    #[test]
    fn the_index_round_trips_and_answers_lookups() {
        let index = sample();
        let back = PredecessorIndex::decode(&index.encode()).unwrap();
        assert_eq!(back, index);
        let done = back.done_nonce("t", "n1").unwrap();
        assert_eq!((done.origin.as_str(), done.index), ("a/log-g2", 7));
        assert_eq!(done.outcome, Outcome::Interrupted);
        assert!(back.done_nonce("t", "n2").is_none());
        assert!(back.done_nonce("", "n1").is_none());
        assert_eq!(back.approval_consumer("v2\nk\nid"), Some("a/log"));
        assert_eq!(back.approval_consumer("v2\nk\nother"), None);
    }

    #[test]
    fn an_index_is_replaced_only_while_the_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let index = sample();
        let other = sample().linked_to(Hash::sha256(b"another log_start"));
        index.write(dir.path(), 0).unwrap();
        index.write(dir.path(), 1).unwrap();
        let err = other.write(dir.path(), 1).unwrap_err().to_string();
        assert!(err.contains("refusing to replace it"), "{err}");
        let loaded = PredecessorIndex::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded, index);
        other.write(dir.path(), 0).unwrap();
        let loaded = PredecessorIndex::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.link(), other.link());
    }

    #[test]
    fn a_flipped_byte_or_a_cut_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(PredecessorIndex::decode(&bad).is_err(), "byte {i}");
        }
        assert!(PredecessorIndex::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(PredecessorIndex::decode(b"").is_err());
    }
}
