"""Log key rotation (docs/FORMATS.md §18): the rotation record and the
check of the link from a retired log to its successor.

The two link entries are ordinary ``executed`` entries whose payloads name
each other; both payloads are committed under the all-zero salt, so the
verifier recomputes from the two keys and the retired log's final
checkpoint the exact request hashes and commitments the entries must
carry. The record's ``successor`` and ``predecessor`` members are never
trusted: they must equal what the check recomputes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .. import _json
from ._keys import NoteKey, b64decode_strict, b64encode
from ._note import Checkpoint
from ._receipt import Receipt, ReceiptError, ShapeError, receipt_from_json, verify_receipt

ROTATION_FORMAT = "openexec-rotation/v1"
LOG_END_ACTION = "openexec/log_end"
LOG_START_ACTION = "openexec/log_start"
# Public, so that a link payload's commitment opens from the payload alone.
LINK_SALT = bytes(32)
REQUEST_TAG = b"openexec/request/v1\n"
COMMITMENT_TAG = b"openexec/commitment/v1\n"


class RotationError(ValueError):
    """The first step of the chain check that failed; ``str()`` matches
    ``openexec verify --chain`` (after its ``chain: `` prefix)."""


@dataclass(frozen=True)
class Successor:
    origin: str
    vkey: str

    @classmethod
    def of(cls, log: NoteKey) -> "Successor":
        return cls(log.name, log.vkey)

    def payload(self) -> dict[str, Any]:
        return {"successor": {"origin": self.origin, "vkey": self.vkey}}


@dataclass(frozen=True)
class Predecessor:
    checkpoint: bytes  # SHA-256 of the final checkpoint's body
    origin: str
    root: bytes
    size: int
    vkey: str

    @classmethod
    def of(cls, log: NoteKey, final: Checkpoint) -> "Predecessor":
        return cls(
            checkpoint=hashlib.sha256(checkpoint_body(final.note.raw)).digest(),
            origin=log.name,
            root=final.root,
            size=final.size,
            vkey=log.vkey,
        )

    def payload(self) -> dict[str, Any]:
        return {
            "predecessor": {
                "checkpoint": b64encode(self.checkpoint),
                "origin": self.origin,
                "root": b64encode(self.root),
                "size": self.size,
                "vkey": self.vkey,
            }
        }


@dataclass(frozen=True)
class RotationRecord:
    format: str
    successor: Successor
    predecessor: Predecessor
    log_end: Receipt
    log_start: Receipt


def checkpoint_body(note: bytes) -> bytes:
    """The body of a checkpoint note: up to its first blank line (a body
    holds none), so that cosignatures added later do not change it."""
    end = note.find(b"\n\n")
    return note if end < 0 else note[: end + 1]


def _members(obj: Any, names: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ShapeError(f"invalid type, expected {what}")
    for key in obj:
        if key not in names:
            raise ShapeError(f"unknown field `{key}`")
    for key in names:
        if key not in obj:
            raise ShapeError(f"missing field `{key}`")
    return obj


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ShapeError(f"invalid type for `{name}`, expected a string")
    return value


def _hash(value: Any, name: str) -> bytes:
    raw = b64decode_strict(_string(value, name))
    if raw is None:
        raise ShapeError("hash is not valid standard base64")
    if len(raw) != 32:
        raise ShapeError(f"hash must be 32 bytes, got {len(raw)}")
    return raw


def record_from_json(text: str) -> RotationRecord:
    """A rotation record: exactly its members, of their types. Raises
    ShapeError (or _json.JSONError) when it is not one."""
    obj = _members(
        _json.loads(text),
        ("format", "successor", "predecessor", "log_end", "log_start"),
        "struct RotationRecord",
    )
    s = _members(obj["successor"], ("origin", "vkey"), "struct Successor")
    p = _members(obj["predecessor"], ("checkpoint", "origin", "root", "size", "vkey"), "struct Predecessor")
    size = p["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < 2**64:
        raise ShapeError("invalid type or range for `size`, expected u64")
    return RotationRecord(
        format=_string(obj["format"], "format"),
        successor=Successor(_string(s["origin"], "origin"), _string(s["vkey"], "vkey")),
        predecessor=Predecessor(
            checkpoint=_hash(p["checkpoint"], "checkpoint"),
            origin=_string(p["origin"], "origin"),
            root=_hash(p["root"], "root"),
            size=size,
            vkey=_string(p["vkey"], "vkey"),
        ),
        log_end=receipt_from_json(obj["log_end"]),
        log_start=receipt_from_json(obj["log_start"]),
    )


@dataclass(frozen=True)
class _Link:
    """What a link entry of one payload must carry (its nonce is its exec_id)."""

    action: str
    reason: str
    nonce: str
    request_hash: str
    payload_commitment: str


def _link(action: str, reason: str, payload: dict[str, Any], exec_id: str) -> _Link:
    payload_bytes = _json.canonical(payload)
    # The request hash is over the payload as read back from its JCS form
    # (docs/FORMATS.md §3), which for strings and a u64 is the payload itself.
    value = _json.loads(payload_bytes)
    body = {"action": action, "nonce": exec_id, "payload": value, "tenant": ""}
    return _Link(
        action=action,
        reason=reason,
        nonce=exec_id,
        request_hash=b64encode(hashlib.sha256(REQUEST_TAG + _json.canonical(body)).digest()),
        payload_commitment=b64encode(hashlib.sha256(COMMITMENT_TAG + LINK_SALT + payload_bytes).digest()),
    )


def _carries(entry, link: _Link) -> bool:
    return (
        entry.action == link.action
        and entry.outcome == "executed"
        and entry.reason == link.reason
        and entry.tenant == ""
        and entry.nonce == link.nonce
        and entry.request_hash == link.request_hash
        and entry.payload_commitment == link.payload_commitment
    )


@dataclass(frozen=True)
class ChainOk:
    final_checkpoint: Checkpoint
    successor_checkpoint: Checkpoint


def verify_chain(record: RotationRecord, old: NoteKey, new: NoteKey) -> ChainOk:
    """The seven steps of docs/FORMATS.md §18 "Checking the chain", in order."""
    try:
        end = verify_receipt(record.log_end, old)
    except ReceiptError as e:
        raise RotationError(f"predecessor's log_end receipt: {e}") from None
    if end.entry.action != LOG_END_ACTION or end.entry.outcome != "executed":
        raise RotationError("the predecessor's receipt is not of a log_end entry")
    if end.entry.index + 1 != end.checkpoint.size:
        raise RotationError(
            f"the log_end entry {end.entry.index} is not the last entry of the final checkpoint "
            f"(size {end.checkpoint.size})"
        )
    successor = Successor.of(new)
    if not _carries(end.entry, _link(LOG_END_ACTION, "log_end", successor.payload(), end.entry.exec_id)):
        raise RotationError(f"the log_end entry does not name the successor {new.name}")
    try:
        start = verify_receipt(record.log_start, new)
    except ReceiptError as e:
        raise RotationError(f"successor's log_start receipt: {e}") from None
    if start.entry.index != 0 or start.entry.action != LOG_START_ACTION:
        raise RotationError("the successor's receipt is not of its entry 0, a log_start entry")
    predecessor = Predecessor.of(old, end.checkpoint)
    if not _carries(start.entry, _link(LOG_START_ACTION, "log_start", predecessor.payload(), start.entry.exec_id)):
        raise RotationError(f"the log_start entry does not commit to the final checkpoint of {old.name}")
    if record.successor != successor:
        raise RotationError(_mismatch("successor"))
    if record.predecessor != predecessor:
        raise RotationError(_mismatch("predecessor"))
    return ChainOk(end.checkpoint, start.checkpoint)


def _mismatch(member: str) -> str:
    return f"the record's {member} member is not the one the keys and the final checkpoint give"
