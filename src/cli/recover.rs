//! On a log shared by several nodes (PostgreSQL), the reservations of a
//! node that died appear while this one runs: a thread looks for them
//! every [`EVERY`] and records them (`interrupted`, or released for an
//! idempotent-downstream handler), as every node does once at start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::exec::Boundary;

/// How often a node looks for reservations left by dead nodes (their
/// leases run for ten seconds past their last renewal).
const EVERY: Duration = Duration::from_secs(2);

/// The recovery thread; stopped and joined when dropped.
pub(super) struct Recovery {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread.
pub(super) fn spawn(boundary: Arc<Boundary>) -> std::io::Result<Recovery> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("openexec-recovery".into())
        .spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(EVERY);
                match boundary.recover_interrupted() {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(count = n, "recorded the attempts a dead node left in flight"),
                    Err(e) => tracing::warn!(error = %e, "recording the attempts a dead node left in flight"),
                }
            }
        })?;
    Ok(Recovery {
        stop,
        thread: Some(thread),
    })
}

impl Drop for Recovery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
