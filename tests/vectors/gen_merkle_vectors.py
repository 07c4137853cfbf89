#!/usr/bin/env python3
"""Generate RFC 6962 Merkle inclusion / consistency test vectors for OpenExec.

Usage:  python3 tests/vectors/gen_merkle_vectors.py [OUT_DIR]
        (OUT_DIR defaults to tests/vectors/merkle next to this script)

References
----------
* RFC 6962 (Certificate Transparency), Section 2.1: Merkle Hash Trees,
  2.1.1 Merkle Audit Paths (PATH), 2.1.2 Merkle Consistency Proofs (PROOF /
  SUBPROOF).  The tree builder and proof builders below are a deliberately
  naive, recursive transcription of those definitions.
* RFC 9162 (CT v2), Sections 2.1.3.2 and 2.1.4.2: the iterative verification
  algorithms.  They are implemented here as a *second, independent* model that
  (a) must accept every proof built from the recursive definitions and
  (b) labels every mutated case.  A mutated case is emitted only if that
  verifier rejects it; mutations that a correct verifier would still accept
  (e.g. a size change that leaves the tree shape along the path unchanged)
  are dropped and counted, never mislabelled.

The *case structure* (happy path + a family of mutations per proof: index and
size arithmetic, wrong leaf / root, trailing / preceding hashes, removed /
inserted components, one bit flipped per proof hash, swapped roots, degenerate
sizes) mirrors the testdata/ directory of github.com/transparency-dev/merkle as
read at commit 417fb0c314750d94e53942e9f92e79b6d35915db.  No data, hashes or
code from that repository are used: every value here is generated below from
our own leaf formula, with Python's standard library only.

Leaf data (documented so the vectors can be regenerated anywhere):
    D[i] = UTF-8 bytes of "openexec-leaf-" + decimal(i)       for i = 0, 1, 2, ...
Leaf hash:   SHA-256(0x00 || D[i]);   interior node: SHA-256(0x01 || L || R);
empty tree:  SHA-256("")  (RFC 6962 MTH({})).

Edge semantics encoded in the vectors (our verifier's contract):
  inclusion:   tree_size == 0 -> invalid;  leaf_index >= tree_size -> invalid;
               proof length must be exactly the audit-path length.
  consistency: size2 < size1 -> invalid;
               size1 == size2 -> valid iff proof is empty and root1 == root2;
               size1 == 0 (< size2) -> valid iff proof is empty (root1 is always
               given as the empty-tree hash, so a verifier that additionally
               checks it is not penalised);
               otherwise an empty proof is invalid.
  NOTE: the size1 == 0 rule is what C2SP tlog-witness needs ("old 0" with an
  empty proof).  transparency-dev/merkle since Sept 2024 (#140, #236) instead
  rejects every size1 == 0 consistency check; see /work/notes/tlog-proof.md.

Output files (hashes in standard, padded base64):
  inclusion.json   [{"desc","leaf_index","tree_size","leaf_hash","proof","root","valid"}]
  consistency.json [{"desc","size1","size2","root1","root2","proof","valid"}]
  leaves.json      [{"desc","data","leaf_hash"}]   (data is base64 of the raw leaf)
The output is deterministic: re-running must give byte-identical files.
"""

import base64
import functools
import hashlib
import json
import os
import sys

U64_MAX = 2**64 - 1

# --------------------------------------------------------------------------
# Hashing and leaf data
# --------------------------------------------------------------------------


def sha256(b):
    return hashlib.sha256(b).digest()


def hash_leaf(data):
    return sha256(b"\x00" + data)


def hash_children(left, right):
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")
# An arbitrary, documented "unrelated" hash used for wrong-root / inserted
# components: SHA-256 of a fixed ASCII label.
SOME_HASH = sha256(b"openexec-merkle-vectors: unrelated hash")


def leaf_data(i):
    return ("openexec-leaf-%d" % i).encode("utf-8")


MAX_LEAVES = 1100
LEAF_HASHES = [hash_leaf(leaf_data(i)) for i in range(MAX_LEAVES)]

# --------------------------------------------------------------------------
# Model 1: naive recursive definitions, RFC 6962 section 2.1
# --------------------------------------------------------------------------


def split_point(n):
    """Largest power of two strictly less than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.lru_cache(maxsize=None)
def mth(lo, hi):
    """MTH(D[lo:hi]) over our leaf data."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return LEAF_HASHES[lo]
    k = split_point(n)
    return hash_children(mth(lo, lo + k), mth(lo + k, hi))


def path(m, lo, hi):
    """PATH(m, D[lo:hi]) -- RFC 6962 2.1.1. m is relative to lo."""
    n = hi - lo
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return path(m, lo, lo + k) + [mth(lo + k, hi)]
    return path(m - k, lo + k, hi) + [mth(lo, lo + k)]


def subproof(m, lo, hi, b):
    """SUBPROOF(m, D[lo:hi], b) -- RFC 6962 2.1.2."""
    n = hi - lo
    if m == n:
        return [] if b else [mth(lo, hi)]
    k = split_point(n)
    if m <= k:
        return subproof(m, lo, lo + k, b) + [mth(lo + k, hi)]
    return subproof(m - k, lo + k, hi, False) + [mth(lo, lo + k)]


def consistency_proof(m, n):
    """PROOF(m, D[n]) for 0 < m < n."""
    return subproof(m, 0, n, True)


# --------------------------------------------------------------------------
# Model 2: iterative verifiers, RFC 9162 sections 2.1.3.2 / 2.1.4.2,
# plus the edge semantics documented in the module docstring.
# --------------------------------------------------------------------------


def verify_inclusion(index, size, leaf, proof, root):
    if size == 0 or index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1, size2, root1, root2, proof):
    if size2 < size1:
        return False
    if size1 == size2:
        return len(proof) == 0 and root1 == root2
    if size1 == 0:
        return len(proof) == 0
    if len(proof) == 0:
        return False
    proof = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is an exact power of two
        proof = [root1] + proof
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


# --------------------------------------------------------------------------
# Model 1b: recursive verifiers that walk the same recursion as PATH and
# SUBPROOF (consuming proof hashes from the end).  Every emitted label is
# checked against both Model 2 and Model 1b.
# --------------------------------------------------------------------------


class _Bad(Exception):
    pass


def _root_from_path(m, n, leaf, proof, end):
    """Root of a size-n tree given PATH(m) = proof[:end]; returns (root, used)."""
    if n == 1:
        return leaf, 0
    if end == 0:
        raise _Bad()
    k = split_point(n)
    sib = proof[end - 1]
    if m < k:
        h, used = _root_from_path(m, k, leaf, proof, end - 1)
        return hash_children(h, sib), used + 1
    h, used = _root_from_path(m - k, n - k, leaf, proof, end - 1)
    return hash_children(sib, h), used + 1


def verify_inclusion_rec(index, size, leaf, proof, root):
    if size == 0 or index >= size:
        return False
    try:
        r, used = _root_from_path(index, size, leaf, proof, len(proof))
    except _Bad:
        return False
    return used == len(proof) and r == root


def _roots_from_subproof(m, n, b, root1, proof, end):
    """(MTH of old part, MTH of new tree) given SUBPROOF(m, D[n], b) = proof[:end]."""
    if m == n:
        if b:
            return root1, root1, 0
        if end == 0:
            raise _Bad()
        return proof[end - 1], proof[end - 1], 1
    if end == 0:
        raise _Bad()
    k = split_point(n)
    last = proof[end - 1]
    if m <= k:
        o, nw, used = _roots_from_subproof(m, k, b, root1, proof, end - 1)
        return o, hash_children(nw, last), used + 1
    o, nw, used = _roots_from_subproof(m - k, n - k, False, root1, proof, end - 1)
    return hash_children(last, o), hash_children(last, nw), used + 1


def verify_consistency_rec(size1, size2, root1, root2, proof):
    if size2 < size1:
        return False
    if size1 == size2:
        return len(proof) == 0 and root1 == root2
    if size1 == 0:
        return len(proof) == 0
    if len(proof) == 0:
        return False
    try:
        o, nw, used = _roots_from_subproof(size1, size2, True, root1, proof, len(proof))
    except _Bad:
        return False
    return used == len(proof) and o == root1 and nw == root2


# --------------------------------------------------------------------------
# Case construction
# --------------------------------------------------------------------------


def b64(h):
    return base64.b64encode(h).decode("ascii")


def flip(h, byte, bit):
    b = bytearray(h)
    b[byte] ^= 1 << bit
    return bytes(b)


class Stats:
    dropped_incl = 0
    dropped_cons = 0


def incl_case(desc, index, size, leaf, proof, root, valid):
    return {
        "desc": desc,
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": b64(leaf),
        "proof": [b64(p) for p in proof],
        "root": b64(root),
        "valid": valid,
    }


def cons_case(desc, size1, size2, root1, root2, proof, valid):
    return {
        "desc": desc,
        "size1": size1,
        "size2": size2,
        "root1": b64(root1),
        "root2": b64(root2),
        "proof": [b64(p) for p in proof],
        "valid": valid,
    }


def inclusion_mutations(i, n, leaf, proof, root):
    """(tag, index, size, leaf, proof, root) tuples expected to be invalid."""
    m = []
    if i > 0:
        m.append(("index-1", i - 1, n, leaf, proof, root))
    else:
        m.append(("index wraps to u64::MAX", U64_MAX, n, leaf, proof, root))
    m.append(("index+1", i + 1, n, leaf, proof, root))
    m.append(("index xor 2", i ^ 2, n, leaf, proof, root))
    m.append(("index = size", n, n, leaf, proof, root))
    m.append(("size+1", i, n + 1, leaf, proof, root))
    if n - 1 > i:
        m.append(("size-1", i, n - 1, leaf, proof, root))
    m.append(("size*2", i, n * 2, leaf, proof, root))
    m.append(("size/2", i, n // 2, leaf, proof, root))
    m.append(("size 0", i, 0, leaf, proof, root))
    m.append(("wrong leaf hash", i, n, SOME_HASH, proof, root))
    m.append(("leaf hash of neighbour", i, n, LEAF_HASHES[i + 1], proof, root))
    m.append(("leaf hash bit flip", i, n, flip(leaf, 31, 0), proof, root))
    m.append(("wrong root (unrelated)", i, n, leaf, proof, SOME_HASH))
    m.append(("wrong root (empty tree)", i, n, leaf, proof, EMPTY_ROOT))
    m.append(("wrong root (size-1 tree)", i, n, leaf, proof, mth(0, n - 1)))
    m.append(("root bit flip", i, n, leaf, proof, flip(root, 0, 7)))
    m.append(("extra trailing hash", i, n, leaf, proof + [SOME_HASH], root))
    m.append(("trailing root", i, n, leaf, proof + [root], root))
    m.append(("extra preceding hash", i, n, leaf, [SOME_HASH] + proof, root))
    m.append(("preceding leaf hash", i, n, leaf, [leaf] + proof, root))
    for j in range(len(proof)):
        bad = list(proof)
        bad[j] = flip(bad[j], j % 32, 3)
        m.append(("flipped bit in proof[%d]" % j, i, n, leaf, bad, root))
    if proof:
        m.append(("missing last hash", i, n, leaf, proof[:-1], root))
        m.append(("missing first hash", i, n, leaf, proof[1:], root))
    if len(proof) > 1:
        m.append(("swapped proof order (reversed)", i, n, leaf, proof[::-1], root))
        sw = list(proof)
        sw[0], sw[1] = sw[1], sw[0]
        m.append(("swapped proof[0] and proof[1]", i, n, leaf, sw, root))
        m.append(("inserted component", i, n, leaf, [proof[0], SOME_HASH] + proof[1:], root))
        m.append(("proof[0] duplicated over proof[1]", i, n, leaf, [proof[0], proof[0]] + proof[2:], root))
    return m


def gen_inclusion():
    cases = []

    def add_happy(i, n):
        proof = path(i, 0, n)
        leaf, root = LEAF_HASHES[i], mth(0, n)
        assert verify_inclusion(i, n, leaf, proof, root), (i, n)
        cases.append(incl_case("happy path: leaf %d of %d" % (i, n), i, n, leaf, proof, root, True))
        return leaf, proof, root

    def add_mutations(i, n):
        leaf, proof, root = LEAF_HASHES[i], path(i, 0, n), mth(0, n)
        for tag, mi, mn, ml, mp, mr in inclusion_mutations(i, n, leaf, proof, root):
            if verify_inclusion(mi, mn, ml, mp, mr):
                Stats.dropped_incl += 1  # still valid for any correct verifier
                continue
            desc = "%s (leaf %d of %d)" % (tag, i, n)
            cases.append(incl_case(desc, mi, mn, ml, mp, mr, False))

    # Happy paths: every leaf of every tree of size 1..16, then selected
    # leaves of every tree of size 17..40.
    for n in range(1, 41):
        idx = range(n) if n <= 16 else sorted({0, 1, n // 3, n // 2, n - 2, n - 1})
        for i in idx:
            add_happy(i, n)
    # Larger trees around power-of-two boundaries, selected leaves.
    for n in (63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 1023, 1024, 1025):
        for i in sorted({0, 1, n // 3, n // 2, n - 2, n - 1}):
            add_happy(i, n)
    # Mutations: selected (index, size) pairs.
    for i, n in ((0, 1), (0, 2), (1, 2), (0, 3), (2, 3), (1, 4), (3, 5), (4, 5),
                 (0, 7), (5, 7), (6, 8), (3, 8), (8, 9), (10, 13), (15, 16),
                 (0, 17), (16, 17), (20, 31), (31, 33), (39, 40),
                 (63, 64), (64, 65), (77, 129), (517, 1000), (1024, 1025)):
        add_mutations(i, n)

    # Degenerate / boundary cases.
    l0, r1 = LEAF_HASHES[0], mth(0, 1)
    cases += [
        incl_case("size 0, index 0, empty proof, empty-tree root", 0, 0, l0, [], EMPTY_ROOT, False),
        incl_case("size 0, index 0, empty proof, root = leaf hash", 0, 0, l0, [], l0, False),
        incl_case("size 0, index 1, empty proof", 1, 0, l0, [], EMPTY_ROOT, False),
        incl_case("size 1, index 1 (index == size)", 1, 1, l0, [], r1, False),
        incl_case("size 1, index 2 (index > size)", 2, 1, l0, [], r1, False),
        incl_case("size 1, index u64::MAX", U64_MAX, 1, l0, [], r1, False),
        incl_case("size 1, root is empty-tree hash", 0, 1, l0, [], EMPTY_ROOT, False),
        incl_case("size 1, leaf hash is empty-tree hash", 0, 1, EMPTY_ROOT, [], r1, False),
        incl_case("size 1, non-empty proof (leaf itself)", 0, 1, l0, [l0], r1, False),
        incl_case("size u64::MAX, index 0, 3-hash proof", 0, U64_MAX, l0, path(0, 0, 8), mth(0, 8), False),
        incl_case("size u64::MAX, index u64::MAX-1, 3-hash proof", U64_MAX - 1, U64_MAX, l0,
                  path(0, 0, 8), mth(0, 8), False),
        incl_case("size 2^63, index 2^63-1, empty proof", 2**63 - 1, 2**63, l0, [], l0, False),
        incl_case("leaf 0 of 8, proof of 64 copies of proof[0]", 0, 8, l0,
                  [path(0, 0, 8)[0]] * 64, mth(0, 8), False),
    ]
    for c in cases[-13:]:
        leaf = base64.b64decode(c["leaf_hash"])
        proof = [base64.b64decode(p) for p in c["proof"]]
        assert not verify_inclusion(c["leaf_index"], c["tree_size"], leaf, proof,
                                    base64.b64decode(c["root"])), c["desc"]
    return cases


def consistency_mutations(m, n, r1, r2, proof):
    out = []
    if m > 1:
        out.append(("size1-1", m - 1, n, r1, r2, proof))
    out.append(("size1+1", m + 1, n, r1, r2, proof))
    out.append(("size1 xor 2", m ^ 2, n, r1, r2, proof))
    out.append(("size2+1", m, n + 1, r1, r2, proof))
    if n - 1 > m:
        out.append(("size2-1", m, n - 1, r1, r2, proof))
    out.append(("size2*2", m, n * 2, r1, r2, proof))
    out.append(("size2/2", m, n // 2, r1, r2, proof))
    out.append(("size1 > size2 (sizes swapped)", n, m, r1, r2, proof))
    out.append(("size1 > size2 (sizes and roots swapped)", n, m, r2, r1, proof))
    out.append(("size1 = size2 with non-empty proof", n, n, r2, r2, proof))
    out.append(("size1 = 0 with non-empty proof", 0, n, EMPTY_ROOT, r2, proof))
    out.append(("empty proof", m, n, r1, r2, []))
    out.append(("swapped roots", m, n, r2, r1, proof))
    out.append(("wrong root1 (unrelated)", m, n, SOME_HASH, r2, proof))
    out.append(("wrong root2 (unrelated)", m, n, r1, SOME_HASH, proof))
    out.append(("root1 bit flip", m, n, flip(r1, 5, 1), r2, proof))
    out.append(("root2 bit flip", m, n, r1, flip(r2, 31, 6), proof))
    out.append(("root1 = root2", m, n, r2, r2, proof))
    out.append(("extra trailing hash", m, n, r1, r2, proof + [SOME_HASH]))
    out.append(("trailing root1", m, n, r1, r2, proof + [r1]))
    out.append(("trailing root2", m, n, r1, r2, proof + [r2]))
    out.append(("extra preceding hash", m, n, r1, r2, [SOME_HASH] + proof))
    out.append(("preceding root1", m, n, r1, r2, [r1] + proof))
    for j in range(len(proof)):
        bad = list(proof)
        bad[j] = flip(bad[j], (7 * j) % 32, 4)
        out.append(("flipped bit in proof[%d]" % j, m, n, r1, r2, bad))
    if proof:
        out.append(("missing last hash", m, n, r1, r2, proof[:-1]))
        out.append(("missing first hash", m, n, r1, r2, proof[1:]))
    if len(proof) > 1:
        out.append(("swapped proof order (reversed)", m, n, r1, r2, proof[::-1]))
        sw = list(proof)
        sw[-1], sw[-2] = sw[-2], sw[-1]
        out.append(("swapped last two proof hashes", m, n, r1, r2, sw))
        out.append(("inserted component", m, n, r1, r2, [proof[0], SOME_HASH] + proof[1:]))
    return out


def gen_consistency():
    cases = []

    def add_happy(m, n):
        r1, r2 = mth(0, m), mth(0, n)
        proof = consistency_proof(m, n) if m < n else []
        assert verify_consistency(m, n, r1, r2, proof), (m, n)
        cases.append(cons_case("happy path: %d -> %d" % (m, n), m, n, r1, r2, proof, True))

    def add_mutations(m, n):
        r1, r2 = mth(0, m), mth(0, n)
        proof = consistency_proof(m, n)
        for tag, s1, s2, a, b, p in consistency_mutations(m, n, r1, r2, proof):
            if verify_consistency(s1, s2, a, b, p):
                Stats.dropped_cons += 1
                continue
            cases.append(cons_case("%s (%d -> %d)" % (tag, m, n), s1, s2, a, b, p, False))

    # Happy paths: all 1 <= m <= n <= 16 (m == n: empty proof), then
    # selected m for every n in 17..40.
    for n in range(1, 41):
        ms = range(1, n + 1) if n <= 16 else sorted({1, 2, n // 3, n // 2, n - 1, n})
        for m in ms:
            add_happy(m, n)
    for m, n in ((1, 1024), (31, 64), (32, 64), (33, 64), (63, 64), (64, 65), (64, 128),
                 (100, 1000), (127, 129), (255, 257), (256, 1025), (511, 1024),
                 (777, 1023), (1000, 1025), (1024, 1025), (1025, 1025)):
        add_happy(m, n)
    # Mutations on a selection of (m, n) with m < n.
    for m, n in ((1, 2), (1, 3), (2, 3), (2, 4), (3, 4), (1, 5), (4, 5), (3, 7),
                 (6, 7), (1, 8), (4, 8), (5, 8), (7, 8), (8, 9), (6, 13), (16, 31),
                 (17, 40), (32, 64), (33, 64), (100, 1000), (1024, 1025)):
        add_mutations(m, n)

    # Edge semantics.
    r = mth
    e = EMPTY_ROOT
    edge = [
        ("size1 = size2 = 0, empty proof, empty-tree roots", 0, 0, e, e, [], True),
        ("size1 = size2 = 0, roots differ", 0, 0, e, SOME_HASH, [], False),
        ("size1 = size2 = 0, non-empty proof", 0, 0, e, e, [e], False),
        ("size1 = 0, size2 = 1, empty proof", 0, 1, e, r(0, 1), [], True),
        ("size1 = 0, size2 = 7, empty proof", 0, 7, e, r(0, 7), [], True),
        ("size1 = 0, size2 = 1024, empty proof", 0, 1024, e, r(0, 1024), [], True),
        ("size1 = 0, size2 = 1, proof = [root2]", 0, 1, e, r(0, 1), [r(0, 1)], False),
        ("size1 = 0, size2 = 8, proof = PROOF(1, 8)", 0, 8, e, r(0, 8), consistency_proof(1, 8), False),
        ("size1 = 1, size2 = 0 (size1 > size2)", 1, 0, r(0, 1), e, [], False),
        ("size1 = 2, size2 = 1 (size1 > size2)", 2, 1, r(0, 2), r(0, 1), [], False),
        ("size1 = 8, size2 = 5 (size1 > size2), proof for 5 -> 8", 8, 5, r(0, 8), r(0, 5),
         consistency_proof(5, 8), False),
        ("size1 = size2 = 1, roots differ", 1, 1, r(0, 1), r(0, 2), [], False),
        ("size1 = size2 = 1, non-empty proof", 1, 1, r(0, 1), r(0, 1), [r(0, 1)], False),
        ("size1 = size2 = 8, roots equal, proof = [root]", 8, 8, r(0, 8), r(0, 8), [r(0, 8)], False),
        ("size1 = size2 = 13, root2 bit flip", 13, 13, r(0, 13), flip(r(0, 13), 0, 0), [], False),
        ("size1 = 1, size2 = 2, empty proof", 1, 2, r(0, 1), r(0, 2), [], False),
        ("size1 = 3, size2 = 8, empty proof, equal roots", 3, 8, r(0, 8), r(0, 8), [], False),
        ("size2 = u64::MAX, size1 = 1, proof for 1 -> 8", 1, U64_MAX, r(0, 1), r(0, 8),
         consistency_proof(1, 8), False),
        ("size1 = u64::MAX - 1, size2 = u64::MAX, proof for 7 -> 8", U64_MAX - 1, U64_MAX,
         r(0, 7), r(0, 8), consistency_proof(7, 8), False),
        ("size1 = size2 = u64::MAX, empty proof, equal roots", U64_MAX, U64_MAX,
         r(0, 8), r(0, 8), [], True),
        ("3 -> 8 with 64 copies of proof[0]", 3, 8, r(0, 3), r(0, 8),
         [consistency_proof(3, 8)[0]] * 64, False),
    ]
    for desc, s1, s2, a, b, p, valid in edge:
        assert verify_consistency(s1, s2, a, b, p) == valid, desc
        cases.append(cons_case(desc, s1, s2, a, b, p, valid))
    return cases


def gen_leaves():
    out = []
    for i in list(range(0, 8)) + [39, 40, 1024]:
        out.append({"desc": "D[%d] = \"openexec-leaf-%d\"" % (i, i),
                    "data": b64(leaf_data(i)), "leaf_hash": b64(LEAF_HASHES[i])})
    # RFC 6962 style raw leaves (empty, single byte, multi-byte, binary).
    for raw in (b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
                bytes(range(256)), b"\x00" * 32):
        out.append({"desc": "raw leaf, %d bytes" % len(raw), "data": b64(raw),
                    "leaf_hash": b64(hash_leaf(raw))})
    return out


def self_check():
    # Known answer from RFC 6962 / CT reference code: leaf hash of empty data.
    assert hash_leaf(b"").hex() == \
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert EMPTY_ROOT.hex() == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # Model cross-check: every naive PATH / PROOF verifies under the iterative
    # verifier, and proof lengths match the closed forms.
    for n in range(1, 70):
        for i in range(n):
            assert verify_inclusion(i, n, LEAF_HASHES[i], path(i, 0, n), mth(0, n))
            assert verify_inclusion_rec(i, n, LEAF_HASHES[i], path(i, 0, n), mth(0, n))
        for m in range(1, n):
            assert verify_consistency(m, n, mth(0, m), mth(0, n), consistency_proof(m, n))
            assert verify_consistency_rec(m, n, mth(0, m), mth(0, n), consistency_proof(m, n))
    # The two verifiers must also agree on every mutation, including the ones
    # that are dropped because they still verify.
    for n in range(1, 34):
        for i in range(n):
            leaf, proof, root = LEAF_HASHES[i], path(i, 0, n), mth(0, n)
            for t in inclusion_mutations(i, n, leaf, proof, root):
                assert verify_inclusion(*t[1:]) == verify_inclusion_rec(*t[1:]), (t[0], i, n)
        for m in range(1, n):
            r1, r2, proof = mth(0, m), mth(0, n), consistency_proof(m, n)
            for t in consistency_mutations(m, n, r1, r2, proof):
                assert verify_consistency(*t[1:]) == verify_consistency_rec(*t[1:]), (t[0], m, n)


def write_json(path_, cases):
    with open(path_, "w", encoding="ascii", newline="\n") as f:
        f.write("[\n")
        for k, c in enumerate(cases):
            f.write(json.dumps(c, sort_keys=False, separators=(", ", ": ")))
            f.write(",\n" if k + 1 < len(cases) else "\n")
        f.write("]\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "merkle")
    os.makedirs(out_dir, exist_ok=True)
    self_check()
    inc = gen_inclusion()
    con = gen_consistency()
    d = base64.b64decode
    for c in inc:
        args = (c["leaf_index"], c["tree_size"], d(c["leaf_hash"]), [d(x) for x in c["proof"]],
                d(c["root"]))
        assert verify_inclusion(*args) == c["valid"], c["desc"]
        assert verify_inclusion_rec(*args) == c["valid"], c["desc"]
    for c in con:
        args = (c["size1"], c["size2"], d(c["root1"]), d(c["root2"]), [d(x) for x in c["proof"]])
        assert verify_consistency(*args) == c["valid"], c["desc"]
        assert verify_consistency_rec(*args) == c["valid"], c["desc"]
    lvs = gen_leaves()
    write_json(os.path.join(out_dir, "inclusion.json"), inc)
    write_json(os.path.join(out_dir, "consistency.json"), con)
    write_json(os.path.join(out_dir, "leaves.json"), lvs)

    def summary(cs):
        v = sum(1 for c in cs if c["valid"])
        return "%d cases (%d valid, %d invalid)" % (len(cs), v, len(cs) - v)

    print("inclusion.json:   " + summary(inc))
    print("consistency.json: " + summary(con))
    print("leaves.json:      %d leaves" % len(lvs))
    print("mutations dropped because still valid: inclusion %d, consistency %d"
          % (Stats.dropped_incl, Stats.dropped_cons))


if __name__ == "__main__":
    main()
