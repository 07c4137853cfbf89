"""Several log keys and ``--chain`` (docs/FORMATS.md §18) in the Python
verifier against ``openexec verify``: a real log served, stopped, rotated
with ``openexec rotate``, its successor served; then each case (receipts
of both logs in one call, a receipt of a log whose key is not given, the
rotation record as written and broken one step at a time) is run through
both verifiers, whose exit codes and lines must be the same."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from openexec_client import Client

from _log import Log, Signer
from _server import Server
from conftest import normalize, run_python, run_rust

OLD_ORIGIN = "rotation.test/log"
NEW_ORIGIN = "rotation.test/log-g2"


@pytest.fixture(scope="module")
def rotated(binary, tmp_path_factory):
    """Two logs linked by ``openexec rotate``: the retired one's keys and
    receipt, the successor's key and its receipt of entry 1 (after the
    log_start entry 0), and the record ``rotation-in.json``."""
    root = tmp_path_factory.mktemp("rotation")
    old_dir, new_dir = root / "old", root / "new"
    old = Server(binary, old_dir, {"OPENEXEC_ORIGIN": OLD_ORIGIN})
    try:
        with Client(old.url) as c:
            old_receipt = c.execute("echo", {"log": "old"}).receipt
            old_vkey = c.verifier_key()
    finally:
        old.stop()
    rotate = subprocess.run(
        [str(binary), "rotate", "--data-dir", str(old_dir), "--new-data-dir", str(new_dir), "--new-origin", NEW_ORIGIN],
        capture_output=True, timeout=60,
    )
    assert rotate.returncode == 0, rotate.stderr.decode()
    new = Server(binary, new_dir, {"OPENEXEC_ORIGIN": NEW_ORIGIN})
    try:
        with Client(new.url) as c:
            new_receipt = c.execute("echo", {"log": "new"}).receipt
            new_vkey = c.verifier_key()
    finally:
        new.stop()
    record = json.loads((new_dir / "rotation-in.json").read_text())
    assert (old_dir / "rotation-out.json").read_text() == (new_dir / "rotation-in.json").read_text()
    return {
        "old_vkey": old_vkey, "new_vkey": new_vkey, "old_receipt": old_receipt,
        "new_receipt": new_receipt, "record": record,
    }


def both(binary: Path, args: list[str], cwd: Path) -> tuple[int, str]:
    """Runs both verifiers; they must agree (parser text aside). Returns
    the Rust verdict."""
    rust = run_rust(binary, args, cwd)
    py = run_python(args, cwd)
    assert (py[0], normalize(py[1])) == (rust[0], normalize(rust[1]))
    return rust


def write(d: Path, name: str, value) -> str:
    (d / name).write_text(value if isinstance(value, str) else json.dumps(value))
    return name


def test_each_receipt_is_checked_with_the_key_of_its_origin(binary, rotated, workdir):
    r = rotated
    write(workdir, "old.json", r["old_receipt"])
    write(workdir, "new.json", r["new_receipt"])
    write(workdir, "old.key", r["old_vkey"] + "\n")
    write(workdir, "both.jsonl", json.dumps(r["old_receipt"]) + "\n" + json.dumps(r["new_receipt"]) + "\n")
    keys = ["--key", r["old_vkey"], "--log-key", "old.key", "--key", r["new_vkey"]]
    assert both(binary, [*keys, "old.json", "new.json"], workdir) == (0, "OK: 2 receipts verified\n")
    assert both(binary, [*keys, "both.jsonl"], workdir) == (0, "OK: 2 receipts verified\n")
    code, out = both(binary, ["--log-key", r["new_vkey"], "--key", r["old_vkey"], "new.json"], workdir)
    assert code == 0 and out.startswith("OK: entry 1 (echo executed ") and f"is in {NEW_ORIGIN} at" in out


def test_a_receipt_whose_origin_has_no_key_fails_as_in_rust(binary, rotated, workdir):
    r = rotated
    write(workdir, "old.json", r["old_receipt"])
    write(workdir, "new.json", r["new_receipt"])
    code, out = both(binary, ["--key", r["new_vkey"], "old.json"], workdir)
    assert (code, out) == (1, f'FAILED: entry origin "{OLD_ORIGIN}" is not the log origin "{NEW_ORIGIN}"\n')
    code, out = both(binary, ["--key", r["new_vkey"], "old.json", "new.json"], workdir)
    assert code == 1 and out.splitlines() == [
        f'FAILED: old.json: entry origin "{OLD_ORIGIN}" is not the log origin "{NEW_ORIGIN}"',
        "FAILED: 1 of 2 receipts failed",
    ]


def test_the_chain_verifies_alone_and_with_receipts(binary, rotated, workdir):
    r = rotated
    write(workdir, "rotation-in.json", json.dumps(r["record"], indent=2))
    write(workdir, "new.json", r["new_receipt"])
    keys = ["--key", r["old_vkey"], "--log-key", r["new_vkey"]]
    size = r["record"]["predecessor"]["size"]
    line = (f"OK: chain: {OLD_ORIGIN} ends at tree size {size} naming {NEW_ORIGIN}, "
            "whose entry 0 commits to that final checkpoint")
    assert both(binary, [*keys, "--chain", "rotation-in.json"], workdir) == (0, line + "\n")
    code, out = both(binary, [*keys, "--chain", "rotation-in.json", "new.json"], workdir)
    assert code == 0 and out.startswith(line + "; entry 1 (echo executed")
    policy = f"log {r['old_vkey']}\nlog {r['new_vkey']}\nquorum none\n"
    write(workdir, "policy.txt", policy)
    assert both(binary, ["--policy", "policy.txt", "--chain", "rotation-in.json"], workdir) == (0, line + "\n")
    for key, which, origin in ((r["new_vkey"], "retired", OLD_ORIGIN), (r["old_vkey"], "successor", NEW_ORIGIN)):
        assert both(binary, ["--key", key, "--chain", "rotation-in.json"], workdir) == (
            1, f'FAILED: chain: no key given for the {which} log "{origin}"\n')


def _broken(record: dict, new_receipt: dict) -> dict[str, tuple[dict | str, str]]:
    """Records broken one step at a time, each with the line both give."""
    size = record["predecessor"]["size"]
    tampered = copy.deepcopy(record)
    tampered["log_end"]["checkpoint"] = tampered["log_end"]["checkpoint"].replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
    swapped = copy.deepcopy(record)
    swapped["log_end"], swapped["log_start"] = record["log_start"], record["log_end"]
    same_log = copy.deepcopy(record)
    same_log["log_start"] = record["log_end"]
    not_entry_0 = copy.deepcopy(record)
    not_entry_0["log_start"] = new_receipt
    successor = copy.deepcopy(record)
    successor["successor"]["origin"] = "rotation.test/elsewhere"
    predecessor = copy.deepcopy(record)
    predecessor["predecessor"]["size"] = size + 1
    unknown = copy.deepcopy(record)
    unknown["extra"] = 1
    return {
        "tampered": (tampered, "FAILED: chain: predecessor's log_end receipt: checkpoint: checkpoint signature is invalid"),
        # Each receipt is checked with the key of its origin: the successor's
        # entry 0 verifies, and is no log_end entry.
        "swapped": (swapped, "FAILED: chain: the predecessor's receipt is not of a log_end entry"),
        # Both receipts of the retired log: its key is taken for the successor's.
        "same-log": (same_log, f"FAILED: chain: the log_end entry does not name the successor {OLD_ORIGIN}"),
        "not-entry-0": (not_entry_0, "FAILED: chain: the successor's receipt is not of its entry 0, a log_start entry"),
        "successor-member": (successor, "FAILED: chain: the record's successor member is not the one"),
        "predecessor-member": (predecessor, "FAILED: chain: the record's predecessor member is not the one"),
        "unknown-member": (unknown, "FAILED: rotation-in.json: not a rotation record: "),
        "not-json": ("{", "FAILED: rotation-in.json: not a rotation record: "),
    }


@pytest.mark.parametrize(
    "name",
    ["tampered", "swapped", "same-log", "not-entry-0", "successor-member", "predecessor-member", "unknown-member", "not-json"],
)
def test_a_broken_chain_is_refused_with_the_same_line(name, binary, rotated, workdir):
    r = rotated
    record, expected = _broken(r["record"], r["new_receipt"])[name]
    write(workdir, "rotation-in.json", record)
    code, out = both(binary, ["--key", r["old_vkey"], "--key", r["new_vkey"], "--chain", "rotation-in.json"], workdir)
    assert code == 1 and out.startswith(expected), out
    assert out.count("\n") == 1


def test_a_chain_that_fails_prints_no_receipt_line(binary, rotated, workdir):
    r = rotated
    record, _ = _broken(r["record"], r["new_receipt"])["not-entry-0"]
    write(workdir, "rotation-in.json", record)
    write(workdir, "new.json", r["new_receipt"])
    args = ["--key", r["old_vkey"], "--key", r["new_vkey"], "--chain", "rotation-in.json", "new.json"]
    assert both(binary, args, workdir) == (
        1, "FAILED: chain: the successor's receipt is not of its entry 0, a log_start entry\n")


@pytest.mark.parametrize("args", [["--key", "k"], ["--chain", "c.json"], ["--key", "k", "--policy", "p", "--chain", "c"]])
def test_chain_argument_errors_exit_2_in_both(args, binary, workdir):
    import sys

    rust_code, _ = run_rust(binary, args, workdir)
    py = subprocess.run([sys.executable, "-m", "openexec_client.verify", *args], cwd=workdir, capture_output=True)
    assert rust_code == py.returncode == 2


# Links made here from the spec's steps, with test keys: each step's
# refusal, including those a real rotation never writes (a log_end entry
# that is not last, a log_start naming another checkpoint).
def _append_link(log: Log, action: str, reason: str, payload: dict, exec_id: str, outcome: str = "executed") -> None:
    """Appends the link entry of ``payload`` (docs/FORMATS.md §18)."""
    from openexec_client.verify._rotation import _link

    made = _link(action, reason, payload, exec_id)
    log.append(
        action=action, reason=reason, nonce=exec_id, exec_id=exec_id, tenant="", outcome=outcome,
        request_hash=made.request_hash, payload_commitment=made.payload_commitment,
    )


def _synthetic(successor_key=None, predecessor_size_delta: int = 0, after_end: int = 0, outcome: str = "executed"):
    """(record, old vkey, new vkey) of a retired log of two entries and its
    log_end, and a successor of its log_start, broken as the arguments say."""
    from openexec_client.verify import NoteKey
    from openexec_client.verify._note import open_checkpoint
    from openexec_client.verify._rotation import Predecessor, Successor

    old = Log(Signer.seeded("synthetic.test/log", "old"))
    new = Log(Signer.seeded("synthetic.test/g2", "new"))
    named = Successor.of(NoteKey.parse(successor_key or new.signer.vkey, 1))
    old.append()
    old.append()
    _append_link(old, "openexec/log_end", "log_end", named.payload(), "x-end", outcome)
    final = len(old.entries)
    for _ in range(after_end):
        old.append()
    log_end = old.receipt(final - 1)
    old_key = NoteKey.parse(old.signer.vkey, 1)
    pred = Predecessor.of(old_key, open_checkpoint(log_end["checkpoint"].encode(), old_key))
    named_pred = Predecessor(pred.checkpoint, pred.origin, pred.root, pred.size + predecessor_size_delta, pred.vkey)
    _append_link(new, "openexec/log_start", "log_start", named_pred.payload(), "x-start")
    record = {
        "format": "openexec-rotation/v1",
        "successor": named.payload()["successor"],
        "predecessor": pred.payload()["predecessor"],
        "log_end": log_end,
        "log_start": new.receipt(0),
    }
    return record, old.signer.vkey, new.signer.vkey


SYNTHETIC = {
    "valid": ({}, "OK: chain: synthetic.test/log ends at tree size 3 naming synthetic.test/g2, whose entry 0"),
    "not-final": ({"after_end": 1}, "FAILED: chain: the log_end entry 2 is not the last entry of the final checkpoint (size 4)"),
    "not-executed": ({"outcome": "failed"}, "FAILED: chain: the predecessor's receipt is not of a log_end entry"),
    "wrong-successor": (
        {"successor_key": Signer.seeded("synthetic.test/g2", "other").vkey},
        "FAILED: chain: the log_end entry does not name the successor synthetic.test/g2",
    ),
    "wrong-predecessor": (
        {"predecessor_size_delta": 1},
        "FAILED: chain: the log_start entry does not commit to the final checkpoint of synthetic.test/log",
    ),
}


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_each_step_of_a_synthetic_link(name, binary, workdir):
    kwargs, expected = SYNTHETIC[name]
    record, old_vkey, new_vkey = _synthetic(**kwargs)
    write(workdir, "link.json", record)
    code, out = both(binary, ["--key", old_vkey, "--key", new_vkey, "--chain", "link.json"], workdir)
    assert (code, out.startswith(expected)) == (0 if name == "valid" else 1, True), out


def test_a_successor_receipt_that_does_not_verify(binary, workdir):
    record, old_vkey, new_vkey = _synthetic()
    sig = record["log_start"]["entry_signature"]
    record["log_start"]["entry_signature"] = ("B" if sig[0] == "A" else "A") + sig[1:]
    write(workdir, "link.json", record)
    assert both(binary, ["--key", old_vkey, "--key", new_vkey, "--chain", "link.json"], workdir) == (
        1, "FAILED: chain: successor's log_start receipt: entry signature is invalid\n")
