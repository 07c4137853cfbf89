"""Strict base64, C2SP signed-note verifier keys, and Ed25519 as RFC 8032
with the refusals of a strict verifier.

A strict verifier refuses, besides what plain RFC 8032 verification
refuses, public keys and ``R`` values of small order: otherwise one
signature can be valid for many messages or keys. OpenSSL (behind
``cryptography``) checks ``S < L`` and compares the encoding of
``[S]B - [k]A`` with ``R`` byte for byte, so ``R`` is canonical whenever a
signature verifies; the small-order refusals are added here.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04

_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64decode_strict(text: str) -> bytes | None:
    """Standard padded base64, decoded strictly: padding required, no
    whitespace, unused trailing bits zero. ``None`` when it is not."""
    if not isinstance(text, str) or len(text) % 4 or not _B64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# The field and curve of edwards25519 (RFC 8032 §5.1).
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P

# The eight canonical encodings of the points of small order (the whole
# torsion subgroup). A key decoder that reduces y modulo p and accepts
# x = 0 with the sign bit set also maps six non-canonical aliases to them
# (y = p, y = p + 1, and x = 0 with the sign bit set), refused as keys too.
_SMALL_ORDER_CANONICAL = frozenset(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    )
)
_SMALL_ORDER = _SMALL_ORDER_CANONICAL | frozenset(
    bytes.fromhex(h)
    for h in (
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    )
)


def is_curve_point(encoded: bytes) -> bool:
    """Whether 32 bytes decode to a point of edwards25519 (y reduced
    modulo p; x recovered from x² = (y² − 1) / (d·y² + 1))."""
    if len(encoded) != 32:
        return False
    y = (int.from_bytes(encoded, "little") & ((1 << 255) - 1)) % _P
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x2 = u * pow(v, _P - 2, _P) % _P
    return x2 == 0 or pow(x2, (_P - 1) // 2, _P) == 1


def ed25519_verify_strict(public: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification refusing small-order keys and R."""
    if len(public) != 32 or len(signature) != 64:
        return False
    if public in _SMALL_ORDER or signature[:32] in _SMALL_ORDER_CANONICAL:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def key_name_valid(name: str) -> bool:
    """C2SP signed-note key name: non-empty, no Unicode whitespace, no ``+``."""
    return bool(name) and "+" not in name and not any(_is_whitespace(c) for c in name)


# Unicode White_Space (what Rust's char::is_whitespace tests).
_WHITESPACE = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}


def _is_whitespace(c: str) -> bool:
    return c in _WHITESPACE


def rust_trim(text: str) -> str:
    """``str::trim``: strips Unicode White_Space only."""
    start, end = 0, len(text)
    while start < end and text[start] in _WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _WHITESPACE:
        end -= 1
    return text[start:end]


def key_id(name: str, alg: int, public: bytes) -> int:
    """First 4 bytes of SHA-256(name ‖ 0x0A ‖ alg ‖ public key), big-endian."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public).digest()
    return int.from_bytes(digest[:4], "big")


class KeyError_(ValueError):
    """A verifier key text that is not acceptable; ``str()`` is the reason."""


_FORMAT = "malformed key text (expected <name>+<hex id>+<base64 key>)"
_HEX = set("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class NoteKey:
    """A signed-note verifier key: a log key (0x01) or a witness key (0x04)."""

    name: str
    key_id: int
    public: bytes
    alg: int

    @classmethod
    def parse(cls, text: str, alg: int) -> "NoteKey":
        """Parses ``<name>+<hex id>+<base64(alg ‖ key)>`` for signature type
        ``alg``, checking name, algorithm, point and key id."""
        parts = rust_trim(text).split("+", 2)
        if len(parts) != 3:
            raise KeyError_(_FORMAT)
        name, hex_id, b64 = parts
        if len(hex_id) != 8 or not set(hex_id) <= _HEX:
            raise KeyError_(_FORMAT)
        if not key_name_valid(name):
            raise KeyError_(f"invalid key name {rust_debug(name)}")
        raw = b64decode_strict(b64)
        if not raw:
            raise KeyError_("invalid Ed25519 key bytes")
        if raw[0] != alg:
            raise KeyError_(
                "unexpected key algorithm (log keys are Ed25519 0x01, "
                "witness keys Ed25519 cosignature 0x04)"
            )
        public = raw[1:]
        if len(public) != 32 or not is_curve_point(public):
            raise KeyError_("invalid Ed25519 key bytes")
        if key_id(name, alg, public) != int(hex_id, 16):
            raise KeyError_("key id does not match the key")
        return cls(name, int(hex_id, 16), public, alg)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return ed25519_verify_strict(self.public, message, signature)

    @property
    def vkey(self) -> str:
        """The key's text, ``<name>+<8 lowercase hex>+<base64(alg ‖ key)>``,
        as the log writes it (a rotation payload names keys in this form)."""
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + self.public)}"


# General categories whose characters Rust's `{:?}` writes as \u{…}:
# controls, format characters, separators other than the space, private
# use, surrogates and unassigned code points.
_UNPRINTABLE = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cs", "Cn"))


def rust_debug(text: str) -> str:
    """A string quoted and escaped as Rust's ``{:?}`` writes it (for the
    characters a verifier meets: quotes, backslashes, controls)."""
    out = ['"']
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif c != " " and unicodedata.category(c) in _UNPRINTABLE:
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)
