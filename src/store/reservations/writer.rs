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
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::journal::{Journal, JournalRecord};
use crate::store::StoreError;

/// Records of one frame, each with its attempt's exec_id.
pub(crate) type FrameRecords = Vec<(String, JournalRecord)>;

/// One frame handed over. Dropped without its append (the thread gone,
/// or unwinding), it fails its ticket, so that no one waits for it
/// forever.
struct Job {
    records: Option<FrameRecords>,
    ticket: JournalTicket,
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.ticket.is_finished() {
            self.ticket
                .finish(Err("the reservation journal's thread stopped".into()));
        }
    }
}

/// What runs once a frame's append is over: `Ok` when it is durable (with
/// every frame before it), else why not.
pub type Then = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// Where one frame's append answers. Cloned by whoever waits for it: the
/// ledger's syncer waits ([`Self::wait`]); the sequencer may leave work to
/// run on the journal's thread the moment the frame is durable
/// ([`Self::then`]).
#[derive(Clone)]
pub struct JournalTicket(Arc<(Mutex<TicketState>, Condvar)>);

#[derive(Default)]
struct TicketState {
    /// Set once the append is over.
    result: Option<Result<(), String>>,
    then: Option<Then>,
}

impl std::fmt::Debug for JournalTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalTicket")
    }
}

impl JournalTicket {
    fn pending() -> Self {
        Self(Arc::new((
            Mutex::new(TicketState::default()),
            Condvar::new(),
        )))
    }

    /// A ticket whose frame was never handed over (its records stay
    /// staged for the next frame): failed with `why`.
    pub(crate) fn failed(why: &StoreError) -> Self {
        let ticket = Self::pending();
        ticket.finish(Err(why.to_string()));
        ticket
    }

    fn is_finished(&self) -> bool {
        self.lock().result.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, TicketState> {
        // Nothing panics while holding it; a poisoned state is still whole.
        self.0
             .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the append's result and runs what waits for it.
    fn finish(&self, result: Result<(), String>) {
        let then = {
            let mut state = self.lock();
            state.result = Some(result.clone());
            state.then.take()
        };
        self.0 .1.notify_all();
        if let Some(then) = then {
            then(result.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }

    /// Waits until the frame is durable (and every frame handed over
    /// before it).
    pub(crate) fn wait(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        loop {
            if let Some(result) = &state.result {
                return result.clone().map_err(StoreError::Journal);
            }
            state = self
                .0
                 .1
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Runs `then` once the append is over: on the journal's thread, or
    /// here if it already is. At most one per ticket (a second replaces
    /// the first if that has not run).
    pub fn then(&self, then: Then) {
        let mut state = self.lock();
        match state.result.clone() {
            None => state.then = Some(then),
            Some(result) => {
                drop(state);
                then(result.as_ref().map(|_| ()).map_err(String::as_str));
            }
        }
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
                while let Ok(mut job) = rx.recv() {
                    let records = job.records.take().unwrap_or_default();
                    let appended = journal.append(records).map_err(|e| e.to_string());
                    job.ticket.finish(appended);
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
        let ticket = JournalTicket::pending();
        let stopped = || StoreError::Journal("the journal's thread stopped".into());
        let tx = self.tx.lock().map_err(|_| stopped())?;
        tx.as_ref()
            .ok_or_else(stopped)?
            .send(Job {
                records: Some(records),
                ticket: ticket.clone(),
            })
            .map_err(|_| stopped())?;
        Ok(ticket)
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
