//! The pure core: formats, hashing, signing, proofs and receipts.
//!
//! Nothing in here does I/O, blocks, spawns threads, reads the clock or asks
//! the OS for randomness; those come in as arguments. Every parser is strict
//! (it rejects trailing data and non-canonical encodings) and every verifier
//! returns a typed error instead of panicking, whatever its input.
//!
//! The exact byte formats are specified in `docs/FORMATS.md`.

pub mod approval;
pub mod canonical;
pub mod checkpoint;
pub mod cosignature;
pub mod entry;
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod ijson;
pub mod policy;
pub mod proof;
pub mod pyjson;
pub mod receipt;
pub mod request;
pub mod rotation;
pub mod signing;
pub mod tile_audit;
pub mod tile_path;
pub mod tlog_proof;
pub mod witness;
