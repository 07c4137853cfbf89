"""Receipts (docs/FORMATS.md §11–13): reading them in every accepted form
and verifying them against the log's key."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from .. import _json
from . import _merkle
from ._entry import ENTRY_SIGNATURE_CONTEXT, Entry, EntryError, decode_entry
from ._keys import NoteKey, b64decode_strict, rust_debug
from ._note import (
    Checkpoint,
    CheckpointError,
    NoteError,
    parse_checkpoint_body,
    parse_decimal,
    parse_note,
    open_checkpoint,
)

RECEIPT_FORMAT = "openexec-receipt/v1"
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
_RECEIPT_FIELDS = ("format", "entry", "entry_signature", "leaf_index", "inclusion_proof", "checkpoint", "salts")


@dataclass(frozen=True)
class Receipt:
    format: str
    entry: str
    entry_signature: str
    leaf_index: int
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    salts: dict[str, Any] | None = None


class ShapeError(ValueError):
    """JSON that is not a receipt."""


def _u64(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ShapeError(f"invalid type or range for `{name}`, expected u64")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ShapeError(f"invalid type for `{name}`, expected a string")
    return value


def _fields(obj: Any, allowed: tuple[str, ...], required: tuple[str, ...], what: str) -> dict:
    if not isinstance(obj, dict):
        raise ShapeError(f"invalid type, expected {what}")
    for key in obj:
        if key not in allowed:
            raise ShapeError(f"unknown field `{key}`")
    for key in required:
        if key not in obj:
            raise ShapeError(f"missing field `{key}`")
    return obj


def _salts(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    obj = _fields(value, ("payload", "result"), ("payload",), "salts")
    result = obj.get("result")
    return {"payload": _str(obj["payload"], "payload"), "result": None if result is None else _str(result, "result")}


def receipt_from_json(obj: Any) -> Receipt:
    """A receipt object with exactly the receipt's members and types."""
    obj = _fields(obj, _RECEIPT_FIELDS, _RECEIPT_FIELDS[:-1], "struct Receipt")
    proof = _fields(obj["inclusion_proof"], ("tree_size", "hashes"), ("tree_size", "hashes"), "struct InclusionProof")
    if not isinstance(proof["hashes"], list):
        raise ShapeError("invalid type for `hashes`, expected a sequence")
    hashes = []
    for h in proof["hashes"]:
        raw = b64decode_strict(_str(h, "hashes"))
        if raw is None:
            raise ShapeError("hash is not valid standard base64")
        if len(raw) != 32:
            raise ShapeError(f"hash must be 32 bytes, got {len(raw)}")
        hashes.append(raw)
    return Receipt(
        format=_str(obj["format"], "format"),
        entry=_str(obj["entry"], "entry"),
        entry_signature=_str(obj["entry_signature"], "entry_signature"),
        leaf_index=_u64(obj["leaf_index"], "leaf_index"),
        tree_size=_u64(proof["tree_size"], "tree_size"),
        hashes=tuple(hashes),
        checkpoint=_str(obj["checkpoint"], "checkpoint"),
        salts=_salts(obj.get("salts")),
    )


def receipt_to_json(r: Receipt) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": r.format,
        "entry": r.entry,
        "entry_signature": r.entry_signature,
        "leaf_index": r.leaf_index,
        "inclusion_proof": {"tree_size": r.tree_size, "hashes": [base64.b64encode(h).decode() for h in r.hashes]},
        "checkpoint": r.checkpoint,
    }
    if r.salts is not None:
        out["salts"] = r.salts
    return out


class TlogProofError(ValueError):
    """Text that is not an importable tlog-proof."""


def _bad_line(name: str) -> TlogProofError:
    return TlogProofError(f"tlog-proof: bad or missing `{name}` line")


def _bundle(obj: Any) -> dict[str, Any]:
    """The ``extra`` bundle: format, entry, entry_signature, salts?"""
    try:
        obj = _fields(obj, ("format", "entry", "entry_signature", "salts"), ("format", "entry", "entry_signature"), "bundle")
        bundle = {k: _str(obj[k], k) for k in ("format", "entry", "entry_signature")}
        salts = _salts(obj.get("salts"))
    except ShapeError:
        raise TlogProofError("tlog-proof: extra data is not an OpenExec receipt bundle") from None
    if salts is not None:
        bundle["salts"] = salts
    return bundle


def import_tlog_proof(text: str) -> Receipt:
    """A receipt from C2SP tlog-proof@v1 text (docs/FORMATS.md §12), strictly."""
    rest = text

    def next_line(name: str) -> str:
        nonlocal rest
        line, sep, after = rest.partition("\n")
        if not sep:
            raise _bad_line(name)
        rest = after
        return line

    if next_line("header") != TLOG_PROOF_HEADER:
        raise _bad_line("header")
    extra_line = next_line("extra")
    if not extra_line.startswith("extra "):
        raise _bad_line("extra")
    extra = b64decode_strict(extra_line[len("extra "):])
    not_bundle = TlogProofError("tlog-proof: extra data is not an OpenExec receipt bundle")
    if extra is None:
        raise not_bundle
    try:
        bundle = _bundle(_json.loads(extra))
    except _json.JSONError:
        raise not_bundle from None
    if _json.canonical(bundle) != extra:
        raise not_bundle
    index_line = next_line("index")
    if not index_line.startswith("index "):
        raise _bad_line("index")
    leaf_index = parse_decimal(index_line[len("index "):])
    if leaf_index is None:
        raise _bad_line("index")
    hashes = []
    while True:
        line = next_line("proof")
        if not line:
            break
        raw = b64decode_strict(line)
        if raw is None or len(raw) != 32:
            raise _bad_line("proof")
        hashes.append(raw)
    try:
        note = parse_note(rest.encode("utf-8"))
    except NoteError:
        raise TlogProofError("tlog-proof: malformed checkpoint") from None
    body = parse_checkpoint_body(note.text)
    if body is None:
        raise TlogProofError("tlog-proof: malformed checkpoint")
    return Receipt(
        format=bundle["format"],
        entry=bundle["entry"],
        entry_signature=bundle["entry_signature"],
        leaf_index=leaf_index,
        tree_size=body.size,
        hashes=tuple(hashes),
        checkpoint=rest,
        salts=bundle.get("salts"),
    )


def export_tlog_proof(r: Receipt) -> str:
    bundle: dict[str, Any] = {"format": r.format, "entry": r.entry, "entry_signature": r.entry_signature}
    if r.salts is not None:
        bundle["salts"] = r.salts
    out = [TLOG_PROOF_HEADER, "extra " + base64.b64encode(_json.canonical(bundle)).decode(), f"index {r.leaf_index}"]
    out += [base64.b64encode(h).decode() for h in r.hashes]
    return "\n".join(out) + "\n\n" + r.checkpoint


def _bare_receipt(text: str) -> Receipt | None:
    """The text as a bare receipt (repeated keys refused), if it is one."""
    try:
        return receipt_from_json(_json.loads(text))
    except (_json.JSONError, ShapeError):
        return None


def parse_receipt(text: str) -> Receipt:
    """A bare receipt, any JSON object whose ``receipt`` member holds one
    (an ``/execute`` response), or tlog-proof text. Raises ValueError with
    the reason ``openexec verify`` gives."""
    if text.startswith(TLOG_PROOF_HEADER):
        return import_tlog_proof(text)
    bare = _bare_receipt(text)
    if bare is not None:
        return bare
    try:
        value = _json.loads(text, unique_keys=False)
    except _json.JSONError as e:
        raise ValueError(f"receipt is not JSON: {e}") from None
    inner = value.get("receipt") if isinstance(value, dict) else None
    if not isinstance(inner, dict):
        inner = value
    try:
        return receipt_from_json(inner)
    except ShapeError as e:
        raise ValueError(f"receipt has the wrong shape: {e}") from None


class ReceiptError(ValueError):
    """The first check a receipt failed; ``str()`` matches ``openexec verify``."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class TrustedCheckpoint:
    """A later checkpoint the verifier trusts, and the consistency proof
    from the receipt's tree to it."""

    checkpoint: bytes
    consistency_proof: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class VerifiedReceipt:
    entry: Entry
    leaf_hash: bytes
    checkpoint: Checkpoint


def _check_entry(r: Receipt, log: NoteKey) -> Entry:
    if r.format != RECEIPT_FORMAT:
        raise ReceiptError(f"receipt format is not {RECEIPT_FORMAT}", "format")
    data = r.entry.encode("utf-8")
    try:
        entry = decode_entry(data)
    except EntryError as e:
        raise ReceiptError(f"entry: {e}", "entry") from None
    if entry.origin != log.name:
        raise ReceiptError(
            f"entry origin {rust_debug(entry.origin)} is not the log origin {rust_debug(log.name)}", "origin"
        )
    if entry.index != r.leaf_index:
        raise ReceiptError(
            f"leaf index {r.leaf_index} does not match the entry index {entry.index}", "index"
        )
    signature = b64decode_strict(r.entry_signature)
    if signature is None or len(signature) != 64 or not log.verify(ENTRY_SIGNATURE_CONTEXT + data, signature):
        raise ReceiptError("entry signature is invalid", "entry_signature")
    return entry


def verify_receipt(r: Receipt, log: NoteKey, trusted: TrustedCheckpoint | None = None) -> VerifiedReceipt:
    """Checks, in order: format, entry encoding, origin, index, entry
    signature, checkpoint, proof size, inclusion, and with ``trusted``
    consistency with that later checkpoint."""
    entry = _check_entry(r, log)
    try:
        checkpoint = open_checkpoint(r.checkpoint.encode("utf-8"), log)
    except CheckpointError as e:
        raise ReceiptError(f"checkpoint: {e}", "checkpoint") from None
    if r.tree_size != checkpoint.size:
        raise ReceiptError(
            f"inclusion proof is for tree size {r.tree_size} but the checkpoint has size {checkpoint.size}",
            "tree_size",
        )
    leaf = _merkle.leaf_hash(r.entry.encode("utf-8"))
    try:
        _merkle.verify_inclusion(list(r.hashes), r.leaf_index, r.tree_size, leaf, checkpoint.root)
    except _merkle.ProofError as e:
        raise ReceiptError(f"inclusion proof: {e}", "inclusion") from None
    if trusted is not None:
        try:
            later = open_checkpoint(trusted.checkpoint, log)
        except CheckpointError as e:
            raise ReceiptError(f"trusted checkpoint: {e}", "trusted_checkpoint") from None
        try:
            _merkle.verify_consistency(
                list(trusted.consistency_proof), checkpoint.size, later.size, checkpoint.root, later.root
            )
        except _merkle.ProofError as e:
            raise ReceiptError(f"consistency with the trusted checkpoint: {e}", "consistency") from None
    return VerifiedReceipt(entry, leaf, checkpoint)


def opens_commitment(expected_b64: str, salt_b64: str, content: bytes) -> bool:
    """Whether ``content`` (canonical bytes) opens the commitment with the salt:
    SHA-256("openexec/commitment/v1\\n" ‖ salt ‖ content)."""
    salt = b64decode_strict(salt_b64)
    expected = b64decode_strict(expected_b64)
    if salt is None or len(salt) != 32 or expected is None:
        return False
    return hashlib.sha256(b"openexec/commitment/v1\n" + salt + content).digest() == expected
