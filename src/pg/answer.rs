//! Answers of a committed batch: reservations as decided, entries with
//! their receipts. A receipt proves its entry against the batch's own
//! checkpoint; the stored hashes its proof needs are the batch's (known
//! in memory) and older ones, read in one query after the commit.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::batch::{salts_in, Decided, LaidEntry, Layout};
use super::reads;
use super::writer::{Done, PgWork};
use crate::core::hash::Hash;
use crate::core::proof::{prove_inclusion, LeafIndex, TreeSize};
use crate::core::receipt::Salts;
use crate::ledger::{make_receipt, Appended, LedgerError, Recorded};

/// Answers everyone of a committed batch.
pub(super) async fn send(client: Option<&Client>, work: Vec<PgWork>, done: Done) {
    // No connection, or no answer in time, to read the receipts' older
    // hashes with: the entries are durable, but their receipts cannot be
    // built now.
    let unreachable = |n: usize| {
        let why = "the database could not be reached after the batch committed; fetch the receipt by exec_id";
        (0..n)
            .map(|_| Err(LedgerError::Unavailable(why.into())))
            .collect()
    };
    let mut appended = match (client, done.layout) {
        (Some(client), Some(layout)) => {
            let n = layout.entries.len();
            let built = receipts(client, &work, &done.fates, layout);
            tokio::time::timeout(super::READ_TIMEOUT, built)
                .await
                .unwrap_or_else(|_| unreachable(n))
        }
        (None, Some(layout)) => unreachable(layout.entries.len()),
        (_, None) => Vec::new(),
    }
    .into_iter()
    .map(Some)
    .collect::<Vec<_>>();
    for (w, fate) in work.into_iter().zip(done.fates) {
        let mut take = |at: usize| {
            appended
                .get_mut(at)
                .and_then(Option::take)
                .unwrap_or_else(|| Err(LedgerError::Unavailable("no receipt".into())))
        };
        match (w, fate) {
            (w, Decided::Refused(why)) => refuse_alone(w, why),
            (PgWork::Append(a), Decided::Entry(at)) => drop(a.reply.send(take(at))),
            (PgWork::Claim(c), Decided::Entry(at)) => {
                let answer = take(at).map(|a| Recorded::Appended(Box::new(a)));
                drop(c.reply.send(answer));
            }
            (PgWork::Claim(c), Decided::NotReserved(r)) => {
                drop(c.reply.send(Ok(Recorded::NotReserved(r))));
            }
            (PgWork::Reserve(r), Decided::Reservation(answer)) => drop(r.reply.send(Ok(answer))),
            (w, _) => w.refuse("internal: a decision does not match its request"),
        }
    }
}

/// A request refused alone (its entry could not join the batch).
fn refuse_alone(w: PgWork, why: String) {
    let e = || {
        if why.starts_with("invalid entry field") {
            LedgerError::Entry(crate::core::entry::EntryError::InvalidField("replay_of"))
        } else {
            LedgerError::Unavailable(why.clone())
        }
    };
    match w {
        PgWork::Append(a) => drop(a.reply.send(Err(e()))),
        PgWork::Reserve(r) => drop(r.reply.send(Err(e()))),
        PgWork::Claim(c) => drop(c.reply.send(Err(e()))),
    }
}

/// Each entry's answer, in batch order.
async fn receipts(
    client: &Client,
    work: &[PgWork],
    fates: &[Decided],
    layout: Layout,
) -> Vec<Result<Appended, LedgerError>> {
    let size = layout.head.size;
    let mut known = layout.known;
    let salts = salts_by_entry(work, fates, layout.entries.len());
    let mut needed = Vec::new();
    for e in &layout.entries {
        let recorder = super::tree::IndexRecorder::default();
        let _ = prove_inclusion(&recorder, LeafIndex(e.entry.index), TreeSize(size));
        needed.extend(recorder.into_indexes());
    }
    if let Err(e) = reads::fill_hashes(client, needed, &mut known).await {
        let why = format!("reading proof hashes after the commit: {e}");
        return layout
            .entries
            .iter()
            .map(|_| Err(LedgerError::Unavailable(why.clone())))
            .collect();
    }
    let reader = super::tree::HashMapReader(known);
    let mut out = Vec::with_capacity(layout.entries.len());
    for (e, salts) in layout.entries.into_iter().zip(salts) {
        let salts = match (salts, e.entry.replay_of) {
            (None, Some(original)) => original_salts(client, original.index).await,
            (salts, _) => salts,
        };
        out.push(one(e, size, &layout.checkpoint, &reader, salts));
    }
    out
}

fn one(
    e: LaidEntry,
    size: u64,
    checkpoint: &str,
    reader: &super::tree::HashMapReader,
    salts: Option<Salts>,
) -> Result<Appended, LedgerError> {
    let hashes: Vec<Hash> = prove_inclusion(reader, LeafIndex(e.entry.index), TreeSize(size))?;
    let receipt = make_receipt(
        e.bytes,
        &e.signature,
        e.entry.index,
        size,
        hashes,
        checkpoint.to_owned(),
        salts,
    )?;
    Ok(Appended {
        entry: e.entry,
        receipt,
    })
}

/// The salts of each entry's own content, by entry position.
fn salts_by_entry(work: &[PgWork], fates: &[Decided], entries: usize) -> Vec<Option<Salts>> {
    let mut out: HashMap<usize, Salts> = HashMap::new();
    for (w, fate) in work.iter().zip(fates) {
        let (Decided::Entry(at), Some(salts)) = (fate, content_salts(w)) else {
            continue;
        };
        out.insert(*at, salts);
    }
    (0..entries).map(|i| out.remove(&i)).collect()
}

fn content_salts(w: &PgWork) -> Option<Salts> {
    match w {
        PgWork::Append(a) => a.content.as_ref().map(|(_, s)| s.clone()),
        PgWork::Claim(c) => c.content.as_ref().map(|(_, s)| s.clone()),
        PgWork::Reserve(_) => None,
    }
}

/// A replay's receipt carries the salts kept with the entry it replays.
async fn original_salts(client: &Client, index: u64) -> Option<Salts> {
    reads::content(client, index)
        .await
        .ok()
        .flatten()
        .as_deref()
        .and_then(salts_in)
}
