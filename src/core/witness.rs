//! The witness's decision: may this checkpoint be cosigned?
//!
//! A witness keeps, per log, the latest checkpoint it cosigned and cosigns
//! a new one only when a consistency proof shows that the new tree extends
//! the old one. This module holds that rule, once, for both ways a
//! checkpoint reaches a witness:
//!
//! - pushed by a log in a C2SP tlog-witness `add-checkpoint` request
//!   ([`AddCheckpoint`], checked by [`check_add_checkpoint`], whose
//!   refusals map to the status codes of that spec), and
//! - pulled by the witness from a log it follows ([`check_pulled`]), which
//!   also treats a smaller tree as a rollback.
//!
//! Refusals that prove misbehaviour (a fork, a rollback, a bad root) say so
//! ([`Refusal::is_misbehaviour`]) so that the caller keeps both signed
//! checkpoints as evidence. This module never does I/O, never reads the
//! clock and never persists anything: the caller must persist the accepted
//! checkpoint before it releases a cosignature.

use super::checkpoint::SignedCheckpoint;
use super::hash::{empty_tree_hash, Hash};
use super::proof::{verify_consistency, ProofError, TreeSize};

/// Most consistency-proof lines an add-checkpoint request may carry (spec).
pub const MAX_PROOF_LINES: usize = 63;

/// Largest add-checkpoint body accepted (a checkpoint with many signatures
/// and a full proof is far below this).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A parsed tlog-witness `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// Size of the checkpoint the client believes the witness cosigned last.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Why a checkpoint is not cosigned. Each maps to one HTTP status of the
/// tlog-witness spec ([`Refusal::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request body is not a well-formed add-checkpoint request.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The checkpoint's origin is not a log this witness follows.
    #[error("unknown log origin {0:?}")]
    UnknownLog(String),
    /// No valid signature from the log's key (or a bad one).
    #[error("checkpoint is not validly signed by the log key")]
    Unsigned,
    /// `old` is larger than the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint size {new}")]
    OldAfterNew {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        new: u64,
    },
    /// `old` is not the size this witness last cosigned.
    #[error("old size {old} is not the latest cosigned size {latest}")]
    StaleOldSize {
        /// The request's old size.
        old: u64,
        /// The size this witness last cosigned (0 if none).
        latest: u64,
    },
    /// A tree of size 0 whose root is not the empty-tree hash.
    #[error("a checkpoint of size 0 must have the empty-tree root")]
    BadEmptyRoot,
    /// A non-empty proof from size 0.
    #[error("a consistency proof from size 0 must be empty")]
    ProofFromEmpty,
    /// Same size as the cosigned checkpoint, different root: a fork.
    #[error("same size {size} as the cosigned checkpoint but a different root")]
    SameSizeOtherRoot {
        /// The size both checkpoints have.
        size: u64,
    },
    /// The consistency proof does not connect the two trees: a fork.
    #[error("not consistent with the cosigned checkpoint of size {old}: {reason}")]
    Inconsistent {
        /// The cosigned size.
        old: u64,
        /// What the proof check said.
        reason: ProofError,
    },
    /// The log now shows a smaller tree than one already cosigned.
    #[error("rollback: the log shows size {offered} after size {latest} was cosigned")]
    Rollback {
        /// The cosigned size.
        latest: u64,
        /// The size now offered.
        offered: u64,
    },
}

impl Refusal {
    /// The tlog-witness HTTP status for this refusal.
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::OldAfterNew { .. } | Self::Rollback { .. } => 400,
            Self::Unsigned => 403,
            Self::UnknownLog(_) => 404,
            Self::StaleOldSize { .. } => 409,
            Self::BadEmptyRoot
            | Self::ProofFromEmpty
            | Self::SameSizeOtherRoot { .. }
            | Self::Inconsistent { .. } => 422,
        }
    }

    /// Whether the refusal proves that the log misbehaved (the two signed
    /// checkpoints are evidence and must be kept).
    #[must_use]
    pub const fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            Self::BadEmptyRoot
                | Self::SameSizeOtherRoot { .. }
                | Self::Inconsistent { .. }
                | Self::Rollback { .. }
        )
    }

    /// A short stable code (for logs, evidence files and JSON errors).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_request",
            Self::UnknownLog(_) => "unknown_log",
            Self::Unsigned => "bad_log_signature",
            Self::OldAfterNew { .. } => "old_size_too_large",
            Self::StaleOldSize { .. } => "old_size_mismatch",
            Self::BadEmptyRoot => "bad_empty_root",
            Self::ProofFromEmpty => "proof_from_empty",
            Self::SameSizeOtherRoot { .. } => "fork_same_size",
            Self::Inconsistent { .. } => "fork_inconsistent",
            Self::Rollback { .. } => "rollback",
        }
    }
}

impl AddCheckpoint {
    /// Parses `old <size>\n`, up to 63 base64 proof lines, an empty line,
    /// then the checkpoint note (kept verbatim, parsed later).
    pub fn parse(body: &[u8]) -> Result<Self, Refusal> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(Refusal::Malformed("request too large"));
        }
        let (first, mut rest) = split_line(body).ok_or(Refusal::Malformed("no old line"))?;
        let old_size = first
            .strip_prefix(b"old ")
            .and_then(parse_decimal)
            .ok_or(Refusal::Malformed("first line must be `old <size>`"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = split_line(rest)
                .ok_or(Refusal::Malformed("missing empty line before checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(Refusal::Malformed("more than 63 proof lines"));
            }
            let text = std::str::from_utf8(line).map_err(|_| Refusal::Malformed("proof line"))?;
            proof.push(Hash::from_base64(text).map_err(|_| Refusal::Malformed("proof line"))?);
        }
        if rest.is_empty() {
            return Err(Refusal::Malformed("no checkpoint"));
        }
        Ok(Self {
            old_size,
            proof,
            checkpoint: rest.to_vec(),
        })
    }

    /// The request body, as a log sends it.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        for hash in &self.proof {
            out.extend_from_slice(hash.to_base64().as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }
}

/// The origin line of a checkpoint note, read before any verification so
/// that the right log key can be looked up.
pub fn origin_of(note: &[u8]) -> Result<&str, Refusal> {
    let (line, _) = split_line(note).ok_or(Refusal::Malformed("checkpoint has no origin line"))?;
    std::str::from_utf8(line)
        .ok()
        .filter(|origin| !origin.is_empty())
        .ok_or(Refusal::Malformed("checkpoint origin"))
}

/// Checks a pushed checkpoint (already verified against the log's key)
/// against `latest`, the checkpoint this witness last cosigned for the log
/// (`None`: never). Checks follow the order of the tlog-witness spec.
/// `Ok` means the checkpoint may be cosigned once it has been persisted.
pub fn check_add_checkpoint(
    latest: Option<&SignedCheckpoint>,
    request_old_size: u64,
    proof: &[Hash],
    offered: &SignedCheckpoint,
) -> Result<(), Refusal> {
    let latest_size = latest.map_or(0, SignedCheckpoint::size);
    if request_old_size > offered.size() {
        return Err(Refusal::OldAfterNew {
            old: request_old_size,
            new: offered.size(),
        });
    }
    if request_old_size != latest_size {
        return Err(Refusal::StaleOldSize {
            old: request_old_size,
            latest: latest_size,
        });
    }
    check_extends(latest, proof, offered)
}

/// Whether a pulled checkpoint needs a consistency proof before
/// [`check_extends`]: refuses a smaller tree (rollback) at once.
pub fn check_pulled(
    latest: Option<&SignedCheckpoint>,
    offered: &SignedCheckpoint,
) -> Result<ProofNeeded, Refusal> {
    let latest_size = latest.map_or(0, SignedCheckpoint::size);
    if offered.size() < latest_size {
        return Err(Refusal::Rollback {
            latest: latest_size,
            offered: offered.size(),
        });
    }
    if latest_size == 0 || latest_size == offered.size() {
        Ok(ProofNeeded::No)
    } else {
        Ok(ProofNeeded::From(latest_size))
    }
}

/// Whether the witness must fetch a consistency proof, and from which size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofNeeded {
    /// The check needs no proof (first checkpoint, or same size).
    No,
    /// A proof from this size to the offered size.
    From(u64),
}

/// The consistency rule itself: `offered` extends `latest` (which may be
/// absent: size 0) as `proof` shows.
pub fn check_extends(
    latest: Option<&SignedCheckpoint>,
    proof: &[Hash],
    offered: &SignedCheckpoint,
) -> Result<(), Refusal> {
    if offered.size() == 0 && offered.root() != empty_tree_hash() {
        return Err(Refusal::BadEmptyRoot);
    }
    let Some(latest) = latest.filter(|l| l.size() > 0) else {
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(Refusal::ProofFromEmpty)
        };
    };
    if latest.size() == offered.size() && latest.root() != offered.root() {
        return Err(Refusal::SameSizeOtherRoot {
            size: offered.size(),
        });
    }
    verify_consistency(
        proof,
        TreeSize(latest.size()),
        TreeSize(offered.size()),
        &latest.root(),
        &offered.root(),
    )
    .map_err(|reason| Refusal::Inconsistent {
        old: latest.size(),
        reason,
    })
}

fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// ASCII decimal without sign or leading zeros ("0" allowed), as C2SP
/// formats write sizes (and tlog-policy thresholds).
pub(crate) fn parse_decimal(text: &[u8]) -> Option<u64> {
    let valid = !text.is_empty()
        && text.iter().all(u8::is_ascii_digit)
        && (text == b"0" || text[0] != b'0');
    if !valid {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::proof::reference;
    use crate::core::signing::LogSigner;

    fn log() -> LogSigner {
        LogSigner::from_seed("example.com/log", [5; 32]).unwrap()
    }

    fn leaves(n: u64, tag: u8) -> Vec<Hash> {
        (0..n)
            .map(|i| crate::core::hash::leaf_hash(&[tag, i as u8]))
            .collect()
    }

    fn checkpoint(leaves: &[Hash]) -> SignedCheckpoint {
        let root = reference::root(leaves);
        SignedCheckpoint::sign(&log(), leaves.len() as u64, root).unwrap()
    }

    #[test]
    fn request_round_trips_and_rejects_bad_shapes() {
        let cp = checkpoint(&leaves(3, 0));
        let req = AddCheckpoint {
            old_size: 2,
            proof: vec![Hash::sha256(b"a"), Hash::sha256(b"b")],
            checkpoint: cp.note_text().as_bytes().to_vec(),
        };
        assert_eq!(AddCheckpoint::parse(&req.to_bytes()).unwrap(), req);
        for bad in [
            &b"old 01\n\nx\n"[..],
            b"old -1\n\nx\n",
            b"old 1",
            b"new 1\n\nx\n",
            b"old 1\nnot base64!\n\nx\n",
            b"old 1\n\n",
            b"old 1\nx\n",
        ] {
            assert!(
                AddCheckpoint::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut many = b"old 1\n".to_vec();
        for _ in 0..64 {
            many.extend_from_slice(format!("{}\n", Hash::sha256(b"x").to_base64()).as_bytes());
        }
        many.extend_from_slice(b"\nx\n");
        assert_eq!(
            AddCheckpoint::parse(&many),
            Err(Refusal::Malformed("more than 63 proof lines"))
        );
    }

    #[test]
    fn status_codes_follow_the_spec_order() {
        let a = leaves(8, 0);
        let old = checkpoint(&a[..5]);
        let new = checkpoint(&a);
        let proof = reference::consistency(5, &a);
        assert_eq!(check_add_checkpoint(Some(&old), 5, &proof, &new), Ok(()));
        assert_eq!(
            check_add_checkpoint(Some(&old), 9, &proof, &new)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            check_add_checkpoint(Some(&old), 4, &proof, &new)
                .unwrap_err()
                .status(),
            409
        );
        assert_eq!(
            check_add_checkpoint(None, 5, &proof, &new)
                .unwrap_err()
                .status(),
            409
        );
        // From nothing: `old 0` with an empty proof is accepted.
        assert_eq!(check_add_checkpoint(None, 0, &[], &new), Ok(()));
        assert_eq!(
            check_add_checkpoint(None, 0, &proof, &new),
            Err(Refusal::ProofFromEmpty)
        );
        // Same size, same root: fine (cosigned again); other root: fork.
        assert_eq!(check_add_checkpoint(Some(&new), 8, &[], &new), Ok(()));
        let fork = checkpoint(&leaves(8, 1));
        let refusal = check_add_checkpoint(Some(&new), 8, &[], &fork).unwrap_err();
        assert_eq!(refusal, Refusal::SameSizeOtherRoot { size: 8 });
        assert!(refusal.is_misbehaviour());
        // A proof against another history.
        let b = leaves(9, 1);
        let refusal = check_add_checkpoint(
            Some(&old),
            5,
            &reference::consistency(5, &b),
            &checkpoint(&b),
        )
        .unwrap_err();
        assert_eq!(refusal.status(), 422);
        assert!(refusal.is_misbehaviour());
        // Size 0 with a non-empty root.
        let bad_empty = SignedCheckpoint::sign(&log(), 0, Hash::sha256(b"x")).unwrap();
        assert_eq!(
            check_add_checkpoint(None, 0, &[], &bad_empty),
            Err(Refusal::BadEmptyRoot)
        );
    }

    #[test]
    fn pulled_checkpoints_refuse_rollbacks() {
        let a = leaves(8, 0);
        let old = checkpoint(&a);
        let smaller = checkpoint(&a[..3]);
        let refusal = check_pulled(Some(&old), &smaller).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Rollback {
                latest: 8,
                offered: 3
            }
        );
        assert!(refusal.is_misbehaviour());
        assert_eq!(check_pulled(Some(&smaller), &old), Ok(ProofNeeded::From(3)));
        assert_eq!(check_pulled(None, &old), Ok(ProofNeeded::No));
        assert_eq!(check_pulled(Some(&old), &old), Ok(ProofNeeded::No));
    }

    #[test]
    fn origin_is_read_from_the_first_line() {
        assert_eq!(origin_of(b"example.com/log\n1\n"), Ok("example.com/log"));
        assert!(origin_of(b"\n1\n").is_err());
        assert!(origin_of(b"no newline").is_err());
    }
}
