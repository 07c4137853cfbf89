//! The statements of a batch transaction: what it reads under the head
//! lock, and what it writes. Several rows per statement (`UNNEST` of
//! arrays), so that a batch costs the same few statements whatever its
//! size.

use std::collections::{HashMap, HashSet};

use tokio_postgres::Transaction;

use super::batch::{Decisions, Effect, Found, Layout, NonceRow};
use super::reads::{index_param, pending_of, size_of};
use super::PgError;
use crate::store::PendingNonce;

/// The rows of these nonces, with whether their holder's lease ran out.
pub(super) async fn nonce_rows(
    tx: &Transaction<'_>,
    keys: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, NonceRow>, PgError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT n.nonce_key, n.entry_idx, n.owner, \
             (d.lease_until IS NULL OR d.lease_until < now()), \
             n.tenant, n.nonce, n.exec_id, n.action, n.request_hash, n.approval_key, \
             n.effects, n.principal FROM openexec_nonces n \
             LEFT JOIN openexec_nodes d ON d.node_id = n.owner WHERE n.nonce_key = ANY($1)",
            &[&keys],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let done: Option<i64> = r.try_get(1)?;
            let row = NonceRow {
                done: done.map(|_| size_of(r, 1)).transpose()?,
                owner: r.try_get(2)?,
                expired: r.try_get(3)?,
                pending: pending_of(r, 4)?,
            };
            Ok((r.try_get(0)?, row))
        })
        .collect()
}

/// Which of these approvals are held or consumed.
pub(super) async fn used_approvals(
    tx: &Transaction<'_>,
    keys: &[String],
) -> Result<HashSet<String>, PgError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = tx
        .query(
            "SELECT consume_key FROM openexec_approvals WHERE consume_key = ANY($1)",
            &[&keys],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Rows of `openexec_nonces` to insert, column by column.
#[derive(Default)]
struct NonceInserts {
    key: Vec<Vec<u8>>,
    entry: Vec<Option<i64>>,
    owner: Vec<Option<String>>,
    tenant: Vec<String>,
    nonce: Vec<String>,
    exec_id: Vec<String>,
    action: Vec<String>,
    request_hash: Vec<Vec<u8>>,
    approval: Vec<Option<String>>,
    effects: Vec<String>,
    principal: Vec<Option<String>>,
}

impl NonceInserts {
    fn push(&mut self, key: &[u8], p: &PendingNonce, entry: Option<i64>, owner: Option<&str>) {
        self.key.push(key.to_vec());
        self.entry.push(entry);
        self.owner.push(owner.map(str::to_owned));
        self.tenant.push(p.tenant.clone());
        self.nonce.push(p.nonce.clone());
        self.exec_id.push(p.exec_id.clone());
        self.action.push(p.action.clone());
        self.request_hash.push(p.request_hash.as_bytes().to_vec());
        self.approval.push(p.approval_key.clone());
        self.effects.push(p.effects.as_str().to_owned());
        self.principal.push(p.principal.clone());
    }
}

/// What the batch changes in the nonce and approval tables.
#[derive(Default)]
struct Changes {
    nonces: NonceInserts,
    completed: (Vec<Vec<u8>>, Vec<i64>),
    released: Vec<Vec<u8>>,
    approvals: (Vec<String>, Vec<Vec<u8>>, Vec<Option<i64>>),
    approvals_consumed: (Vec<String>, Vec<i64>),
    approvals_released: Vec<String>,
}

fn changes(node: &str, d: &Decisions<'_>, layout: Option<&Layout>) -> Result<Changes, PgError> {
    let mut c = Changes::default();
    for (key, record) in &d.reserved {
        c.nonces.push(key, record, None, Some(node));
        if let Some(ak) = &record.approval_key {
            c.approvals.0.push(ak.clone());
            c.approvals.1.push(key.clone());
            c.approvals.2.push(None);
        }
    }
    let entries = layout.map_or(&[][..], |l| l.entries.as_slice());
    for (draft, laid) in d.drafts.iter().zip(entries) {
        let index = index_param(laid.entry.index)?;
        match &draft.effect {
            Effect::None => {}
            Effect::Claim { key, record } => {
                c.nonces.push(key, record, Some(index), None);
                if let Some(ak) = &record.approval_key {
                    c.approvals.0.push(ak.clone());
                    c.approvals.1.push(key.clone());
                    c.approvals.2.push(Some(index));
                }
            }
            Effect::Complete { key, approval } => {
                c.completed.0.push(key.clone());
                c.completed.1.push(index);
                let named = laid.entry.approval.consume_key(&laid.entry.tenant);
                // An approval the entry does not name stays consumed for
                // good, by no entry.
                if let Some(ak) = approval.as_ref().filter(|ak| named.as_ref() == Some(*ak)) {
                    c.approvals_consumed.0.push(ak.clone());
                    c.approvals_consumed.1.push(index);
                }
            }
            Effect::Release { key, approval } => {
                c.released.push(key.clone());
                c.approvals_released.extend(approval.clone());
            }
        }
    }
    Ok(c)
}

/// Writes the batch: its entries, nonce and approval changes, the new
/// head (which must move from the size found) and its checkpoint.
pub(super) async fn write(
    tx: &Transaction<'_>,
    node: &str,
    found: &Found,
    d: &Decisions<'_>,
    layout: Option<&Layout>,
) -> Result<(), PgError> {
    let c = changes(node, d, layout)?;
    if let Some(layout) = layout {
        insert_entries(tx, d, layout).await?;
    }
    if !c.nonces.key.is_empty() {
        let n = &c.nonces;
        tx.execute(
            "INSERT INTO openexec_nonces (nonce_key, entry_idx, owner, tenant, nonce, exec_id, \
             action, request_hash, approval_key, effects, principal) SELECT * FROM UNNEST(\
             $1::BYTEA[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
             $7::TEXT[], $8::BYTEA[], $9::TEXT[], $10::TEXT[], $11::TEXT[])",
            &[
                &n.key,
                &n.entry,
                &n.owner,
                &n.tenant,
                &n.nonce,
                &n.exec_id,
                &n.action,
                &n.request_hash,
                &n.approval,
                &n.effects,
                &n.principal,
            ],
        )
        .await?;
    }
    if !c.completed.0.is_empty() {
        tx.execute(
            "UPDATE openexec_nonces SET entry_idx = v.idx, owner = NULL \
             FROM UNNEST($1::BYTEA[], $2::BIGINT[]) AS v(k, idx) WHERE nonce_key = v.k",
            &[&c.completed.0, &c.completed.1],
        )
        .await?;
    }
    if !c.released.is_empty() {
        tx.execute(
            "DELETE FROM openexec_nonces WHERE nonce_key = ANY($1)",
            &[&c.released],
        )
        .await?;
    }
    if !c.approvals.0.is_empty() {
        tx.execute(
            "INSERT INTO openexec_approvals (consume_key, nonce_key, entry_idx) \
             SELECT * FROM UNNEST($1::TEXT[], $2::BYTEA[], $3::BIGINT[])",
            &[&c.approvals.0, &c.approvals.1, &c.approvals.2],
        )
        .await?;
    }
    if !c.approvals_consumed.0.is_empty() {
        tx.execute(
            "UPDATE openexec_approvals SET entry_idx = v.idx \
             FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS v(k, idx) WHERE consume_key = v.k",
            &[&c.approvals_consumed.0, &c.approvals_consumed.1],
        )
        .await?;
    }
    if !c.approvals_released.is_empty() {
        tx.execute(
            "DELETE FROM openexec_approvals WHERE consume_key = ANY($1)",
            &[&c.approvals_released],
        )
        .await?;
    }
    if let Some(layout) = layout {
        move_head(tx, found, layout).await?;
    }
    Ok(())
}

async fn insert_entries(
    tx: &Transaction<'_>,
    d: &Decisions<'_>,
    layout: &Layout,
) -> Result<(), PgError> {
    let n = layout.entries.len();
    let (mut idx, mut record, mut signature, mut hashes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut exec_id, mut completes, mut content) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (e, draft) in layout.entries.iter().zip(&d.drafts) {
        idx.push(index_param(e.entry.index)?);
        record.push(e.bytes.as_slice());
        signature.push(e.signature.as_slice());
        hashes.push(e.hashes.as_slice());
        exec_id.push(super::batch::indexed_exec_id(&e.entry));
        completes.push(e.completes);
        content.push(draft.content);
    }
    tx.execute(
        "INSERT INTO openexec_entries (idx, record, signature, hashes, exec_id, completes, content) \
         SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[], $3::BYTEA[], $4::BYTEA[], $5::TEXT[], \
         $6::BOOL[], $7::BYTEA[])",
        &[&idx, &record, &signature, &hashes, &exec_id, &completes, &content],
    )
    .await?;
    Ok(())
}

/// Moves the head from the size found (exactly one row, or the batch is
/// refused: another writer moved it, which the lock forbids) and files the
/// checkpoint.
async fn move_head(tx: &Transaction<'_>, found: &Found, layout: &Layout) -> Result<(), PgError> {
    let size = index_param(layout.head.size)?;
    let moved = tx
        .execute(
            "UPDATE openexec_head SET size = $1, root = $2, last_leaf = $3, frontier = $4, \
             checkpoint = $5, updated_at = now() WHERE id = 0 AND size = $6",
            &[
                &size,
                &layout.head.root.as_bytes().as_slice(),
                &layout.head.last_leaf.as_bytes().as_slice(),
                &layout.frontier,
                &layout.checkpoint,
                &index_param(found.head.size)?,
            ],
        )
        .await?;
    if moved != 1 {
        return Err(PgError::Corrupt(format!(
            "the head moved from size {} under this batch's lock",
            found.head.size
        )));
    }
    tx.execute(
        "INSERT INTO openexec_checkpoints (size, note) VALUES ($1, $2)",
        &[&size, &layout.checkpoint],
    )
    .await?;
    Ok(())
}
