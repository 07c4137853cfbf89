//! The checkpoint memo: the last checkpoint this log signed, kept in a file
//! *outside* the data directory, so that a data directory rolled back to an
//! older copy (or swapped for a forked one) is caught at start instead of
//! being extended — which would make the log sign a checkpoint that
//! contradicts one it already signed.
//!
//! The memo is rewritten (write + rename) after a batch at most every
//! 20 ms (`syncer::MEMO_INTERVAL`) and when the writer stops, without
//! an fsync of its own: after a crash it can only be *older* than the
//! durable head, and an older checkpoint of the same log is still a prefix
//! of it, so the check stays sound; it just covers slightly less. A memo whose
//! checkpoint is not a prefix of the stored tree refuses the start.

use std::path::{Path, PathBuf};

use super::LedgerError;
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::proof::{tree_root, TreeSize};
use crate::core::signing::LogVerifier;
use crate::store::{Head, Store, StoreHashReader};

/// Where the memo lives.
#[derive(Debug, Clone)]
pub struct CheckpointMemo {
    path: PathBuf,
}

impl CheckpointMemo {
    /// A memo at `path`.
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The default for a data directory: a sibling file `<dir>.checkpoint`.
    #[must_use]
    pub fn default_for(data_dir: &Path) -> Self {
        let mut name = data_dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "openexec-data".into());
        name.push(".checkpoint");
        Self {
            path: data_dir.with_file_name(name),
        }
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the memo with `note` (atomic rename; no fsync, see above).
    pub fn record(&self, note: &str) -> std::io::Result<()> {
        let tmp = self.path.with_extension("checkpoint.tmp");
        std::fs::write(&tmp, note)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Checks the stored log against the memo: the memo's checkpoint must be
    /// signed by this log and be a prefix of the stored tree.
    pub fn check(
        &self,
        store: &Store,
        verifier: &LogVerifier,
        head: &Head,
    ) -> Result<(), LedgerError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(LedgerError::Io(e)),
        };
        let memo = SignedCheckpoint::open(&text, verifier).map_err(|e| {
            LedgerError::Config(format!(
                "checkpoint memo {} was not signed by this log's key ({e}); if you deliberately started a new log, delete it",
                self.path.display()
            ))
        })?;
        if memo.size() > head.size {
            return Err(LedgerError::Config(format!(
                "this log already signed a checkpoint of size {} but the data directory holds only {} entries: it was rolled back; refusing to sign a contradicting checkpoint (if you deliberately started over, delete {})",
                memo.size(),
                head.size,
                self.path.display()
            )));
        }
        let root = tree_root(&StoreHashReader(store), TreeSize(memo.size()))?;
        if root != memo.root() {
            return Err(LedgerError::Config(format!(
                "the data directory's tree of size {} differs from the checkpoint this log signed: it was replaced by a fork; refusing to start (if you deliberately started over, delete {})",
                memo.size(),
                self.path.display()
            )));
        }
        Ok(())
    }
}
