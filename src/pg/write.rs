//! The statements of a batch transaction: what it reads under the head
//! lock, and what it writes. Several rows per statement (`UNNEST` of
//! arrays), so that a batch costs the same few statements whatever its
//! size.

use std::collections::{HashMap, HashSet};

use tokio_postgres::{Client, Row, Statement, Transaction};

use super::batch::{Decisions, Effect, Found, Layout, NonceRow};
use super::lease::LEASE_SQL;
use super::reads::{index_param, pending_of, size_of};
use super::PgError;
use crate::store::PendingNonce;

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
            Effect::None | Effect::Late => {}
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

/// The batch transaction's statements, prepared once per connection: a
/// batch sends its reads in one flight and its writes in another (the
/// server runs them in the order sent, each after the one before), so
/// that it holds the head lock for about three round trips.
pub(super) struct Statements {
    lock_head: Statement,
    renew_lease: Statement,
    nonce_rows: Statement,
    used_approvals: Statement,
    recorded_exec_ids: Statement,
    insert_entries: Statement,
    insert_nonces: Statement,
    complete_nonces: Statement,
    delete_nonces: Statement,
    insert_approvals: Statement,
    consume_approvals: Statement,
    delete_approvals: Statement,
    move_head: Statement,
    insert_checkpoint: Statement,
    erase_content: Statement,
    insert_redactions: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Self, PgError> {
        Ok(Self {
            lock_head: client.prepare(LOCK_HEAD).await?,
            renew_lease: client
                .prepare(&format!(
                    "UPDATE openexec_nodes SET lease_until = {LEASE_SQL} WHERE node_id = $1"
                ))
                .await?,
            nonce_rows: client.prepare(NONCE_ROWS).await?,
            used_approvals: client
                .prepare("SELECT consume_key FROM openexec_approvals WHERE consume_key = ANY($1)")
                .await?,
            recorded_exec_ids: client
                .prepare("SELECT exec_id FROM openexec_entries WHERE exec_id = ANY($1)")
                .await?,
            insert_entries: client.prepare(INSERT_ENTRIES).await?,
            insert_nonces: client.prepare(INSERT_NONCES).await?,
            complete_nonces: client
                .prepare(
                    "UPDATE openexec_nonces SET entry_idx = v.idx, owner = NULL \
                     FROM UNNEST($1::BYTEA[], $2::BIGINT[]) AS v(k, idx) WHERE nonce_key = v.k",
                )
                .await?,
            delete_nonces: client
                .prepare("DELETE FROM openexec_nonces WHERE nonce_key = ANY($1)")
                .await?,
            insert_approvals: client
                .prepare(
                    "INSERT INTO openexec_approvals (consume_key, nonce_key, entry_idx) \
                     SELECT * FROM UNNEST($1::TEXT[], $2::BYTEA[], $3::BIGINT[])",
                )
                .await?,
            consume_approvals: client
                .prepare(
                    "UPDATE openexec_approvals SET entry_idx = v.idx \
                     FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS v(k, idx) WHERE consume_key = v.k",
                )
                .await?,
            delete_approvals: client
                .prepare("DELETE FROM openexec_approvals WHERE consume_key = ANY($1)")
                .await?,
            move_head: client.prepare(MOVE_HEAD).await?,
            insert_checkpoint: client
                .prepare("INSERT INTO openexec_checkpoints (size, note) VALUES ($1, $2)")
                .await?,
            erase_content: client
                .prepare("UPDATE openexec_entries SET content = NULL WHERE idx = ANY($1)")
                .await?,
            insert_redactions: client
                .prepare(
                    "INSERT INTO openexec_redactions (idx, entry_idx, reason) \
                     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[])",
                )
                .await?,
        })
    }
}

const LOCK_HEAD: &str = "SELECT size, root, last_leaf, frontier, \
     (extract(epoch from clock_timestamp()) * 1000000)::BIGINT \
     FROM openexec_head WHERE id = 0 FOR UPDATE";

const NONCE_ROWS: &str = "SELECT n.nonce_key, n.entry_idx, n.owner, \
     (d.lease_until IS NULL OR d.lease_until < now()), \
     n.tenant, n.nonce, n.exec_id, n.action, n.request_hash, n.approval_key, \
     n.effects, n.principal FROM openexec_nonces n \
     LEFT JOIN openexec_nodes d ON d.node_id = n.owner WHERE n.nonce_key = ANY($1)";

const INSERT_ENTRIES: &str = "INSERT INTO openexec_entries \
     (idx, record, signature, hashes, exec_id, completes, content) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[], $3::BYTEA[], $4::BYTEA[], $5::TEXT[], \
     $6::BOOL[], $7::BYTEA[])";

const INSERT_NONCES: &str = "INSERT INTO openexec_nonces (nonce_key, entry_idx, owner, tenant, \
     nonce, exec_id, action, request_hash, approval_key, effects, principal) SELECT * FROM UNNEST(\
     $1::BYTEA[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
     $7::TEXT[], $8::BYTEA[], $9::TEXT[], $10::TEXT[], $11::TEXT[])";

const MOVE_HEAD: &str = "UPDATE openexec_head SET size = $1, root = $2, last_leaf = $3, \
     frontier = $4, checkpoint = $5, updated_at = now() WHERE id = 0 AND size = $6";

/// Locks the head and reads what the batch's decisions rest on, in one
/// flight: the head row (waiting for the lock), this node's lease renewed,
/// the rows of the batch's nonces and approvals, and which of its exec_ids
/// entries already carry.
pub(super) async fn find(
    tx: &Transaction<'_>,
    st: &Statements,
    node: &str,
    keys: &Keys,
) -> Result<FoundRows, PgError> {
    let lease: [&Param<'_>; 1] = [&node];
    let nonce_keys: [&Param<'_>; 1] = [&keys.nonces];
    let approval_keys_param: [&Param<'_>; 1] = [&keys.approvals];
    let exec_ids: [&Param<'_>; 1] = [&keys.exec_ids];
    let (head, _, nonces, approvals, recorded) = tokio::try_join!(
        tx.query_one(&st.lock_head, &[]),
        tx.execute(&st.renew_lease, &lease),
        when(
            !keys.nonces.is_empty(),
            tx.query(&st.nonce_rows, &nonce_keys)
        ),
        when(
            !keys.approvals.is_empty(),
            tx.query(&st.used_approvals, &approval_keys_param)
        ),
        when(
            !keys.exec_ids.is_empty(),
            tx.query(&st.recorded_exec_ids, &exec_ids)
        ),
    )?;
    let nonces = nonces
        .iter()
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
        .collect::<Result<_, PgError>>()?;
    let column = |rows: Vec<Row>| {
        rows.iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<Result<HashSet<String>, PgError>>()
    };
    Ok(FoundRows {
        head,
        nonces,
        approvals: column(approvals)?,
        recorded: column(recorded)?,
    })
}

/// What a batch's decisions look up: its nonce keys, approval keys and
/// indexed exec_ids.
#[derive(Default)]
pub(super) struct Keys {
    pub(super) nonces: Vec<Vec<u8>>,
    pub(super) approvals: Vec<String>,
    pub(super) exec_ids: Vec<String>,
}

/// What [`find`] read.
pub(super) struct FoundRows {
    pub(super) head: Row,
    pub(super) nonces: HashMap<Vec<u8>, NonceRow>,
    pub(super) approvals: HashSet<String>,
    pub(super) recorded: HashSet<String>,
}

/// Runs `query` if `needed`; no rows otherwise.
async fn when<T: Default>(
    needed: bool,
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    if needed {
        query.await
    } else {
        Ok(T::default())
    }
}

/// Writes the batch in one flight: its entries, nonce and approval
/// changes, the new head (which must move from the size found: one row)
/// and its checkpoint.
pub(super) async fn write(
    tx: &Transaction<'_>,
    st: &Statements,
    node: &str,
    found: &Found,
    d: &Decisions<'_>,
    layout: Option<&Layout>,
) -> Result<(), PgError> {
    let c = changes(node, d, layout)?;
    let e = entry_columns(d, layout)?;
    let n = &c.nonces;
    let empty = Vec::new();
    let none = String::new();
    let (head_size, head_root, head_leaf, frontier, checkpoint) = match layout {
        Some(l) => (
            index_param(l.head.size)?,
            l.head.root.as_bytes().to_vec(),
            l.head.last_leaf.as_bytes().to_vec(),
            &l.frontier,
            &l.checkpoint,
        ),
        None => (0, Vec::new(), Vec::new(), &empty, &none),
    };
    let old_size = index_param(found.head.size)?;
    let entries: [&Param<'_>; 7] = [&e.0, &e.1, &e.2, &e.3, &e.4, &e.5, &e.6];
    let nonces: [&Param<'_>; 11] = [
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
    ];
    let completed: [&Param<'_>; 2] = [&c.completed.0, &c.completed.1];
    let released: [&Param<'_>; 1] = [&c.released];
    let approvals: [&Param<'_>; 3] = [&c.approvals.0, &c.approvals.1, &c.approvals.2];
    let consumed: [&Param<'_>; 2] = [&c.approvals_consumed.0, &c.approvals_consumed.1];
    let approvals_released: [&Param<'_>; 1] = [&c.approvals_released];
    let head: [&Param<'_>; 6] = [
        &head_size, &head_root, &head_leaf, frontier, checkpoint, &old_size,
    ];
    let filed: [&Param<'_>; 2] = [&head_size, checkpoint];
    let r = redaction_columns(layout)?;
    let erased: [&Param<'_>; 1] = [&r.0];
    let redactions: [&Param<'_>; 3] = [&r.0, &r.1, &r.2];
    let has = layout.is_some();
    let (_, _, _, _, _, _, _, moved, _, _, _) = tokio::try_join!(
        when(!e.0.is_empty(), tx.execute(&st.insert_entries, &entries)),
        when(!n.key.is_empty(), tx.execute(&st.insert_nonces, &nonces)),
        when(
            !completed_empty(&c),
            tx.execute(&st.complete_nonces, &completed)
        ),
        when(
            !c.released.is_empty(),
            tx.execute(&st.delete_nonces, &released)
        ),
        when(
            !c.approvals.0.is_empty(),
            tx.execute(&st.insert_approvals, &approvals)
        ),
        when(
            !c.approvals_consumed.0.is_empty(),
            tx.execute(&st.consume_approvals, &consumed)
        ),
        when(
            !c.approvals_released.is_empty(),
            tx.execute(&st.delete_approvals, &approvals_released)
        ),
        when(has, tx.execute(&st.move_head, &head)),
        when(has, tx.execute(&st.insert_checkpoint, &filed)),
        when(!r.0.is_empty(), tx.execute(&st.erase_content, &erased)),
        when(
            !r.0.is_empty(),
            tx.execute(&st.insert_redactions, &redactions)
        ),
    )?;
    if layout.is_some() && moved != 1 {
        return Err(PgError::Corrupt(format!(
            "the head moved from size {} under this batch's lock",
            found.head.size
        )));
    }
    Ok(())
}

/// The batch's redactions: the entries whose content they erase, their
/// own indexes, their reasons.
type RedactionColumns<'a> = (Vec<i64>, Vec<i64>, Vec<&'a str>);

fn redaction_columns(layout: Option<&Layout>) -> Result<RedactionColumns<'_>, PgError> {
    let mut c: RedactionColumns<'_> = Default::default();
    for e in layout.map_or(&[][..], |l| &l.entries[..]) {
        if let Some(redacts) = e.entry.redacts {
            c.0.push(index_param(redacts.index)?);
            c.1.push(index_param(e.entry.index)?);
            c.2.push(e.entry.reason.as_str());
        }
    }
    Ok(c)
}

/// A statement parameter.
type Param<'a> = dyn tokio_postgres::types::ToSql + Sync + 'a;

fn completed_empty(c: &Changes) -> bool {
    c.completed.0.is_empty()
}

/// The entries' columns.
type EntryColumns<'a> = (
    Vec<i64>,
    Vec<&'a [u8]>,
    Vec<&'a [u8]>,
    Vec<&'a [u8]>,
    Vec<Option<&'a str>>,
    Vec<bool>,
    Vec<Option<&'a [u8]>>,
);

fn entry_columns<'a>(
    d: &Decisions<'a>,
    layout: Option<&'a Layout>,
) -> Result<EntryColumns<'a>, PgError> {
    let mut c: EntryColumns<'a> = Default::default();
    let Some(layout) = layout else { return Ok(c) };
    for (e, draft) in layout.entries.iter().zip(&d.drafts) {
        c.0.push(index_param(e.entry.index)?);
        c.1.push(e.bytes.as_slice());
        c.2.push(e.signature.as_slice());
        c.3.push(e.hashes.as_slice());
        c.4.push(draft.indexed.then_some(e.entry.exec_id.as_str()));
        c.5.push(e.completes);
        c.6.push(draft.content);
    }
    Ok(c)
}
