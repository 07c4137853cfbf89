//! The schema, created and versioned by the program: every node runs
//! [`prepare`] at start (statements that are no-ops once done, so nodes
//! may start together), then checks the recorded version and the log's
//! origin and key. Only SQL that PostgreSQL, CockroachDB and YugabyteDB
//! all run: plain tables, primary keys, one `UNIQUE` column, no sequences,
//! no advisory locks, no triggers.

use tokio_postgres::Client;

use super::PgError;
use crate::core::checkpoint::SignedCheckpoint;
use crate::core::signing::LogSigner;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i32 = 1;

/// The tables (all prefixed, so the log can share a database).
///
/// - `openexec_head`: the one row every batch locks (`FOR UPDATE`): size,
///   root, the last leaf hash (the next entry's `prev`), the frontier
///   (see [`super::tree`]) and the signed checkpoint of that size.
/// - `openexec_entries`: one row per entry; the primary key is the fence
///   against two entries at one index; `exec_id` is unique (NULL for a
///   replay, which repeats its original's exec_id).
/// - `openexec_nonces`: a nonce in flight (`entry_idx` NULL, `owner` the
///   node that reserved it) or done (`entry_idx` the entry that completed
///   it), with the attempt's record (what an `interrupted` entry needs).
/// - `openexec_approvals`: an approval held by a reservation in flight, or
///   consumed (by `entry_idx`, or for good when NULL after its nonce is
///   done).
/// - `openexec_nodes`: each node's lease, on database time.
/// - `openexec_redactions`: one row per redacted entry (`idx`), naming the
///   `redacted` entry that records it (`entry_idx`) and its reason; written
///   in the transaction of that entry's batch, with the redacted entry's
///   `content` set to NULL. The primary key refuses a second redaction of
///   one entry.
const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS openexec_schema (id SMALLINT PRIMARY KEY, version INT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS openexec_head (id SMALLINT PRIMARY KEY, origin TEXT NOT NULL, \
     vkey TEXT NOT NULL, size BIGINT NOT NULL, root BYTEA NOT NULL, last_leaf BYTEA NOT NULL, \
     frontier BYTEA NOT NULL, checkpoint TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE IF NOT EXISTS openexec_entries (idx BIGINT PRIMARY KEY, record BYTEA NOT NULL, \
     signature BYTEA NOT NULL, hashes BYTEA NOT NULL, exec_id TEXT UNIQUE, \
     completes BOOLEAN NOT NULL, content BYTEA)",
    "CREATE TABLE IF NOT EXISTS openexec_checkpoints (size BIGINT PRIMARY KEY, note TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS openexec_nonces (nonce_key BYTEA PRIMARY KEY, entry_idx BIGINT, \
     owner TEXT, tenant TEXT NOT NULL, nonce TEXT NOT NULL, exec_id TEXT NOT NULL, \
     action TEXT NOT NULL, request_hash BYTEA NOT NULL, approval_key TEXT, \
     effects TEXT NOT NULL, principal TEXT)",
    "CREATE TABLE IF NOT EXISTS openexec_approvals (consume_key TEXT PRIMARY KEY, \
     nonce_key BYTEA NOT NULL, entry_idx BIGINT)",
    "CREATE TABLE IF NOT EXISTS openexec_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS openexec_nodes (node_id TEXT PRIMARY KEY, \
     lease_until TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE IF NOT EXISTS openexec_redactions (idx BIGINT PRIMARY KEY, \
     entry_idx BIGINT NOT NULL, reason TEXT NOT NULL)",
];

/// Attempts at creating the schema: two nodes creating the same table at
/// once can make one of them fail (PostgreSQL's catalog is not guarded by
/// `IF NOT EXISTS` against a concurrent creator); the next attempt sees it.
const ATTEMPTS: usize = 5;

/// Creates what is missing, records the version and the genesis head (the
/// empty tree and its signed checkpoint), and refuses a database of
/// another version, origin or key.
pub(super) async fn prepare(client: &Client, signer: &LogSigner) -> Result<(), PgError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match create(client, signer).await {
            Ok(()) => return check(client, signer).await,
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| PgError::Corrupt("schema not created".into())))
}

async fn create(client: &Client, signer: &LogSigner) -> Result<(), PgError> {
    for table in TABLES {
        client.batch_execute(table).await?;
    }
    client
        .execute(
            "INSERT INTO openexec_schema (id, version) VALUES (0, $1) ON CONFLICT (id) DO NOTHING",
            &[&SCHEMA_VERSION],
        )
        .await?;
    let root = crate::core::hash::empty_tree_hash();
    let checkpoint = SignedCheckpoint::sign(signer, 0, root)
        .map_err(|e| PgError::Corrupt(format!("signing the genesis checkpoint: {e}")))?;
    let note = checkpoint.note_text();
    client
        .execute(
            "INSERT INTO openexec_head (id, origin, vkey, size, root, last_leaf, frontier, \
             checkpoint, updated_at) VALUES (0, $1, $2, 0, $3, $4, $5, $6, now()) \
             ON CONFLICT (id) DO NOTHING",
            &[
                &signer.name(),
                &signer.verifier().vkey(),
                &root.as_bytes().as_slice(),
                &crate::core::entry::GENESIS_PREV.as_bytes().as_slice(),
                &Vec::<u8>::new(),
                &note,
            ],
        )
        .await?;
    client
        .execute(
            "INSERT INTO openexec_checkpoints (size, note) VALUES (0, $1) ON CONFLICT (size) DO NOTHING",
            &[&note],
        )
        .await?;
    Ok(())
}

async fn check(client: &Client, signer: &LogSigner) -> Result<(), PgError> {
    let version: i32 = client
        .query_one("SELECT version FROM openexec_schema WHERE id = 0", &[])
        .await?
        .try_get(0)?;
    if version != SCHEMA_VERSION {
        return Err(PgError::Config(format!(
            "the database holds an OpenExec log of schema version {version}; this OpenExec reads version {SCHEMA_VERSION} only"
        )));
    }
    let row = client
        .query_one("SELECT origin, vkey FROM openexec_head WHERE id = 0", &[])
        .await?;
    let (origin, vkey): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let ours = signer.verifier().vkey();
    if vkey != ours || origin != signer.name() {
        return Err(PgError::Config(format!(
            "the database holds the log {origin:?} with key {vkey:?}, but this node is configured with {:?} and key {ours:?}; every node of a log needs the same origin and key file; refusing to start",
            signer.name()
        )));
    }
    Ok(())
}
