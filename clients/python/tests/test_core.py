"""Unit tests of the pure core, the JSON rules, the approval format and
the verifier's parts (no server)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone

import pytest

from openexec_client import _core, _json, approve, request_hash
from openexec_client.errors import (
    ActionNotAllowed,
    ApprovalRejected,
    HandlerFailed,
    InvalidPayload,
    InvalidRequest,
    LedgerUnavailable,
    NonceConflict,
    NonceInFlight,
    OpenExecError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    UnknownAction,
)
from openexec_client.verify import _keys, _merkle, _note

from _cases import OE, REPO, _small_order_r_signature
from _log import Log

# --- JSON -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (1.0, "1"), (1e21, "1e+21"), (1e20, "100000000000000000000"), (0.1, "0.1"), (-0.0, "0"),
        (5e-324, "5e-324"), (2.5e-3, "0.0025"), (1e-7, "1e-7"), (0.000001, "0.000001"),
        (18446744073709552000, "18446744073709552000"), (9007199254740992, "9007199254740992"),
        (123.456, "123.456"), (-1.5e300, "-1.5e+300"),
    ],
)
def test_numbers_are_written_as_ecmascript_does(value, text):
    assert _json.canonical(value).decode() == text


def test_canonical_orders_keys_by_utf16_and_escapes_only_what_jcs_does():
    value = {"\U0001f600": 1, "\ufb01": 2, "b": "\u0001\n\"\\/\u007f\u00e9", "a": [True, None]}
    assert _json.canonical(value).decode() == '{"a":[true,null],"b":"\\u0001\\n\\"\\\\/\u007f\u00e9","\U0001f600":1,"\ufb01":2}'


@pytest.mark.parametrize("text", ['{"a":1,"a":2}', "NaN", "[1e400]", '"\\ud800"', "-Infinity"])
def test_strict_json_refuses(text):
    with pytest.raises(_json.JSONError):
        _json.loads(text)


def test_last_key_wins_when_repeats_are_allowed():
    assert _json.loads('{"a":1,"a":2}', unique_keys=False) == {"a": 2}


# --- Core -----------------------------------------------------------------


def test_execute_request_carries_the_nonce_and_approval():
    req = _core.execute_request("echo", None, "n-1", {"format": "x"})
    assert req.method == "POST" and req.path == "/execute"
    assert req.json == {"action": "echo", "nonce": "n-1", "payload": {}, "approval_artifact": {"format": "x"}}
    assert _core.execute_request("echo", '{"a":1}', "n", None).json["payload"] == '{"a":1}'


def test_headers_carry_the_bearer_token():
    assert _core.headers("oex1_abc_def")["Authorization"] == "Bearer oex1_abc_def"
    assert "Authorization" not in _core.headers(None)


@pytest.mark.parametrize(
    "status, code, cls",
    [
        (422, "nonce_conflict", NonceConflict), (409, "nonce_in_flight", NonceInFlight),
        (403, "approval_expired", ApprovalRejected), (403, "tenant_mismatch", ApprovalRejected),
        (422, "approval_malformed", ApprovalRejected), (403, "approval_v1_needs_tenant", ApprovalRejected),
        (403, "action_not_allowed", ActionNotAllowed), (400, "unknown_action", UnknownAction),
        (400, "invalid_payload", InvalidPayload), (422, "invalid_payload", InvalidPayload),
        (500, "handler_error", HandlerFailed), (504, "deadline_exceeded", HandlerFailed),
        (500, "replay_of_failed", HandlerFailed), (500, "result_too_large", HandlerFailed),
        (500, "internal_panic", ServerError), (429, "rate_limited", RateLimited),
        (401, "unauthorized", Unauthorized), (503, "ledger_unavailable", LedgerUnavailable),
        (422, "invalid_nonce", InvalidRequest), (415, "unsupported_media_type", InvalidRequest),
        (422, "some_future_code", InvalidRequest), (502, "bad_gateway", ServerError),
    ],
)
def test_each_code_has_its_class(status, code, cls):
    receipt = {"format": "openexec-receipt/v1"}
    body = json.dumps({"code": code, "detail": "d", "outcome": "rejected", "receipt": receipt}).encode()
    with pytest.raises(cls) as caught:
        _core.read_execute(status, {}, body, "n")
    e = caught.value
    assert isinstance(e, OpenExecError)
    assert (e.code, e.detail, e.status, e.receipt, e.outcome) == (code, "d", status, receipt, "rejected")


def test_an_unreadable_error_body_still_raises_by_status():
    with pytest.raises(ServerError) as caught:
        _core.read_execute(502, {}, b"<html>bad gateway</html>", "n")
    assert caught.value.code == "http_502"


def test_read_execute_gives_the_fields():
    body = {"outcome": "replayed", "result": {"x": 1}, "replayed": True, "exec_id": "e", "id": "e",
            "receipt": {"format": "openexec-receipt/v1"}, "receipt_hash": "ab", "original_outcome": "executed"}
    done = _core.read_execute(200, {}, json.dumps(body).encode(), "n-7")
    assert (done.outcome, done.result, done.replayed, done.exec_id, done.receipt_hash, done.nonce) == (
        "replayed", {"x": 1}, True, "e", "ab", "n-7")
    assert done.original_outcome == "executed" and done.body == body
    with pytest.raises(Exception):
        done.outcome = "x"  # frozen


def test_retry_after_reads_seconds_and_dates():
    assert _core.retry_after({"Retry-After": "3"}) == 3.0
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert _core.retry_after({"retry-after": "Thu, 01 Jan 2026 00:00:10 GMT"}, now) == 10.0
    assert _core.retry_after({"Retry-After": "soon"}) is None
    assert _core.retry_after({}) is None


def test_retry_policy_retries_only_what_cannot_run_twice():
    policy = _core.RetryPolicy(attempts=4, base=0.1, cap=0.3, max_retry_after=5)
    in_flight = NonceInFlight("nonce_in_flight", "d", 409, {"r": 1}, retry_after=2)
    assert policy.delay(0, in_flight) == 2
    assert policy.delay(0, NonceInFlight("nonce_in_flight", "d", 409, None, retry_after=60)) == 5
    network = TransportError("transport_error", "refused", 0)
    assert [policy.delay(i, network) for i in range(4)] == [0.1, 0.2, 0.3, None]
    assert policy.delay(0, LedgerUnavailable("ledger_unavailable", "d", 503)) == 0.1
    # A recorded 503 (the handler was cancelled) is final.
    assert policy.delay(0, HandlerFailed("handler_cancelled", "d", 503, {"r": 1})) is None
    for final in (NonceConflict("nonce_conflict", "d", 422), RateLimited("rate_limited", "d", 429, retry_after=1),
                  HandlerFailed("handler_error", "d", 500, {"r": 1})):
        assert policy.delay(0, final) is None


def test_render_tools_gives_openai_functions():
    handlers = {"handlers": [
        {"name": "echo", "description": "Echoes.", "effects": "none",
         "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Any", "type": "object"}},
        {"name": "mail.send", "title": "Send", "effects": "at-most-once",
         "input_schema": {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}},
    ]}
    tools, names = _core.render_tools(handlers)
    assert tools[0] == {"type": "function", "function": {"name": "echo", "description": "Echoes.", "parameters": {"type": "object"}}}
    fn = tools[1]["function"]
    assert fn["name"] == "mail_send" and names["mail_send"] == "mail.send"
    assert "at-most-once" in fn["description"] and fn["parameters"]["required"] == ["to"]


# --- Approvals --------------------------------------------------------------

# The throwaway key and values of docs/FORMATS.md, "Worked example (v2)".
DOC_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEILIFHJUd+70B2ZbPgkn1tw93LL+l21V1KXRFMUfOSzSd
-----END PRIVATE KEY-----
"""


def test_request_hash_matches_the_documented_example():
    h = request_hash("echo", {"msg": "hi"}, "n-1", "acme")
    assert h.hex() == "7115838d6af4c2de9b80166647ff75169f62f6574d73a659f52ec7c4e7cf826c"
    # The payload is hashed in its canonical form: 1.0 is 1, a string payload is parsed.
    assert request_hash("a", {"x": 1.0}, "n", "") == request_hash("a", '{"x": 1}', "n", "")
    assert request_hash("a", None, "n", "") == request_hash("a", {}, "n", "")


def test_approve_reproduces_the_documented_artifact():
    artifact = approve(DOC_KEY, "echo", {"msg": "hi"}, "n-1", "acme", 300, approval_id="ap-demo-1",
                       now=datetime(2026, 11, 21, 23, 59, 51, tzinfo=timezone.utc))
    assert artifact == {
        "format": "openexec-approval/v2", "approval_id": "ap-demo-1", "tenant": "acme",
        "request_hash": "cRWDjWr0wt6bgBZmR/91Fp9i9ldNc6ZZ9S7HxOfPgmw=", "key_id": "7ca80d6b1daf9812",
        "issued_at": "2026-11-21T23:59:51Z", "expires_at": "2026-11-22T00:04:51Z",
        "signature": "EpU1i74vj/TKqmXgQxdFEELBN/l2uyavzsG8xn0REJkNOwR06rBGFLzAyvK4QuzK6xMfUA+gT58z58Es9Y+SAA==",
    }


# --- Verifier parts ---------------------------------------------------------


def test_merkle_vectors():
    b = base64.b64decode
    vectors = REPO / "tests" / "vectors" / "merkle"
    count = 0
    for v in json.loads((vectors / "inclusion.json").read_text()):
        try:
            _merkle.verify_inclusion([b(h) for h in v["proof"]], v["leaf_index"], v["tree_size"], b(v["leaf_hash"]), b(v["root"]))
            ok = True
        except _merkle.ProofError:
            ok = False
        assert ok == v["valid"], v["desc"]
        count += 1
    for v in json.loads((vectors / "consistency.json").read_text()):
        try:
            _merkle.verify_consistency([b(h) for h in v["proof"]], v["size1"], v["size2"], b(v["root1"]), b(v["root2"]))
            ok = True
        except _merkle.ProofError:
            ok = False
        assert ok == v["valid"], v["desc"]
        count += 1
    assert count > 1900


def test_proofs_of_the_test_log_verify_for_every_size():
    log = Log()
    for _ in range(33):
        log.append()
    from _log import consistency_path, inclusion_path

    leaves = log.leaves
    for n in range(1, 34):
        root = _merkle.root_of(leaves[:n])
        for m in range(n):
            _merkle.verify_inclusion(inclusion_path(m, leaves[:n]), m, n, leaves[m], root)
        for m in range(1, n):
            _merkle.verify_consistency(consistency_path(m, leaves[:n]), m, n, _merkle.root_of(leaves[:m]), root)


def test_strict_base64():
    assert _keys.b64decode_strict("AAAA") == bytes(3)
    for bad in ("AAA", "AAA=A", "AAB=", " AAAA", "AA==\n", "A===", "AA-_"):
        assert _keys.b64decode_strict(bad) is None, bad


def test_vector_key_id_and_checkpoint():
    key = json.loads((OE / "key.json").read_text())
    parsed = _keys.NoteKey.parse(key["vkey"], 1)
    assert f"{parsed.key_id:08x}" == "81260d2a" and parsed.public.hex() == key["public_key"]["hex"]
    cp = _note.open_checkpoint((OE / "checkpoint.txt").read_bytes(), parsed)
    assert (cp.origin, cp.size, base64.b64encode(cp.root).decode()) == (
        "example.com/openexec", 3, "VODkIq9LjFPzqbzwQn9ZD6riSFVglPrZFqCdofGQSBg=")


def test_strict_ed25519_refuses_what_openssl_alone_accepts():
    """Two signatures OpenSSL's plain verification accepts: R of small
    order, and any (R, S) = (B, 1) under the identity as public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    seed = bytes([0x42]) * 32
    message = b"any message"
    forged = _small_order_r_signature(seed, message)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    public.verify(forged, message)  # accepted without the strict checks
    raw = public.public_bytes_raw()
    assert not _keys.ed25519_verify_strict(raw, message, forged)
    identity = (1).to_bytes(32, "little")
    anything = bytes.fromhex("58" + "66" * 31) + (1).to_bytes(32, "little")
    Ed25519PublicKey.from_public_bytes(identity).verify(anything, message)
    assert not _keys.ed25519_verify_strict(identity, message, anything)
    good = Ed25519PrivateKey.from_private_bytes(seed).sign(message)
    assert _keys.ed25519_verify_strict(raw, message, good)


def test_commitments_open_with_the_vector_salts():
    from openexec_client.verify import opens_commitment

    entry = json.loads((OE / "entry-1.json").read_text())
    assert opens_commitment(entry["payload_commitment"], base64.b64encode(b"\x03" * 32).decode(), b'{"name":"visits"}')
    assert not opens_commitment(entry["payload_commitment"], base64.b64encode(b"\x04" * 32).decode(), b'{"name":"visits"}')
    assert hashlib.sha256(b"openexec/commitment/v1\n" + bytes(32)).digest() == base64.b64decode(
        "+ra46cc/NYx/7f5BL6Ua5Kj7zNhKSRUCVZhih5oDTCc=")


def test_tlog_proof_round_trip():
    from openexec_client.verify import export_tlog_proof, import_tlog_proof, parse_receipt

    text = (OE / "receipt.tlog-proof").read_text()
    receipt = import_tlog_proof(text)
    assert export_tlog_proof(receipt) == text
    assert receipt == parse_receipt((OE / "receipt.json").read_text())


def test_c2sp_vectors():
    """The project's C2SP vectors: the signed-note example of the spec, a
    checkpoint with two witness cosignatures and a stranger's signature,
    and the exact message a witness signed."""
    gen = REPO / "tests" / "vectors" / "c2sp" / "generated"
    spec = REPO / "tests" / "vectors" / "c2sp" / "spec"
    example = _keys.NoteKey.parse((spec / "signed-note-example.vkey").read_text(), 1)
    note = _note.parse_note((spec / "signed-note-example.note").read_bytes())
    assert note.text == b"This is an example message.\n"
    assert _note.verify_note(note, [example], _note.check_log_signature)[0].name == "example.com/foo"
    log = _keys.NoteKey.parse((gen / "log.vkey").read_text(), 1)
    cosigned = (gen / "checkpoint-13-cosigned.note").read_bytes()
    cp = _note.open_checkpoint(cosigned, log)
    assert (cp.origin, cp.size) == ("openexec.example/test-log", 13)
    witnesses = [_keys.NoteKey.parse((gen / f"witness{i}.vkey").read_text(), 4) for i in (1, 2)]
    lines = _note.verify_note(cp.note, witnesses, _note.check_cosignature)
    assert [line.name for line in lines] == ["witness1.openexec.example", "witness2.openexec.example"]
    assert int.from_bytes(lines[0].signature[:8], "big") == 1700000000
    assert _note.cosigned_message(1700000000, cp.note.text) == (gen / "cosignature-witness1-13.msg").read_bytes()
    # A log key is not a witness key, nor the other way round.
    with pytest.raises(_keys.KeyError_):
        _keys.NoteKey.parse((gen / "witness1.vkey").read_text(), 1)
    with pytest.raises(_note.CheckpointError, match="not signed by the log key"):
        _note.open_checkpoint(cosigned, _keys.NoteKey.parse((gen / "other-log-key-same-name.vkey").read_text(), 1))
    for size in (0, 1, 8, 1025):
        assert _note.open_checkpoint((gen / f"checkpoint-{size}.note").read_bytes(), log).size == size
    # The spec's checkpoint example names no key we hold.
    with pytest.raises(_note.CheckpointError):
        _note.open_checkpoint((spec / "tlog-checkpoint-example.note").read_bytes(), log)
