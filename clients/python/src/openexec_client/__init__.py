"""Python client for OpenExec, the execution boundary for AI agents.

    from openexec_client import Client
    with Client("http://127.0.0.1:8080", token="oex1_...") as client:
        done = client.execute("echo", {"msg": "hi"})
        print(done.outcome, done.result, done.exec_id)

``openexec_client.verify`` checks the receipts offline.
"""

from ._core import Execution, RetryPolicy, render_tools
from .approval import approve, request_hash
from .client import AsyncClient, Client
from .errors import (
    ActionNotAllowed,
    ApprovalRejected,
    Forbidden,
    HandlerFailed,
    InvalidPayload,
    InvalidRequest,
    LedgerUnavailable,
    NonceConflict,
    NonceInFlight,
    NotFound,
    OpenExecError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    UnknownAction,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "Client", "Execution", "RetryPolicy", "approve", "request_hash", "render_tools",
    "OpenExecError", "ActionNotAllowed", "ApprovalRejected", "Forbidden", "HandlerFailed",
    "InvalidPayload", "InvalidRequest", "LedgerUnavailable", "NonceConflict", "NonceInFlight",
    "NotFound", "RateLimited", "ServerError", "TransportError", "Unauthorized", "UnknownAction",
]
