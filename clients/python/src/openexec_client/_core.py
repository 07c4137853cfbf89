"""The pure request/response core shared by Client and AsyncClient: what
to send, how to read the answer, and whether and when to try again. No
I/O here, so both clients behave identically and the rules are testable
without a server."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any, Mapping

from .errors import OpenExecError, TransportError, error_class

USER_AGENT = "openexec-client-python/0.1.0"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Execution:
    """A successful ``POST /execute`` (executed, or a replay of an executed
    attempt)."""

    outcome: str
    result: Any
    replayed: bool
    exec_id: str
    receipt: dict[str, Any]
    receipt_hash: str | None
    body: dict[str, Any]
    status: int = 200
    nonce: str = ""

    @property
    def original_outcome(self) -> str | None:
        return self.body.get("original_outcome")

    def verify(self, key: str, **trusted: Any) -> Any:
        """Verifies the receipt offline against the log's verifier key (see
        ``openexec_client.verify.verify``); returns what it established."""
        from .verify import verify

        return verify(self.receipt, key, **trusted)


def new_nonce() -> str:
    return str(uuid.uuid4())


def headers(token: str | None) -> dict[str, str]:
    out = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def execute_request(
    action: str, payload: Any, nonce: str, approval: Mapping[str, Any] | None
) -> Request:
    body: dict[str, Any] = {"action": action, "nonce": nonce, "payload": payload if payload is not None else {}}
    if approval is not None:
        body["approval_artifact"] = dict(approval)
    return Request("POST", "/execute", body, {"Content-Type": "application/json"})


def _parse_body(content: bytes) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def retry_after(headers_: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    value = None
    for k, v in headers_.items():
        if k.lower() == "retry-after":
            value = v.strip()
    if not value:
        return None
    if re.fullmatch(r"\d+", value):
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def error_from(status: int, headers_: Mapping[str, str], content: bytes) -> OpenExecError:
    body = _parse_body(content)
    code = body.get("code") if isinstance(body.get("code"), str) else f"http_{status}"
    detail = body.get("detail") if isinstance(body.get("detail"), str) else content[:200].decode("utf-8", "replace")
    receipt = body.get("receipt") if isinstance(body.get("receipt"), dict) else None
    cls = error_class(code, status)
    return cls(code, detail, status, receipt, body, retry_after(headers_))


def read_execute(status: int, headers_: Mapping[str, str], content: bytes, nonce: str) -> Execution:
    """An Execution for a 200, else the typed error (raised)."""
    if status != 200:
        raise error_from(status, headers_, content)
    body = _parse_body(content)
    if "outcome" not in body or not isinstance(body.get("receipt"), dict):
        raise OpenExecError("bad_response", "200 without an execute response", status, None, body)
    return Execution(
        outcome=body["outcome"],
        result=body.get("result"),
        replayed=bool(body.get("replayed")),
        exec_id=body.get("exec_id") or body.get("id") or "",
        receipt=body["receipt"],
        receipt_hash=body.get("receipt_hash"),
        body=body,
        status=status,
        nonce=nonce,
    )


def read_json(status: int, headers_: Mapping[str, str], content: bytes) -> Any:
    if not 200 <= status < 300:
        raise error_from(status, headers_, content)
    try:
        return json.loads(content)
    except ValueError:
        raise OpenExecError("bad_response", "not JSON", status) from None


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts in all, and the backoff between them: doubling from
    ``base`` up to ``cap`` seconds; a server's ``Retry-After`` wins, up to
    ``max_retry_after``."""

    attempts: int = 5
    base: float = 0.1
    cap: float = 2.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, error: OpenExecError) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` after ``error``
        (attempt counts from 0), or None when it is not to be retried."""
        if attempt + 1 >= self.attempts or not retryable(error):
            return None
        backoff = min(self.cap, self.base * (2**attempt))
        if error.retry_after is not None:
            return min(self.max_retry_after, max(backoff, error.retry_after))
        return backoff


def retryable(error: OpenExecError) -> bool:
    """Retried with the same nonce: no answer at all; a 503 that recorded
    nothing (the ledger could not write: retrying cannot run anything
    twice); and 409 nonce_in_flight. A recorded 503 (handler_cancelled)
    is final: its retry would only be a replay of the failure."""
    if isinstance(error, TransportError):
        return True
    if error.status == 503:
        return error.receipt is None
    return error.code == "nonce_in_flight"


_TOOL_NAME = re.compile(r"[^a-zA-Z0-9_-]")


def tool_name(action: str) -> str:
    """An OpenAI function name (``[a-zA-Z0-9_-]{1,64}``) for an action name."""
    return _TOOL_NAME.sub("_", action)[:64]


def render_tools(handlers: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """OpenAI function definitions from ``GET /handlers``, and the map from
    each function name back to its action."""
    tools, names = [], {}
    for h in handlers.get("handlers", []):
        name = tool_name(h["name"])
        parameters = {k: v for k, v in (h.get("input_schema") or {}).items() if k not in ("$schema", "title")}
        parameters.setdefault("type", "object")
        description = h.get("description") or h.get("title") or h["name"]
        effects = h.get("effects")
        if effects and effects != "none":
            description += f" (effects: {effects}; runs at most once per nonce)"
        tools.append({"type": "function", "function": {"name": name, "description": description, "parameters": parameters}})
        names[name] = h["name"]
    return tools, names
