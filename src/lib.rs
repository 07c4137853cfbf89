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
//! - `action` (feature `server`) — the handler API operators write their
//!   actions with: the `Action` trait (typed payload and JSON Schema, pure
//!   check, async run), effects classes, the run context (exec_id, nonce,
//!   tenant, deadline, idempotency key) and the sealed registry with its
//!   fingerprint; the built-in demo actions use it too.
//! - `exec` (feature `server`) — the execution boundary: the pipeline of one
//!   request (parse, request hash, allow-list, registry, approval, payload
//!   check, nonce reservation, handler, record), with handlers run on a
//!   runtime of their own under their deadlines. It never runs a handler
//!   with effects without a durable reservation and never answers before
//!   the attempt's entry is durable.
//! - `http` (feature `server`) — actix-web routes, one error mapping, the
//!   OpenAPI document. Thin: no policy, no formats.
//! - `witness` (feature `server`) — `openexec witness`: follows logs,
//!   checks consistency with the rule in `core::witness`, persists its
//!   state before it cosigns, serves C2SP `POST /add-checkpoint` and keeps
//!   evidence of forks and rollbacks. It never cosigns a checkpoint
//!   inconsistent with one it cosigned before.
//! - `auth` (feature `server`) — who is calling: principals (role, tenant,
//!   allow-list of actions), their bearer tokens (stored only as hashes,
//!   compared in constant time, revocable, expiring), the records file a
//!   running service reloads, and the `Authorization` header check.
//! - [`pg`] — the PostgreSQL backend of the ledger: several nodes, one log.
//! - [`cli`] — argument parsing and the thin subcommand shells.
//!
//! The binary `openexec` (src/main.rs) only parses arguments and dispatches
//! with the built-in actions; an operator's binary calls
//! [`cli::main`] with its own registry.

pub mod cli;
pub mod core;

#[cfg(feature = "server")]
pub mod action;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod exec;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod instruments;
#[cfg(feature = "server")]
pub mod ledger;
#[cfg(feature = "server")]
pub mod pg;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod witness;

/// The README's Rust example compiles (`cargo test --doc`).
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
