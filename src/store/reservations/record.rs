//! The stored bytes of a nonce in flight (a reservation journal record): a strict
//! binary codec, no I/O.

use super::PendingNonce;
use crate::core::hash::Hash;
use crate::store::StoreError;

/// First byte of a pending record.
const RECORD_PENDING: u8 = 1;
/// The reserved `u16` after the request hash, 0 in every pending record.
const RESERVED_AFTER_HASH: [u8; 2] = [0, 0];
/// The principal field that stands for none: all ones (a principal whose
/// random id is all ones is recorded as none).
const NO_PRINCIPAL: [u8; 8] = [0xff; 8];
/// String length that stands for `None` (`approval_key`).
const NO_STRING: u32 = u32::MAX;

/// A pending record's stored bytes: `1` ‖ effects code
/// ([`crate::core::entry::Effects::code`]) ‖ request hash (32) ‖ `0u16` ‖
/// principal id (8 bytes, all ones = none) ‖ exec_id, approval key, action,
/// tenant, nonce, each a `u32` length (all ones = none) and UTF-8.
pub(crate) fn encode_pending(record: &PendingNonce) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(128);
    out.push(RECORD_PENDING);
    out.push(record.effects.code());
    out.extend_from_slice(record.request_hash.as_bytes());
    out.extend_from_slice(&RESERVED_AFTER_HASH);
    out.extend_from_slice(&principal_bytes(record.principal.as_deref())?);
    for text in [
        Some(&record.exec_id),
        record.approval_key.as_ref(),
        Some(&record.action),
        Some(&record.tenant),
        Some(&record.nonce),
    ] {
        let len = match text {
            Some(t) => u32::try_from(t.len())
                .ok()
                .filter(|&l| l != NO_STRING)
                .ok_or(StoreError::TooLarge(t.len()))?,
            None => NO_STRING,
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(text.map_or(&[][..], |t| t.as_bytes()));
    }
    Ok(out)
}

/// A principal id's 8 bytes from its 16 hex characters; all ones for none.
fn principal_bytes(principal: Option<&str>) -> Result<[u8; 8], StoreError> {
    let Some(text) = principal else {
        return Ok(NO_PRINCIPAL);
    };
    let mut bytes = [0u8; 8];
    hex::decode_to_slice(text, &mut bytes)
        .map_err(|_| StoreError::Corrupt(format!("principal id {text:?} is not 16 hex digits")))?;
    Ok(bytes)
}

/// Reads a pending record; anything but exactly what
/// [`encode_pending`] writes is corrupt.
pub(crate) fn decode_pending(bytes: &[u8]) -> Result<PendingNonce, StoreError> {
    decode_fields(bytes).ok_or_else(|| StoreError::Corrupt("pending nonce record".into()))
}

fn decode_fields(bytes: &[u8]) -> Option<PendingNonce> {
    let mut r = Reader(bytes);
    let [kind, effects] = <[u8; 2]>::try_from(r.take(2)?).ok()?;
    if kind != RECORD_PENDING {
        return None;
    }
    let effects =
        crate::core::entry::Effects::from_code(effects).filter(|e| e.needs_reservation())?;
    let request_hash = Hash::from_slice(r.take(32)?).ok()?;
    if r.take(RESERVED_AFTER_HASH.len())? != RESERVED_AFTER_HASH {
        return None;
    }
    let principal = <[u8; 8]>::try_from(r.take(8)?).ok()?;
    let principal = (principal != NO_PRINCIPAL).then(|| hex::encode(principal));
    let exec_id = r.string()??;
    let approval_key = r.string()?;
    let action = r.string()??;
    let tenant = r.string()??;
    let nonce = r.string()??;
    r.0.is_empty().then_some(PendingNonce {
        request_hash,
        exec_id,
        approval_key,
        action,
        tenant,
        nonce,
        effects,
        principal,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A length-prefixed string: `Some(None)` for the `None` length.
    fn string(&mut self) -> Option<Option<String>> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        if len == NO_STRING {
            return Some(None);
        }
        let bytes = self.take(usize::try_from(len).ok()?)?;
        Some(Some(String::from_utf8(bytes.to_vec()).ok()?))
    }
}
