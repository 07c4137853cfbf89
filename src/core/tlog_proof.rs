//! Receipts as C2SP `tlog-proof@v1` text, for tools that speak it.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the JCS object {entry, entry_signature, format, salts?}>
//! index <leaf index>
//! <base64 proof hash>      (zero or more, leaf side first)
//!
//! <signed checkpoint, verbatim>
//! ```
//!
//! The `extra` line carries what a tlog-proof does not: the entry text (the
//! leaf data; its leaf hash is `SHA-256(0x00 ‖ entry)`), the entry
//! signature and the salts. `extra` is not covered by the checkpoint
//! signature, which is why [`super::receipt::verify_receipt`] checks the
//! entry signature and recomputes the leaf hash from it. Import is strict:
//! every line is checked, nothing may trail, and `import(export(r)) == r`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::canonical::to_canonical_bytes;
use super::hash::Hash;
use super::receipt::{InclusionProof, Receipt, Salts};

/// First line of a tlog-proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Why text is not an importable tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    /// A required line is missing or malformed.
    #[error("tlog-proof: bad or missing `{0}` line")]
    Line(&'static str),
    /// The `extra` data is not an OpenExec receipt bundle.
    #[error("tlog-proof: extra data is not an OpenExec receipt bundle")]
    Extra,
    /// The checkpoint part is not a parseable checkpoint note.
    #[error("tlog-proof: malformed checkpoint")]
    Checkpoint,
}

/// What the `extra` line carries.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Extra {
    format: String,
    entry: String,
    entry_signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salts: Option<Salts>,
}

/// Renders a receipt as tlog-proof text.
pub fn export(receipt: &Receipt) -> Result<String, TlogProofError> {
    let extra = Extra {
        format: receipt.format.clone(),
        entry: receipt.entry.clone(),
        entry_signature: receipt.entry_signature.clone(),
        salts: receipt.salts.clone(),
    };
    let extra = to_canonical_bytes(&extra).map_err(|_| TlogProofError::Extra)?;
    let mut out = format!(
        "{HEADER}\nextra {}\nindex {}\n",
        STANDARD.encode(extra),
        receipt.leaf_index
    );
    for hash in &receipt.inclusion_proof.hashes {
        out.push_str(&hash.to_base64());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&receipt.checkpoint);
    Ok(out)
}

/// Parses tlog-proof text made by [`export`] back into a receipt. The
/// result still has to be verified with `verify_receipt`.
pub fn import(text: &str) -> Result<Receipt, TlogProofError> {
    let mut rest = text;
    let mut next_line = |name: &'static str| -> Result<&str, TlogProofError> {
        let (line, after) = rest.split_once('\n').ok_or(TlogProofError::Line(name))?;
        rest = after;
        Ok(line)
    };
    if next_line("header")? != HEADER {
        return Err(TlogProofError::Line("header"));
    }
    let extra = next_line("extra")?
        .strip_prefix("extra ")
        .ok_or(TlogProofError::Line("extra"))?;
    let extra = STANDARD.decode(extra).map_err(|_| TlogProofError::Extra)?;
    let parsed: Extra = serde_json::from_slice(&extra).map_err(|_| TlogProofError::Extra)?;
    // Strict: the bundle must be exactly the canonical form export writes.
    if to_canonical_bytes(&parsed).map_err(|_| TlogProofError::Extra)? != extra {
        return Err(TlogProofError::Extra);
    }
    let extra = parsed;
    let index = next_line("index")?
        .strip_prefix("index ")
        .ok_or(TlogProofError::Line("index"))?;
    let leaf_index = parse_decimal(index).ok_or(TlogProofError::Line("index"))?;
    let mut hashes = Vec::new();
    loop {
        let line = next_line("proof")?;
        if line.is_empty() {
            break;
        }
        hashes.push(Hash::from_base64(line).map_err(|_| TlogProofError::Line("proof"))?);
    }
    let checkpoint = rest.to_owned();
    let note = signed_note::Note::from_bytes(checkpoint.as_bytes())
        .map_err(|_| TlogProofError::Checkpoint)?;
    let body =
        tlog_tiles::Checkpoint::from_bytes(note.text()).map_err(|_| TlogProofError::Checkpoint)?;
    Ok(Receipt {
        format: extra.format,
        entry: extra.entry,
        entry_signature: extra.entry_signature,
        leaf_index,
        inclusion_proof: InclusionProof {
            tree_size: body.size(),
            hashes,
        },
        checkpoint,
        salts: extra.salts,
    })
}

/// ASCII decimal without leading zeros ("0" itself is fine).
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_strict() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("17"), Some(17));
        assert_eq!(parse_decimal("017"), None);
        assert_eq!(parse_decimal("+1"), None);
        assert_eq!(parse_decimal(""), None);
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(import(""), Err(TlogProofError::Line("header")));
        assert_eq!(
            import("c2sp.org/tlog-proof@v1\nindex 1\n"),
            Err(TlogProofError::Line("extra"))
        );
    }
}
