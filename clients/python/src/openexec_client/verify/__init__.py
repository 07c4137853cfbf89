"""Offline verification of OpenExec receipts, written from the formats'
specifications (docs/FORMATS.md, C2SP signed-note, tlog-checkpoint,
tlog-cosignature, tlog-proof, tlog-policy, RFC 6962/9162) on
``cryptography`` alone.

    from openexec_client.verify import log_key, parse_receipt, verify, verify_receipt
    verified = verify_receipt(parse_receipt(text), log_key(vkey))
    verified = verify(receipt_dict, vkey)             # the same, from a dict or text

    record = record_from_json(text)                   # a rotation record (§18)
    verify_chain(record, log_key(old_vkey), log_key(new_vkey))

``python -m openexec_client.verify`` takes the arguments of
``openexec verify`` and gives the same lines and exit codes.
"""

import json
from typing import Any

from ._entry import Entry, EntryError, decode_entry
from ._keys import ALG_COSIGNATURE_V1, ALG_ED25519, KeyError_ as KeyError, NoteKey, b64decode_strict
from ._merkle import ProofError, leaf_hash, node_hash, root_of, verify_consistency, verify_inclusion
from ._note import Checkpoint, CheckpointError, open_checkpoint
from ._policy import Policy, PolicyError, verify_receipt_with_policy
from ._rotation import RotationError, RotationRecord, record_from_json, verify_chain
from ._receipt import (
    Receipt,
    ReceiptError,
    TrustedCheckpoint,
    VerifiedReceipt,
    export_tlog_proof,
    import_tlog_proof,
    opens_commitment,
    parse_receipt,
    receipt_from_json,
    receipt_to_json,
    verify_receipt,
)


def verify(
    receipt: Any,
    key: str | None = None,
    *,
    checkpoint: str | bytes | None = None,
    consistency: Any = None,
    policy: str | None = None,
) -> VerifiedReceipt:
    """Verifies one receipt (a dict: the receipt or an ``/execute`` response
    holding one; or text: its JSON or tlog-proof form) against the log's
    verifier key ``key`` or a tlog-policy text ``policy``, optionally
    against a later trusted ``checkpoint`` with the ``consistency`` proof
    to it (base64 hashes, or the JSON of ``/ledger/proof/consistency``).
    Raises ValueError (ReceiptError, PolicyError, …) naming the first
    check that failed, worded as ``openexec verify`` words it."""
    text = receipt if isinstance(receipt, str) else json.dumps(receipt)
    parsed = parse_receipt(text)
    trusted = None
    if checkpoint is not None:
        if isinstance(consistency, dict):
            consistency = consistency.get("hashes", [])
        proof = tuple(b64decode_strict(h) or b"" for h in (consistency or []))
        note = checkpoint.encode("utf-8") if isinstance(checkpoint, str) else checkpoint
        trusted = TrustedCheckpoint(note, proof)
    if policy is not None:
        return verify_receipt_with_policy(parsed, Policy.parse(policy), trusted)[0]
    if key is None:
        raise ValueError("give key or policy")
    return verify_receipt(parsed, NoteKey.parse(key, ALG_ED25519), trusted)


def log_key(vkey: str) -> NoteKey:
    """The log's verifier key, ``<origin>+<key id>+<base64(0x01 ‖ key)>``."""
    return NoteKey.parse(vkey, ALG_ED25519)


__all__ = [
    "verify",
    "Checkpoint", "CheckpointError", "Entry", "EntryError", "KeyError", "NoteKey", "log_key",
    "Policy", "PolicyError", "ProofError", "Receipt", "ReceiptError", "TrustedCheckpoint",
    "VerifiedReceipt", "ALG_COSIGNATURE_V1", "ALG_ED25519", "b64decode_strict", "decode_entry",
    "export_tlog_proof", "import_tlog_proof", "leaf_hash", "node_hash", "open_checkpoint",
    "opens_commitment", "parse_receipt", "receipt_from_json", "receipt_to_json", "root_of",
    "verify_consistency", "verify_inclusion", "verify_receipt", "verify_receipt_with_policy",
    "RotationError", "RotationRecord", "record_from_json", "verify_chain",
]
