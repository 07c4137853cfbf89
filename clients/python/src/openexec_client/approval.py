"""OpenExec v2 approval artifacts (docs/FORMATS.md, "OpenExec v2"), for
approver tooling: one artifact approves one exact request (action,
canonical payload, nonce, tenant) for a short time."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping, Union

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import _json

APPROVAL_FORMAT = "openexec-approval/v2"
REQUEST_TAG = b"openexec/request/v1\n"
APPROVAL_TAG = b"openexec/approval/v2\n"

KeyLike = Union[Ed25519PrivateKey, bytes, str, Path]


def canonical_payload(payload: Any) -> Any:
    """``JSON.parse(JCS(payload))``: the value the server hashes and runs
    (absent or null → ``{}``; a string holding a JSON object is parsed)."""
    if payload is None:
        return {}
    if isinstance(payload, str):
        payload = _json.loads(payload)
        if payload is None:
            return {}
        if not isinstance(payload, dict):
            raise ValueError("a payload string must hold a JSON object")
    if not isinstance(payload, dict):
        raise ValueError("the payload must be an object, null, or a JSON object string")
    return _json.loads(_json.canonical(payload))


def request_hash(action: str, payload: Any, nonce: str, tenant: str) -> bytes:
    """SHA-256("openexec/request/v1\\n" ‖ JCS({action, nonce, payload, tenant}))."""
    body = {"action": action, "nonce": nonce, "payload": canonical_payload(payload), "tenant": tenant}
    return hashlib.sha256(REQUEST_TAG + _json.canonical(body)).digest()


def load_private_key(key: KeyLike) -> Ed25519PrivateKey:
    """An Ed25519 key object, PKCS#8 PEM text or bytes, or a PEM file's path."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, Path) or (isinstance(key, str) and "-----BEGIN" not in key):
        key = Path(key).read_bytes()
    if isinstance(key, str):
        key = key.encode("ascii")
    loaded = serialization.load_pem_private_key(key, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError("the approver key must be an Ed25519 private key")
    return loaded


def approver_key_id(public_raw: bytes) -> str:
    """First 8 bytes of SHA-256 of the raw public key, hex."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def approve(
    key: KeyLike,
    action: str,
    payload: Any = None,
    nonce: str = "",
    tenant: str = "",
    ttl: int = 300,
    *,
    approval_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Mints a v2 artifact approving exactly this request, valid ``ttl``
    seconds from ``now``; send it as ``approval`` of ``execute``."""
    private = load_private_key(key)
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    issued = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=timezone.utc)
    members = {
        "format": APPROVAL_FORMAT,
        "approval_id": approval_id or str(uuid.uuid4()),
        "tenant": tenant,
        "request_hash": base64.b64encode(request_hash(action, payload, nonce, tenant)).decode(),
        "key_id": approver_key_id(public),
        "issued_at": _utc_text(issued),
        "expires_at": _utc_text(issued + timedelta(seconds=ttl)),
    }
    signature = private.sign(APPROVAL_TAG + _json.canonical(members))
    return {**members, "signature": base64.b64encode(signature).decode()}


def signed_message(artifact: Mapping[str, str]) -> bytes:
    """The bytes an artifact's signature covers."""
    return APPROVAL_TAG + _json.canonical({k: v for k, v in artifact.items() if k != "signature"})
