"""A test-only log: signs entries, checkpoints and cosignatures with keys
derived from public seeds, and builds RFC 6962 proofs, so that the tests
can make valid receipts and then break them one check at a time.

The log key is the project's TEST-ONLY vector key (seed 32 × 0x42,
tests/vectors/openexec/key.json)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openexec_client import _json
from openexec_client.verify._keys import key_id
from openexec_client.verify._merkle import leaf_hash, root_of

VECTOR_SEED = bytes([0x42]) * 32
ORIGIN = "example.com/openexec"
B64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 PATH(m, D[n]), leaf side first."""
    n = len(leaves)
    if n <= 1:
        return []
    k = _split(n)
    if m < k:
        return inclusion_path(m, leaves[:k]) + [root_of(leaves[k:])]
    return inclusion_path(m - k, leaves[k:]) + [root_of(leaves[:k])]


def consistency_path(m: int, leaves: list[bytes], complete: bool = True) -> list[bytes]:
    """RFC 6962 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [root_of(leaves)]
    k = _split(n)
    if m <= k:
        return consistency_path(m, leaves[:k], complete) + [root_of(leaves[k:])]
    return consistency_path(m - k, leaves[k:], False) + [root_of(leaves[:k])]


class Signer:
    """An Ed25519 note key of algorithm ``alg`` (1 log, 4 witness)."""

    def __init__(self, name: str, seed: bytes, alg: int = 1) -> None:
        self.name = name
        self.alg = alg
        self.private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, alg, self.public)

    @classmethod
    def seeded(cls, name: str, label: str, alg: int = 1) -> "Signer":
        return cls(name, hashlib.sha256(f"openexec python test key: {label}".encode()).digest(), alg)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{B64(bytes([self.alg]) + self.public)}"

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def note_line(self, text: bytes) -> str:
        sig = self.key_id.to_bytes(4, "big") + self.sign(text)
        return f"— {self.name} {B64(sig)}\n"

    def cosign_line(self, text: bytes, timestamp: int) -> str:
        msg = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text
        sig = self.key_id.to_bytes(4, "big") + timestamp.to_bytes(8, "big") + self.sign(msg)
        return f"— {self.name} {B64(sig)}\n"


def checkpoint_body(origin: str, size: int, root: bytes) -> bytes:
    return f"{origin}\n{size}\n{B64(root)}\n".encode()


@dataclass
class Log:
    signer: Signer = field(default_factory=lambda: Signer(ORIGIN, VECTOR_SEED))
    entries: list[bytes] = field(default_factory=list)

    @property
    def leaves(self) -> list[bytes]:
        return [leaf_hash(e) for e in self.entries]

    def append(self, **overrides) -> bytes:
        """Appends a valid canonical entry (fields overridable)."""
        index = len(self.entries)
        fields = {
            "v": 1, "origin": self.signer.name, "index": index,
            "prev": B64(self.leaves[-1] if self.entries else bytes(32)),
            "time": "2026-11-21T12:00:00.000000Z",
            "exec_id": f"00000000-0000-4000-8000-{index:012d}", "tenant": "tenant-001",
            "action": "echo", "nonce": f"nonce-{index}",
            "request_hash": B64(hashlib.sha256(b"r%d" % index).digest()),
            "payload_commitment": B64(hashlib.sha256(b"p%d" % index).digest()),
            "result_commitment": None,
            "approval": {"kind": "none", "id": None, "key_id": None, "expires_at": None},
            "outcome": "executed", "reason": "ok",
        }
        fields.update(overrides)
        data = _json.canonical({k: v for k, v in fields.items() if v is not None or k == "result_commitment"})
        self.entries.append(data)
        return data

    def checkpoint(self, size: int | None = None, extra_lines: str = "") -> str:
        size = len(self.entries) if size is None else size
        body = checkpoint_body(self.signer.name, size, root_of(self.leaves[:size]))
        return (body + b"\n").decode() + self.signer.note_line(body) + extra_lines

    def receipt(self, index: int, size: int | None = None, checkpoint: str | None = None, salts=None) -> dict:
        size = len(self.entries) if size is None else size
        entry = self.entries[index]
        receipt = {
            "format": "openexec-receipt/v1",
            "entry": entry.decode(),
            "entry_signature": B64(self.signer.sign(b"OpenExec entry signature v1\n" + entry)),
            "leaf_index": index,
            "inclusion_proof": {"tree_size": size, "hashes": [B64(h) for h in inclusion_path(index, self.leaves[:size])]},
            "checkpoint": checkpoint if checkpoint is not None else self.checkpoint(size),
        }
        if salts is not None:
            receipt["salts"] = salts
        return receipt

    def consistency(self, old: int, new: int) -> list[str]:
        if old == 0 or old == new:
            return []
        return [B64(h) for h in consistency_path(old, self.leaves[:new])]


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)
