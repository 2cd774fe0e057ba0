"""Errors of the federation package, all inside the one hierarchy of :mod:`cyberpact.kit.errors`."""

from __future__ import annotations

from typing import Literal, get_args

from cyberpact.kit.errors import IntegrityFailure

RejectReason = Literal[
    "too_large",
    "malformed",
    "unsupported_algorithm",
    "wrong_recipient",
    "unknown_recipient_key",
    "unknown_sender_key",
    "decrypt_failed",
    "bad_signature",
    "header_mismatch",
    "stale",
    "future",
    "bad_payload",
    "receipt_mismatch",
    # Decided by the inbox, not by the envelope's cryptography:
    "unknown_sender",
    "sender_suspended",
    "sender_removed",
    "key_expired",
    "unsupported_type",
    "refused",
]
REJECT_REASONS: frozenset[str] = frozenset(get_args(RejectReason))


class EnvelopeRejected(IntegrityFailure):
    """An envelope or receipt failed a check; ``reason`` says which, from the fixed set above.

    Peers and operators key on ``reason`` (it also travels in ``extra`` so problem details and signed
    rejection receipts carry it), so a code is never renamed once released; ``detail`` is for humans only.
    """

    code = "envelope_rejected"
    title = "Envelope rejected"

    def __init__(self, reason: RejectReason, detail: str) -> None:
        if reason not in REJECT_REASONS:
            # A typo here would ship a code no peer understands; fail loudly in tests instead.
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(detail, extra={"reason": reason})
        self.reason: RejectReason = reason
