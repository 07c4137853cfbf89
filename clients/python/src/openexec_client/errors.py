"""Typed errors, one class per family of the server's error codes
(docs/API.md, "Error codes"). Every error carries the code, the detail,
the HTTP status and, for refusals the server recorded, the receipt of
that refusal's ledger entry."""

from __future__ import annotations

from typing import Any


class OpenExecError(Exception):
    """An answer that is not a success, or no answer at all (``status`` 0)."""

    def __init__(
        self,
        code: str,
        detail: str,
        status: int,
        receipt: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        self.receipt = receipt
        self.body = body or {}
        self.retry_after = retry_after

    @property
    def outcome(self) -> str | None:
        """The recorded outcome (``rejected``, ``failed``, ...), if recorded."""
        return self.body.get("outcome")

    @property
    def exec_id(self) -> str | None:
        return self.body.get("exec_id")


class InvalidRequest(OpenExecError):
    """The body was refused before recording (malformed JSON, field, nonce...)."""


class InvalidPayload(OpenExecError):
    """The payload does not fit the action (400, recorded) or has no form (422)."""


class UnknownAction(OpenExecError):
    """No handler of that name is registered."""


class ActionNotAllowed(OpenExecError):
    """Not in the service's or the credential's allow-list."""


class ApprovalRejected(OpenExecError):
    """The approval artifact was missing, malformed, expired, reused, for
    another request or tenant, or not signed by a trusted approver key."""


class NonceConflict(OpenExecError):
    """The nonce was already used for a different request."""


class NonceInFlight(OpenExecError):
    """Another attempt holding the nonce is not recorded yet; retried by the
    client with the same nonce (``retry_after`` from the server)."""


class HandlerFailed(OpenExecError):
    """The handler ran and failed (error, panic, deadline, cancellation), or
    this is a replay of an attempt that did not succeed."""


class ServerError(OpenExecError):
    """A contained panic of the service, or another server-side failure."""


class RateLimited(OpenExecError):
    """Too many rejections or replays; ``retry_after`` says when to try again."""


class Unauthorized(OpenExecError):
    """Missing or invalid bearer token."""


class Forbidden(OpenExecError):
    """A valid token whose role does not admit the route."""


class NotFound(OpenExecError):
    """No such execution, entry or route."""


class LedgerUnavailable(OpenExecError):
    """The ledger could not record the attempt (503); retried by the client."""


class TransportError(OpenExecError):
    """No HTTP answer (connection refused or reset, timeout) after the retries."""


_BY_CODE: dict[str, type[OpenExecError]] = {
    "unknown_action": UnknownAction,
    "invalid_payload": InvalidPayload,
    "action_not_allowed": ActionNotAllowed,
    "tenant_mismatch": ApprovalRejected,
    "nonce_conflict": NonceConflict,
    "nonce_in_flight": NonceInFlight,
    "rate_limited": RateLimited,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "ledger_unavailable": LedgerUnavailable,
    "not_ready": LedgerUnavailable,
    "ledger_damaged": LedgerUnavailable,
    "internal_panic": ServerError,
}
for _code in (
    "handler_error", "handler_panic", "result_not_canonical", "result_too_large",
    "deadline_exceeded", "handler_cancelled", "replay_of_failed", "replay_of_interrupted",
):
    _BY_CODE[_code] = HandlerFailed
for _code in (
    "unsupported_media_type", "body_too_large", "body_timeout", "bad_body", "invalid_json",
    "duplicate_key", "inexact_number", "too_deep", "invalid_body", "missing_field",
    "invalid_field", "invalid_action", "invalid_nonce", "invalid_approval", "invalid_query",
    "method_not_allowed",
):
    _BY_CODE[_code] = InvalidRequest


def error_class(code: str, status: int) -> type[OpenExecError]:
    """The class of a code; unknown codes go by status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code.startswith("approval_"):
        return ApprovalRejected
    if status >= 500:
        return ServerError
    if status in (400, 413, 415, 422):
        return InvalidRequest
    return OpenExecError


__all__ = [
    "OpenExecError", "InvalidRequest", "InvalidPayload", "UnknownAction", "ActionNotAllowed",
    "ApprovalRejected", "NonceConflict", "NonceInFlight", "HandlerFailed", "ServerError",
    "RateLimited", "Unauthorized", "Forbidden", "NotFound", "LedgerUnavailable",
    "TransportError", "error_class",
]
