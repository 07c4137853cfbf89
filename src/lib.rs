//! OpenExec: a deterministic execution boundary for AI agents, and the
//! receipt ledger that witnesses it.
//!
//! # Layout
//!
//! - [`core`] — the pure core: canonical JSON, hashing, ledger entries,
//!   signatures, checkpoints, Merkle proofs and receipts. It performs no I/O,
//!   spawns nothing and never reads the clock or the OS random source:
//!   time and randomness are passed in by the caller. It builds with
//!   `--no-default-features`, and the offline verifier and fuzz targets use
//!   it alone.
//! - `store` (feature `server`) — the only module that imports sled: trees,
//!   key encoding, the Merkle `HashReader`, and the real fsync that makes a
//!   batch durable. It knows nothing of HTTP or of what an entry means.
//! - `ledger` (feature `server`) — the sequencer: the single writer that
//!   assigns indices, chains and signs entries, and commits whatever is
//!   queued as one durable batch (group commit); plus proofs and the audit.
//!   It never answers a caller before the batch holding its entry is synced.
//! - [`cli`] — argument parsing and the thin subcommand shells.
//!
//! The binary `openexec` (src/main.rs) only parses arguments and dispatches.

pub mod cli;
pub mod core;

#[cfg(feature = "server")]
pub mod exec;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod ledger;
#[cfg(feature = "server")]
pub mod store;
