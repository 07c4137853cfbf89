"""The official MCP Python SDK as a real client of `POST /mcp`: it lists the
tools, calls them at most once per nonce (replay, conflict), obtains an
approval through the input-required round trip, speaks the 2025 handshake,
and every receipt it gets verifies offline with `openexec verify`."""

import asyncio
import json
import re

import mcp
import mcp_types as types

from conftest import openexec

NONCE = "dev.openexec/nonce"


def run(coroutine):
    return asyncio.run(coroutine)


async def list_names(url: str, mode: str = "auto") -> list:
    async with mcp.Client(url, mode=mode) as client:
        listed = await client.list_tools()
        return listed.tools


def test_lists_the_registry_as_tools(start):
    server = start()
    tools = run(list_names(server.url))
    assert [t.name for t in tools] == ["add", "counter", "echo", "sha256"]
    by_name = {t.name: t for t in tools}
    assert by_name["echo"].annotations.read_only_hint is True
    assert by_name["counter"].annotations.read_only_hint is False
    assert by_name["counter"].annotations.destructive_hint is True
    assert by_name["counter"].input_schema["properties"]["name"]["type"] == "string"
    assert "result" in by_name["counter"].output_schema["properties"]


def test_allow_list_applies(start):
    server = start(OPENEXEC_ALLOWED_ACTIONS="echo")
    assert [t.name for t in run(list_names(server.url))] == ["echo"]


def test_a_call_runs_once_per_nonce(start):
    server = start()

    async def calls():
        async with mcp.Client(server.url) as client:
            assert client.protocol_version == "2026-07-28"
            first = await client.call_tool("counter", {"name": "sdk"}, meta={NONCE: "sdk-1"})
            again = await client.call_tool("counter", {"name": "sdk"}, meta={NONCE: "sdk-1"})
            other = await client.call_tool("counter", {"name": "other"}, meta={NONCE: "sdk-1"})
            missing = await client.call_tool("counter", {"name": "sdk"})
            return first, again, other, missing

    first, again, other, missing = run(calls())
    assert not first.is_error
    assert first.structured_content["outcome"] == "executed"
    assert first.structured_content["result"] == {"name": "sdk", "value": 1}
    assert json.loads(first.content[0].text) == first.structured_content
    assert server.verify(first.structured_content).startswith("OK: entry 0 (counter executed")

    assert not again.is_error
    assert again.structured_content["outcome"] == "replayed"
    assert again.structured_content["result"]["value"] == 1
    assert again.structured_content["exec_id"] == first.structured_content["exec_id"]
    server.verify(again.structured_content)

    assert other.is_error
    assert other.structured_content["code"] == "nonce_conflict"
    server.verify(other.structured_content)

    assert missing.is_error
    assert missing.structured_content["code"] == "nonce_required"
    server.verify(missing.structured_content)


def test_the_approval_round_trip(start, tmp_path):
    key = tmp_path / "approver.pem"
    made = openexec("approver-keygen", "--out", str(key))
    assert made.returncode == 0, made.stderr
    server = start(
        OPENEXEC_MODE="clawshield",
        CLAWSHIELD_PUBLIC_KEY=made.stdout,
        CLAWSHIELD_TENANT_ID="acme",
    )
    asked = []

    async def approver(context, params: types.ElicitRequestParams):
        # What a human (or an approver tool) is shown: the action, request
        # hash, nonce and tenant to approve.
        asked.append(params.message)
        nonce = re.search(r"nonce (\S+),", params.message).group(1)
        minted = openexec(
            "approve", "--key", str(key), "--action", "counter",
            "--payload", json.dumps({"name": "approved"}), "--nonce", nonce, "--tenant", "acme",
        )
        assert minted.returncode == 0, minted.stderr
        artifact = json.loads(minted.stdout)
        assert artifact["request_hash"] in params.message
        return types.ElicitResult(action="accept", content={"approval_artifact": minted.stdout.strip()})

    async def calls():
        async with mcp.Client(server.url, elicitation_callback=approver) as client:
            done = await client.call_tool("counter", {"name": "approved"}, meta={NONCE: "sdk-ap-1"})
            again = await client.call_tool("counter", {"name": "approved"}, meta={NONCE: "sdk-ap-1"})
            return done, again

    done, again = run(calls())
    assert len(asked) == 2, asked
    assert "counter" in asked[0] and "acme" in asked[0]
    assert not done.is_error, done.structured_content
    assert done.structured_content["outcome"] == "executed"
    assert done.structured_content["result"]["value"] == 1
    server.verify(done.structured_content)
    # The approval is single use: its retry replays, it does not run again.
    assert again.structured_content["outcome"] == "replayed"
    assert again.structured_content["result"]["value"] == 1
    server.verify(again.structured_content)


def test_a_declined_approval_is_a_recorded_refusal(start, tmp_path):
    key = tmp_path / "approver.pem"
    made = openexec("approver-keygen", "--out", str(key))
    server = start(OPENEXEC_MODE="clawshield", CLAWSHIELD_PUBLIC_KEY=made.stdout)

    async def decline(context, params):
        return types.ElicitResult(action="decline")

    async def calls():
        async with mcp.Client(server.url, elicitation_callback=decline) as client:
            return await client.call_tool("echo", {"m": 1}, meta={NONCE: "sdk-no"})

    refused = run(calls())
    assert refused.is_error
    assert refused.structured_content["code"] == "approval_missing"
    server.verify(refused.structured_content)


def test_the_legacy_handshake(start):
    server = start()

    async def calls():
        async with mcp.Client(server.url, mode="legacy") as client:
            assert client.protocol_version in ("2025-06-18", "2025-11-25")
            tools = await client.list_tools()
            echoed = await client.call_tool("echo", {"m": 2}, meta={NONCE: "sdk-legacy"})
            return tools, echoed

    tools, echoed = run(calls())
    assert len(tools.tools) == 4
    assert not echoed.is_error
    assert echoed.structured_content["result"] == {"echo": {"m": 2}}
    server.verify(echoed.structured_content)
