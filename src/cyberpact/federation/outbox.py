"""Sending: a message is queued in the transaction of the change that causes it, and is sent if and only
if that transaction commits. :mod:`cyberpact.federation.delivery` delivers what is queued.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.federation import handlers, peers
from cyberpact.federation.models import OutboxMessage, Peer
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import Conflict, InvalidInput, NotFound, Problem
from cyberpact.kit.filters import check_choices
from cyberpact.kit.time import utcnow

INBOX_PATH = "/federation/v1/inbox"
BATCH_MEDIA_TYPE = "application/json"
# What OutboxMessage.status takes, in the order a message passes through them; "cancelled": taken back
# before it was delivered (a request withdrawn while its peer was away), never sent again.
STATUSES = ("pending", "delivered", "rejected", "dead", "cancelled")


def removed_peer(peer: Peer) -> str:
    """Why nothing can be sent to ``peer`` any more, for a refusal or a draft's report."""
    return (
        f"{peers.named(peer)} was removed from this node's directory of peers: nothing more can be sent to it"
    )


def enqueue(
    session: Session,
    actor: Actor,
    *,
    recipient: str,
    message_type: str,
    payload: dict[str, Any],
    conversation_id: str | None = None,
    in_reply_to: str | None = None,
) -> OutboxMessage:
    """Queue a message in the caller's transaction: it is sent if and only if the caller commits."""
    peer = peers.find_peer(session, recipient)
    if peer is None:
        raise InvalidInput("Unknown recipient", [Problem("recipient", f"{recipient!r} is not a peer")])
    if peer.status == "removed":
        # Said as it is: the sender knew this node, and "not a peer" would send them looking for a typo.
        raise Conflict(removed_peer(peer))
    if peer.status != "active":
        raise Conflict(f"{recipient} is {peer.status}; resume it before sending")
    if handlers.handler_for(message_type) is None:
        raise InvalidInput(
            "Unknown message type", [Problem("message_type", f"{message_type!r} is not known")]
        )
    now = utcnow()
    message_id = str(uuid.uuid4())
    row = OutboxMessage(
        message_id=message_id,
        recipient=recipient,
        message_type=message_type,
        conversation_id=conversation_id or message_id,
        in_reply_to=in_reply_to,
        payload=payload,
        created_at=now,
        status="pending",
        attempts=0,
        next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    handlers.event(
        session,
        conversation_id=row.conversation_id,
        peer=recipient,
        direction="out",
        kind="queued",
        message_id=message_id,
        message_type=message_type,
        summary=_summary(payload),
    )
    audit.record(
        session,
        actor,
        "federation.message.queue",
        "message",
        message_id,
        detail={"recipient": recipient, "type": message_type, "conversation": row.conversation_id},
    )
    return row


_RECEIPT_SUMMARY = re.compile(r"receipt from \S+ \((accepted|duplicate)\)")


def receipt_summary(recipient: str, status: str) -> str:
    """The timeline line of a delivered message; :func:`receipt_status` reads it back."""
    return f"receipt from {recipient} ({status})"


def receipt_status(summary: str) -> str | None:
    """What a delivered message's receipt said (accepted, duplicate), from its timeline line."""
    found = _RECEIPT_SUMMARY.fullmatch(summary)
    return found.group(1) if found else None


def wake_workers(app: Any) -> None:
    """Tell the delivery workers of this process that messages wait, rather than leave them to the next
    poll; nothing to do where none run (the CLI, a node whose worker is a process of its own)."""
    worker = getattr(app.state, "outbox_worker", None)
    if worker is not None:
        worker.wake()


def _summary(payload: dict[str, Any]) -> str:
    text_value = payload.get("text") or payload.get("summary") or ""
    return str(text_value).strip().splitlines()[0][:200] if str(text_value).strip() else ""


@dataclass(frozen=True)
class Cancelled:
    messages: int
    attempted: bool  # whether any of them may have reached the peer (an attempt whose answer never came)


def cancel_undelivered(session: Session, conversation_id: str, message_type: str, why: str) -> Cancelled:
    """Take back the conversation's ``message_type`` messages that no receipt says were delivered, so that
    they are never sent (again): a message a worker holds right now is left to it, since it may be on the
    wire. ``attempted`` tells the caller whether one of them was tried already; a try whose answer was
    lost may have reached the peer, which must then be told."""
    now = utcnow()
    # Locked on PostgreSQL: a worker's claim of one of them waits for this transaction, then finds it no
    # longer pending. (SQLite's writers are one at a time already.)
    rows = list(
        session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.conversation_id == conversation_id,
                OutboxMessage.message_type == message_type,
                OutboxMessage.status.in_(("pending", "dead")),
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now),
            )
            .with_for_update()
        )
    )
    for row in rows:
        row.status, row.last_error = "cancelled", why[:500]
    session.flush()
    return Cancelled(len(rows), any(r.attempts > 0 for r in rows))


def list_messages(session: Session, status: str | None = None, limit: int = 100) -> list[OutboxMessage]:
    check_choices([("status", status, STATUSES)])
    query = select(OutboxMessage).order_by(OutboxMessage.seq.desc()).limit(limit)
    if status:
        query = query.where(OutboxMessage.status == status)
    return list(session.scalars(query))


def retry(session: Session, actor: Actor, message_id: str) -> OutboxMessage:
    row = session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == message_id))
    if row is None:
        raise NotFound(f"No outgoing message {message_id}")
    if row.status == "delivered":
        raise Conflict(f"{message_id} was delivered; nothing to retry")
    if row.status == "cancelled":
        raise Conflict(f"{message_id} was taken back before delivery ({row.last_error}); it is not sent")
    now = utcnow()
    row.status, row.attempts, row.next_attempt_at = "pending", 0, now
    # Restart the dead-letter clock (_bury counts from created_at): a dead letter is by definition older
    # than outbox_dead_after_seconds and would otherwise be buried again before its first new attempt.
    # The original queueing time stays in the conversation's "queued" event and the audit chain.
    row.created_at = now
    row.lease_owner = row.lease_until = None
    session.flush()
    audit.record(session, actor, "federation.message.retry", "message", message_id)
    return row
