//! Where handlers run: a multi-threaded tokio runtime of the boundary's
//! own, so that no operator code ever runs on an HTTP worker. A handler
//! that blocks holds one of these threads, not a worker that also answers
//! receipts, health checks and other agents.
//!
//! The HTTP worker awaits the handler's task under its deadline: past it
//! the task is aborted (dropped at its next await) and the attempt is
//! recorded as past its deadline. A panic in the task is caught by tokio
//! and reported as [`Ran::Panicked`]. A handler that declares
//! `Action::INLINE` (it never blocks) is polled on the worker itself, under
//! the same deadline, its panics caught there.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use super::unwind::CatchUnwind;
use crate::action::ActionError;

/// How a handler's run ended.
pub(super) enum Ran {
    /// It returned.
    Returned(Result<Value, ActionError>),
    /// It panicked.
    Panicked,
    /// It was still running at its deadline and was aborted.
    PastDeadline,
    /// The runtime dropped it (the service is shutting down).
    Cancelled,
}

/// The handler runtime; shut down in the background when dropped (the
/// boundary may be dropped on an async thread, where a blocking shutdown
/// is not allowed).
pub(super) struct HandlerRuntime(Option<tokio::runtime::Runtime>);

impl HandlerRuntime {
    /// One worker thread per core the process may use.
    pub(super) fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("openexec-handler")
            .enable_all()
            .build()?;
        Ok(Self(Some(runtime)))
    }

    /// Runs `run` on the handler runtime (or, `inline`, right here on the
    /// calling worker) and waits for it, at most `deadline`.
    pub(super) async fn run<F>(&self, deadline: Duration, inline: bool, run: F) -> Ran
    where
        F: Future<Output = Result<Value, ActionError>> + Send + 'static,
    {
        if inline {
            return match tokio::time::timeout(deadline, CatchUnwind::new(run)).await {
                Ok(Ok(returned)) => Ran::Returned(returned),
                Ok(Err(_)) => Ran::Panicked,
                Err(_) => Ran::PastDeadline,
            };
        }
        let Some(runtime) = &self.0 else {
            return Ran::Cancelled;
        };
        let task = runtime.spawn(run);
        let abort = task.abort_handle();
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(returned)) => Ran::Returned(returned),
            Ok(Err(e)) if e.is_panic() => Ran::Panicked,
            Ok(Err(_)) => Ran::Cancelled,
            Err(_) => {
                abort.abort();
                Ran::PastDeadline
            }
        }
    }
}

impl Drop for HandlerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
