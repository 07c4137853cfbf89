"""Offline verification of OpenExec receipts, written from the formats'
specifications (docs/FORMATS.md, C2SP signed-note, tlog-checkpoint,
tlog-cosignature, tlog-proof, tlog-policy, RFC 6962/9162) on
``cryptography`` alone.

    from openexec_client.verify import LogKey, parse_receipt, verify_receipt
    verified = verify_receipt(parse_receipt(text), LogKey.parse(vkey))

``python -m openexec_client.verify`` takes the arguments of
``openexec verify`` and gives the same lines and exit codes.
"""

from ._entry import Entry, EntryError, decode_entry
from ._keys import ALG_COSIGNATURE_V1, ALG_ED25519, KeyError_ as KeyError, NoteKey, b64decode_strict
from ._merkle import ProofError, leaf_hash, node_hash, root_of, verify_consistency, verify_inclusion
from ._note import Checkpoint, CheckpointError, open_checkpoint
from ._policy import Policy, PolicyError, verify_receipt_with_policy
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


class LogKey(NoteKey):
    """The log's verifier key, ``<origin>+<key id>+<base64(0x01 ‖ key)>``."""

    @classmethod
    def parse(cls, text: str, alg: int = ALG_ED25519) -> "NoteKey":  # type: ignore[override]
        return NoteKey.parse(text, alg)


__all__ = [
    "Checkpoint", "CheckpointError", "Entry", "EntryError", "KeyError", "LogKey", "NoteKey",
    "Policy", "PolicyError", "ProofError", "Receipt", "ReceiptError", "TrustedCheckpoint",
    "VerifiedReceipt", "ALG_COSIGNATURE_V1", "ALG_ED25519", "b64decode_strict", "decode_entry",
    "export_tlog_proof", "import_tlog_proof", "leaf_hash", "node_hash", "open_checkpoint",
    "opens_commitment", "parse_receipt", "receipt_from_json", "receipt_to_json", "root_of",
    "verify_consistency", "verify_inclusion", "verify_receipt", "verify_receipt_with_policy",
]
