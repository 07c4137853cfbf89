//! Known-answer tests for the C2SP formats `OpenExec` speaks: signed-note,
//! tlog-checkpoint, tlog-cosignature (Ed25519, type 0x04), tlog-proof and the
//! tlog-witness add-checkpoint bodies.
//!
//! Inputs live in `tests/vectors/c2sp/` (see the README there):
//! * `spec/` — the worked examples from the C2SP specs themselves;
//! * `generated/` — artefacts signed with fixed TEST-ONLY keys by
//!   `tests/vectors/c2sp/gen_c2sp_vectors.py`, because the specs publish no
//!   key for their checkpoint examples.
//!
//! Each artefact is checked with the `signed_note` / `tlog_tiles` crates and,
//! for checkpoints, through `openexec::core::checkpoint`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use std::error::Error;
use std::fmt::{Debug, Write as _};
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::Verifier as _;
use sha2::{Digest, Sha256};
use signed_note::{Note, NoteError, Signature, StandardVerifier, VerifierList};
use tlog_tiles::Checkpoint;

use openexec::core::checkpoint::{LogVerifier, SignedCheckpoint};
use openexec::core::hash::{leaf_hash, Hash};
use openexec::core::proof::{verify_consistency, verify_inclusion, LeafIndex, TreeSize};

type TestResult = Result<(), Box<dyn Error>>;

const EMPTY_ROOT_B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
const LOG_ORIGIN: &str = "openexec.example/test-log";

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn dbg<E: Debug>(e: E) -> String {
    format!("{e:?}")
}

fn read(rel: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/c2sp")
        .join(rel);
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn read_str(rel: &str) -> Result<String, Box<dyn Error>> {
    Ok(String::from_utf8(read(rel)?)?)
}

fn vkey(rel: &str) -> Result<String, Box<dyn Error>> {
    Ok(read_str(rel)?.trim_end().to_string())
}

fn list(vkeys: &[&str]) -> Result<VerifierList, Box<dyn Error>> {
    let mut v: Vec<Box<dyn signed_note::Verifier>> = Vec::new();
    for k in vkeys {
        v.push(Box::new(StandardVerifier::new(k).map_err(dbg)?));
    }
    Ok(VerifierList::new(v))
}

/// Splits a signed note into (text incl. final newline, signature lines).
fn split_note(note: &str) -> Result<(String, Vec<String>), Box<dyn Error>> {
    let (text, sigs) = note.rsplit_once("\n\n").ok_or("no blank line in note")?;
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or("note does not end in newline")?;
    Ok((
        format!("{text}\n"),
        sigs.split('\n').map(str::to_string).collect(),
    ))
}

fn decode_hash(b64: &str) -> Result<Hash, Box<dyn Error>> {
    let v = STANDARD.decode(b64)?;
    let a: [u8; 32] = v
        .try_into()
        .map_err(|v: Vec<u8>| format!("hash has {} bytes", v.len()))?;
    Ok(Hash::from_bytes(a))
}

/// Flips one bit of the signature bytes (after the 4-byte key ID) of the
/// first signature line whose key name is `name`.
fn flip_sig_bit(note: &str, name: &str, byte: usize) -> Result<String, Box<dyn Error>> {
    let (text, sigs) = split_note(note)?;
    let mut out = format!("{text}\n");
    let mut done = false;
    for line in sigs {
        let prefix = format!("— {name} ");
        match line.strip_prefix(&prefix) {
            Some(b64) if !done => {
                let mut raw = STANDARD.decode(b64)?;
                let i = 4 + byte % (raw.len() - 4);
                raw[i] ^= 0x10;
                let _ = writeln!(out, "{prefix}{}", STANDARD.encode(raw));
                done = true;
            }
            _ => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    if !done {
        return Err(format!("no signature line for {name}").into());
    }
    Ok(out)
}

/// Verifies a note with `signed_note`; Ok(number of verified signatures).
fn note_verifies(note: &[u8], vkeys: &[&str]) -> Result<usize, Box<dyn Error>> {
    let n = Note::from_bytes(note).map_err(dbg)?;
    let (verified, _unverified) = n.verify(&list(vkeys)?).map_err(dbg)?;
    Ok(verified.len())
}

/// Opens a checkpoint through the `OpenExec` API.
fn open(note: &[u8], vkey: &str) -> Result<SignedCheckpoint, Box<dyn Error>> {
    let v = LogVerifier::from_vkey(vkey).map_err(dbg)?;
    SignedCheckpoint::open(note, &v).map_err(|e| dbg(e).into())
}

/// An Ed25519 tlog-cosignature (type 0x04) verifier key.
struct CosignerKey {
    name: String,
    id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

fn cosigner(vkey: &str) -> Result<CosignerKey, Box<dyn Error>> {
    let mut parts = vkey.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("vkey needs three parts".into());
    };
    let raw = STANDARD.decode(key_b64)?;
    if raw.len() != 33 || raw[0] != 0x04 {
        return Err("not an Ed25519 cosignature (0x04) vkey".into());
    }
    let pk: [u8; 32] = raw[1..].try_into()?;
    // key ID = SHA-256(name || "\n" || 0x04 || pubkey)[:4]
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(&raw);
    let digest = h.finalize();
    let id: [u8; 4] = digest[..4].try_into()?;
    if hex::encode(id) != id_hex {
        return Err(format!(
            "key ID mismatch: computed {}, vkey says {id_hex}",
            hex::encode(id)
        )
        .into());
    }
    Ok(CosignerKey {
        name: name.to_string(),
        id,
        key: ed25519_dalek::VerifyingKey::from_bytes(&pk)?,
    })
}

/// Verifies every cosignature line from `k` on checkpoint text `text`;
/// returns the timestamps. Errors if there is none or any fails.
fn verify_cosigs(
    text: &str,
    lines: &[String],
    k: &CosignerKey,
) -> Result<Vec<u64>, Box<dyn Error>> {
    let mut out = Vec::new();
    for line in lines {
        let sig = Signature::from_bytes(line.as_bytes()).map_err(dbg)?;
        if sig.name() != k.name || sig.id() != u32::from_be_bytes(k.id) {
            continue; // unknown key: ignore
        }
        let body = sig.signature();
        if body.len() != 8 + 64 {
            return Err(format!("cosignature body is {} bytes, want 72", body.len()).into());
        }
        let ts = u64::from_be_bytes(body[..8].try_into()?);
        if ts > i64::MAX as u64 {
            return Err("cosignature timestamp exceeds 2^63-1".into());
        }
        let s = ed25519_dalek::Signature::from_bytes(&body[8..].try_into()?);
        let msg = format!("cosignature/v1\ntime {ts}\n{text}");
        k.key.verify(msg.as_bytes(), &s)?;
        out.push(ts);
    }
    if out.is_empty() {
        return Err(format!("no cosignature from {}", k.name).into());
    }
    Ok(out)
}

fn must_fail<T: Debug>(what: &str, r: Result<T, Box<dyn Error>>) {
    if let Ok(v) = r {
        panic!("{what}: expected failure, got Ok({v:?})");
    }
}

// SignedCheckpoint may not implement Debug; summarise it for must_fail.
fn open_summary(note: &[u8], vkey: &str) -> Result<(String, u64), Box<dyn Error>> {
    let c = open(note, vkey)?;
    Ok((c.origin().to_string(), c.size()))
}

// ---------------------------------------------------------------------------
// spec/: examples from the C2SP specs
// ---------------------------------------------------------------------------

#[test]
fn spec_signed_note_example_verifies() -> TestResult {
    let vk = vkey("spec/signed-note-example.vkey")?;
    let note = read("spec/signed-note-example.note")?;
    let n = Note::from_bytes(&note).map_err(dbg)?;
    assert_eq!(n.text(), b"This is an example message.\n");
    let (verified, unverified) = n.verify(&list(&[&vk])?).map_err(dbg)?;
    assert_eq!((verified.len(), unverified.len()), (1, 0));
    assert_eq!(verified[0].name(), "example.com/foo");
    assert_eq!(verified[0].id(), 0x530d_903a);
    // Round trip is byte-exact.
    assert_eq!(n.to_bytes(), note);
    Ok(())
}

#[test]
fn spec_signed_note_example_negatives() -> TestResult {
    let vk = vkey("spec/signed-note-example.vkey")?;
    let note = read_str("spec/signed-note-example.note")?;
    let other = vkey("generated/log.vkey")?;

    for byte in [0, 17, 40, 63] {
        let bad = flip_sig_bit(&note, "example.com/foo", byte)?;
        let n = Note::from_bytes(bad.as_bytes()).map_err(dbg)?;
        match n.verify(&list(&[&vk])?) {
            Err(NoteError::InvalidSignature { .. }) => {}
            other => panic!("flipped sig byte {byte}: want InvalidSignature, got {other:?}"),
        }
    }
    let changed = note.replace("example message.", "example message!");
    must_fail("modified text", note_verifies(changed.as_bytes(), &[&vk]));
    let changed = note.replace("This is", "This  is");
    must_fail(
        "modified whitespace",
        note_verifies(changed.as_bytes(), &[&vk]),
    );
    must_fail("wrong key", note_verifies(note.as_bytes(), &[&other]));
    let no_blank = note.replacen("\n\n", "\n", 1);
    must_fail("no blank line", note_verifies(no_blank.as_bytes(), &[&vk]));
    let no_final_nl = note.trim_end_matches('\n');
    must_fail(
        "no final newline",
        note_verifies(no_final_nl.as_bytes(), &[&vk]),
    );
    // vkey whose ID does not match name/key.
    let bad_id = vk.replace("+530d903a+", "+530d903b+");
    assert!(
        StandardVerifier::new(&bad_id).is_err(),
        "vkey with wrong key ID accepted"
    );
    let bad_name = vk.replace("example.com/foo", "example.com/bar");
    assert!(
        StandardVerifier::new(&bad_name).is_err(),
        "vkey with wrong name accepted"
    );
    Ok(())
}

#[test]
fn spec_signed_note_example_is_not_a_checkpoint() -> TestResult {
    // A correctly signed note whose text is not a checkpoint must not open.
    let vk = vkey("spec/signed-note-example.vkey")?;
    let note = read("spec/signed-note-example.note")?;
    assert!(
        LogVerifier::from_vkey(&vk).is_ok(),
        "plain Ed25519 vkey rejected"
    );
    must_fail(
        "signed-note example as checkpoint",
        open_summary(&note, &vk),
    );
    Ok(())
}

#[test]
fn spec_checkpoint_example_parses() -> TestResult {
    for file in [
        "spec/tlog-checkpoint-example.note",
        "spec/tlog-cosignature-example.note",
    ] {
        let note = read(file)?;
        let n = Note::from_bytes(&note).map_err(dbg)?;
        let cp = Checkpoint::from_bytes(n.text()).map_err(dbg)?;
        assert_eq!(cp.origin(), "example.com/behind-the-sofa", "{file}");
        assert_eq!(cp.size(), 20_852_163, "{file}");
        assert_eq!(
            cp.hash().to_string(),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
        );
        assert_eq!(cp.extension(), "");

        let (_, sigs) = split_note(std::str::from_utf8(&note)?)?;
        let log_sig = Signature::from_bytes(sigs[0].as_bytes()).map_err(dbg)?;
        assert_eq!(log_sig.name(), "example.com/behind-the-sofa");
        assert_eq!(log_sig.id(), 0x033d_e0ae);
        assert_eq!(log_sig.signature().len(), 64);

        // No key for this example is published: an unrelated trusted key
        // must not make it verify, with either API.
        let other = vkey("generated/log.vkey")?;
        match n.verify(&list(&[&other])?) {
            Err(NoteError::UnverifiedNote) => {}
            r => panic!("{file}: want UnverifiedNote, got {r:?}"),
        }
        must_fail(file, open_summary(&note, &other));
    }
    Ok(())
}

#[test]
fn spec_cosignature_example_structure() -> TestResult {
    let note = read_str("spec/tlog-cosignature-example.note")?;
    let msg = read_str("spec/tlog-cosignature-example.msg")?;
    let (text, sigs) = split_note(&note)?;
    assert_eq!(sigs.len(), 2);

    let w = Signature::from_bytes(sigs[1].as_bytes()).map_err(dbg)?;
    assert_eq!(w.name(), "witness.example.com/w1");
    assert_eq!(w.id(), 0x8d66_cf3f);
    // timestamped_signature = u64 big-endian timestamp || 64-byte Ed25519.
    assert_eq!(w.signature().len(), 72);
    let ts = u64::from_be_bytes(w.signature()[..8].try_into()?);
    assert_eq!(ts, 1_679_315_147);

    // The spec's signed-message example is exactly header, time line, text,
    // and its time line matches the timestamp inside the example cosignature.
    assert_eq!(msg, format!("cosignature/v1\ntime {ts}\n{text}"));
    Ok(())
}

#[test]
fn spec_witness_add_checkpoint_example_parses() -> TestResult {
    let req = read_str("spec/tlog-witness-add-checkpoint.request")?;
    let (head, checkpoint) = req.split_once("\n\n").ok_or("no blank line")?;
    let mut lines = head.split('\n');
    let old: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .ok_or("no old line")?
        .parse()?;
    assert_eq!(old, 20_852_014);
    let proof: Vec<Hash> = lines.map(decode_hash).collect::<Result<_, _>>()?;
    assert_eq!(proof.len(), 4);
    assert!(proof.len() <= 63);

    let n = Note::from_bytes(checkpoint.as_bytes()).map_err(dbg)?;
    let cp = Checkpoint::from_bytes(n.text()).map_err(dbg)?;
    assert_eq!(cp.size(), 20_852_163);
    assert!(old <= cp.size());
    let (_, sigs) = split_note(checkpoint)?;
    assert_eq!(
        sigs.len(),
        2,
        "request checkpoint carries two log signatures"
    );

    // Response: one or more note signature lines, each newline-terminated.
    let resp = read_str("spec/tlog-witness-add-checkpoint.response")?;
    assert!(resp.ends_with('\n'));
    let lines: Vec<&str> = resp.trim_end_matches('\n').split('\n').collect();
    assert_eq!(lines.len(), 3);
    for l in lines {
        let s = Signature::from_bytes(l.as_bytes()).map_err(dbg)?;
        assert!(s.name().starts_with("witness.example/w"));
        assert_eq!(s.signature().len(), 72, "Ed25519 cosignature body");
    }
    Ok(())
}

#[test]
fn spec_tlog_proof_example_parses() -> TestResult {
    let p = read_str("spec/tlog-proof-example.tlog-proof")?;
    let (head, checkpoint) = p.split_once("\n\n").ok_or("no blank line")?;
    let mut lines = head.split('\n');
    assert_eq!(lines.next(), Some("c2sp.org/tlog-proof@v1"));
    let extra = lines
        .next()
        .and_then(|l| l.strip_prefix("extra "))
        .ok_or("no extra")?;
    assert!(!STANDARD.decode(extra)?.is_empty());
    let index: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("index "))
        .ok_or("no index")?
        .parse()?;
    assert_eq!(index, 73_894);
    let proof: Vec<Hash> = lines.map(decode_hash).collect::<Result<_, _>>()?;
    assert_eq!(proof.len(), 5);

    // The checkpoint body is well formed ...
    let (text, _) = split_note(checkpoint)?;
    let cp = Checkpoint::from_bytes(text.as_bytes()).map_err(dbg)?;
    assert_eq!(cp.origin(), "example.com/fancylog");
    assert_eq!(cp.size(), 109_482);
    assert!(index < cp.size());
    // ... but the spec elides its signatures ("[...]"), so it is not a note.
    assert!(Note::from_bytes(checkpoint.as_bytes()).is_err());
    Ok(())
}

// ---------------------------------------------------------------------------
// generated/: artefacts signed with TEST-ONLY keys
// ---------------------------------------------------------------------------

/// Root of the size-n tree from the Merkle vectors (same leaf formula).
fn merkle_root(n: u64) -> Result<String, Box<dyn Error>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/merkle/inclusion.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    cases
        .iter()
        .find(|c| c["valid"] == true && c["tree_size"] == n)
        .and_then(|c| c["root"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no valid inclusion case with tree_size {n}").into())
}

#[test]
fn generated_checkpoints_verify() -> TestResult {
    let vk = vkey("generated/log.vkey")?;
    for size in [0u64, 1, 8, 13, 1025] {
        let file = format!("generated/checkpoint-{size}.note");
        let note = read(&file)?;
        assert_eq!(note_verifies(&note, &[&vk])?, 1, "{file}");

        let n = Note::from_bytes(&note).map_err(dbg)?;
        let cp = Checkpoint::from_bytes(n.text()).map_err(dbg)?;
        assert_eq!(cp.origin(), LOG_ORIGIN);
        assert_eq!(cp.size(), size);
        let want_root = if size == 0 {
            EMPTY_ROOT_B64.to_string()
        } else {
            merkle_root(size)?
        };
        assert_eq!(cp.hash().to_string(), want_root, "{file}");

        let c = open(&note, &vk)?;
        assert_eq!(c.origin(), LOG_ORIGIN, "{file}");
        assert_eq!(c.size(), size, "{file}");
        assert_eq!(c.root().as_bytes(), &cp.hash().0, "{file}");
    }
    Ok(())
}

#[test]
fn generated_checkpoint_negatives() -> TestResult {
    let vk = vkey("generated/log.vkey")?;
    let other = vkey("generated/other-log-key-same-name.vkey")?;
    let note = read_str("generated/checkpoint-13.note")?;
    let cosigned = read_str("generated/checkpoint-13-cosigned.note")?;
    let root = merkle_root(13)?;

    let mut bad: Vec<(String, String)> = Vec::new();
    for byte in [0, 31, 32, 63] {
        bad.push((
            format!("flipped bit in sig byte {byte}"),
            flip_sig_bit(&note, LOG_ORIGIN, byte)?,
        ));
    }
    bad.push((
        "flipped bit in log sig of cosigned checkpoint".into(),
        flip_sig_bit(&cosigned, LOG_ORIGIN, 5)?,
    ));
    bad.push(("size changed".into(), note.replacen("\n13\n", "\n14\n", 1)));
    bad.push((
        "size with leading zero".into(),
        note.replacen("\n13\n", "\n013\n", 1),
    ));
    bad.push((
        "origin changed".into(),
        note.replacen("test-log\n", "test-log2\n", 1),
    ));
    let mut other_root = root.clone().into_bytes();
    other_root[0] = if other_root[0] == b'A' { b'B' } else { b'A' };
    bad.push((
        "root changed".into(),
        note.replacen(&root, std::str::from_utf8(&other_root)?, 1),
    ));
    bad.push((
        "extension line added".into(),
        note.replacen(&format!("{root}\n"), &format!("{root}\nextra\n"), 1),
    ));
    let (text, _) = split_note(&note)?;
    bad.push(("signature lines removed".into(), format!("{text}\n")));
    bad.push(("text only".into(), text.clone()));
    bad.push(("blank line removed".into(), note.replacen("\n\n", "\n", 1)));
    bad.push(("CRLF line endings".into(), note.replace('\n', "\r\n")));

    for (what, n) in &bad {
        must_fail(
            &format!("signed_note: {what}"),
            note_verifies(n.as_bytes(), &[&vk]),
        );
        must_fail(
            &format!("openexec: {what}"),
            open_summary(n.as_bytes(), &vk),
        );
    }
    // Correct note, wrong (same-name, different-key) verifier.
    must_fail(
        "signed_note: wrong key",
        note_verifies(note.as_bytes(), &[&other]),
    );
    must_fail("openexec: wrong key", open_summary(note.as_bytes(), &other));
    Ok(())
}

#[test]
fn generated_cosigned_checkpoint() -> TestResult {
    let vk = vkey("generated/log.vkey")?;
    let note = read_str("generated/checkpoint-13-cosigned.note")?;

    // The log key alone verifies; the two 0x04 cosignatures and the stranger's
    // signature are unknown to it and must be ignored, not rejected.
    let n = Note::from_bytes(note.as_bytes()).map_err(dbg)?;
    let (verified, unverified) = n.verify(&list(&[&vk])?).map_err(dbg)?;
    assert_eq!((verified.len(), unverified.len()), (1, 3));
    let c = open(note.as_bytes(), &vk)?;
    assert_eq!((c.origin(), c.size()), (LOG_ORIGIN, 13));

    let (text, sigs) = split_note(&note)?;
    let w1 = cosigner(&vkey("generated/witness1.vkey")?)?;
    let w2 = cosigner(&vkey("generated/witness2.vkey")?)?;
    assert_eq!(verify_cosigs(&text, &sigs, &w1)?, vec![1_700_000_000]);
    assert_eq!(verify_cosigs(&text, &sigs, &w2)?, vec![1_700_000_123]);

    // The exact signed message for witness1.
    let msg = read_str("generated/cosignature-witness1-13.msg")?;
    assert_eq!(msg, format!("cosignature/v1\ntime 1700000000\n{text}"));

    // Negatives: flipped bit, timestamp changed, text changed, wrong key.
    let flipped = flip_sig_bit(&note, &w1.name, 20)?;
    let (_, fs) = split_note(&flipped)?;
    must_fail("cosig flipped bit", verify_cosigs(&text, &fs, &w1));
    let retimed: Vec<String> = sigs
        .iter()
        .map(|l| -> Result<String, Box<dyn Error>> {
            match l.strip_prefix(&format!("— {} ", w1.name)) {
                Some(b64) => {
                    let mut raw = STANDARD.decode(b64)?;
                    raw[11] ^= 1; // lowest byte of the u64 timestamp
                    Ok(format!("— {} {}", w1.name, STANDARD.encode(raw)))
                }
                None => Ok(l.clone()),
            }
        })
        .collect::<Result<_, _>>()?;
    must_fail(
        "cosig timestamp changed",
        verify_cosigs(&text, &retimed, &w1),
    );
    let other_text = text.replacen("\n13\n", "\n14\n", 1);
    must_fail(
        "cosig over modified text",
        verify_cosigs(&other_text, &sigs, &w1),
    );
    let wrong = CosignerKey {
        name: w1.name.clone(),
        id: w1.id,
        key: w2.key,
    };
    must_fail("cosig with wrong key", verify_cosigs(&text, &sigs, &wrong));
    Ok(())
}

#[test]
fn generated_tlog_proofs_verify() -> TestResult {
    let vk = vkey("generated/log.vkey")?;
    for (file, want_index, want_size, want_proof_len) in [
        ("generated/leaf-7-of-13.tlog-proof", 7u64, 13u64, 4usize),
        ("generated/leaf-0-of-1.tlog-proof", 0, 1, 0),
    ] {
        let p = read_str(file)?;
        let (head, checkpoint) = p.split_once("\n\n").ok_or("no blank line")?;
        let mut lines = head.split('\n').peekable();
        assert_eq!(lines.next(), Some("c2sp.org/tlog-proof@v1"), "{file}");
        let extra = match lines.peek().and_then(|l| l.strip_prefix("extra ")) {
            Some(e) => {
                let d = STANDARD.decode(e)?;
                lines.next();
                Some(d)
            }
            None => None,
        };
        let index: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .ok_or("no index")?
            .parse()?;
        let proof: Vec<Hash> = lines.map(decode_hash).collect::<Result<_, _>>()?;
        assert_eq!((index, proof.len()), (want_index, want_proof_len), "{file}");

        // Leaf data: the extra line if present, else the documented formula.
        let data = extra.unwrap_or_else(|| format!("openexec-leaf-{index}").into_bytes());
        assert_eq!(
            data,
            format!("openexec-leaf-{index}").into_bytes(),
            "{file}"
        );
        let leaf = leaf_hash(&data);

        let c = open(checkpoint.as_bytes(), &vk)?;
        assert_eq!(c.size(), want_size, "{file}");
        verify_inclusion(
            &proof,
            LeafIndex(index),
            TreeSize(c.size()),
            &leaf,
            &c.root(),
        )
        .map_err(dbg)?;

        // Wrong leaf / index must fail.
        let wrong_leaf = leaf_hash(b"openexec-leaf-999");
        assert!(verify_inclusion(
            &proof,
            LeafIndex(index),
            TreeSize(c.size()),
            &wrong_leaf,
            &c.root()
        )
        .is_err());
        assert!(verify_inclusion(
            &proof,
            LeafIndex(index + 1),
            TreeSize(c.size()),
            &leaf,
            &c.root()
        )
        .is_err());
    }
    Ok(())
}

#[test]
fn generated_add_checkpoint_exchange() -> TestResult {
    let vk = vkey("generated/log.vkey")?;
    let req = read_str("generated/add-checkpoint-8-13.request")?;
    let (head, checkpoint) = req.split_once("\n\n").ok_or("no blank line")?;
    let mut lines = head.split('\n');
    let old: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .ok_or("no old line")?
        .parse()?;
    let proof: Vec<Hash> = lines.map(decode_hash).collect::<Result<_, _>>()?;
    assert_eq!((old, proof.len()), (8, 1));

    let new = open(checkpoint.as_bytes(), &vk)?;
    let prev = open(&read("generated/checkpoint-8.note")?, &vk)?;
    assert_eq!((prev.size(), new.size()), (8, 13));
    verify_consistency(
        &proof,
        TreeSize(old),
        TreeSize(new.size()),
        &prev.root(),
        &new.root(),
    )
    .map_err(dbg)?;
    assert!(verify_consistency(
        &proof,
        TreeSize(old),
        TreeSize(new.size()),
        &new.root(),
        &prev.root()
    )
    .is_err());
    assert!(verify_consistency(
        &[],
        TreeSize(old),
        TreeSize(new.size()),
        &prev.root(),
        &new.root()
    )
    .is_err());

    // Response: append to the checkpoint and verify as cosignature lines.
    let resp = read_str("generated/add-checkpoint-8-13.response")?;
    let (text, mut sigs) = split_note(checkpoint)?;
    sigs.extend(resp.trim_end_matches('\n').split('\n').map(str::to_string));
    let w1 = cosigner(&vkey("generated/witness1.vkey")?)?;
    assert_eq!(verify_cosigs(&text, &sigs, &w1)?, vec![1_700_000_000]);

    // "old 0": empty proof, any new size is consistent with the empty tree.
    let req0 = read_str("generated/add-checkpoint-0-13.request")?;
    let (head0, cp0) = req0.split_once("\n\n").ok_or("no blank line")?;
    assert_eq!(head0, "old 0");
    let new0 = open(cp0.as_bytes(), &vk)?;
    let empty = Hash::from_base64(EMPTY_ROOT_B64).map_err(dbg)?;
    verify_consistency(
        &[],
        TreeSize(0),
        TreeSize(new0.size()),
        &empty,
        &new0.root(),
    )
    .map_err(dbg)?;
    Ok(())
}
