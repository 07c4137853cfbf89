//! The background thread of a key table: fills its filters once, then
//! makes the table durable about once per [`SYNC_INTERVAL`].

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::{KeyTable, SYNC_INTERVAL};
use crate::store::StoreError;

/// The thread that first reads the table once ([`KeyTable::warm`]: the
/// filters, and the last table's pages for the writer's inserts), then
/// makes the table durable about once per [`SYNC_INTERVAL`]; stopped
/// (and joined) when dropped.
pub(crate) struct Syncer {
    pub(crate) stop: Arc<(Mutex<bool>, Condvar)>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts syncing `table` in the background.
    pub(crate) fn start(table: Arc<KeyTable>) -> Result<Self, StoreError> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let name = table.name;
        let thread = std::thread::Builder::new()
            .name(format!("sync-{name}"))
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let is_stopped = || *stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let started = std::time::Instant::now();
                match table.warm(is_stopped) {
                    Ok(()) if !is_stopped() => tracing::info!(
                        tables = table.tables.load(Ordering::Acquire),
                        ms = started.elapsed().as_millis(),
                        "{name}: filters filled"
                    ),
                    Ok(()) => {}
                    Err(e) => tracing::debug!(error = %e, "could not read {name} ahead"),
                }
                let mut guard = stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                while !*guard {
                    guard = wake
                        .wait_timeout(guard, SYNC_INTERVAL)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                    if let Err(e) = table.sync_behind_the_writer() {
                        tracing::warn!(error = %e, "could not sync {name}; the next open indexes the rest again");
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
