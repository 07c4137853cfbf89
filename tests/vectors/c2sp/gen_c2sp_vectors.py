#!/usr/bin/env python3
"""Generate signed C2SP test artefacts (checkpoints, cosignatures, a tlog-proof
and a tlog-witness add-checkpoint exchange) for OpenExec's tests.

Usage:  python3 tests/vectors/c2sp/gen_c2sp_vectors.py
        (writes into tests/vectors/c2sp/generated/)

Why this exists: the C2SP specs (C2SP/C2SP, commit
5ba5ee830903e91240fc6f9f3a7a9293d49e69c9) give exactly one example that can be
verified end to end (the signed-note example with its vkey); their checkpoint,
cosignature and tlog-proof examples come without the log / witness public keys
(or with elided signatures).  To test checkpoint *verification* we therefore
sign our own artefacts here with fixed, publicly known TEST-ONLY keys.

Formats implemented (see /work/notes/tlog-proof.md for a summary):
  * c2sp.org/signed-note  - Ed25519 note signatures, sig type 0x01,
      key ID = SHA-256(name || 0x0A || 0x01 || pubkey)[:4]
  * c2sp.org/tlog-checkpoint - origin / size / base64 root, then signatures
  * c2sp.org/tlog-cosignature - Ed25519 cosignature, sig type 0x04,
      key ID = SHA-256(name || 0x0A || 0x04 || pubkey)[:4],
      signature = keyID || u64be(timestamp) || Ed25519(msg),
      msg = "cosignature/v1\\ntime <t>\\n" || checkpoint note text
  * c2sp.org/tlog-proof@v1 and c2sp.org/tlog-witness add-checkpoint bodies.
Merkle data (leaves, roots, proofs) comes from ../gen_merkle_vectors.py, so the
leaf formula is the same: D[i] = "openexec-leaf-<i>".

Ed25519 is implemented below from RFC 8032 section 5.1 with Python's standard
library only (it is slow but deterministic); the Rust tests verify every
signature with independent implementations (signed_note / ed25519-dalek).

The private keys are derived from public strings and are TEST-ONLY:
    seed(label) = SHA-256("openexec c2sp test key: " || label)
"""

import base64
import hashlib
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "generated")

# --------------------------------------------------------------------------
# Ed25519 (RFC 8032 section 5.1), extended homogeneous coordinates
# --------------------------------------------------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y, sign):
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    assert (x * x - x2) % P == 0
    if x & 1 != sign:
        x = P - x
    return x


_BY = 4 * pow(5, P - 2, P) % P
_BX = _recover_x(_BY, 0)
BASE = (_BX, _BY, 1, _BX * _BY % P)


def _add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, pt):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _compress(pt):
    x, y, z, _ = pt
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _sha512_int(b):
    return int.from_bytes(hashlib.sha512(b).digest(), "little")


def ed25519_public(seed):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return _compress(_mul(a, BASE))


def ed25519_sign(seed, msg):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    prefix = h[32:]
    pub = _compress(_mul(a, BASE))
    r = _sha512_int(prefix + msg) % L
    rr = _compress(_mul(r, BASE))
    k = _sha512_int(rr + pub + msg) % L
    s = (r + k * a) % L
    return rr + int.to_bytes(s, 32, "little")


# --------------------------------------------------------------------------
# Notes, checkpoints, cosignatures
# --------------------------------------------------------------------------


def b64(b):
    return base64.b64encode(b).decode("ascii")


def seed(label):
    return hashlib.sha256(b"openexec c2sp test key: " + label.encode()).digest()


class Key:
    def __init__(self, name, label, sigtype):
        self.name = name
        self.seed = seed(label)
        self.pub = ed25519_public(self.seed)
        self.sigtype = sigtype
        self.key_id = hashlib.sha256(
            name.encode() + b"\n" + bytes([sigtype]) + self.pub).digest()[:4]

    def vkey(self):
        return "%s+%s+%s" % (self.name, self.key_id.hex(), b64(bytes([self.sigtype]) + self.pub))

    def note_sig_line(self, text):
        assert self.sigtype == 0x01
        return "\u2014 %s %s\n" % (self.name, b64(self.key_id + ed25519_sign(self.seed, text)))

    def cosig_line(self, text, timestamp):
        assert self.sigtype == 0x04
        msg = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text
        sig = self.key_id + timestamp.to_bytes(8, "big") + ed25519_sign(self.seed, msg)
        return "\u2014 %s %s\n" % (self.name, b64(sig))


def load_merkle():
    path = os.path.join(HERE, "..", "gen_merkle_vectors.py")
    spec = importlib.util.spec_from_file_location("gen_merkle_vectors", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def main():
    # RFC 8032 section 7.1, TEST 1 and TEST 2: check the Ed25519 code first.
    s1 = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert ed25519_public(s1).hex() == \
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    assert ed25519_sign(s1, b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    s2 = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    assert ed25519_sign(s2, b"\x72").hex() == (
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")

    mk = load_merkle()
    os.makedirs(OUT, exist_ok=True)

    origin = "openexec.example/test-log"
    log = Key(origin, "log", 0x01)
    other = Key(origin, "other log key, same name", 0x01)
    w1 = Key("witness1.openexec.example", "witness1", 0x04)
    w2 = Key("witness2.openexec.example", "witness2", 0x04)
    stranger = Key("stranger.openexec.example", "stranger", 0x01)

    write("log.vkey", log.vkey() + "\n")
    write("other-log-key-same-name.vkey", other.vkey() + "\n")
    write("witness1.vkey", w1.vkey() + "\n")
    write("witness2.vkey", w2.vkey() + "\n")

    def body(size):
        return ("%s\n%d\n%s\n" % (origin, size, b64(mk.mth(0, size)))).encode()

    def checkpoint(size):
        t = body(size)
        return t + b"\n" + log.note_sig_line(t).encode()

    write("checkpoint-0.note", checkpoint(0))
    write("checkpoint-1.note", checkpoint(1))
    write("checkpoint-8.note", checkpoint(8))
    write("checkpoint-13.note", checkpoint(13))
    write("checkpoint-1025.note", checkpoint(1025))

    # Cosigned checkpoint: log signature, two witness cosignatures, and a
    # signature from a key nobody trusts (verifiers must ignore it).
    t13 = body(13)
    ts1, ts2 = 1700000000, 1700000123
    cosigned = (t13 + b"\n" + log.note_sig_line(t13).encode()
                + w1.cosig_line(t13, ts1).encode()
                + w2.cosig_line(t13, ts2).encode()
                + stranger.note_sig_line(t13).encode())
    write("checkpoint-13-cosigned.note", cosigned)

    # Exact bytes witness1 signed (for cosignature implementers).
    write("cosignature-witness1-13.msg",
          b"cosignature/v1\ntime " + str(ts1).encode() + b"\n" + t13)

    # tlog-witness add-checkpoint: old size 8 -> checkpoint 13.
    req = "old 8\n" + "".join(b64(h) + "\n" for h in mk.consistency_proof(8, 13)) + "\n"
    write("add-checkpoint-8-13.request", req.encode() + checkpoint(13))
    write("add-checkpoint-8-13.response", w1.cosig_line(t13, ts1))
    req0 = "old 0\n\n"
    write("add-checkpoint-0-13.request", req0.encode() + checkpoint(13))

    # tlog-proof for leaf 7 in the cosigned size-13 checkpoint; the extra line
    # carries the raw leaf data so the test can recompute the leaf hash.
    idx = 7
    proof = ("c2sp.org/tlog-proof@v1\n"
             "extra %s\n"
             "index %d\n" % (b64(mk.leaf_data(idx)), idx)
             + "".join(b64(h) + "\n" for h in mk.path(idx, 0, 13)) + "\n")
    write("leaf-7-of-13.tlog-proof", proof.encode() + cosigned)

    # Size-1 tree: empty inclusion proof, no extra line.
    proof1 = "c2sp.org/tlog-proof@v1\nindex 0\n\n"
    write("leaf-0-of-1.tlog-proof", proof1.encode() + checkpoint(1))

    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
