//! A server of this test process, on a loopback port, over a registry of
//! the test's own actions (which a `openexec serve` process cannot have).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::Arc;

use openexec::action::Registry;

/// A running in-process server; stopped (and its thread joined) on drop.
pub struct InProcess {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// Serves `registry` in demo mode, without principals (authentication
    /// off), from a fresh data directory, with `workers` HTTP workers.
    pub fn start(registry: Registry, workers: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let boundary = super::boundary_with(
            dir.path(),
            openexec::exec::Mode::Demo,
            super::no_approvals(),
            registry,
        );
        let tokens = openexec::auth::TokenStore::open(dir.path()).unwrap();
        let state = Arc::new(openexec::http::AppState::new(
            Arc::new(boundary),
            openexec::auth::Authenticator::new(Arc::new(tokens)),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new()
                .block_on(openexec::http::run(listener, state, workers, async move {
                    let _ = stopped.await;
                }))
                .unwrap();
        });
        Self {
            base,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
