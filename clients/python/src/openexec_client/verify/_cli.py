"""``python -m openexec_client.verify``: the arguments, output lines and
exit codes of ``openexec verify``.

One receipt: ``OK: <what it established>`` or ``FAILED: <first failed
check>``. Several (files, or JSON Lines): a ``FAILED: <place>: <reason>``
line per failure, then ``OK: N receipts verified`` or ``FAILED: F of N
receipts failed``. ``--key`` (``--log-key``) is given once per log; each
receipt is checked with the key whose name is its entry's origin.
``--chain <rotation record>`` checks the link from a retired log to its
successor (docs/FORMATS.md §18): ``OK: chain: …``, followed by ``; `` and
the receipts' line when receipts are given too. Exit 0 when everything
verified, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from ._keys import ALG_ED25519, KeyError_, NoteKey, b64decode_strict, rust_debug, rust_trim
from ._policy import Policy, PolicyError, verify_receipt_with_policy
from ._receipt import (
    TLOG_PROOF_HEADER,
    Checkpoint,
    ReceiptError,
    ShapeError,
    TrustedCheckpoint,
    VerifiedReceipt,
    parse_receipt,
    verify_receipt,
)
from ._rotation import RotationError, record_from_json, verify_chain
from .. import _json


class Failure(Exception):
    """The one line a run ends with."""


@dataclass(frozen=True)
class Source:
    file: str
    line: int | None
    text: str

    def place(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


def _os_error(e: OSError) -> str:
    text = os.strerror(e.errno) if e.errno else str(e)
    return f"{text} (os error {e.errno})"


def read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError as e:
        raise Failure(f"reading {path}: Is a directory (os error {e.errno})") from None
    except OSError as e:
        raise Failure(f"reading {path}: {_os_error(e)}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Failure(f"reading {path}: stream did not contain valid UTF-8") from None


def _lines(text: str) -> list[str]:
    """``str::lines``: split at ``\\n``, drop one trailing ``\\r`` per line and
    the empty piece after a final newline."""
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    return [p[:-1] if p.endswith("\r") else p for p in pieces]


def sources(files: list[tuple[str, str]]) -> list[Source]:
    """A file that is one receipt (JSON, tlog-proof) is one source; any
    other file is JSON Lines, a source per non-blank line."""
    out: list[Source] = []
    for name, text in files:
        if text.startswith(TLOG_PROOF_HEADER) or _json.is_json(text):
            out.append(Source(name, None, text))
            continue
        for i, line in enumerate(_lines(text)):
            if rust_trim(line):
                out.append(Source(name, i + 1, line))
    return out


def parse_hash_list(text: str) -> list[bytes]:
    """One base64 hash per line, or JSON: a list, or an object with ``hashes``."""
    try:
        value = _json.loads(text, unique_keys=False)
    except _json.JSONError:
        value = None
        hashes = []
        for line in _lines(text):
            if not line:
                continue
            raw = b64decode_strict(line)
            if raw is None:
                raise Failure("consistency proof: hash is not valid standard base64")
            if len(raw) != 32:
                raise Failure(f"consistency proof: hash must be 32 bytes, got {len(raw)}")
            hashes.append(raw)
        return hashes
    if isinstance(value, dict) and "hashes" in value:
        value = value["hashes"]
    if not isinstance(value, list):
        raise Failure("consistency proof: invalid type, expected a sequence")
    out = []
    for item in value:
        raw = b64decode_strict(item) if isinstance(item, str) else None
        if raw is None:
            raise Failure("consistency proof: hash is not valid standard base64")
        if len(raw) != 32:
            raise Failure(f"consistency proof: hash must be 32 bytes, got {len(raw)}")
        out.append(raw)
    return out


def describe(v: VerifiedReceipt, trusted: bool, met: tuple[Checkpoint, list[str]] | None) -> str:
    e = v.entry
    replay = f", a replay of entry {e.replay_of['index']}" if e.replay_of else ""
    if e.redacts:
        replay = f", a redaction of entry {e.redacts['index']}"
    effects = f", effects {e.effects}" if e.effects else ""
    registry = f", handler registry {e.registry}" if e.registry else ""
    line = (
        f"entry {e.index} ({e.action} {e.outcome} {e.exec_id}{replay}{effects}{registry}) "
        f"is in {e.origin} at tree size {v.checkpoint.size}"
    )
    if trusted:
        line += ", consistent with the trusted checkpoint"
    if met is not None:
        checkpoint, witnesses = met
        by = ", ".join(witnesses) if witnesses else "no witness needed"
        line += f"; policy quorum met at tree size {checkpoint.size} (cosigned by {by})"
    return line


def _read_key(arg: str) -> str:
    if "+" in arg:
        return arg
    return rust_trim(read(arg))


@dataclass(frozen=True)
class Keys:
    """The keys given: a policy, or log verifier keys (each receipt checked
    with the one whose name is its entry's origin)."""

    policy: Policy | None
    logs: tuple[NoteKey, ...] = ()

    def log_for(self, origin: str) -> NoteKey | None:
        if self.policy is not None:
            return self.policy.log_for(origin)
        return next((k for k in self.logs if k.name == origin), None)


def keys_of(args: argparse.Namespace) -> Keys:
    if args.policy:
        try:
            return Keys(Policy.parse(read(args.policy)))
        except PolicyError as e:
            raise Failure(f"policy: {e}") from None
    if not args.key:
        raise Failure("give --key or --policy")
    logs = []
    for arg in args.key:
        text = _read_key(arg)
        try:
            logs.append(NoteKey.parse(text, ALG_ED25519))
        except KeyError_ as e:
            raise Failure(f"verifier key: {e}") from None
    return Keys(None, tuple(logs))


def origin_of(receipt) -> str | None:
    """The origin a receipt's entry names (unchecked: it only picks the key)."""
    try:
        value = _json.loads(receipt.entry, unique_keys=False)
    except _json.JSONError:
        return None
    origin = value.get("origin") if isinstance(value, dict) else None
    return origin if isinstance(origin, str) else None


def verify_chain_file(path: str, keys: Keys) -> str:
    """``--chain``: the rotation record checked with both logs' keys."""
    text = read(path)
    try:
        record = record_from_json(text)
    except (_json.JSONError, ShapeError) as e:
        raise Failure(f"{path}: not a rotation record: {e}") from None

    def key(receipt, which: str) -> NoteKey:
        origin = origin_of(receipt) or ""
        found = keys.log_for(origin)
        if found is None:
            raise Failure(f"chain: no key given for the {which} log {rust_debug(origin)}")
        return found

    old = key(record.log_end, "retired")
    new = key(record.log_start, "successor")
    try:
        ok = verify_chain(record, old, new)
    except RotationError as e:
        raise Failure(f"chain: {e}") from None
    return (
        f"chain: {ok.final_checkpoint.origin} ends at tree size {ok.final_checkpoint.size} naming "
        f"{ok.successor_checkpoint.origin}, whose entry 0 commits to that final checkpoint"
    )


def _checker(keys: Keys, trusted: TrustedCheckpoint | None, hint: bool, one: bool):
    """The function that verifies one parsed receipt: its success line
    (empty when many are checked), or ValueError with its failure line."""

    def explain(e: ReceiptError) -> str:
        if e.kind == "consistency" and hint:
            return f"{e} (the trusted checkpoint is for another tree size: add --consistency)"
        return str(e)

    policy = keys.policy
    if policy is not None:

        def check(receipt) -> str:
            try:
                v, cp, witnesses = verify_receipt_with_policy(receipt, policy, trusted)
            except ReceiptError as e:
                raise ValueError(explain(e)) from None
            except PolicyError as e:
                raise ValueError(str(e)) from None
            return describe(v, trusted is not None, (cp, witnesses)) if one else ""

        return check

    def check_with_key(receipt) -> str:
        # A receipt whose origin names no key given is checked with the
        # first, which refuses it by its origin.
        log = keys.log_for(origin_of(receipt) or "")
        try:
            v = verify_receipt(receipt, log or keys.logs[0], trusted)
        except ReceiptError as e:
            raise ValueError(explain(e)) from None
        return describe(v, trusted is not None, None) if one else ""

    return check_with_key


def run(args: argparse.Namespace) -> str:
    """Verifies everything; returns the success line or raises Failure.
    Files are read in the order ``openexec verify`` reads them (receipts,
    keys, the rotation record, checkpoint, consistency proof), so that the
    first unreadable one is the one named."""
    files = [(p, read(p)) for p in args.receipts]
    keys = keys_of(args)
    chain = verify_chain_file(args.chain, keys) if args.chain else None
    if not args.receipts:
        if chain is None:
            raise Failure("give receipts or --chain")
        return chain
    receipts = verify_receipts(args, keys, files)
    return receipts if chain is None else f"{chain}; {receipts}"


def verify_receipts(args: argparse.Namespace, keys: Keys, files: list[tuple[str, str]]) -> str:
    srcs = sources(files)
    checkpoint = read(args.checkpoint) if args.checkpoint else None
    proof = parse_hash_list(read(args.consistency)) if args.consistency else None
    trusted = None
    if checkpoint is not None:
        trusted = TrustedCheckpoint(checkpoint.encode("utf-8"), tuple(proof or ()))
    check = _checker(keys, trusted, hint=proof is None, one=len(srcs) == 1)
    results: list[tuple[str, str | None]] = []  # (ok | unreadable | invalid, line)
    for s in srcs:
        try:
            receipt = parse_receipt(s.text)
        except ValueError as e:
            results.append(("unreadable", str(e)))
            continue
        try:
            results.append(("ok", check(receipt)))
        except ValueError as e:
            results.append(("invalid", str(e)))
    return summarize(srcs, results)


def summarize(srcs: list[Source], results: list[tuple[str, str | None]]) -> str:
    if len(srcs) == 1:
        kind, message = results[0]
        if kind == "ok":
            return message or ""
        if kind == "unreadable":
            raise Failure(f"{srcs[0].place()}: {message}")
        raise Failure(message or "")
    if not srcs:
        raise Failure("no receipt in the files given")
    failures = [f"{s.place()}: {m}" for s, (kind, m) in zip(srcs, results) if kind != "ok"]
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        return f"{len(srcs)} receipts verified"
    raise Failure(f"{len(failures)} of {len(srcs)} receipts failed")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m openexec_client.verify",
        description="Verify OpenExec receipts offline against the log's verifier key "
        "(the arguments, output and exit codes of `openexec verify`).",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--key",
        "--log-key",
        action="append",
        help="a log's verifier key (<name>+<id>+<key>), or a file holding it; once per log: "
        "each receipt is checked with the key named by its origin",
    )
    who.add_argument("--policy", help="a C2SP tlog-policy file (logs, witnesses, groups, quorum)")
    p.add_argument("receipts", nargs="*", help="receipt JSON, /execute responses, tlog-proof text, or JSON Lines")
    p.add_argument(
        "--chain",
        help="a rotation record (rotation-in.json or rotation-out.json): the retired log's final "
        "checkpoint ends with an entry naming the successor's key, whose entry 0 commits to it",
    )
    p.add_argument("--checkpoint", help="a later checkpoint you trust (signed note file)")
    p.add_argument("--consistency", help="consistency proof to --checkpoint: base64 lines or the JSON of /ledger/proof/consistency")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not args.receipts and not args.chain:
        p.error("give receipts or --chain")
    try:
        line = run(args)
    except Failure as e:
        print(f"FAILED: {e}")
        return 1
    print(f"OK: {line}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
