"""C2SP tlog-policy: which logs and witnesses a verifier trusts, and the
witness quorum a checkpoint needs.

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> all|any|<k> <member>...
    quorum <name>|none
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._keys import ALG_COSIGNATURE_V1, ALG_ED25519, KeyError_, NoteKey, rust_debug
from ._note import (
    Checkpoint,
    CheckpointError,
    InvalidSignature,
    NoteError,
    UnverifiedNote,
    check_cosignature,
    open_checkpoint,
    origin_of,
    parse_decimal,
    parse_note,
    verify_note,
)
from ._receipt import Receipt, ReceiptError, TrustedCheckpoint, VerifiedReceipt, verify_receipt

MAX_ITEMS = 256


class PolicyError(ValueError):
    """A refused policy file or checkpoint; ``str()`` matches ``openexec verify``."""


class QuorumNotMet(PolicyError):
    """The verified cosignatures do not meet the quorum."""


@dataclass
class Witness:
    name: str
    key: NoteKey
    url: str | None = None


@dataclass
class Policy:
    logs: list[NoteKey] = field(default_factory=list)
    witnesses: list[Witness] = field(default_factory=list)
    groups: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    quorum: str | None = None  # a witness or group name; "" means none

    @classmethod
    def parse(cls, text: str) -> "Policy":
        policy = cls()
        state = _Parser(policy)
        for number, raw in enumerate(text.split("\n"), start=1):
            reason = state.line(raw)
            if reason is not None:
                raise PolicyError(f"policy line {number}: {reason}")
        if policy.quorum is None:
            raise PolicyError("policy has no quorum line")
        return policy

    def log_for(self, origin: str) -> NoteKey | None:
        return next((k for k in self.logs if k.name == origin), None)

    def check(self, note: bytes) -> tuple[Checkpoint, list[str]]:
        """Accepts a checkpoint signed by a policy log whose verified
        cosignatures meet the quorum; returns it and the witnesses."""
        origin = origin_of(note)
        if origin is None:
            raise PolicyError("checkpoint: malformed signed note")
        log = self.log_for(origin)
        if log is None:
            raise PolicyError(f"checkpoint origin {rust_debug(origin)} is not a log of the policy")
        try:
            checkpoint = open_checkpoint(note, log)
        except CheckpointError as e:
            raise PolicyError(f"checkpoint: {e}") from None
        return checkpoint, self.check_opened(checkpoint)

    def check_opened(self, checkpoint: Checkpoint) -> list[str]:
        witnessed = self._verified_witnesses(checkpoint)
        if not self._satisfied(witnessed):
            have = ", ".join(rust_debug(w) for w in witnessed)
            raise QuorumNotMet(f"quorum not met: cosigned by [{have}]")
        return witnessed

    def _verified_witnesses(self, checkpoint: Checkpoint) -> list[str]:
        try:
            note = parse_note(checkpoint.note.raw)
            lines = verify_note(note, [w.key for w in self.witnesses], check_cosignature)
        except UnverifiedNote:
            return []
        except InvalidSignature:
            raise PolicyError("a cosignature from a policy witness is invalid") from None
        except NoteError:
            raise PolicyError("checkpoint: malformed signed note") from None
        names = set()
        for sig in lines:
            for w in self.witnesses:
                if w.key.name == sig.name and w.key.key_id == sig.key_id:
                    names.add(w.name)
                    break
        return sorted(names, key=lambda n: n.encode("utf-8"))

    def _satisfied(self, cosigned: list[str]) -> bool:
        if self.quorum == "":
            return True
        return self._witnessed(self.quorum or "", set(cosigned))

    def _witnessed(self, name: str, cosigned: set[str]) -> bool:
        group = self.groups.get(name)
        if group is None:
            return name in cosigned
        threshold, members = group
        return sum(1 for m in members if self._witnessed(m, cosigned)) >= threshold


class _Parser:
    def __init__(self, policy: Policy) -> None:
        self.p = policy
        self.log_keys: set[bytes] = set()
        self.witness_keys: set[bytes] = set()

    def line(self, raw: str) -> str | None:
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in raw):
            return "control character"
        words = [w for w in raw.replace("\t", " ").split(" ") if w]
        if not words or words[0].startswith("#"):
            return None
        head, args = words[0], words[1:]
        if head == "log" and 1 <= len(args) <= 2:
            return self.log(args[0])
        if head == "witness" and 2 <= len(args) <= 3:
            return self.witness(args[0], args[1], args[2] if len(args) > 2 else None)
        if head == "group" and len(args) >= 3:
            return self.group(args[0], args[1], args[2:])
        if head == "quorum" and len(args) == 1:
            return self.quorum(args[0])
        return f"not a policy line: {rust_debug(raw)}"

    def _defined(self, name: str) -> bool:
        return name in self.p.groups or any(w.name == name for w in self.p.witnesses)

    def _new_name(self, name: str) -> str | None:
        if name == "none":
            return "the name `none` is reserved"
        if self._defined(name):
            return f"name {rust_debug(name)} is defined twice"
        return None

    @staticmethod
    def _count(count: int) -> str | None:
        return f"more than {MAX_ITEMS} of one kind" if count >= MAX_ITEMS else None

    def log(self, vkey: str) -> str | None:
        try:
            key = NoteKey.parse(vkey, ALG_ED25519)
        except KeyError_ as e:
            return f"log key: {e}"
        if key.public in self.log_keys:
            return "duplicate log key"
        self.log_keys.add(key.public)
        error = self._count(len(self.p.logs))
        if error:
            return error
        self.p.logs.append(key)
        return None

    def witness(self, name: str, vkey: str, url: str | None) -> str | None:
        error = self._new_name(name)
        if error:
            return error
        try:
            key = NoteKey.parse(vkey, ALG_COSIGNATURE_V1)
        except KeyError_ as e:
            return f"witness key: {e}"
        if key.public in self.witness_keys:
            return "duplicate witness key"
        self.witness_keys.add(key.public)
        error = self._count(len(self.p.witnesses))
        if error:
            return error
        self.p.witnesses.append(Witness(name, key, url))
        return None

    def group(self, name: str, threshold: str, members: list[str]) -> str | None:
        error = self._new_name(name) or self._count(len(self.p.groups))
        if error:
            return error
        seen: set[str] = set()
        for member in members:
            if not self._defined(member):
                return f"group member {rust_debug(member)} is not defined above"
            if member in seen:
                return f"group member {rust_debug(member)} is listed twice"
            seen.add(member)
        n = len(members)
        if threshold == "all":
            k = n
        elif threshold == "any":
            k = 1
        else:
            parsed = parse_decimal(threshold)
            if parsed is None or not 1 <= parsed <= n:
                return f"group threshold must be all, any or 1..={n}, not {rust_debug(threshold)}"
            k = parsed
        self.p.groups[name] = (k, list(members))
        return None

    def quorum(self, name: str) -> str | None:
        if self.p.quorum is not None:
            return "a second quorum line"
        if name == "none":
            self.p.quorum = ""
        elif self._defined(name):
            self.p.quorum = name
        else:
            return f"quorum {rust_debug(name)} is not defined above"
        return None


def verify_receipt_with_policy(
    r: Receipt, policy: Policy, trusted: TrustedCheckpoint | None = None
) -> tuple[VerifiedReceipt, Checkpoint, list[str]]:
    """The receipt verifies against the key of the policy log it names, and
    the witness quorum is met by its checkpoint or by the trusted later one
    (to which the receipt's checkpoint is proven consistent)."""
    origin = origin_of(r.checkpoint.encode("utf-8"))
    if origin is None:
        raise ReceiptError("checkpoint: malformed signed note", "checkpoint")
    log = policy.log_for(origin)
    if log is None:
        raise PolicyError(f"the receipt's log {rust_debug(origin)} is not in the policy")
    verified = verify_receipt(r, log, trusted)
    try:
        return verified, verified.checkpoint, policy.check_opened(verified.checkpoint)
    except PolicyError as own:
        if trusted is None:
            raise
        try:
            later, witnesses = policy.check(trusted.checkpoint)
        except QuorumNotMet:
            raise own from None
        return verified, later, witnesses
