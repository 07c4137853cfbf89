"""RFC 6962 / RFC 9162 Merkle hashing, inclusion and consistency proofs.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2. Before it, the
proof's length is compared with the length RFC 6962's ``PATH`` and
``PROOF`` give for the sizes, so that a proof of the wrong shape is told
apart from one that leads to another root. One deviation from RFC 9162,
shared with C2SP tlog-witness: every tree is consistent with the empty
tree, by an empty proof.
"""

from __future__ import annotations

import hashlib

MAX_PROOF_LEN = 128
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """Why a proof did not verify; ``str()`` matches ``openexec verify``."""


def _malformed() -> ProofError:
    return ProofError("proof has the wrong shape for these tree sizes")


def _mismatch() -> ProofError:
    return ProofError("proof does not match the root hash")


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two below n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: list[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def inclusion_path_len(m: int, n: int) -> int:
    """Length of RFC 6962 PATH(m, D[n]) for m < n."""
    length = 0
    while n > 1:
        k = _split(n)
        length += 1
        if m < k:
            n = k
        else:
            m, n = m - k, n - k
    return length


def consistency_proof_len(m: int, n: int) -> int:
    """Length of RFC 6962 PROOF(m, D[n]) for 0 < m < n."""
    length, complete = 0, True
    while m != n:
        k = _split(n)
        length += 1
        if m <= k:
            n = k
        else:
            m, n, complete = m - k, n - k, False
    return length if complete else length + 1


def verify_inclusion(proof: list[bytes], index: int, size: int, leaf: bytes, root: bytes) -> None:
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    if len(proof) > MAX_PROOF_LEN or len(proof) != inclusion_path_len(index, size):
        raise _malformed()
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise _mismatch()
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise _mismatch()


def verify_consistency(
    proof: list[bytes], old: int, new: int, old_root: bytes, new_root: bytes
) -> None:
    if old > new:
        raise ProofError(f"old tree size {old} is larger than new tree size {new}")
    if old == new or old == 0:
        if proof:
            raise _malformed()
        if old == new and old_root != new_root:
            raise _mismatch()
        return
    if not proof or len(proof) > MAX_PROOF_LEN or len(proof) != consistency_proof_len(old, new):
        raise _malformed()
    path = list(proof)
    if old & (old - 1) == 0:  # old is a power of two: its root starts the path
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _mismatch()
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise _mismatch()
