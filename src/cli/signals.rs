//! Stop signals for the long-running subcommands (`serve`, `witness`).
//!
//! A server announces itself with one line on stdout, and a supervisor or
//! a test may stop it as soon as it has read that line. actix-server sets
//! up its own SIGTERM/SIGINT listeners only when the server future first
//! runs, after its workers have started: a signal sent in between would
//! either kill the process without a clean close (no handler yet) or be
//! lost (handler installed, listener not yet subscribed) and leave the
//! server running. So the shells start listening here, before they print
//! the line, and hand actix the resulting future in place of its own
//! handlers.
//!
//! This module only turns signals into "stop now"; what a stop does
//! (drain requests, commit queued appends) is the server's business.

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM and SIGINT listeners, registered from [`StopSignals::listen`] on.
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    /// Starts listening. Call it inside the runtime (the actix `System`)
    /// that will serve: tokio delivers signals through that runtime's
    /// driver. A signal received from here on is never lost, even one that
    /// arrives before the server runs.
    pub fn listen() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the first SIGTERM or SIGINT; both ask for a graceful
    /// stop (in-flight requests are drained, nothing is cut short).
    pub async fn received(mut self) {
        let name = tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        };
        tracing::info!("{name} received; stopping gracefully");
        super::sd_notify::notify("STOPPING=1");
    }
}
