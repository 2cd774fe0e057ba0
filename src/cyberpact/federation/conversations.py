"""What a conversation is about, and who may read it or write into it.

A conversation's id names what its messages are about: a request (the request's id), an evidence transfer
(``evidence-transfer:<transfer id>``) or an intel collection (``intel:<collection id>``). Its timeline
carries that object's steps and summaries (a package's title, a collection's title and counts), so reading
the timeline, or adding a note to it, takes the same visibility as reading the object itself. Any other id
without a kind is a free conversation of notes (the raw messages API's own, by default the first message's
id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cyberpact.audit import service as audit
from cyberpact.cases import service as cases
from cyberpact.cases.models import Request
from cyberpact.evidence import service as evidence
from cyberpact.evidence import transfer
from cyberpact.federation.models import ConversationEvent, InboxMessage, OutboxMessage
from cyberpact.intel import service as intel
from cyberpact.kit.actor import Actor
from cyberpact.kit.errors import CyberpactError, InvalidInput, NotFound, Problem
from cyberpact.kit.ids import parse_uuid

REQUEST = "request"
TRANSFER = "evidence-transfer"
INTEL = "intel"
NOTES = "notes"
_AUDIT_ID_MAX = 200  # AuditRecord.object_id


@dataclass(frozen=True)
class Subject:
    """What a conversation is about: the object whose read rule applies, as the audit record names it
    (``object_id`` None: nothing of that kind on this node), and the one peer it is with, if one."""

    kind: str
    object_type: str
    object_id: str | None
    counterpart: str | None = None


def locate(session: Session, conversation_id: str) -> Subject | None:
    """What ``conversation_id`` is about, with no check of who asks; None for a kind this node does not
    know."""
    rid = parse_uuid(conversation_id)
    request = session.get(Request, rid) if rid else None
    if request is not None:
        return Subject(REQUEST, "request", str(request.id), request.counterpart)
    kind, colon, ref = conversation_id.partition(":")
    if not colon:
        return Subject(NOTES, "conversation", _audit_id(conversation_id))
    if kind == TRANSFER:
        try:
            t = transfer.get_transfer(session, ref)
        except NotFound:
            return Subject(TRANSFER, "evidence_package", None)
        # A package whose row is gone leaves nothing to apply a rule to: hidden like an unknown transfer.
        return Subject(TRANSFER, "evidence_package", str(t.package_id) if t.package_id else None, t.peer)
    if kind == INTEL:
        # By id only: conversations are never named by a collection's alias.
        cid = parse_uuid(ref)
        return Subject(INTEL, "intel_collection", str(cid) if cid else None)
    return None


def _audit_id(conversation_id: str) -> str | None:
    # Ids longer than the audit record's column are kept whole in the record's detail instead: a cut one
    # would name another conversation.
    return conversation_id if len(conversation_id) <= _AUDIT_ID_MAX else None


def _hidden(shown: str, cause: CyberpactError | None = None) -> NotFound:
    # One answer for a refusal and for an id naming nothing: which request, package or collection stands
    # behind a conversation is itself what the caller may not learn. The refusal stays recorded.
    error = NotFound(f"No conversation {shown}")
    if cause is not None:
        error.denied = cause.denied
    return error


def check(
    session: Session, actor: Actor, conversation_id: str, *, purpose: str = "read", shown: str | None = None
) -> Subject:
    """What the conversation is about, if ``actor`` may see that; else a 404 (``shown`` names what the
    caller asked for), and a refused look at something that exists is recorded. ``purpose`` "read" also
    records a request's read, as reading the request does."""
    shown = shown or conversation_id
    about = locate(session, conversation_id)
    if about is None:
        # A kind this node does not know has no read rule to apply. Every feature's kind is mapped above,
        # so only hand-written notes can hold such an id today; refusing it to everyone, administrators
        # included (they read no case material), fails closed for a feature that adds a kind and forgets
        # to map it here, rather than open to everyone allowed to send messages.
        exists = session.scalar(
            select(ConversationEvent.seq).where(ConversationEvent.conversation_id == conversation_id).limit(1)
        )
        error = _hidden(shown)
        if exists is not None and _audit_id(conversation_id) is not None:
            error.denying(f"federation.conversation.{purpose}", "conversation", conversation_id)
        raise error
    if about.kind == NOTES:
        return about
    if about.object_id is None:
        raise _hidden(shown)
    try:
        if about.kind == REQUEST:
            cases.get_request(session, actor, uuid.UUID(about.object_id), purpose=purpose)
        elif about.kind == TRANSFER:
            # Administrators, who read no evidence, get the same 404 here as on the package itself.
            evidence.get_package(session, about.object_id, actor, purpose=purpose)
        elif not intel.access(session, actor, uuid.UUID(about.object_id)).can_read:
            # Read, not write: a write-only grant does not show what the collection holds (the summaries
            # count and name what was shared), as TAXII and the intel API refuse it every read.
            error = NotFound(f"No collection {about.object_id}")
            if _exists(session, about):
                error.denying(f"intel.collection.{purpose}", "intel_collection", about.object_id)
            raise error
    except NotFound as exc:
        raise _hidden(shown, exc) from None
    return about


def read_events(session: Session, actor: Actor, conversation_id: str) -> list[ConversationEvent]:
    """The conversation's timeline, if ``actor`` may see what it is about; the read is recorded against
    that object, so that "who looked at this package/collection/request" finds it."""
    about = check(session, actor, conversation_id)
    rows = list(
        session.scalars(
            select(ConversationEvent)
            .where(ConversationEvent.conversation_id == conversation_id)
            .order_by(ConversationEvent.seq)
        )
    )
    audit.record(
        session,
        actor,
        "federation.conversation.read",
        about.object_type,
        about.object_id,
        detail={"conversation": conversation_id, "events": len(rows)},
    )
    return rows


def check_note(
    session: Session, actor: Actor, recipient: str, conversation_id: str | None, in_reply_to: str | None
) -> None:
    """Refuse a hand-written message into a conversation ``actor`` may not see, or about an object whose
    counterpart is not ``recipient``: on both nodes it joins that object's timeline as a message of this
    node, and it would tell a third State the id of a request, transfer or collection it has no part in."""
    named: list[tuple[str, str, str]] = []  # (conversation, what the caller gave, its field)
    if conversation_id is not None:
        named.append((conversation_id, conversation_id, "conversation_id"))
    if in_reply_to is not None:
        named += [(c, in_reply_to, "in_reply_to") for c in _conversations_of(session, in_reply_to)]
    for conversation, shown, field in named:
        about = check(session, actor, conversation, purpose="message", shown=shown)
        if about.counterpart is not None and about.counterpart != recipient:
            raise InvalidInput(
                "Another peer's conversation",
                [Problem(field, f"this conversation is with {about.counterpart}, not {recipient}")],
            )


def _conversations_of(session: Session, ref: str) -> set[str]:
    """The conversations a reply to ``ref`` joins: that of the message it names, and the object's own
    when it is the id of a request, transfer or collection of this node."""
    found: set[str] = set()
    for model in (InboxMessage, OutboxMessage):
        conversation = session.scalar(select(model.conversation_id).where(model.message_id == ref))
        if conversation is not None:
            found.add(conversation)
    oid = parse_uuid(ref)
    if oid is not None:
        for conversation in (str(oid), f"{TRANSFER}:{oid}", f"{INTEL}:{oid}"):
            about = locate(session, conversation)
            if about is not None and about.kind != NOTES and _exists(session, about):
                found.add(conversation)
    return found


def _exists(session: Session, about: Subject) -> bool:
    if about.object_id is None:
        return False
    if about.kind == INTEL:
        try:
            intel.get_collection(session, uuid.UUID(about.object_id))
        except NotFound:
            return False
    return True
