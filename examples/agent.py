#!/usr/bin/env python3
"""An agent that executes through OpenExec with OpenAI-style function calling.

The model side is simulated (no network access to a model is assumed): the
"model" answers with a tool call exactly as the OpenAI Chat Completions API
shapes it -- `function.name` plus `function.arguments` as a JSON *string*.
The agent forwards that call to OpenExec unchanged (OpenExec parses the
arguments string), uses the tool call id as the nonce so a retry can never
run the action twice, and keeps the receipt for offline verification.

Standard library only. Usage:
    python3 examples/agent.py --url http://127.0.0.1:5000 --out receipt.json
With authentication on, give the agent's token (`openexec token create --role
agent ...`) as --token or in OPENEXEC_TOKEN; it is sent as a bearer token.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request

# The tool schema an agent would give the model.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    }
]


def fake_model_tool_call():
    """What a model returns when it decides to call `add` (OpenAI shape)."""
    return {
        "id": "call_7f3a9c21",
        "type": "function",
        "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 40}"},
    }


def execute(base_url, tool_call, approval=None, token=None):
    body = {
        "action": tool_call["function"]["name"],
        "payload": tool_call["function"]["arguments"],  # the JSON string, as is
        "nonce": tool_call["id"],
    }
    if approval is not None:
        body["approval_artifact"] = approval
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(
        base_url + "/execute",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--out", default="receipt.json")
    parser.add_argument("--token", default=os.environ.get("OPENEXEC_TOKEN"))
    args = parser.parse_args()

    call = fake_model_tool_call()
    status, first = execute(args.url, call, token=args.token)
    if status != 200:
        print(f"execution refused: {status} {first.get('code')}: {first.get('detail')}")
        return 1
    print(f"result: {first['result']}  outcome: {first['outcome']}  exec_id: {first['exec_id']}")

    # A network retry of the same tool call: same nonce, so OpenExec
    # returns the recorded outcome and does not run the action again.
    status, retry = execute(args.url, call, token=args.token)
    assert status == 200 and retry["replayed"] is True and retry["exec_id"] == first["exec_id"], retry
    print("retry was a replay; the action ran once")

    # The tool message the agent would hand back to the model.
    tool_message = {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(first["result"])}
    print(f"tool message: {json.dumps(tool_message)}")

    with open(args.out, "w") as f:
        json.dump(first["receipt"], f)
    print(f"receipt saved to {args.out}; check it offline with `openexec verify`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
