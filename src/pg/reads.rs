//! Reads: every row is visible only once the batch that wrote it
//! committed, so reads need no lock and no head check.

use std::collections::HashMap;

use tokio_postgres::{Client, Row};

use super::tree::{row_of_stored_hash, HashMapReader, IndexRecorder};
use super::{PgError, SeenHead};
use crate::core::entry::Effects;
use crate::core::hash::Hash;
use crate::core::proof::{prove_consistency, prove_inclusion, LeafIndex, TreeSize};
use crate::ledger::LedgerError;
use crate::store::{Head, PendingNonce, SignedEntryBytes};

/// The committed head and its checkpoint.
pub(super) async fn head(client: &Client) -> Result<SeenHead, PgError> {
    let row = client
        .query_one(
            "SELECT size, root, last_leaf, checkpoint FROM openexec_head WHERE id = 0",
            &[],
        )
        .await?;
    Ok(SeenHead {
        head: Head {
            size: size_of(&row, 0)?,
            root: hash_of(&row, 1)?,
            last_leaf: hash_of(&row, 2)?,
        },
        checkpoint: row.try_get(3)?,
    })
}

pub(super) fn size_of(row: &Row, column: usize) -> Result<u64, PgError> {
    let size: i64 = row.try_get(column)?;
    u64::try_from(size).map_err(|_| PgError::Corrupt(format!("negative size {size}")))
}

pub(super) fn hash_of(row: &Row, column: usize) -> Result<Hash, PgError> {
    let bytes: &[u8] = row.try_get(column)?;
    Hash::from_slice(bytes).map_err(|_| PgError::Corrupt("a hash is not 32 bytes".into()))
}

pub(super) fn index_param(index: u64) -> Result<i64, PgError> {
    i64::try_from(index).map_err(|_| PgError::Corrupt(format!("index {index} out of range")))
}

fn signed(row: &Row, record: usize) -> Result<SignedEntryBytes, PgError> {
    let bytes: Vec<u8> = row.try_get(record)?;
    let signature: &[u8] = row.try_get(record + 1)?;
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| PgError::Corrupt("a signature is not 64 bytes".into()))?;
    Ok((bytes, signature))
}

/// Entry bytes and signature at `index`.
pub(super) async fn entry(
    client: &Client,
    index: u64,
) -> Result<Option<SignedEntryBytes>, PgError> {
    client
        .query_opt(
            "SELECT record, signature FROM openexec_entries WHERE idx = $1",
            &[&index_param(index)?],
        )
        .await?
        .map(|row| signed(&row, 0))
        .transpose()
}

/// The entry carrying this exec_id, and its index.
pub(super) async fn entry_of_exec_id(
    client: &Client,
    exec_id: &str,
) -> Result<Option<(u64, SignedEntryBytes)>, PgError> {
    client
        .query_opt(
            "SELECT idx, record, signature FROM openexec_entries WHERE exec_id = $1",
            &[&exec_id],
        )
        .await?
        .map(|row| Ok((size_of(&row, 0)?, signed(&row, 1)?)))
        .transpose()
}

/// Cleartext content kept beside entry `index`.
pub(super) async fn content(client: &Client, index: u64) -> Result<Option<Vec<u8>>, PgError> {
    Ok(client
        .query_opt(
            "SELECT content FROM openexec_entries WHERE idx = $1",
            &[&index_param(index)?],
        )
        .await?
        .map(|row| row.try_get::<_, Option<Vec<u8>>>(0))
        .transpose()?
        .flatten())
}

/// The redaction of entry `index`, if it was redacted: the `redacted`
/// entry's index and its reason.
pub(super) async fn redaction(
    client: &Client,
    index: u64,
) -> Result<Option<(u64, String)>, PgError> {
    let Some(row) = client
        .query_opt(
            "SELECT entry_idx, reason FROM openexec_redactions WHERE idx = $1",
            &[&index_param(index)?],
        )
        .await?
    else {
        return Ok(None);
    };
    let at: i64 = row.try_get(0)?;
    let at =
        u64::try_from(at).map_err(|_| PgError::Corrupt(format!("a redaction names entry {at}")))?;
    Ok(Some((at, row.try_get(1)?)))
}

/// The stored hashes at `indexes` not already in `known`, added to it.
pub(super) async fn fill_hashes(
    client: &Client,
    indexes: Vec<u64>,
    known: &mut HashMap<u64, Hash>,
) -> Result<(), PgError> {
    let missing: Vec<u64> = indexes
        .into_iter()
        .filter(|i| !known.contains_key(i))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let rows: Vec<i64> = missing
        .iter()
        .map(|i| index_param(row_of_stored_hash(*i).0))
        .collect::<Result<_, _>>()?;
    let found = client
        .query(
            "SELECT idx, hashes FROM openexec_entries WHERE idx = ANY($1)",
            &[&rows],
        )
        .await?;
    let by_row: HashMap<u64, Vec<u8>> = found
        .iter()
        .map(|r| Ok((size_of(r, 0)?, r.try_get(1)?)))
        .collect::<Result<_, PgError>>()?;
    for i in missing {
        let (row, at) = row_of_stored_hash(i);
        let hash = by_row
            .get(&row)
            .and_then(|h| h.get(at * 32..at * 32 + 32))
            .ok_or_else(|| PgError::Corrupt(format!("stored hash {i} missing (entry {row})")))?;
        known.insert(
            i,
            Hash::from_slice(hash).map_err(|_| PgError::Corrupt("hash".into()))?,
        );
    }
    Ok(())
}

/// The inclusion proof of `index` in the tree of `size`, reading what
/// `known` lacks.
pub(super) async fn inclusion(
    client: &Client,
    index: u64,
    size: u64,
    known: &mut HashMap<u64, Hash>,
) -> Result<Vec<Hash>, LedgerError> {
    let recorder = IndexRecorder::default();
    prove_inclusion(&recorder, LeafIndex(index), TreeSize(size))?;
    fill_hashes(client, recorder.into_indexes(), known).await?;
    let reader = HashMapReader(std::mem::take(known));
    let proof = prove_inclusion(&reader, LeafIndex(index), TreeSize(size));
    *known = reader.0;
    Ok(proof?)
}

/// The consistency proof between two sizes.
pub(super) async fn consistency(
    client: &Client,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, LedgerError> {
    let recorder = IndexRecorder::default();
    prove_consistency(&recorder, TreeSize(old), TreeSize(new))?;
    let mut known = HashMap::new();
    fill_hashes(client, recorder.into_indexes(), &mut known).await?;
    Ok(prove_consistency(
        &HashMapReader(known),
        TreeSize(old),
        TreeSize(new),
    )?)
}

/// The reservations whose node's lease has run out (or who left no
/// lease), in nonce-key order: the attempts a survivor records.
pub(super) async fn orphaned_reservations(
    client: &Client,
) -> Result<Vec<(Vec<u8>, PendingNonce)>, PgError> {
    let rows = client
        .query(
            "SELECT n.nonce_key, n.tenant, n.nonce, n.exec_id, n.action, n.request_hash, \
             n.approval_key, n.effects, n.principal FROM openexec_nonces n \
             LEFT JOIN openexec_nodes d ON d.node_id = n.owner \
             WHERE n.entry_idx IS NULL AND (d.lease_until IS NULL OR d.lease_until < now()) \
             ORDER BY n.nonce_key",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, pending_of(r, 1)?)))
        .collect()
}

/// A reservation's record from its row, from column `at` on: tenant,
/// nonce, exec_id, action, request_hash, approval_key, effects, principal.
pub(super) fn pending_of(row: &Row, at: usize) -> Result<PendingNonce, PgError> {
    let effects: &str = row.try_get(at + 6)?;
    Ok(PendingNonce {
        tenant: row.try_get(at)?,
        nonce: row.try_get(at + 1)?,
        exec_id: row.try_get(at + 2)?,
        action: row.try_get(at + 3)?,
        request_hash: hash_of(row, at + 4)?,
        approval_key: row.try_get(at + 5)?,
        effects: effects_of(effects)?,
        principal: row.try_get(at + 7)?,
    })
}

fn effects_of(name: &str) -> Result<Effects, PgError> {
    [
        Effects::None,
        Effects::AtMostOnce,
        Effects::IdempotentDownstream,
    ]
    .into_iter()
    .find(|e| e.as_str() == name)
    .ok_or_else(|| PgError::Corrupt(format!("unknown effects class {name:?}")))
}

/// Adds one to a counter, committed before it returns.
pub(super) async fn increment_counter(client: &Client, name: &str) -> Result<u64, PgError> {
    let row = client
        .query_one(
            "INSERT INTO openexec_counters (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = openexec_counters.value + 1 \
             RETURNING value",
            &[&name],
        )
        .await?;
    size_of(&row, 0)
}

/// A counter's value (0 if it was never incremented).
pub(super) async fn counter(client: &Client, name: &str) -> Result<u64, PgError> {
    client
        .query_opt(
            "SELECT value FROM openexec_counters WHERE name = $1",
            &[&name],
        )
        .await?
        .map_or(Ok(0), |row| size_of(&row, 0))
}
