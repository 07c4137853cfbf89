"""The ledger entry (docs/FORMATS.md §5), decoded canonically: JSON of
exactly the entry's shape, version 1, valid fields, and bytes equal to the
RFC 8785 encoding of what they decode to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .. import _json
from ._keys import b64decode_strict

MAX_INDEX = 2**53 - 1
ENTRY_SIGNATURE_CONTEXT = b"OpenExec entry signature v1\n"
GENESIS_PREV = bytes(32)

OUTCOMES = ("executed", "failed", "rejected", "replayed", "interrupted", "redacted")
REDACTION_REASONS = ("personal_data", "leaked_secret", "legal", "other")
EFFECTS = ("none", "at-most-once", "idempotent-downstream")
APPROVAL_KINDS = ("none", "clawshield-v1", "openexec-v2")

_REQUIRED = (
    "v", "origin", "index", "prev", "time", "exec_id", "tenant", "action", "nonce",
    "request_hash", "payload_commitment", "approval", "outcome", "reason",
)
_NULLABLE = ("result_commitment",)
_OMITTED_WHEN_ABSENT = ("replay_of", "effects", "registry", "principal", "redacts")
_FIELDS = set(_REQUIRED) | set(_NULLABLE) | set(_OMITTED_WHEN_ABSENT)
_APPROVAL_FIELDS = ("kind", "id", "key_id", "expires_at")
_REASON = re.compile(r"[a-z0-9_]{1,64}")
_PRINCIPAL = re.compile(r"[0-9a-f]{16}")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


class EntryError(ValueError):
    """Why bytes are not an entry; ``str()`` matches ``openexec verify``."""


class Malformed(EntryError):
    def __init__(self, why: str) -> None:
        super().__init__(f"entry is not valid JSON of the entry shape: {why}")


def _invalid(field: str) -> EntryError:
    return EntryError(f"invalid entry field `{field}`")


@dataclass(frozen=True)
class Entry:
    fields: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None


def _u64(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise Malformed(f"invalid type or range for `{name}`, expected u64")
    return value


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise Malformed(f"invalid type for `{name}`, expected a string")
    return value


def _opt_string(value: Any, name: str) -> str | None:
    return None if value is None else _string(value, name)


def _hash(value: Any, name: str) -> str:
    raw = b64decode_strict(_string(value, name))
    if raw is None or len(raw) != 32:
        raise Malformed(f"`{name}` is not a strict base64 hash of 32 bytes")
    return value


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if _string(value, name) not in allowed:
        raise Malformed(f"unknown variant of `{name}`: {value}")
    return value


def _object(value: Any, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"invalid type for `{name}`, expected an object")
    unknown = set(value) - set(allowed)
    if unknown:
        raise Malformed(f"unknown field `{sorted(unknown)[0]}` in `{name}`")
    return value


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# What an RFC 3339 time that is valid but out of the 4-digit years
# re-encodes to: never the input, so the entry is not canonical.
_OUT_OF_YEARS = "\0"


def _time(value: Any) -> str:
    """RFC 3339 with a zone, in the proleptic Gregorian calendar (year 0
    included); returns the canonical text it re-encodes to (UTC,
    microseconds truncated, ``Z``). A leap second reads as the last second
    plus a fraction past one."""
    text = _string(value, "time")
    m = _RFC3339.fullmatch(text)
    if not m or not text.isascii():
        raise Malformed("`time` is not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    zone = m.group(8)
    off_h, off_m = (0, 0) if zone in ("Z", "z") else (int(zone[1:3]), int(zone[4:6]))
    days_in_month = _DAYS[month - 1] + (month == 2 and _leap(year)) if 1 <= month <= 12 else 0
    if not 1 <= day <= days_in_month or hour > 23 or minute > 59 or second > 60 or off_h > 23 or off_m > 59:
        raise Malformed("`time` is out of range")
    micros = int(((m.group(7) or ".0")[1:] + "000000")[:6])
    if second == 60:
        second, micros = 59, micros + 1_000_000
    offset = timedelta(hours=off_h, minutes=off_m) * (1 if zone[0] == "+" else -1 if zone[0] == "-" else 0)
    # Year 0 is computed 400 years on: the calendar repeats every 400 years.
    shift = 400 if year == 0 else 0
    try:
        moment = datetime(year + shift, month, day, hour, minute, second, tzinfo=timezone.utc)
        moment = moment - offset + timedelta(microseconds=micros)
    except (OverflowError, ValueError):
        return _OUT_OF_YEARS
    out_year = moment.year - shift
    if not 0 <= out_year <= 9999:
        return _OUT_OF_YEARS
    return (
        f"{out_year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def _shape(obj: Any) -> dict[str, Any]:
    """The decoded fields, each checked for its JSON type; absent optional
    members become None."""
    if not isinstance(obj, dict):
        raise Malformed("invalid type, expected an entry object")
    unknown = set(obj) - _FIELDS
    if unknown:
        raise Malformed(f"unknown field `{sorted(unknown)[0]}`")
    missing = [f for f in _REQUIRED if f not in obj]
    if missing:
        raise Malformed(f"missing field `{missing[0]}`")
    e: dict[str, Any] = {}
    v = obj["v"]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32:
        raise Malformed("invalid type or range for `v`, expected u32")
    e["v"] = v
    e["index"] = _u64(obj["index"], "index")
    for name in ("origin", "exec_id", "tenant", "action", "nonce", "reason"):
        e[name] = _string(obj[name], name)
    for name in ("prev", "request_hash", "payload_commitment"):
        e[name] = _hash(obj[name], name)
    rc = obj.get("result_commitment")
    e["result_commitment"] = None if rc is None else _hash(rc, "result_commitment")
    e["time"] = _time(obj["time"])
    e["outcome"] = _choice(obj["outcome"], "outcome", OUTCOMES)
    approval = _object(obj["approval"], "approval", _APPROVAL_FIELDS)
    if "kind" not in approval:
        raise Malformed("missing field `kind`")
    e["approval"] = {
        "kind": _choice(approval["kind"], "kind", APPROVAL_KINDS),
        "id": _opt_string(approval.get("id"), "id"),
        "key_id": _opt_string(approval.get("key_id"), "key_id"),
        "expires_at": _opt_string(approval.get("expires_at"), "expires_at"),
    }
    e["replay_of"] = _entry_ref(obj.get("replay_of"), "replay_of")
    effects = obj.get("effects")
    e["effects"] = None if effects is None else _choice(effects, "effects", EFFECTS)
    registry = obj.get("registry")
    e["registry"] = None if registry is None else _hash(registry, "registry")
    e["principal"] = _opt_string(obj.get("principal"), "principal")
    e["redacts"] = _entry_ref(obj.get("redacts"), "redacts")
    return e


def _entry_ref(value: Any, name: str) -> dict[str, Any] | None:
    """`replay_of` or `redacts`: an entry by index and leaf hash."""
    if value is None:
        return None
    r = _object(value, name, ("index", "leaf_hash"))
    for f in ("index", "leaf_hash"):
        if f not in r:
            raise Malformed(f"missing field `{f}`")
    return {"index": _u64(r["index"], "index"), "leaf_hash": _hash(r["leaf_hash"], "leaf_hash")}


def _validate(e: dict[str, Any]) -> None:
    if e["index"] > MAX_INDEX:
        raise _invalid("index")
    if not _REASON.fullmatch(e["reason"]):
        raise _invalid("reason")
    if not e["origin"]:
        raise _invalid("origin")
    if e["index"] == 0 and b64decode_strict(e["prev"]) != GENESIS_PREV:
        raise _invalid("prev")
    replay_of = e["replay_of"]
    if replay_of is not None and replay_of["index"] >= e["index"]:
        raise _invalid("replay_of")
    redacts = e["redacts"]
    if redacts is not None and redacts["index"] >= e["index"]:
        raise _invalid("redacts")
    if (replay_of is not None) != (e["outcome"] == "replayed"):
        raise _invalid("replay_of")
    if (redacts is not None) != (e["outcome"] == "redacted"):
        raise _invalid("redacts")
    if e["outcome"] == "redacted" and e["reason"] not in REDACTION_REASONS:
        raise _invalid("reason")
    if e["principal"] is not None and not _PRINCIPAL.fullmatch(e["principal"]):
        raise _invalid("principal")
    if e["outcome"] in ("rejected", "replayed", "redacted") and e["effects"] is not None:
        raise _invalid("effects")


def encode(e: dict[str, Any]) -> bytes:
    """The canonical bytes of decoded fields: optional members omitted when
    absent, nullable ones written as null."""
    out = {k: v for k, v in e.items() if not (k in _OMITTED_WHEN_ABSENT and v is None)}
    return _json.canonical(out)


def decode_entry(data: bytes) -> Entry:
    """Strict decoding, in the order of docs/FORMATS.md §5."""
    try:
        obj = _json.loads(data)
    except _json.JSONError as e:
        raise Malformed(str(e)) from None
    fields = _shape(obj)
    if fields["v"] != 1:
        raise EntryError(f"unknown entry version {fields['v']}")
    _validate(fields)
    if encode(fields) != data:
        raise EntryError("entry bytes are not canonical")
    return Entry(fields)
