"""The client against a real ``openexec serve`` (demo mode, clawshield mode,
and with bearer tokens), and the receipts it gets verified by both
verifiers with the same verdicts."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from openexec_client import (
    ActionNotAllowed,
    ApprovalRejected,
    AsyncClient,
    Forbidden,
    Client,
    HandlerFailed,
    InvalidPayload,
    InvalidRequest,
    NonceConflict,
    RetryPolicy,
    TransportError,
    Unauthorized,
    UnknownAction,
    approve,
)
from openexec_client.verify import NoteKey, parse_receipt, verify, verify_receipt

from _server import FaultProxy, Server
from conftest import normalize, run_python, run_rust


@pytest.fixture(scope="module")
def demo(binary, tmp_path_factory):
    server = Server(binary, tmp_path_factory.mktemp("demo") / "data")
    yield server
    server.stop()


@pytest.fixture
def client(demo):
    with Client(demo.url) as c:
        yield c


RECEIPTS: list[dict] = []  # every receipt the tests got, verified at the end


def keep(receipt: dict | None) -> dict:
    assert receipt is not None and receipt["format"] == "openexec-receipt/v1"
    RECEIPTS.append(receipt)
    return receipt


def verified_entry(client: Client, receipt: dict) -> dict:
    key = NoteKey.parse(client.verifier_key(), 1)
    return verify_receipt(parse_receipt(json.dumps(receipt)), key).entry.fields


def test_execute_replay_and_conflict(client):
    nonce = f"py-{uuid.uuid4()}"
    done = client.execute("echo", {"msg": "hello"}, nonce=nonce)
    assert (done.outcome, done.result, done.replayed, done.nonce) == ("executed", {"echo": {"msg": "hello"}}, False, nonce)
    assert len(done.receipt_hash) == 64
    entry = verified_entry(client, keep(done.receipt))
    assert (entry["outcome"], entry["nonce"], entry["exec_id"]) == ("executed", nonce, done.exec_id)
    assert done.verify(client.verifier_key()).entry.index == entry["index"]
    with pytest.raises(ValueError, match="entry signature is invalid"):
        tampered = dict(done.receipt, entry=done.receipt["entry"].replace(nonce, nonce + "x"))
        verify(tampered, client.verifier_key())

    again = client.execute("echo", {"msg": "hello"}, nonce=nonce)
    assert (again.outcome, again.replayed, again.exec_id, again.result) == ("replayed", True, done.exec_id, done.result)
    assert again.original_outcome == "executed"
    replay = verified_entry(client, keep(again.receipt))
    assert replay["replay_of"]["index"] == entry["index"]

    with pytest.raises(NonceConflict) as caught:
        client.execute("echo", {"msg": "other"}, nonce=nonce)
    e = caught.value
    assert (e.status, e.code, e.outcome) == (422, "nonce_conflict", "rejected")
    assert verified_entry(client, keep(e.receipt))["reason"] == "nonce_conflict"


def test_a_nonce_is_chosen_once_per_call(client):
    a = client.execute("echo", {"n": 1})
    b = client.execute("echo", {"n": 1})
    assert a.nonce != b.nonce and a.exec_id != b.exec_id and not b.replayed
    uuid.UUID(a.nonce)


@pytest.mark.parametrize(
    "action, payload, nonce, cls, status, code, recorded",
    [
        ("nope", {}, None, UnknownAction, 400, "unknown_action", True),
        ("add", {"a": "x"}, None, InvalidPayload, 400, "invalid_payload", True),
        ("add", {"a": 9223372036854775000, "b": 1000}, None, HandlerFailed, 500, "handler_error", True),
        ("echo", {}, "has space", InvalidRequest, 422, "invalid_nonce", False),
        ("bad action!", {}, None, InvalidRequest, 422, "invalid_action", False),
        ("echo", [1], None, InvalidPayload, 422, "invalid_payload", False),
    ],
)
def test_typed_errors(client, action, payload, nonce, cls, status, code, recorded):
    with pytest.raises(cls) as caught:
        client.execute(action, payload, nonce=nonce)
    e = caught.value
    assert (e.status, e.code) == (status, code)
    assert isinstance(e.detail, str) and e.detail
    if recorded:
        verified_entry(client, keep(e.receipt))
    else:
        assert e.receipt is None


def test_a_failed_attempt_replays_as_a_failure(client):
    nonce = f"fail-{uuid.uuid4()}"
    payload = {"a": 9223372036854775000, "b": 1000}
    with pytest.raises(HandlerFailed) as first:
        client.execute("add", payload, nonce=nonce)
    with pytest.raises(HandlerFailed) as again:
        client.execute("add", payload, nonce=nonce)
    assert (first.value.code, again.value.code) == ("handler_error", "replay_of_failed")
    assert again.value.exec_id == first.value.exec_id
    keep(again.value.receipt)


def test_tools_render_the_registry_and_run_a_tool_call(client):
    tools = client.tools()
    names = {t["function"]["name"]: t["function"] for t in tools}
    assert {"echo", "add", "sha256", "counter"} <= set(names)
    assert names["counter"]["parameters"]["required"] == ["name"]
    assert "at-most-once" in names["counter"]["description"]
    done = client.call_tool("sha256", '{"b":1,"a":2}')
    assert done.result == {"sha256": "d3626ac30a87e6f7a6428233b3c68299976865fa5508e4267c5415c76af7a772"}
    keep(done.receipt)


def test_async_client(demo):
    async def run():
        async with AsyncClient(demo.url) as c:
            done = await c.execute("echo", {"async": True})
            again = await c.execute("echo", {"async": True}, nonce=done.nonce)
            tools = await c.tools()
            with pytest.raises(UnknownAction):
                await c.execute("nope")
            return done, again, tools

    done, again, tools = asyncio.run(run())
    assert done.outcome == "executed" and again.replayed and again.exec_id == done.exec_id
    assert any(t["function"]["name"] == "echo" for t in tools)
    keep(done.receipt)


def _counter(client: Client, name: str) -> int:
    return client.execute("counter", {"name": name}).result["value"]


def test_a_lost_answer_is_retried_with_the_same_nonce_and_runs_once(demo):
    """The proxy forwards the first request (the counter runs) and drops its
    answer, then refuses the next connection outright: the client retries
    with the nonce it chose, and gets the replay of the one execution."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    proxy = FaultProxy(demo.url, ["forward-drop", "drop"])
    slept: list[float] = []
    try:
        with Client(proxy.url, sleep=slept.append, retry=RetryPolicy(attempts=5, base=0.05)) as c:
            done = c.execute("counter", {"name": name})
    finally:
        proxy.close()
    assert done.outcome == "replayed" and done.original_outcome == "executed"
    assert done.result == {"name": name, "value": 1}
    assert len(proxy.bodies) == 3 and len({b["nonce"] for b in proxy.bodies}) == 1
    assert slept == [0.05, 0.1]
    with Client(demo.url) as c:
        assert _counter(c, name) == 2  # ran once for the retried call, once now


def test_409_and_503_are_retried_honouring_retry_after(demo):
    proxy = FaultProxy(demo.url, [(409, "nonce_in_flight", {"Retry-After": "1"}), (503, "ledger_unavailable", {})])
    slept: list[float] = []
    try:
        with Client(proxy.url, sleep=slept.append, retry=RetryPolicy(base=0.05)) as c:
            done = c.execute("echo", {"retry": 1})
    finally:
        proxy.close()
    assert done.outcome == "executed"
    assert slept == [1.0, 0.1]
    assert len({b["nonce"] for b in proxy.bodies}) == 1 and len(proxy.bodies) == 3


def test_retries_end(demo):
    proxy = FaultProxy(demo.url, ["drop"] * 3)
    try:
        with Client(proxy.url, sleep=lambda s: None, retry=RetryPolicy(attempts=3)) as c:
            with pytest.raises(TransportError):
                c.execute("echo")
    finally:
        proxy.close()
    assert len(proxy.bodies) == 3


@pytest.fixture(scope="module")
def approver(binary, tmp_path_factory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("approver")
    key = d / "approver.pem"
    public = subprocess.run([str(binary), "approver-keygen", "--out", str(key)], capture_output=True, check=True).stdout.decode()
    return key, public


@pytest.fixture(scope="module")
def clawshield(binary, tmp_path_factory, approver):
    _, public = approver
    server = Server(binary, tmp_path_factory.mktemp("claw") / "data", {
        "OPENEXEC_MODE": "clawshield", "CLAWSHIELD_PUBLIC_KEY": public, "CLAWSHIELD_TENANT_ID": "acme",
    })
    yield server
    server.stop()


def test_approvals_minted_in_python_and_by_the_cli(clawshield, approver, binary):
    key, _ = approver
    with Client(clawshield.url) as c:
        with pytest.raises(ApprovalRejected) as missing:
            c.execute("echo", {"msg": "hi"})
        assert missing.value.code == "approval_missing"
        keep(missing.value.receipt)

        nonce = f"ap-{uuid.uuid4()}"
        artifact = approve(key, "echo", {"msg": "hi"}, nonce, "acme")
        done = c.execute("echo", {"msg": "hi"}, nonce=nonce, approval=artifact)
        assert done.outcome == "executed"
        entry = verified_entry(c, keep(done.receipt))
        assert entry["approval"] == {"kind": "openexec-v2", "id": artifact["approval_id"],
                                     "key_id": artifact["key_id"], "expires_at": artifact["expires_at"]}
        # The same artifact again: a replay (verified, not consumed again).
        assert c.execute("echo", {"msg": "hi"}, nonce=nonce, approval=artifact).replayed
        # Bound to the nonce, the payload and the tenant.
        for action, payload, n, tenant, code in (
            ("echo", {"msg": "hi"}, f"other-{uuid.uuid4()}", "acme", "approval_hash_mismatch"),
            ("echo", {"msg": "ho"}, nonce, "acme", "approval_hash_mismatch"),
            ("echo", {"msg": "hi"}, nonce, "other", "tenant_mismatch"),
        ):
            other = dict(artifact) if tenant == "acme" else approve(key, action, payload, n, tenant)
            with pytest.raises(ApprovalRejected) as caught:
                c.execute(action, payload, nonce=n, approval=other)
            assert caught.value.code == code
            keep(caught.value.receipt)
        past = datetime.now(timezone.utc) - timedelta(hours=1)
        n2 = f"exp-{uuid.uuid4()}"
        with pytest.raises(ApprovalRejected) as expired:
            c.execute("echo", {}, nonce=n2, approval=approve(key, "echo", {}, n2, "acme", 60, now=past))
        assert expired.value.code == "approval_expired"

        # The Rust CLI's artifact for the same kind of request is accepted too.
        n3 = f"cli-{uuid.uuid4()}"
        minted = subprocess.run(
            [str(binary), "approve", "--key", str(key), "--kind", "v2", "--action", "counter",
             "--payload", '{"name":"cli"}', "--nonce", n3, "--tenant", "acme"],
            capture_output=True, check=True).stdout.decode()
        ran = c.execute("counter", {"name": "cli"}, nonce=n3, approval=json.loads(minted))
        assert ran.outcome == "executed"
        keep(ran.receipt)
        # And an artifact from Python equals, member for member, what the CLI mints.
        cli_artifact = json.loads(minted)
        mine = approve(key, "counter", {"name": "cli"}, n3, "acme",
                       ttl=int((datetime.fromisoformat(cli_artifact["expires_at"].replace("Z", "+00:00"))
                                - datetime.fromisoformat(cli_artifact["issued_at"].replace("Z", "+00:00"))).total_seconds()),
                       approval_id=cli_artifact["approval_id"],
                       now=datetime.fromisoformat(cli_artifact["issued_at"].replace("Z", "+00:00")))
        assert mine == cli_artifact


def test_bearer_tokens(binary, tmp_path):
    data = tmp_path / "data"
    made = subprocess.run([str(binary), "token", "create", "--data", str(data), "--role", "agent", "--tenant", "acme",
                           "--actions", "echo"], capture_output=True, check=True)
    token = made.stdout.decode().split()[0]
    auditor = subprocess.run([str(binary), "token", "create", "--data", str(data), "--role", "auditor", "--tenant", "acme"],
                             capture_output=True, check=True).stdout.decode().split()[0]
    server = Server(binary, data)
    try:
        with Client(server.url) as anonymous, pytest.raises(Unauthorized) as caught:
            anonymous.execute("echo")
        assert caught.value.status == 401 and caught.value.receipt is None
        with Client(server.url, token=token) as agent:
            done = agent.execute("echo", {"who": "agent"})
            entry = verified_entry(agent, keep(done.receipt))
            assert entry["tenant"] == "acme" and entry["principal"] == token.split("_")[1]
            with pytest.raises(ActionNotAllowed) as refused:
                agent.execute("add", {"a": 1})
            keep(refused.value.receipt)
            # The agent's receipt, read back by an auditor (an agent may not execute as one).
            with Client(server.url, token=auditor) as audit:
                assert audit.receipt(done.exec_id)["entry"] == done.receipt["entry"]
                with pytest.raises(Forbidden) as forbidden:
                    audit.execute("echo")
                assert (forbidden.value.status, forbidden.value.receipt) == (403, None)
    finally:
        server.stop()


def _both(binary: Path, args: list[str], cwd: Path) -> tuple:
    rust = run_rust(binary, args, cwd)
    py = run_python(args, cwd)
    assert (py[0], normalize(py[1])) == (rust[0], normalize(rust[1]))
    return rust


def _signer_id(receipt: dict) -> int:
    line = receipt["checkpoint"].split("\n\n")[1].split("\n")[0]
    return int.from_bytes(base64.b64decode(line.split(" ")[2])[:4], "big")


def test_live_receipts_verify_identically(binary, demo, clawshield, tmp_path):
    """Every receipt the tests above got, from three servers: each alone
    (as an /execute response) under its server's key, each server's as
    JSON Lines, all of them under one key (the others' fail by signature),
    a tlog-proof export, a receipt refreshed from GET /receipts, and one
    against the latest checkpoint with the served consistency proof."""
    assert len(RECEIPTS) >= 15
    keys = {}
    for server in (demo, clawshield):
        with Client(server.url) as c:
            vkey = c.verifier_key()
            keys[NoteKey.parse(vkey, 1).key_id] = vkey
    with Client(demo.url) as c:
        done = c.execute("echo", {"final": True})
        fresh = c.receipt(done.exec_id)
        checkpoint = c.checkpoint()
        first = next(r for r in RECEIPTS if _signer_id(r) == NoteKey.parse(c.verifier_key(), 1).key_id)
        proof = c._get_json(f"/ledger/proof/consistency?from={first['inclusion_proof']['tree_size']}")
        demo_key = c.verifier_key()
    (tmp_path / "k.txt").write_text(demo_key)
    (tmp_path / "fresh.json").write_text(json.dumps(fresh))
    (tmp_path / "later.note").write_text(checkpoint)
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    (tmp_path / "first.json").write_text(json.dumps(first))
    from openexec_client.verify import export_tlog_proof

    (tmp_path / "first.tlog").write_text(export_tlog_proof(parse_receipt(json.dumps(first))))
    assert _both(binary, ["--key", "k.txt", "fresh.json"], tmp_path)[0] == 0
    assert _both(binary, ["--key", "k.txt", "first.tlog"], tmp_path)[0] == 0
    code, out = _both(binary, ["--key", "k.txt", "first.json", "--checkpoint", "later.note", "--consistency", "proof.json"], tmp_path)
    assert code == 0 and "consistent with the trusted checkpoint" in out
    code, out = _both(binary, ["--key", "k.txt", "first.json", "--checkpoint", "later.note"], tmp_path)
    assert code == 1 and "add --consistency" in out
    by_key: dict[int, list[dict]] = {}
    for r in RECEIPTS:
        by_key.setdefault(_signer_id(r), []).append(r)
    ok = 0
    for kid, receipts in by_key.items():
        if kid not in keys:
            continue  # the token test's server is gone; its receipts were verified there
        (tmp_path / f"{kid}.key").write_text(keys[kid])
        for i, r in enumerate(receipts):
            (tmp_path / f"{kid}-{i}.json").write_text(json.dumps({"outcome": "x", "receipt": r}))
            code, out = _both(binary, ["--key", f"{kid}.key", f"{kid}-{i}.json"], tmp_path)
            assert code == 0, out
            ok += 1
        (tmp_path / f"{kid}.jsonl").write_text("\n".join(json.dumps(r) for r in receipts) + "\n")
        code, out = _both(binary, ["--key", f"{kid}.key", f"{kid}.jsonl"], tmp_path)
        assert code == 0 and out == f"OK: {len(receipts)} receipts verified\n"
    assert ok >= 15
    (tmp_path / "all.jsonl").write_text("\n".join(json.dumps(r) for r in RECEIPTS) + "\n")
    code, out = _both(binary, ["--key", "k.txt", "all.jsonl"], tmp_path)
    assert code == 1 and "entry signature is invalid" in out
