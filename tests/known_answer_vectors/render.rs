//! The vector files: each computed value rendered as the file that
//! `tests/vectors/openexec/` holds (with hex and base64 forms side by
//! side), a signed note taken apart without the `signed_note` crate, and
//! reading the stored files.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use openexec::core::hash::Hash;
use openexec::core::proof::reference;
use openexec::core::signing::entry_message;

use super::{Vectors, ORIGIN, REGENERATE_VAR, SEED, TIME};

// ---------------------------------------------------------------------------
// Rendering the vector files
// ---------------------------------------------------------------------------

pub fn hx(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

pub fn hash_json(h: &Hash) -> Value {
    json!({"hex": hx(h.as_bytes()), "base64": h.to_base64()})
}

pub fn bytes_json(b: &[u8]) -> Value {
    json!({"hex": hx(b), "base64": STANDARD.encode(b)})
}

pub fn hashes_b64(hs: &[Hash]) -> Vec<String> {
    hs.iter().map(Hash::to_base64).collect()
}

pub fn pretty(value: &impl serde::Serialize) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut out = serde_json::to_vec_pretty(value)?;
    out.push(b'\n');
    Ok(out)
}

pub fn public_key() -> [u8; 32] {
    SigningKey::from_bytes(&SEED).verifying_key().to_bytes()
}

/// `name ‖ "\n" ‖ 0x01 ‖ public key`: the input of the signed-note key id.
pub fn key_id_input() -> Vec<u8> {
    let mut input = format!("{ORIGIN}\n").into_bytes();
    input.push(0x01);
    input.extend_from_slice(&public_key());
    input
}

/// A signed note with one signature line, taken apart.
pub struct NoteParts {
    /// The signed text, with its final newline.
    pub body: String,
    /// The signature line, without its newline.
    pub line: String,
    /// The 4-byte key id at the start of the signature blob.
    pub key_id: [u8; 4],
    /// The 64-byte Ed25519 signature after it.
    pub signature: Vec<u8>,
}

/// Splits a signed note with exactly one signature line — independent of
/// the `signed_note` crate.
pub fn split_single_signature(note: &str) -> Result<NoteParts, Box<dyn Error>> {
    let (body, sigs) = note
        .rsplit_once("\n\n")
        .ok_or("no blank line in the note")?;
    let line = sigs
        .strip_suffix('\n')
        .ok_or("note does not end in a newline")?;
    if line.contains('\n') {
        return Err("expected exactly one signature line".into());
    }
    let rest = line
        .strip_prefix("\u{2014} ")
        .ok_or("signature line does not start with an em dash")?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or("no space in the signature line")?;
    if name != ORIGIN {
        return Err(format!("signature line names {name:?}").into());
    }
    let raw = STANDARD.decode(b64)?;
    if raw.len() != 4 + 64 {
        return Err(format!("signature blob is {} bytes, expected 68", raw.len()).into());
    }
    let (id, sig) = raw.split_at(4);
    Ok(NoteParts {
        body: format!("{body}\n"),
        line: line.to_owned(),
        key_id: id.try_into()?,
        signature: sig.to_vec(),
    })
}

pub fn render(v: &Vectors) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn Error>> {
    let mut files = BTreeMap::new();
    let verifier = v.signer.verifier();

    files.insert(
        "vkey.txt".to_owned(),
        format!("{}\n", verifier.vkey()).into_bytes(),
    );
    files.insert(
        "private-key.txt".to_owned(),
        v.signer.private_key_text().into_bytes(),
    );
    let key = json!({
        "name": ORIGIN,
        "seed": bytes_json(&SEED),
        "public_key": bytes_json(&public_key()),
        "key_id_input_hex": hx(&key_id_input()),
        "key_id": format!("{:08x}", verifier.key_id()),
        "vkey": verifier.vkey(),
        "private_key": v.signer.private_key_text().trim_end(),
        "warning": "TEST-ONLY key derived from a public seed; never use it for a real log",
    });
    files.insert("key.json".to_owned(), pretty(&key)?);

    let mut entries = Vec::new();
    for (i, (case, c)) in v.cases.iter().zip(&v.entries).enumerate() {
        let file = format!("entry-{i}.json");
        files.insert(file.clone(), c.bytes.clone());
        let message = entry_message(&c.bytes);
        entries.push(json!({
            "index": i,
            "inputs": {
                "exec_id": case.exec_id,
                "tenant": case.tenant,
                "action": case.action,
                "nonce": case.nonce,
                "payload": case.payload,
                "result": case.result,
                "payload_salt": bytes_json(&case.payload_salt),
                "result_salt": case.result_salt.as_ref().map(|s| bytes_json(s)),
                "approval": case.approval,
                "outcome": case.outcome,
                "reason": case.reason,
                "replay_of": case.replay_of,
            },
            "request_hash_input": format!("openexec/request/v1\n{}", case.request_jcs),
            "request_hash": hash_json(&c.request_hash),
            "payload_canonical": case.payload_jcs,
            "payload_commitment": hash_json(&c.payload_commitment),
            "result_canonical": case.result_jcs,
            "result_commitment": c.result_commitment.as_ref().map(hash_json),
            "prev": hash_json(&c.entry.prev),
            "entry": String::from_utf8(c.bytes.clone())?,
            "entry_file": file,
            "entry_len": c.bytes.len(),
            "leaf_hash": hash_json(&c.leaf),
            "signature_message": String::from_utf8(message.clone())?,
            "signature_message_hex": hx(&message),
            "signature": bytes_json(&c.signature.to_bytes()),
        }));
    }
    files.insert(
        "entries.json".to_owned(),
        pretty(&json!({"origin": ORIGIN, "time": TIME, "entries": entries}))?,
    );

    let mut stored = Vec::new();
    for (i, h) in (0u64..).zip(&v.stored) {
        let (level, n) = tlog_tiles::split_stored_hash_index(i);
        stored.push(json!({"stored_index": i, "level": level, "n": n, "hash": hash_json(h)}));
    }
    let mut roots = Vec::new();
    for size in 0..=v.leaves.len() {
        roots
            .push(json!({"tree_size": size, "root": hash_json(&reference::root(v.leaves.get(..size).ok_or("size")?))}));
    }
    let inclusion: Vec<Value> = (0..v.leaves.len())
        .map(|m| json!({"leaf_index": m, "tree_size": v.leaves.len(), "hashes": hashes_b64(&reference::inclusion(m, &v.leaves))}))
        .collect();
    let mut consistency = Vec::new();
    for (old, new) in consistency_pairs() {
        let hashes = reference::consistency(old, v.leaves.get(..new).ok_or("size")?);
        consistency.push(json!({"old_size": old, "new_size": new, "hashes": hashes_b64(&hashes)}));
    }
    let parts = split_single_signature(v.checkpoint.note_text())?;
    let tree = json!({
        "tree_size": v.leaves.len(),
        "leaf_hashes": v.leaves.iter().map(hash_json).collect::<Vec<_>>(),
        "stored_hashes": stored,
        "roots": roots,
        "inclusion": inclusion,
        "consistency": consistency,
        "checkpoint": {
            "body": parts.body,
            "signature_line": parts.line,
            "key_id": hx(&parts.key_id),
            "signature": bytes_json(&parts.signature),
        },
    });
    files.insert("tree.json".to_owned(), pretty(&tree)?);
    files.insert(
        "checkpoint.txt".to_owned(),
        v.checkpoint.note_text().as_bytes().to_vec(),
    );
    files.insert("receipt.json".to_owned(), pretty(&v.receipt)?);
    files.insert(
        "receipt.tlog-proof".to_owned(),
        v.tlog_proof.clone().into_bytes(),
    );
    Ok(files)
}

/// (old size, new size) of the consistency proofs in `tree.json`.
pub fn consistency_pairs() -> [(usize, usize); 5] {
    [(0, 3), (1, 2), (1, 3), (2, 3), (3, 3)]
}

// ---------------------------------------------------------------------------
// File access
// ---------------------------------------------------------------------------

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/openexec")
}

pub fn regenerating() -> bool {
    std::env::var(REGENERATE_VAR).is_ok_and(|v| v == "1")
}

pub fn read(name: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).map_err(|e| {
        format!(
            "{}: {e} (regenerate with {REGENERATE_VAR}=1)",
            path.display()
        )
        .into()
    })
}

pub fn read_str(name: &str) -> Result<String, Box<dyn Error>> {
    Ok(String::from_utf8(read(name)?)?)
}

/// First line where two texts differ, for a readable failure.
pub fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let e = String::from_utf8_lossy(expected);
    let a = String::from_utf8_lossy(actual);
    for (n, (le, la)) in e.split('\n').zip(a.split('\n')).enumerate() {
        if le != la {
            return format!("line {}:\n  stored:   {le:?}\n  computed: {la:?}", n + 1);
        }
    }
    format!(
        "lengths differ: stored {} bytes, computed {} bytes",
        expected.len(),
        actual.len()
    )
}
