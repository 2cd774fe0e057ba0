"""What an accepted message does on arrival, by message type.

Features register a handler for each message type they send. The inbox stores the message and runs its
handler in one transaction (a savepoint of the batch), so a message is applied exactly once or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict, Unpack

from sqlalchemy.orm import Session

from cyberpact.federation.envelope import OpenedEnvelope
from cyberpact.federation.models import ConversationEvent
from cyberpact.kit.errors import InvalidInput, Problem
from cyberpact.kit.features import Features
from cyberpact.kit.time import utcnow

Handler = Callable[[Session, OpenedEnvelope], str]
"""Applies a message; returns a one-line summary for the timeline. Raise a CyberpactError to refuse it."""

_HANDLERS: dict[str, Handler] = {}
# Types whose handler never writes and never refuses after writing: they need no savepoint of their own.
_PURE: set[str] = set()
# Types anyone allowed to send messages may send as they are. The others carry a feature's own state (a
# request approved by two people, a step of its life cycle, evidence, intel under TLP) and are sent only by
# that feature's service, after its checks.
_DIRECT: set[str] = set()

ReceiptHook = Callable[[Session, Any, str], None]
"""Runs in the sender's transaction when a receipt for a message of its type is stored: (session, outbox
row, receipt status)."""
_RECEIPT_HOOKS: dict[str, ReceiptHook] = {}

# The modules that register what their messages do; every lookup loads them first, so that each way into
# a node (the server, a command, a script) knows every type.
FEATURES = Features(
    "cyberpact.cases.lifecycle",
    "cyberpact.evidence.sending",
    "cyberpact.evidence.transfer",
    "cyberpact.intel.inbound",
)
_load = FEATURES.load


def register(message_type: str, *, pure: bool = False, direct: bool = False) -> Callable[[Handler], Handler]:
    def add(fn: Handler) -> Handler:
        if message_type in _HANDLERS and _HANDLERS[message_type] is not fn:
            raise RuntimeError(f"two handlers for message type {message_type!r}")
        _HANDLERS[message_type] = fn
        if pure:
            _PURE.add(message_type)
        if direct:
            _DIRECT.add(message_type)
        return fn

    return add


def on_receipt(message_type: str) -> Callable[[ReceiptHook], ReceiptHook]:
    def add(fn: ReceiptHook) -> ReceiptHook:
        _RECEIPT_HOOKS[message_type] = fn
        return fn

    return add


def receipt_hook(message_type: str) -> ReceiptHook | None:
    _load()
    return _RECEIPT_HOOKS.get(message_type)


def handler_for(message_type: str) -> Handler | None:
    _load()
    return _HANDLERS.get(message_type)


def is_direct(message_type: str) -> bool:
    """Whether the messages API may send this type as the caller wrote it."""
    _load()
    return message_type in _DIRECT


def is_pure(message_type: str) -> bool:
    _load()
    return message_type in _PURE


def known_types() -> list[str]:
    _load()
    return sorted(_HANDLERS)


class EventFields(TypedDict):
    """What a feature says of one step of a conversation; :func:`event_values` adds the time."""

    conversation_id: str
    peer: str
    direction: str  # in, out
    kind: str
    message_id: str
    message_type: str
    summary: str


def event_values(**fields: Unpack[EventFields]) -> dict[str, Any]:
    """The columns of one timeline event, for a caller that writes many at once."""
    return {**fields, "at": utcnow(), "summary": fields["summary"][:500]}


def event(session: Session, **fields: Unpack[EventFields]) -> None:
    """Add one timeline event to the caller's transaction."""
    session.add(ConversationEvent(**event_values(**fields)))


@register("note", pure=True, direct=True)
def _note(session: Session, message: OpenedEnvelope) -> str:
    """A free-text note between authorities: the plainest message, used by the demo and the tests."""
    text = message.payload.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > 20_000:
        raise InvalidInput("A note needs text", [Problem("text", "1 to 20,000 characters")])
    return text.strip().splitlines()[0][:200]
