//! The journal's own thread: appends each frame handed to it, in the order
//! handed, so that the `fdatasync` of a writer cycle's reservations runs
//! while the ledger's sequencer writes and syncs the same cycle's entries
//! (`entries.bin`) — two device syncs at once instead of one after the
//! other. The sequencer hands a cycle's records over as soon as its
//! reservations are decided ([`crate::store::Store::write_cycle`]); the
//! syncer waits on the cycle's [`JournalTicket`] before it answers those
//! reservations or commits the cycle's batch.
//!
//! Frames keep the journal's rule: each is appended only after the one
//! before it is durable (one thread, a first-in first-out queue), and
//! after a failure every later frame is refused
//! ([`super::journal::Journal::append`]).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::journal::{Journal, JournalRecord};
use crate::store::StoreError;

/// Records of one frame, each with its attempt's exec_id.
pub(crate) type FrameRecords = Vec<(String, JournalRecord)>;

type Job = (FrameRecords, mpsc::SyncSender<Result<(), StoreError>>);

/// Where one frame's append answers: durable, or why not.
#[derive(Debug)]
pub struct JournalTicket(mpsc::Receiver<Result<(), StoreError>>);

impl JournalTicket {
    /// Waits until the frame is durable (and every frame handed over
    /// before it).
    pub(crate) fn wait(self) -> Result<(), StoreError> {
        self.0.recv().unwrap_or_else(|_| {
            Err(StoreError::Corrupt(
                "the reservation journal's thread stopped".into(),
            ))
        })
    }
}

/// The thread and the queue to it.
pub(crate) struct JournalWriter {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl JournalWriter {
    /// Starts the thread appending to `journal`.
    pub(crate) fn start(journal: Arc<Journal>) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("openexec-journal".into())
            .spawn(move || {
                while let Ok((records, reply)) = rx.recv() {
                    let _ = reply.send(journal.append(records));
                }
            })?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands `records` over as the next frame (an empty frame appends
    /// nothing, but still answers only after every frame before it, and
    /// refuses if the journal is broken).
    pub(crate) fn submit(&self, records: FrameRecords) -> Result<JournalTicket, StoreError> {
        let (reply, ticket) = mpsc::sync_channel(1);
        let stopped = || StoreError::Corrupt("the reservation journal's thread stopped".into());
        let tx = self.tx.lock().map_err(|_| stopped())?;
        tx.as_ref()
            .ok_or_else(stopped)?
            .send((records, reply))
            .map_err(|_| stopped())?;
        Ok(JournalTicket(ticket))
    }

    /// Stops the thread once every frame handed over is appended.
    pub(crate) fn stop(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.stop();
    }
}
