//! Damage: stored bytes that fail their check (a record's CRC, a key-table
//! slot's or header's, a commit-ring copy's digest). Every read that takes
//! a decision checks what it reads; damage found makes that read fail
//! ([`StoreError::Damaged`], never another answer) and is noted here, so
//! that the service can say it is not ready. Damage to a derived file found
//! at open is repaired by rebuilding the file from `entries.bin` and noted
//! as a repair.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::StoreError;

/// Where and what: one damaged place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} is damaged at byte {offset}: {what}")]
pub struct Damaged {
    /// The file, in the store directory.
    pub file: &'static str,
    /// The first byte of the damaged record, slot or header.
    pub offset: u64,
    /// What failed its check.
    pub what: String,
}

impl Damaged {
    pub(super) fn new(file: &'static str, offset: u64, what: impl Into<String>) -> Self {
        Self {
            file,
            offset,
            what: what.into(),
        }
    }
}

/// The damage a store has met since it was opened.
#[derive(Debug, Default)]
pub(super) struct DamageLog {
    /// Set while the store opens: what is found then is repaired, or the
    /// open fails.
    opening: AtomicBool,
    found: AtomicU64,
    first: Mutex<Option<Damaged>>,
    repaired: Mutex<Vec<String>>,
}

impl DamageLog {
    /// Notes damage that fails reads, and returns the error to fail them
    /// with. The first is logged at error level; the rest are counted.
    pub(super) fn found(&self, damage: Damaged) -> StoreError {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if self.opening.load(Ordering::Acquire) {
            tracing::warn!("{damage}");
        } else if first.is_none() {
            tracing::error!(
                "{damage}; requests that need it are refused, and the service reports \
                 itself not ready (run `openexec audit` on the stopped service)"
            );
        }
        if first.is_none() {
            *first = Some(damage.clone());
        }
        self.found.fetch_add(1, Ordering::Relaxed);
        StoreError::Damaged(damage)
    }

    /// A log for a store being opened (see [`Self::settle_open`]).
    pub(super) fn opening() -> Self {
        Self {
            opening: AtomicBool::new(true),
            ..Self::default()
        }
    }

    /// Notes damage to a derived file that is being repaired (the file
    /// derived again from `entries.bin`).
    pub(super) fn repaired(&self, what: String) {
        tracing::warn!("{what}");
        self.repaired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(what);
    }

    /// At the end of a successful open: the damage met while opening was
    /// repaired (an open that could not repair it failed).
    pub(super) fn settle_open(&self) {
        let first = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.found.store(0, Ordering::Relaxed);
        self.opening.store(false, Ordering::Release);
        if let Some(damage) = first {
            self.repaired(format!("{damage}: repaired at open"));
        }
    }

    /// How many damaged reads were met.
    pub(super) fn count(&self) -> u64 {
        self.found.load(Ordering::Relaxed)
    }

    /// The first damage met, if any.
    pub(super) fn first(&self) -> Option<Damaged> {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The repairs made.
    pub(super) fn repairs(&self) -> Vec<String> {
        self.repaired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests;
