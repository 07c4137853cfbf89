//! Group commit for nonce reservations.
//!
//! A reservation must be durable before its handler runs. Rather than each
//! request taking a lock and waiting its turn for an fdatasync (a convoy of
//! context switches under load), one thread takes every queued
//! reservation, runs their transactions, makes them durable with a single
//! fdatasync, and only then answers each request. A reservation whose sync
//! failed is answered with the error: its handler never runs.

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::store::{NonceRecord, Reservation, Store, StoreError};

/// Most reservations made durable by one fdatasync.
const MAX_GROUP: usize = 1024;

struct Job {
    key: Vec<u8>,
    record: NonceRecord,
    reply: tokio::sync::oneshot::Sender<Result<Reservation, StoreError>>,
}

/// The reservation writer thread.
pub struct Reserver {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Reserver {
    /// Starts the thread.
    pub fn start(store: Store) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("openexec-reserver".into())
            .spawn(move || run(&store, &rx))?;
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Reserves `key` for `record` (and consumes its approval), durably.
    pub async fn reserve(
        &self,
        key: Vec<u8>,
        record: NonceRecord,
    ) -> Result<Reservation, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| tx.send(Job { key, record, reply }).is_ok());
        if !sent {
            return Err(StoreError::Corrupt(
                "the reservation writer has stopped".into(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Corrupt(
                "the reservation writer has stopped".into(),
            ))
        })
    }
}

impl Drop for Reserver {
    fn drop(&mut self) {
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
    }
}

fn run(store: &Store, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let results: Vec<Result<Reservation, StoreError>> = jobs
            .iter()
            .map(|j| store.reserve(&j.key, &j.record, j.record.approval_key.as_deref()))
            .collect();
        // Only new reservations change state; they must be durable first.
        let synced = if results
            .iter()
            .any(|r| matches!(r, Ok(Reservation::Reserved)))
        {
            store.sync_reservations().map_err(|e| e.to_string())
        } else {
            Ok(())
        };
        for (job, result) in jobs.into_iter().zip(results) {
            let answer = match (&synced, result) {
                (Err(e), Ok(Reservation::Reserved)) => {
                    Err(StoreError::Io(std::io::Error::other(e.clone())))
                }
                (_, r) => r,
            };
            let _ = job.reply.send(answer);
        }
    }
}
