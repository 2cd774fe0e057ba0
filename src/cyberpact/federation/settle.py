"""What became of one sent message, judged from the peer's answer: delivered (a receipt that verifies
under the peer's keys and names both nodes), refused by the peer (a signed rejection), or to be tried again
later with backoff. Decisions only: the delivery worker writes them, a batch in one transaction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cyberpact.config import Settings
from cyberpact.federation import envelope, handlers
from cyberpact.federation.errors import EnvelopeRejected
from cyberpact.federation.models import OutboxMessage
from cyberpact.federation.outbox import receipt_summary
from cyberpact.kit.canonical import sha256_hex

# (outcome: "delivered", "rejected" or "failed"; the message row's new values; the receipt hook to run)
Outcome = tuple[str, dict[str, Any], tuple[handlers.ReceiptHook, OutboxMessage, str] | None]


# Rejections a peer means for now, not for good: the message is tried again with the usual backoff.
_FOR_NOW = frozenset({"sender_suspended"})


@dataclass(frozen=True)
class Parties:
    """Who the receipt must name, and the keys it and a returned original envelope are checked with."""

    sender: str  # this node
    recipient: str
    sig_keys: dict[str, Any]  # the recipient's signing keys, by kid
    own_keys: dict[str, Any]  # this node's signing keys, by kid


def outcome(
    events: list[dict[str, Any]],
    row: OutboxMessage,
    sealed: envelope.SealedEnvelope | None,
    item: dict[str, Any] | None,
    parties: Parties,
    settings: Settings,
    error: str | None,
    now: datetime,
) -> Outcome:
    """What became of one message; its timeline event, if it has one, goes to ``events``."""
    receipt: envelope.Receipt | None = None
    if error is None and item is not None and sealed is not None:
        try:
            receipt = envelope.verify_receipt(
                item.get("receipt", ""),
                parties.sig_keys.get,
                expected_message_id=row.message_id,
                # A duplicate's receipt is the original one, naming the envelope that first arrived.
                expected_digest=None if item.get("status") == "duplicate" else sealed.digest,
            )
            if receipt.receiver_node != parties.recipient or receipt.sender_node != parties.sender:
                raise EnvelopeRejected("receipt_mismatch", "receipt names other nodes")
        except EnvelopeRejected as exc:
            error = f"bad receipt: {exc.reason}: {exc}"
            receipt = None
    if receipt is None:
        return _retry(row, settings, error, now)
    hook = handlers.receipt_hook(row.message_type)
    assert item is not None and sealed is not None
    recipient = parties.recipient

    def note(kind: str, summary: str) -> None:
        events.append(
            handlers.event_values(
                conversation_id=row.conversation_id,
                peer=recipient,
                direction="out",
                kind=kind,
                message_id=row.message_id,
                message_type=row.message_type,
                summary=summary,
            )
        )

    if receipt.status == "rejected" and receipt.reason in _FOR_NOW:
        # The peer's operator suspended this node for a while (checking a key change, say): refused for
        # now, not for good. Tried again with the usual backoff until the peer resumes it or the message
        # is given up; a refusal taken as final here left the two sides out of step after the resume.
        return _retry(row, settings, f"{recipient} refuses this node for now: {receipt.reason}", now)
    if receipt.status == "rejected":
        note("rejected", f"refused by {recipient}: {receipt.reason}")
        return (
            "rejected",
            {
                "status": "rejected",
                "attempts": row.attempts + 1,
                "lease_owner": None,
                "lease_until": None,
                "receipt": item["receipt"],
                "receipt_status": "rejected",
                "last_error": f"rejected by {recipient}: {receipt.reason}",
                "envelope": sealed.token,
                "signed": sealed.signed,
                "digest": sealed.digest,
            },
            (hook, row, "rejected") if hook else None,
        )
    # A duplicate is answered with the receipt first signed for it, which says "accepted"; what the
    # receiver says of this delivery is the item's status (the receipt itself was verified above).
    status = "duplicate" if item.get("status") == "duplicate" else receipt.status
    proof = {"envelope": sealed.token, "signed": sealed.signed, "digest": sealed.digest}
    if status == "duplicate":
        # The receipt names the envelope that arrived first, which a crash may have kept us from
        # recording; the receiver hands it back, and we keep it only if it is provably ours.
        proof = _original(item, receipt, row, parties) or ({} if row.envelope else proof)
    note("delivered", receipt_summary(recipient, status))
    return (
        "delivered",
        {
            "status": "delivered",
            "attempts": row.attempts + 1,
            "lease_owner": None,
            "lease_until": None,
            "receipt": item["receipt"],
            "receipt_status": status,
            "delivered_at": now,
            "last_error": None,
            **proof,
        },
        (hook, row, status) if hook else None,
    )


def _retry(row: OutboxMessage, settings: Settings, error: str | None, now: datetime) -> Outcome:
    # Jitter below the nominal delay, so that the configured longest delay is one.
    delay = min(
        settings.outbox_backoff_seconds * 2**row.attempts,
        settings.outbox_backoff_max_seconds,
    ) * random.uniform(0.5, 1.0)  # noqa: S311
    return (
        "failed",
        {
            "attempts": row.attempts + 1,
            "next_attempt_at": now + timedelta(seconds=delay),
            "lease_owner": None,
            "lease_until": None,
            "last_error": (error or "no receipt for this message")[:500],
        },
        None,
    )


def _original(
    item: dict[str, Any], receipt: envelope.Receipt, row: OutboxMessage, parties: Parties
) -> dict[str, Any] | None:
    """The envelope that first arrived, as the receiver hands it back with a duplicate's receipt: kept
    only if the receipt names its digest and it carries this node's own signature on this message."""
    token, signed = item.get("envelope"), item.get("signed")
    if not isinstance(token, str) or not isinstance(signed, str):
        return None
    if sha256_hex(token.encode("utf-8", "surrogateescape")) != receipt.envelope_digest:
        return None
    try:
        header, _ = envelope.verify_signed(signed, parties.own_keys.get)
    except EnvelopeRejected:
        return None
    if header.get("msg_id") != row.message_id or header.get("iss") != parties.sender:
        return None
    return {"envelope": token, "signed": signed, "digest": receipt.envelope_digest}
