//! The audit of a `redacted` entry: it names an entry that kept content,
//! by index and leaf hash, repeats what names that entry's request and
//! content, and that content is erased; and an erased content frame is
//! the work of a recorded redaction.

use crate::core::entry::{Entry, Outcome};
use crate::core::hash::leaf_hash;
use crate::store::Store;

/// A `redacted` entry names an earlier `executed` or `failed` entry (the
/// decoder checked it is earlier) by its leaf hash, carries its exec_id,
/// tenant, action, nonce, request hash and commitments, and that entry's
/// content is erased — unless the store records the redaction as begun
/// and not yet settled (a crash between the entry's commit and the erase:
/// the next start completes it), which the audit reports as a warning.
pub(super) fn check_redaction(store: &Store, redaction: &Entry) -> Result<(), String> {
    let Some(of) = redaction.redacts else {
        return Ok(());
    };
    let problem = |what: &str| Err(format!("redacts entry {}, {what}", of.index));
    let Some((bytes, _)) = store.entry(of.index).map_err(|e| e.to_string())? else {
        return problem("which is missing");
    };
    if leaf_hash(&bytes) != of.leaf_hash {
        return problem("whose leaf hash is not the one it names");
    }
    let target = Entry::from_canonical_bytes(&bytes).map_err(|e| e.to_string())?;
    if !matches!(target.outcome, Outcome::Executed | Outcome::Failed) {
        return problem("which never kept content");
    }
    if (
        &target.exec_id,
        &target.tenant,
        &target.action,
        &target.nonce,
        target.request_hash,
        target.payload_commitment,
        target.result_commitment,
    ) != (
        &redaction.exec_id,
        &redaction.tenant,
        &redaction.action,
        &redaction.nonce,
        redaction.request_hash,
        redaction.payload_commitment,
        redaction.result_commitment,
    ) {
        return problem("but does not repeat its exec_id, request and commitments");
    }
    let kept = store
        .content(of.index)
        .map_err(|e| e.to_string())?
        .is_some();
    let settling = store
        .redaction(of.index)
        .map_err(|e| e.to_string())?
        .is_some_and(|r| r.entry.is_none());
    if kept && !settling {
        return problem("whose content is still kept");
    }
    Ok(())
}

/// An erased content frame of entry `index` is named by the store's
/// redaction record of it, whose `redacted` entry is committed and names
/// `index` (an erase happens only after that entry is recorded): content
/// erased by anything but a redaction is a finding.
pub(super) fn check_erased(store: &Store, index: u64) -> Result<(), String> {
    let at = store
        .redaction(index)
        .map_err(|e| e.to_string())?
        .and_then(|r| r.entry)
        .ok_or("its content is erased, and no redaction of it is recorded")?;
    let names_it = match store.entry(at).map_err(|e| e.to_string())? {
        Some((bytes, _)) => Entry::from_canonical_bytes(&bytes)
            .map_err(|e| e.to_string())?
            .redacts
            .is_some_and(|r| r.index == index),
        None => false,
    };
    if !names_it {
        return Err(format!(
            "its content is erased, and entry {at}, which the store's redaction record \
             names, is no redaction of it"
        ));
    }
    Ok(())
}

/// Warnings for redactions begun whose erase the next start settles.
pub(super) fn unsettled(store: &Store) -> Result<Vec<String>, crate::store::StoreError> {
    Ok(store
        .redactions()?
        .into_iter()
        .filter(|(_, r)| r.entry.is_none())
        .map(|(index, _)| {
            format!(
                "a redaction of entry {index} began and was not settled (the service stopped \
                 during it): the next start erases the content if the redaction entry was \
                 committed, and forgets the redaction otherwise"
            )
        })
        .collect())
}
