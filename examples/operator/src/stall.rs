//! A test hook, for the kill tests only: `OPERATOR_STALL` names handler
//! points where the handler stops (sleeps, without blocking a thread) so
//! that a test can kill the process there, e.g.
//! `OPERATOR_STALL=send_email:after,transfer:before`. A stalled handler
//! prints one line to stderr (`openexec-operator test hook: ACTION stalled
//! PHASE its effect`) and sleeps until its deadline cancels it.

use std::sync::OnceLock;
use std::time::Duration;

/// Where in a handler a stall may be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the handler's effect.
    Before,
    /// After its effect, before it returns.
    After,
}

impl Phase {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::After => "after",
        }
    }
}

/// The variable read (once per process).
pub const STALL_VAR: &str = "OPERATOR_STALL";

fn points() -> &'static [String] {
    static POINTS: OnceLock<Vec<String>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(STALL_VAR)
            .unwrap_or_default()
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    })
}

/// Stalls here if `OPERATOR_STALL` names `action:phase`.
pub async fn point(action: &str, phase: Phase) {
    let wanted = format!("{action}:{}", phase.as_str());
    if points().contains(&wanted) {
        eprintln!(
            "openexec-operator test hook: {action} stalled {} its effect",
            phase.as_str()
        );
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
}
