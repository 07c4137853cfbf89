//! RFC 6962 / RFC 9162 Merkle inclusion and consistency proofs.
//!
//! Proof *generation* and *verification* run through the `tlog_tiles` crate
//! (a port of Go's `sumdb/tlog`, whose proofs are the RFC 6962 audit and
//! consistency paths, ordered from the leaves up). This module adds what a
//! verifier facing hostile input needs on top: the argument checks that keep
//! `tlog_tiles`' internal assertions from ever firing, a bound on proof
//! length, and one error type. None of these functions panics on any input.
//!
//! Edge cases (RFC 9162 §2.1.3.2 and §2.1.4.2): an inclusion proof needs
//! `index < size`; a consistency proof from a size to itself is empty and
//! requires equal roots; every tree is consistent with the empty tree, by an
//! empty proof — as C2SP tlog-witness requires for a witness's first
//! checkpoint (`old 0`). (transparency-dev/merkle refuses size-0
//! consistency outright; that is the one place we differ.)

use tlog_tiles::HashReader;

use super::hash::Hash;

/// Number of leaves of a tree (`n` in RFC 6962). Any `u64`, including 0.
///
/// Kept apart from [`LeafIndex`] by type so that the two `u64`s of every
/// proof call cannot be swapped unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreeSize(pub u64);

/// Zero-based position of a leaf (`m` in RFC 6962).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafIndex(pub u64);

/// A proof can never be longer than this: two hashes per tree level.
const MAX_PROOF_LEN: usize = 128;

/// Why a proof did not verify (or could not be built).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// `m` in RFC 6962.
        index: u64,
        /// `n` in RFC 6962.
        size: u64,
    },
    /// The older tree is larger than the newer one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizesOutOfOrder {
        /// Size of the earlier tree.
        old: u64,
        /// Size of the later tree.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has the wrong shape for these tree sizes")]
    MalformedProof,
    /// The proof is well formed but does not lead to the expected root.
    #[error("proof does not match the root hash")]
    RootMismatch,
    /// Reading stored hashes failed while building a proof.
    #[error("reading stored hashes: {0}")]
    Read(String),
}

/// Verifies that `leaf_hash` is leaf `leaf_index` of the tree of
/// `tree_size` leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    proof: &[Hash],
    LeafIndex(leaf_index): LeafIndex,
    TreeSize(tree_size): TreeSize,
    leaf_hash: &Hash,
    root: &Hash,
) -> Result<(), ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index: leaf_index,
            size: tree_size,
        });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::MalformedProof);
    }
    let path: Vec<tlog_tiles::Hash> = proof.iter().map(|h| (*h).into()).collect();
    // INVARIANT: leaf_index < tree_size, which is all `check_record` asserts.
    match tlog_tiles::check_record(
        &path,
        tree_size,
        (*root).into(),
        leaf_index,
        (*leaf_hash).into(),
    ) {
        Ok(()) => Ok(()),
        Err(_) if path.len() != inclusion_proof_len(leaf_index, tree_size) => {
            Err(ProofError::MalformedProof)
        }
        Err(_) => Err(ProofError::RootMismatch),
    }
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`
/// (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    proof: &[Hash],
    TreeSize(old_size): TreeSize,
    TreeSize(new_size): TreeSize,
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(ProofError::MalformedProof);
        }
        // Equal sizes need equal roots (0 == 0 included); a non-empty tree
        // is always consistent with the empty one.
        return if old_size != new_size || old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if proof.is_empty() || proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::MalformedProof);
    }
    let path: Vec<tlog_tiles::Hash> = proof.iter().map(|h| (*h).into()).collect();
    // INVARIANT: 1 <= old_size < new_size, which is all `check_tree` asserts.
    match tlog_tiles::check_tree(
        &path,
        new_size,
        (*new_root).into(),
        old_size,
        (*old_root).into(),
    ) {
        Ok(()) => Ok(()),
        Err(_) if path.len() != consistency_proof_len(old_size, new_size) => {
            Err(ProofError::MalformedProof)
        }
        Err(_) => Err(ProofError::RootMismatch),
    }
}

/// Builds the inclusion proof of leaf `leaf_index` in the tree of
/// `tree_size` leaves from stored hashes (O(log n) reads).
pub fn prove_inclusion<R: HashReader>(
    reader: &R,
    LeafIndex(leaf_index): LeafIndex,
    TreeSize(tree_size): TreeSize,
) -> Result<Vec<Hash>, ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index: leaf_index,
            size: tree_size,
        });
    }
    let proof = tlog_tiles::prove_record(tree_size, leaf_index, reader)
        .map_err(|e| ProofError::Read(e.to_string()))?;
    Ok(proof.into_iter().map(Hash::from).collect())
}

/// Builds the consistency proof from `old_size` to `new_size` from stored
/// hashes (O(log n) reads).
pub fn prove_consistency<R: HashReader>(
    reader: &R,
    TreeSize(old_size): TreeSize,
    TreeSize(new_size): TreeSize,
) -> Result<Vec<Hash>, ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let proof = tlog_tiles::prove_tree(new_size, old_size, reader)
        .map_err(|e| ProofError::Read(e.to_string()))?;
    Ok(proof.into_iter().map(Hash::from).collect())
}

/// Root hash of the tree of `tree_size` leaves from stored hashes.
pub fn tree_root<R: HashReader>(
    reader: &R,
    TreeSize(tree_size): TreeSize,
) -> Result<Hash, ProofError> {
    tlog_tiles::tree_hash(tree_size, reader)
        .map(Hash::from)
        .map_err(|e| ProofError::Read(e.to_string()))
}

/// Number of hashes in the RFC 6962 audit path of leaf `m` in a tree of `n`
/// leaves (`m < n`). Used only to tell a malformed proof from a wrong one.
fn inclusion_proof_len(m: u64, n: u64) -> usize {
    // Walk the left-heavy split of RFC 6962 §2.1.1 down to the leaf.
    let (mut lo, mut hi, mut len) = (0u64, n, 0usize);
    while hi - lo > 1 {
        let k = largest_power_of_two_below(hi - lo);
        if m < lo + k {
            hi = lo + k;
        } else {
            lo += k;
        }
        len += 1;
    }
    len
}

/// Number of hashes in the RFC 6962 consistency proof from `m` to `n`
/// (`0 < m < n`), following SUBPROOF of RFC 6962 §2.1.2.
fn consistency_proof_len(m: u64, n: u64) -> usize {
    let (mut lo, mut hi, mut len, mut at_start) = (0u64, n, 0usize, true);
    loop {
        let size = hi - lo;
        let mm = m - lo;
        if mm == size {
            return len + usize::from(!at_start);
        }
        let k = largest_power_of_two_below(size);
        if mm <= k {
            hi = lo + k;
        } else {
            lo += k;
            at_start = false;
        }
        len += 1;
    }
}

/// Largest power of two strictly below `n` (`n >= 2`): `k` of RFC 6962.
fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// A slow, obviously correct RFC 6962 implementation over a full list of
/// leaf hashes, for tests and fuzz targets to compare the real code against.
pub mod reference {
    use super::super::hash::{empty_tree_hash, node_hash, Hash};
    use super::largest_power_of_two_below;

    /// MTH(D\[n\]) of RFC 6962 §2.1, by direct recursion.
    #[must_use]
    pub fn root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_tree_hash(),
            1 => leaves[0],
            n => {
                let k = usize::try_from(largest_power_of_two_below(n as u64)).unwrap_or(n / 2);
                node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    /// PATH(m, D\[n\]) of RFC 6962 §2.1.1.
    #[must_use]
    pub fn inclusion(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = usize::try_from(largest_power_of_two_below(n as u64)).unwrap_or(n / 2);
        if m < k {
            let mut p = inclusion(m, &leaves[..k]);
            p.push(root(&leaves[k..]));
            p
        } else {
            let mut p = inclusion(m - k, &leaves[k..]);
            p.push(root(&leaves[..k]));
            p
        }
    }

    /// PROOF(m, D\[n\]) of RFC 6962 §2.1.2.
    #[must_use]
    pub fn consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if m == 0 || m >= leaves.len() {
            return Vec::new();
        }
        subproof(m, leaves, true)
    }

    fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { Vec::new() } else { vec![root(leaves)] };
        }
        let k = usize::try_from(largest_power_of_two_below(n as u64)).unwrap_or(n / 2);
        if m <= k {
            let mut p = subproof(m, &leaves[..k], b);
            p.push(root(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(root(&leaves[..k]));
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::hash::leaf_hash;
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    proptest! {
        #[test]
        fn reference_inclusion_proofs_verify(n in 1usize..300, seed in any::<u64>()) {
            let l = leaves(n);
            let m = usize::try_from(seed % n as u64).unwrap();
            let root = reference::root(&l);
            let proof = reference::inclusion(m, &l);
            prop_assert_eq!(proof.len(), inclusion_proof_len(m as u64, n as u64));
            prop_assert!(verify_inclusion(&proof, LeafIndex(m as u64), TreeSize(n as u64), &l[m], &root).is_ok());
        }

        #[test]
        fn reference_consistency_proofs_verify(n in 2usize..300, seed in any::<u64>()) {
            let l = leaves(n);
            let m = 1 + usize::try_from(seed % (n as u64 - 1)).unwrap();
            let proof = reference::consistency(m, &l);
            prop_assert_eq!(proof.len(), consistency_proof_len(m as u64, n as u64));
            let r = verify_consistency(&proof, TreeSize(m as u64), TreeSize(n as u64), &reference::root(&l[..m]), &reference::root(&l));
            prop_assert!(r.is_ok());
        }

        #[test]
        fn garbage_never_panics(proof in proptest::collection::vec(any::<[u8; 32]>(), 0..80),
                                a in any::<u64>(), b in any::<u64>()) {
            let p: Vec<Hash> = proof.into_iter().map(Hash::from_bytes).collect();
            let h = leaf_hash(b"x");
            let _ = verify_inclusion(&p, LeafIndex(a), TreeSize(b), &h, &h);
            let _ = verify_consistency(&p, TreeSize(a), TreeSize(b), &h, &h);
            let _ = verify_inclusion(&p, LeafIndex(a % 1000), TreeSize(b % 1000), &h, &h);
            let _ = verify_consistency(&p, TreeSize(a % 1000), TreeSize(b % 1000), &h, &h);
        }
    }

    #[test]
    fn flipped_bit_is_root_mismatch_and_extra_hash_is_malformed() {
        let l = leaves(13);
        let root = reference::root(&l);
        let mut proof = reference::inclusion(5, &l);
        let mut bytes = *proof[1].as_bytes();
        bytes[0] ^= 1;
        let good = proof[1];
        proof[1] = Hash::from_bytes(bytes);
        assert_eq!(
            verify_inclusion(&proof, LeafIndex(5), TreeSize(13), &l[5], &root),
            Err(ProofError::RootMismatch)
        );
        proof[1] = good;
        proof.push(good);
        assert_eq!(
            verify_inclusion(&proof, LeafIndex(5), TreeSize(13), &l[5], &root),
            Err(ProofError::MalformedProof)
        );
    }
}
