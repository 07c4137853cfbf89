"""Client and AsyncClient: the same calls over httpx, sync and async, on
the shared core (``_core``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Mapping

import httpx

from . import _core
from ._core import Execution, Request, RetryPolicy
from .errors import OpenExecError, TransportError


def _transport_error(e: httpx.TransportError) -> TransportError:
    return TransportError("transport_error", f"{type(e).__name__}: {e}", 0)


class _Base:
    def __init__(self, base_url: str, token: str | None, retry: RetryPolicy | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retry = retry or RetryPolicy()
        self._tool_actions: dict[str, str] = {}

    def _headers(self, req: Request) -> dict[str, str]:
        return {**_core.headers(self.token), **req.headers}

    def action_for_tool(self, name: str) -> str:
        """The action behind an OpenAI function name from ``tools()``."""
        return self._tool_actions.get(name, name)


class Client(_Base):
    """A blocking client.

    ``execute`` chooses a nonce (uuid4) once when none is given and reuses
    it for every retry, so a retried call runs at most once.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(base_url, token, retry)
        self._http = http or httpx.Client(timeout=timeout)
        self._sleep = sleep

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, req: Request) -> httpx.Response:
        try:
            return self._http.request(req.method, self.base_url + req.path, json=req.json, headers=self._headers(req))
        except httpx.TransportError as e:
            raise _transport_error(e) from e

    def execute(
        self,
        action: str,
        payload: Any = None,
        nonce: str | None = None,
        approval: Mapping[str, Any] | None = None,
    ) -> Execution:
        """Runs ``action`` once per nonce; raises the typed error of a refusal."""
        nonce = nonce or _core.new_nonce()
        req = _core.execute_request(action, payload, nonce, approval)
        attempt = 0
        while True:
            try:
                resp = self._send(req)
                return _core.read_execute(resp.status_code, resp.headers, resp.content, nonce)
            except OpenExecError as error:
                wait = self.retry.delay(attempt, error)
                if wait is None:
                    raise
                self._sleep(wait)
                attempt += 1

    def _get_json(self, path: str) -> Any:
        resp = self._send(Request("GET", path))
        return _core.read_json(resp.status_code, resp.headers, resp.content)

    def handlers(self) -> dict[str, Any]:
        """``GET /handlers``: the sealed registry with its schemas."""
        return self._get_json("/handlers")

    def tools(self) -> list[dict[str, Any]]:
        """The registry as OpenAI function definitions."""
        tools, self._tool_actions = _core.render_tools(self.handlers())
        return tools

    def call_tool(self, name: str, arguments: str | Mapping[str, Any], nonce: str | None = None, approval: Mapping[str, Any] | None = None) -> Execution:
        """Executes an OpenAI tool call (``arguments`` may be its JSON string)."""
        return self.execute(self.action_for_tool(name), arguments, nonce, approval)

    def receipt(self, exec_id: str) -> dict[str, Any]:
        """``GET /receipts/{exec_id}``: the receipt with a fresh proof."""
        return self._get_json(f"/receipts/{exec_id}")

    def verifier_key(self) -> str:
        resp = self._send(Request("GET", "/ledger/key"))
        if resp.status_code != 200:
            raise _core.error_from(resp.status_code, resp.headers, resp.content)
        return resp.text.strip()

    def checkpoint(self) -> str:
        resp = self._send(Request("GET", "/ledger/checkpoint"))
        if resp.status_code != 200:
            raise _core.error_from(resp.status_code, resp.headers, resp.content)
        return resp.text


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        super().__init__(base_url, token, retry)
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, req: Request) -> httpx.Response:
        try:
            return await self._http.request(req.method, self.base_url + req.path, json=req.json, headers=self._headers(req))
        except httpx.TransportError as e:
            raise _transport_error(e) from e

    async def execute(
        self,
        action: str,
        payload: Any = None,
        nonce: str | None = None,
        approval: Mapping[str, Any] | None = None,
    ) -> Execution:
        nonce = nonce or _core.new_nonce()
        req = _core.execute_request(action, payload, nonce, approval)
        attempt = 0
        while True:
            try:
                resp = await self._send(req)
                return _core.read_execute(resp.status_code, resp.headers, resp.content, nonce)
            except OpenExecError as error:
                wait = self.retry.delay(attempt, error)
                if wait is None:
                    raise
                await self._sleep(wait)
                attempt += 1

    async def _get_json(self, path: str) -> Any:
        resp = await self._send(Request("GET", path))
        return _core.read_json(resp.status_code, resp.headers, resp.content)

    async def handlers(self) -> dict[str, Any]:
        return await self._get_json("/handlers")

    async def tools(self) -> list[dict[str, Any]]:
        tools, self._tool_actions = _core.render_tools(await self.handlers())
        return tools

    async def call_tool(self, name: str, arguments: str | Mapping[str, Any], nonce: str | None = None, approval: Mapping[str, Any] | None = None) -> Execution:
        return await self.execute(self.action_for_tool(name), arguments, nonce, approval)

    async def receipt(self, exec_id: str) -> dict[str, Any]:
        return await self._get_json(f"/receipts/{exec_id}")

    async def verifier_key(self) -> str:
        resp = await self._send(Request("GET", "/ledger/key"))
        if resp.status_code != 200:
            raise _core.error_from(resp.status_code, resp.headers, resp.content)
        return resp.text.strip()
