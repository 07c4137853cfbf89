"""Every verifier case the cross-check runs: the project's vectors as they
are, and variants broken one check at a time (made here, from the
vectors and from a test log signed with the vector key)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from _log import B64, ORIGIN, Log, Signer, checkpoint_body, dumps

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "tests" / "vectors"
OE = VECTORS / "openexec"
C2SP = VECTORS / "c2sp"


@dataclass
class Case:
    name: str
    args: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)


def _flip_b64(text: str, pos: int) -> str:
    c = text[pos]
    return text[:pos] + ("B" if c == "A" else "A") + text[pos + 1 :]


def _vector_receipts() -> dict[str, dict]:
    """The vector receipt of entry 1, and receipts of entries 0 and 2 built
    from the vectors' entries, signatures, proofs and checkpoint."""
    receipt = json.loads((OE / "receipt.json").read_text())
    entries = json.loads((OE / "entries.json").read_text())["entries"]
    tree = json.loads((OE / "tree.json").read_text())
    proofs = {p["leaf_index"]: p["hashes"] for p in tree["inclusion"] if p["tree_size"] == 3}
    salts = {"payload": B64(b"\x01" * 32), "result": B64(b"\x02" * 32)}
    out = {"r1": receipt}
    for i in (0, 2):
        out[f"r{i}"] = {
            "format": "openexec-receipt/v1",
            "entry": entries[i]["entry"],
            "entry_signature": entries[i]["signature"]["base64"] if isinstance(entries[i]["signature"], dict) else entries[i]["signature"],
            "leaf_index": i,
            "inclusion_proof": {"tree_size": 3, "hashes": proofs[i]},
            "checkpoint": receipt["checkpoint"],
            "salts": salts,
        }
    return out


def _with_entry(receipt: dict, entry_text: str) -> dict:
    r = copy.deepcopy(receipt)
    r["entry"] = entry_text
    return r


def _entry_json_variants(entry: str) -> list[tuple[str, str]]:
    """Entry texts broken at the JSON level, each reaching one check."""
    e = json.loads(entry)
    canon = lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)  # noqa: E731
    out = []
    for key in list(e):
        d = dict(e)
        del d[key]
        out.append((f"missing-{key}", canon(d)))
        for label, value in (("str", "x"), ("int", 7), ("null", None), ("list", []), ("float", 1.5), ("bool", True)):
            d = dict(e)
            d[key] = value
            out.append((f"{key}-as-{label}", canon(d)))
    edits = {
        "v2": {"v": 2}, "v0": {"v": 0}, "vbig": {"v": 2**32}, "index-max": {"index": 2**53},
        "index-neg": {"index": -1}, "index-huge": {"index": 2**64}, "reason-upper": {"reason": "Bad"},
        "reason-long": {"reason": "a" * 65}, "reason-empty": {"reason": ""}, "origin-empty": {"origin": ""},
        "origin-other": {"origin": "other.example/log"}, "replay-on-rejected": {"replay_of": {"index": 0, "leaf_hash": B64(bytes(32))}},
        "principal-upper": {"principal": "ABCDEF0123456789"}, "principal-short": {"principal": "abc"},
        "principal-ok": {"principal": "0123456789abcdef"}, "effects-on-rejected": {"effects": "at-most-once"},
        "effects-bogus": {"effects": "sometimes"}, "effects-null": {"effects": None}, "registry-null": {"registry": None},
        "principal-null": {"principal": None}, "replay-null": {"replay_of": None},
        "outcome-bogus": {"outcome": "done"}, "outcome-replayed": {"outcome": "replayed"},
        "outcome-executed": {"outcome": "executed"}, "approval-kind-bogus": {"approval": {"kind": "v3", "id": None, "key_id": None, "expires_at": None}},
        "approval-extra": {"approval": {"kind": "none", "id": None, "key_id": None, "expires_at": None, "x": 1}},
        "approval-short": {"approval": {"kind": "none"}}, "approval-nokind": {"approval": {"id": None, "key_id": None, "expires_at": None}},
        "time-z-seconds": {"time": "2026-11-21T12:00:00Z"}, "time-offset": {"time": "2026-11-21T13:00:00.000000+01:00"},
        "time-lower": {"time": "2026-11-21t12:00:00.000000z"}, "time-nanos": {"time": "2026-11-21T12:00:00.000000001Z"},
        "time-month13": {"time": "2026-13-21T12:00:00.000000Z"}, "time-feb30": {"time": "2026-02-30T12:00:00.000000Z"},
        "time-garbage": {"time": "yesterday"}, "time-nozone": {"time": "2026-11-21T12:00:00.000000"},
        "prev-short": {"prev": B64(bytes(31))}, "prev-nonzero": {"prev": B64(bytes([1]) * 32)}, "prev-trailing-bits": {"prev": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="},
        "hash-nopad": {"request_hash": e["request_hash"].rstrip("=")}, "extra-field": {"zzz": 1},
        "tenant-unicode": {"tenant": "tenant-é\u2028"}, "tenant-control": {"tenant": "a\u0001b\u007f"},
        "result-commitment-set": {"result_commitment": B64(bytes(32))},
        "replay-of-extra": {"outcome": "replayed", "replay_of": {"index": 0, "leaf_hash": B64(bytes(32)), "x": 1}},
        "replay-of-self": {"outcome": "replayed", "replay_of": {"index": 1, "leaf_hash": B64(bytes(32))}},
        "replay-of-missing": {"outcome": "replayed", "replay_of": {"index": 0}},
        "redacted-ok": {"outcome": "redacted", "reason": "legal", "redacts": {"index": 0, "leaf_hash": B64(bytes(32))}},
        "redacted-reason-other": {"outcome": "redacted", "reason": "whim", "redacts": {"index": 0, "leaf_hash": B64(bytes(32))}},
        "redacted-without-redacts": {"outcome": "redacted", "reason": "legal"},
        "redacts-on-executed": {"outcome": "executed", "redacts": {"index": 0, "leaf_hash": B64(bytes(32))}},
        "redacts-self": {"outcome": "redacted", "reason": "legal", "redacts": {"index": 1, "leaf_hash": B64(bytes(32))}},
        "redacts-null": {"redacts": None},
        "redacts-missing-hash": {"outcome": "redacted", "reason": "legal", "redacts": {"index": 0}},
        "redacted-with-effects": {"outcome": "redacted", "reason": "other", "effects": "none", "redacts": {"index": 0, "leaf_hash": B64(bytes(32))}},
    }
    for label, change in edits.items():
        d = dict(e)
        d.update(change)
        out.append((label, canon(d)))
    # Text-level: valid JSON, not the canonical text.
    out += [
        ("spaced", json.dumps(e, sort_keys=True)),
        ("unsorted", json.dumps(dict(reversed(list(e.items()))), separators=(",", ":"))),
        ("escaped-e", entry.replace('"echo"', '"\\u0065cho"').replace('"counter"', '"\\u0063ounter"')),
        ("escaped-slash", entry.replace("/openexec", "\\/openexec", 1)),
        ("trailing-space", entry + " "),
        ("leading-newline", "\n" + entry),
        ("index-float", entry.replace('"index":1', '"index":1.0').replace('"index":0', '"index":0.0').replace('"index":2', '"index":2.0')),
        ("index-exp", entry.replace('"index":1', '"index":1e0')),
        ("index-neg-zero", entry.replace('"index":0', '"index":-0')),
        ("dup-key", entry[:-1] + ',"v":1}'),
        ("dup-key-other", entry[:-1] + ',"v":2}'),
        ("lone-surrogate", entry.replace('"tenant-001"', '"\\ud800"')),
        ("pair-surrogate", entry.replace('"tenant-001"', '"\\ud83d\\ude00"')),
        ("truncated", entry[:-1]),
        ("not-json", "entry"),
        ("empty", ""),
        ("array", "[]"),
        ("nan", entry.replace('"index":1', '"index":NaN')),
        ("bom", "\ufeff" + entry),
    ]
    return out


def _byte_flips(text: str, step: int) -> list[tuple[str, str]]:
    out = []
    for pos in range(0, len(text), step):
        c = text[pos]
        repl = "x" if c != "x" else "y"
        out.append((f"char{pos}", text[:pos] + repl + text[pos + 1 :]))
    return out


def _small_order_r_signature(seed: bytes, message: bytes) -> bytes:
    """An Ed25519 signature with R = the identity point that plain
    (cofactorless) verification accepts and strict verification refuses:
    S = k·a mod L makes [S]B − [k]A the identity."""
    L = 2**252 + 27742317777372353535851937790883648493
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization

    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    r = (1).to_bytes(32, "little")  # the identity
    k = int.from_bytes(hashlib.sha512(r + public + message).digest(), "little") % L
    s = (k * a) % L
    return r + s.to_bytes(32, "little")


def _weak_key_forgery() -> tuple[str, dict]:
    """A verifier key of small order (the identity) and a receipt whose
    every signature is (R = B, S = 1), valid for any message under that key
    by plain verification; a strict verifier refuses it."""
    from openexec_client.verify._keys import key_id

    public = (1).to_bytes(32, "little")
    vkey = f"{ORIGIN}+{key_id(ORIGIN, 1, public):08x}+{B64(bytes([1]) + public)}"
    base_point = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")
    sig = base_point + (1).to_bytes(32, "little")
    receipt = _vector_receipts()["r1"]
    body = receipt["checkpoint"].split("\n\n")[0] + "\n"
    kid = key_id(ORIGIN, 1, public).to_bytes(4, "big")
    receipt = dict(receipt, entry_signature=B64(sig))
    receipt["checkpoint"] = body + "\n" + f"— {ORIGIN} {B64(kid + sig)}\n"
    return vkey, receipt


def _receipt_cases(vkey: str) -> list[Case]:
    rs = _vector_receipts()
    r1 = rs["r1"]
    cases = [Case(f"vector-{k}", ["--key", "k.txt", "r.json"], {"r.json": dumps(v)}) for k, v in rs.items()]
    cases.append(Case("vector-file-as-is", ["--key", "k.txt", "r.json"], {"r.json": (OE / "receipt.json").read_text()}))
    cases.append(Case("vector-tlog-proof", ["--key", "k.txt", "r.tlog"], {"r.tlog": (OE / "receipt.tlog-proof").read_text()}))
    cases.append(Case("vector-inline-key", ["--key", vkey, "r.json"], {"r.json": dumps(r1)}))
    for name, r in rs.items():
        for label, text in _entry_json_variants(r["entry"]):
            cases.append(Case(f"entry-{name}-{label}", ["--key", "k.txt", "r.json"], {"r.json": dumps(_with_entry(r, text))}))
    for label, text in _byte_flips(r1["entry"], 23):
        cases.append(Case(f"entry-flip-{label}", ["--key", "k.txt", "r.json"], {"r.json": dumps(_with_entry(r1, text))}))
    # Top-level members.
    top = {
        "format-v2": {"format": "openexec-receipt/v2"}, "format-int": {"format": 1},
        "leaf-0": {"leaf_index": 0}, "leaf-2": {"leaf_index": 2}, "leaf-neg": {"leaf_index": -1},
        "leaf-str": {"leaf_index": "1"}, "leaf-float": {"leaf_index": 1.0}, "leaf-huge": {"leaf_index": 2**64},
        "size-2": {"inclusion_proof": {"tree_size": 2, "hashes": r1["inclusion_proof"]["hashes"]}},
        "size-4": {"inclusion_proof": {"tree_size": 4, "hashes": r1["inclusion_proof"]["hashes"]}},
        "proof-short": {"inclusion_proof": {"tree_size": 3, "hashes": r1["inclusion_proof"]["hashes"][:1]}},
        "proof-long": {"inclusion_proof": {"tree_size": 3, "hashes": r1["inclusion_proof"]["hashes"] * 2}},
        "proof-swapped": {"inclusion_proof": {"tree_size": 3, "hashes": r1["inclusion_proof"]["hashes"][::-1]}},
        "proof-129": {"inclusion_proof": {"tree_size": 3, "hashes": r1["inclusion_proof"]["hashes"][:1] * 129}},
        "proof-bad-b64": {"inclusion_proof": {"tree_size": 3, "hashes": ["Y4A6ZTEL6T+0AuSSX8JnGEJVCZPjk7YSTyE0JWEefrJ=", r1["inclusion_proof"]["hashes"][1]]}},
        "proof-31": {"inclusion_proof": {"tree_size": 3, "hashes": [B64(bytes(31))]}},
        "proof-extra": {"inclusion_proof": {"tree_size": 3, "hashes": [], "x": 1}},
        "proof-nolist": {"inclusion_proof": {"tree_size": 3, "hashes": "x"}},
        "salts-null": {"salts": None}, "salts-int": {"salts": {"payload": 1}}, "salts-empty": {"salts": {}},
        "salts-extra": {"salts": {"payload": "x", "result": None, "y": 1}}, "salts-noresult": {"salts": {"payload": "x"}},
        "unknown-member": {"extra": 1}, "checkpoint-int": {"checkpoint": 3},
        "sig-empty": {"entry_signature": ""}, "sig-short": {"entry_signature": B64(bytes(63))},
        "sig-long": {"entry_signature": B64(bytes(65))}, "sig-zero": {"entry_signature": B64(bytes(64))},
        "sig-space": {"entry_signature": " " + r1["entry_signature"]},
        "sig-trailing-bits": {"entry_signature": r1["entry_signature"][:-3] + "B=="},
    }
    for label, change in top.items():
        r = dict(r1)
        r.update(change)
        cases.append(Case(f"top-{label}", ["--key", "k.txt", "r.json"], {"r.json": dumps(r)}))
    for key in ("format", "entry", "entry_signature", "leaf_index", "inclusion_proof", "checkpoint", "salts"):
        r = {k: v for k, v in r1.items() if k != key}
        cases.append(Case(f"top-missing-{key}", ["--key", "k.txt", "r.json"], {"r.json": dumps(r)}))
    for pos in range(0, 88, 7):
        r = dict(r1, entry_signature=_flip_b64(r1["entry_signature"], pos))
        cases.append(Case(f"sig-flip-{pos}", ["--key", "k.txt", "r.json"], {"r.json": dumps(r)}))
    entry1 = r1["entry"].encode()
    forged = _small_order_r_signature(bytes([0x42]) * 32, b"OpenExec entry signature v1\n" + entry1)
    cases.append(Case("sig-small-order-r", ["--key", "k.txt", "r.json"], {"r.json": dumps(dict(r1, entry_signature=B64(forged)))}))
    weak_vkey, weak_receipt = _weak_key_forgery()
    cases.append(Case("weak-key-forgery", ["--key", weak_vkey, "r.json"], {"r.json": dumps(weak_receipt)}))
    # Wrappers and files.
    r1_text = dumps(r1)
    cases += [
        Case("wrapped-response", ["--key", "k.txt", "r.json"], {"r.json": dumps({"outcome": "rejected", "receipt": r1, "code": "approval_expired"})}),
        Case("wrapped-bad", ["--key", "k.txt", "r.json"], {"r.json": dumps({"receipt": dict(r1, leaf_index="x")})}),
        Case("wrapped-string", ["--key", "k.txt", "r.json"], {"r.json": dumps({"receipt": "x"})}),
        Case("json-array", ["--key", "k.txt", "r.json"], {"r.json": "[1,2]"}),
        Case("json-dup-top", ["--key", "k.txt", "r.json"], {"r.json": r1_text[:-1] + ', "format": "openexec-receipt/v1"}'}),
        Case("json-dup-top-bad", ["--key", "k.txt", "r.json"], {"r.json": r1_text[:-1] + ', "format": "x"}'}),
        Case("not-json", ["--key", "k.txt", "r.json"], {"r.json": "hello"}),
        Case("empty-file", ["--key", "k.txt", "r.json"], {"r.json": ""}),
        Case("blank-file", ["--key", "k.txt", "r.json"], {"r.json": "\n \n"}),
        Case("invalid-utf8", ["--key", "k.txt", "r.json"], {"r.json": b"\xff\xfe"}),
        Case("missing-file", ["--key", "k.txt", "nope.json"]),
        Case("jsonl", ["--key", "k.txt", "r.jsonl"], {"r.jsonl": "\n".join(dumps(r) for r in rs.values()) + "\n"}),
        Case("jsonl-crlf-blank", ["--key", "k.txt", "r.jsonl"], {"r.jsonl": "\r\n".join([dumps(rs["r0"]), "", "  ", dumps(rs["r2"])]) + "\r\n"}),
        Case("jsonl-mixed", ["--key", "k.txt", "r.jsonl"], {"r.jsonl": "\n".join([dumps(rs["r0"]), "garbage", dumps(dict(r1, leaf_index=2)), dumps({"receipt": rs["r2"]})])}),
        Case("two-files", ["--key", "k.txt", "a.json", "b.tlog"], {"a.json": dumps(rs["r0"]), "b.tlog": (OE / "receipt.tlog-proof").read_text()}),
        Case("two-files-one-bad", ["--key", "k.txt", "a.json", "b.json"], {"a.json": dumps(rs["r0"]), "b.json": "{}"}),
    ]
    return cases


def _note_variants(note: str, log: Log) -> list[tuple[str, str]]:
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    line = sigs
    other = Signer("example.com/openexec", hashlib.sha256(b"other").digest())
    stranger = Signer("stranger.example", hashlib.sha256(b"stranger").digest())
    out = [
        ("size", note.replace("\n3\n", "\n4\n", 1)),
        ("root", body.replace("V", "W", 1) + "\n" + line),
        ("origin", note.replace("example.com/openexec\n", "example.com/openexeC\n", 1)),
        ("no-sig", body + "\n"),
        ("no-blank", body + line),
        ("unknown-signer-after", note + stranger.note_line(body.encode())),
        ("unknown-signer-before", body + "\n" + stranger.note_line(body.encode()) + line),
        ("dup-log-garbage-after", note + f"— {ORIGIN} {B64(log.signer.key_id.to_bytes(4, 'big') + bytes(64))}\n"),
        ("dup-log-garbage-before", body + "\n" + f"— {ORIGIN} {B64(log.signer.key_id.to_bytes(4, 'big') + bytes(64))}\n" + line),
        ("dup-log-same", note + line),
        ("short-sig-line", note + "— a AAAA\n"),
        ("bad-name-line", note + "— a+b " + B64(bytes(68)) + "\n"),
        ("no-dash", body + "\n" + line[2:]),
        ("crlf", note.replace("\n", "\r\n")),
        ("tab", note.replace("openexec\n", "openexec\t\n", 1)),
        ("del", note.replace("openexec\n", "openexec\x7f\n", 1)),
        ("no-final-newline", note[:-1]),
        ("trailing-blank", note + "\n"),
        ("many-lines", note + stranger.note_line(body.encode()) * 100),
        ("other-key-same-name", body + "\n" + other.note_line(body.encode())),
        ("sig-flip", body + "\n" + line[:40] + ("A" if line[40] != "A" else "B") + line[41:]),
        ("sig-bad-b64", body + "\n" + line.replace("=\n", "\n")),
        ("short-log-sig", body + "\n" + f"— {ORIGIN} {B64(log.signer.key_id.to_bytes(4, 'big') + bytes(8))}\n"),
        ("empty", ""),
        ("garbage", "garbage"),
    ]
    # Re-signed bodies: each reaches the body and origin checks.
    for label, text in (
        ("ext-line", body + "ext\n"),
        ("blank-inside", body + "\next\n"),
        ("size-leading-zero", body.replace("\n3\n", "\n03\n", 1)),
        ("size-plus", body.replace("\n3\n", "\n+3\n", 1)),
        ("size-huge", body.replace("\n3\n", "\n18446744073709551616\n", 1)),
        ("root-short", body.split("\n")[0] + "\n3\n" + B64(bytes(31)) + "\n"),
        ("two-lines", "\n".join(body.split("\n")[:2]) + "\n"),
        ("wrong-origin", body.replace(ORIGIN, "other.example/log", 1)),
    ):
        out.append((f"resigned-{label}", text + "\n" + log.signer.note_line(text.encode())))
    return out


def _checkpoint_cases() -> list[Case]:
    rs = _vector_receipts()
    log = Log()
    cases = []
    for label, note in _note_variants(rs["r1"]["checkpoint"], log):
        r = dict(rs["r1"], checkpoint=note)
        cases.append(Case(f"checkpoint-{label}", ["--key", "k.txt", "r.json"], {"r.json": dumps(r)}))
    tlog = (OE / "receipt.tlog-proof").read_text()
    head, _, note = tlog.partition("\n\n")
    extra_line = tlog.split("\n")[1]
    bundle = json.loads(base64.b64decode(extra_line[6:]))
    nb = lambda b: "extra " + B64(json.dumps(b, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode())  # noqa: E731
    for label, text in (
        ("header", tlog.replace("tlog-proof@v1", "tlog-proof@v2", 1)),
        ("no-extra", tlog.replace(extra_line + "\n", "", 1)),
        ("extra-not-b64", tlog.replace(extra_line, "extra !!", 1)),
        ("extra-spaced", tlog.replace(extra_line, "extra " + B64(json.dumps(bundle).encode()), 1)),
        ("extra-salts-null", tlog.replace(extra_line, nb(dict(bundle, salts=None)), 1)),
        ("extra-no-salts", tlog.replace(extra_line, nb({k: v for k, v in bundle.items() if k != "salts"}), 1)),
        ("extra-unknown", tlog.replace(extra_line, nb(dict(bundle, x=1)), 1)),
        ("extra-no-result", tlog.replace(extra_line, nb(dict(bundle, salts={"payload": bundle["salts"]["payload"]})), 1)),
        ("extra-tampered-entry", tlog.replace(extra_line, nb(dict(bundle, entry=bundle["entry"].replace("counter", "countex"))), 1)),
        ("extra-raw", tlog.replace(extra_line, "extra " + B64(b"openexec-leaf-1"), 1)),
        ("index-leading-zero", tlog.replace("\nindex 1\n", "\nindex 01\n", 1)),
        ("index-2", tlog.replace("\nindex 1\n", "\nindex 2\n", 1)),
        ("index-neg", tlog.replace("\nindex 1\n", "\nindex -1\n", 1)),
        ("index-space", tlog.replace("\nindex 1\n", "\nindex  1\n", 1)),
        ("proof-bad", tlog.replace("FoklZ8BAKG2VpvxHqtzEMYTUAp59mBpQ0XWX6fgu43w=\n", "Foklz\n", 1)),
        ("proof-dropped", tlog.replace("FoklZ8BAKG2VpvxHqtzEMYTUAp59mBpQ0XWX6fgu43w=\n", "", 1)),
        ("no-blank", head + "\n" + note),
        ("note-bad", head + "\n\nexample.com/openexec\n3\n"),
        ("note-body-bad", head + "\n\n" + note.replace("\n3\n", "\nthree\n", 1)),
        ("crlf", tlog.replace("\n", "\r\n")),
        ("truncated", tlog[:60]),
        ("header-only", "c2sp.org/tlog-proof@v1"),
    ):
        cases.append(Case(f"tlog-{label}", ["--key", "k.txt", "r.tlog"], {"r.tlog": text}))
    gen = C2SP / "generated"
    for name in ("leaf-7-of-13.tlog-proof", "leaf-0-of-1.tlog-proof"):
        cases.append(Case(f"c2sp-{name}", ["--key", "c2sp.vkey", "r.tlog"], {"r.tlog": (gen / name).read_text(), "c2sp.vkey": (gen / "log.vkey").read_text()}))
    cases.append(Case("c2sp-spec-tlog-proof", ["--key", "c2sp.vkey", "r.tlog"], {"r.tlog": (C2SP / "spec" / "tlog-proof-example.tlog-proof").read_text(), "c2sp.vkey": (gen / "log.vkey").read_text()}))
    return cases


def _key_cases(vkey: str) -> list[Case]:
    r = dumps(_vector_receipts()["r1"])
    name, kid, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    from openexec_client.verify._keys import key_id

    off_curve = next(bytes([i]) + bytes(31) for i in range(2, 50) if not _on_curve(bytes([i]) + bytes(31)))
    witness = Signer.seeded("w0.example", "w0", 4)
    keys = {
        "padded-file": ("k2.txt", "\n  " + vkey + " \n\n"),
        "malformed": ("a+b+c", None), "no-plus": ("k3.txt", "no key here"),
        "wrong-id": (f"{name}+{(int(kid, 16) ^ 1):08x}+{b64}", None),
        "id-upper": (f"{name}+{kid.upper()}+{b64}", None),
        "id-short": (f"{name}+{kid[:7]}+{b64}", None),
        "alg-4": (f"{name}+{kid}+{B64(bytes([4]) + raw[1:])}", None),
        "witness-key": (witness.vkey, None),
        "bad-b64": (f"{name}+{kid}+{b64[:-1]}", None),
        "key-31": (f"{name}+{kid}+{B64(raw[:-1])}", None),
        "off-curve": (f"{name}+{key_id(name, 1, off_curve):08x}+{B64(bytes([1]) + off_curve)}", None),
        "space-name": (f"exa mple+{kid}+{b64}", None),
        "other-name": (Signer("example.org/log", bytes([0x42]) * 32).vkey, None),
        "missing-file": ("nope.txt", None),
    }
    cases = []
    for label, (arg, content) in keys.items():
        files = {"r.json": r}
        if content is not None:
            files[arg] = content
        cases.append(Case(f"key-{label}", ["--key", arg, "r.json"], files))
    return cases


def _on_curve(encoded: bytes) -> bool:
    from openexec_client.verify._keys import is_curve_point

    return is_curve_point(encoded)


def _built_log() -> tuple[Log, list[Signer]]:
    log = Log()
    log.append(outcome="executed", effects="none", registry=B64(hashlib.sha256(b"reg").digest()), principal="0123456789abcdef")
    log.append(outcome="rejected", reason="approval_expired")
    log.append(outcome="replayed", reason="replay_of_executed", replay_of={"index": 0, "leaf_hash": B64(log.leaves[0])})
    for i in range(3, 9):
        log.append(outcome="failed" if i % 2 else "interrupted", reason="handler_error", effects="at-most-once")
    log.append(outcome="redacted", reason="personal_data", redacts={"index": 0, "leaf_hash": B64(log.leaves[0])})
    witnesses = [Signer.seeded(f"w{i}.example", f"w{i}", 4) for i in range(3)]
    return log, witnesses


def _trusted_cases() -> list[Case]:
    log, witnesses = _built_log()
    key = log.signer.vkey
    cases = []
    for i in range(len(log.entries)):
        cases.append(Case(f"built-{i}", ["--key", key, "r.json"], {"r.json": dumps(log.receipt(i))}))
    r = dumps(log.receipt(1, size=3))
    later = log.checkpoint(8)
    proof = log.consistency(3, 8)
    fork = Log()
    for e in log.entries[:3]:
        fork.entries.append(e)
    fork.append(action="forked")
    wrong = list(proof)
    wrong[0] = B64(bytes(32))
    specs = {
        "consistent": (later, "\n".join(proof) + "\n"),
        "consistent-json": (later, json.dumps({"from": 3, "to": 8, "hashes": proof})),
        "consistent-list": (later, json.dumps(proof)),
        "no-proof": (later, None),
        "wrong-proof": (later, "\n".join(wrong)),
        "short-proof": (later, "\n".join(proof[:-1])),
        "bad-line": (later, "xyz\n"),
        "bad-json": (later, json.dumps({"hashes": ["x"]})),
        "json-object": (later, json.dumps({"a": 1})),
        "same-size": (log.checkpoint(3), None),
        "same-size-proof": (log.checkpoint(3), "\n".join(proof)),
        "smaller": (log.checkpoint(2), ""),
        "zero": (log.checkpoint(0), ""),
        "fork": (fork.checkpoint(4), "\n".join(fork.consistency(3, 4))),
        "fork-same-size": (fork.checkpoint(3).replace("\n3\n", "\n3\n"), None),
        "bad-signature": (later.replace("\n8\n", "\n9\n"), "\n".join(proof)),
        "foreign": ((C2SP / "generated" / "checkpoint-13.note").read_text(), ""),
        "cosigned-later": (later + witnesses[0].cosign_line(checkpoint_body(ORIGIN, 8, _root(log, 8)), 1_700_000_000), "\n".join(proof)),
    }
    for label, (checkpoint, consistency) in specs.items():
        files = {"r.json": r, "later.note": checkpoint}
        args = ["--key", key, "r.json", "--checkpoint", "later.note"]
        if consistency is not None:
            files["proof.txt"] = consistency
            args += ["--consistency", "proof.txt"]
        cases.append(Case(f"trusted-{label}", args, files))
    cases.append(Case("trusted-missing", ["--key", key, "r.json", "--checkpoint", "nope.note"], {"r.json": r}))
    cases.append(Case("trusted-jsonl", ["--key", key, "r.jsonl", "--checkpoint", "later.note", "--consistency", "p.txt"],
                      {"r.jsonl": "\n".join([r, dumps(log.receipt(0, size=3)), dumps(log.receipt(2, size=3))]), "later.note": later, "p.txt": "\n".join(proof)}))
    return cases


def _root(log: Log, size: int) -> bytes:
    from openexec_client.verify._merkle import root_of

    return root_of(log.leaves[:size])


def _policy_cases() -> list[Case]:
    log, w = _built_log()
    body8 = checkpoint_body(ORIGIN, 8, _root(log, 8))
    body3 = checkpoint_body(ORIGIN, 3, _root(log, 3))
    t = 1_700_000_000

    def cosigned(size: int, body: bytes, by: list[int], extra: str = "") -> str:
        return log.checkpoint(size) + "".join(w[i].cosign_line(body, t + i) for i in by) + extra

    head = f"# test policy\nlog {log.signer.vkey} https://log.example\n\n" + "".join(f"witness W{i}\t{s.vkey}\n" for i, s in enumerate(w))
    policies = {
        "none": head + "quorum none\n",
        "w0": head + "quorum W0\n",
        "w1": head + "quorum W1\n",
        "two-of-three": head + "group G 2 W0 W1 W2\nquorum G\n",
        "all": head + "group G all W0 W1 W2\nquorum G\n",
        "any": head + "group G any W1\nquorum G\n",
        "nested": head + "group A any W0 W1\ngroup B all A W2\nquorum B\n",
        "no-log": f"witness W0 {w[0].vkey}\nquorum none\n",
        "err-no-quorum": head,
        "err-undefined-quorum": head + "quorum X\n",
        "err-undefined-member": head + "group G 2 W0 X\nquorum G\n",
        "err-member-twice": head + "group G 2 W0 W0\nquorum G\n",
        "err-k-too-big": head + "group G 4 W0 W1 W2\nquorum G\n",
        "err-k-zero": head + "group G 0 W0\nquorum G\n",
        "err-k-leading-zero": head + "group G 01 W0\nquorum G\n",
        "err-name-twice": head + "group W0 any W1\nquorum W0\n",
        "err-reserved": head + "group none any W1\nquorum none\n",
        "err-two-quorums": head + "quorum none\nquorum none\n",
        "err-unknown-keyword": head + "frobnicate x\nquorum none\n",
        "err-control": head + "quorum none\x0b\n",
        "err-crlf": head.replace("\n", "\r\n") + "quorum none\r\n",
        "err-dup-witness-key": head + f"witness W9 {w[0].vkey}\nquorum none\n",
        "err-log-as-witness": head + f"witness W9 {log.signer.vkey}\nquorum none\n",
        "err-witness-as-log": head + f"log {w[0].vkey}\nquorum none\n",
        "err-dup-log": head + f"log {log.signer.vkey}\nquorum none\n",
        "err-log-args": head + f"log {log.signer.vkey} a b\nquorum none\n",
        "err-bad-vkey": head + "log x+y+z\nquorum none\n",
    }
    notes = {
        "cosigned-0-2": cosigned(8, body8, [0, 2]),
        "cosigned-none": log.checkpoint(8),
        "cosigned-all": cosigned(8, body8, [0, 1, 2]),
        "cosigned-dup": cosigned(8, body8, [1, 1]),
        "cosigned-bad": cosigned(8, body8, [0])[:-20] + "AAAAAAAAAAAAAAAAAAA\n",
        "cosigned-big-time": log.checkpoint(8) + f"— {w[0].name} {B64(w[0].key_id.to_bytes(4, 'big') + (2**63).to_bytes(8, 'big') + bytes(64))}\n",
        "cosigned-short": log.checkpoint(8) + f"— {w[0].name} {B64(w[0].key_id.to_bytes(4, 'big') + bytes(64))}\n",
        "cosigned-stranger": cosigned(8, body8, [0]) + Signer.seeded("w9.example", "w9", 4).cosign_line(body8, t),
        "cosigned-dup-garbage": cosigned(8, body8, [0, 2]) + f"— {w[0].name} {B64(w[0].key_id.to_bytes(4, 'big') + t.to_bytes(8, 'big') + bytes(64))}\n",
    }
    cases = []
    for pname, policy in policies.items():
        for nname in (["cosigned-0-2"] if pname.startswith("err") or pname == "no-log" else list(notes)):
            receipt = dumps(log.receipt(1, size=8, checkpoint=notes[nname]))
            cases.append(Case(f"policy-{pname}-{nname}", ["--policy", "p.policy", "r.json"], {"p.policy": policy, "r.json": receipt}))
    # The quorum met by the trusted later checkpoint, not the receipt's.
    later = cosigned(8, body8, [0, 2])
    proof = "\n".join(log.consistency(3, 8))
    for pname in ("w0", "w1", "two-of-three"):
        for own in ("plain", "cosigned-w1"):
            note3 = log.checkpoint(3) if own == "plain" else log.checkpoint(3) + w[1].cosign_line(body3, t)
            cases.append(Case(
                f"policy-trusted-{pname}-{own}",
                ["--policy", "p.policy", "r.json", "--checkpoint", "later.note", "--consistency", "p.txt"],
                {"p.policy": policies[pname], "r.json": dumps(log.receipt(1, size=3, checkpoint=note3)), "later.note": later, "p.txt": proof},
            ))
    cases.append(Case("policy-trusted-foreign", ["--policy", "p.policy", "r.json", "--checkpoint", "later.note", "--consistency", "p.txt"],
                      {"p.policy": policies["w0"], "r.json": dumps(log.receipt(1, size=3)), "later.note": (C2SP / "generated" / "checkpoint-13.note").read_text(), "p.txt": proof}))
    cases.append(Case("policy-jsonl", ["--policy", "p.policy", "r.jsonl"],
                      {"p.policy": policies["w0"], "r.jsonl": "\n".join(dumps(log.receipt(i, checkpoint=notes["cosigned-0-2"])) for i in range(8))}))
    cases.append(Case("policy-missing", ["--policy", "nope.policy", "r.json"], {"r.json": "{}"}))
    cases.append(Case("policy-origin-bad", ["--policy", "p.policy", "r.json"], {"p.policy": policies["none"], "r.json": dumps(log.receipt(1, checkpoint="no newline"))}))
    return cases


def _parser_edge_cases() -> list[Case]:
    """Where two JSON readers, two RFC 3339 readers or two notions of
    whitespace could part: times at the edges of the calendar, nesting at
    the strict reader's limit, Unicode whitespace, odd files."""
    r1 = _vector_receipts()["r1"]
    e = json.loads(r1["entry"])
    t = dumps(r1)
    key = ["--key", "k.txt"]
    cases = []
    for time in (
        "2026-11-21T12:00:00.000000+00:00", "2026-11-21T24:00:00Z", "2026-11-21 12:00:00Z",
        "2026-11-21T12:00:60Z", "2026-12-31T23:59:60.5Z", "2026-11-21T12:00:00,5Z", "2026-11-21T12:00:00-00:00",
        "0000-01-01T00:00:00.000000Z", "0000-02-29T00:00:00.000000Z", "2026-11-21T12:00:00+99:99",
        "2026-11-21T12:00:00+24:00", "2026-11-21T12:00:00+23:59", "2026-11-21T12:00Z", "+2026-11-21T12:00:00Z",
        "2026-11-21T12:00:00.Z", "2026-02-29T00:00:00Z", "2024-02-29T00:00:00.000000Z", "1900-02-29T00:00:00Z",
        "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-01:00", "10000-01-01T00:00:00Z",
        "2026-11-21T12:00:00.0000000000000000001Z", "2026-1-21T12:00:00Z", "\uff12026-11-21T12:00:00Z",
        "2026-11-21T12:00:00.000000+00:00:00", "0001-01-01T00:00:00+01:00", "0000-01-01T00:00:00+01:00",
        "2026-11-21T12:61:00Z", "2026-11-21T12:00:61Z", "2026-00-21T12:00:00Z", "2026-11-00T12:00:00Z",
    ):
        d = dict(e, time=time)
        entry = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        cases.append(Case(f"edge-time-{time}", key + ["r.json"], {"r.json": dumps(dict(r1, entry=entry))}))
    for n in (126, 127, 128, 129):
        cases.append(Case(f"edge-depth-{n}", key + ["r.json"], {"r.json": "[" * n + "]" * n}))
        cases.append(Case(f"edge-depth-in-response-{n}", key + ["r.json"], {"r.json": '{"receipt":' + "[" * n + "]" * n + "}"}))
    vkey = (OE / "vkey.txt").read_text()
    for label, name in (("nbsp", "exa\u00a0mple"), ("nel", "exa\u0085mple"), ("fs", "exa\u001cmple"), ("zwsp", "exa\u200bmple")):
        cases.append(Case(f"edge-key-name-{label}", ["--key", "k2.txt", "r.json"], {"r.json": t, "k2.txt": vkey.replace(ORIGIN, name)}))
    for label, ws in (("nbsp", "\u00a0"), ("ls", "\u2028"), ("fs", "\u001c")):
        cases.append(Case(f"edge-jsonl-blank-{label}", key + ["r.jsonl"], {"r.jsonl": t + "\n" + ws + "\n" + t}))
        cases.append(Case(f"edge-key-file-{label}", ["--key", "k2.txt", "r.json"], {"r.json": t, "k2.txt": ws + vkey + ws}))
    trusted = ["--checkpoint", "c.note", "--consistency", "p.json"]
    for label, proof in (("deep", "[" * 130 + "]" * 130), ("empty", ""), ("null", "null"), ("hashes-null", '{"hashes": null}'),
                         ("crlf", "\r\n"), ("number", "5")):
        cases.append(Case(f"edge-consistency-{label}", key + ["r.json"] + trusted, {"r.json": t, "c.note": r1["checkpoint"], "p.json": proof}))
    for label, text in (
        ("number-out-of-range", t.replace('"leaf_index": 1', '"leaf_index": 1e400')),
        ("surrogate", t[:-1] + ', "x": "\\ud800"}'), ("bom", "\ufeff" + t), ("nul", t + "\0"), ("two-values", t + " " + t),
        ("trailing-comma", t[:-1] + ",}"), ("whitespace-around", "\n\t " + t + "\n\r\n"), ("cr-only", t + "\r" + t),
    ):
        cases.append(Case(f"edge-file-{label}", key + ["r.json"], {"r.json": text}))
    cases.append(Case("edge-key-crlf", ["--key", "k2.txt", "r.json"], {"r.json": t, "k2.txt": vkey.strip() + "\r\n"}))
    cases.append(Case("edge-tlog-bom", key + ["r.tlog"], {"r.tlog": "\ufeff" + (OE / "receipt.tlog-proof").read_text()}))
    cases.append(Case("edge-directory", key + ["."]))
    return cases


def all_cases() -> list[Case]:
    vkey = (OE / "vkey.txt").read_text().strip()
    cases = (
        _receipt_cases(vkey) + _checkpoint_cases() + _key_cases(vkey) + _trusted_cases() + _policy_cases()
        + _parser_edge_cases()
    )
    for c in cases:
        c.files.setdefault("k.txt", vkey + "\n")
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names repeat"
    return cases
