//! Fault injection at the storage boundary, for tests: each [`FaultPoint`]
//! can be armed to fail once, after a given number of successful passes.
//! Unarmed (always, outside tests) it costs one atomic load per operation.

use std::sync::atomic::{AtomicI64, Ordering};

use super::StoreError;

/// A storage operation where a failure can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// The nonce-reservation transaction.
    ReserveWrite,
    /// The fdatasync that makes a reservation durable.
    ReserveSync,
    /// The batch transaction of the sequencer.
    CommitWrite,
    /// The fdatasync of `entries.bin`, which must precede the batch
    /// transaction.
    EntriesSync,
    /// The flush + fdatasync after the batch transaction.
    CommitSync,
}

const POINTS: usize = 5;

/// Armed faults: -1 is off; n ≥ 0 fails the pass after n more successes.
pub(super) struct Faults([AtomicI64; POINTS]);

impl Default for Faults {
    fn default() -> Self {
        Self([
            AtomicI64::new(-1),
            AtomicI64::new(-1),
            AtomicI64::new(-1),
            AtomicI64::new(-1),
            AtomicI64::new(-1),
        ])
    }
}

impl Faults {
    pub(super) fn arm(&self, point: FaultPoint, successes_first: u32) {
        self.0[point as usize].store(i64::from(successes_first), Ordering::SeqCst);
    }

    /// `Err` exactly once when the armed count runs out.
    pub(super) fn check(&self, point: FaultPoint) -> Result<(), StoreError> {
        let slot = &self.0[point as usize];
        if slot.load(Ordering::Relaxed) < 0 {
            return Ok(());
        }
        if slot.fetch_sub(1, Ordering::SeqCst) == 0 {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "injected fault at {point:?}"
            ))));
        }
        Ok(())
    }
}
