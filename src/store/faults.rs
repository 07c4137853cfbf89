//! Fault injection at the storage boundary, for tests: each [`FaultPoint`]
//! can be armed to fail once, after a given number of successful operations,
//! and the failing operation can be held until the test lets it go (a stall),
//! so that a test can act while that operation is under way.
//! Unarmed (always, outside tests) it costs one atomic load per operation.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};

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

/// Armed faults: -1 is off; n ≥ 0 fails the operation after n more successes.
/// A point with a stall holds its failing operation until the stall is let go.
pub(super) struct Faults {
    armed: [AtomicI64; POINTS],
    stalls: Mutex<Vec<(FaultPoint, HeldOperation)>>,
}

/// The storage side of a [`FaultStall`].
struct HeldOperation {
    reached: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

/// The test's side of a stalled fault: [`Self::wait_reached`] returns once
/// the failing operation has begun; the operation fails when [`Self::release`] is
/// called (or the stall is dropped).
pub struct FaultStall {
    reached: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

impl FaultStall {
    /// Blocks until the failing operation is under way (held), or the store is
    /// gone.
    pub fn wait_reached(&self) {
        let _ = self.reached.recv();
    }

    /// Lets the held operation fail.
    pub fn release(&self) {
        let _ = self.release.send(());
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            armed: [
                AtomicI64::new(-1),
                AtomicI64::new(-1),
                AtomicI64::new(-1),
                AtomicI64::new(-1),
                AtomicI64::new(-1),
            ],
            stalls: Mutex::new(Vec::new()),
        }
    }
}

impl Faults {
    pub(super) fn arm(&self, point: FaultPoint, successes_first: u32) {
        self.armed[point as usize].store(i64::from(successes_first), Ordering::SeqCst);
    }

    /// Arms `point` like [`Self::arm`], and holds its failing operation until
    /// the returned stall is let go.
    pub(super) fn arm_stalled(&self, point: FaultPoint, successes_first: u32) -> FaultStall {
        let (reached_tx, reached_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        self.stalls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                point,
                HeldOperation {
                    reached: reached_tx,
                    release: release_rx,
                },
            ));
        self.arm(point, successes_first);
        FaultStall {
            reached: reached_rx,
            release: release_tx,
        }
    }

    /// `Err` exactly once when the armed count runs out (after the stall,
    /// if the point has one).
    pub(super) fn check(&self, point: FaultPoint) -> Result<(), StoreError> {
        let slot = &self.armed[point as usize];
        if slot.load(Ordering::Relaxed) < 0 {
            return Ok(());
        }
        if slot.fetch_sub(1, Ordering::SeqCst) == 0 {
            self.hold(point);
            return Err(StoreError::Io(std::io::Error::other(format!(
                "injected fault at {point:?}"
            ))));
        }
        Ok(())
    }

    /// Holds a failing operation of `point` while its stall lasts.
    fn hold(&self, point: FaultPoint) {
        let held = {
            let mut stalls = self.stalls.lock().unwrap_or_else(PoisonError::into_inner);
            stalls
                .iter()
                .position(|(p, _)| *p == point)
                .map(|at| stalls.swap_remove(at).1)
        };
        if let Some(op) = held {
            let _ = op.reached.send(());
            let _ = op.release.recv();
        }
    }
}
