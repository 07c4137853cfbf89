"""C2SP signed-note, tlog-checkpoint and tlog-cosignature/v1.

A note is text, a blank line, then signature lines
``— <key name> <base64(key id (4) ‖ signature)>``. A verifier checks every
line of the keys it knows and ignores the others; a known key's line that
fails refuses the note (C2SP signed-note: "If the key name and ID match a
known key, verifiers MUST verify the signature"; docs/FORMATS.md §9 and
§14). A second line of a key already verified is verified too, not
skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._keys import NoteKey, b64decode_strict, key_name_valid

MAX_NOTE_SIZE = 1_000_000
MAX_NOTE_SIGNATURES = 100
MAX_TIMESTAMP = 2**63 - 1


class NoteError(ValueError):
    """A refused note; ``str()`` is the one-line reason."""


class MalformedNote(NoteError):
    def __init__(self) -> None:
        super().__init__("malformed signed note")


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: int
    signature: bytes
    line: str


@dataclass(frozen=True)
class Note:
    text: bytes  # the signed text, ending in "\n"
    signatures: tuple[SignatureLine, ...]
    raw: bytes


def _check_text(text: str) -> None:
    if any(c < " " and c != "\n" for c in text):
        raise MalformedNote()


def parse_signature_line(line: str) -> SignatureLine:
    if not line.startswith("— "):
        raise MalformedNote()
    name, sep, b64 = line[2:].partition(" ")
    if not sep:
        raise MalformedNote()
    raw = b64decode_strict(b64)
    if raw is None or not b64 or len(raw) < 5 or not key_name_valid(name):
        raise MalformedNote()
    return SignatureLine(name, int.from_bytes(raw[:4], "big"), raw[4:], line)


def parse_note(data: bytes) -> Note:
    """Splits a signed note at its last blank line, checking its form."""
    if len(data) > MAX_NOTE_SIZE:
        raise MalformedNote()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNote() from None
    _check_text(text)
    body, sep, sigs = text.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise MalformedNote()
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise MalformedNote()
    parsed = tuple(parse_signature_line(line) for line in lines)
    return Note((body + "\n").encode("utf-8"), parsed, data)


class UnverifiedNote(NoteError):
    """No line from a known key."""


class InvalidSignature(NoteError):
    """A known key's line does not verify."""


def verify_note(note: Note, keys: list[NoteKey], check) -> list[SignatureLine]:
    """The lines of ``keys`` that verify (``check(key, text, signature)``).
    A failing known line raises InvalidSignature; no known line at all
    raises UnverifiedNote."""
    by_id = {(k.name, k.key_id): k for k in keys}
    verified = []
    for sig in note.signatures:
        key = by_id.get((sig.name, sig.key_id))
        if key is None:
            continue
        if not check(key, note.text, sig.signature):
            raise InvalidSignature("invalid signature")
        if all((v.name, v.key_id) != (sig.name, sig.key_id) for v in verified):
            verified.append(sig)
    if not verified:
        raise UnverifiedNote("unverified note")
    return verified


def check_log_signature(key: NoteKey, text: bytes, signature: bytes) -> bool:
    return key.verify(text, signature)


def cosigned_message(timestamp: int, text: bytes) -> bytes:
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text


def check_cosignature(key: NoteKey, text: bytes, signature: bytes) -> bool:
    """tlog-cosignature/v1: timestamp (u64, at most 2^63 − 1) ‖ Ed25519
    signature over ``cosignature/v1\\ntime <t>\\n`` ‖ checkpoint text."""
    if len(signature) != 72:
        return False
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        return False
    return key.verify(cosigned_message(timestamp, text), signature[8:])


def parse_decimal(text: str) -> int | None:
    """ASCII decimal, no sign, no leading zeros ("0" allowed), within u64."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    if text != "0" and text.startswith("0"):
        return None
    value = int(text)
    return value if value < 2**64 else None


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes


def parse_checkpoint_body(text: bytes) -> CheckpointBody | None:
    """A tlog-checkpoint body: origin, decimal size, base64 root, then
    optional non-empty extension lines, each ending in a newline."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not decoded.endswith("\n"):
        return None
    lines = decoded[:-1].split("\n")
    if len(lines) < 3 or not lines[0] or any(not line for line in lines[3:]):
        return None
    size = parse_decimal(lines[1])
    root = b64decode_strict(lines[2])
    if size is None or root is None or len(root) != 32:
        return None
    return CheckpointBody(lines[0], size, root)


class CheckpointError(ValueError):
    """Why a checkpoint was refused; ``str()`` matches ``openexec verify``."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: Note


def open_checkpoint(data: bytes, log: NoteKey) -> Checkpoint:
    """Opens a checkpoint signed by the log key: form, signature, body, origin."""
    try:
        note = parse_note(data)
    except NoteError:
        raise CheckpointError("malformed signed note") from None
    try:
        verify_note(note, [log], check_log_signature)
    except UnverifiedNote:
        raise CheckpointError("checkpoint is not signed by the log key") from None
    except InvalidSignature:
        raise CheckpointError("checkpoint signature is invalid") from None
    body = parse_checkpoint_body(note.text)
    if body is None:
        raise CheckpointError("malformed checkpoint body")
    if body.origin != log.name:
        from ._keys import rust_debug

        raise CheckpointError(
            f"checkpoint origin {rust_debug(body.origin)} is not the log origin {rust_debug(log.name)}"
        )
    return Checkpoint(body.origin, body.size, body.root, note)


def origin_of(data: bytes) -> str | None:
    """The first line of a note, if it is non-empty UTF-8."""
    end = data.find(b"\n")
    if end < 0:
        return None
    try:
        origin = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return origin or None
